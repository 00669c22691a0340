//! GRPO through the tiny model: the full loss's gradient against finite differences, micro-batch
//! accumulation against one batch, μ iterations, and skipped non-finite steps.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use srlm::learner::grpo::ScoredSequence;
use srlm::learner::{grpo_loss, grpo_step, GrpoConfig, GrpoLossConfig, LossInputs, LossType, RatioLevel};
use srlm::model::load::load_hf_weights;
use srlm::model::{token_logprobs, ModelConfig, Qwen2, TokenBatch, Weights};
use srlm::optim::{AdamW, AdamWConfig};

fn tiny(dtype: DType) -> (ModelConfig, Weights, Vec<(String, Var)>) {
    let (cfg, w) = load_hf_weights(&fixtures().join("tiny/qwen2")).unwrap();
    let (w, vars) = w.to(dtype, &Device::Cpu).unwrap().to_vars().unwrap();
    (cfg, w, vars)
}

/// Three rows with prompts of different lengths; behaviour and reference log-probs are the
/// model's own shifted by fixed offsets, so ratios sit inside and outside the clip range.
fn fd_loss(model: &Qwen2, cfg: &GrpoLossConfig, fixed: &Tensor) -> Tensor {
    let dev = Device::Cpu;
    let batch = TokenBatch {
        ids: Tensor::new(&[[5u32, 17, 3, 88, 41, 9, 60], [11, 45, 90, 3, 27, 0, 0], [7, 31, 64, 2, 50, 12, 0]], &dev).unwrap(),
        mask: Tensor::new(&[[1f64, 1., 1., 1., 1., 1., 1.], [1., 1., 1., 1., 1., 0., 0.], [1., 1., 1., 1., 1., 1., 0.]], &dev).unwrap(),
        positions: None,
        scored: None,
    };
    let out = token_logprobs(model, &batch, 0.9, false, 4).unwrap();
    // Completion tokens: row 0 from token 3, row 1 from token 2, row 2 from token 4.
    let mask = Tensor::new(&[[0f64, 0., 1., 1., 1., 1.], [0., 1., 1., 1., 0., 0.], [0., 0., 0., 1., 1., 0.]], &dev).unwrap();
    let offsets =
        Tensor::new(&[[0.0f64, 0.0, -0.35, 0.05, 0.5, -0.1], [0.0, 0.3, -0.6, 0.12, 0.0, 0.0], [0.0, 0.0, 0.0, 0.4, -0.32, 0.0]], &dev)
            .unwrap();
    let behaviour = (fixed - &offsets).unwrap();
    let reference = (fixed + (&offsets * 0.5).unwrap()).unwrap();
    let advantages = Tensor::new(&[1.0f64, -0.8, 0.5], &dev).unwrap();
    let inputs = LossInputs {
        logprobs: &out.logprobs,
        behaviour: &behaviour,
        reference: Some(&reference),
        advantages: &advantages,
        mask: &mask,
        entropies: None,
        global_tokens: Some(12.0),
    };
    grpo_loss(&inputs, cfg).unwrap().loss
}

