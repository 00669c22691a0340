//! Per-row KL between a student's and a frozen teacher's next-token distributions straight from
//! hidden states and output projections, with a backward pass that recomputes each chunk's
//! logits instead of keeping a graph through them.
//!
//! Autograd through `chunk_kl` keeps several (rows × vocab) tensors per chunk until backward:
//! 8 sequences × 600 tokens × 151,936 vocab is 2.9 GB per copy in f32. Here the forward pass
//! runs without a graph, and `attach_grad` gives the result a backward that rebuilds both
//! chunks of logits one chunk at a time:
//!   forward KL(t ‖ s):  d KL_i / d z_s,i = (p_s − p_t) / T
//!   reverse KL(s ‖ t):  d KL_i / d z_s,i = p_s ⊙ (log p_s − log p_t − KL_i) / T
//! then dh = dz W and dW = dzᵀ h as in `target_logprobs`. The upstream gradient only scales
//! each row, so when d KL / d z_s of all rows fits `KEPT_LOGITS_BYTES` the forward pass keeps
//! it instead, which saves the backward's two recomputed products.

use candle_core::{DType, Result, Tensor, D};

use super::custom_grad::attach_grad;
use super::matmul::matmul;
use super::norm::widened;
use super::projection_grad::{project_back, row_chunks, worth_keeping};
use super::qwen2::log_softmax;
use super::target_logprobs::widened_and_scaled;
use super::train_kernels;
use super::CausalLm;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlDirection {
    /// KL(teacher ‖ student) = Σ p_t (log p_t − log p_s): mass-covering, on given sequences.
    Forward,
    /// KL(student ‖ teacher) = Σ p_s (log p_s − log p_t): mode-seeking, on student samples.
    Reverse,
}

/// KL per row (n) between softmax(h Wᵀ / T) of the student, `hidden` (n, d) and `weight`
/// (vocab, d), and the teacher's softmax(h_t W_tᵀ / T), `teacher_hidden` (n, d_t) and
/// `teacher_weight` (vocab, d_t), taken as constants; `chunk_rows` rows at a time both ways,
/// keeping d KL / d z_s for the backward when it fits `kept_bytes` (`KEPT_LOGITS_BYTES`).
/// In the widened dtype (f32 for bf16 models).
#[allow(clippy::too_many_arguments)]
pub fn logit_kl(
    hidden: &Tensor,
    weight: &Tensor,
    teacher_hidden: &Tensor,
    teacher_weight: &Tensor,
    temperature: f64,
    direction: KlDirection,
    chunk_rows: usize,
    kept_bytes: usize,
) -> Result<Tensor> {
    let n = hidden.dim(0)?;
    if teacher_hidden.dim(0)? != n || teacher_weight.dim(0)? != weight.dim(0)? {
        candle_core::bail!(
            "KL: student {:?} × {:?}, teacher {:?} × {:?}",
            hidden.dims(),
            weight.dims(),
            teacher_hidden.dims(),
            teacher_weight.dims()
        );
    }
    let wide = widened(hidden.dtype());
    let keep = worth_keeping(hidden, weight, wide.size_in_bytes(), kept_bytes)?;
    let (h, w) = (hidden.detach(), weight.detach());
    let (ht, wt) = (teacher_hidden.detach(), teacher_weight.detach());
    let mut kls = Vec::new();
    let mut reused = Vec::new();
    for (start, rows) in row_chunks(n, chunk_rows) {
        let (zs, zt) = (chunk_logits(&h, &w, start, rows)?, chunk_logits(&ht, &wt, start, rows)?);
        let (kl, reuse) = chunk_forward(&zs, &zt, temperature, direction, keep)?;
        kls.push(kl);
        reused.push(reuse);
    }
    let value = if kls.is_empty() { Tensor::zeros(n, wide, h.device())? } else { Tensor::cat(&kls, 0)? };
    let backward = move |hidden: &Tensor, weight: &Tensor, grad: &Tensor| {
        let dtype = hidden.dtype();
        let grad = grad.detach().to_dtype(wide)?.reshape((hidden.dim(0)?, 1))?;
        let w = weight.detach();
        project_back(hidden, weight, chunk_rows, |chunk, start, rows, hc| {
            let g = grad.narrow(0, start, rows)?;
            let dz = match &reused[chunk] {
                Reuse::Kept(unit) => unit.broadcast_mul(&g)?,
                reuse => {
                    let zs = matmul(hc, &w.t()?)?;
                    chunk_grad(&zs, &chunk_logits(&ht, &wt, start, rows)?, reuse, &g, temperature, direction)?
                }
            };
            dz.to_dtype(dtype)
        })
    };
    attach_grad("recomputed-logit-kl", hidden, weight, &value, Box::new(backward))
}

