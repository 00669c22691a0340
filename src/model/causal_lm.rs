//! What training, scoring and generation need of a decoder: the one seam between an
//! architecture (`Qwen2`, which also runs Llama and Qwen3) and the code that drives it.

use candle_core::{DType, Device, Result, Tensor};

use super::config::ModelConfig;
use super::kv_cache::KvCache;
use super::qwen2::Positions;

/// A causal language model. Which kernels a forward runs on is the model's business (see
/// `kernels`): callers say only whether a KV cache is filled.
pub trait CausalLm: Send + Sync {
    fn config(&self) -> &ModelConfig;
    fn device(&self) -> &Device;
    fn dtype(&self) -> DType;

    /// An empty KV cache; the caller owns it and passes it to each decoding forward.
    fn new_cache(&self) -> KvCache;

    /// Final-norm hidden states (b, t, d). `key_mask` (b, cache length + t) marks real keys with
    /// 1; with `cache` the keys and values are appended to it (generation).
    fn forward(&self, ids: &Tensor, positions: Positions, key_mask: Option<&Tensor>, cache: Option<&mut KvCache>) -> Result<Tensor>;

    /// Logits (…, vocab) of hidden states (…, d).
    fn logits(&self, hidden: &Tensor) -> Result<Tensor>;

    /// The output projection's weight (vocab, d) when logits are exactly h Wᵀ, for objectives
    /// that differentiate through it without materialising logits.
    fn output_weight(&self) -> Option<&Tensor>;

    /// Logits at every position (b, t, vocab), no cache: differentiable when the model trains.
    fn forward_train(&self, ids: &Tensor, key_mask: Option<&Tensor>) -> Result<Tensor> {
        self.logits(&self.forward(ids, Positions::Offset(0), key_mask, None)?)
    }

    /// Last-position logits (b, vocab) in f32, continuing the sequences held in `cache`.
    fn decode(&self, ids: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        let offset = cache.len();
        let hidden = self.forward(ids, Positions::Offset(offset), None, Some(cache))?;
        let t = hidden.dim(1)?;
        self.logits(&hidden.narrow(1, t - 1, 1)?.squeeze(1)?)?.to_dtype(DType::F32)
    }
}
