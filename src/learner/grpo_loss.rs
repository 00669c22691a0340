//! The GRPO objective on per-token log-probs: clipped importance ratio against the behaviour
//! policy, optional k3 KL to a reference, aggregated with TRL's loss types.
//!
//! Definitions follow TRL's `GRPOTrainer` (names and semantics), re-derived here:
//! - ratio r = exp(log π − log π_behaviour) per token, or for `RatioLevel::Sequence` (GSPO)
//!   exp of the masked mean log-ratio of the sequence, shared by all of its tokens;
//! - per-token loss ℓ = −min(min(r, cap)·A, clip(r, 1 − ε_low, 1 + ε_high)·A) + β·k3, with
//!   k3 = exp(ref − cur) − (ref − cur) − 1;
//! - `grpo`: mean over each sequence's tokens, then over sequences; `bnpo`: mean over all tokens
//!   of the batch; `dr_grpo`: sum / (sequences × max completion length); `dapo`: sum / the token
//!   count of the global batch (an argument, so micro-batches share one normaliser).

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use super::AlgoError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LossType {
    #[default]
    Grpo,
    Bnpo,
    DrGrpo,
    Dapo,
}

impl LossType {
    pub const ALL: [LossType; 4] = [LossType::Grpo, LossType::Bnpo, LossType::DrGrpo, LossType::Dapo];

    pub fn name(self) -> &'static str {
        match self {
            LossType::Grpo => "grpo",
            LossType::Bnpo => "bnpo",
            LossType::DrGrpo => "dr_grpo",
            LossType::Dapo => "dapo",
        }
    }
}

/// Where the importance ratio is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RatioLevel {
    #[default]
    Token,
    /// One ratio per sequence: the geometric mean of its token ratios (GSPO).
    Sequence,
}

/// Also keys of `srlm train`'s `[grpo]` section (flattened into it, which checks for unknown
/// keys), so these defaults are the documented ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GrpoLossConfig {
    pub loss_type: LossType,
    pub ratio_level: RatioLevel,
    /// The ratio is clipped below at 1 − epsilon_low …
    pub epsilon_low: f64,
    /// … and above at 1 + epsilon_high ("clip-higher" when larger than epsilon_low).
    pub epsilon_high: f64,
    /// Truncated importance sampling: the unclipped ratio is capped at this value (TRL's `delta`).
    pub ratio_cap: Option<f64>,
    /// KL coefficient; 0 means no reference policy is needed at all.
    pub beta: f64,
    /// The constant denominator of `dr_grpo`: the generation length limit, so in a TOML file it
    /// is the one `max_new_tokens` the generators sample up to.
    #[serde(rename = "max_new_tokens")]
    pub max_completion_len: usize,
}

impl Default for GrpoLossConfig {
    fn default() -> Self {
        GrpoLossConfig {
            loss_type: LossType::Dapo,
            ratio_level: RatioLevel::Token,
            epsilon_low: 0.2,
            epsilon_high: 0.28,
            ratio_cap: None,
            beta: 0.0,
            max_completion_len: 2048,
        }
    }
}

impl GrpoLossConfig {
    pub fn validate(&self) -> Result<(), AlgoError> {
        let bad = |field: &str, why: String| Err(AlgoError::BadConfig { field: field.into(), reason: why });
        if !(self.epsilon_low >= 0.0 && self.epsilon_low < 1.0) {
            return bad("epsilon_low", format!("{} is not in [0, 1)", self.epsilon_low));
        }
        if !(self.epsilon_high >= 0.0 && self.epsilon_high.is_finite()) {
            return bad("epsilon_high", format!("{} is not a finite value ≥ 0", self.epsilon_high));
        }
        if let Some(cap) = self.ratio_cap {
            if !(cap > 1.0 + self.epsilon_high && cap.is_finite()) {
                return bad("ratio_cap", format!("{cap} must be finite and above 1 + epsilon_high"));
            }
        }
        if !(self.beta >= 0.0 && self.beta.is_finite()) {
            return bad("beta", format!("{} is not a finite value ≥ 0", self.beta));
        }
        if self.loss_type == LossType::DrGrpo && self.max_completion_len == 0 {
            return bad("max_completion_len", "must be positive for dr_grpo".into());
        }
        Ok(())
    }
}

/// The tensors of one (micro-)batch; all (b, t) in one float dtype except `advantages` (b).
pub struct LossInputs<'a> {
    /// Current policy log-probs of the sampled tokens; the loss is differentiated through these.
    pub logprobs: &'a Tensor,
    /// Log-probs under the policy that generated the tokens (they travel with the rollout).
    pub behaviour: &'a Tensor,
    /// Frozen reference policy log-probs; required when β > 0.
    pub reference: Option<&'a Tensor>,
    pub advantages: &'a Tensor,
    /// 1 on completion tokens that count, 0 on prompt, padding and masked (truncated) rows.
    pub mask: &'a Tensor,
    /// Per-token entropies, for reporting only.
    pub entropies: Option<&'a Tensor>,
    /// Completion tokens of the whole optimizer step (all micro-batches): the `dapo` normaliser.
    /// None means this batch's own count.
    pub global_tokens: Option<f64>,
}

/// Means over the counted completion tokens of one batch, for logging.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LossStats {
    pub loss: f64,
    pub ratio_mean: f64,
    /// Tokens whose ratio fell below 1 − ε_low with a negative advantage (their gradient is cut).
    pub clip_low: f64,
    /// Tokens whose ratio rose above 1 + ε_high with a positive advantage.
    pub clip_high: f64,
    pub kl: Option<f64>,
    pub entropy: Option<f64>,
    pub tokens: f64,
}

