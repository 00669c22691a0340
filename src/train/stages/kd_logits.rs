//! The `kd` stage's teacher and its logit modes on the runtime: forward KL on the training
//! problems' worked solutions (`logits`), or reverse KL on the student's own samples (`on_policy`).

use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use srlm_actors::poison::lock;
use srlm_actors::{Factory, Pipeline, Prompt, RuntimeConfig, StepSizes};

use super::sft::sft_examples;
use super::{generation, runtime_base, say, sft_step_json, RunOptions, StageRun, State};
use crate::generate::policy_sampler::PolicySampler;
use crate::learner::example_source::{example_pipeline, Unscored};
use crate::learner::kd::{check_shared_tokenizer, KdConfig, KlDirection};
use crate::learner::kd_trainer::{publish_nothing, publish_snapshot, KdTrainer};
use crate::learner::logit_kd::{DistillStats, DistillStep};
use crate::learner::sft::{fit_length, Overlong};
use crate::model::load::ModelSource;
use crate::model::{LoadedModel, Qwen2};
use crate::optim::{AdamW, AdamWConfig, Decay, Schedule};
use crate::tokenizer::Tokenizer;
use crate::train::config::{KdMode, KdSection, TrainConfig};
use crate::train::heldout::TrainingProblem;
use crate::train::placement::Placement;
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

