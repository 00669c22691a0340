//! The `kd` stage's teacher and its logit modes: forward KL on the training problems' worked
//! solutions (`logits`), or reverse KL on the student's own samples (`on_policy`).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use srlm_actors::StepStats;

use super::sft::sft_examples;
use super::{generation, say, RunOptions, StageRun, State};
use crate::checkpoint::{self, CheckpointContents, TrainerState};
use crate::learner::kd::check_shared_tokenizer;
use crate::learner::logit_kd::{distill_forward, distill_on_policy, DistillConfig, DistillStats, DistillStep};
use crate::learner::sft::{fit_length, Overlong};
use crate::model::load::ModelSource;
use crate::model::{LoadedModel, Qwen2};
use crate::optim::{AdamW, AdamWConfig, Decay, Schedule};
use crate::tokenizer::Tokenizer;
use crate::train::config::{KdMode, KdSection, TrainConfig};
use crate::train::heldout::TrainingProblem;
use crate::train::snapshot::snapshot;

/// Fails unless the teacher at `spec` tokenises as the student does; reads only its tokenizer,
/// so a mismatch is found before any model is loaded or trained.
pub(super) fn check_teacher_tokenizer(spec: &str, student: &Tokenizer) -> Result<()> {
    let context = || format!("kd.teacher '{spec}'");
    let teacher = match ModelSource::resolve(spec).with_context(context)? {
        ModelSource::HfDir(dir) => Tokenizer::from_hf_dir(&dir),
        ModelSource::Gguf(path) => Tokenizer::from_gguf_file(&path),
    }
    .with_context(context)?;
    check_shared_tokenizer(&teacher, student).with_context(context)
}

/// The teacher in the student's dtype and device, its tokenizer checked against the student's.
pub(super) fn load_teacher(kd: &KdSection, state: &State) -> Result<LoadedModel> {
    let teacher =
        LoadedModel::load(&kd.teacher, &state.device, state.weights_dtype()).with_context(|| format!("kd.teacher '{}'", kd.teacher))?;
    check_shared_tokenizer(&teacher.tokenizer, &state.tokenizer).with_context(|| format!("kd.teacher '{}'", kd.teacher))?;
    Ok(teacher)
}

