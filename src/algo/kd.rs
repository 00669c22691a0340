//! Logit distillation: per-token KL between teacher and student next-token distributions, in row chunks.
//!
//! Forward KL(teacher ‖ student) trains on given sequences; reverse KL(student ‖ teacher) on the
//! student's own samples is on-policy distillation. Both divide logits by a temperature τ and
//! are not multiplied by τ² (as TRL's GKD). The output projection runs `chunk_rows` rows at a
//! time, so a (tokens × vocab) logits tensor is never built for the whole batch.

use candle_core::{DType, Result, Tensor, D};

use super::sft::{collate, SftBatch, SftExample};
use crate::generate::{generate_group, GenerationConfig, TextDecoder};
use crate::model::qwen2::log_softmax;
use crate::model::logprobs::prediction_states;
use crate::model::{Qwen2, TokenBatch};
use crate::optim::AdamW;
use crate::tokenizer::Tokenizer;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlDirection {
    /// KL(teacher ‖ student) = Σ p_t (log p_t − log p_s): mass-covering, on given sequences.
    Forward,
    /// KL(student ‖ teacher) = Σ p_s (log p_s − log p_t): mode-seeking, on student samples.
    Reverse,
}

#[derive(Debug, thiserror::Error)]
pub enum KdError {
    #[error("teacher and student tokenizers differ: {0}")]
    TokenizerMismatch(String),
}

/// KL per row of two logits chunks (n, v) → (n,), differentiable in `student` only.
pub fn chunk_kl(student: &Tensor, teacher: &Tensor, temperature: f64, direction: KlDirection) -> Result<Tensor> {
    let scale = |x: &Tensor| -> Result<Tensor> {
        let x = x.to_dtype(DType::F32)?;
        if temperature == 1.0 { Ok(x) } else { x / temperature }
    };
    let log_s = log_softmax(&scale(student)?)?;
    let log_t = log_softmax(&scale(&teacher.detach())?)?;
    let (log_p, log_q) = match direction {
        KlDirection::Forward => (log_t, log_s),
        KlDirection::Reverse => (log_s, log_t),
    };
    (log_p.exp()? * (&log_p - log_q)?)?.sum(D::Minus1)
}

/// KL of each next-token prediction (b, t − 1) between `student` and `teacher` on `batch`;
/// 0 where the target or the token before it is padding. Logits are compared over the vocab
/// the two share (a larger model may pad its embedding rows beyond the tokenizer).
pub fn token_kl(
    student: &Qwen2,
    teacher: &Qwen2,
    batch: &TokenBatch,
    temperature: f64,
    direction: KlDirection,
    chunk_rows: usize,
) -> Result<Tensor> {
    let (b, t) = batch.ids.dims2()?;
    let (hs, pair_mask) = prediction_states(student, batch)?;
    let (ht, _) = prediction_states(teacher, batch)?;
    let ht = ht.detach();
    let vocab = student.config().vocab_size.min(teacher.config().vocab_size);
    let rows = b * (t - 1);
    let mut parts = Vec::new();
    for start in (0..rows).step_by(chunk_rows.max(1)) {
        let n = chunk_rows.max(1).min(rows - start);
        let ls = student.logits(&hs.narrow(0, start, n)?)?.narrow(1, 0, vocab)?;
        let lt = teacher.logits(&ht.narrow(0, start, n)?)?.narrow(1, 0, vocab)?.detach();
        parts.push(chunk_kl(&ls, &lt, temperature, direction)?);
    }
    Tensor::cat(&parts, 0)?.reshape((b, t - 1))? * pair_mask
}

/// Mean of `per_token` over the predictions `loss_mask` selects (scalar).
pub fn masked_mean(per_token: &Tensor, loss_mask: &Tensor) -> Result<Tensor> {
    let mask = loss_mask.to_dtype(per_token.dtype())?;
    let count = mask.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?.max(1.0);
    (per_token * mask)?.sum_all()? / count
}

/// Checks at start that teacher and student tokenise alike: same vocabulary size, same special
/// tokens, and the same string for a spread of ids across the vocabulary.
pub fn check_shared_tokenizer(teacher: &Tokenizer, student: &Tokenizer) -> std::result::Result<(), KdError> {
    let mismatch = |what: String| Err(KdError::TokenizerMismatch(what));
    let (vt, vs) = (teacher.vocab_size(), student.vocab_size());
    if vt != vs {
        return mismatch(format!("vocabulary sizes {vt} (teacher) and {vs} (student)"));
    }
    let specials = [
        ("bos", teacher.bos_token_id(), student.bos_token_id()),
        ("eos", teacher.eos_token_id(), student.eos_token_id()),
        ("pad", teacher.pad_token_id(), student.pad_token_id()),
    ];
    for (name, t, s) in specials {
        if t != s {
            return mismatch(format!("{name} token id {t:?} (teacher) and {s:?} (student)"));
        }
    }
    // 257 ids spread over the vocabulary plus its last 16, where added special tokens live.
    let samples = (0..=256).map(|k| k * (vt.saturating_sub(1)) / 256).chain(vt.saturating_sub(16)..vt);
    for id in samples {
        let (t, s) = (teacher.id_to_token(id as u32), student.id_to_token(id as u32));
        if t != s {
            return mismatch(format!("token {id} is {t:?} (teacher) and {s:?} (student)"));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KdConfig {
    pub temperature: f64,
    pub direction: KlDirection,
    pub chunk_rows: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KdStepStats {
    /// Mean KL per completion token.
    pub loss: f64,
    pub grad_norm: f64,
    /// True when the loss or gradient was not finite and the update was skipped.
    pub skipped: bool,
}

/// One distillation step on `batch`: the mean KL over its completion tokens, backward, one
/// AdamW step over the student's trainable variables (clipping as `opt` is configured).
pub fn kd_step(student: &Qwen2, teacher: &Qwen2, opt: &mut AdamW, batch: &SftBatch, cfg: &KdConfig) -> Result<KdStepStats> {
    let per_token = token_kl(student, teacher, &batch.tokens, cfg.temperature, cfg.direction, cfg.chunk_rows)?;
    let loss = masked_mean(&per_token, &batch.loss_mask)?;
    let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    if !value.is_finite() {
        opt.skip();
        return Ok(KdStepStats { loss: value, grad_norm: f64::NAN, skipped: true });
    }
    let mut grads = opt.accumulator();
    grads.add(&loss.backward()?).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let report = opt.step(grads).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    Ok(KdStepStats { loss: value, grad_norm: report.grad_norm, skipped: !report.applied })
}

/// The student's own completions of `prompts` (`n` each, through the shared sampler), batched
/// for a reverse-KL step: on-policy distillation. Prompt `i` draws from the RNG streams
/// `first_stream + i·n …`, so successive calls can sample afresh.
pub fn on_policy_batch(
    student: &Qwen2,
    decoder: &dyn TextDecoder,
    prompts: &[Vec<u32>],
    n: usize,
    first_stream: u64,
    gen: &GenerationConfig,
    pad_id: u32,
) -> Result<SftBatch> {
    let mut examples = Vec::with_capacity(prompts.len() * n);
    for (i, prompt) in prompts.iter().enumerate() {
        for c in generate_group(student, decoder, prompt, n, first_stream + (i * n) as u64, gen, |_, _| {})? {
            if !c.ids.is_empty() {
                examples.push(SftExample { prompt: prompt.clone(), completion: c.ids });
            }
        }
    }
    if examples.is_empty() {
        candle_core::bail!("the student sampled no completion tokens");
    }
    let rows: Vec<&SftExample> = examples.iter().collect();
    collate(&rows, pad_id, student.device())
}
