//! The Qwen2-family decoder (Qwen2/2.5, Llama/SmolLM2, Qwen3), one struct per block:
//! grouped-query attention with rotary positions and a KV cache, the SwiGLU MLP, the decoder
//! layer and the model. One core serves training and decoding; `kernels` picks the kernels.

use candle_core::{DType, Device, Module, Tensor, D};
type Result<T, E = candle_core::Error> = std::result::Result<T, E>;
use candle_nn::Embedding;

use super::causal_lm::CausalLm;
use super::config::ModelConfig;
use super::decode_attention::{decode_attention, supports};
use super::kernels::Kernels;
use super::kv_cache::KvCache;
use super::linear::{Linear, WeightLayout};
use super::lora::{LoraAdapters, LoraAttach};
use super::matmul::{matmul, uses_blas};
use super::norm::RmsNorm;
use super::packed_linear::{fused_projection, PackedLinear};
use super::rope::{RopeSlice, RotaryTables};
use super::train_kernels;
use super::weights::Weights;
use super::ModelError;

/// Where the rows of a forward sit in their sequences.
pub enum Positions<'a> {
    /// Every row continues at the same position (the cache length when decoding, 0 in training).
    Offset(usize),
    /// One position per token, (b, t) u32: left-padded batches.
    Explicit(&'a Tensor),
}

