//! Log-probs of target tokens straight from hidden states and the output projection, with a
//! backward pass that recomputes each chunk's logits instead of keeping them, unless all of
//! them fit `KEPT_LOGITS_BYTES`.
//!
//! Autograd through `log_softmax(h Wᵀ)` keeps every (rows × vocab) logits chunk alive until
//! backward: 16 × 200 tokens × 151,936 vocab is 1.9 GB per copy in f32, and the graph holds
//! several. Here the forward pass runs without a graph, and `attach_grad` gives the result a
//! backward that rebuilds one chunk at a time:
//!   d lp_i / d z_i = (onehot(t_i) − softmax(z_i)) / T,  z_i = h_i Wᵀ / T,
//! so dh = dz W and dW = dzᵀ h, accumulated chunk by chunk. A small batch (one GRPO
//! micro-batch, a few hundred completion rows) keeps its one logits tensor instead, which saves
//! the recomputation: a quarter of the output projection's products.

use candle_core::{DType, Result, Tensor, D};

use super::custom_grad::attach_grad;
use super::matmul::matmul;
use super::norm::widened;
use super::projection_grad::{project_back, row_chunks, worth_keeping};
use super::qwen2::log_softmax;
use super::train_kernels;

/// Per-row log-probs (n) in the widened dtype (f32 for bf16 models), and entropies (n) without gradient when asked for.
pub struct TargetLogProbs {
    pub logprobs: Tensor,
    pub entropies: Option<Tensor>,
}

/// Logits up to this size (all rows × vocab) are computed in one chunk and kept for the
/// backward pass rather than recomputed.
pub const KEPT_LOGITS_BYTES: usize = 512 << 20;

/// log softmax(h Wᵀ / T)[target] for each row of `hidden` (n, d), `weight` (vocab, d),
/// `targets` (n) u32, processed `chunk_rows` rows at a time in both directions (or in one
/// kept chunk when it fits `KEPT_LOGITS_BYTES`).
pub fn target_logprobs(
    hidden: &Tensor,
    weight: &Tensor,
    targets: &Tensor,
    temperature: f64,
    with_entropy: bool,
    chunk_rows: usize,
) -> Result<TargetLogProbs> {
    logprobs_keeping(hidden, weight, targets, temperature, with_entropy, chunk_rows, KEPT_LOGITS_BYTES)
}

/// `target_logprobs` with the budget for kept logits as a parameter.
fn logprobs_keeping(
    hidden: &Tensor,
    weight: &Tensor,
    targets: &Tensor,
    temperature: f64,
    with_entropy: bool,
    chunk_rows: usize,
    kept_bytes: usize,
) -> Result<TargetLogProbs> {
    let n = hidden.dim(0)?;
    let keep = worth_keeping(hidden, weight, hidden.dtype().size_in_bytes(), kept_bytes)?;
    let chunk_rows = if keep { n.max(1) } else { chunk_rows.max(1) };
    let targets = targets.reshape((n, 1))?;
    let (h, w) = (hidden.detach(), weight.detach());
    let kept = std::cell::RefCell::new(None);
    let logits = |start: usize, rows: usize| {
        let z = matmul(&h.narrow(0, start, rows)?, &w.t()?)?;
        if keep {
            *kept.borrow_mut() = Some(z.clone());
        }
        Ok(z)
    };
    let out = chunked_logprobs(&targets, temperature, with_entropy, chunk_rows, widened(hidden.dtype()), logits)?;
    let kept = kept.into_inner();
    let backward =
        move |h: &Tensor, w: &Tensor, grad: &Tensor| recomputed_backward(h, w, grad, &targets, temperature, chunk_rows, kept.as_ref());
    let logprobs = attach_grad("recomputed-target-logprobs", hidden, weight, &out.logprobs, Box::new(backward))?;
    Ok(TargetLogProbs { logprobs, entropies: out.entropies })
}

/// Log-probs (n) of `targets` (n, 1) and entropies (n) when asked for, from `logits(start, rows)`
/// of each chunk; differentiable exactly when the logits are. `dtype` is the result's when n = 0.
pub(crate) fn chunked_logprobs(
    targets: &Tensor,
    temperature: f64,
    with_entropy: bool,
    chunk_rows: usize,
    dtype: DType,
    logits: impl Fn(usize, usize) -> Result<Tensor>,
) -> Result<TargetLogProbs> {
    let n = targets.dim(0)?;
    let mut logps = Vec::new();
    let mut entropies = Vec::new();
    for (start, rows) in row_chunks(n, chunk_rows) {
        let chunk = logits(start, rows)?;
        if !chunk.track_op() && train_kernels::fusable(&chunk) {
            let targets = targets.narrow(0, start, rows)?.flatten_all()?.to_vec1::<u32>()?;
            let (lp, h) = train_kernels::vocab_logprobs(&chunk, &targets, temperature, with_entropy)?;
            logps.push(lp);
            entropies.extend(h);
            continue;
        }
        let logp_all = log_softmax(&widened_and_scaled(chunk, temperature)?)?;
        logps.push(logp_all.gather(&targets.narrow(0, start, rows)?, 1)?.squeeze(1)?);
        if with_entropy {
            entropies.push((logp_all.exp()? * &logp_all)?.sum(D::Minus1)?.neg()?);
        }
    }
    let cat = |parts: &[Tensor]| -> Result<Tensor> {
        match parts {
            [] => Tensor::zeros(n, dtype, targets.device()),
            _ => Tensor::cat(parts, 0)?.contiguous(),
        }
    };
    Ok(TargetLogProbs { logprobs: cat(&logps)?, entropies: if with_entropy { Some(cat(&entropies)?) } else { None } })
}

