//! SFT checkpoints: N steps in one run equal N/2 + checkpoint + resume + N/2 bit for bit (full
//! and LoRA with dropout, in the library and through `srlm sft --resume`); the runtime's SFT
//! (`srlm train`'s path) trains exactly what the in-thread loop does; the learning rate follows
//! warmup + cosine.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use candle_core::{DType, Device, Var};
use srlm::checkpoint;
use srlm::learner::checkpoint_place::CheckpointPlace;
use srlm::learner::sft::{steps_per_epoch, total_steps, train_sft, Overlong, SftConfig, SftExample, SftPlan};
use srlm::learner::sft_checkpoint::{plan_fingerprint, SftCheckpoints};
use srlm::learner::sft_trainer::{sft_pipeline, SftTrainer};
use srlm::learner::trained_params::TrainedParams;
use srlm::learner::AlgoError;
use srlm::model::load::load_hf_weights;
use srlm::model::{LoraAdapters, LoraConfig, ModelConfig, Qwen2, Weights};
use srlm::optim::{AdamW, AdamWConfig, Decay, Schedule};
use srlm_actors::RuntimeConfig;

fn tiny() -> (ModelConfig, Weights) {
    load_hf_weights(&common::fixtures().join("tiny").join("qwen2")).unwrap()
}

/// Chains x → f(x) → … (as in learner_algos) of three lengths, so batches differ in size.
fn examples() -> Vec<SftExample> {
    let f = |x: u32| 10 + (x * 7 + 3) % 80;
    (10..30)
        .map(|x| {
            let k = x as usize % 3;
            let links: Vec<u32> = std::iter::successors(Some(x), |&y| Some(f(y))).take(k + 4).collect();
            SftExample { prompt: [&[1], &links[..=k]].concat(), completion: links[k + 1..].to_vec() }
        })
        .collect()
}

fn sft_cfg(grad_accum: usize) -> SftConfig {
    SftConfig {
        epochs: 2,
        max_len: 16,
        overlong: Overlong::Truncate,
        token_budget: 24,
        grad_accum,
        seed: 9,
        pad_id: 0,
        chunk_rows: 16,
        lanes: 1,
    }
}

fn adamw(total: usize) -> AdamWConfig {
    AdamWConfig {
        lr: 1e-2,
        weight_decay: 0.01,
        max_grad_norm: Some(0.5),
        schedule: Schedule { decay: Decay::Cosine, warmup_steps: 2, total_steps: total },
        ..AdamWConfig::default()
    }
}

fn lora_cfg() -> LoraConfig {
    LoraConfig { r: 4, alpha: 8.0, dropout: 0.1, target_modules: vec!["q_proj".into(), "up_proj".into()], seed: 4 }
}

fn values(vars: &[(String, Var)]) -> Vec<(String, Vec<f32>)> {
    vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())).collect()
}

/// A fresh run's parts: the model, its optimizer, the trained parameters and the checkpoints.
struct Setup {
    model: Qwen2,
    opt: AdamW,
    named: Vec<(String, Var)>,
    ckpt: SftCheckpoints,
}

fn setup(lora: bool, root: &Path, every: usize) -> Setup {
    let (config, base) = tiny();
    let (data, cfg) = (examples(), sft_cfg(2));
    let adapters = Arc::new(LoraAdapters::init(&lora_cfg(), &base, &config).unwrap());
    let (trainable, full) = base.to_vars().unwrap();
    let (model, named) = if lora {
        (Qwen2::with_lora(&config, &base, &adapters, true).unwrap(), adapters.vars())
    } else {
        (Qwen2::new(&config, &trainable).unwrap(), full.clone())
    };
    let opt = AdamW::new(named.clone(), adamw(total_steps(&data, &cfg))).unwrap();
    let params =
        if lora { TrainedParams::Lora { adapters, base: base.clone(), base_model: "tiny".into() } } else { TrainedParams::Full(full) };
    let place = CheckpointPlace::bare(root.to_path_buf(), config);
    let ckpt = SftCheckpoints { place, every, params, plan: plan_fingerprint(&data, &cfg) };
    Setup { model, opt, named, ckpt }
}

