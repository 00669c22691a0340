//! Learner: one GRPO optimisation step on a scored batch through the real model.
//!
//! log-probs (chunked, never full logits) → ratio → clip → KL → loss → backward per
//! micro-batch → accumulate → clip grad norm → AdamW; repeated μ times over the same batch.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::grpo_loss::{grpo_loss, GrpoLossConfig, LossInputs, LossStats, LossType};
use super::lanes::Lanes;
use super::objective::{optimizer_step, Objective};
use super::AlgoError;
use crate::model::logprobs::DEFAULT_CHUNK_ROWS;
use crate::model::{token_logprobs, CausalLm, TokenBatch};
use crate::optim::AdamW;

/// One completion of a rollout group, scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredSequence {
    /// Prompt tokens, then completion tokens.
    pub tokens: Vec<u32>,
    pub prompt_len: usize,
    /// Log-prob of each completion token under the policy that generated it.
    pub behaviour_logprobs: Vec<f32>,
    pub advantage: f32,
    /// The completion hit the length limit without finishing.
    pub truncated: bool,
}

pub type ScoredBatch = [ScoredSequence];

/// Also keys of `srlm train`'s `[grpo]` section (flattened into it, which checks for unknown
/// keys), so these defaults are the documented ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GrpoConfig {
    #[serde(flatten)]
    pub loss: GrpoLossConfig,
    /// μ: optimizer steps taken on each batch.
    pub iterations: usize,
    /// Rows per forward/backward; their gradients are accumulated into one update.
    pub micro_batch_size: usize,
    /// Micro-batches computed at once, each on one thread of its own (`lanes`); 1 runs them one
    /// after another, each using every thread.
    pub lanes: usize,
    /// The sampling temperature: log-probs are taken of logits / temperature, as generated.
    pub temperature: f64,
    /// Exclude completions that hit the length limit from the loss (DAPO's overlong filtering).
    pub mask_truncated: bool,
    /// Token id used to pad rows; never scored. The tokenizer's, so never a setting.
    #[serde(skip)]
    pub pad_id: u32,
    /// Rows of the output projection computed at once.
    pub chunk_rows: usize,
    /// Also compute the policy's entropy on completion tokens, for logging (costs one more
    /// pass over each logits chunk).
    pub entropy: bool,
}

impl Default for GrpoConfig {
    fn default() -> Self {
        GrpoConfig {
            loss: GrpoLossConfig::default(),
            iterations: 1,
            micro_batch_size: 16,
            lanes: 1,
            temperature: 1.0,
            mask_truncated: false,
            pad_id: 0,
            chunk_rows: DEFAULT_CHUNK_ROWS,
            entropy: true,
        }
    }
}

/// One optimizer step of a `grpo_step` call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IterationStats {
    /// Loss and token means over the whole batch (micro-batches combined).
    pub loss: LossStats,
    pub grad_norm: f64,
    pub lr: f64,
    /// False when the loss or gradient was not finite and the update was skipped.
    pub applied: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GrpoStats {
    pub iterations: Vec<IterationStats>,
    pub advantage_mean: f64,
    pub advantage_std: f64,
    pub advantage_min: f64,
    pub advantage_max: f64,
    /// Completion tokens that counted in the loss.
    pub tokens: usize,
    /// Rows whose truncated completion was masked out.
    pub masked_rows: usize,
    /// Updates skipped in this call.
    pub skipped: usize,
}

/// One micro-batch, as tensors aligned with `token_logprobs`' (b, t − 1) output.
struct MicroBatch {
    /// Its position in the batch (the reference log-probs are kept in the same order).
    index: usize,
    tokens: TokenBatch,
    behaviour: Tensor,
    mask: Tensor,
    advantages: Tensor,
    /// Its share of a full-batch mean (see `grpo_step`).
    weight: f64,
}