/// Logits in f32 for bf16 models (the softmax needs the range), divided by T.
pub(crate) fn widened_and_scaled(logits: Tensor, temperature: f64) -> Result<Tensor> {
    let logits = logits.to_dtype(widened(logits.dtype()))?;
    if temperature == 1.0 {
        Ok(logits)
    } else {
        logits / temperature
    }
}

/// d lp / d(h, W) for the rows of `hidden`, one chunk of logits at a time (the `kept` logits
/// of all rows when there are, recomputed otherwise).
fn recomputed_backward(
    hidden: &Tensor,
    weight: &Tensor,
    grad: &Tensor,
    targets: &Tensor,
    temperature: f64,
    chunk_rows: usize,
    kept: Option<&Tensor>,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let w = weight.detach();
    let dtype = hidden.dtype();
    let grad = grad.detach().to_dtype(widened(dtype))?.reshape((hidden.dim(0)?, 1))?;
    project_back(hidden, weight, chunk_rows, |_, start, rows, hc| {
        let g = grad.narrow(0, start, rows)?;
        let logits = match kept {
            Some(z) if z.dim(0)? == rows => z.clone(),
            _ => matmul(hc, &w.t()?)?,
        };
        // dz = (onehot(target) − p) · g / T
        if train_kernels::fusable(&logits) {
            let t = targets.narrow(0, start, rows)?.flatten_all()?.to_vec1::<u32>()?;
            let g = g.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            return train_kernels::vocab_logprob_grad(&logits, &t, &g, temperature);
        }
        let probs = candle_nn::ops::softmax_last_dim(&widened_and_scaled(logits, temperature)?)?;
        let dz = probs.broadcast_mul(&g)?.neg()?;
        let dz = dz.scatter_add(&targets.narrow(0, start, rows)?, &g, 1)?;
        let dz = if temperature == 1.0 { dz } else { (dz / temperature)? };
        dz.to_dtype(dtype)
    })
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    /// The plain autograd formulation the op replaces.
    fn reference(h: &Tensor, w: &Tensor, targets: &Tensor, temperature: f64) -> Result<Tensor> {
        let logits = (h.matmul(&w.t()?)? / temperature)?;
        log_softmax(&logits)?.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
    }

    #[test]
    fn values_and_gradients_match_autograd_with_uneven_chunks() -> Result<()> {
        let dev = Device::Cpu;
        let (n, d, vocab) = (7, 5, 11);
        let h = Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, d), &dev)?)?;
        let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (vocab, d), &dev)?)?;
        let targets = Tensor::new(&[3u32, 0, 10, 7, 7, 1, 4], &dev)?;
        // Uneven per-row weights, as a GRPO loss gives, so the op's incoming gradient is not uniform.
        let coeffs = Tensor::new(&[0.5f32, -1.0, 2.0, 0.0, 1.5, -0.25, 1.0], &dev)?;
        // Budget 0: recomputed in chunks of 3 rows; the default budget: one kept chunk.
        for (temperature, kept_bytes) in [(1.0, 0), (0.7, 0), (1.0, KEPT_LOGITS_BYTES), (0.7, KEPT_LOGITS_BYTES)] {
            let ours = logprobs_keeping(h.as_tensor(), w.as_tensor(), &targets, temperature, true, 3, kept_bytes)?;
            let theirs = reference(h.as_tensor(), w.as_tensor(), &targets, temperature)?;
            assert!(max_abs_diff(&ours.logprobs, &theirs) < 1e-5);

            let g_ours = (&ours.logprobs * &coeffs)?.sum_all()?.backward()?;
            let g_theirs = (&theirs * &coeffs)?.sum_all()?.backward()?;
            for var in [&h, &w] {
                let (a, b) = (g_ours.get(var).expect("grad"), g_theirs.get(var).expect("grad"));
                assert!(max_abs_diff(a, b) < 1e-5, "T={temperature}: gradients differ by {}", max_abs_diff(a, b));
            }
        }
        Ok(())
    }

    #[test]
    fn entropy_matches_its_definition() -> Result<()> {
        let dev = Device::Cpu;
        let h = Tensor::new(&[[0.3f32, -1.2], [2.0, 0.5]], &dev)?;
        let w = Tensor::new(&[[1.0f32, 0.0], [0.0, 1.0], [1.0, 1.0]], &dev)?;
        let out = target_logprobs(&h, &w, &Tensor::new(&[0u32, 2], &dev)?, 1.0, true, 1)?;
        let entropies: Vec<f32> = out.entropies.expect("asked for").to_vec1()?;
        for (row, e) in [[0.3f64, -1.2, -0.9], [2.0, 0.5, 2.5]].iter().zip(entropies) {
            let z: f64 = row.iter().map(|x| x.exp()).sum();
            let expected: f64 = row.iter().map(|x| -(x.exp() / z) * (x - z.ln())).sum();
            assert!((expected - e as f64).abs() < 1e-5, "{expected} vs {e}");
        }
        Ok(())
    }

    #[test]
    fn a_frozen_weight_gets_no_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let h = Var::from_tensor(&Tensor::randn(0f32, 1.0, (4, 3), &dev)?)?;
        let w = Tensor::randn(0f32, 1.0, (6, 3), &dev)?;
        let out = target_logprobs(h.as_tensor(), &w, &Tensor::new(&[1u32, 2, 3, 4], &dev)?, 1.0, false, 2)?;
        let grads = out.logprobs.sum_all()?.backward()?;
        assert!(grads.get(&w).is_none());
        assert!(grads.get(&h).is_some());
        Ok(())
    }
}
