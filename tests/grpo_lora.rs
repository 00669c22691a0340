//! GRPO with LoRA adapters over a frozen base (`GrpoTrainer::with_lora`, `[grpo.lora]`): the
//! published policy is the base with B·A merged in (checked against the formula), only the
//! wrapped projections move, and a checkpoint of adapters alone resumes to the same weights.

mod common;

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};
use common::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use srlm::learner::checkpoint_place::CheckpointPlace;
use srlm::learner::grpo_trainer::GrpoTrainer;
use srlm::learner::{GrpoConfig, GrpoLossConfig, LossType};
use srlm::model::load::load_hf_weights;
use srlm::model::{LoraConfig, ModelConfig, Weights};
use srlm::optim::AdamWConfig;
use srlm_actors::{GroupRewards, Prompt, RolloutGroup, RunState, SampledCompletion, ScoredGroup, Timings, Trainer};

const R: usize = 4;
const ALPHA: f64 = 8.0;

fn tiny() -> (ModelConfig, Weights) {
    let (cfg, w) = load_hf_weights(&fixtures().join("tiny/qwen2")).unwrap();
    (cfg.clone(), w.to(DType::F32, &Device::Cpu).unwrap())
}

fn lora() -> LoraConfig {
    LoraConfig { r: R, alpha: ALPHA, dropout: 0.0, target_modules: vec!["q_proj".into(), "v_proj".into()], seed: 7 }
}

fn trainer(config: &ModelConfig, base: &Weights, root: &std::path::Path) -> GrpoTrainer {
    let grpo = GrpoConfig {
        loss: GrpoLossConfig { loss_type: LossType::Dapo, max_completion_len: 6, ..Default::default() },
        micro_batch_size: 3,
        ..GrpoConfig::default()
    };
    let adamw = AdamWConfig { lr: 1e-2, max_grad_norm: None, ..AdamWConfig::default() };
    let place = CheckpointPlace::bare(root.to_path_buf(), config.clone());
    GrpoTrainer::with_lora(base.clone(), &lora(), "tiny".into(), None, adamw, grpo, place).unwrap()
}

/// Two groups of three completions from `synthetic_batch`, as the scorer hands them over.
fn groups() -> Vec<ScoredGroup> {
    let rows = synthetic_batch(&mut ChaCha8Rng::seed_from_u64(11), 2, 3, 5);
    rows.chunks(3)
        .enumerate()
        .map(|(i, rows)| {
            let prompt_token_ids = rows[0].tokens[..rows[0].prompt_len].to_vec();
            let completions = rows
                .iter()
                .map(|r| SampledCompletion {
                    text: String::new(),
                    token_ids: r.tokens[r.prompt_len..].to_vec(),
                    behaviour_logprobs: r.behaviour_logprobs.clone(),
                    truncated: r.truncated,
                })
                .collect();
            let total = vec![0.0; rows.len()];
            ScoredGroup {
                group: RolloutGroup {
                    prompt: Prompt { id: i as u64, text: String::new(), reference: String::new() },
                    prompt_token_ids,
                    completions,
                    policy_version: 0,
                    generator: 0,
                    timings: Timings::default(),
                },
                rewards: GroupRewards { per_function: Vec::new(), total, correct: None },
                advantages: rows.iter().map(|r| r.advantage).collect(),
            }
        })
        .collect()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1().unwrap()
}

fn by_name(w: &Weights) -> BTreeMap<String, Vec<f64>> {
    w.iter().map(|(n, t)| (n.to_string(), values(t))).collect()
}

#[test]
fn lora_grpo_publishes_the_base_with_the_adapters_merged_and_moves_only_their_projections() {
    let (config, base) = tiny();
    let tmp = tempfile::tempdir().unwrap();
    let mut t = trainer(&config, &base, tmp.path());
    // B starts at zero: the first published policy is the base, exactly.
    let start = t.start().unwrap();
    assert_eq!(by_name(&start.weights), by_name(&base));

    let (stats, published) = t.step(&groups()).unwrap();
    assert!(stats.grad_norm.unwrap() > 0.0, "{stats:?}");
    let adapters = t.adapters().unwrap();
    let (before, after) = (by_name(&base), by_name(&published));
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>());
    let mut moved = 0;
    for (name, w) in &before {
        let path = name.strip_suffix(".weight").unwrap_or(name);
        match adapters.factors(path) {
            None => assert_eq!(&after[name], w, "{name} is not wrapped but changed"),
            Some((a, b)) => {
                // W + (α/r)·B·A, computed here in f64 from the adapters' own factors.
                let (a, b) = (a.to_dtype(DType::F64).unwrap(), b.to_dtype(DType::F64).unwrap());
                let delta = values(&(b.matmul(&a).unwrap() * (ALPHA / R as f64)).unwrap());
                let want: Vec<f64> = w.iter().zip(&delta).map(|(w, d)| w + d).collect();
                let err = want.iter().zip(&after[name]).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
                assert!(err < 1e-6, "{name}: merged weights off by {err}");
                assert!(delta.iter().any(|d| d.abs() > 1e-6), "{name}: the step left B at zero");
                moved += 1;
            }
        }
    }
    assert_eq!(moved, 2 * config.num_layers, "q_proj and v_proj of every layer");
}

#[test]
fn a_lora_grpo_checkpoint_holds_only_adapters_and_resumes_to_the_same_weights() {
    let (config, base) = tiny();
    let tmp = tempfile::tempdir().unwrap();
    let mut t = trainer(&config, &base, tmp.path());
    t.start().unwrap();
    t.step(&groups()).unwrap();
    let run = RunState { step: 1, version: 1, cursor: 2, ..RunState::default() };
    let dir = std::path::PathBuf::from(t.save_checkpoint(&run).unwrap());
    assert!(dir.join("adapter_model.safetensors").is_file() && dir.join("adapter_config.json").is_file(), "{}", dir.display());
    assert!(!dir.join("model.safetensors").exists(), "a LoRA checkpoint needs no copy of the base");

    let mut resumed = trainer(&config, &base, &tmp.path().join("other"));
    resumed.resume_from(&dir).unwrap();
    assert_eq!(resumed.start_step(), 1);
    assert_eq!(by_name(&resumed.weights().unwrap()), by_name(&t.weights().unwrap()));
    // The moments came back too: the next step from either is the same.
    let (_, a) = t.step(&groups()).unwrap();
    let (_, b) = resumed.step(&groups()).unwrap();
    assert_eq!(by_name(&a), by_name(&b));

    // A checkpoint of full weights is not taken for adapters.
    let full_root = tmp.path().join("full");
    let grpo = GrpoConfig { loss: GrpoLossConfig { max_completion_len: 6, ..Default::default() }, ..GrpoConfig::default() };
    let mut full = GrpoTrainer::new(&base, None, AdamWConfig::default(), grpo, CheckpointPlace::bare(full_root, config.clone())).unwrap();
    let full_dir = std::path::PathBuf::from(full.save_checkpoint(&RunState::default()).unwrap());
    let err = trainer(&config, &base, &tmp.path().join("x")).resume_from(&full_dir).err().unwrap().to_string();
    assert!(err.contains("adapter_model.safetensors") && err.contains("LoRA"), "{err}");
}
