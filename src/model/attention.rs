//! Grouped-query self-attention with rotary positions, an optional additive mask and KV cache.

use candle_core::{Tensor, D};
type Result<T, E = candle_core::Error> = std::result::Result<T, E>;
use super::decode_attention::{decode_attention, supports};
use super::linear::{Linear, WeightLayout};
use super::matmul::{matmul, uses_blas};
use super::packed_linear::{fused_projection, PackedLinear};

use super::config::ModelConfig;
use super::kernels::Kernels;
use super::kv_cache::KvCache;
use super::lora::LoraAttach;
use super::norm::RmsNorm;
use super::rope::RopeSlice;
use super::train_kernels;
use super::weights::Weights;
use super::ModelError;

pub(crate) struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    /// q, k and v in one product, for decoding on the CPU.
    qkv: Option<PackedLinear>,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

/// What one forward needs besides the hidden states.
pub(crate) struct AttentionInputs<'a> {
    pub rope: &'a RopeSlice,
    /// Additive bias (b, 1, 1, t, T): 0 where a query may attend, a large negative elsewhere.
    pub bias: Option<&'a Tensor>,
    /// Where each row's real keys begin, when its left padding is skipped rather than masked
    /// (single-token decoding on the CPU); `bias` is then None.
    pub key_starts: Option<&'a [usize]>,
    pub kernels: Kernels,
    /// (b, t): the batch and sequence length, also when hidden states come as (b·t, d) rows.
    pub batch: (usize, usize),
}

impl Attention {
    pub fn new(cfg: &ModelConfig, w: &Weights, prefix: &str, layout: WeightLayout, lora: Option<LoraAttach>) -> Result<Self, ModelError> {
        let d = cfg.hidden_size;
        let q_out = cfg.num_heads * cfg.head_dim;
        let kv_out = cfg.num_kv_heads * cfg.head_dim;
        let qkv = if layout == WeightLayout::ForDecoding && lora.is_none() {
            fused_projection(w, prefix, &[("q_proj", q_out), ("k_proj", kv_out), ("v_proj", kv_out)], d, cfg.qkv_bias)?
        } else {
            None
        };
        // The fused projection replaces the separate ones' decoding copies.
        let separate = if qkv.is_some() { WeightLayout::AsLoaded } else { layout };
        let linear = |name: &str, out: usize, inp: usize, bias: bool, layout: WeightLayout| -> Result<Linear, ModelError> {
            let weight = w.get(&format!("{prefix}.{name}.weight"), &[out, inp])?;
            let bias = if bias { Some(w.get(&format!("{prefix}.{name}.bias"), &[out])?) } else { None };
            let lora = lora.and_then(|l| l.branch(&format!("{prefix}.{name}")));
            Ok(Linear::new(weight, bias, layout)?.with_lora(lora))
        };
        let head_norm = |name: &str| -> Result<Option<RmsNorm>, ModelError> {
            if !cfg.qk_norm {
                return Ok(None);
            }
            let weight = w.get(&format!("{prefix}.{name}.weight"), &[cfg.head_dim])?;
            Ok(Some(RmsNorm::new(weight, cfg.rms_norm_eps)))
        };
        Ok(Attention {
            q_proj: linear("q_proj", q_out, d, cfg.qkv_bias, separate)?,
            k_proj: linear("k_proj", kv_out, d, cfg.qkv_bias, separate)?,
            v_proj: linear("v_proj", kv_out, d, cfg.qkv_bias, separate)?,
            o_proj: linear("o_proj", d, q_out, false, layout)?,
            qkv,
            q_norm: head_norm("q_norm")?,
            k_norm: head_norm("k_norm")?,
            num_heads: cfg.num_heads,
            num_kv_heads: cfg.num_kv_heads,
            head_dim: cfg.head_dim,
        })
    }

