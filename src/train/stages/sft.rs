//! The sft stage (and trace KD, which is SFT on the teacher's solutions): the training
//! problems' worked solutions or `[sft] data` as (prompt, completion) tokens, then full or LoRA
//! fine-tuning on the runtime (the learner actor steps, with its metrics, checkpoints, stop
//! handling and deterministic harness).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{runtime_base, say, sft_step_json, stage_base_name, RunOptions, StageRun, State};
use crate::learner::sft::{fit_length, SftConfig, SftExample, SftPlan, SftStepStats};
use crate::learner::sft_checkpoint::{plan_fingerprint, SftCheckpoints};
use crate::learner::sft_data::{read_conversations, tokenize_conversation};
use crate::learner::sft_trainer::{sft_pipeline, SftTrainer};
use crate::learner::trained_params::TrainedParams;
use crate::model::{LoraAdapters, Qwen2};
use crate::optim::AdamW;
use crate::tokenizer::Tokenizer;
use crate::train::config::TrainConfig;
use crate::train::heldout::TrainingProblem;
use crate::train::progress::Pace;
use crate::train::snapshot::snapshot;

pub(super) fn sft_stage(
    cfg: &TrainConfig,
    state: &mut State,
    train: &[TrainingProblem],
    opts: &RunOptions,
    stage: &StageRun,
) -> Result<u64> {
    let mut examples = match &cfg.sft.data {
        Some(path) => examples_from_file(cfg, path, &state.tokenizer)?,
        None => sft_examples(train, &state.tokenizer)?,
    };
    if cfg.sft.examples > 0 {
        examples.truncate(cfg.sft.examples);
    }
    let what = if cfg.sft.lora.is_some() { "LoRA" } else { "all weights" };
    say(opts, &format!("sft: {} examples, {what}, lr {}, {} epoch(s)", examples.len(), cfg.sft.lr, cfg.sft.epochs));
    sft_on(cfg, state, examples, opts, stage)
}

/// Prompt and solution tokens, the end-of-turn token appended so the model learns to stop.
pub(super) fn sft_examples(problems: &[TrainingProblem], tok: &Tokenizer) -> Result<Vec<SftExample>> {
    let eos = tok.eos_token_ids().first().copied();
    problems
        .iter()
        .filter_map(|p| p.solution.as_ref().map(|s| (p, s)))
        .map(|(p, s)| {
            let mut completion = tok.encode(s, false)?;
            completion.extend(eos);
            Ok(SftExample { prompt: tok.encode(&p.prompt, false)?, completion })
        })
        .collect()
}

/// `[sft] data` through the chat template; GSM8K rows are asked in `[data] format`, the prompt
/// every other command renders for the same question.
fn examples_from_file(cfg: &TrainConfig, path: &Path, tok: &Tokenizer) -> Result<Vec<SftExample>> {
    let conversations = read_conversations(path, cfg.sft.data_format, cfg.data.format).context("sft.data")?;
    let template = tok.chat_template()?;
    conversations
        .iter()
        .enumerate()
        .map(|(i, c)| tokenize_conversation(c, &template, tok).with_context(|| format!("sft.data: {}: row {}", path.display(), i + 1)))
        .collect()
}

