//! LoRA against PEFT: adapters PEFT wrote give PEFT's logits, merging equals W + (α/r)·B·A,
//! a training step moves only A and B, and saved adapters round-trip (and load in PEFT).

mod common;

use candle_core::{Device, Tensor, Var};
use srlm::model::load::load_hf_weights;
use srlm::model::CausalLm;
use srlm::model::{token_logprobs, LoraAdapters, LoraConfig, ModelConfig, Qwen2, TokenBatch, Weights};
use srlm::optim::{AdamW, AdamWConfig};

fn tiny() -> (ModelConfig, Weights) {
    load_hf_weights(&common::fixtures().join("tiny/qwen2")).unwrap()
}

fn peft_dir() -> std::path::PathBuf {
    common::fixtures().join("tiny/lora_peft")
}

fn logits(model: &Qwen2, ids: &[Vec<u32>]) -> Vec<f32> {
    let ids = Tensor::new(ids.to_vec(), &Device::Cpu).unwrap();
    model.forward_train(&ids, None).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

fn cfg(targets: &[&str]) -> LoraConfig {
    LoraConfig { r: 4, alpha: 6.0, dropout: 0.0, target_modules: targets.iter().map(|s| s.to_string()).collect(), seed: 11 }
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

const ALL: [&str; 7] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

#[test]
fn peft_written_adapter_gives_peft_logits() {
    let (config, base) = tiny();
    let golden = common::read_json(&peft_dir().join("golden.json"));
    let adapters = LoraAdapters::load_peft(&peft_dir(), &base, &config).unwrap();
    assert_eq!(adapters.module_paths().count(), 14);
    let model = Qwen2::with_lora(&config, &base, &adapters, false).unwrap();
    let ids = common::ids_2d(&golden["ids"]);
    let ours = logits(&model, &ids);
    let theirs: Vec<f32> = common::leaves(&golden["logits"]).iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let base_logits = logits(&Qwen2::new(&config, &base).unwrap(), &ids);
    assert!(max_diff(&base_logits, &theirs) > 1e-2, "the adapter must change the logits for this test to mean anything");
    assert!(max_diff(&ours, &theirs) < 1e-4, "max diff {}", max_diff(&ours, &theirs));
}

#[test]
fn merged_weights_equal_w_plus_scaled_b_a() {
    let (config, base) = tiny();
    let adapters = LoraAdapters::load_peft(&peft_dir(), &base, &config).unwrap();
    let merged = adapters.merged(&base).unwrap();
    let path = "model.layers.0.self_attn.q_proj";
    let w = base.get(&format!("{path}.weight"), &[32, 32]).unwrap().to_vec2::<f32>().unwrap();
    let (a, b) = adapters.factors(path).unwrap();
    let (a, b) = (a.to_vec2::<f32>().unwrap(), b.to_vec2::<f32>().unwrap());
    // Explicit W[o][i] + (alpha / r) Σ_k B[o][k] A[k][i], alpha = 6, r = 4.
    let mut expected = vec![0f32; 32 * 32];
    for o in 0..32 {
        for i in 0..32 {
            let ba: f32 = (0..4).map(|k| b[o][k] * a[k][i]).sum();
            expected[o * 32 + i] = w[o][i] + 1.5 * ba;
        }
    }
    // Frozen values, not a graph over the adapters that would keep B·A alive with them.
    assert!(merged.iter().all(|(_, t)| !t.track_op()), "merged weights record a gradient graph");
    let got: Vec<f32> = merged.get(&format!("{path}.weight"), &[32, 32]).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert!(max_diff(&got, &expected) < 1e-6);
    let golden = common::read_json(&peft_dir().join("golden.json"));
    let peft: Vec<f32> = common::leaves(&golden["merged_layer0_q_proj"]).iter().map(|v| v.as_f64().unwrap() as f32).collect();
    assert!(max_diff(&got, &peft) < 1e-6, "PEFT's merge differs by {}", max_diff(&got, &peft));
    // The merged plain model computes what the adapted one does.
    let ids = vec![vec![1u32, 9, 40, 77, 3]];
    let adapted = logits(&Qwen2::with_lora(&config, &base, &adapters, false).unwrap(), &ids);
    let plain = logits(&Qwen2::new(&config, &merged).unwrap(), &ids);
    assert!(max_diff(&adapted, &plain) < 1e-4);
    // Untargeted tensors are untouched.
    for (name, t) in base.iter() {
        if !name.contains("_proj") {
            let m = merged.get(name, t.dims()).unwrap();
            assert_eq!(m.flatten_all().unwrap().to_vec1::<f32>().unwrap(), t.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        }
    }
}

fn snapshot(vars: &[(String, Var)]) -> Vec<Vec<f32>> {
    vars.iter().map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()).collect()
}

#[test]
fn an_optimiser_step_moves_only_the_adapters() {
    let (config, base) = tiny();
    let before: Vec<Vec<f32>> = base.iter().map(|(_, t)| t.flatten_all().unwrap().to_vec1().unwrap()).collect();
    let mut lora = cfg(&ALL);
    lora.dropout = 0.1;
    let adapters = LoraAdapters::init(&lora, &base, &config).unwrap();
    let vars = adapters.vars();
    let model = Qwen2::with_lora(&config, &base, &adapters, true).unwrap();
    let mut opt = AdamW::new(vars.clone(), AdamWConfig { lr: 1e-2, max_grad_norm: None, ..Default::default() }).unwrap();
    let batch = TokenBatch::right_padded(&[vec![1, 5, 9, 14, 20, 33], vec![1, 7, 8]], 0, &Device::Cpu).unwrap();
    let mut history = vec![snapshot(&vars)];
    for _ in 0..2 {
        let loss = token_logprobs(&model, &batch, 1.0, false, 4).unwrap().logprobs.sum_all().unwrap().neg().unwrap();
        let grads = loss.backward().unwrap();
        for (_, t) in base.iter() {
            assert!(grads.get(t).is_none(), "a base weight received a gradient");
        }
        let mut acc = opt.accumulator();
        acc.add(&grads).unwrap();
        opt.step(acc).unwrap();
        history.push(snapshot(&vars));
    }
    let after: Vec<Vec<f32>> = base.iter().map(|(_, t)| t.flatten_all().unwrap().to_vec1().unwrap()).collect();
    assert_eq!(before, after, "base weights must stay bit-identical");
    // B starts at zero, so step 1 moves every B; A's gradient is B-weighted, so A moves at step 2.
    for (i, (name, _)) in vars.iter().enumerate() {
        let moved_by = |step: usize| history[step][i] != history[0][i];
        if name.contains("lora_B") {
            assert!(history[0][i].iter().all(|&x| x == 0.0) && moved_by(1), "{name}");
        } else {
            assert!(moved_by(2), "{name}");
        }
    }
}

#[test]
fn a_fresh_adapter_is_the_base_model_and_a_is_peft_kaiming() {
    let (config, base) = tiny();
    let adapters = LoraAdapters::init(&cfg(&["q_proj", "down_proj"]), &base, &config).unwrap();
    let ids = vec![vec![1u32, 2, 3, 50, 60]];
    let with = logits(&Qwen2::with_lora(&config, &base, &adapters, false).unwrap(), &ids);
    // Against the base model on the same (differentiable) kernels, so equal means bit-equal.
    let (trainable_base, _vars) = base.to_vars().unwrap();
    assert_eq!(with, logits(&Qwen2::new(&config, &trainable_base).unwrap(), &ids));
    // kaiming_uniform(a=√5) on (r, in) is U(±1/√in): in = 32 for q_proj, 64 for down_proj.
    for (path, inp) in [("model.layers.1.self_attn.q_proj", 32f32), ("model.layers.0.mlp.down_proj", 64.0)] {
        let a: Vec<f32> = adapters.factors(path).unwrap().0.flatten_all().unwrap().to_vec1().unwrap();
        let bound = 1.0 / inp.sqrt();
        assert!(a.iter().all(|x| x.abs() <= bound));
        assert!(a.iter().any(|x| x.abs() > 0.8 * bound), "spread over the whole range");
    }
}

fn randomise_b(adapters: &LoraAdapters) {
    for (name, var) in adapters.vars() {
        if name.contains("lora_B") {
            let t = Tensor::randn(0f32, 0.3, var.shape(), &Device::Cpu).unwrap();
            var.set(&t).unwrap();
        }
    }
}

#[test]
fn saved_adapter_round_trips_and_peft_reads_it() {
    let (config, base) = tiny();
    let adapters = LoraAdapters::init(&cfg(&["q_proj", "v_proj", "up_proj"]), &base, &config).unwrap();
    randomise_b(&adapters);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("adapter");
    adapters.save_peft(&out, "tests/fixtures/tiny/qwen2", false).unwrap();
    assert!(adapters.save_peft(&out, "x", false).is_err(), "no silent overwrite");
    let json = common::read_json(&out.join("adapter_config.json"));
    assert_eq!(json["peft_type"], "LORA");
    assert_eq!(json["target_modules"], serde_json::json!(["q_proj", "v_proj", "up_proj"]));
    let loaded = LoraAdapters::load_peft(&out, &base, &config).unwrap();
    let ids = vec![vec![1u32, 17, 42, 5, 88, 3], vec![1, 33, 2, 71, 14, 95]];
    let ours = logits(&Qwen2::with_lora(&config, &base, &adapters, false).unwrap(), &ids);
    let reloaded = logits(&Qwen2::with_lora(&config, &base, &loaded, false).unwrap(), &ids);
    assert_eq!(ours, reloaded, "save → load must be exact");
    peft_check(&out, &ids, &ours);
}

/// PEFT's own logits for our adapter, when python3 with torch, transformers and peft is
/// installed (skipped otherwise: CI machines need not have peft).
fn peft_check(adapter: &std::path::Path, ids: &[Vec<u32>], ours: &[f32]) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let ids_path = adapter.with_extension("ids.json");
    std::fs::write(&ids_path, serde_json::to_string(ids).unwrap()).unwrap();
    let out = std::process::Command::new("python3")
        .arg(root.join("scripts/peft_reference.py"))
        .args(["logits", root.join("tests/fixtures/tiny/qwen2").to_str().unwrap(), adapter.to_str().unwrap(), ids_path.to_str().unwrap()])
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) if String::from_utf8_lossy(&o.stderr).contains("ModuleNotFoundError") => {
            eprintln!("skipping the PEFT check: {}", String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or(""));
            return;
        }
        Ok(o) => panic!("peft_reference.py failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            eprintln!("skipping the PEFT check: no python3 ({e})");
            return;
        }
    };
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let theirs: Vec<f32> = common::leaves(&theirs).iter().map(|v| v.as_f64().unwrap() as f32).collect();
    assert!(max_diff(ours, &theirs) < 1e-4, "PEFT disagrees by {}", max_diff(ours, &theirs));
}