struct Attention {
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
struct AttentionInputs<'a> {
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
    fn new(cfg: &ModelConfig, w: &Weights, prefix: &str, layout: WeightLayout, lora: Option<LoraAttach>) -> Result<Self, ModelError> {
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
    fn forward(&self, xs: &Tensor, inputs: &AttentionInputs, cache: Option<(&mut KvCache, usize)>) -> Result<Tensor> {
        if inputs.kernels.rows(xs) {
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

struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
    /// gate and up in one product, for decoding on the CPU.
    gate_up: Option<PackedLinear>,
}

impl Mlp {
    fn new(cfg: &ModelConfig, w: &Weights, prefix: &str, layout: WeightLayout, lora: Option<LoraAttach>) -> Result<Self, ModelError> {
        let (d, i) = (cfg.hidden_size, cfg.intermediate_size);
        let gate_up = if layout == WeightLayout::ForDecoding && lora.is_none() {
            fused_projection(w, prefix, &[("gate_proj", i), ("up_proj", i)], d, false)?
        } else {
            None
        };
        // The fused projection replaces the separate ones' decoding copies.
        let separate = if gate_up.is_some() { WeightLayout::AsLoaded } else { layout };
        let linear = |name: &str, out: usize, inp: usize, layout: WeightLayout| -> Result<Linear, ModelError> {
            let linear = Linear::new(w.get(&format!("{prefix}.{name}.weight"), &[out, inp])?, None, layout)?;
            Ok(linear.with_lora(lora.and_then(|l| l.branch(&format!("{prefix}.{name}")))))
        };
        Ok(Mlp {
            gate_proj: linear("gate_proj", i, d, separate)?,
            up_proj: linear("up_proj", i, d, separate)?,
            down_proj: linear("down_proj", d, i, layout)?,
            gate_up,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let [gate, up] = match &self.gate_up {
            Some(gate_up) => gate_up.forward(xs)?,
            None => [self.gate_proj.forward(xs)?, self.up_proj.forward(xs)?],
        };
        let gated = if train_kernels::fusable(&gate) { train_kernels::swiglu(&gate, &up)? } else { (gate.silu()? * up)? };
        self.down_proj.forward(&gated)
    }
}

struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl DecoderLayer {
    fn new(cfg: &ModelConfig, w: &Weights, i: usize, layout: WeightLayout, lora: Option<LoraAttach>) -> Result<Self, ModelError> {
        let prefix = format!("model.layers.{i}");
        let norm = |name: &str| -> Result<RmsNorm, ModelError> {
            let weight = w.get(&format!("{prefix}.{name}.weight"), &[cfg.hidden_size])?;
            Ok(RmsNorm::new(weight, cfg.rms_norm_eps))
        };
        Ok(DecoderLayer {
            input_layernorm: norm("input_layernorm")?,
            self_attn: Attention::new(cfg, w, &format!("{prefix}.self_attn"), layout, lora)?,
            post_attention_layernorm: norm("post_attention_layernorm")?,
            mlp: Mlp::new(cfg, w, &format!("{prefix}.mlp"), layout, lora)?,
        })
    }

    fn forward(&self, xs: &Tensor, inputs: &AttentionInputs, cache: Option<(&mut KvCache, usize)>) -> Result<Tensor> {
        let attn = self.self_attn.forward(&self.input_layernorm.forward(xs, inputs.kernels)?, inputs, cache)?;
        let xs = (xs + attn)?;
        let mlp = self.mlp.forward(&self.post_attention_layernorm.forward(&xs, inputs.kernels)?)?;
        xs + mlp
    }
}

pub struct Qwen2 {
    embed_tokens: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    /// (vocab, d): the embedding matrix itself when tied.
    lm_head: Linear,
    rotary: RotaryTables,
    cfg: ModelConfig,
    dtype: DType,
    device: Device,
    /// Some parameter is a `Var` (full training) or adapters are attached (LoRA): uncached
    /// forwards are then differentiable.
    parameters_track_gradients: bool,
}

impl Qwen2 {
    /// Builds the decoder over `w`, which must hold every tensor in HF naming with HF shapes.
    /// The tensors are shared, not copied: a model over `Weights::to_vars` trains them.
    pub fn new(cfg: &ModelConfig, w: &Weights) -> Result<Self, ModelError> {
        Self::build(cfg, w, WeightLayout::AsLoaded, None)
    }

    /// A decoder over frozen `w` with `adapters` added to the projections they wrap; the
    /// adapters' dropout is applied only when `training`.
    pub fn with_lora(cfg: &ModelConfig, w: &Weights, adapters: &LoraAdapters, training: bool) -> Result<Self, ModelError> {
        Self::build(cfg, w, WeightLayout::AsLoaded, Some(LoraAttach { adapters, training }))
    }

    /// A decoder for generation only: projection weights are also kept packed (f32 on the CPU,
    /// q/k/v and gate/up fused) or transposed (elsewhere), which makes small-batch decoding
    /// several times faster at the cost of a second copy of the matrices.
    pub fn for_inference(cfg: &ModelConfig, w: &Weights) -> Result<Self, ModelError> {
        Self::build(cfg, w, WeightLayout::ForDecoding, None)
    }

    fn build(cfg: &ModelConfig, w: &Weights, layout: WeightLayout, lora: Option<LoraAttach>) -> Result<Self, ModelError> {
        let (v, d) = (cfg.vocab_size, cfg.hidden_size);
        let embed = w.get("model.embed_tokens.weight", &[v, d])?;
        let lm_head = if cfg.tie_word_embeddings { embed.clone() } else { w.get("lm_head.weight", &[v, d])? };
        let layers = (0..cfg.num_layers).map(|i| DecoderLayer::new(cfg, w, i, layout, lora)).collect::<Result<Vec<_>, _>>()?;
        let device = embed.device().clone();
        let parameters_track_gradients = lora.is_some() || super::kernels::tracks_gradients(w.iter().map(|(_, t)| t));
        Ok(Qwen2 {
            embed_tokens: Embedding::new(embed.clone(), d),
            layers,
            norm: RmsNorm::new(w.get("model.norm.weight", &[d])?, cfg.rms_norm_eps),
            lm_head: Linear::new(lm_head, None, layout)?,
            rotary: RotaryTables::new(cfg, &device)?,
            cfg: cfg.clone(),
            dtype: embed.dtype(),
            device,
            parameters_track_gradients,
        })
    }
}

impl CausalLm for Qwen2 {
    fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    fn new_cache(&self) -> KvCache {
        KvCache::new(self.cfg.num_layers)
    }

    /// Final-norm hidden states (b, t, d).
    ///
    /// `key_mask` (b, T) marks with 1 the keys that are real tokens, over cached and new positions
    /// (T = cache length + t); without it every key is real. Attention is always causal.
    /// With `cache`, keys and values are appended to it: generation, which is never
    /// differentiated. Without one the forward is differentiable when the model trains (its
    /// parameters record gradients); `Kernels` picks the kernels from that.
    fn forward(&self, ids: &Tensor, positions: Positions, key_mask: Option<&Tensor>, mut cache: Option<&mut KvCache>) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let kernels = Kernels::for_forward(cache.is_some(), self.parameters_track_gradients);
        let past = cache.as_ref().map_or(0, |c| c.len());
        let rope = match positions {
            Positions::Offset(offset) => self.rotary.contiguous_positions(offset, t, self.dtype)?,
            Positions::Explicit(p) => self.rotary.gathered_positions(p, self.dtype)?,
        };
        // Decoding on the CPU skips each row's left padding in the attention kernel instead of
        // masking it, which keeps rows of different lengths on the fast path.
        let key_starts = match key_mask {
            Some(mask) if t == 1 && kernels == Kernels::Inference && self.device.is_cpu() && self.dtype == DType::F32 => {
                left_padding(mask)?
            }
            _ => None,
        };
        let bias = match key_starts {
            Some(_) => None,
            None => attention_bias(b, t, past, key_mask, self.dtype, &self.device)?,
        };
        let inputs = AttentionInputs { rope: &rope, bias: bias.as_ref(), key_starts: key_starts.as_deref(), kernels, batch: (b, t) };
        let mut xs = self.embed_tokens.forward(ids)?;
        // Training on the CPU keeps hidden states as (b·t, d) rows: every reshape is a node that
        // costs a full gradient copy in the backward pass.
        let rows = kernels.rows(&xs);
        if rows {
            xs = xs.reshape((b * t, self.cfg.hidden_size))?;
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| (c, i));
            xs = layer.forward(&xs, &inputs, layer_cache)?;
        }
        let out = self.norm.forward(&xs, kernels)?;
        if rows {
            out.reshape((b, t, self.cfg.hidden_size))
        } else {
            Ok(out)
        }
    }

    /// Logits (…, vocab) of hidden states (…, d).
    fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        self.lm_head.forward(hidden)
    }

    /// The output projection's weight (vocab, d) when logits are exactly h Wᵀ, for objectives
    /// that differentiate through it without materialising logits.
    fn output_weight(&self) -> Option<&Tensor> {
        self.lm_head.plain_weight()
    }
}

/// Where each row's keys begin when `key_mask` (b, T) is left padding (zeros, then ones, at least
/// one real key); None for any other mask.
fn left_padding(key_mask: &Tensor) -> Result<Option<Vec<usize>>> {
    let rows = key_mask.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    Ok(rows
        .iter()
        .map(|row| {
            let pad = row.iter().take_while(|&&m| m == 0.0).count();
            (pad < row.len() && row[pad..].iter().all(|&m| m == 1.0)).then_some(pad)
        })
        .collect())
}

/// Additive attention bias (b, 1, 1, t, T) for causal attention over `past` cached keys and `t`
/// new ones, with padding keys from `key_mask` masked. None when nothing needs masking.
fn attention_bias(b: usize, t: usize, past: usize, key_mask: Option<&Tensor>, dtype: DType, device: &Device) -> Result<Option<Tensor>> {
    let total = past + t;
    if t == 1 && key_mask.is_none() {
        return Ok(None);
    }
    // Finite, so a row whose keys are all padding still gives a (meaningless) finite softmax.
    const MASKED: f32 = -1e9;
    let causal: Vec<f32> = (0..t).flat_map(|i| (0..total).map(move |j| if j <= past + i { 0.0 } else { MASKED })).collect();
    let causal = Tensor::from_vec(causal, (1, t, total), device)?;
    let bias = match key_mask {
        None => causal,
        Some(mask) => {
            let (mb, mt) = mask.dims2()?;
            if (mb, mt) != (b, total) {
                candle_core::bail!("key mask has shape ({mb}, {mt}), expected ({b}, {total})");
            }
            // (1 - mask) · MASKED, kept at MASKED where both apply.
            let pad = ((mask.to_dtype(DType::F32)?.affine(-1.0, 1.0)?) * MASKED as f64)?.unsqueeze(1)?;
            causal.broadcast_add(&pad)?.clamp(MASKED, 0f32)?
        }
    };
    Ok(Some(bias.unsqueeze(1)?.unsqueeze(1)?.to_dtype(dtype)?))
}

/// Log-softmax over the last dim with a max-shift (differentiable).
pub fn log_softmax(xs: &Tensor) -> Result<Tensor> {
    let max = xs.max_keepdim(D::Minus1)?.detach();
    let shifted = xs.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&lse)
}
