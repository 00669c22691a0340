//! Checkpoints: exact GRPO resume (N steps = N/2 + save + load + N/2, bit for bit), damaged and
//! foreign checkpoints refused by name, keep-last-K, the extra-file hook.

mod common;

use std::path::Path;

use candle_core::{DType, Device, Var};
use common::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use srlm::checkpoint::{self, CheckpointContents, ExtraFile, RngState, TrainerState};
use srlm::learner::grpo::GrpoStats;
use srlm::learner::{grpo_step, GrpoConfig, GrpoLossConfig, LossType};
use srlm::model::load::load_hf_weights;
use srlm::model::{ModelConfig, Qwen2, Weights};
use srlm::optim::{AdamW, AdamWConfig, Decay, Schedule};

const STEPS: u64 = 6;

/// One run's live objects: the tiny model trained from its fixture weights.
struct Run {
    cfg: ModelConfig,
    weights: Weights,
    vars: Vec<(String, Var)>,
    policy: Qwen2,
    reference: Qwen2,
    opt: AdamW,
    data: ChaCha8Rng,
}

fn start() -> Run {
    let (cfg, w) = load_hf_weights(&fixtures().join("tiny/qwen2")).unwrap();
    let (weights, vars) = w.to_vars().unwrap();
    let policy = Qwen2::new(&cfg, &weights).unwrap();
    let reference = Qwen2::new(&cfg, &load_hf_weights(&fixtures().join("tiny/qwen2")).unwrap().1).unwrap();
    let opt_cfg = AdamWConfig {
        lr: 5e-3,
        weight_decay: 0.01,
        max_grad_norm: Some(0.5),
        schedule: Schedule { decay: Decay::Cosine, warmup_steps: 2, total_steps: 2 * STEPS as usize },
        ..AdamWConfig::default()
    };
    let opt = AdamW::new(vars.clone(), opt_cfg).unwrap();
    Run { cfg, weights, vars, policy, reference, opt, data: ChaCha8Rng::seed_from_u64(42) }
}

fn grpo_cfg() -> GrpoConfig {
    GrpoConfig {
        loss: GrpoLossConfig { loss_type: LossType::Dapo, beta: 0.04, epsilon_high: 0.28, max_completion_len: 6, ..Default::default() },
        iterations: 2,
        micro_batch_size: 3,
        mask_truncated: true,
        ..GrpoConfig::default()
    }
}

fn train(run: &mut Run, steps: u64) -> Vec<GrpoStats> {
    (0..steps)
        .map(|_| {
            // The data RNG is what the resumed run must continue exactly.
            let batch = synthetic_batch(&mut run.data, 2, 4, 6);
            grpo_step(&run.policy, Some(&run.reference), &batch, &grpo_cfg(), &mut run.opt).unwrap()
        })
        .collect()
}

fn state_of(run: &Run) -> TrainerState {
    TrainerState {
        step: run.opt.step_count(),
        skipped_steps: run.opt.skipped_count(),
        policy_version: run.opt.step_count(),
        rng: [("data".to_string(), RngState::capture(&run.data))].into(),
        config_hash: "test".into(),
        ..TrainerState::default()
    }
}

fn save(run: &Run, root: &Path, keep: usize, extra: &[ExtraFile]) -> std::path::PathBuf {
    save_state(run, &state_of(run), root, keep, extra)
}

/// `save` with a trainer state of the caller's (another run id, say).
fn save_state(run: &Run, state: &TrainerState, root: &Path, keep: usize, extra: &[ExtraFile]) -> std::path::PathBuf {
    let contents = CheckpointContents { config: &run.cfg, weights: Some(&run.weights), tokenizer: None, optimizer: &run.opt, state, extra };
    checkpoint::save(root, &contents, keep).unwrap()
}

fn bits(vars: &[(String, Var)]) -> Vec<(String, Vec<u32>)> {
    vars.iter()
        .map(|(n, v)| {
            let values: Vec<f32> = v.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            (n.clone(), values.iter().map(|x| x.to_bits()).collect())
        })
        .collect()
}

#[test]
fn grpo_resume_is_bit_identical() {
    let mut straight = start();
    let straight_stats = train(&mut straight, STEPS);

    let root = tempfile::tempdir().unwrap();
    let mut first = start();
    let mut stats = train(&mut first, STEPS / 2);
    let dir = save(&first, root.path(), 2, &[]);
    drop(first);

    // A fresh process: initial weights, a new optimizer and RNG, then the checkpoint.
    let mut resumed = start();
    let ckpt = checkpoint::load(&dir, &resumed.cfg).unwrap();
    ckpt.restore(&mut resumed.opt).unwrap();
    resumed.data = ckpt.state.rng["data"].restore().unwrap();
    assert_eq!(resumed.opt.step_count(), STEPS / 2 * 2);
    stats.extend(train(&mut resumed, STEPS / 2));

    assert_eq!(straight.opt.step_count(), resumed.opt.step_count());
    assert!(straight_stats.iter().all(|s| s.skipped == 0));
    let (a, b) = (bits(&straight.vars), bits(&resumed.vars));
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{name} differs after resume");
    }
    assert_eq!(straight_stats, stats, "per-step statistics differ after resume");
    // The weights did move: resume is not trivially exact.
    let initial = bits(&start().vars);
    assert!(a.iter().zip(&initial).all(|((_, x), (_, y))| x != y));
}

