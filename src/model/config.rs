//! Model shape and variant: read from HF config.json or GGUF metadata, written back as config.json.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::ModelError;

/// The decoder families this crate runs; they differ only in a few switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Qwen2 / Qwen2.5: q/k/v projections carry a bias.
    Qwen2,
    /// Llama / SmolLM2: no biases.
    Llama,
    /// Qwen3: RMSNorm on q and k per head, explicit head_dim.
    Qwen3,
}

impl Arch {
    pub fn model_type(self) -> &'static str {
        match self {
            Arch::Qwen2 => "qwen2",
            Arch::Llama => "llama",
            Arch::Qwen3 => "qwen3",
        }
    }

    pub fn hf_class(self) -> &'static str {
        match self {
            Arch::Qwen2 => "Qwen2ForCausalLM",
            Arch::Llama => "LlamaForCausalLM",
            Arch::Qwen3 => "Qwen3ForCausalLM",
        }
    }

    pub fn parse(name: &str) -> Option<Arch> {
        match name {
            "qwen2" | "Qwen2ForCausalLM" => Some(Arch::Qwen2),
            "llama" | "LlamaForCausalLM" | "mistral" | "MistralForCausalLM" => Some(Arch::Llama),
            "qwen3" | "Qwen3ForCausalLM" => Some(Arch::Qwen3),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Bias on q/k/v projections (always on for Qwen2, `attention_bias` elsewhere).
    pub qkv_bias: bool,
    /// Per-head RMSNorm on q and k before rotary (Qwen3).
    pub qk_norm: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

impl ModelConfig {
    /// Parses an HF `config.json`.
    pub fn from_hf_file(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| ModelError::BadConfig { path: path.to_path_buf(), reason: format!("not valid JSON: {e}") })?;
        Self::from_hf_json(&value).map_err(|reason| ModelError::BadConfig { path: path.to_path_buf(), reason })
    }

    /// Parses the object of a config.json; the error is the reason alone, the caller adds the path.
    pub fn from_hf_json(v: &Value) -> Result<Self, String> {
        let obj = v.as_object().ok_or("top level is not a JSON object")?;
        let model_type = obj
            .get("model_type")
            .and_then(Value::as_str)
            .or_else(|| obj.get("architectures")?.as_array()?.first()?.as_str())
            .ok_or("missing field 'model_type'")?;
        let arch =
            Arch::parse(model_type).ok_or_else(|| format!("unsupported architecture '{model_type}' (supported: qwen2, llama, qwen3)"))?;
        let hidden_size = req_usize(obj, "hidden_size")?;
        let num_heads = req_usize(obj, "num_attention_heads")?;
        let num_kv_heads = opt_usize(obj, "num_key_value_heads")?.unwrap_or(num_heads);
        let head_dim = match opt_usize(obj, "head_dim")? {
            Some(d) => d,
            None if num_heads > 0 => hidden_size / num_heads,
            None => return Err("num_attention_heads is 0".into()),
        };
        reject_rope_scaling(obj)?;
        let rope_theta = rope_theta(obj)?.unwrap_or(10_000.0);
        let attention_bias = opt_bool(obj, "attention_bias")?.unwrap_or(false);
        if opt_bool(obj, "mlp_bias")?.unwrap_or(false) {
            return Err("mlp_bias = true is not supported".into());
        }
        let cfg = ModelConfig {
            arch,
            vocab_size: req_usize(obj, "vocab_size")?,
            hidden_size,
            intermediate_size: req_usize(obj, "intermediate_size")?,
            num_layers: req_usize(obj, "num_hidden_layers")?,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: opt_f64(obj, "rms_norm_eps")?.unwrap_or(1e-6),
            rope_theta,
            max_position_embeddings: opt_usize(obj, "max_position_embeddings")?.unwrap_or(32_768),
            tie_word_embeddings: opt_bool(obj, "tie_word_embeddings")?.unwrap_or(false),
            qkv_bias: arch == Arch::Qwen2 || attention_bias,
            qk_norm: arch == Arch::Qwen3,
            bos_token_id: opt_u32(obj, "bos_token_id")?,
            eos_token_ids: ids_field(obj, "eos_token_id")?,
        };
        if let Some(act) = obj.get("hidden_act").and_then(Value::as_str) {
            if act != "silu" {
                return Err(format!("hidden_act '{act}' is not supported (only silu)"));
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the shape relations the decoder relies on.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_layers),
            ("num_attention_heads", self.num_heads),
            ("num_key_value_heads", self.num_kv_heads),
            ("head_dim", self.head_dim),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(format!("{name} must be positive"));
            }
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return Err(format!(
                "num_attention_heads ({}) is not a multiple of num_key_value_heads ({})",
                self.num_heads, self.num_kv_heads
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(format!("head_dim ({}) must be even for rotary embeddings", self.head_dim));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return Err(format!("rope_theta ({}) must be positive", self.rope_theta));
        }
        Ok(())
    }

    pub fn kv_groups(&self) -> usize {
        self.num_heads / self.num_kv_heads
    }

    /// The config.json that HF transformers loads for this model.
    pub fn to_hf_json(&self, torch_dtype: &str) -> Value {
        let mut v = json!({
            "architectures": [self.arch.hf_class()],
            "model_type": self.arch.model_type(),
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "attention_dropout": 0.0,
            "torch_dtype": torch_dtype,
            "use_cache": true,
        });
        let obj = v.as_object_mut().expect("json! object");
        match self.arch {
            Arch::Qwen2 => {
                obj.insert("use_sliding_window".into(), json!(false));
                obj.insert("sliding_window".into(), json!(self.max_position_embeddings));
                obj.insert("max_window_layers".into(), json!(self.num_layers));
            }
            Arch::Llama | Arch::Qwen3 => {
                obj.insert("attention_bias".into(), json!(self.qkv_bias));
                obj.insert("mlp_bias".into(), json!(false));
            }
        }
        if let Some(bos) = self.bos_token_id {
            obj.insert("bos_token_id".into(), json!(bos));
        }
        if let Some(eos) = crate::id_list::to_json(&self.eos_token_ids) {
            obj.insert("eos_token_id".into(), eos);
        }
        v
    }

    /// Parameter count implied by the shapes (embeddings counted once when tied).
    pub fn parameter_count(&self) -> usize {
        let d = self.hidden_size;
        let q = self.num_heads * self.head_dim;
        let kv = self.num_kv_heads * self.head_dim;
        let mut attn = d * q + 2 * d * kv + q * d;
        if self.qkv_bias {
            attn += q + 2 * kv;
        }
        if self.qk_norm {
            attn += 2 * self.head_dim;
        }
        let mlp = 3 * d * self.intermediate_size;
        let layer = attn + mlp + 2 * d;
        let embed = self.vocab_size * d;
        let head = if self.tie_word_embeddings { 0 } else { embed };
        self.num_layers * layer + embed + head + d
    }
}

fn reject_rope_scaling(obj: &Map<String, Value>) -> Result<(), String> {
    let scaling = obj
        .get("rope_scaling")
        .or_else(|| obj.get("rope_parameters"))
        .and_then(|s| s.get("rope_type").or_else(|| s.get("type")))
        .and_then(Value::as_str);
    match scaling {
        None | Some("default") => Ok(()),
        Some(other) => Err(format!("rope scaling type '{other}' is not supported")),
    }
}

/// `rope_theta` lives at the top level in older configs and inside `rope_parameters` in newer ones.
fn rope_theta(obj: &Map<String, Value>) -> Result<Option<f64>, String> {
    if let Some(t) = opt_f64(obj, "rope_theta")? {
        return Ok(Some(t));
    }
    match obj.get("rope_parameters") {
        Some(Value::Object(params)) => opt_f64(params, "rope_theta").map_err(|e| format!("rope_parameters: {e}")),
        Some(Value::Null) | None => Ok(None),
        Some(_) => Err("field 'rope_parameters' must be an object".into()),
    }
}

fn req_usize(obj: &Map<String, Value>, key: &str) -> Result<usize, String> {
    opt_usize(obj, key)?.ok_or_else(|| format!("missing field '{key}'"))
}

fn opt_usize(obj: &Map<String, Value>, key: &str) -> Result<Option<usize>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(|n| Some(n as usize)).ok_or_else(|| format!("field '{key}' must be a non-negative integer, found {v}")),
    }
}

