//! The sft stage (and trace KD, which is SFT on the teacher's solutions): the training
//! problems' worked solutions or `[sft] data` as (prompt, completion) tokens, then full or LoRA
//! fine-tuning with periodic checkpoints and a checkpoint on a stop.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use srlm_actors::StepStats;

use super::{say, RunOptions, StageRun, State};
use crate::learner::sft::{fit_length, total_steps, train_sft, SftConfig, SftCursor, SftExample, SftStepStats};
use crate::learner::sft_checkpoint::{plan_fingerprint, SftCheckpoints, SftParams};
use crate::learner::sft_data::{read_conversations, tokenize_conversation};
use crate::model::{CausalLm, LoraAdapters, Qwen2};
use crate::optim::AdamW;
use crate::tokenizer::Tokenizer;
use crate::train::config::TrainConfig;
use crate::train::heldout::TrainingProblem;
use crate::train::resume_point::STAGE_STAMP;
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

/// Fine-tunes the model in `state` on `examples` with `[sft]`'s settings; `state` ends with the
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
    let opt_cfg = s.adamw(total_steps(&fitted.examples, &sft).max(1));
    let checkpoints = |params| -> Result<SftCheckpoints> {
        Ok(SftCheckpoints {
            root: stage.checkpoints.clone(),
            every: cfg.runtime.pipeline.checkpoint_every as usize,
            keep: cfg.runtime.keep_checkpoints,
            config: &state.config,
            tokenizer: Some(&state.tokenizer),
            params,
            plan: plan_fingerprint(&fitted.examples, &sft),
            run_id: stage.stamp.run_id.clone(),
            extra_json: vec![(STAGE_STAMP.into(), serde_json::to_value(&stage.stamp)?)],
        })
    };
    let run = |model: &dyn CausalLm, opt: &mut AdamW, ckpt: &SftCheckpoints| -> Result<u64> {
        let start = match stage.resume {
            Some(dir) => ckpt.resume(dir, opt)?,
            None => SftCursor::default(),
        };
        let mut since = Instant::now();
        let report = train_sft(model, opt, &fitted.examples, &sft, start, |st: &SftStepStats, opt: &AdamW| -> Result<()> {
            let stats = StepStats { loss: st.loss, grad_norm: Some(st.grad_norm), learning_rate: st.lr, ..StepStats::default() };
            srlm_actors::metrics::record_update(&stats, since.elapsed(), opt.step_count());
            since = Instant::now();
            if opts.progress && st.step.is_multiple_of(10) {
                eprintln!("sft step {:>4} epoch {} loss {:.4} grad-norm {:.3}", st.step, st.epoch, st.loss, st.grad_norm);
            }
            if opts.shutdown.is_requested() {
                return Err(stage.stopped(ckpt.save(opt, st.next)?));
            }
            ckpt.after_step(st, opt)?;
            Ok(())
        })?;
        tracing::debug!(target: "srlm::train", "sft: {} steps in this run", report.steps);
        // The optimizer's counts continue from a checkpoint's: the stage's whole count.
        Ok(opt.step_count() + opt.skipped_count())
    };
    match s.lora_config(cfg.seed) {
        None => {
            let (trainable, vars) = state.weights.to_vars()?;
            let model = Qwen2::new(&state.config, &trainable)?;
            let mut opt = AdamW::new(vars.clone(), opt_cfg)?;
            let steps = run(&model, &mut opt, &checkpoints(SftParams::Full(&vars))?)?;
            state.weights = snapshot(&vars)?;
            Ok(steps)
        }
        Some(lora) => {
            let adapters = LoraAdapters::init(&lora, &state.weights, &state.config)?;
            let model = Qwen2::with_lora(&state.config, &state.weights, &adapters, true)?;
            let mut opt = AdamW::new(adapters.vars(), opt_cfg)?;
            let params = SftParams::Lora { adapters: &adapters, base_model: &cfg.model.source };
            let steps = run(&model, &mut opt, &checkpoints(params)?)?;
            if s.save_adapter {
                let dir = cfg.out_dir.join(format!("stage-{}-{}-adapter", stage.index, stage.name));
                adapters.save_peft(&dir, &cfg.model.source, true)?;
                say(opts, &format!("sft: adapters written to {}", dir.display()));
            }
            state.weights = adapters.merged(&state.weights)?;
            Ok(steps)
        }
    }
}
