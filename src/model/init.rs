//! Fresh weights for a configuration (training from scratch): every tensor the decoder reads,
//! under its HF name, drawn from the seed so two runs start identically.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{ModelConfig, Weights};

/// HF tensor names and shapes of a Qwen2-family decoder with this configuration.
pub fn parameter_shapes(cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let (d, f) = (cfg.hidden_size, cfg.intermediate_size);
    let (q, kv) = (cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim);
    let mut out = vec![("model.embed_tokens.weight".to_string(), vec![cfg.vocab_size, d])];
    for l in 0..cfg.num_layers {
        let p = format!("model.layers.{l}");
        let mut add = |name: &str, shape: Vec<usize>| out.push((format!("{p}.{name}"), shape));
        add("input_layernorm.weight", vec![d]);
        add("post_attention_layernorm.weight", vec![d]);
        add("self_attn.q_proj.weight", vec![q, d]);
        add("self_attn.k_proj.weight", vec![kv, d]);
        add("self_attn.v_proj.weight", vec![kv, d]);
        add("self_attn.o_proj.weight", vec![d, q]);
        if cfg.qkv_bias {
            add("self_attn.q_proj.bias", vec![q]);
            add("self_attn.k_proj.bias", vec![kv]);
            add("self_attn.v_proj.bias", vec![kv]);
        }
        if cfg.qk_norm {
            add("self_attn.q_norm.weight", vec![cfg.head_dim]);
            add("self_attn.k_norm.weight", vec![cfg.head_dim]);
        }
        add("mlp.gate_proj.weight", vec![f, d]);
        add("mlp.up_proj.weight", vec![f, d]);
        add("mlp.down_proj.weight", vec![d, f]);
    }
    out.push(("model.norm.weight".to_string(), vec![d]));
    if !cfg.tie_word_embeddings {
        out.push(("lm_head.weight".to_string(), vec![cfg.vocab_size, d]));
    }
    out
}

/// Matrices ~ N(0, std²) (transformers' `initializer_range`, 0.02), norms 1, biases 0, in f32.
pub fn init_weights(cfg: &ModelConfig, std: f64, seed: u64, device: &Device) -> Result<Weights> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Box–Muller: two uniforms give one standard normal (the other is discarded for simplicity).
    let mut normal = move || {
        let (u1, u2): (f64, f64) = (rng.gen_range(f64::EPSILON..1.0), rng.gen());
        (std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    };
    let mut tensors = BTreeMap::new();
    for (name, shape) in parameter_shapes(cfg) {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = if name.ends_with("norm.weight") {
            vec![1.0; n]
        } else if name.ends_with(".bias") {
            vec![0.0; n]
        } else {
            (0..n).map(|_| normal()).collect()
        };
        tensors.insert(name, Tensor::from_vec(values, shape, device)?);
    }
    Ok(Weights::new(tensors, Path::new("<fresh initialisation>")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Qwen2;

    #[test]
    fn fresh_weights_build_every_architecture_and_match_the_parameter_count() {
        for dir in ["qwen2", "llama", "qwen3"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny").join(dir).join("config.json");
            let cfg = ModelConfig::from_hf_file(&path).unwrap();
            let w = init_weights(&cfg, 0.02, 1, &Device::Cpu).unwrap();
            assert_eq!(w.numel(), cfg.parameter_count(), "{dir}");
            Qwen2::new(&cfg, &w).unwrap();
            let again = init_weights(&cfg, 0.02, 1, &Device::Cpu).unwrap();
            let other = init_weights(&cfg, 0.02, 2, &Device::Cpu).unwrap();
            let first = |w: &Weights| {
                w.get("model.layers.0.mlp.up_proj.weight", &[cfg.intermediate_size, cfg.hidden_size])
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            };
            assert_eq!(first(&w), first(&again));
            assert_ne!(first(&w), first(&other));
        }
    }
}
