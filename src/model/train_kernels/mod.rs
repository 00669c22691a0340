//! Fused CPU kernels for the training forward, each one autograd node with a hand-written
//! backward.
//!
//! candle's backward pass gives every node's input a fresh zero tensor and adds the incoming
//! gradient into it, so the cost of a backward pass is set by the number of nodes more than by
//! their arithmetic: a decoder layer built from candle's element-wise ops has ~100 nodes, with
//! these kernels about a third of that. CUDA and half precision keep candle's ops.

mod cpu;
mod fast_exp;
mod heads;
mod masked_softmax;
mod rms_norm;
mod swiglu;
mod vocab_kl;
mod vocab_softmax;

pub(crate) use cpu::{slice, Real};
pub(crate) use heads::{merge_heads, split_heads, Rotation};
pub(crate) use masked_softmax::masked_softmax;
pub(crate) use rms_norm::rms_norm;
pub(crate) use swiglu::swiglu;
pub(crate) use vocab_kl::{vocab_kl, vocab_kl_grad, KlRow};
pub(crate) use vocab_softmax::{vocab_logprob_grad, vocab_logprobs};

use candle_core::{DType, Tensor};

/// Whether the kernels here can run on `x` (CPU, f32 or f64).
pub(crate) fn fusable(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

#[cfg(test)]
pub(crate) mod test_support;
