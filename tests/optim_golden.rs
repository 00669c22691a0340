//! AdamW, gradient clipping and the warmup + cosine schedule against torch (scripts/optim_reference.py).

mod common;

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, Var};
use common::*;
use serde_json::Value;
use srlm::optim::{AdamW, AdamWConfig, Decay, Schedule};

fn tensor(v: &Value) -> Tensor {
    let flat: Vec<f64> = leaves(v).iter().map(|x| x.as_f64().unwrap()).collect();
    let shape: Vec<usize> = match v {
        Value::Array(rows) if rows[0].is_array() => vec![rows.len(), rows[0].as_array().unwrap().len()],
        Value::Array(rows) => vec![rows.len()],
        _ => unreachable!(),
    };
    Tensor::from_vec(flat, shape, &Device::Cpu).unwrap()
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1().unwrap()
}

fn optimizer(g: &Value) -> (AdamW, Vec<(String, Var)>) {
    let init: BTreeMap<String, Value> = serde_json::from_value(g["init"].clone()).unwrap();
    let vars: Vec<(String, Var)> = init.iter().map(|(n, v)| (n.clone(), Var::from_tensor(&tensor(v)).unwrap())).collect();
    let cfg = AdamWConfig {
        lr: g["lr"].as_f64().unwrap(),
        beta1: g["beta1"].as_f64().unwrap(),
        beta2: g["beta2"].as_f64().unwrap(),
        eps: g["eps"].as_f64().unwrap(),
        weight_decay: g["weight_decay"].as_f64().unwrap(),
        max_grad_norm: g["max_grad_norm"].as_f64(),
        schedule: Schedule {
            decay: Decay::Cosine,
            warmup_steps: g["warmup_steps"].as_u64().unwrap() as usize,
            total_steps: g["total_steps"].as_u64().unwrap() as usize,
        },
    };
    (AdamW::new(vars.clone(), cfg).unwrap(), vars)
}

/// Σ ⟨param, g⟩ over parameters: a loss whose gradient is exactly g, taken by backward.
fn linear_loss(vars: &[(String, Var)], grads: &Value, scale: f64) -> Tensor {
    let mut total = Tensor::new(0f64, &Device::Cpu).unwrap();
    for (name, var) in vars {
        let g = (tensor(&grads[name]) * scale).unwrap();
        total = (total + (var.as_tensor() * g).unwrap().sum_all().unwrap()).unwrap();
    }
    total
}

#[test]
fn adamw_steps_match_torch() {
    let g = read_json(&fixtures().join("optim_golden.json"));
    let (mut opt, vars) = optimizer(&g);
    for (k, step) in g["steps"].as_array().unwrap().iter().enumerate() {
        let mut acc = opt.accumulator();
        acc.add(&linear_loss(&vars, &step["grads"], 1.0).backward().unwrap()).unwrap();
        let report = opt.step(acc).unwrap();
        assert!(report.applied);
        assert!((report.lr - step["lr"].as_f64().unwrap()).abs() < 1e-15, "step {k}: lr {}", report.lr);
        let norm = step["grad_norm"].as_f64().unwrap();
        assert!((report.grad_norm - norm).abs() < 1e-10 * norm, "step {k}: grad norm {} vs {norm}", report.grad_norm);
        for (name, var) in &vars {
            let want: Vec<f64> = leaves(&step["params"][name]).iter().map(|x| x.as_f64().unwrap()).collect();
            let diff = flat(var.as_tensor()).iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(diff < 1e-12, "step {k} {name}: differs from torch by {diff}");
        }
    }
    assert_eq!(opt.step_count(), 6);
}

#[test]
fn accumulating_micro_batches_equals_one_batch() {
    let g = read_json(&fixtures().join("optim_golden.json"));
    let (mut whole, whole_vars) = optimizer(&g);
    let (mut split, split_vars) = optimizer(&g);
    for step in g["steps"].as_array().unwrap() {
        let mut acc = whole.accumulator();
        acc.add(&linear_loss(&whole_vars, &step["grads"], 1.0).backward().unwrap()).unwrap();
        whole.step(acc).unwrap();
        let mut acc = split.accumulator();
        for part in [0.25, 0.75] {
            acc.add(&linear_loss(&split_vars, &step["grads"], part).backward().unwrap()).unwrap();
        }
        split.step(acc).unwrap();
    }
    for ((_, a), (_, b)) in whole_vars.iter().zip(&split_vars) {
        let diff = flat(a.as_tensor()).iter().zip(flat(b.as_tensor())).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        assert!(diff < 1e-12, "accumulated update differs by {diff}");
    }
}

#[test]
fn non_finite_gradient_is_skipped_and_counted() {
    let g = read_json(&fixtures().join("optim_golden.json"));
    let (mut opt, vars) = optimizer(&g);
    let before: Vec<Vec<f64>> = vars.iter().map(|(_, v)| flat(v.as_tensor())).collect();
    let mut acc = opt.accumulator();
    let loss = (linear_loss(&vars, &g["steps"][0]["grads"], 1.0) * f64::NAN).unwrap();
    acc.add(&loss.backward().unwrap()).unwrap();
    let report = opt.step(acc).unwrap();
    assert!(!report.applied && report.grad_norm.is_nan());
    assert_eq!((opt.step_count(), opt.skipped_count()), (0, 1));
    let after: Vec<Vec<f64>> = vars.iter().map(|(_, v)| flat(v.as_tensor())).collect();
    assert_eq!(before, after);
}

#[test]
fn moments_round_trip_through_restore() {
    let g = read_json(&fixtures().join("optim_golden.json"));
    let (mut opt, vars) = optimizer(&g);
    let mut acc = opt.accumulator();
    acc.add(&linear_loss(&vars, &g["steps"][1]["grads"], 1.0).backward().unwrap()).unwrap();
    opt.step(acc).unwrap();
    let (mut other, _) = optimizer(&g);
    other.restore(opt.step_count(), 0, &opt.moments()).unwrap();
    assert_eq!(other.lr(), opt.lr());
    for (k, t) in opt.moments() {
        assert_eq!(flat(&t), flat(&other.moments()[&k]), "{k}");
    }
    let mut missing = opt.moments();
    missing.remove("m.model.norm.weight");
    missing.insert("m.other".into(), Tensor::zeros(4, DType::F64, &Device::Cpu).unwrap());
    let err = other.restore(1, 0, &missing).unwrap_err().to_string();
    assert!(err.contains("m.model.norm.weight"), "{err}");
}

#[test]
fn seed_settings_are_expressible() {
    // Full SFT lr 4e-5, LoRA 1e-4, GRPO 1e-6, each with a warmup ratio and a decay.
    for (lr, decay) in [(4e-5, Decay::Cosine), (1e-4, Decay::Linear), (1e-6, Decay::Constant)] {
        let cfg = AdamWConfig { lr, schedule: Schedule::with_warmup_ratio(decay, 0.1, 1000), ..AdamWConfig::default() };
        let opt = AdamW::new(vec![], cfg).unwrap();
        assert_eq!(opt.lr(), 0.0);
        assert_eq!(opt.config().schedule.warmup_steps, 100);
    }
}