fn opt_u32(obj: &Map<String, Value>, key: &str) -> Result<Option<u32>, String> {
    Ok(opt_usize(obj, key)?.map(|n| n as u32))
}

fn opt_f64(obj: &Map<String, Value>, key: &str) -> Result<Option<f64>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| format!("field '{key}' must be a number, found {v}")),
    }
}

fn opt_bool(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_bool().map(Some).ok_or_else(|| format!("field '{key}' must be true or false, found {v}")),
    }
}

/// An id field that may be a single integer or a list (`eos_token_id`).
fn ids_field(obj: &Map<String, Value>, key: &str) -> Result<Vec<u32>, String> {
    match obj.get(key) {
        None => Ok(Vec::new()),
        Some(v) => crate::id_list::parse(v).map_err(|problem| format!("field '{key}' {problem}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Value {
        json!({
            "model_type": "qwen2", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
            "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
            "rope_theta": 1000000.0, "tie_word_embeddings": true, "eos_token_id": [3, 4]
        })
    }

    #[test]
    fn reads_top_level_and_nested_rope_theta() {
        let top = ModelConfig::from_hf_json(&base()).unwrap();
        assert_eq!(top.rope_theta, 1e6);
        let mut nested = base();
        let obj = nested.as_object_mut().unwrap();
        obj.remove("rope_theta");
        obj.insert("rope_parameters".into(), json!({"rope_theta": 5e5, "rope_type": "default"}));
        assert_eq!(ModelConfig::from_hf_json(&nested).unwrap().rope_theta, 5e5);
    }

    #[test]
    fn qwen2_has_bias_and_derived_head_dim() {
        let cfg = ModelConfig::from_hf_json(&base()).unwrap();
        assert!(cfg.qkv_bias && !cfg.qk_norm);
        assert_eq!(cfg.head_dim, 4);
        assert_eq!(cfg.eos_token_ids, vec![3, 4]);
    }

    #[test]
    fn errors_name_the_field() {
        let mut v = base();
        v.as_object_mut().unwrap().remove("hidden_size");
        assert_eq!(ModelConfig::from_hf_json(&v).unwrap_err(), "missing field 'hidden_size'");
        let mut v = base();
        v["model_type"] = json!("gpt_neox");
        assert!(ModelConfig::from_hf_json(&v).unwrap_err().contains("unsupported architecture 'gpt_neox'"));
        let mut v = base();
        v["num_key_value_heads"] = json!(3);
        assert!(ModelConfig::from_hf_json(&v).unwrap_err().contains("not a multiple"));
        let mut v = base();
        v["vocab_size"] = json!("ten");
        assert!(ModelConfig::from_hf_json(&v).unwrap_err().contains("'vocab_size' must be a non-negative integer"));
    }

    #[test]
    fn round_trips_through_hf_json() {
        let cfg = ModelConfig::from_hf_json(&base()).unwrap();
        let again = ModelConfig::from_hf_json(&cfg.to_hf_json("float32")).unwrap();
        assert_eq!(cfg, again);
    }
}
