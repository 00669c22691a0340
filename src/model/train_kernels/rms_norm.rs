//! RMSNorm y = x · w / sqrt(mean(x²) + ε) over the last dim, one node with its backward.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

use super::cpu::{for_rows, slice, sum_over_rows, tensor, with_slice, Real};

/// x (…, d), w (d) → (…, d).
pub(crate) fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&w.contiguous()?, RmsNorm { eps })
}

struct RmsNorm {
    eps: f64,
}

/// 1 / sqrt(mean(x²) + ε) of one row.
fn inv_rms<T: Real>(row: &[T], eps: f64) -> T {
    let sum_sq = row.iter().fold(T::zero(), |acc, &v| acc + v * v);
    let n = T::from(row.len()).unwrap_or_else(T::one);
    T::one() / (sum_sq / n + T::from(eps).unwrap_or_else(T::zero)).sqrt()
}

fn forward<T: Real>(x: &[T], w: &[T], eps: f64) -> Vec<T> {
    let d = w.len();
    let mut y = vec![T::zero(); x.len()];
    for_rows(&mut y, d, |r, out| {
        let row = &x[r * d..(r + 1) * d];
        let inv = inv_rms(row, eps);
        for ((o, &v), &wi) in out.iter_mut().zip(row).zip(w) {
            *o = v * inv * wi;
        }
    });
    y
}

/// dx = r·(g∘w) − x·r³·⟨g∘w, x⟩/d per row, and when `with_dw`, dw = Σ_rows g∘x·r.
fn backward<T: Real>(x: &[T], w: &[T], g: &[T], eps: f64, with_dw: bool) -> (Vec<T>, Option<Vec<T>>) {
    let d = w.len();
    let n = T::from(d).unwrap_or_else(T::one);
    let mut dx = vec![T::zero(); x.len()];
    for_rows(&mut dx, d, |r, out| {
        let (row, grow) = (&x[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
        let inv = inv_rms(row, eps);
        let dot = row.iter().zip(grow).zip(w).fold(T::zero(), |acc, ((&v, &gi), &wi)| acc + gi * wi * v);
        let coeff = inv * inv * inv * dot / n;
        for (((o, &v), &gi), &wi) in out.iter_mut().zip(row).zip(grow).zip(w) {
            *o = inv * gi * wi - v * coeff;
        }
    });
    if !with_dw {
        return (dx, None);
    }
    let dw = sum_over_rows(x.len() / d.max(1), d, d, |r, acc| {
        let (row, grow) = (&x[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
        let inv = inv_rms(row, eps);
        for ((a, &v), &gi) in acc.iter_mut().zip(row).zip(grow) {
            *a += gi * v * inv;
        }
    });
    (dx, Some(dw))
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "fused-rms-norm"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let storage = match s1.dtype() {
            DType::F32 => CpuStorage::F32(forward::<f32>(slice(s1, l1)?, slice(s2, l2)?, self.eps)),
            DType::F64 => CpuStorage::F64(forward::<f64>(slice(s1, l1)?, slice(s2, l2)?, self.eps)),
            other => candle_core::bail!("fused-rms-norm: unsupported dtype {other:?}"),
        };
        Ok((storage, l1.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // A frozen weight (LoRA keeps the norms frozen) must not receive a gradient.
        fn run<T: Real>(x: &Tensor, w: &Tensor, g: &Tensor, eps: f64) -> Result<(Tensor, Option<Tensor>)> {
            let (dx, dw) = with_slice::<T, _>(x, |xs| {
                with_slice::<T, _>(w, |ws| with_slice::<T, _>(g, |gs| Ok(backward(xs, ws, gs, eps, w.track_op()))))
            })?;
            Ok((tensor(dx, x.shape())?, dw.map(|dw| tensor(dw, w.shape())).transpose()?))
        }
        let (dx, dw) = match x.dtype() {
            DType::F32 => run::<f32>(x, w, grad, self.eps)?,
            _ => run::<f64>(x, w, grad, self.eps)?,
        };
        Ok((Some(dx).filter(|_| x.track_op()), dw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::train_kernels::test_support::{assert_same_values_and_grads, random};

    /// The unfused formulation the model used before (and still uses off the CPU).
    fn reference(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
        let mean_sq = x.sqr()?.mean_keepdim(candle_core::D::Minus1)?;
        x.broadcast_div(&(mean_sq + eps)?.sqrt()?)?.broadcast_mul(w)
    }

    #[test]
    fn value_and_gradients_equal_the_unfused_graph() -> Result<()> {
        for dtype in [DType::F64, DType::F32] {
            let x = random(&[3, 5, 8], dtype, 1)?;
            let w = random(&[8], dtype, 2)?;
            assert_same_values_and_grads(&[x, w], |v| rms_norm(&v[0], &v[1], 1e-5), |v| reference(&v[0], &v[1], 1e-5))?;
        }
        Ok(())
    }

    #[test]
    fn a_frozen_weight_gets_no_gradient() -> Result<()> {
        let x = candle_core::Var::from_tensor(&random(&[4, 6], DType::F64, 11)?)?;
        let w = random(&[6], DType::F64, 12)?;
        let grads = rms_norm(x.as_tensor(), &w, 1e-6)?.sum_all()?.backward()?;
        assert!(grads.get(x.as_tensor()).is_some());
        assert!(grads.get(&w).is_none());
        Ok(())
    }

    #[test]
    fn hand_computed_rows() -> Result<()> {
        let x = Tensor::new(&[[3f64, 4.0], [1.0, -1.0]], &candle_core::Device::Cpu)?;
        let w = Tensor::new(&[2f64, 0.5], &candle_core::Device::Cpu)?;
        // Row 0: rms = sqrt(12.5); row 1: rms = 1.
        let got: Vec<Vec<f64>> = rms_norm(&x, &w, 0.0)?.to_vec2()?;
        let r = 12.5f64.sqrt();
        let expected = [[6.0 / r, 2.0 / r], [2.0, -0.5]];
        for (g, e) in got.iter().flatten().zip(expected.iter().flatten()) {
            assert!((g - e).abs() < 1e-12, "{g} vs {e}");
        }
        Ok(())
    }
}