#[test]
fn grpo_loss_gradients_through_the_model_match_finite_differences() {
    let (mcfg, w, vars) = tiny(DType::F64);
    let model = Qwen2::new(&mcfg, &w).unwrap();
    // The offsets are relative to the initial log-probs, held fixed while weights move.
    let batch = TokenBatch {
        ids: Tensor::new(&[[5u32, 17, 3, 88, 41, 9, 60], [11, 45, 90, 3, 27, 0, 0], [7, 31, 64, 2, 50, 12, 0]], &Device::Cpu).unwrap(),
        mask: Tensor::new(&[[1f64, 1., 1., 1., 1., 1., 1.], [1., 1., 1., 1., 1., 0., 0.], [1., 1., 1., 1., 1., 1., 0.]], &Device::Cpu)
            .unwrap(),
        positions: None,
        scored: None,
    };
    let fixed = token_logprobs(&model, &batch, 0.9, false, 4).unwrap().logprobs.detach();
    let probes = [
        ("model.embed_tokens.weight", 300),
        ("model.layers.0.self_attn.q_proj.weight", 21),
        ("model.layers.1.self_attn.k_proj.bias", 3),
        ("model.layers.0.mlp.down_proj.weight", 50),
        ("model.layers.1.input_layernorm.weight", 6),
        ("model.norm.weight", 9),
    ];
    let configs = [
        GrpoLossConfig { loss_type: LossType::Grpo, beta: 0.04, epsilon_high: 0.2, ratio_cap: Some(1.3), ..Default::default() },
        GrpoLossConfig {
            loss_type: LossType::Dapo,
            ratio_level: RatioLevel::Sequence,
            beta: 0.04,
            epsilon_high: 0.28,
            ..Default::default()
        },
        GrpoLossConfig { loss_type: LossType::DrGrpo, max_completion_len: 8, ..Default::default() },
        GrpoLossConfig { loss_type: LossType::Bnpo, beta: 0.1, ..Default::default() },
    ];
    let mut failures = Vec::new();
    for cfg in &configs {
        let label = format!("{} {:?}", cfg.loss_type.name(), cfg.ratio_level);
        failures.extend(finite_difference_failures(&label, &vars, &probes, &|| fd_loss(&model, cfg, &fixed), 1e-5));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn values(vars: &[(String, Var)]) -> Vec<Vec<f64>> {
    vars.iter().map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1().unwrap()).collect()
}

fn one_step(loss_type: LossType, micro_batch_size: usize, batch: &[ScoredSequence]) -> Vec<Vec<f64>> {
    one_step_in_lanes(loss_type, micro_batch_size, 1, batch)
}

fn one_step_in_lanes(loss_type: LossType, micro_batch_size: usize, lanes: usize, batch: &[ScoredSequence]) -> Vec<Vec<f64>> {
    let (mcfg, w, vars) = tiny(DType::F64);
    let model = Qwen2::new(&mcfg, &w).unwrap();
    let mut opt = AdamW::new(vars.clone(), AdamWConfig { lr: 1e-2, max_grad_norm: None, ..AdamWConfig::default() }).unwrap();
    let cfg = GrpoConfig {
        loss: GrpoLossConfig { loss_type, max_completion_len: 6, ..Default::default() },
        micro_batch_size,
        lanes,
        mask_truncated: true,
        ..GrpoConfig::default()
    };
    let stats = grpo_step(&model, None, batch, &cfg, &mut opt).unwrap();
    assert_eq!(stats.skipped, 0);
    assert!(stats.iterations[0].grad_norm > 0.0);
    values(&vars)
}

#[test]
fn micro_batches_accumulate_to_the_full_batch_update() {
    let batch = synthetic_batch(&mut ChaCha8Rng::seed_from_u64(3), 2, 3, 5);
    for loss_type in [LossType::Grpo, LossType::DrGrpo, LossType::Dapo] {
        let whole = one_step(loss_type, 6, &batch);
        let split = one_step(loss_type, 2, &batch);
        let diff = whole.iter().flatten().zip(split.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(diff < 1e-9, "{}: micro-batched update differs by {diff}", loss_type.name());
    }
}

#[test]
fn micro_batches_in_lanes_give_the_same_update_as_one_at_a_time() {
    // Five micro-batches: lanes of 2 and 4 leave a short last round.
    let batch = synthetic_batch(&mut ChaCha8Rng::seed_from_u64(4), 2, 5, 5);
    let one_at_a_time = one_step_in_lanes(LossType::Dapo, 2, 1, &batch);
    for lanes in [2, 4] {
        assert!(one_step_in_lanes(LossType::Dapo, 2, lanes, &batch) == one_at_a_time, "{lanes} lanes: update differs");
    }
}

#[test]
fn inner_iterations_step_the_optimizer_and_move_the_ratio() {
    let (mcfg, w, vars) = tiny(DType::F32);
    let model = Qwen2::new(&mcfg, &w).unwrap();
    // A separate copy from disk: `Weights::to` with the same dtype would share the policy's storage.
    let (_, frozen) = load_hf_weights(&fixtures().join("tiny/qwen2")).unwrap();
    let reference = Qwen2::new(&mcfg, &frozen).unwrap();
    let mut opt = AdamW::new(vars, AdamWConfig { lr: 1e-2, ..AdamWConfig::default() }).unwrap();
    let batch = synthetic_batch(&mut ChaCha8Rng::seed_from_u64(5), 2, 4, 5);
    let cfg = GrpoConfig {
        iterations: 3,
        micro_batch_size: 3,
        loss: GrpoLossConfig { beta: 0.04, ..Default::default() },
        ..GrpoConfig::default()
    };
    let stats = grpo_step(&model, Some(&reference), &batch, &cfg, &mut opt).unwrap();
    assert_eq!(opt.step_count(), 3);
    assert_eq!(stats.iterations.len(), 3);
    let it = &stats.iterations;
    // The first iteration's KL to the (identical) reference is 0; later ones are not.
    assert!(it[0].loss.kl.unwrap().abs() < 1e-9 && it[2].loss.kl.unwrap() > 0.0, "{it:?}");
    assert!((it[0].loss.ratio_mean - it[2].loss.ratio_mean).abs() > 1e-6);
    assert!(it.iter().all(|i| i.applied && i.loss.entropy.unwrap() > 0.0));
    let total: usize = batch.iter().map(|s| s.tokens.len() - s.prompt_len).sum();
    assert_eq!(stats.tokens, total);
}

#[test]
fn non_finite_loss_skips_the_step_and_leaves_weights_alone() {
    let (mcfg, w, vars) = tiny(DType::F32);
    let model = Qwen2::new(&mcfg, &w).unwrap();
    let mut opt = AdamW::new(vars.clone(), AdamWConfig { lr: 1e-2, ..AdamWConfig::default() }).unwrap();
    let mut batch = synthetic_batch(&mut ChaCha8Rng::seed_from_u64(9), 1, 4, 5);
    // A behaviour log-prob so low that the ratio overflows to infinity.
    batch[2].behaviour_logprobs[0] = -1e30;
    let before = values(&vars);
    for (lanes, skipped) in [(1, 1), (2, 2)] {
        let stats = grpo_step(&model, None, &batch, &GrpoConfig { micro_batch_size: 2, lanes, ..GrpoConfig::default() }, &mut opt).unwrap();
        assert_eq!(stats.skipped, 1);
        assert!(!stats.iterations[0].applied);
        assert_eq!((opt.step_count(), opt.skipped_count()), (0, skipped), "{lanes} lanes");
        assert_eq!(values(&vars), before);
    }
}

#[test]
fn bad_batches_are_refused_with_the_row() {
    let (mcfg, w, vars) = tiny(DType::F32);
    let model = Qwen2::new(&mcfg, &w).unwrap();
    let mut opt = AdamW::new(vars, AdamWConfig::default()).unwrap();
    let mut batch = synthetic_batch(&mut ChaCha8Rng::seed_from_u64(1), 1, 3, 5);
    batch[1].behaviour_logprobs.pop();
    let err = grpo_step(&model, None, &batch, &GrpoConfig::default(), &mut opt).unwrap_err().to_string();
    assert!(err.contains("row 1"), "{err}");
    let batch = synthetic_batch(&mut ChaCha8Rng::seed_from_u64(1), 1, 3, 5);
    let cfg = GrpoConfig { loss: GrpoLossConfig { beta: 0.04, ..Default::default() }, ..GrpoConfig::default() };
    let err = grpo_step(&model, None, &batch, &cfg, &mut opt).unwrap_err().to_string();
    assert!(err.contains("reference"), "{err}");
}
