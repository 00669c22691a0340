//! Shared helpers of the integration tests: fixture paths and tolerant comparisons.
#![allow(dead_code)]

pub mod ports;
pub mod running;
pub mod tiny_kd;

use std::path::PathBuf;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn read_json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The real checkpoints fetched by ../shared/models/fetch.sh. Missing, the test fails with the
/// fetch command (a skip that `cargo test` reports as ok would hide that nothing was tested),
/// unless SRLM_SKIP_REAL_MODELS=1 asks to skip (then None, and a note on stderr).
pub fn real_model(file: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("SRLM_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/srlm-models"));
    let path = dir.join(file);
    if path.is_file() {
        Some(path)
    } else if std::env::var_os("SRLM_SKIP_REAL_MODELS").is_some_and(|v| v == "1") {
        eprintln!("skipping: {} not found (SRLM_SKIP_REAL_MODELS=1)", path.display());
        None
    } else {
        panic!(
            "{} is missing: fetch the test checkpoints with `bash ../shared/models/fetch.sh` (SRLM_MODELS picks the folder), \
             or set SRLM_SKIP_REAL_MODELS=1 to skip the real-model tests",
            path.display()
        );
    }
}

pub const QWEN_GGUF: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
pub const SMOL_GGUF: &str = "smollm2-135m-instruct-q4_1.gguf";

/// Largest |a - b| over pairs where the golden value is not null.
pub fn max_abs_diff(got: &[f32], golden: &[serde_json::Value]) -> f32 {
    assert_eq!(got.len(), golden.len());
    got.iter().zip(golden).filter_map(|(g, e)| e.as_f64().map(|e| (g - e as f32).abs())).fold(0.0, f32::max)
}

/// Flattens nested JSON arrays into their leaves, nulls kept.
pub fn leaves(v: &serde_json::Value) -> Vec<serde_json::Value> {
    rows_of(v, 1)
}

/// Like `leaves`, where a null stands for a whole padded row of `width` values (logits).
pub fn rows_of(v: &serde_json::Value, width: usize) -> Vec<serde_json::Value> {
    match v {
        serde_json::Value::Array(items) => items.iter().flat_map(|i| rows_of(i, width)).collect(),
        serde_json::Value::Null => vec![serde_json::Value::Null; width],
        other => vec![other.clone()],
    }
}

pub fn ids_2d(v: &serde_json::Value) -> Vec<Vec<u32>> {
    v.as_array().unwrap().iter().map(|row| row.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()).collect()
}

/// Compares backward's gradient of the scalar `f()` with central finite differences, one
/// entry `index` of the named variable at a time. Returns the failures (relative error > tol).
pub fn finite_difference_failures(
    label: &str,
    vars: &[(String, candle_core::Var)],
    probes: &[(&str, usize)],
    f: &dyn Fn() -> candle_core::Tensor,
    tol: f64,
) -> Vec<String> {
    use candle_core::{Device, Tensor};
    let grads = f().backward().unwrap();
    let eps = 1e-6;
    let mut failures = Vec::new();
    for &(name, index) in probes {
        let v = &vars.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no variable {name}")).1;
        let analytic: Vec<f64> = grads.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let original = v.as_tensor().copy().unwrap();
        let shifted = |delta: f64| -> f64 {
            let mut values: Vec<f64> = original.flatten_all().unwrap().to_vec1().unwrap();
            values[index] += delta;
            v.set(&Tensor::from_vec(values, original.shape(), &Device::Cpu).unwrap()).unwrap();
            f().to_scalar::<f64>().unwrap()
        };
        let numeric = (shifted(eps) - shifted(-eps)) / (2.0 * eps);
        v.set(&original).unwrap();
        let a = analytic[index];
        let err = (a - numeric).abs() / numeric.abs().max(1e-3);
        if err > tol {
            failures.push(format!("{label} {name}[{index}]: backward {a} vs finite difference {numeric}"));
        }
    }
    failures
}

/// `groups` prompts × `g` random completions (up to `max_completion` tokens) over the tiny
/// models' vocabulary, with behaviour log-probs near a random tiny model's (≈ −ln 96), uniform
/// rewards turned into group-relative advantages; completions of the maximum length count as
/// truncated. Deterministic in `rng`, so no tokenizer or generation is needed.
pub fn synthetic_batch(
    rng: &mut rand_chacha::ChaCha8Rng,
    groups: usize,
    g: usize,
    max_completion: usize,
) -> Vec<srlm::learner::grpo::ScoredSequence> {
    use rand::Rng;
    use srlm_actors::{group_advantages, AdvantageScale};
    let mut rows = Vec::new();
    let mut rewards = Vec::new();
    for _ in 0..groups {
        let prompt: Vec<u32> = (0..rng.gen_range(2..5)).map(|_| rng.gen_range(3..96)).collect();
        for _ in 0..g {
            let n = rng.gen_range(1..=max_completion);
            let mut tokens = prompt.clone();
            tokens.extend((0..n).map(|_| rng.gen_range(3..96u32)));
            rows.push(srlm::learner::grpo::ScoredSequence {
                prompt_len: prompt.len(),
                behaviour_logprobs: (0..n).map(|_| -4.56 + rng.gen_range(-0.5..0.5f32)).collect(),
                tokens,
                advantage: 0.0,
                truncated: n == max_completion,
            });
            rewards.push(rng.gen_range(0.0..1.0f32));
        }
    }
    let advantages = rewards.chunks(g).flat_map(|group| group_advantages(group, AdvantageScale::SampleStd));
    for (row, a) in rows.iter_mut().zip(advantages) {
        row.advantage = a;
    }
    rows
}

/// A fresh tiny Qwen2 (the embedded default's shape) with the character tokenizer, exported as
/// an HF directory `dir/model`: a model any `--model` command loads in milliseconds.
pub fn tiny_model_dir(dir: &std::path::Path) -> PathBuf {
    use srlm::synthetic::{char_vocab_size, tiny_qwen2_config, write_char_tokenizer};
    let config = tiny_qwen2_config(char_vocab_size());
    let weights = srlm::model::init::init_weights(&config, 0.02, 0, &candle_core::Device::Cpu).unwrap();
    let tok_dir = dir.join("tokenizer");
    std::fs::create_dir_all(&tok_dir).unwrap();
    write_char_tokenizer(&tok_dir).unwrap();
    let tokenizer = srlm::tokenizer::Tokenizer::from_hf_dir(&tok_dir).unwrap();
    let out = dir.join("model");
    srlm::model::export::export_weights(&config, &weights, Some(&tokenizer), &out, candle_core::DType::F32, true).unwrap();
    out
}
