//! SFT: (prompt, completion) token pairs → token-budget batches → NLL of completion tokens → accumulated step.
//!
//! The same loop trains all weights or only LoRA adapters: it steps whatever parameters the
//! optimizer holds, and a LoRA model's base weights are plain tensors that never receive a
//! gradient. Every epoch's batches follow from the seed, so the run's length is known up front
//! (the learning-rate schedule needs it) and the count of examples trained resumes it exactly.

use candle_core::{DType, Device, Result, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use srlm_actors::RunState;

use super::lanes::Lanes;
use super::objective::{optimizer_step, Objective};
use super::AlgoError;
use crate::model::{token_logprobs, CausalLm, TokenBatch};
use crate::optim::AdamW;

/// One training example in token ids; the loss covers `completion` only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SftExample {
    pub prompt: Vec<u32>,
    pub completion: Vec<u32>,
}

impl SftExample {
    pub fn len(&self) -> usize {
        self.prompt.len() + self.completion.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What to do with an example longer than the maximum length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlong {
    /// Keep its first `max_len` tokens (dropped if no completion token is left).
    Truncate,
    Drop,
}

#[derive(Debug, Clone)]
pub struct SftConfig {
    pub epochs: usize,
    /// Maximum prompt + completion tokens.
    pub max_len: usize,
    pub overlong: Overlong,
    /// Padded tokens (rows × longest row) per micro-batch; a longer example goes alone.
    pub token_budget: usize,
    /// Micro-batches whose gradients make one optimiser step.
    pub grad_accum: usize,
    pub seed: u64,
    pub pad_id: u32,
    /// Rows of the output projection computed at once (see `token_logprobs`).
    pub chunk_rows: usize,
    /// Micro-batches computed at once, one thread each (see `GrpoConfig::lanes`).
    pub lanes: usize,
}

/// Examples cut to the maximum length, with what it cost.
#[derive(Debug, Clone, Default)]
pub struct Fitted {
    pub examples: Vec<SftExample>,
    pub truncated: usize,
    pub dropped: usize,
}

/// Applies `max_len` and `overlong`; examples without completion tokens are dropped too.
pub fn fit_length(examples: Vec<SftExample>, max_len: usize, overlong: Overlong) -> Fitted {
    let mut out = Fitted::default();
    for mut ex in examples {
        if ex.len() > max_len {
            if overlong == Overlong::Drop || ex.prompt.len() >= max_len {
                out.dropped += 1;
                continue;
            }
            ex.completion.truncate(max_len - ex.prompt.len());
            out.truncated += 1;
        }
        if ex.completion.is_empty() || ex.len() < 2 {
            out.dropped += 1;
            continue;
        }
        out.examples.push(ex);
    }
    out
}

/// Micro-batches of example indices: sorted by length so rows of one batch pad little, filled
/// while rows × longest ≤ `token_budget`, then shuffled by `seed` and `epoch`.
pub fn plan_batches(lengths: &[usize], token_budget: usize, seed: u64, epoch: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| (lengths[i], i));
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for i in order {
        // Sorted ascending, so the newcomer is the longest row.
        if !current.is_empty() && (current.len() + 1) * lengths[i] > token_budget {
            batches.push(std::mem::take(&mut current));
        }
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    batches.shuffle(&mut rng);
    batches
}

/// A padded batch and which predictions the loss counts.
pub struct SftBatch {
    pub tokens: TokenBatch,
    /// (b, t - 1) f32: 1 where the target token is a completion token.
    pub loss_mask: Tensor,
    /// Completion tokens in the batch.
    pub targets: usize,
}

pub fn collate(examples: &[&SftExample], pad_id: u32, device: &Device) -> Result<SftBatch> {
    let seqs: Vec<Vec<u32>> = examples.iter().map(|e| [e.prompt.as_slice(), &e.completion].concat()).collect();
    let tokens = TokenBatch::right_padded(&seqs, pad_id, device)?;
    let t = tokens.ids.dim(1)?;
    let mut mask = Vec::with_capacity(examples.len() * (t - 1));
    for e in examples {
        // Prediction j targets token j + 1.
        mask.extend((1..t).map(|pos| if pos >= e.prompt.len() && pos < e.len() { 1f32 } else { 0.0 }));
    }
    let targets = examples.iter().map(|e| e.completion.len()).sum();
    // Prompt and padding predictions never enter the loss: skip their output projection.
    let tokens = tokens.scoring_only(&mask);
    Ok(SftBatch { loss_mask: Tensor::from_vec(mask, (examples.len(), t - 1), device)?, tokens, targets })
}

/// Summed negative log-likelihood of the completion tokens (scalar, differentiable).
pub fn completion_nll(model: &dyn CausalLm, batch: &SftBatch, chunk_rows: usize) -> Result<Tensor> {
    let lp = token_logprobs(model, &batch.tokens, 1.0, false, chunk_rows)?.logprobs;
    (lp * batch.loss_mask.to_dtype(DType::F32)?)?.sum_all()?.neg()
}

/// Mean NLL per completion token over `examples`, no gradients kept.
pub fn mean_loss(model: &dyn CausalLm, examples: &[SftExample], cfg: &SftConfig) -> Result<f64> {
    let lengths: Vec<usize> = examples.iter().map(SftExample::len).collect();
    let (mut nll, mut tokens) = (0f64, 0usize);
    for idx in plan_batches(&lengths, cfg.token_budget, cfg.seed, 0) {
        let rows: Vec<&SftExample> = idx.iter().map(|&i| &examples[i]).collect();
        let batch = collate(&rows, cfg.pad_id, model.device())?;
        nll += completion_nll(model, &batch, cfg.chunk_rows)?.detach().to_dtype(DType::F64)?.to_scalar::<f64>()?;
        tokens += batch.targets;
    }
    Ok(nll / tokens.max(1) as f64)
}

/// The whole run's batches, fixed by the examples, epochs, token budget, accumulation and seed:
/// steps in order, each `grad_accum` micro-batches of one epoch's plan (an epoch's last step may
/// have fewer). The learning-rate schedule needs its length up front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SftPlan {
    steps: Vec<PlannedStep>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedStep {
    pub epoch: usize,
    /// Example indices of each micro-batch.
    pub micro_batches: Vec<Vec<usize>>,
}

impl PlannedStep {
    pub fn examples(&self) -> usize {
        self.micro_batches.iter().map(Vec::len).sum()
    }
}

impl SftPlan {
    pub fn new(examples: &[SftExample], cfg: &SftConfig) -> Self {
        let lengths: Vec<usize> = examples.iter().map(SftExample::len).collect();
        let steps = (0..cfg.epochs)
            .flat_map(|epoch| {
                let batches = plan_batches(&lengths, cfg.token_budget, cfg.seed, epoch);
                batches.chunks(cfg.grad_accum.max(1)).map(|c| PlannedStep { epoch, micro_batches: c.to_vec() }).collect::<Vec<_>>()
            })
            .collect();
        Self { steps }
    }

    pub fn steps(&self) -> &[PlannedStep] {
        &self.steps
    }

    /// Example indices in the order the run trains them: position `p` of this order is the
    /// `p`-th example handed to the learner (the run state's data cursor counts positions).
    pub fn example_order(&self) -> Vec<usize> {
        self.steps.iter().flat_map(|s| s.micro_batches.iter().flatten().copied()).collect()
    }

    /// Examples each step trains.
    pub fn step_sizes(&self) -> Vec<usize> {
        self.steps.iter().map(PlannedStep::examples).collect()
    }

    /// Positions the steps before `step` take.
    pub fn examples_before(&self, step: usize) -> u64 {
        self.steps.iter().take(step).map(|s| s.examples() as u64).sum()
    }

    /// The step a run continues at from `state`, which must be a step boundary of this plan.
    pub fn resume_step(&self, state: &RunState) -> std::result::Result<usize, AlgoError> {
        let step = state.step as usize;
        let bad = |reason: String| AlgoError::BadConfig { field: "cursor".into(), reason };
        if step > self.steps.len() {
            return Err(bad(format!("step {step} is past the plan's {} steps", self.steps.len())));
        }
        if !state.pending.is_empty() || state.cursor != self.examples_before(step) {
            return Err(bad(format!(
                "example {} (with {} pending) is not where step {step} starts (example {}): resume with `srlm train`",
                state.cursor,
                state.pending.len(),
                self.examples_before(step)
            )));
        }
        Ok(step)
    }
}

/// Optimiser steps in one epoch: every epoch plans the same batches, in another order.
pub fn steps_per_epoch(examples: &[SftExample], cfg: &SftConfig) -> usize {
    let lengths: Vec<usize> = examples.iter().map(SftExample::len).collect();
    plan_batches(&lengths, cfg.token_budget, cfg.seed, 0).len().div_ceil(cfg.grad_accum.max(1))
}

/// Optimiser steps of the whole run (the schedule's length).
pub fn total_steps(examples: &[SftExample], cfg: &SftConfig) -> usize {
    cfg.epochs * steps_per_epoch(examples, cfg)
}

#[derive(Debug, Clone, PartialEq)]
pub struct SftStepStats {
    /// Steps taken before this one, skipped ones included.
    pub step: usize,
    pub epoch: usize,
    /// Mean NLL per completion token over the step's micro-batches.
    pub loss: f64,
    pub tokens: usize,
    pub grad_norm: f64,
    pub lr: f64,
    /// True when the loss or gradient was not finite and the update was skipped.
    pub skipped: bool,
    /// Examples trained with this step, from the run's start: where the data continues.
    pub next_cursor: u64,
}

#[derive(Debug, Clone, Default)]
pub struct SftReport {
    /// Steps this call took.
    pub steps: usize,
    pub skipped_steps: usize,
    pub tokens: usize,
    pub last_loss: f64,
}

/// Trains `model` on `examples` (already fitted to the maximum length) from step `start` of
/// their plan to its end, in this thread, stepping the parameters `opt` holds; `on_step` runs
/// after every step (logging, checkpoints) and can stop the run with an error. `srlm train`
/// runs the same steps through the runtime (`SftTrainer`).
pub fn train_sft<E: From<AlgoError>>(
    model: &dyn CausalLm,
    opt: &mut AdamW,
    examples: &[SftExample],
    cfg: &SftConfig,
    start: usize,
    mut on_step: impl FnMut(&SftStepStats, &AdamW) -> std::result::Result<(), E>,
) -> std::result::Result<SftReport, E> {
    let plan = SftPlan::new(examples, cfg);
    if start > plan.steps().len() {
        let reason = format!("step {start} is past the plan's {} steps", plan.steps().len());
        return Err(AlgoError::BadConfig { field: "cursor".into(), reason }.into());
    }
    let mut report = SftReport::default();
    for (k, planned) in plan.steps().iter().enumerate().skip(start) {
        let micro: Vec<Vec<&SftExample>> = planned.micro_batches.iter().map(|idx| idx.iter().map(|&i| &examples[i]).collect()).collect();
        let update = sft_update(model, opt, &micro, cfg)?;
        let stats = update.stats(k, planned.epoch, plan.examples_before(k + 1));
        report.steps += 1;
        report.tokens += stats.tokens;
        if stats.skipped {
            report.skipped_steps += 1;
        } else {
            report.last_loss = stats.loss;
        }
        on_step(&stats, opt)?;
    }
    Ok(report)
}

/// What one SFT optimiser step did.
#[derive(Debug, Clone, PartialEq)]
pub struct SftUpdate {
    pub loss: f64,
    pub tokens: usize,
    pub grad_norm: f64,
    pub lr: f64,
    pub applied: bool,
}

impl SftUpdate {
    pub fn stats(&self, step: usize, epoch: usize, next_cursor: u64) -> SftStepStats {
        SftStepStats {
            step,
            epoch,
            loss: self.loss,
            tokens: self.tokens,
            grad_norm: self.grad_norm,
            lr: self.lr,
            skipped: !self.applied,
            next_cursor,
        }
    }
}

/// One optimiser step over the micro-batches `micro`. The loss is normalised by the step's
/// total completion tokens, so accumulation equals one big batch; the optimizer clips.
pub fn sft_update(
    model: &dyn CausalLm,
    opt: &mut AdamW,
    micro: &[Vec<&SftExample>],
    cfg: &SftConfig,
) -> std::result::Result<SftUpdate, AlgoError> {
    let tokens: usize = micro.iter().flatten().map(|e| e.completion.len()).sum();
    let batches = micro.iter().map(|rows| collate(rows, cfg.pad_id, model.device())).collect::<std::result::Result<Vec<_>, _>>()?;
    let objective = CompletionNll { tokens, chunk_rows: cfg.chunk_rows };
    let update = optimizer_step(&objective, model, opt, &batches, &Lanes::new(cfg.lanes)?)?;
    let loss = update.parts.iter().sum::<f64>() / tokens.max(1) as f64;
    Ok(SftUpdate { loss, tokens, grad_norm: update.grad_norm, lr: update.lr, applied: update.applied })
}

/// SFT's loss: the completion tokens' NLL, summed over a micro-batch and divided by the
/// step's completion tokens (so accumulation equals one big batch).
struct CompletionNll {
    tokens: usize,
    chunk_rows: usize,
}

impl Objective for CompletionNll {
    type MicroBatch = SftBatch;
    /// The micro-batch's NLL sum.
    type Stats = f64;

    fn loss(&self, model: &dyn CausalLm, batch: &SftBatch) -> std::result::Result<(Tensor, f64), AlgoError> {
        let nll = completion_nll(model, batch, self.chunk_rows)?;
        let value = nll.detach().to_dtype(DType::F64)?.to_scalar::<f64>()?;
        Ok(((nll / self.tokens as f64)?, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(p: usize, c: usize) -> SftExample {
        SftExample { prompt: vec![1; p], completion: vec![2; c] }
    }

    #[test]
    fn overlong_examples_are_truncated_or_dropped_and_counted() {
        let data = vec![ex(3, 4), ex(3, 10), ex(9, 5), ex(2, 0)];
        let t = fit_length(data.clone(), 8, Overlong::Truncate);
        assert_eq!((t.truncated, t.dropped), (1, 2));
        assert_eq!(t.examples, vec![ex(3, 4), ex(3, 5)]);
        let d = fit_length(data, 8, Overlong::Drop);
        assert_eq!((d.truncated, d.dropped), (0, 3));
        assert_eq!(d.examples, vec![ex(3, 4)]);
    }

    #[test]
    fn batches_respect_the_padded_token_budget_and_cover_every_example_once() {
        let lengths = [5, 30, 7, 8, 100, 6, 29, 31];
        let batches = plan_batches(&lengths, 64, 3, 0);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
        for b in &batches {
            let longest = b.iter().map(|&i| lengths[i]).max().unwrap();
            assert!(b.len() == 1 || b.len() * longest <= 64, "{b:?}");
        }
        // The short ones share a batch: 4 × 8 = 32 ≤ 64.
        assert!(
            batches.iter().any(|b| {
                let mut b = b.clone();
                b.sort();
                b == vec![0, 2, 3, 5]
            }),
            "{batches:?}"
        );
        let mut other = plan_batches(&lengths, 64, 3, 1);
        let mut this = batches.clone();
        this.sort();
        other.sort();
        assert_eq!(this, other, "epochs reorder batches, they do not regroup them");
    }

    #[test]
    fn loss_mask_covers_exactly_the_completion_targets() {
        let a = SftExample { prompt: vec![5, 6, 7], completion: vec![8, 9] };
        let b = SftExample { prompt: vec![5], completion: vec![8] };
        let batch = collate(&[&a, &b], 0, &Device::Cpu).unwrap();
        let mask = batch.loss_mask.to_vec2::<f32>().unwrap();
        // Predictions target positions 1..5: a's completion sits at 3 and 4, b's at 1.
        assert_eq!(mask, vec![vec![0., 0., 1., 1.], vec![1., 0., 0., 0.]]);
        assert_eq!(batch.targets, 3);
    }
}