/// Runs `kd.steps` steps of the configured logit mode (`logits` or `on_policy`) on the student's weights.
/// A stop checkpoints at the step boundary; a resumed stage continues at the checkpoint's step.
pub(super) fn logit_kd_stage(
    cfg: &TrainConfig,
    state: &mut State,
    train: &[TrainingProblem],
    opts: &RunOptions,
    stage: &StageRun,
) -> Result<u64> {
    let kd = cfg.kd.as_ref().expect("validated: kd stage has a [kd] section");
    let teacher = load_teacher(kd, state)?;
    let teacher_model = teacher.model()?;
    let (trainable, vars) = state.weights.to_vars()?;
    let student = Qwen2::new(&state.config, &trainable)?;
    let schedule = Schedule { decay: Decay::Constant, warmup_steps: 0, total_steps: kd.steps() };
    let mut opt = AdamW::new(vars.clone(), AdamWConfig { lr: kd.lr(), max_grad_norm: Some(1.0), schedule, ..AdamWConfig::default() })?;
    if let Some(dir) = stage.resume {
        checkpoint::load(dir, &state.config)?.restore(&mut opt)?;
    }
    let distill = DistillConfig {
        steps: kd.steps(),
        per_step: kd.prompts_per_step(),
        samples: kd.samples,
        temperature: kd.temperature(),
        chunk_rows: crate::model::logprobs::DEFAULT_CHUNK_ROWS,
        pad_id: state.tokenizer.pad_token_id().unwrap_or(0),
    };
    let problems = &train[..kd.prompts.min(train.len())];
    let (config, tokenizer) = (state.config.clone(), Arc::clone(&state.tokenizer));
    // A checkpoint after the step just taken: the stage continues from it exactly.
    let save = |opt: &AdamW| -> Result<std::path::PathBuf> {
        let state = TrainerState {
            step: opt.step_count(),
            skipped_steps: opt.skipped_count(),
            policy_version: opt.step_count(),
            run_id: stage.stamp.run_id.clone(),
            ..Default::default()
        };
        let weights = snapshot(&vars)?;
        let extra = [stage.stamp.extra_file()];
        let contents = CheckpointContents {
            config: &config,
            weights: Some(&weights),
            tokenizer: Some(&tokenizer),
            optimizer: opt,
            state: &state,
            extra: &extra,
        };
        Ok(checkpoint::save(&stage.checkpoints, &contents, cfg.runtime.keep_checkpoints)?)
    };
    let every = cfg.runtime.pipeline.checkpoint_every as usize;
    let mut since = Instant::now();
    let log_step = |s: &DistillStep, opt: &AdamW| -> Result<()> {
        let stats = StepStats { loss: s.kl, kl: Some(s.kl), grad_norm: Some(s.grad_norm), learning_rate: opt.lr(), ..StepStats::default() };
        srlm_actors::metrics::record_update(&stats, since.elapsed(), opt.step_count());
        since = Instant::now();
        let note = if s.skipped { " (non-finite: skipped)" } else { "" };
        say(
            opts,
            &format!(
                "kd step {:>4}/{} mean KL {:.4} over {} tokens, grad-norm {:.3}{note}",
                s.step, distill.steps, s.kl, s.tokens, s.grad_norm
            ),
        );
        if opts.shutdown.is_requested() {
            return Err(stage.stopped(save(opt)?));
        }
        if every > 0 && s.step.is_multiple_of(every) {
            save(opt)?;
        }
        Ok(())
    };
    let stats: DistillStats = if kd.mode == KdMode::OnPolicy {
        let prompts = problems.iter().map(|p| state.tokenizer.encode(&p.prompt, false)).collect::<Result<Vec<_>, _>>()?;
        let max_new_tokens = kd.max_new_tokens.unwrap_or(cfg.grpo.max_new_tokens());
        let gen = generation(cfg, &state.tokenizer, cfg.grpo.algo.temperature, cfg.grpo.top_p, max_new_tokens);
        say(opts, &format!("kd (on_policy): {} prompts, {} per step × {} samples of up to {max_new_tokens} tokens, reverse KL at temperature {}, lr {}", prompts.len(), distill.per_step, distill.samples, distill.temperature, kd.lr()));
        distill_on_policy(&student, &teacher_model, &*state.tokenizer, &prompts, &gen, &distill, &mut opt, log_step)?
    } else {
        let fitted = fit_length(sft_examples(problems, &state.tokenizer)?, cfg.sft.max_len, Overlong::Drop);
        if fitted.examples.is_empty() {
            bail!("kd.mode `logits` distills on the training problems' worked solutions, and none of the first {} has one within sft.max_len {}", problems.len(), cfg.sft.max_len);
        }
        say(
            opts,
            &format!(
                "kd (logits): {} worked solutions ({} over sft.max_len dropped), {} per step, forward KL at temperature {}, lr {}",
                fitted.examples.len(),
                fitted.dropped,
                distill.per_step,
                distill.temperature,
                kd.lr()
            ),
        );
        distill_forward(&student, &teacher_model, &fitted.examples, &distill, &mut opt, log_step)?
    };
    say(
        opts,
        &format!(
            "kd: {} steps in this run, mean KL {:.4} (first {:.4}, last {:.4}), {} skipped as non-finite",
            stats.steps, stats.mean_kl, stats.first_kl, stats.last_kl, stats.skipped
        ),
    );
    state.weights = snapshot(&vars)?;
    // The optimizer's counts continue from a checkpoint's: the stage's whole count.
    Ok(opt.step_count() + opt.skipped_count())
}
