//! y = x Wᵀ + b over any leading dims, as one 2-D matmul.
//!
//! candle-nn's `Linear` broadcasts W over the batch dim, which turns a decode step (b, 1, d)
//! into b separate vector products; flattening the leading dims gives one (b·t, d) GEMM.

use candle_core::{Result, Tensor};

use super::lora::LoraBranch;
use super::lora_matmul::lora_matmul;
use super::matmul::matmul;
use super::packed_linear::PackedLinear;
use super::xwt_matmul::xwt_matmul;

/// How a model keeps its projection matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WeightLayout {
    /// The checkpoint's (out, in) matrices only, shared with the trainer's variables.
    AsLoaded,
    /// Also a packed (CPU f32) or transposed copy of each: small-batch decoding reads it row by
    /// row, at the cost of a second copy of the matrices.
    ForDecoding,
}

#[derive(Clone)]
pub struct Linear {
    /// (out, in), as checkpoints store it.
    weight: Tensor,
    /// (in, out) contiguous, for decoding: gemm then reads W row by row instead of repacking
    /// the whole matrix on every call, which dominates small-batch decoding. Never set on a
    /// trainable model, whose weights change in place.
    weight_t: Option<Tensor>,
    /// W packed for small-batch products on the CPU: replaces `weight_t` where it applies.
    packed: Option<PackedLinear>,
    bias: Option<Tensor>,
    /// A LoRA branch added to the output; W itself stays frozen.
    lora: Option<LoraBranch>,
}

impl Linear {
    pub(crate) fn new(weight: Tensor, bias: Option<Tensor>, layout: WeightLayout) -> Result<Self> {
        let decoding = layout == WeightLayout::ForDecoding;
        let packed = if decoding && PackedLinear::supports(&weight) { Some(PackedLinear::new(&[(&weight, bias.as_ref())])?) } else { None };
        let weight_t = if decoding && packed.is_none() { Some(weight.t()?.contiguous()?) } else { None };
        Ok(Linear { weight, weight_t, packed, bias, lora: None })
    }

    pub(crate) fn with_lora(mut self, lora: Option<LoraBranch>) -> Self {
        self.lora = lora;
        self
    }

    /// W (out, in) when the layer is exactly x Wᵀ (no bias, no LoRA branch).
    pub fn plain_weight(&self) -> Option<&Tensor> {
        match (&self.bias, &self.lora) {
            (None, None) => Some(&self.weight),
            _ => None,
        }
    }

    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if let (Some(packed), None) = (&self.packed, &self.lora) {
            let [y] = packed.forward(xs)?;
            return Ok(y);
        }
        let dims = xs.dims().to_vec();
        let (inp, lead) = match dims.split_last() {
            Some((&inp, lead)) => (inp, lead),
            None => candle_core::bail!("linear on a scalar"),
        };
        let rows: usize = lead.iter().product();
        // A reshape is an autograd node even when it changes nothing.
        let x = if xs.rank() == 2 { xs.clone() } else { xs.reshape((rows, inp))? };
        let fused = self.lora.as_ref().and_then(|l| l.fusable_factors(&x));
        let y = match (fused, &self.weight_t) {
            (Some((a, b, scale)), _) => lora_matmul(&x, &self.weight, a, b, scale)?,
            (None, Some(wt)) => matmul(&x, wt)?,
            // One node, and only the gradients needed (a frozen W under LoRA gets none).
            (None, None) => xwt_matmul(&x, &self.weight)?,
        };
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        // The fused op already added the LoRA branch.
        let y = match (&self.lora, fused) {
            (Some(lora), None) => (y + lora.forward(&x)?)?,
            _ => y,
        };
        if xs.rank() == 2 {
            return Ok(y);
        }
        let mut out_dims = lead.to_vec();
        out_dims.push(self.weight.dims()[0]);
        y.reshape(out_dims)
    }
}
