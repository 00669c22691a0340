//! The real GGUF checkpoints (../shared/models/fetch.sh) against transformers' goldens, and
//! `srlm export` → reload giving identical log-probs.

mod common;

use candle_core::{DType, Device};
use common::*;
use srlm::generate::{generate_group, GenerationConfig};
use srlm::model::logprobs::DEFAULT_CHUNK_ROWS;
use srlm::model::CausalLm;
use srlm::model::{token_logprobs, LoadedModel, TokenBatch};
use srlm::sampling::{SamplingParams, StopStrings};

fn golden(file: &str) -> serde_json::Value {
    let all = read_json(&fixtures().join("gguf_golden.json"));
    all["models"].as_array().unwrap().iter().find(|m| m["file"] == file).unwrap().clone()
}

fn prompt_logprobs(m: &LoadedModel, ids: &[u32]) -> Vec<f32> {
    let model = m.model().unwrap();
    let batch = TokenBatch::right_padded(&[ids.to_vec()], 0, &Device::Cpu).unwrap();
    let out = token_logprobs(&model, &batch, 1.0, false, DEFAULT_CHUNK_ROWS).unwrap();
    out.logprobs.squeeze(0).unwrap().to_vec1().unwrap()
}

fn check_real_model(file: &str) {
    let Some(path) = real_model(file) else { return };
    let g = golden(file);
    let m = LoadedModel::load(path.to_str().unwrap(), &Device::Cpu, DType::F32).unwrap();
    let prompt = g["prompt"].as_str().unwrap();
    let ids = m.tokenizer.encode(prompt, false).unwrap();
    let golden_ids: Vec<u32> = g["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    assert_eq!(ids, golden_ids, "{file}: prompt ids");

    // f32 through 24 (Qwen) or 30 (SmolLM2) layers in a different op order than PyTorch.
    let diff = max_abs_diff(&prompt_logprobs(&m, &ids), g["logprobs"].as_array().unwrap());
    assert!(diff < 2e-3, "{file}: prompt log-probs differ from transformers by {diff}");

    // What a remote generator reads (no weights) is the same shape and tokenizer.
    let (config, tokenizer) = srlm::model::load::shape_and_tokenizer(path.to_str().unwrap()).unwrap();
    assert_eq!(format!("{config:?}"), format!("{:?}", m.config), "{file}: shape without weights");
    assert_eq!(tokenizer.encode(prompt, false).unwrap(), golden_ids, "{file}: tokenizer without weights");

    let model = m.inference_model().unwrap();
    let mut cache = model.new_cache();
    let input = candle_core::Tensor::new(ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let last: Vec<f32> = model.decode(&input, &mut cache).unwrap().squeeze(0).unwrap().to_vec1().unwrap();
    let top = &g["top20"];
    for (id, logit) in top["ids"].as_array().unwrap().iter().zip(top["logits"].as_array().unwrap()) {
        let ours = last[id.as_u64().unwrap() as usize];
        let theirs = logit.as_f64().unwrap() as f32;
        assert!((ours - theirs).abs() < 2e-3, "{file}: last logit of {id}: {ours} vs {theirs}");
    }

    let cfg = GenerationConfig {
        sampling: SamplingParams::greedy(),
        max_new_tokens: 16,
        min_new_tokens: 0,
        eos_ids: m.tokenizer.eos_token_ids().to_vec(),
        stop: StopStrings::default(),
        seed: 0,
    };
    let answer = generate_group(&model, &m.tokenizer, &ids, 1, 0, &cfg, |_, _| {}).unwrap().remove(0);
    assert!(answer.text.contains("12"), "{file}: greedy answer to 7 + 5 was {:?}", answer.text);
    let greedy: Vec<u32> = g["greedy_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let margins: Vec<f64> = g["greedy_margins"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    // Token for token until the first step where the top two logits are too close to call.
    for (k, (&ours, &theirs)) in answer.ids.iter().zip(&greedy).enumerate() {
        if margins[k] < 0.01 {
            break;
        }
        assert_eq!(ours, theirs, "{file}: greedy token {k}");
    }
}

#[test]
fn qwen_gguf_matches_transformers() {
    check_real_model(QWEN_GGUF);
}

#[test]
fn smollm2_gguf_matches_transformers() {
    check_real_model(SMOL_GGUF);
}

#[test]
fn export_reloads_with_identical_logprobs() {
    let Some(path) = real_model(QWEN_GGUF) else { return };
    let original = LoadedModel::load(path.to_str().unwrap(), &Device::Cpu, DType::F32).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("qwen-hf");
    srlm::model::export::export_hf(&original, &out, DType::F32, false).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
        assert!(out.join(f).is_file(), "{f} missing from the export");
    }
    // The weights are as readable as their siblings (not owner-only).
    let mode = |f: &str| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(out.join(f)).unwrap().permissions());
    assert_eq!(mode("model.safetensors"), mode("config.json"));
    // Exporting over an existing directory needs an explicit overwrite.
    assert!(srlm::model::export::export_hf(&original, &out, DType::F32, false).is_err());
    let reloaded = LoadedModel::load(out.to_str().unwrap(), &Device::Cpu, DType::F32).unwrap();
    assert_eq!(reloaded.config, original.config);
    let text = "<|im_start|>user\nWhat is 6 times 7?<|im_end|>\n<|im_start|>assistant\n42";
    let ids = original.tokenizer.encode(text, false).unwrap();
    assert_eq!(reloaded.tokenizer.encode(text, false).unwrap(), ids);
    assert_eq!(prompt_logprobs(&reloaded, &ids), prompt_logprobs(&original, &ids));
    drop(original);
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "temporary directories left behind: {leftovers:?}");
}