/// Takes `cfg.iterations` AdamW steps on `batch` for `policy`, whose trainable variables are
/// those `opt` holds. The importance ratio is taken against the behaviour log-probs that
/// travel with the batch; `reference` is needed only when β > 0 and is run without gradients.
///
/// Micro-batches are weighted so the accumulated gradient equals the full batch's for `grpo`,
/// `dr_grpo` and `dapo`; `bnpo` averages each micro-batch's token mean, as TRL does.
pub fn grpo_step(
    policy: &dyn CausalLm,
    reference: Option<&dyn CausalLm>,
    batch: &ScoredBatch,
    cfg: &GrpoConfig,
    opt: &mut AdamW,
) -> Result<GrpoStats, AlgoError> {
    validate(batch, cfg)?;
    if cfg.loss.beta > 0.0 && reference.is_none() {
        return Err(AlgoError::BadConfig { field: "beta".into(), reason: format!("{} > 0 needs a reference model", cfg.loss.beta) });
    }
    let counted = |s: &ScoredSequence| !(cfg.mask_truncated && s.truncated);
    let tokens: usize = batch.iter().filter(|s| counted(s)).map(|s| s.tokens.len() - s.prompt_len).sum();
    let micro = batch
        .chunks(cfg.micro_batch_size)
        .enumerate()
        .map(|(index, rows)| micro_batch(index, rows, batch.len(), cfg, policy.device()))
        .collect::<Result<Vec<_>, AlgoError>>()?;
    // The reference is frozen: its log-probs are computed once and reused across iterations.
    let ref_logprobs = match reference {
        Some(r) if cfg.loss.beta > 0.0 => Some(
            micro
                .iter()
                .map(|mb| Ok(token_logprobs(r, &mb.tokens, cfg.temperature, false, cfg.chunk_rows)?.logprobs.detach()))
                .collect::<Result<Vec<_>, AlgoError>>()?,
        ),
        _ => None,
    };

    let objective = GrpoObjective { cfg, tokens, reference: ref_logprobs };
    let lanes = Lanes::new(cfg.lanes)?;
    let mut iterations = Vec::with_capacity(cfg.iterations);
    let mut skipped = 0;
    for _ in 0..cfg.iterations {
        let update = optimizer_step(&objective, policy, opt, &micro, &lanes)?;
        let loss = combine(&update.parts);
        skipped += usize::from(!update.applied);
        iterations.push(IterationStats { loss, grad_norm: update.grad_norm, lr: update.lr, applied: update.applied });
    }

    let adv: Vec<f64> = batch.iter().map(|s| s.advantage as f64).collect();
    let mean = adv.iter().sum::<f64>() / adv.len() as f64;
    let std = (adv.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / adv.len() as f64).sqrt();
    Ok(GrpoStats {
        iterations,
        advantage_mean: mean,
        advantage_std: std,
        advantage_min: adv.iter().copied().fold(f64::INFINITY, f64::min),
        advantage_max: adv.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        tokens,
        masked_rows: batch.iter().filter(|s| !counted(s)).count(),
        skipped,
    })
}

/// GRPO's clipped surrogate (every `LossType`) on one micro-batch, weighted to its share of
/// the batch's loss.
struct GrpoObjective<'a> {
    cfg: &'a GrpoConfig,
    /// Completion tokens counted in the whole batch (the `dr_grpo`/`dapo` denominators).
    tokens: usize,
    /// The frozen reference's log-probs per micro-batch, when β > 0.
    reference: Option<Vec<Tensor>>,
}

impl Objective for GrpoObjective<'_> {
    type MicroBatch = MicroBatch;
    type Stats = (f64, LossStats);

    fn loss(&self, policy: &dyn CausalLm, mb: &MicroBatch) -> Result<(Tensor, (f64, LossStats)), AlgoError> {
        let cfg = self.cfg;
        let out = token_logprobs(policy, &mb.tokens, cfg.temperature, cfg.entropy, cfg.chunk_rows)?;
        let dtype = out.logprobs.dtype();
        let inputs = LossInputs {
            logprobs: &out.logprobs,
            behaviour: &mb.behaviour.to_dtype(dtype)?,
            reference: self.reference.as_ref().map(|r| &r[mb.index]),
            advantages: &mb.advantages.to_dtype(dtype)?,
            mask: &mb.mask.to_dtype(dtype)?,
            entropies: out.entropies.as_ref(),
            global_tokens: Some(self.tokens as f64),
        };
        let loss = grpo_loss(&inputs, &cfg.loss)?;
        Ok(((loss.loss * mb.weight)?, (mb.weight, loss.stats)))
    }
}

