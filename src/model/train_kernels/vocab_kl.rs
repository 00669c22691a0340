//! Per-row KL between the next-token distributions of two (rows, vocab) logits chunks, and its
//! gradient in the first (the student's), in five or six passes over each pair of rows where
//! candle's ops make about ten vocab-sized temporaries. Used without autograd: `logit_kl`
//! supplies the backward. Rows are independent, so the result is the same on every run.

use candle_core::{DType, Result, Tensor};
use rayon::prelude::*;

use super::cpu::{tensor, with_slice, Real};
use super::vocab_softmax::max_and_lse;
use crate::model::logit_kl::KlDirection;

/// KL of one row pair, both divided by T (`inv_t` = 1/T); with `dz` = (out, g/T), also
/// d(g·KL)/d z_s into `out`.
fn row_kl<T: Real>(zs: &[T], zt: &[T], inv_t: T, direction: KlDirection, dz: Option<(&mut [T], T)>) -> T {
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
    let Some((out, g)) = dz else { return kl };
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
    kl
}

/// KL per row (rows) between softmax(z_s / T) and softmax(z_t / T) of `student` and `teacher`
/// (rows, vocab), same f32/f64 dtype, on the CPU; with `grad` (g per row), also
/// d(Σ g·KL)/d z_s (rows, vocab).
pub(crate) fn vocab_kl(
    student: &Tensor,
    teacher: &Tensor,
    temperature: f64,
    direction: KlDirection,
    grad: Option<&[f64]>,
) -> Result<(Tensor, Option<Tensor>)> {
    let (rows, vocab) = student.dims2()?;
    if teacher.dims2()? != (rows, vocab) || teacher.dtype() != student.dtype() {
        candle_core::bail!("KL: student logits {:?} {:?}, teacher {:?} {:?}", student.dims(), student.dtype(), teacher.dims(), teacher.dtype());
    }
    if vocab == 0 || grad.is_some_and(|g| g.len() != rows) {
        candle_core::bail!("KL: {rows} rows of {vocab} logits, {:?} gradients", grad.map(<[f64]>::len));
    }
    fn run<T: Real>(zs: &Tensor, zt: &Tensor, temperature: f64, direction: KlDirection, grad: Option<&[f64]>) -> Result<(Tensor, Option<Tensor>)> {
        let (rows, vocab) = zs.dims2()?;
        let inv_t = T::one() / T::from(temperature).unwrap_or_else(T::one);
        with_slice::<T, _>(zs, |s| {
            with_slice::<T, _>(zt, |t| {
                let pair = |r: usize| (&s[r * vocab..(r + 1) * vocab], &t[r * vocab..(r + 1) * vocab]);
                let mut kl = vec![T::zero(); rows];
                let dz = match grad {
                    Some(g) => {
                        let mut dz = vec![T::zero(); rows * vocab];
                        dz.par_chunks_mut(vocab).zip(kl.par_iter_mut()).enumerate().for_each(|(r, (out, k))| {
                            let (a, b) = pair(r);
                            let g = T::from(g[r]).unwrap_or_else(T::zero) * inv_t;
                            *k = row_kl(a, b, inv_t, direction, Some((out, g)));
                        });
                        Some(tensor(dz, (rows, vocab))?)
                    }
                    None => {
                        kl.par_iter_mut().enumerate().for_each(|(r, k)| {
                            let (a, b) = pair(r);
                            *k = row_kl(a, b, inv_t, direction, None);
                        });
                        None
                    }
                };
                Ok((tensor(kl, rows)?, dz))
            })
        })
    }
    match student.dtype() {
        DType::F32 => run::<f32>(student, teacher, temperature, direction, grad),
        _ => run::<f64>(student, teacher, temperature, direction, grad),
    }
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

                    let (kl, none) = vocab_kl(zs.as_tensor(), &zt, temperature, direction, None)?;
                    assert!(none.is_none());
                    let (kl_too, dz) = vocab_kl(zs.as_tensor(), &zt, temperature, direction, Some(&g))?;
                    let dz = dz.expect("asked for");
                    // Relative to the values' own size: f32 sums of a dozen nats round at ~1e-6 each.
                    let size = |x: &Tensor| -> Result<f64> { x.abs()?.max_all()?.to_dtype(DType::F64)?.to_scalar::<f64>().map(|m| m.max(1.0)) };
                    let (kl_scale, scale) = (size(&reference)?, size(ref_dz)?);
                    assert!(max_diff(&kl, &reference) < tol * kl_scale, "{case}: KL differs by {} (max {kl_scale})", max_diff(&kl, &reference));
                    assert_eq!(max_diff(&kl, &kl_too), 0.0, "{case}: KL depends on whether the gradient is asked for");
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
            let (kl, dz) = vocab_kl(&z, &z, 0.8, direction, Some(&[1.0, 1.0, 1.0]))?;
            assert_eq!(kl.abs()?.max_all()?.to_scalar::<f32>()?, 0.0);
            assert!(dz.expect("asked for").abs()?.max_all()?.to_scalar::<f32>()? < 1e-7);
        }
        Ok(())
    }

    #[test]
    fn mismatched_chunks_are_an_error() {
        let a = Tensor::zeros((2, 4), DType::F32, &Device::Cpu).unwrap();
        let b = Tensor::zeros((2, 5), DType::F32, &Device::Cpu).unwrap();
        assert!(vocab_kl(&a, &b, 1.0, KlDirection::Forward, None).is_err());
        assert!(vocab_kl(&a, &a.to_dtype(DType::F64).unwrap(), 1.0, KlDirection::Forward, None).is_err());
        assert!(vocab_kl(&a, &a, 1.0, KlDirection::Forward, Some(&[1.0])).is_err());
    }
}