/// Runs `kd.steps` steps of the configured logit mode (`logits` or `on_policy`) on the student's
/// weights, on the runtime: the data source (fixed solutions) or the generator (the student's
/// samples) feeds the learner actor, which steps towards the teacher. A stop checkpoints; a
/// resumed stage continues at the checkpoint's step.
pub(super) fn logit_kd_stage(
    cfg: &TrainConfig,
    state: &mut State,
    train: &[TrainingProblem],
    opts: &RunOptions,
    stage: &StageRun,
) -> Result<u64> {
    let kd = cfg.kd.as_ref().expect("validated: kd stage has a [kd] section");
    let teacher = load_teacher(kd, state)?.model()?;
    let (trainable, vars) = state.weights.to_vars()?;
    let student = Qwen2::new(&state.config, &trainable)?;
    let schedule = Schedule { decay: Decay::Constant, warmup_steps: 0, total_steps: kd.steps() };
    let opt = AdamW::new(vars.clone(), AdamWConfig { lr: kd.lr(), max_grad_norm: Some(1.0), schedule, ..AdamWConfig::default() })?;
    // Validated with the config: at least one step, prompt per step and sample; a positive temperature.
    let (steps, per_step, temperature) = (kd.steps(), kd.prompts_per_step(), kd.temperature());
    let direction = if kd.mode == KdMode::OnPolicy { KlDirection::Reverse } else { KlDirection::Forward };
    let kl = KdConfig { temperature, direction, chunk_rows: crate::model::logprobs::DEFAULT_CHUNK_ROWS };
    let pad_id = state.tokenizer.pad_token_id().unwrap_or(0);
    let checkpoints = stage.checkpoint_place(cfg, state)?;
    let problems = &train[..kd.prompts.min(train.len())];
    let totals = Arc::new(Mutex::new(DistillStats::default()));
    let log = {
        let (totals, progress) = (Arc::clone(&totals), opts.progress);
        move |s: &DistillStep| {
            lock(&totals).record(s);
            let note = if s.skipped { " (non-finite: skipped)" } else { "" };
            let line =
                format!("kd step {:>4}/{steps} mean KL {:.4} over {} tokens, grad-norm {:.3}{note}", s.step, s.kl, s.tokens, s.grad_norm);
            if progress {
                eprintln!("{line}");
            }
            tracing::info!("{line}");
        }
    };
    // Position p of the run is problem (or solution) p mod n: both modes cycle through theirs.
    let positions = steps * per_step;
    let base = runtime_base(cfg, opts)?;
    let (summary, last_checkpoint) = if kd.mode == KdMode::OnPolicy {
        anyhow::ensure!(!problems.is_empty(), "kd: no training problem to sample on");
        // kd.sample_temperature is refused in this mode: the student samples as GRPO would.
        let (sample_temperature, max_new_tokens) = kd.sampling(&cfg.grpo);
        let gen = generation(cfg, &state.tokenizer, sample_temperature, cfg.grpo.top_p, max_new_tokens);
        say(opts, &format!("kd (on_policy): {} prompts, {per_step} per step × {} samples of up to {max_new_tokens} tokens, reverse KL at temperature {temperature}, lr {}", problems.len(), kd.samples, kd.lr()));
        let mut trainer = KdTrainer::new(student, vars.clone(), teacher, opt, kl, pad_id, per_step, publish_snapshot, checkpoints);
        if let Some(dir) = stage.resume {
            trainer.resume_from(dir)?;
        }
        trainer.on_step = Some(Box::new(log));
        let (last_checkpoint, start_step) = (trainer.last_checkpoint(), trainer.start_step());
        let prompts: Vec<Prompt> = (0..positions as u64)
            .map(|id| {
                let p = &problems[id as usize % problems.len()];
                Prompt { id, text: p.prompt.clone(), reference: p.gold.clone() }
            })
            .collect();
        // One generator, on the first of `[runtime] generator_devices` if any (as GRPO's first).
        let r = &cfg.runtime;
        let devices = &r.generator_devices[..r.generator_devices.len().min(1)];
        let placement = Placement::new(&cfg.model.device, devices, 1, r.generator_dtype.as_deref()).map_err(anyhow::Error::msg)?;
        // Lockstep (max_staleness 0): each step distills on samples of the weights it updates.
        let runtime = RuntimeConfig {
            group_size: kd.samples,
            batch_groups: per_step,
            max_staleness: 0,
            generators: 1,
            scorers: 1,
            dynamic_sampling: false,
            generator_devices: placement.generator_slots.clone(),
            ..base
        };
        let (model_cfg, tok) = (state.config.clone(), Arc::clone(&state.tokenizer));
        let samplers: Factory<PolicySampler> = Arc::new(move |_, _| PolicySampler::new(model_cfg.clone(), Arc::clone(&tok), gen.clone()));
        let scorers: Factory<Unscored> = Arc::new(|_, _| Unscored);
        let mut pipeline = Pipeline::new(runtime, Arc::new(prompts), samplers, scorers, trainer);
        if placement.has_foreign_generators() {
            pipeline.copy_to_device = Some(placement.copy_hook());
        }
        (stage.run_recorded(cfg, opts, pipeline, start_step, sft_step_json)?, last_checkpoint)
    } else {
        let fitted = fit_length(sft_examples(problems, &state.tokenizer)?, cfg.sft.max_len, Overlong::Drop);
        if fitted.examples.is_empty() {
            bail!("kd.mode `logits` distills on the training problems' worked solutions, and none of the first {} has one within sft.max_len {}", problems.len(), cfg.sft.max_len);
        }
        say(
            opts,
            &format!(
                "kd (logits): {} worked solutions ({} over sft.max_len dropped), {per_step} per step, forward KL at temperature {temperature}, lr {}",
                fitted.examples.len(),
                fitted.dropped,
                kd.lr()
            ),
        );
        let mut trainer = KdTrainer::new(student, vars.clone(), teacher, opt, kl, pad_id, per_step, publish_nothing, checkpoints);
        if let Some(dir) = stage.resume {
            trainer.resume_from(dir)?;
        }
        trainer.on_step = Some(Box::new(log));
        let (last_checkpoint, start_step) = (trainer.last_checkpoint(), trainer.start_step());
        let order: Vec<usize> = (0..positions).map(|p| p % fitted.examples.len()).collect();
        let pipeline = example_pipeline(base, Arc::new(fitted.examples), order, StepSizes::Fixed(per_step), trainer);
        (stage.run_recorded(cfg, opts, pipeline, start_step, sft_step_json)?, last_checkpoint)
    };
    let stats = lock(&totals).clone();
    say(
        opts,
        &format!(
            "kd: {} steps in this run, mean KL {:.4} (first {:.4}, last {:.4}), {} skipped as non-finite",
            stats.steps, stats.mean_kl, stats.first_kl, stats.last_kl, stats.skipped
        ),
    );
    stage.runtime_ended(opts, &summary, &last_checkpoint)?;
    state.weights = snapshot(&vars)?;
    // The learner's count continues from the checkpoint's: the stage's whole count.
    Ok(summary.state.step)
}