#[test]
fn unknown_target_module_is_refused_with_the_available_list() {
    let (config, base) = tiny();
    let err = LoraAdapters::init(&cfg(&["q_proj", "c_attn"]), &base, &config).err().unwrap().to_string();
    assert!(err.contains("'c_attn'") && err.contains("q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj"), "{err}");
}

#[test]
fn damaged_adapters_are_refused_naming_the_fault() {
    let (config, base) = tiny();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a");
    let adapters = LoraAdapters::init(&cfg(&["q_proj"]), &base, &config).unwrap();
    adapters.save_peft(&out, "base", false).unwrap();
    let config_path = out.join("adapter_config.json");
    let text = std::fs::read_to_string(&config_path).unwrap();
    // The file holds q_proj only; asking for k_proj too must name the missing tensor.
    std::fs::write(&config_path, text.replace("\"q_proj\"", "\"q_proj\", \"k_proj\"")).unwrap();
    let err = LoraAdapters::load_peft(&out, &base, &config).err().unwrap().to_string();
    assert!(err.contains("adapter_model.safetensors") && err.contains("layers.0.self_attn.k_proj.lora_A"), "{err}");
    std::fs::write(&config_path, text.replace("\"use_dora\": false", "\"use_dora\": true")).unwrap();
    let err = LoraAdapters::load_peft(&out, &base, &config).err().unwrap().to_string();
    assert!(err.contains("adapter_config.json") && err.contains("use_dora"), "{err}");
}