/// What a chunk's backward takes from its forward pass besides recomputed logits.
enum Reuse {
    /// d KL / d z_s for a unit upstream gradient: no logits needed.
    Kept(Tensor),
    /// The fused kernel's per-row shifts and KL: the gradient in one pass over the logits.
    Rows(Vec<train_kernels::KlRow>),
    /// Nothing: candle's ops recompute the softmaxes.
    Nothing,
}

/// Logits (rows, vocab) of rows `start ..` of `hidden`.
fn chunk_logits(hidden: &Tensor, weight: &Tensor, start: usize, rows: usize) -> Result<Tensor> {
    matmul(&hidden.narrow(0, start, rows)?, &weight.t()?)
}

/// Student and teacher logits in the student's widened dtype, the teacher as a constant.
fn widened_pair(student: &Tensor, teacher: &Tensor) -> Result<(Tensor, Tensor)> {
    let wide = widened(student.dtype());
    Ok((student.to_dtype(wide)?, teacher.detach().to_dtype(wide)?))
}

/// KL per row of a chunk of logits, and what its backward reuses (d KL / d z_s itself when
/// `keep`): the fused kernel on CPU floats, candle's ops elsewhere.
fn chunk_forward(student: &Tensor, teacher: &Tensor, temperature: f64, direction: KlDirection, keep: bool) -> Result<(Tensor, Reuse)> {
    let (zs, zt) = widened_pair(student, teacher)?;
    if train_kernels::fusable(&zs) {
        let (kl, rows) = train_kernels::vocab_kl(&zs, &zt, temperature, direction)?;
        if keep {
            let unit = train_kernels::vocab_kl_grad(&zs, &zt, &rows, &vec![1.0; rows.len()], temperature, direction)?;
            return Ok((kl, Reuse::Kept(unit)));
        }
        return Ok((kl, Reuse::Rows(rows)));
    }
    let unit = keep.then(|| Tensor::ones(zs.dim(0)?, zs.dtype(), zs.device())).transpose()?;
    let (kl, dz) = kl_by_ops(&zs, &zt, temperature, direction, unit.as_ref())?;
    Ok((kl, dz.map_or(Reuse::Nothing, Reuse::Kept)))
}

/// d(Σ g·KL)/d z_s of a chunk from its recomputed logits, g (rows, 1).
fn chunk_grad(student: &Tensor, teacher: &Tensor, reuse: &Reuse, g: &Tensor, temperature: f64, direction: KlDirection) -> Result<Tensor> {
    let (zs, zt) = widened_pair(student, teacher)?;
    match reuse {
        Reuse::Kept(unit) => unit.broadcast_mul(g),
        Reuse::Rows(rows) => {
            let g = g.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            train_kernels::vocab_kl_grad(&zs, &zt, rows, &g, temperature, direction)
        }
        Reuse::Nothing => {
            kl_by_ops(&zs, &zt, temperature, direction, Some(g))?.1.ok_or_else(|| candle_core::Error::Msg("KL: no gradient".into()))
        }
    }
}

/// KL per row of two logits chunks and, given g per row, d(Σ g·KL)/d z_s, through candle's
/// ops: differentiable in `student` when it tracks. The teacher is taken as a constant.
fn kl_by_ops(
    student: &Tensor,
    teacher: &Tensor,
    temperature: f64,
    direction: KlDirection,
    grad: Option<&Tensor>,
) -> Result<(Tensor, Option<Tensor>)> {
    let (zs, zt) = widened_pair(student, teacher)?;
    let wide = zs.dtype();
    let log_s = log_softmax(&widened_and_scaled(zs, temperature)?)?;
    let log_t = log_softmax(&widened_and_scaled(zt, temperature)?)?;
    let (log_p, log_q) = match direction {
        KlDirection::Forward => (&log_t, &log_s),
        KlDirection::Reverse => (&log_s, &log_t),
    };
    let kl = (log_p.exp()? * (log_p - log_q)?)?.sum(D::Minus1)?;
    let Some(g) = grad else { return Ok((kl, None)) };
    let unit = match direction {
        KlDirection::Forward => (log_s.exp()? - log_t.exp()?)?,
        KlDirection::Reverse => (log_s.exp()? * (&log_s - &log_t)?.broadcast_sub(&kl.unsqueeze(1)?)?)?,
    };
    let g = (g.reshape((kl.dim(0)?, 1))?.to_dtype(wide)? / temperature)?;
    Ok((kl, Some(unit.broadcast_mul(&g)?)))
}

