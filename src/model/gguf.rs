//! GGUF checkpoints: metadata → `ModelConfig`, every tensor dequantized and renamed to HF naming.
//!
//! llama.cpp's converter permutes the rows of Llama's q/k projections so that its kernels can
//! rotate adjacent pairs; we rotate halves as HF does, so those rows are permuted back here.
//! Qwen2/Qwen3 files are written unpermuted (llama.cpp uses the NeoX rotation for them).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{Device, Tensor};

use super::config::{Arch, ModelConfig};
use super::weights::Weights;
use super::ModelError;

/// A GGUF file opened for reading: its metadata and the means to read tensors.
pub struct GgufFile {
    pub content: Content,
    file: File,
    path: std::path::PathBuf,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let mut file = File::open(path).map_err(|e| ModelError::io(path, e))?;
        let content = Content::read(&mut file).map_err(|e| ModelError::weights(path, format!("not a readable GGUF file: {e}")))?;
        Ok(GgufFile { content, file, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn meta(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    fn meta_u32(&self, key: &str) -> Result<Option<u32>, ModelError> {
        match self.meta(key) {
            None => Ok(None),
            Some(v) => v
                .to_u32()
                .or_else(|_| v.to_u64().map(|n| n as u32))
                .or_else(|_| v.to_i32().map(|n| n as u32))
                .map(Some)
                .map_err(|e| ModelError::weights(&self.path, format!("metadata '{key}': {e}"))),
        }
    }

    fn meta_f64(&self, key: &str) -> Result<Option<f64>, ModelError> {
        match self.meta(key) {
            None => Ok(None),
            Some(v) => v
                .to_f32()
                .map(f64::from)
                .or_else(|_| v.to_f64())
                .map(Some)
                .map_err(|e| ModelError::weights(&self.path, format!("metadata '{key}': {e}"))),
        }
    }

    fn req_u32(&self, key: &str) -> Result<usize, ModelError> {
        self.meta_u32(key)?.map(|n| n as usize).ok_or_else(|| ModelError::weights(&self.path, format!("missing metadata '{key}'")))
    }

    /// The model shape from `general.architecture` and its `{arch}.*` keys.
    pub fn config(&self) -> Result<ModelConfig, ModelError> {
        let arch_name = self
            .meta("general.architecture")
            .and_then(|v| v.to_string().ok())
            .ok_or_else(|| ModelError::weights(&self.path, "missing metadata 'general.architecture'"))?;
        let arch = Arch::parse(arch_name).ok_or_else(|| {
            ModelError::weights(&self.path, format!("unsupported architecture '{arch_name}' (supported: qwen2, llama, qwen3)"))
        })?;
        let key = |k: &str| format!("{arch_name}.{k}");
        let hidden_size = self.req_u32(&key("embedding_length"))?;
        let num_heads = self.req_u32(&key("attention.head_count"))?;
        let num_kv_heads = self.meta_u32(&key("attention.head_count_kv"))?.map_or(num_heads, |n| n as usize);
        let head_dim = match self.meta_u32(&key("attention.key_length"))? {
            Some(d) => d as usize,
            None => hidden_size / num_heads.max(1),
        };
        let embed = self
            .content
            .tensor_infos
            .get("token_embd.weight")
            .ok_or_else(|| ModelError::MissingTensor { path: self.path.clone(), name: "token_embd.weight".into() })?;
        let vocab_size = embed.shape.dims()[0];
        let has = |name: &str| self.content.tensor_infos.contains_key(name);
        let cfg = ModelConfig {
            arch,
            vocab_size,
            hidden_size,
            intermediate_size: self.req_u32(&key("feed_forward_length"))?,
            num_layers: self.req_u32(&key("block_count"))?,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: self.meta_f64(&key("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-6),
            rope_theta: self.meta_f64(&key("rope.freq_base"))?.unwrap_or(10_000.0),
            max_position_embeddings: self.meta_u32(&key("context_length"))?.map_or(4096, |n| n as usize),
            tie_word_embeddings: !has("output.weight"),
            qkv_bias: has("blk.0.attn_q.bias"),
            qk_norm: has("blk.0.attn_q_norm.weight"),
            bos_token_id: self.meta_u32("tokenizer.ggml.bos_token_id")?,
            eos_token_ids: self.meta_u32("tokenizer.ggml.eos_token_id")?.into_iter().collect(),
        };
        cfg.validate().map_err(|reason| ModelError::weights(&self.path, reason))?;
        Ok(cfg)
    }

    /// Every tensor dequantized to f32 on `device`, renamed to HF naming.
    pub fn weights(&mut self, cfg: &ModelConfig, device: &Device) -> Result<Weights, ModelError> {
        let mut names: Vec<String> = self.content.tensor_infos.keys().cloned().collect();
        names.sort();
        let mut tensors = BTreeMap::new();
        for name in names {
            let Some(hf_name) = hf_name(&name) else {
                // rope_freqs and similar derived tables are recomputed from the config.
                continue;
            };
            let qtensor = self
                .content
                .tensor(&mut self.file, &name, device)
                .map_err(|e| ModelError::weights(&self.path, format!("tensor '{name}': {e}")))?;
            let mut t = qtensor
                .dequantize(device)
                .map_err(|e| ModelError::weights(&self.path, format!("tensor '{name}': cannot dequantize: {e}")))?;
            if cfg.arch == Arch::Llama {
                if name.ends_with("attn_q.weight") || name.ends_with("attn_q.bias") {
                    t = unpermute_rows(&t, cfg.num_heads)?;
                } else if name.ends_with("attn_k.weight") || name.ends_with("attn_k.bias") {
                    t = unpermute_rows(&t, cfg.num_kv_heads)?;
                }
            }
            tensors.insert(hf_name, t);
        }
        Ok(Weights::new(tensors, &self.path))
    }
}

/// GGUF tensor name → HF tensor name; None for tensors the model does not load.
fn hf_name(gguf: &str) -> Option<String> {
    let fixed = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, leaf) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, kind) = leaf.rsplit_once('.')?;
    let hf_module = match module {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf_module}.{kind}"))
}

/// Undoes llama.cpp's `permute`: rows (n_head, hd/2, 2) back to (n_head, 2, hd/2).
fn unpermute_rows(t: &Tensor, n_head: usize) -> candle_core::Result<Tensor> {
    let dims = t.dims().to_vec();
    let rows = dims[0];
    let hd = rows / n_head;
    let mut split = vec![n_head, hd / 2, 2];
    split.extend_from_slice(&dims[1..]);
    t.reshape(split)?.transpose(1, 2)?.contiguous()?.reshape(dims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_names() {
        assert_eq!(hf_name("blk.3.attn_q.bias").as_deref(), Some("model.layers.3.self_attn.q_proj.bias"));
        assert_eq!(hf_name("blk.0.ffn_down.weight").as_deref(), Some("model.layers.0.mlp.down_proj.weight"));
        assert_eq!(hf_name("output.weight").as_deref(), Some("lm_head.weight"));
        assert_eq!(hf_name("rope_freqs.weight"), None);
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        // One head of dim 4: HF rows [a0 a1 | b0 b1] are stored by llama.cpp as [a0 b0 a1 b1].
        let gguf = Tensor::new(&[[0f32], [10.0], [1.0], [11.0]], &Device::Cpu).unwrap();
        let hf = unpermute_rows(&gguf, 1).unwrap();
        assert_eq!(hf.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![0.0, 1.0, 10.0, 11.0]);
    }
}
