//! Per-row KL between the next-token distributions of two (rows, vocab) logits chunks in five
//! passes over each pair of rows, and its gradient in the first (the student's) in one more
//! from what the KL pass found, where candle's ops make about ten vocab-sized temporaries. Used
//! without autograd: `logit_kl` supplies the backward. Rows are independent, so the result is
//! the same on every run.

use candle_core::{DType, Result, Tensor};
use rayon::prelude::*;

use super::cpu::{tensor, with_slice, Real};
use super::vocab_softmax::max_and_lse;
use crate::model::logit_kl::KlDirection;

/// What the gradient reuses of a row's forward pass: KL, and log p = z/T − shift for each side.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KlRow {
    pub kl: f64,
    shift_s: f64,
    shift_t: f64,
}

/// KL of one row pair, both divided by T (`inv_t` = 1/T).
fn row_kl<T: Real>(zs: &[T], zt: &[T], inv_t: T, direction: KlDirection) -> KlRow {
    // log p = z/T − c, with c = max + log Σ exp(z/T − max).
    let shift = |row: &[T]| {
        let (max, lse) = max_and_lse(row, inv_t);
        max + lse
    };
    let (cs, ct) = (shift(zs), shift(zt));
    let (zp, cp, zq, cq) = match direction {
        KlDirection::Forward => (zt, ct, zs, cs),
        KlDirection::Reverse => (zs, cs, zt, ct),
    };
    // KL(p ‖ q) = Σ p (log p − log q), the terms in blocks so the exponentials vectorise and
    // the sum still adds in order.
    const BLOCK: usize = 64;
    let mut buf = [T::zero(); BLOCK];
    let mut kl = T::zero();
    for (p, q) in zp.chunks(BLOCK).zip(zq.chunks(BLOCK)) {
        for ((b, &a), &c) in buf.iter_mut().zip(p).zip(q) {
            let (lp, lq) = (a * inv_t - cp, c * inv_t - cq);
            *b = lp.fast_exp() * (lp - lq);
        }
        kl = buf[..p.len()].iter().fold(kl, |acc, &v| acc + v);
    }
    let f = |x: T| x.to_f64();
    KlRow { kl: f(kl), shift_s: f(cs), shift_t: f(ct) }
}

/// d(g·KL)/d z_s of one row pair into `out`, `g` already divided by T: one pass, since `row`
/// holds what the forward pass found.
fn row_grad<T: Real>(zs: &[T], zt: &[T], inv_t: T, direction: KlDirection, row: KlRow, g: T, out: &mut [T]) {
    let t = |x: f64| T::from(x).unwrap_or_else(T::nan);
    let (cs, ct, kl) = (t(row.shift_s), t(row.shift_t), t(row.kl));
    let pairs = out.iter_mut().zip(zs.iter().zip(zt));
    match direction {
        // d KL(t ‖ s) / d z_s = (p_s − p_t) / T
        KlDirection::Forward => {
            for (o, (&a, &b)) in pairs {
                *o = ((a * inv_t - cs).fast_exp() - (b * inv_t - ct).fast_exp()) * g;
            }
        }
        // d KL(s ‖ t) / d z_s = p_s ⊙ (log p_s − log p_t − KL) / T
        KlDirection::Reverse => {
            for (o, (&a, &b)) in pairs {
                let (ls, lt) = (a * inv_t - cs, b * inv_t - ct);
                *o = ls.fast_exp() * (ls - lt - kl) * g;
            }
        }
    }
}

/// KL per row (rows) between softmax(z_s / T) and softmax(z_t / T) of `student` and `teacher`
/// (rows, vocab), same f32/f64 dtype, on the CPU, with what `vocab_kl_grad` reuses per row.
pub(crate) fn vocab_kl(student: &Tensor, teacher: &Tensor, temperature: f64, direction: KlDirection) -> Result<(Tensor, Vec<KlRow>)> {
    let (_, vocab) = check(student, teacher)?;
    fn run<T: Real>(zs: &Tensor, zt: &Tensor, vocab: usize, temperature: f64, direction: KlDirection) -> Result<Vec<KlRow>> {
        let inv_t = inverse::<T>(temperature);
        with_slice::<T, _>(zs, |s| {
            with_slice::<T, _>(zt, |t| {
                let rows = s.len() / vocab;
                Ok((0..rows)
                    .into_par_iter()
                    .map(|r| row_kl(&s[r * vocab..(r + 1) * vocab], &t[r * vocab..(r + 1) * vocab], inv_t, direction))
                    .collect())
            })
        })
    }
    let stats = match student.dtype() {
        DType::F32 => run::<f32>(student, teacher, vocab, temperature, direction)?,
        _ => run::<f64>(student, teacher, vocab, temperature, direction)?,
    };
    let kl = Tensor::from_iter(stats.iter().map(|r| r.kl), student.device())?.to_dtype(student.dtype())?;
    Ok((kl, stats))
}

