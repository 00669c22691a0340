//! The CUDA path against the same references as the CPU path: HF transformers' golden logits,
//! CPU gradients, and full recomputation for cached decoding. Built only with `--features cuda`;
//! run where a GPU is present (`scripts/gpu/check.sh`).
#![cfg(feature = "cuda")]

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::*;
use srlm::model::load::load_hf_weights;
use srlm::model::{token_logprobs, Positions, Qwen2, TokenBatch, Weights};

fn gpu() -> Device {
    Device::new_cuda(0).expect("a CUDA device (this test needs a GPU)")
}

fn tiny_on(dir: &str, dtype: DType, dev: &Device) -> (srlm::model::ModelConfig, Weights) {
    let (cfg, w) = load_hf_weights(&fixtures().join("tiny").join(dir)).unwrap();
    (cfg, w.to(dtype, dev).unwrap())
}

fn ids_on(rows: &[Vec<u32>], dev: &Device) -> Tensor {
    Tensor::new(rows.to_vec(), dev).unwrap()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_dtype(DType::F32).unwrap().to_vec1().unwrap()
}

#[test]
fn tiny_models_match_transformers_on_cuda() {
    let dev = gpu();
    for dir in ["qwen2", "llama", "qwen3"] {
        let (cfg, w) = tiny_on(dir, DType::F32, &dev);
        let g = read_json(&fixtures().join("tiny").join(dir).join("golden.json"));
        let ids = ids_on(&ids_2d(&g["input_ids"]), &dev);
        let mask = ids_on(&ids_2d(&g["attention_mask"]), &dev).to_dtype(DType::F32).unwrap();
        let golden = rows_of(&g["logits"], cfg.vocab_size);

        let logits = Qwen2::new(&cfg, &w).unwrap().forward_train(&ids, Some(&mask)).unwrap();
        let diff = max_abs_diff(&flat(&logits), &golden);
        assert!(diff < 1e-4, "{dir}: CUDA training-path logits differ from HF by {diff}");

        let fused = Qwen2::for_inference(&cfg, &w).unwrap();
        let hidden = fused.forward(&ids, Positions::Offset(0), Some(&mask), None, true).unwrap();
        let diff = max_abs_diff(&flat(&fused.logits(&hidden).unwrap()), &golden);
        assert!(diff < 1e-4, "{dir}: CUDA fused-kernel logits differ from HF by {diff}");

        let batch = TokenBatch { ids, mask, positions: None, scored: None };
        let out = token_logprobs(&Qwen2::new(&cfg, &w).unwrap(), &batch, 1.0, true, 4).unwrap();
        let diff = max_abs_diff(&flat(&out.logprobs), &leaves(&g["logprobs"]));
        assert!(diff < 1e-4, "{dir}: CUDA log-probs differ from HF by {diff}");
        let diff = max_abs_diff(&flat(out.entropies.as_ref().unwrap()), &leaves(&g["entropies"]));
        assert!(diff < 1e-4, "{dir}: CUDA entropies differ from HF by {diff}");
    }
}

#[test]
fn bf16_on_cuda_stays_close_to_transformers() {
    let dev = gpu();
    let (cfg, w) = tiny_on("qwen2", DType::BF16, &dev);
    let g = read_json(&fixtures().join("tiny/qwen2/golden.json"));
    let ids = ids_on(&ids_2d(&g["input_ids"]), &dev);
    let mask = ids_on(&ids_2d(&g["attention_mask"]), &dev).to_dtype(DType::BF16).unwrap();
    let batch = TokenBatch { ids, mask, positions: None, scored: None };
    let out = token_logprobs(&Qwen2::new(&cfg, &w).unwrap(), &batch, 1.0, false, 512).unwrap();
    let got = flat(&out.logprobs);
    let want = leaves(&g["logprobs"]);
    let (mut err, mut norm) = (0f64, 0f64);
    for (a, b) in got.iter().zip(&want) {
        if let Some(b) = b.as_f64() {
            err += (*a as f64 - b).powi(2);
            norm += b * b;
        }
    }
    let rel = (err / norm).sqrt();
    assert!(rel < 2e-2, "bf16 log-probs relative error {rel}");
}

/// Σ coeff · log p over a left-padded batch on `dev`, touching every parameter.
fn weighted_logprob_sum(model: &Qwen2, dev: &Device) -> Tensor {
    let batch = TokenBatch {
        ids: Tensor::new(&[[0u32, 0, 7, 31, 64, 2], [11, 45, 90, 3, 27, 50]], dev).unwrap(),
        mask: Tensor::new(&[[0f32, 0., 1., 1., 1., 1.], [1., 1., 1., 1., 1., 1.]], dev).unwrap(),
        positions: Some(Tensor::new(&[[0u32, 0, 0, 1, 2, 3], [0, 1, 2, 3, 4, 5]], dev).unwrap()),
        scored: None,
    };
    let out = token_logprobs(model, &batch, 0.8, false, 3).unwrap();
    let coeff = Tensor::new(&[[0.3f32, -1.2, 0.7, 2.0, -0.4], [1.1, 0.5, -0.9, 0.2, 1.5]], dev).unwrap();
    (out.logprobs * coeff).unwrap().sum_all().unwrap()
}

fn gradients(dev: &Device) -> Vec<(String, Vec<f32>)> {
    let (cfg, w) = tiny_on("qwen2", DType::F32, dev);
    let (w, vars) = w.to_vars().unwrap();
    let grads = weighted_logprob_sum(&Qwen2::new(&cfg, &w).unwrap(), dev).backward().unwrap();
    vars.iter().map(|(n, v): &(String, Var)| (n.clone(), flat(grads.get(v.as_tensor()).unwrap()))).collect()
}

#[test]
fn cuda_gradients_equal_cpu_gradients() {
    let cpu = gradients(&Device::Cpu);
    let cuda = gradients(&gpu());
    assert_eq!(cpu.len(), cuda.len());
    for ((name, a), (_, b)) in cpu.iter().zip(&cuda) {
        let scale = a.iter().fold(1e-3f32, |m, x| m.max(x.abs()));
        let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(diff / scale < 1e-4, "{name}: CUDA gradient differs from CPU by {diff} (scale {scale})");
    }
}

#[test]
fn cached_decoding_on_cuda_equals_full_recomputation() {
    let dev = gpu();
    for dir in ["qwen2", "llama", "qwen3"] {
        let (cfg, w) = tiny_on(dir, DType::F32, &dev);
        let fast = Qwen2::for_inference(&cfg, &w).unwrap();
        let seq = [4u32, 19, 77, 3, 52, 8, 91, 30, 13, 66];
        let full = Qwen2::new(&cfg, &w).unwrap().forward_train(&Tensor::new(&[seq], &dev).unwrap(), None).unwrap();
        let full = full.squeeze(0).unwrap();
        let mut cache = fast.new_cache();
        let mut got = vec![fast.decode(&Tensor::new(&seq[..4], &dev).unwrap().unsqueeze(0).unwrap(), &mut cache).unwrap()];
        for &tok in &seq[4..] {
            got.push(fast.decode(&Tensor::new(&[[tok]], &dev).unwrap(), &mut cache).unwrap());
        }
        for (k, logits) in got.iter().enumerate() {
            let want = flat(&full.get(3 + k).unwrap());
            let diff = flat(logits).iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(diff < 1e-4, "{dir}: CUDA step {k} differs from recomputation by {diff}");
        }
    }
}