#[test]
fn checkpoint_dir_is_an_hf_model_directory() {
    let root = tempfile::tempdir().unwrap();
    let mut run = start();
    train(&mut run, 1);
    let dir = save(&run, root.path(), 0, &[]);
    for f in ["config.json", "model.safetensors", "generation_config.json", "optimizer.safetensors", "trainer_state.json", "manifest.json"]
    {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    // Every file readable as its siblings are (the safetensors writer alone creates 0600 files).
    let mode = |f: &str| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(dir.join(f)).unwrap().permissions()) & 0o777;
    for f in ["model.safetensors", "optimizer.safetensors"] {
        assert_eq!(mode(f), mode("config.json"), "{f}");
    }
    let (cfg, w) = load_hf_weights(&dir).unwrap();
    assert_eq!(cfg, run.cfg);
    let (name, var) = &run.vars[3];
    let saved: Vec<f32> = w.get(name, var.as_tensor().dims()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(saved, var.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap());
}

fn load_err(dir: &Path, cfg: &ModelConfig) -> String {
    match checkpoint::load(dir, cfg) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn damaged_checkpoints_are_refused_naming_the_file() {
    let root = tempfile::tempdir().unwrap();
    let run = start();
    let dir = save(&run, root.path(), 0, &[]);
    let cfg = run.cfg.clone();

    let weights = dir.join("model.safetensors");
    let original = std::fs::read(&weights).unwrap();
    let mut flipped = original.clone();
    let last = flipped.len() - 3;
    flipped[last] ^= 0x10;
    std::fs::write(&weights, &flipped).unwrap();
    let err = load_err(&dir, &cfg);
    assert!(err.contains("model.safetensors") && err.contains("checksum"), "{err}");
    std::fs::write(&weights, &original).unwrap();
    assert!(checkpoint::load(&dir, &cfg).is_ok());

    let opt = dir.join("optimizer.safetensors");
    let bytes = std::fs::read(&opt).unwrap();
    std::fs::write(&opt, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_err(&dir, &cfg);
    assert!(err.contains("optimizer.safetensors") && err.contains("bytes"), "{err}");
    std::fs::write(&opt, &bytes).unwrap();

    let state = dir.join("trainer_state.json");
    std::fs::rename(&state, dir.join("moved")).unwrap();
    let err = load_err(&dir, &cfg);
    assert!(err.contains("trainer_state.json") && err.contains("missing"), "{err}");
    std::fs::rename(dir.join("moved"), &state).unwrap();

    std::fs::remove_file(dir.join("manifest.json")).unwrap();
    let err = load_err(&dir, &cfg);
    assert!(err.contains("manifest.json"), "{err}");
}

#[test]
fn checkpoint_of_another_architecture_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let run = start();
    let dir = save(&run, root.path(), 0, &[]);
    let (llama, _) = load_hf_weights(&fixtures().join("tiny/llama")).unwrap();
    let err = load_err(&dir, &llama);
    assert!(err.contains("config.json") && err.contains("model_type"), "{err}");
    let wider = ModelConfig { hidden_size: 64, ..run.cfg.clone() };
    let err = load_err(&dir, &wider);
    assert!(err.contains("hidden_size is 32, this run has 64"), "{err}");
}

#[test]
fn only_the_last_k_checkpoints_are_kept() {
    let root = tempfile::tempdir().unwrap();
    let mut run = start();
    for _ in 0..4 {
        train(&mut run, 1);
        save(&run, root.path(), 2, &[]);
    }
    let steps: Vec<u64> = checkpoint::list(root.path()).unwrap().into_iter().map(|(s, _)| s).collect();
    assert_eq!(steps, vec![6, 8]);
    assert!(checkpoint::latest(root.path()).unwrap().unwrap().ends_with("checkpoint-00000008"));
    // No temporary directories are left behind.
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 2);
}

#[test]
fn retention_never_deletes_another_runs_checkpoints() {
    // An older run left higher step numbers in the same folder: keeping "the newest" by step
    // alone would delete every checkpoint the new run writes.
    let root = tempfile::tempdir().unwrap();
    let mut old = start();
    train(&mut old, 5);
    let mut state = state_of(&old);
    state.run_id = "old-run".into();
    save_state(&old, &state, root.path(), 0, &[]);
    let mut run = start();
    for _ in 0..3 {
        train(&mut run, 1);
        let mut state = state_of(&run);
        state.run_id = "new-run".into();
        save_state(&run, &state, root.path(), 2, &[]);
    }
    let steps: Vec<u64> = checkpoint::list(root.path()).unwrap().into_iter().map(|(s, _)| s).collect();
    assert_eq!(steps, vec![4, 6, 10], "the new run keeps its last two (steps 4, 6); the old run's step 10 stays");
}

#[test]
fn extra_files_round_trip_and_are_verified() {
    let root = tempfile::tempdir().unwrap();
    let run = start();
    let lora_a = candle_core::Tensor::arange(0f32, 6.0, &Device::Cpu).unwrap().reshape((2, 3)).unwrap();
    let extra = [
        ExtraFile::Json { name: "adapter_config.json".into(), value: serde_json::json!({ "r": 2, "lora_alpha": 4 }) },
        ExtraFile::Tensors { name: "adapter_model.safetensors".into(), tensors: [("lora_A.weight".to_string(), lora_a)].into() },
    ];
    let dir = save(&run, root.path(), 0, &extra);
    let ckpt = checkpoint::load(&dir, &run.cfg).unwrap();
    assert_eq!(ckpt.extra_json("adapter_config.json").unwrap()["r"], 2);
    let t = &ckpt.extra_tensors("adapter_model.safetensors").unwrap()["lora_A.weight"];
    assert_eq!(t.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![0., 1., 2., 3., 4., 5.]);
    let path = dir.join("adapter_model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    let err = load_err(&dir, &run.cfg);
    assert!(err.contains("adapter_model.safetensors"), "{err}");
}
