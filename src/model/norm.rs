//! RMSNorm with a differentiable formulation for training and candle's fused kernel for inference.

use candle_core::{DType, Result, Tensor, D};

use super::kernels::Kernels;

#[derive(Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    pub fn new(weight: Tensor, eps: f64) -> Self {
        RmsNorm { weight, eps }
    }

    /// Normalises over the last dim.
    pub(crate) fn forward(&self, xs: &Tensor, kernels: Kernels) -> Result<Tensor> {
        if kernels == Kernels::Inference {
            return candle_nn::ops::rms_norm(&xs.contiguous()?, &self.weight, self.eps as f32);
        }
        if super::train_kernels::fusable(xs) {
            return super::train_kernels::rms_norm(xs, &self.weight, self.eps);
        }
        // As HF computes it: in f32, then back to the working dtype before the weight.
        let dtype = xs.dtype();
        let x = xs.to_dtype(widened(dtype))?;
        let mean_sq = x.sqr()?.mean_keepdim(D::Minus1)?;
        let x = x.broadcast_div(&(mean_sq + self.eps)?.sqrt()?)?;
        x.to_dtype(dtype)?.broadcast_mul(&self.weight)
    }
}

/// The dtype reductions run in: f32 for half precision, else the dtype itself (f64 stays f64).
pub(crate) fn widened(dtype: DType) -> DType {
    match dtype {
        DType::BF16 | DType::F16 => DType::F32,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_hand_computation_and_fused_kernel() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[3f32, 4.0], [1.0, -1.0]], &dev).unwrap();
        let w = Tensor::new(&[2f32, 0.5], &dev).unwrap();
        let norm = RmsNorm::new(w, 0.0);
        // Row 0: rms = sqrt((9 + 16) / 2) = 3.5355; row 1: rms = 1.
        let expected = [[3.0 / 3.535_534 * 2.0, 4.0 / 3.535_534 * 0.5], [2.0, -0.5]];
        for kernels in [Kernels::Training, Kernels::Inference] {
            let got: Vec<Vec<f32>> = norm.forward(&x, kernels).unwrap().to_vec2().unwrap();
            for (g, e) in got.iter().flatten().zip(expected.iter().flatten()) {
                assert!((g - e).abs() < 1e-5, "{kernels:?}: {g} vs {e}");
            }
        }
    }
}