/// d(Σ g·KL)/d z_s (rows, vocab) for g per row, from the logits and the rows `vocab_kl` gave.
pub(crate) fn vocab_kl_grad(
    student: &Tensor,
    teacher: &Tensor,
    stats: &[KlRow],
    grad: &[f64],
    temperature: f64,
    direction: KlDirection,
) -> Result<Tensor> {
    let (rows, _) = check(student, teacher)?;
    if grad.len() != rows || stats.len() != rows {
        candle_core::bail!("KL gradient: {rows} rows, {} gradients, {} forward rows", grad.len(), stats.len());
    }
    fn run<T: Real>(zs: &Tensor, zt: &Tensor, stats: &[KlRow], grad: &[f64], temperature: f64, direction: KlDirection) -> Result<Tensor> {
        let (rows, vocab) = zs.dims2()?;
        let inv_t = inverse::<T>(temperature);
        let dz = with_slice::<T, _>(zs, |s| {
            with_slice::<T, _>(zt, |t| {
                let mut dz = vec![T::zero(); rows * vocab];
                dz.par_chunks_mut(vocab).enumerate().for_each(|(r, out)| {
                    let g = T::from(grad[r]).unwrap_or_else(T::zero) * inv_t;
                    row_grad(&s[r * vocab..(r + 1) * vocab], &t[r * vocab..(r + 1) * vocab], inv_t, direction, stats[r], g, out);
                });
                Ok(dz)
            })
        })?;
        tensor(dz, (rows, vocab))
    }
    match student.dtype() {
        DType::F32 => run::<f32>(student, teacher, stats, grad, temperature, direction),
        _ => run::<f64>(student, teacher, stats, grad, temperature, direction),
    }
}

fn inverse<T: Real>(temperature: f64) -> T {
    T::one() / T::from(temperature).unwrap_or_else(T::one)
}

/// (rows, vocab) of two chunks of the same shape and dtype, with a non-empty vocab.
fn check(student: &Tensor, teacher: &Tensor) -> Result<(usize, usize)> {
    let (rows, vocab) = student.dims2()?;
    if teacher.dims2()? != (rows, vocab) || teacher.dtype() != student.dtype() || vocab == 0 {
        candle_core::bail!(
            "KL: student logits {:?} {:?}, teacher {:?} {:?}",
            student.dims(),
            student.dtype(),
            teacher.dims(),
            teacher.dtype()
        );
    }
    Ok((rows, vocab))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::logit_kl::chunk_kl;
    use crate::model::train_kernels::test_support::random;
    use candle_core::{Device, Var};

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
    }

    /// Values and gradients equal candle's autograd through `chunk_kl`, both directions, T ≠ 1,
    /// logits spread wide enough that some probabilities underflow in f32.
    #[test]
    fn kl_and_gradient_equal_autograd_through_chunk_kl() -> Result<()> {
        let (rows, vocab) = (6, 203);
        let g = [1.0, -0.5, 2.0, 0.0, 0.25, 3.0];
        for dtype in [DType::F64, DType::F32] {
            let tol = if dtype == DType::F64 { 1e-10 } else { 1e-5 };
            for (temperature, spread) in [(0.7, 6.0), (1.0, 40.0), (2.5, 3.0)] {
                let zs = Var::from_tensor(&(random(&[rows, vocab], dtype, 5)? * spread)?)?;
                let zt = (random(&[rows, vocab], dtype, 6)? * spread)?;
                for direction in [KlDirection::Forward, KlDirection::Reverse] {
                    let case = format!("{dtype:?} T={temperature} spread={spread} {direction:?}");
                    let reference = chunk_kl(zs.as_tensor(), &zt, temperature, direction)?;
                    let gt = Tensor::new(&g, &Device::Cpu)?.to_dtype(dtype)?;
                    let grads = (&reference * gt)?.sum_all()?.backward()?;
                    let ref_dz = grads.get(zs.as_tensor()).expect("student gradient");

                    let (kl, rows) = vocab_kl(zs.as_tensor(), &zt, temperature, direction)?;
                    let dz = vocab_kl_grad(zs.as_tensor(), &zt, &rows, &g, temperature, direction)?;
                    // Relative to the values' own size: f32 sums of a dozen nats round at ~1e-6 each.
                    let size =
                        |x: &Tensor| -> Result<f64> { x.abs()?.max_all()?.to_dtype(DType::F64)?.to_scalar::<f64>().map(|m| m.max(1.0)) };
                    let (kl_scale, scale) = (size(&reference)?, size(ref_dz)?);
                    assert!(
                        max_diff(&kl, &reference) < tol * kl_scale,
                        "{case}: KL differs by {} (max {kl_scale})",
                        max_diff(&kl, &reference)
                    );
                    assert!(max_diff(&dz, ref_dz) < tol * scale, "{case}: gradients differ by {}", max_diff(&dz, ref_dz));
                }
            }
        }
        Ok(())
    }

    #[test]
    fn kl_of_a_distribution_with_itself_is_zero() -> Result<()> {
        let z = (random(&[3, 50], DType::F32, 2)? * 5.0)?;
        for direction in [KlDirection::Forward, KlDirection::Reverse] {
            let (kl, rows) = vocab_kl(&z, &z, 0.8, direction)?;
            assert_eq!(kl.abs()?.max_all()?.to_scalar::<f32>()?, 0.0);
            assert!(vocab_kl_grad(&z, &z, &rows, &[1.0; 3], 0.8, direction)?.abs()?.max_all()?.to_scalar::<f32>()? < 1e-7);
        }
        Ok(())
    }

    #[test]
    fn mismatched_chunks_are_an_error() {
        let a = Tensor::zeros((2, 4), DType::F32, &Device::Cpu).unwrap();
        let b = Tensor::zeros((2, 5), DType::F32, &Device::Cpu).unwrap();
        assert!(vocab_kl(&a, &b, 1.0, KlDirection::Forward).is_err());
        assert!(vocab_kl(&a, &a.to_dtype(DType::F64).unwrap(), 1.0, KlDirection::Forward).is_err());
        let (_, rows) = vocab_kl(&a, &a, 1.0, KlDirection::Forward).unwrap();
        assert!(vocab_kl_grad(&a, &a, &rows, &[1.0], 1.0, KlDirection::Forward).is_err());
    }
}