/// Trains from scratch (or from the checkpoint `resume`) to the end in this thread, saving every
/// `every` steps under `root`; returns the trained values and the learning rate of every step taken.
fn run(lora: bool, root: &Path, every: usize, resume: Option<&Path>) -> (Vec<(String, Vec<f32>)>, Vec<f64>) {
    let Setup { model, mut opt, named, ckpt } = setup(lora, root, every);
    let (data, cfg) = (examples(), sft_cfg(2));
    let plan = SftPlan::new(&data, &cfg);
    let start = resume.map_or(0, |dir| plan.resume_step(&ckpt.resume(dir, &mut opt).unwrap()).unwrap());
    let mut lrs = Vec::new();
    train_sft(&model, &mut opt, &data, &cfg, start, |s, opt| -> Result<(), AlgoError> {
        assert!(!s.skipped);
        lrs.push(s.lr);
        ckpt.after_step(s, opt).unwrap();
        Ok(())
    })
    .unwrap();
    (values(&named), lrs)
}

/// The same run on the actor runtime (`srlm train`'s path): the data source hands out the
/// examples, the learner actor steps; deterministic harness or threaded actors.
fn run_on_runtime(lora: bool, root: &Path, every: usize, resume: Option<&Path>, deterministic: bool) -> (Vec<(String, Vec<f32>)>, u64) {
    let Setup { model, opt, named, ckpt } = setup(lora, root, every);
    let (data, cfg) = (examples(), sft_cfg(2));
    let mut trainer = SftTrainer::new(model, opt, SftPlan::new(&data, &cfg), cfg, ckpt);
    if let Some(dir) = resume {
        trainer.resume_from(dir).unwrap();
    }
    let base = RuntimeConfig { checkpoint_every: every as u64, metrics_addr: None, ..RuntimeConfig::default() };
    let pipeline = sft_pipeline(base, Arc::new(data), trainer);
    let summary = if deterministic {
        pipeline.run_deterministic().unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(pipeline.run()).unwrap()
    };
    (values(&named), summary.state.step)
}

fn same(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)], what: &str) {
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(b) {
        assert!(x == y, "{what}: {name} differs");
    }
}

/// The runtime trains the plan's steps, with its uneven step sizes, exactly as the in-thread loop
/// does, threaded or not; a periodic checkpoint of either resumes on the other bit for bit.
fn runtime_matches_the_loop(lora: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let spe = steps_per_epoch(&examples(), &sft_cfg(2));
    let sizes = SftPlan::new(&examples(), &sft_cfg(2)).step_sizes();
    assert!(sizes.iter().any(|&n| n != sizes[0]), "the plan's steps should differ in size: {sizes:?}");
    let every = spe + 1;
    let (looped, _) = run(lora, &tmp.path().join("loop"), every, None);
    let (harness, steps) = run_on_runtime(lora, &tmp.path().join("harness"), every, None, true);
    assert_eq!(steps, 2 * spe as u64);
    same(&looped, &harness, "deterministic harness vs loop");
    let (threaded, _) = run_on_runtime(lora, &tmp.path().join("threaded"), every, None, false);
    same(&looped, &threaded, "threaded runtime vs loop");
    let ckpt = |run: &str| tmp.path().join(run).join(format!("checkpoint-{every:08}"));
    let (resumed, steps) = run_on_runtime(lora, &tmp.path().join("r1"), 0, Some(&ckpt("loop")), true);
    assert_eq!(steps, 2 * spe as u64, "a resumed stage reports its whole step count");
    same(&looped, &resumed, "runtime resumed from the loop's checkpoint");
    let (resumed, _) = run(lora, &tmp.path().join("r2"), 0, Some(&ckpt("harness")));
    same(&looped, &resumed, "loop resumed from the runtime's checkpoint");
}

#[test]
fn full_sft_on_the_runtime_matches_the_loop_and_resumes_exactly() {
    runtime_matches_the_loop(false);
}

#[test]
fn lora_sft_on_the_runtime_matches_the_loop_and_resumes_exactly() {
    runtime_matches_the_loop(true);
}

