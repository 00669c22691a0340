//! Per-row log-probs of target tokens (and entropies), and their logits gradient, straight from
//! a (rows, vocab) logits chunk in two passes over each row, where candle's ops make about eight
//! vocab-sized temporaries. Used without autograd: `target_logprobs` supplies the backward.

use candle_core::{DType, Result, Tensor};

use super::cpu::{for_rows, tensor, with_slice, Real};
use super::fast_exp::sum_exp;

/// The max and log Σ exp of (z − max) over a row already divided by T.
pub(super) fn max_and_lse<T: Real>(row: &[T], inv_t: T) -> (T, T) {
    // Eight running maxima so the loop vectorises (max is exact, so the order does not matter).
    let mut lanes = [T::neg_infinity(); 8];
    for chunk in row.chunks(8) {
        for (m, &v) in lanes.iter_mut().zip(chunk) {
            *m = if v * inv_t > *m { v * inv_t } else { *m };
        }
    }
    let max = lanes.iter().fold(T::neg_infinity(), |m, &v| num_traits::Float::max(m, v));
    (max, sum_exp(row, inv_t, max).ln())
}

fn logprobs<T: Real>(z: &[T], targets: &[u32], vocab: usize, temperature: f64, with_entropy: bool) -> (Vec<T>, Option<Vec<T>>) {
    let inv_t = T::one() / T::from(temperature).unwrap_or_else(T::one);
    let rows = targets.len();
    // Row r's (log-prob, entropy), computed in parallel, then split.
    let mut both = vec![T::zero(); 2 * rows];
    for_rows(&mut both, 2, |r, out| {
        let row = &z[r * vocab..(r + 1) * vocab];
        let (max, lse) = max_and_lse(row, inv_t);
        out[0] = row[targets[r] as usize] * inv_t - max - lse;
        if with_entropy {
            // H = −Σ p log p = lse' − Σ p z', with z' = z/T − max and lse' = log Σ exp z'.
            let mean_z = row.iter().fold(T::zero(), |acc, &v| {
                let zs = v * inv_t - max;
                acc + (zs - lse).fast_exp() * zs
            });
            out[1] = lse - mean_z;
        }
    });
    let logp = both.iter().step_by(2).copied().collect();
    let entropy = with_entropy.then(|| both.iter().skip(1).step_by(2).copied().collect());
    (logp, entropy)
}

/// log softmax(z / T)[target] per row of `logits` (rows, vocab) f32/f64 on the CPU, and the
/// entropies of softmax(z / T) when asked for.
pub(crate) fn vocab_logprobs(logits: &Tensor, targets: &[u32], temperature: f64, with_entropy: bool) -> Result<(Tensor, Option<Tensor>)> {
    let (rows, vocab) = logits.dims2()?;
    check_targets(targets, rows, vocab)?;
    fn run<T: Real>(z: &Tensor, t: &[u32], v: usize, temp: f64, ent: bool) -> Result<(Tensor, Option<Tensor>)> {
        let (lp, h) = with_slice::<T, _>(z, |zs| Ok(logprobs(zs, t, v, temp, ent)))?;
        let n = t.len();
        Ok((tensor(lp, n)?, h.map(|h| tensor(h, n)).transpose()?))
    }
    match logits.dtype() {
        DType::F32 => run::<f32>(logits, targets, vocab, temperature, with_entropy),
        _ => run::<f64>(logits, targets, vocab, temperature, with_entropy),
    }
}

/// d lp / d z = (onehot(target) − softmax(z / T)) · g / T per row, (rows, vocab).
pub(crate) fn vocab_logprob_grad(logits: &Tensor, targets: &[u32], grad: &[f64], temperature: f64) -> Result<Tensor> {
    let (rows, vocab) = logits.dims2()?;
    check_targets(targets, rows, vocab)?;
    fn run<T: Real>(z: &Tensor, targets: &[u32], grad: &[f64], temperature: f64, vocab: usize) -> Result<Tensor> {
        let inv_t = T::one() / T::from(temperature).unwrap_or_else(T::one);
        let dz = with_slice::<T, _>(z, |zs| {
            let mut dz = vec![T::zero(); zs.len()];
            for_rows(&mut dz, vocab, |r, out| {
                let row = &zs[r * vocab..(r + 1) * vocab];
                let (max, lse) = max_and_lse(row, inv_t);
                let g = T::from(grad[r]).unwrap_or_else(T::zero) * inv_t;
                for (o, &v) in out.iter_mut().zip(row) {
                    *o = -(v * inv_t - max - lse).fast_exp() * g;
                }
                let t = targets[r] as usize;
                out[t] += g;
            });
            Ok(dz)
        })?;
        tensor(dz, (targets.len(), vocab))
    }
    match logits.dtype() {
        DType::F32 => run::<f32>(logits, targets, grad, temperature, vocab),
        _ => run::<f64>(logits, targets, grad, temperature, vocab),
    }
}

fn check_targets(targets: &[u32], rows: usize, vocab: usize) -> Result<()> {
    if targets.len() != rows {
        candle_core::bail!("log-probs: {} targets for {rows} rows of logits", targets.len());
    }
    if let Some(&bad) = targets.iter().find(|&&t| t as usize >= vocab) {
        candle_core::bail!("log-probs: target token {bad} is outside the vocabulary ({vocab})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::train_kernels::test_support::random;
    use candle_core::{Device, Var, D};

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
    }

    #[test]
    fn log_probs_entropies_and_gradient_equal_autograd() -> Result<()> {
        let (rows, vocab, temperature) = (5, 37, 0.7);
        let targets = [0u32, 36, 5, 5, 20];
        let g = [1.0, -0.5, 2.0, 0.0, 0.25];
        for dtype in [DType::F64, DType::F32] {
            let tol = if dtype == DType::F64 { 1e-12 } else { 1e-5 };
            let z = Var::from_tensor(&(random(&[rows, vocab], dtype, 13)? * 6.0)?)?;
            let (lp, h) = vocab_logprobs(z.as_tensor(), &targets, temperature, true)?;
            // Reference: candle's log-softmax, gather, −Σ p log p, and autograd.
            let logp = candle_nn::ops::log_softmax(&(z.as_tensor() / temperature)?, D::Minus1)?;
            let idx = Tensor::new(&targets, &Device::Cpu)?.unsqueeze(1)?;
            let ref_lp = logp.gather(&idx, 1)?.squeeze(1)?;
            let ref_h = (logp.exp()? * &logp)?.sum(D::Minus1)?.neg()?;
            assert!(max_diff(&lp, &ref_lp) < tol, "log-probs differ by {}", max_diff(&lp, &ref_lp));
            assert!(max_diff(h.as_ref().unwrap(), &ref_h) < tol, "entropies differ");
            let gt = Tensor::new(&g, &Device::Cpu)?.to_dtype(dtype)?;
            let ref_dz = (ref_lp * gt)?.sum_all()?.backward()?.get(z.as_tensor()).unwrap().clone();
            let dz = vocab_logprob_grad(z.as_tensor(), &targets, &g, temperature)?;
            assert!(max_diff(&dz, &ref_dz) < tol, "gradients differ by {}", max_diff(&dz, &ref_dz));
        }
        Ok(())
    }

    #[test]
    fn a_target_outside_the_vocabulary_is_an_error() {
        let z = Tensor::zeros((1, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(vocab_logprobs(&z, &[4], 1.0, false).is_err());
        assert!(vocab_logprobs(&z, &[0, 1], 1.0, false).is_err());
    }
}
