//! Logit distillation: per-token KL between teacher and student next-token distributions, in row chunks.
//!
//! Forward KL(teacher ‖ student) trains on given sequences; reverse KL(student ‖ teacher) on the
//! student's own samples is on-policy distillation. Both divide logits by a temperature τ and
//! are not multiplied by τ² (as TRL's GKD). The output projection runs `chunk_rows` rows at a
//! time, so a (tokens × vocab) logits tensor is never built for the whole batch.

use candle_core::{DType, Result, Tensor};

use super::lanes::Lanes;
use super::objective::{optimizer_step, Objective};
use super::sft::{collate, SftBatch, SftExample};
use super::AlgoError;
use crate::generate::{generate_group, GenerationConfig, TextDecoder};
use crate::model::logit_kl::{autograd_kl, logit_kl};
pub use crate::model::logit_kl::{chunk_kl, KlDirection};
use crate::model::logprobs::{prediction_states, ScoredRows};
use crate::model::target_logprobs::KEPT_LOGITS_BYTES;
use crate::model::{CausalLm, TokenBatch};
use crate::optim::AdamW;
use crate::tokenizer::Tokenizer;

#[derive(Debug, thiserror::Error)]
pub enum KdError {
    #[error("teacher and student tokenizers differ: {0}")]
    TokenizerMismatch(String),
}

/// KL of each next-token prediction (b, t − 1) between `student` and `teacher` on `batch`;
/// 0 where the target or the token before it is padding, and at predictions `batch.scored`
/// leaves out. Logits are compared over the vocab the two share (a larger model may pad its
/// embedding rows beyond the tokenizer).
///
/// When both output projections are plain matrices, the backward recomputes each chunk's logits
/// (`logit_kl`), so memory does not grow with rows × vocab; otherwise (a bias or a LoRA branch
/// on `lm_head`) autograd runs through each chunk's logits.
pub fn token_kl(
    student: &dyn CausalLm,
    teacher: &dyn CausalLm,
    batch: &TokenBatch,
    temperature: f64,
    direction: KlDirection,
    chunk_rows: usize,
) -> Result<Tensor> {
    let (hs, pair_mask) = prediction_states(student, batch)?;
    let (ht, _) = prediction_states(teacher, batch)?;
    let scored = ScoredRows::of(batch, hs.device())?;
    let (hs, ht) = (scored.pick(&hs)?, scored.pick(&ht.detach())?);
    let vocab = student.config().vocab_size.min(teacher.config().vocab_size);
    let kl = match (student.output_weight(), teacher.output_weight()) {
        (Some(ws), Some(wt)) => {
            logit_kl(&hs, &ws.narrow(0, 0, vocab)?, &ht, &wt.narrow(0, 0, vocab)?, temperature, direction, chunk_rows, KEPT_LOGITS_BYTES)?
        }
        _ => autograd_kl(student, teacher, &hs, &ht, temperature, direction, chunk_rows)?,
    };
    scored.spread(kl, &pair_mask)
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
pub fn kd_step(student: &dyn CausalLm, teacher: &dyn CausalLm, opt: &mut AdamW, batch: &SftBatch, cfg: &KdConfig) -> Result<KdStepStats> {
    let objective = TokenKl { teacher, cfg };
    let update = optimizer_step(&objective, student, opt, std::slice::from_ref(batch), &Lanes::new(1)?)
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let loss = update.parts.first().copied().unwrap_or(f64::NAN);
    Ok(KdStepStats { loss, grad_norm: update.grad_norm, skipped: !update.applied })
}

/// KD's loss: the mean KL per completion token between the student's and the teacher's
/// next-token distributions, in `cfg.direction`.
struct TokenKl<'a> {
    teacher: &'a dyn CausalLm,
    cfg: &'a KdConfig,
}

impl Objective for TokenKl<'_> {
    type MicroBatch = SftBatch;
    /// The loss's value.
    type Stats = f64;

    fn loss(&self, student: &dyn CausalLm, batch: &SftBatch) -> std::result::Result<(Tensor, f64), AlgoError> {
        let cfg = self.cfg;
        let per_token = token_kl(student, self.teacher, &batch.tokens, cfg.temperature, cfg.direction, cfg.chunk_rows)?;
        let loss = masked_mean(&per_token, &batch.loss_mask)?;
        let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        Ok((loss, value))
    }
}

