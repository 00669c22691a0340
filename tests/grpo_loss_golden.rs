//! The GRPO loss and its gradient against scripts/grpo_reference.py (an independent PyTorch
//! implementation of TRL's definitions), for every loss type, token and sequence ratios, β 0 and
//! 0.04 and a truncated-IS cap, in f64 and f32.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::*;
use serde_json::Value;
use srlm::learner::{grpo_loss, GrpoLossConfig, LossInputs, LossType, RatioLevel};

fn matrix(v: &Value, dtype: DType) -> Tensor {
    let rows: Vec<Vec<f64>> = serde_json::from_value(v.clone()).unwrap();
    Tensor::new(rows, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

fn parse_loss_type(name: &str) -> LossType {
    *LossType::ALL.iter().find(|t| t.name() == name).unwrap()
}

fn check(dtype: DType, tol: f64) {
    let g = read_json(&fixtures().join("grpo_golden.json"));
    let x = &g["inputs"];
    let advantages: Vec<f64> = serde_json::from_value(x["advantages"].clone()).unwrap();
    let advantages = Tensor::new(advantages, &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
    let (behaviour, reference, mask) = (matrix(&x["behaviour"], dtype), matrix(&x["reference"], dtype), matrix(&x["mask"], dtype));
    let entropies = matrix(&x["entropies"], dtype);
    let cases = g["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 20);
    let mut failures = Vec::new();
    for case in cases {
        let cfg = GrpoLossConfig {
            loss_type: parse_loss_type(case["loss_type"].as_str().unwrap()),
            ratio_level: if case["ratio_level"] == "token" { RatioLevel::Token } else { RatioLevel::Sequence },
            epsilon_low: g["epsilon_low"].as_f64().unwrap(),
            epsilon_high: g["epsilon_high"].as_f64().unwrap(),
            ratio_cap: case["ratio_cap"].as_f64(),
            beta: case["beta"].as_f64().unwrap(),
            max_completion_len: g["max_completion_len"].as_u64().unwrap() as usize,
        };
        let label = format!("{dtype:?} {} {:?} β={} cap={:?}", cfg.loss_type.name(), cfg.ratio_level, cfg.beta, cfg.ratio_cap);
        let current = Var::from_tensor(&matrix(&x["current"], dtype)).unwrap();
        let inputs = LossInputs {
            logprobs: current.as_tensor(),
            behaviour: &behaviour,
            reference: (cfg.beta > 0.0).then_some(&reference),
            advantages: &advantages,
            mask: &mask,
            entropies: Some(&entropies),
            global_tokens: g["global_tokens"].as_f64(),
        };
        let out = grpo_loss(&inputs, &cfg).unwrap();
        let want = case["loss"].as_f64().unwrap();
        if (out.stats.loss - want).abs() > tol {
            failures.push(format!("{label}: loss {} vs {want}", out.stats.loss));
        }
        for (name, got) in [("ratio_mean", out.stats.ratio_mean), ("clip_low", out.stats.clip_low), ("clip_high", out.stats.clip_high)] {
            let want = case[name].as_f64().unwrap();
            if (got - want).abs() > tol {
                failures.push(format!("{label}: {name} {got} vs {want}"));
            }
        }
        let grad = out.loss.backward().unwrap().get(current.as_tensor()).unwrap().to_dtype(DType::F64).unwrap();
        let grad: Vec<f64> = grad.flatten_all().unwrap().to_vec1().unwrap();
        let want: Vec<f64> = leaves(&case["grad"]).iter().map(|v| v.as_f64().unwrap()).collect();
        let diff = grad.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        if diff > tol {
            failures.push(format!("{label}: gradient differs by {diff}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn loss_and_gradient_match_reference_f64() {
    check(DType::F64, 1e-6);
}

#[test]
fn loss_and_gradient_match_reference_f32() {
    check(DType::F32, 1e-5);
}

#[test]
fn both_clips_fire_in_the_fixture() {
    let g = read_json(&fixtures().join("grpo_golden.json"));
    for case in g["cases"].as_array().unwrap() {
        assert!(case["clip_low"].as_f64().unwrap() > 0.0 && case["clip_high"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn positive_beta_without_reference_is_an_error() {
    let t = Tensor::zeros((1, 2), DType::F32, &Device::Cpu).unwrap();
    let a = Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap();
    let inputs =
        LossInputs { logprobs: &t, behaviour: &t, reference: None, advantages: &a, mask: &t, entropies: None, global_tokens: None };
    let cfg = GrpoLossConfig { beta: 0.04, ..GrpoLossConfig::default() };
    let err = grpo_loss(&inputs, &cfg).err().unwrap().to_string();
    assert!(err.contains("reference"), "{err}");
    let cfg = GrpoLossConfig { epsilon_low: 1.5, ..GrpoLossConfig::default() };
    let err = grpo_loss(&inputs, &cfg).err().unwrap().to_string();
    assert!(err.contains("epsilon_low"), "{err}");
}