    /// xs (b, t, d) → (b, t, d). With a cache, keys and values are appended to layer `layer`.
    pub fn forward(&self, xs: &Tensor, inputs: &AttentionInputs, cache: Option<(&mut KvCache, usize)>) -> Result<Tensor> {
        if cache.is_none() && inputs.kernels.rows(xs) {
            return self.forward_rows(xs, inputs);
        }
        let (b, t, _) = xs.dims3()?;
        let (h, kvh, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let heads = |x: Tensor, n: usize, norm: &Option<RmsNorm>| -> Result<Tensor> {
            let x = x.reshape((b, t, n, hd))?;
            let x = match norm {
                Some(norm) => norm.forward(&x, inputs.kernels)?,
                None => x,
            };
            x.transpose(1, 2)?.contiguous() // (b, n, t, hd)
        };
        let [q, k, v] = match &self.qkv {
            Some(qkv) => qkv.forward(xs)?,
            None => [self.q_proj.forward(xs)?, self.k_proj.forward(xs)?, self.v_proj.forward(xs)?],
        };
        let q = inputs.rope.apply(&heads(q, h, &self.q_norm)?, inputs.kernels)?;
        let k = inputs.rope.apply(&heads(k, kvh, &self.k_norm)?, inputs.kernels)?;
        let v = heads(v, kvh, &None)?;
        let (k, v) = match cache {
            Some((cache, layer)) => cache.append(layer, &k, &v)?,
            None => (k, v),
        };
        if t == 1 && inputs.kernels == Kernels::Inference && inputs.bias.is_none() && supports(&q) {
            return self.o_proj.forward(&decode_attention(&q, &k, &v, inputs.key_starts.unwrap_or(&[]))?);
        }
        let total = k.dims()[2];
        // Heads that share a KV head are adjacent, so (b, h, t, hd) reads as (b, kvh, rep·t, hd)
        // and K/V are used as they are instead of being repeated per head.
        let rep = h / kvh;
        let q = (q.reshape((b, kvh, rep * t, hd))? * (1.0 / (hd as f64).sqrt()))?;
        let scores = matmul(&q, &k.t()?)?;
        let scores = match inputs.bias {
            Some(bias) => scores.reshape((b, kvh, rep, t, total))?.broadcast_add(bias)?.reshape((b, kvh, rep * t, total))?,
            None => scores,
        };
        let probs = inputs.kernels.softmax_last_dim(&scores)?;
        // BLAS reads the cache's narrowed V in place; candle's gemm needs it contiguous.
        let v = if uses_blas(&probs, &v) { v } else { v.contiguous()? };
        let out = matmul(&probs, &v)?; // (b, kvh, rep·t, hd)
        let out = out.reshape((b, h, t, hd))?.transpose(1, 2)?.reshape((b, t, h * hd))?;
        self.o_proj.forward(&out)
    }
}

impl Attention {
    /// The training forward on the CPU through the fused kernels: xs (b·t, d) or (b, t, d),
    /// output of the same rank.
    fn forward_rows(&self, xs: &Tensor, inputs: &AttentionInputs) -> Result<Tensor> {
        let (b, t) = inputs.batch;
        let (h, kvh, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        // Already rows in training (Qwen2::forward flattens once); a reshape would be one more node.
        let rows = if xs.rank() == 2 { xs.clone() } else { xs.reshape((b * t, xs.dim(D::Minus1)?))? };
        let heads = |proj: &Linear, n: usize, norm: &Option<RmsNorm>, rotate: bool| -> Result<Tensor> {
            let x = proj.forward(&rows)?;
            let x = match norm {
                Some(norm) => norm.forward(&x.reshape((b * t * n, hd))?, Kernels::Training)?,
                None => x,
            };
            let rotation = rotate.then(|| inputs.rope.rotation());
            train_kernels::split_heads(&x, (b, t, n, hd), rotation) // (b, n, t, hd)
        };
        let q = heads(&self.q_proj, h, &self.q_norm, true)?;
        let k = heads(&self.k_proj, kvh, &self.k_norm, true)?;
        let v = heads(&self.v_proj, kvh, &None, false)?;
        // Query heads that share a KV head are adjacent: (b, h, t, hd) reads as (b, kvh, rep·t, hd).
        let scores = matmul(&q.reshape((b, kvh, (h / kvh) * t, hd))?, &k.t()?)?;
        let probs = train_kernels::masked_softmax(&scores, inputs.bias, t, 1.0 / (hd as f64).sqrt())?;
        let out = train_kernels::merge_heads(&matmul(&probs, &v)?, (b, t, h, hd))?;
        let out = self.o_proj.forward(&out)?;
        if xs.rank() == 2 {
            Ok(out)
        } else {
            out.reshape((b, t, out.dim(1)?))
        }
    }
}