fn resumed_halfway_matches(lora: bool) {
    let data = examples();
    let spe = steps_per_epoch(&data, &sft_cfg(2));
    assert!(spe >= 2, "the plan needs a checkpoint inside the second epoch: {spe} steps per epoch");
    // The checkpoint falls inside the second epoch, after its first step.
    let every = spe + 1;
    let tmp = tempfile::tempdir().unwrap();
    let (whole, lrs) = run(lora, tmp.path(), every, None);
    assert_eq!(lrs.len(), 2 * spe);
    let ckpt = tmp.path().join(format!("checkpoint-{every:08}"));
    let state = checkpoint::load(&ckpt, &tiny().0).unwrap().state;
    let plan = SftPlan::new(&data, &sft_cfg(2));
    assert_eq!(plan.steps()[every].epoch, 1);
    let first_epoch: u64 = plan.steps()[..spe].iter().map(|s| s.examples() as u64).sum();
    assert_eq!(first_epoch, data.len() as u64, "the first epoch covers every example once");
    let second_epoch_first_step = plan.steps()[spe].examples() as u64;
    assert_eq!((state.step, state.data_cursor), (every as u64, first_epoch + second_epoch_first_step), "cursor: after step 1 of epoch 1");
    assert_eq!(state.rng.contains_key("lora_dropout"), lora);
    let (resumed, tail) = run(lora, &tmp.path().join("again"), 0, Some(&ckpt));
    assert_eq!(tail, lrs[every..], "the resumed run continues the schedule");
    assert_eq!(whole.len(), resumed.len());
    for ((name, a), (_, b)) in whole.iter().zip(&resumed) {
        assert!(a == b, "{name} differs after resuming");
    }
    // Training moved the weights: the comparison is not between two untouched models.
    let (config, base) = tiny();
    let untouched = if lora { LoraAdapters::init(&lora_cfg(), &base, &config).unwrap().vars() } else { base.to_vars().unwrap().1 };
    assert!(values(&untouched) != whole, "training left the weights as they were");
}

#[test]
fn full_sft_resumed_halfway_is_bit_identical() {
    resumed_halfway_matches(false);
}

#[test]
fn lora_sft_with_dropout_resumed_halfway_is_bit_identical() {
    resumed_halfway_matches(true);
}

#[test]
fn learning_rate_follows_warmup_then_cosine() {
    // Six examples of one length, two per micro-batch, one micro-batch per step: 3 steps an
    // epoch, 6 in all; warmup 2 → lr · [0, 1/2, then (1 + cos(π·k/4))/2 for k = 0..3].
    let (config, base) = tiny();
    let data: Vec<SftExample> = (0..6).map(|i| SftExample { prompt: vec![1, 20 + i], completion: vec![30 + i, 40] }).collect();
    let cfg = SftConfig { token_budget: 8, grad_accum: 1, ..sft_cfg(1) };
    assert_eq!(total_steps(&data, &cfg), 6);
    let (trainable, named) = base.to_vars().unwrap();
    let model = Qwen2::new(&config, &trainable).unwrap();
    let mut opt = AdamW::new(named, adamw(6)).unwrap();
    let mut lrs = Vec::new();
    train_sft(&model, &mut opt, &data, &cfg, 0, |s, _| {
        lrs.push(s.lr);
        Ok::<(), AlgoError>(())
    })
    .unwrap();
    let want = [0.0, 5e-3, 1e-2, 1e-2 * 0.853_553_390_593_273_8, 5e-3, 1e-2 * 0.146_446_609_406_726_2];
    assert_eq!(lrs.len(), want.len());
    for (k, (got, want)) in lrs.iter().zip(want).enumerate() {
        assert!((got - want).abs() < 1e-15, "step {k}: lr {got}, expected {want}");
    }
}

#[test]
fn a_checkpoint_of_another_plan_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    run(false, tmp.path(), 2, None);
    let (config, base) = tiny();
    let (_, full) = base.to_vars().unwrap();
    let mut data = examples();
    data.pop();
    let cfg = sft_cfg(2);
    let mut opt = AdamW::new(full.clone(), adamw(total_steps(&data, &cfg))).unwrap();
    let ckpt = SftCheckpoints {
        place: CheckpointPlace::bare(tmp.path().to_path_buf(), config.clone()),
        every: 0,
        params: TrainedParams::Full(full.clone()),
        plan: plan_fingerprint(&data, &cfg),
    };
    let err = ckpt.resume(&tmp.path().join("checkpoint-00000002"), &mut opt).err().unwrap().to_string();
    assert!(err.contains("trainer_state.json") && err.contains("another SFT plan"), "{err}");
}