fn validate(batch: &ScoredBatch, cfg: &GrpoConfig) -> Result<(), AlgoError> {
    cfg.loss.validate()?;
    let bad = |field: &str, reason: &str| Err(AlgoError::BadConfig { field: field.into(), reason: reason.into() });
    if cfg.iterations == 0 {
        return bad("iterations", "must be at least 1");
    }
    if cfg.micro_batch_size == 0 {
        return bad("micro_batch_size", "must be at least 1");
    }
    if cfg.lanes == 0 {
        return bad("lanes", "must be at least 1");
    }
    if !(cfg.temperature > 0.0 && cfg.temperature.is_finite()) {
        return bad("temperature", "must be a finite value > 0");
    }
    if batch.is_empty() {
        return Err(AlgoError::BadBatch("no sequences".into()));
    }
    for (i, s) in batch.iter().enumerate() {
        let completion = s.tokens.len().saturating_sub(s.prompt_len);
        let fail = |why: String| Err(AlgoError::BadBatch(format!("row {i}: {why}")));
        if s.prompt_len == 0 || s.prompt_len > s.tokens.len() {
            return fail(format!("prompt length {} with {} tokens", s.prompt_len, s.tokens.len()));
        }
        if s.behaviour_logprobs.len() != completion {
            return fail(format!("{} behaviour log-probs for {completion} completion tokens", s.behaviour_logprobs.len()));
        }
        if let Some(j) = s.behaviour_logprobs.iter().position(|x| !x.is_finite() || *x > 0.0) {
            return fail(format!("behaviour log-prob {j} is {}", s.behaviour_logprobs[j]));
        }
        if !s.advantage.is_finite() {
            return fail(format!("advantage is {}", s.advantage));
        }
    }
    Ok(())
}

fn micro_batch(
    index: usize,
    rows: &[ScoredSequence],
    batch_rows: usize,
    cfg: &GrpoConfig,
    device: &Device,
) -> Result<MicroBatch, AlgoError> {
    let seqs: Vec<Vec<u32>> = rows.iter().map(|s| s.tokens.clone()).collect();
    let tokens = TokenBatch::right_padded(&seqs, cfg.pad_id, device)?;
    let t = tokens.ids.dim(1)?;
    if t < 2 {
        return Err(AlgoError::BadBatch("sequences need at least 2 tokens".into()));
    }
    let width = t - 1;
    let mut behaviour = vec![0f32; rows.len() * width];
    let mut mask = vec![0f32; rows.len() * width];
    let mut completion = vec![0f32; rows.len() * width];
    for (r, s) in rows.iter().enumerate() {
        let keep = !(cfg.mask_truncated && s.truncated);
        // Token j is predicted at output position j − 1.
        for (k, &lp) in s.behaviour_logprobs.iter().enumerate() {
            let at = r * width + s.prompt_len + k - 1;
            behaviour[at] = lp;
            mask[at] = if keep { 1.0 } else { 0.0 };
            completion[at] = 1.0;
        }
    }
    // Prompt predictions never enter the loss: skip their output projection.
    let tokens = tokens.scoring_only(&completion);
    let advantages: Vec<f32> = rows.iter().map(|s| s.advantage).collect();
    let weight = match cfg.loss.loss_type {
        LossType::Dapo => 1.0,
        _ => rows.len() as f64 / batch_rows as f64,
    };
    Ok(MicroBatch {
        index,
        tokens,
        behaviour: Tensor::from_vec(behaviour, (rows.len(), width), device)?,
        mask: Tensor::from_vec(mask, (rows.len(), width), device)?,
        advantages: Tensor::from_vec(advantages, rows.len(), device)?,
        weight,
    })
}

/// The batch's stats from its micro-batches': the loss adds up (weights already make it the
/// full-batch loss); token means are weighted by tokens.
fn combine(parts: &[(f64, LossStats)]) -> LossStats {
    let tokens: f64 = parts.iter().map(|(_, s)| s.tokens).sum();
    let mean = |f: &dyn Fn(&LossStats) -> f64| parts.iter().map(|(_, s)| f(s) * s.tokens).sum::<f64>() / tokens.max(1.0);
    let optional =
        |f: &dyn Fn(&LossStats) -> Option<f64>| parts.iter().all(|(_, s)| f(s).is_some()).then(|| mean(&|s| f(s).unwrap_or(0.0)));
    LossStats {
        loss: parts.iter().map(|(w, s)| w * s.loss).sum(),
        ratio_mean: mean(&|s| s.ratio_mean),
        clip_low: mean(&|s| s.clip_low),
        clip_high: mean(&|s| s.clip_high),
        kl: optional(&|s| s.kl),
        entropy: optional(&|s| s.entropy),
        tokens,
    }
}