/// The student's own completions of `prompts` (`n` each, through the shared sampler), batched
/// for a reverse-KL step: on-policy distillation. Prompt `i` draws from the RNG streams
/// `first_stream + i·n …`, so successive calls can sample afresh.
pub fn on_policy_batch(
    student: &dyn CausalLm,
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

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;
    use crate::model::init::init_weights;
    use crate::model::Qwen2;
    use crate::synthetic::tiny_qwen2_config;

    fn tiny(vocab: usize, seed: u64, dtype: DType) -> Result<(Qwen2, Vec<(String, Var)>)> {
        let err = |e: crate::model::ModelError| candle_core::Error::Msg(e.to_string());
        let cfg = tiny_qwen2_config(vocab);
        let weights = init_weights(&cfg, 0.2, seed, &Device::Cpu)?.to(dtype, &Device::Cpu).map_err(err)?;
        let (trainable, vars) = weights.to_vars().map_err(err)?;
        Ok((Qwen2::new(&cfg, &trainable).map_err(err)?, vars))
    }

    /// The recomputing path `token_kl` takes, on the scored rows only, gives what autograd
    /// through every row's logits gives on those rows: values and gradients of every weight,
    /// both directions, T ≠ 1, chunks that do not divide the rows, a teacher with a larger vocab.
    #[test]
    fn the_recomputing_path_equals_autograd_through_the_logits() -> Result<()> {
        let dev = Device::Cpu;
        for dtype in [DType::F64, DType::F32] {
            let (student, vars) = tiny(40, 7, dtype)?;
            let (teacher, _) = tiny(48, 8, dtype)?;
            let mut batch = TokenBatch::right_padded(&[vec![3, 9, 27, 1, 30], vec![5, 11, 2]], 0, &dev)?;
            batch.scored = Some(vec![1, 2, 3, 4, 5]);
            let picked = Tensor::new(&[[0f32, 1., 1., 1.], [1., 1., 0., 0.]], &dev)?.to_dtype(dtype)?;
            let coeffs = (Tensor::new(&[[0.5f32, -1.0, 2.0, 0.3], [1.5, -0.2, 0.7, 0.9]], &dev)?.to_dtype(dtype)? * &picked)?;
            for direction in [KlDirection::Forward, KlDirection::Reverse] {
                let ours = token_kl(&student, &teacher, &batch, 0.8, direction, 2)?;
                let (hs, mask) = prediction_states(&student, &batch)?;
                let (ht, _) = prediction_states(&teacher, &batch)?;
                let all = autograd_kl(&student, &teacher, &hs, &ht.detach(), 0.8, direction, 3)?;
                let reference = ((all.reshape((2, 4))? * mask.to_dtype(dtype)?)? * &picked)?;
                let max_diff = |a: &Tensor, b: &Tensor| -> Result<f64> { (a - b)?.abs()?.max_all()?.to_dtype(DType::F64)?.to_scalar() };
                let tol = if dtype == DType::F64 { 1e-10 } else { 1e-5 };
                assert!(max_diff(&ours, &reference)? < tol, "{dtype:?} {direction:?}: KL differs by {}", max_diff(&ours, &reference)?);

                let g_ours = (&ours * &coeffs)?.sum_all()?.backward()?;
                let g_ref = (&reference * &coeffs)?.sum_all()?.backward()?;
                for (name, var) in &vars {
                    let (a, b) = (g_ours.get(var).expect(name), g_ref.get(var).expect(name));
                    // Sums in a different order: relative to the gradient's own size.
                    let scale = b.abs()?.max_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?.max(1e-3);
                    let rel = if dtype == DType::F64 { 1e-9 } else { 1e-4 };
                    assert!(
                        max_diff(a, b)? < rel * scale,
                        "{dtype:?} {direction:?} {name}: gradients differ by {} (max {scale})",
                        max_diff(a, b)?
                    );
                }
            }
        }
        Ok(())
    }
}
