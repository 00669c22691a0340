//! Which kernels one forward runs on: the decoder's blocks ask this layer, never their callers.
//!
//! candle's fused inference kernels (rms_norm, softmax_last_dim, rope; CPU and CUDA) are the
//! fastest but have no backward pass. A forward that can be differentiated takes our fused CPU
//! training kernels on CPU f32/f64 (`train_kernels`, each one autograd node) and candle's
//! differentiable ops elsewhere (CUDA, half precision).

use candle_core::{Result, Tensor, D};

use super::train_kernels;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernels {
    /// No gradient will be taken: candle's fused kernels.
    Inference,
    /// Gradients may flow: differentiable kernels.
    Training,
}

impl Kernels {
    /// A forward that appends to a KV cache is generation, never differentiated; any other
    /// forward is differentiable exactly when a parameter of the model records gradients.
    pub(crate) fn for_forward(caching: bool, parameters_track_gradients: bool) -> Self {
        if caching || !parameters_track_gradients {
            Kernels::Inference
        } else {
            Kernels::Training
        }
    }

    /// Whether the training forward runs as (b·t, d) rows through the fused CPU kernels (never
    /// with a KV cache: a caching forward takes `Inference`).
    pub(crate) fn rows(self, xs: &Tensor) -> bool {
        self == Kernels::Training && train_kernels::fusable(xs)
    }

    /// Softmax over the last dim, computed in at least f32.
    pub(crate) fn softmax_last_dim(self, scores: &Tensor) -> Result<Tensor> {
        let dtype = scores.dtype();
        let s = scores.to_dtype(super::norm::widened(dtype))?;
        let p = match self {
            Kernels::Inference => candle_nn::ops::softmax_last_dim(&s)?,
            Kernels::Training => candle_nn::ops::softmax(&s, D::Minus1)?,
        };
        p.to_dtype(dtype)
    }
}

/// Whether any of `params` records gradients (a `Var`, or computed from one).
pub(crate) fn tracks_gradients<'a>(mut params: impl Iterator<Item = &'a Tensor>) -> bool {
    params.any(Tensor::track_op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn only_an_uncached_forward_over_tracked_parameters_trains() {
        assert_eq!(Kernels::for_forward(false, true), Kernels::Training);
        assert_eq!(Kernels::for_forward(true, true), Kernels::Inference);
        assert_eq!(Kernels::for_forward(false, false), Kernels::Inference);
        let plain = Tensor::zeros(2, candle_core::DType::F32, &Device::Cpu).unwrap();
        let var = Var::from_tensor(&plain).unwrap();
        assert!(!tracks_gradients([&plain].into_iter()));
        assert!(tracks_gradients([&plain, var.as_tensor()].into_iter()));
        // A value computed from a variable tracks too; a detached one does not.
        let derived = (var.as_tensor() * 2.0).unwrap();
        assert!(tracks_gradients([&derived].into_iter()));
        assert!(!tracks_gradients([&derived.detach()].into_iter()));
    }

    #[test]
    fn both_softmaxes_agree_and_only_training_is_differentiable() {
        let s = Var::from_tensor(&Tensor::new(&[[1f32, 2.0, 3.0], [0.5, -1.0, 0.0]], &Device::Cpu).unwrap()).unwrap();
        let fused = Kernels::Inference.softmax_last_dim(s.as_tensor()).unwrap();
        let plain = Kernels::Training.softmax_last_dim(s.as_tensor()).unwrap();
        let diff = (fused - &plain).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-6, "{diff}");
        let grads = plain.narrow(1, 0, 1).unwrap().sum_all().unwrap().backward().unwrap();
        // d p0 / d s0 = p0 (1 − p0) for row 0.
        let p0: f32 = plain.get(0).unwrap().get(0).unwrap().to_scalar().unwrap();
        let g: f32 = grads.get(&s).unwrap().get(0).unwrap().get(0).unwrap().to_scalar().unwrap();
        assert!((g - p0 * (1.0 - p0)).abs() < 1e-6, "{g} vs {}", p0 * (1.0 - p0));
    }
}
