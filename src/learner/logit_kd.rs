//! Logit distillation as a loop of `kd_step`s: forward KL(teacher ‖ student) on given
//! sequences, or on-policy distillation (each step the student samples, then reverse
//! KL(student ‖ teacher) on those samples).

use super::kd::{kd_step, on_policy_batch, KdConfig, KlDirection};
use super::sft::{collate, SftBatch, SftExample};
use super::AlgoError;
use crate::generate::{GenerationConfig, TextDecoder};
use crate::model::CausalLm;
use crate::optim::AdamW;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DistillConfig {
    /// Optimizer steps.
    pub steps: usize,
    /// Prompts (on-policy) or sequences (forward KL) per step, taken in order and cycled.
    pub per_step: usize,
    /// Student completions per prompt (on-policy only).
    pub samples: usize,
    /// Logits are divided by it before the KL.
    pub temperature: f64,
    pub chunk_rows: usize,
    pub pad_id: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DistillStep {
    /// Counted from 1.
    pub step: usize,
    /// Mean KL per completion token, before this step's update.
    pub kl: f64,
    pub grad_norm: f64,
    /// Completion tokens the KL was taken over.
    pub tokens: usize,
    /// The loss or gradient was not finite: no update was applied.
    pub skipped: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DistillStats {
    pub steps: usize,
    pub skipped: usize,
    /// KL of the first and the last applied step, and the mean over applied steps (NaN with none).
    pub first_kl: f64,
    pub last_kl: f64,
    pub mean_kl: f64,
    pub tokens: usize,
    kl_sum: f64,
}

impl DistillStats {
    /// Counts one more step.
    pub fn record(&mut self, s: &DistillStep) {
        self.steps += 1;
        self.tokens += s.tokens;
        if s.skipped {
            self.skipped += 1;
        } else {
            let applied = self.steps - self.skipped;
            if applied == 1 {
                self.first_kl = s.kl;
            }
            self.last_kl = s.kl;
            self.kl_sum += s.kl;
        }
        let applied = self.steps - self.skipped;
        self.mean_kl = if applied == 0 { f64::NAN } else { self.kl_sum / applied as f64 };
    }
}

/// On-policy distillation: each step the student samples `samples` completions of the next
/// `per_step` prompts (through the shared sampler, fresh RNG streams every step), then one
/// reverse-KL step towards the teacher on them. `on_step` runs after every step. A restored
/// optimizer continues at its step.
#[allow(clippy::too_many_arguments)]
pub fn distill_on_policy<E: From<AlgoError>>(
    student: &dyn CausalLm,
    teacher: &dyn CausalLm,
    decoder: &dyn TextDecoder,
    prompts: &[Vec<u32>],
    gen: &GenerationConfig,
    cfg: &DistillConfig,
    opt: &mut AdamW,
    on_step: impl FnMut(&DistillStep, &AdamW) -> Result<(), E>,
) -> Result<DistillStats, E> {
    check(cfg, prompts.len(), "prompts")?;
    if cfg.samples == 0 {
        return Err(bad("samples", "on-policy distillation needs at least one sample per prompt".into()).into());
    }
    run(student, teacher, cfg, KlDirection::Reverse, opt, on_step, |step| {
        let first = step * cfg.per_step;
        let batch: Vec<Vec<u32>> = cycled(prompts, first, cfg.per_step).cloned().collect();
        on_policy_batch(student, decoder, &batch, cfg.samples, (first * cfg.samples) as u64, gen, cfg.pad_id)
    })
}

/// Forward-KL distillation on fixed sequences: each step takes the next `per_step` of
/// `sequences` and matches the teacher's distribution on their completion tokens.
pub fn distill_forward<E: From<AlgoError>>(
    student: &dyn CausalLm,
    teacher: &dyn CausalLm,
    sequences: &[SftExample],
    cfg: &DistillConfig,
    opt: &mut AdamW,
    on_step: impl FnMut(&DistillStep, &AdamW) -> Result<(), E>,
) -> Result<DistillStats, E> {
    check(cfg, sequences.len(), "sequences")?;
    run(student, teacher, cfg, KlDirection::Forward, opt, on_step, |step| {
        let rows: Vec<&SftExample> = cycled(sequences, step * cfg.per_step, cfg.per_step).collect();
        collate(&rows, cfg.pad_id, student.device())
    })
}

fn run<E: From<AlgoError>>(
    student: &dyn CausalLm,
    teacher: &dyn CausalLm,
    cfg: &DistillConfig,
    direction: KlDirection,
    opt: &mut AdamW,
    mut on_step: impl FnMut(&DistillStep, &AdamW) -> Result<(), E>,
    mut batch_for: impl FnMut(usize) -> candle_core::Result<SftBatch>,
) -> Result<DistillStats, E> {
    let kd = KdConfig { temperature: cfg.temperature, direction, chunk_rows: cfg.chunk_rows };
    let mut stats = DistillStats { mean_kl: f64::NAN, ..DistillStats::default() };
    // One optimizer update (or skip) per step: a restored optimizer says where a resumed run is.
    let first = (opt.step_count() + opt.skipped_count()) as usize;
    for step in first..cfg.steps {
        let batch = batch_for(step).map_err(AlgoError::from)?;
        let s = kd_step(student, teacher, opt, &batch, &kd).map_err(AlgoError::from)?;
        let step = DistillStep { step: step + 1, kl: s.loss, grad_norm: s.grad_norm, tokens: batch.targets, skipped: s.skipped };
        stats.record(&step);
        on_step(&step, opt)?;
    }
    Ok(stats)
}

/// `n` items from index `first` on, wrapping around `items`.
fn cycled<T>(items: &[T], first: usize, n: usize) -> impl Iterator<Item = &T> {
    (first..first + n).map(move |i| &items[i % items.len()])
}

fn check(cfg: &DistillConfig, available: usize, what: &str) -> Result<(), AlgoError> {
    if available == 0 {
        return Err(bad(what, "nothing to distill on".into()));
    }
    if cfg.per_step == 0 {
        return Err(bad("per_step", "must be at least 1".into()));
    }
    if !(cfg.temperature > 0.0 && cfg.temperature.is_finite()) {
        return Err(bad("temperature", format!("{} is not a positive number", cfg.temperature)));
    }
    Ok(())
}

fn bad(field: &str, reason: String) -> AlgoError {
    AlgoError::BadConfig { field: field.into(), reason }
}