/// Fine-tunes the model in `state` on `examples` with `[sft]`'s settings, through the runtime:
/// a data source hands out the planned examples, the learner actor steps. `state` ends with the
/// trained weights (LoRA adapters merged).
pub(super) fn sft_on(cfg: &TrainConfig, state: &mut State, examples: Vec<SftExample>, opts: &RunOptions, stage: &StageRun) -> Result<u64> {
    let s = &cfg.sft;
    let fitted = fit_length(examples, s.max_len, s.overlong);
    if fitted.dropped + fitted.truncated > 0 {
        say(
            opts,
            &format!("sft: of the examples longer than max_len {}: {} dropped, {} truncated", s.max_len, fitted.dropped, fitted.truncated),
        );
    }
    if fitted.examples.is_empty() {
        // Trace KD may keep no trace (a teacher that solved nothing): no update, not a failure.
        anyhow::ensure!(stage.name != "sft", "sft: no example fits max_len {} (sft.max_len, sft.overlong)", s.max_len);
        say(opts, &format!("{}: no example to train on: no update", stage.name));
        return Ok(0);
    }
    let sft = SftConfig {
        epochs: s.epochs,
        max_len: s.max_len,
        overlong: s.overlong,
        token_budget: s.token_budget,
        grad_accum: s.grad_accum,
        seed: cfg.seed,
        pad_id: state.tokenizer.pad_token_id().unwrap_or(0),
        chunk_rows: crate::model::logprobs::DEFAULT_CHUNK_ROWS,
        lanes: s.lanes,
    };
    let plan = SftPlan::new(&fitted.examples, &sft);
    let opt_cfg = s.adamw(plan.steps().len().max(1));
    let checkpoints = |params| -> Result<SftCheckpoints> {
        Ok(SftCheckpoints {
            place: stage.checkpoint_place(cfg, state)?,
            every: cfg.runtime.pipeline.checkpoint_every as usize,
            params,
            plan: plan_fingerprint(&fitted.examples, &sft),
        })
    };
    let steps = |model: Qwen2, opt: AdamW, ckpt: SftCheckpoints| {
        run_planned(cfg, opts, stage, &plan, &sft, fitted.examples.clone(), model, opt, ckpt)
    };
    match s.lora_config(cfg.seed) {
        None => {
            let (trainable, vars) = state.weights.to_vars()?;
            let model = Qwen2::new(&state.config, &trainable)?;
            let opt = AdamW::new(vars.clone(), opt_cfg)?;
            let steps = steps(model, opt, checkpoints(TrainedParams::Full(vars.clone()))?)?;
            state.weights = snapshot(&vars)?;
            Ok(steps)
        }
        Some(lora) => {
            let adapters = Arc::new(LoraAdapters::init(&lora, &state.weights, &state.config)?);
            let model = Qwen2::with_lora(&state.config, &state.weights, &adapters, true)?;
            let opt = AdamW::new(adapters.vars(), opt_cfg)?;
            let params = TrainedParams::Lora {
                adapters: Arc::clone(&adapters),
                base: state.weights.clone(),
                base_model: stage_base_name(cfg, stage.index, stage.resume),
            };
            let steps = steps(model, opt, checkpoints(params)?)?;
            if s.save_adapter {
                let dir = cfg.out_dir.join(format!("stage-{}-{}-adapter", stage.index, stage.name));
                adapters.save_peft(&dir, &stage_base_name(cfg, stage.index, stage.resume), true)?;
                say(opts, &format!("sft: adapters written to {}", dir.display()));
            }
            state.weights = adapters.merged(&state.weights)?;
            Ok(steps)
        }
    }
}

/// Runs the plan's remaining steps on the runtime (the deterministic harness under
/// `--deterministic`); returns the stage's whole step count.
#[allow(clippy::too_many_arguments)]
fn run_planned(
    cfg: &TrainConfig,
    opts: &RunOptions,
    stage: &StageRun,
    plan: &SftPlan,
    sft: &SftConfig,
    examples: Vec<SftExample>,
    model: Qwen2,
    opt: AdamW,
    checkpoints: SftCheckpoints,
) -> Result<u64> {
    let mut trainer = SftTrainer::new(model, opt, plan.clone(), sft.clone(), checkpoints);
    if let Some(dir) = stage.resume {
        trainer.resume_from(dir)?;
    }
    let (progress, total) = (opts.progress, plan.steps().len());
    let start_step = trainer.start_step();
    let first = start_step as usize;
    let (mut shown, pace) = (Instant::now(), Pace::start());
    trainer.on_step = Some(Box::new(move |st: &SftStepStats| {
        let n = st.step + 1;
        // The first, the last and every tenth step, and on a real model's slow steps at least
        // every half minute.
        if progress && (n == 1 || n == total || n.is_multiple_of(10) || shown.elapsed() >= Duration::from_secs(30)) {
            shown = Instant::now();
            let pace = pace.note(n.saturating_sub(first), total.saturating_sub(first));
            eprintln!("sft step {n:>4}/{total} epoch {} loss {:.4} grad-norm {:.3} ({pace})", st.epoch, st.loss, st.grad_norm);
        }
    }));
    let last_checkpoint = trainer.last_checkpoint();
    let pipeline = sft_pipeline(runtime_base(cfg, opts)?, Arc::new(examples), trainer);
    let summary = stage.run_recorded(cfg, opts, pipeline, start_step, sft_step_json)?;
    tracing::debug!(target: "srlm::train", "{}: {} steps in this run", stage.name, summary.steps.len());
    stage.runtime_ended(opts, &summary, &last_checkpoint)?;
    // The learner's count continues from the checkpoint's: the stage's whole count.
    Ok(summary.state.step)
}
