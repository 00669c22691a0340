//! `srlm distill`: a teacher's correct solutions to training prompts, as chat JSONL for SFT.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use clap::Args;
use srlm::data::PromptFormat;
use srlm::generate::memory::check_fits;
use srlm::generate::GenerationConfig;
use srlm::learner::traces::{distill_traces, problems_per_batch, read_problems, TraceLayout};
use srlm::model::load::{parse_device, parse_dtype};
use srlm::model::CausalLm;
use srlm::model::LoadedModel;
use srlm::reward::Benchmark;
use srlm::sampling::{SamplingParams, StopStrings};

#[derive(Args)]
pub struct DistillArgs {
    /// Teacher checkpoint: HF directory, .gguf file or cached hub id.
    #[arg(long)]
    teacher: String,
    /// JSONL problems with a `question` (or `problem`) field and the benchmark's gold field.
    #[arg(long)]
    data: PathBuf,
    /// Where the kept traces go (chat JSONL, written atomically).
    #[arg(long)]
    out: PathBuf,
    /// Samples per problem.
    #[arg(long, default_value_t = 4)]
    n: usize,
    /// Use only the first N problems (after --skip).
    #[arg(long)]
    limit: Option<usize>,
    /// Pass over the file's first N problems, e.g. to sample rows an earlier --limit did not.
    #[arg(long, default_value_t = 0)]
    skip: usize,
    /// Which gold field and answer checker: gsm8k, math500, minerva_math, olympiadbench, amc23.
    #[arg(long, default_value = "gsm8k")]
    benchmark: String,
    /// Prompt format (plain, r1, boxed): the prompts `srlm train` and `srlm eval` render.
    #[arg(long, default_value = "r1")]
    format: PromptFormat,
    /// A custom system prompt instead of the format's; "" for none.
    #[arg(long)]
    system: Option<String>,
    /// What becomes of a correct trace out of `--format`'s layout (r1: the think/answer tags):
    /// any (kept as sampled), require (left out), rewrite (laid out again).
    #[arg(long, default_value = "any")]
    layout: TraceLayout,
    #[arg(long, default_value_t = 0.7)]
    temperature: f32,
    #[arg(long = "top-p", default_value_t = 1.0)]
    top_p: f32,
    #[arg(long = "max-new-tokens", default_value_t = 512)]
    max_new_tokens: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long, default_value = "f32")]
    dtype: String,
}

pub fn run(args: DistillArgs) -> Result<()> {
    if args.n == 0 || args.max_new_tokens == 0 || args.limit == Some(0) {
        bail!("--n, --max-new-tokens and --limit must be at least 1");
    }
    let benchmark: Benchmark = args.benchmark.parse()?;
    let sampling = SamplingParams { temperature: args.temperature, top_p: args.top_p, top_k: 0, greedy: false };
    sampling.validate()?;
    let system = match args.system.as_deref() {
        Some("") => None,
        Some(s) => Some(s),
        None => args.format.system_prompt(),
    };
    let mut problems = read_problems(&args.data, benchmark, system)?;
    if args.skip >= problems.len() {
        bail!("--skip {} leaves none of the {} problems in {}", args.skip, problems.len(), args.data.display());
    }
    problems.drain(..args.skip);
    problems.truncate(args.limit.unwrap_or(usize::MAX));
    let device = parse_device(&args.device).map_err(anyhow::Error::msg)?;
    let dtype = parse_dtype(&args.dtype).map_err(anyhow::Error::msg)?;
    let teacher = LoadedModel::load(&args.teacher, &device, dtype)?;
    let template = teacher.tokenizer.chat_template()?;
    let gen = GenerationConfig {
        sampling,
        max_new_tokens: args.max_new_tokens,
        min_new_tokens: 0,
        eos_ids: teacher.tokenizer.eos_token_ids().to_vec(),
        stop: StopStrings::default(),
        seed: args.seed,
    };
    let model = teacher.inference_model()?;
    // Prompts are tokenized one at a time later, so the estimate counts completions only.
    let positions = args.max_new_tokens.min(teacher.config.max_position_embeddings);
    let rows = problems_per_batch(args.n) * args.n;
    check_fits(&teacher.config, model.device(), model.dtype(), rows, positions)
        .map_err(|e| anyhow!("--n {} ({rows} rows decoding together): {e}; lower --n or --max-new-tokens", args.n))?;
    // Minutes to hours of teacher sampling: a line every tenth of the way.
    let pace = srlm::train::progress::Pace::start();
    let progress = |done: usize, total: usize| {
        if pace.passed_a_mark(done, total) {
            eprintln!("distill: {done}/{total} problems sampled ({})", pace.note(done, total));
        }
        true
    };
    let stats = distill_traces(
        &model,
        &teacher.tokenizer,
        &template,
        &problems,
        args.n,
        &gen,
        benchmark,
        args.format,
        args.layout,
        &args.out,
        &progress,
    )?;
    eprintln!(
        "{} problems, {} samples: kept {} correct traces ({}), {} problems solved; wrote {}",
        stats.problems,
        stats.samples,
        stats.kept,
        stats.layout_note(args.layout),
        stats.solved,
        args.out.display()
    );
    Ok(())
}