/// A tiny Qwen2 with the character tokenizer, written as an HF directory.
fn write_tiny_model(dir: &Path) {
    use srlm::synthetic::{char_vocab_size, tiny_qwen2_config, write_char_tokenizer};
    std::fs::create_dir_all(dir).unwrap();
    let config = tiny_qwen2_config(char_vocab_size());
    let weights = srlm::model::init::init_weights(&config, 0.02, 1, &Device::Cpu).unwrap();
    srlm::model::export::write_hf_files(dir, &config, &weights, None, DType::F32).unwrap();
    write_char_tokenizer(dir).unwrap();
}

fn srlm_sft(recipe: &Path, extra: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_srlm"))
        .args(["sft", "--config", recipe.to_str().unwrap()])
        .args(extra)
        .env("CANDLE_NUM_THREADS", "1")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    if !extra.is_empty() {
        assert!(log.contains("resuming from"), "{log}");
    }
}

#[test]
fn srlm_sft_resume_reproduces_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    write_tiny_model(&model);
    let data = tmp.path().join("data.jsonl");
    let rows: Vec<String> = srlm::synthetic::arithmetic_problems(12, 20, 3)
        .iter()
        .map(|p| {
            serde_json::json!({"messages": [{"role": "user", "content": p.question}, {"role": "assistant", "content": p.solution()}]})
                .to_string()
        })
        .collect();
    std::fs::write(&data, rows.join("\n") + "\n").unwrap();
    let lora = "save = \"adapter\"\n[lora]\nr = 4\nalpha = 8\ndropout = 0.1\n";
    for (kind, extra, weights) in [("full", "", "model.safetensors"), ("lora", lora, "adapter_model.safetensors")] {
        let recipe = |name: &str| {
            let path = tmp.path().join(format!("{kind}-{name}.toml"));
            let text = format!(
                "model = {:?}\ndata = {:?}\nformat = \"chat\"\noutput = {:?}\ncheckpoint_dir = {:?}\nlr = 1e-3\nepochs = 2\n\
                 max_length = 64\ntoken_budget = 160\ncheckpoint_every = 3\nkeep_checkpoints = 0\nwarmup_steps = 1\n{extra}",
                model.to_str().unwrap(),
                data.to_str().unwrap(),
                tmp.path().join(format!("{kind}-{name}-out")).to_str().unwrap(),
                tmp.path().join(format!("{kind}-{name}-ckpt")).to_str().unwrap(),
            );
            std::fs::write(&path, text).unwrap();
            path
        };
        srlm_sft(&recipe("whole"), &[]);
        let ckpt = tmp.path().join(format!("{kind}-whole-ckpt/checkpoints-stage-0/checkpoint-00000003"));
        assert!(ckpt.join("manifest.json").is_file(), "{kind}: no checkpoint at step 3");
        srlm_sft(&recipe("resumed"), &["--resume", ckpt.to_str().unwrap()]);
        let read = |name: &str| std::fs::read(tmp.path().join(format!("{kind}-{name}-out")).join(weights)).unwrap();
        assert!(read("whole") == read("resumed"), "{kind}: the resumed run wrote other weights");
    }
}

/// `srlm sft` also takes a `srlm train` config: its one sft stage runs (held-out check included),
/// and a config with other stages is sent to `srlm train`.
#[test]
fn srlm_sft_runs_a_train_config_s_sft_stage_and_refuses_other_stages() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let body = format!(
        "out_dir = {:?}\n[model]\nsource = \"tiny\"\n[data]\ntask = \"arithmetic\"\nformat = \"plain\"\ngold = \"number\"\ntrain_size = 16\nheldout_size = 4\n\
         [eval]\nsamples = 1\nmax_new_tokens = 8\n[sft]\nlr = 1e-3\nmax_len = 64\ntoken_budget = 256\n[sft.lora]\nr = 2\nalpha = 4\n[runtime]\nmetrics_addr = \"\"\n",
        out.to_str().unwrap()
    );
    let config = tmp.path().join("sft.toml");
    std::fs::write(&config, &body).unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_srlm")).args(["sft", "--config", config.to_str().unwrap()]).output().unwrap();
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{log}");
    assert!(log.contains("sft: 16 examples, LoRA") && log.contains("held-out after sft:"), "{log}");
    assert!(out.join("stage-0-sft/model.safetensors").is_file(), "{log}");

    std::fs::write(&config, format!("stages = [\"sft\", \"grpo\"]\n{body}")).unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_srlm")).args(["sft", "--config", config.to_str().unwrap()]).output().unwrap();
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success() && log.contains("`srlm sft` runs one sft stage; run several with `srlm train --config`"), "{log}");
}