pub struct GrpoLoss {
    /// Scalar, differentiable with respect to `LossInputs::logprobs`.
    pub loss: Tensor,
    pub stats: LossStats,
}

pub fn grpo_loss(inp: &LossInputs, cfg: &GrpoLossConfig) -> Result<GrpoLoss, AlgoError> {
    cfg.validate()?;
    let (b, t) = inp.logprobs.dims2()?;
    let dtype = inp.logprobs.dtype();
    for (name, x) in [("behaviour", Some(inp.behaviour)), ("reference", inp.reference), ("mask", Some(inp.mask))] {
        if let Some(x) = x {
            if x.dims() != [b, t] {
                return Err(AlgoError::BadBatch(format!("{name} log-probs have shape {:?}, expected [{b}, {t}]", x.dims())));
            }
        }
    }
    if inp.advantages.dims() != [b] {
        return Err(AlgoError::BadBatch(format!("advantages have shape {:?}, expected [{b}]", inp.advantages.dims())));
    }
    let mask = inp.mask.to_dtype(dtype)?;
    let behaviour = inp.behaviour.to_dtype(dtype)?.detach();
    let adv = inp.advantages.to_dtype(dtype)?.detach().unsqueeze(1)?.broadcast_as((b, t))?.contiguous()?;
    let row_tokens = mask.sum_keepdim(1)?; // (b, 1)

    let log_ratio = (inp.logprobs - &behaviour)?;
    let log_w = match cfg.ratio_level {
        RatioLevel::Token => log_ratio,
        RatioLevel::Sequence => {
            let mean = (log_ratio * &mask)?.sum_keepdim(1)?.broadcast_div(&row_tokens.clamp(1.0, f64::MAX)?)?;
            mean.broadcast_as((b, t))?.contiguous()?
        }
    };
    let ratio = log_w.exp()?;
    let r = ratio.detach();
    let (lo, hi) = (1.0 - cfg.epsilon_low, 1.0 + cfg.epsilon_high);

    // Both terms carry the ratio's gradient only where they are not constant: the capped term
    // above the cap, the clipped term outside [lo, hi] (as torch's clamp does, bounds inclusive).
    let capped = match cfg.ratio_cap {
        Some(cap) => r.gt(cap)?.where_cond(&constant(cap, &r)?, &ratio)?,
        None => ratio.clone(),
    };
    let inside = r.ge(lo)?.mul(&r.le(hi)?)?;
    let clipped = inside.where_cond(&ratio, &r.clamp(lo, hi)?)?;
    let unclipped_term = (capped * &adv)?;
    let clipped_term = (clipped * &adv)?;
    // min(a, b); on ties both branches have the same value and gradient.
    let take_unclipped = unclipped_term.detach().le(&clipped_term.detach())?;
    let objective = take_unclipped.where_cond(&unclipped_term, &clipped_term)?;
    let mut per_token = objective.neg()?;

    let mut kl_mean = None;
    if cfg.beta > 0.0 {
        let reference = inp.reference.ok_or_else(|| AlgoError::BadBatch(format!("beta = {} needs reference log-probs", cfg.beta)))?;
        let delta = (reference.to_dtype(dtype)?.detach() - inp.logprobs)?;
        let kl = ((delta.exp()? - &delta)? - 1.0)?;
        kl_mean = Some(masked_mean(&kl.detach(), &mask)?);
        per_token = (per_token + (kl * cfg.beta)?)?;
    }

    let masked = (per_token * &mask)?;
    let total_tokens = to_f64(&mask.sum_all()?)?;
    let loss = match cfg.loss_type {
        LossType::Grpo => masked.sum_keepdim(1)?.div(&row_tokens.clamp(1.0, f64::MAX)?)?.mean_all()?,
        LossType::Bnpo => (masked.sum_all()? / total_tokens.max(1.0))?,
        LossType::DrGrpo => (masked.sum_all()? / (b * cfg.max_completion_len) as f64)?,
        LossType::Dapo => (masked.sum_all()? / inp.global_tokens.unwrap_or(total_tokens).max(1.0))?,
    };

    let low = r.lt(lo)?.mul(&adv.lt(0.0)?)?.to_dtype(dtype)?;
    let high = r.gt(hi)?.mul(&adv.gt(0.0)?)?.to_dtype(dtype)?;
    let stats = LossStats {
        loss: to_f64(&loss)?,
        ratio_mean: masked_mean(&r, &mask)?,
        clip_low: masked_mean(&low, &mask)?,
        clip_high: masked_mean(&high, &mask)?,
        kl: kl_mean,
        entropy: inp.entropies.map(|e| masked_mean(&e.to_dtype(dtype)?.detach(), &mask)).transpose()?,
        tokens: total_tokens,
    };
    Ok(GrpoLoss { loss, stats })
}

fn constant(value: f64, like: &Tensor) -> candle_core::Result<Tensor> {
    Tensor::full(value, like.shape(), like.device())?.to_dtype(like.dtype())
}

fn to_f64(x: &Tensor) -> candle_core::Result<f64> {
    x.to_dtype(DType::F64)?.to_scalar::<f64>()
}

/// Σ x·mask / max(Σ mask, 1), as a number.
fn masked_mean(x: &Tensor, mask: &Tensor) -> candle_core::Result<f64> {
    let n = to_f64(&mask.sum_all()?)?;
    Ok(to_f64(&(x * mask)?.sum_all()?)? / n.max(1.0))
}