/// The same KL per row of `hs` (student) and `ht` (teacher) through candle's autograd over each
/// chunk's logits.
pub(crate) fn autograd_kl(
    student: &dyn CausalLm,
    teacher: &dyn CausalLm,
    hs: &Tensor,
    ht: &Tensor,
    temperature: f64,
    direction: KlDirection,
    chunk_rows: usize,
) -> Result<Tensor> {
    let vocab = student.config().vocab_size.min(teacher.config().vocab_size);
    let rows = hs.dim(0)?;
    let mut parts = Vec::new();
    for (start, n) in row_chunks(rows, chunk_rows) {
        let ls = student.logits(&hs.narrow(0, start, n)?)?.narrow(1, 0, vocab)?;
        let lt = teacher.logits(&ht.narrow(0, start, n)?)?.narrow(1, 0, vocab)?.detach();
        parts.push(chunk_kl(&ls, &lt, temperature, direction)?);
    }
    match parts.is_empty() {
        true => Tensor::zeros(rows, widened(hs.dtype()), hs.device()),
        false => Tensor::cat(&parts, 0),
    }
}

/// KL per row of two logits chunks (n, v) → (n,) through candle's ops, differentiable in
/// `student` only: the autograd formulation, for output projections that are not a plain matrix.
pub fn chunk_kl(student: &Tensor, teacher: &Tensor, temperature: f64, direction: KlDirection) -> Result<Tensor> {
    Ok(kl_by_ops(student, teacher, temperature, direction, None)?.0)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;
    use crate::model::train_kernels::test_support::random;

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).unwrap().abs().unwrap().max_all().unwrap().to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
    }

    /// Kept or recomputed, in uneven chunks, both directions, T ≠ 1: the values and the
    /// gradients of h and W equal autograd through `chunk_kl` of the whole logits.
    #[test]
    fn values_and_gradients_match_autograd_kept_or_recomputed() -> Result<()> {
        let (n, d, dt, vocab) = (7, 5, 6, 23);
        let coeffs = Tensor::new(&[0.5, -1.0, 2.0, 0.0, 1.5, -0.25, 1.0], &Device::Cpu)?;
        for dtype in [DType::F64, DType::F32] {
            let tol = if dtype == DType::F64 { 1e-10 } else { 1e-5 };
            let h = Var::from_tensor(&(random(&[n, d], dtype, 1)? * 2.0)?)?;
            let w = Var::from_tensor(&(random(&[vocab, d], dtype, 2)? * 2.0)?)?;
            let (ht, wt) = ((random(&[n, dt], dtype, 3)? * 2.0)?, (random(&[vocab, dt], dtype, 4)? * 2.0)?);
            let c = coeffs.to_dtype(dtype)?;
            for direction in [KlDirection::Forward, KlDirection::Reverse] {
                let temperature = 0.8;
                let reference = chunk_kl(&h.matmul(&w.t()?)?, &ht.matmul(&wt.t()?)?, temperature, direction)?;
                let g_ref = (&reference * &c)?.sum_all()?.backward()?;
                for kept_bytes in [0, usize::MAX] {
                    let case = format!("{dtype:?} {direction:?} kept up to {kept_bytes}");
                    let ours = logit_kl(h.as_tensor(), w.as_tensor(), &ht, &wt, temperature, direction, 3, kept_bytes)?;
                    assert!(max_diff(&ours, &reference) < tol, "{case}: values differ by {}", max_diff(&ours, &reference));
                    let g = (&ours * &c)?.sum_all()?.backward()?;
                    for var in [&h, &w] {
                        let (a, b) = (g.get(var).expect("gradient"), g_ref.get(var).expect("gradient"));
                        assert!(max_diff(a, b) < tol, "{case}: gradients differ by {}", max_diff(a, b));
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn a_frozen_weight_gets_no_gradient_and_no_rows_give_an_empty_kl() -> Result<()> {
        let h = Var::from_tensor(&random(&[4, 3], DType::F32, 1)?)?;
        let w = random(&[6, 3], DType::F32, 2)?;
        let (ht, wt) = (random(&[4, 2], DType::F32, 3)?, random(&[6, 2], DType::F32, 4)?);
        let kl = logit_kl(h.as_tensor(), &w, &ht, &wt, 1.0, KlDirection::Reverse, 3, 0)?;
        let grads = kl.sum_all()?.backward()?;
        assert!(grads.get(&w).is_none());
        assert!(grads.get(h.as_tensor()).is_some());
        let none = logit_kl(&h.narrow(0, 0, 0)?, &w, &ht.narrow(0, 0, 0)?, &wt, 1.0, KlDirection::Forward, 3, 0)?;
        assert_eq!(none.dims(), &[0]);
        Ok(())
    }
}
