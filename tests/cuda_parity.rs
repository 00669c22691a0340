//! The CUDA path against the same references as the CPU path: HF transformers' golden logits,
//! CPU gradients, and full recomputation for cached decoding. Built only with `--features cuda`;
//! run where a GPU is present (`scripts/gpu/check.sh`).
#![cfg(feature = "cuda")]

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::*;
use srlm::model::load::load_hf_weights;
use srlm::model::{token_logprobs, CausalLm, Positions, Qwen2, TokenBatch, Weights};

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

        // Variables take the differentiable kernels, frozen weights candle's fused ones.
        let (trainable, _vars) = w.to_vars().unwrap();
        let logits = Qwen2::new(&cfg, &trainable).unwrap().forward_train(&ids, Some(&mask)).unwrap();
        let diff = max_abs_diff(&flat(&logits), &golden);
        assert!(diff < 1e-4, "{dir}: CUDA training-path logits differ from HF by {diff}");

        let fused = Qwen2::for_inference(&cfg, &w).unwrap();
        let hidden = fused.forward(&ids, Positions::Offset(0), Some(&mask), None).unwrap();
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

/// Every named tensor of `cuda` within 1e-4 of `cpu`'s, relative to the tensor's largest value.
fn assert_relatively_close(cpu: &[(String, Vec<f32>)], cuda: &[(String, Vec<f32>)], what: &str) {
    assert_eq!(cpu.len(), cuda.len());
    for ((name, a), (_, b)) in cpu.iter().zip(cuda) {
        let scale = a.iter().fold(1e-3f32, |m, x| m.max(x.abs()));
        let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(diff / scale < 1e-4, "{name}: CUDA {what} differs from CPU by {diff} (scale {scale})");
    }
}

#[test]
fn cuda_gradients_equal_cpu_gradients() {
    assert_relatively_close(&gradients(&Device::Cpu), &gradients(&gpu()), "gradient");
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

fn grpo_updated_weights(dev: &Device) -> Vec<(String, Vec<f32>)> {
    use rand::SeedableRng;
    use srlm::learner::{grpo_step, GrpoConfig, GrpoLossConfig, LossType};
    use srlm::optim::{AdamW, AdamWConfig};
    let (cfg, w) = tiny_on("qwen2", DType::F32, dev);
    let (w, vars) = w.to_vars().unwrap();
    let model = Qwen2::new(&cfg, &w).unwrap();
    let mut opt = AdamW::new(vars.clone(), AdamWConfig { lr: 1e-2, ..AdamWConfig::default() }).unwrap();
    let batch = synthetic_batch(&mut rand_chacha::ChaCha8Rng::seed_from_u64(3), 2, 3, 5);
    let grpo = GrpoConfig {
        loss: GrpoLossConfig { loss_type: LossType::Dapo, ..Default::default() },
        micro_batch_size: 2,
        ..GrpoConfig::default()
    };
    let stats = grpo_step(&model, None, &batch, &grpo, &mut opt).unwrap();
    assert_eq!(stats.skipped, 0);
    vars.iter().map(|(n, v)| (n.clone(), flat(v.as_tensor()))).collect()
}

#[test]
fn a_grpo_step_on_cuda_updates_the_weights_as_on_the_cpu() {
    assert_relatively_close(&grpo_updated_weights(&Device::Cpu), &grpo_updated_weights(&gpu()), "update");
}

#[test]
fn the_device_sampler_on_cuda_draws_what_it_draws_on_cpu_tensors() {
    use srlm::sampling::{on_device::sample_rows, SamplingParams, SequenceRng};
    let (rows, vocab) = (64, 151_936);
    let mut rng = SequenceRng::new(11, 0);
    let logits: Vec<f32> = (0..rows * vocab).map(|_| (rng.uniform() * 12.0 - 8.0) as f32).collect();
    let on = |dev: &Device, params: &SamplingParams| {
        let t = Tensor::from_vec(logits.clone(), (rows, vocab), dev).unwrap();
        let mut rngs: Vec<SequenceRng> = (0..rows as u64).map(|i| SequenceRng::new(5, i)).collect();
        let mut refs: Vec<&mut SequenceRng> = rngs.iter_mut().collect();
        sample_rows(&t, params, &mut refs).unwrap()
    };
    for params in
        [SamplingParams::default(), SamplingParams { temperature: 0.6, top_p: 0.95, ..Default::default() }, SamplingParams::greedy()]
    {
        let (cpu, cuda) = (on(&Device::Cpu, &params), on(&gpu(), &params));
        let same = cpu.iter().zip(&cuda).filter(|(a, b)| a.token == b.token).count();
        assert!(same * 100 >= rows * 95, "{params:?}: {same}/{rows} tokens agree");
        for (a, b) in cpu.iter().zip(&cuda).filter(|(a, b)| a.token == b.token) {
            assert!((a.logprob - b.logprob).abs() < 1e-4, "{params:?}: {a:?} vs {b:?}");
        }
    }
}

#[test]
fn generation_on_cuda_samples_the_cpu_generations_tokens() {
    use srlm::generate::{generate_group, GenerationConfig, TextDecoder};
    use srlm::sampling::{SamplingParams, StopStrings};
    struct Ids;
    impl TextDecoder for Ids {
        fn decode_text(&self, ids: &[u32]) -> Result<String, String> {
            Ok(ids.iter().map(|i| format!("{i} ")).collect())
        }
    }
    let cfg = GenerationConfig {
        sampling: SamplingParams { temperature: 0.8, ..Default::default() },
        max_new_tokens: 12,
        min_new_tokens: 4,
        eos_ids: vec![2],
        stop: StopStrings::default(),
        seed: 3,
    };
    let run = |dev: &Device| {
        let (mcfg, w) = tiny_on("qwen2", DType::F32, dev);
        generate_group(&Qwen2::for_inference(&mcfg, &w).unwrap(), &Ids, &[5, 17, 3, 88], 16, 0, &cfg, |_, _| {}).unwrap()
    };
    let (cpu, cuda) = (run(&Device::Cpu), run(&gpu()));
    let same = cpu.iter().zip(&cuda).filter(|(a, b)| a.ids == b.ids).count();
    assert!(same >= 14, "only {same}/16 completions agree");
    for (a, b) in cpu.iter().zip(&cuda).filter(|(a, b)| a.ids == b.ids) {
        assert!(a.ids.len() >= 4);
        let diff = a.logprobs.iter().zip(&b.logprobs).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(diff < 1e-4, "behaviour log-probs differ by {diff}");
    }
}
