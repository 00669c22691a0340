//! Subcommands and the options they share.

mod bench;
mod bench_matmul;
mod bench_staleness;
mod bench_staleness_report;
mod bench_sync;
mod bench_train;
mod bench_transfer;
mod compare;
mod distill;
mod error_text;
mod eval;
mod export;
mod generate;
mod grade;
mod inspect;
mod logprobs;
mod plot;
mod recipe_edit;
mod sft;
mod train;
mod worker;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
pub use error_text::error_text;
use srlm::model::load::{parse_device, parse_dtype};
use srlm::model::{LoadedModel, LoraAdapters};

#[derive(Parser)]
#[command(name = "srlm", version, about = "Train small reasoning language models with GRPO, SFT and distillation")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sample completions of a prompt (G at once with --n).
    Generate(generate::GenerateArgs),
    /// Per-token log-probs of a completion given a prompt, as the learner computes them.
    Logprobs(logprobs::LogprobsArgs),
    /// Architecture, size and tokenizer facts of a checkpoint.
    Inspect(inspect::InspectArgs),
    /// Write a checkpoint as an HF directory (config.json, model.safetensors, tokenizer files).
    Export(export::ExportArgs),
    /// PNG charts of training runs (reward, accuracy, format, KL, clipping, length, staleness
    /// per step) and evaluation reports (accuracy per benchmark, side by side).
    Plot(plot::PlotArgs),
    /// Train: SFT, KD and GRPO stages on the actor runtime (the embedded default without --config).
    Train(train::TrainArgs),
    /// Accuracy on math benchmarks (pass@1 over k samples), resumable; writes a JSON report.
    Eval(eval::EvalArgs),
    /// Re-grade completions (JSONL) with the current answer checker.
    Grade(grade::GradeArgs),
    /// Two `srlm eval` folders problem by problem: the paired table, McNemar's exact test and
    /// format compliance before and after.
    Compare(compare::CompareArgs),
    /// Throughput benchmarks on the peer's workloads (see BENCHMARKS.md).
    Bench(bench::BenchArgs),
    /// Supervised fine-tuning (full or LoRA) from a TOML recipe.
    Sft(sft::SftArgs),
    /// Rejection-sampled teacher traces for a training set, as chat JSONL.
    Distill(distill::DistillArgs),
    /// Run generators or scorers for a learner node on another machine (`srlm train --listen`).
    Worker(worker::WorkerArgs),
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Generate(a) => generate::run(a),
        Command::Logprobs(a) => logprobs::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Export(a) => export::run(a),
        Command::Plot(a) => plot::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Grade(a) => grade::run(a),
        Command::Compare(a) => compare::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Train(a) => train::run(a),
        Command::Sft(a) => sft::run(a),
        Command::Distill(a) => distill::run(a),
        Command::Worker(a) => worker::run(a),
    }
}

/// Which checkpoint, on which device, in which precision.
#[derive(Args, Clone)]
pub struct ModelArgs {
    /// An HF model directory, a .gguf file, or a hub id present in the local HF cache.
    #[arg(long)]
    pub model: String,
    /// cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Working precision: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// A PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors) over
    /// `--model`, e.g. what `srlm sft` writes with `save = "adapter"`; folded into the weights in
    /// memory when loading, so the model runs at the base model's speed and nothing is written.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
}

impl ModelArgs {
    pub fn load(&self) -> Result<LoadedModel> {
        let device = parse_device(&self.device).map_err(anyhow::Error::msg)?;
        let dtype = parse_dtype(&self.dtype).map_err(anyhow::Error::msg)?;
        let mut m = LoadedModel::load(&self.model, &device, dtype).with_context(|| format!("loading model '{}'", self.model))?;
        if let Some(dir) = &self.adapter {
            let adapters = LoraAdapters::load_peft(dir, &m.weights, &m.config)
                .with_context(|| format!("loading adapter '{}' over '{}'", dir.display(), self.model))?;
            m.weights = adapters.merged(&m.weights)?;
        }
        Ok(m)
    }
}
