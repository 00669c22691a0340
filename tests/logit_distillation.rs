//! Logit distillation as a training mode: on-policy distillation lowers the reverse KL on
//! held-out prompts, forward-KL distillation lowers the forward KL on held-out sequences, and
//! the `kd` stage's logit modes run end to end, refusing bad configs and foreign tokenizers first.

mod common;

use common::tiny_kd::{tiny_config, tiny_teacher, TINY};

use candle_core::{DType, Device};
use srlm::generate::{GenerationConfig, TextDecoder};
use srlm::learner::kd::{masked_mean, on_policy_batch, token_kl, KlDirection};
use srlm::learner::logit_kd::{distill_forward, distill_on_policy, DistillConfig, DistillStep};
use srlm::learner::sft::{collate, SftExample};
use srlm::learner::AlgoError;
use srlm::model::load::load_hf_weights;
use srlm::model::{Qwen2, Weights};
use srlm::optim::{AdamW, AdamWConfig};
use srlm::train::stages::{run_training, RunOptions};

/// The student (a tiny Qwen2) and a teacher that disagrees with it (a tiny Llama, another init).
fn student_and_teacher() -> (Qwen2, Vec<(String, candle_core::Var)>, Qwen2) {
    let (sc, sw) = load_hf_weights(&common::fixtures().join("tiny/qwen2")).unwrap();
    let (tc, tw) = load_hf_weights(&common::fixtures().join("tiny/llama")).unwrap();
    let (weights, vars): (Weights, _) = sw.to_vars().unwrap();
    (Qwen2::new(&sc, &weights).unwrap(), vars, Qwen2::new(&tc, &tw).unwrap())
}

struct Digits;
impl TextDecoder for Digits {
    fn decode_text(&self, ids: &[u32]) -> Result<String, String> {
        Ok(ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(" "))
    }
}

/// Prompts of three tokens after BOS; `held_out` ones start with tokens training never starts with.
fn prompts(held_out: bool) -> Vec<Vec<u32>> {
    (10..90u32).filter(|x| (x % 5 == 0) == held_out).map(|x| vec![1, x, 10 + (x * 7) % 80, 10 + (x * 13) % 80]).collect()
}

fn generation(seed: u64) -> GenerationConfig {
    GenerationConfig {
        sampling: Default::default(),
        max_new_tokens: 8,
        min_new_tokens: 0,
        eos_ids: vec![2],
        stop: Default::default(),
        seed,
    }
}

fn optimizer(vars: Vec<(String, candle_core::Var)>, lr: f64) -> AdamW {
    AdamW::new(vars, AdamWConfig { lr, max_grad_norm: Some(1.0), ..Default::default() }).unwrap()
}

fn mean_kl(student: &Qwen2, teacher: &Qwen2, batch: &srlm::learner::sft::SftBatch, direction: KlDirection) -> f64 {
    let kl = token_kl(student, teacher, &batch.tokens, 1.0, direction, 64).unwrap();
    masked_mean(&kl, &batch.loss_mask).unwrap().to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

/// Reverse KL on fresh student samples of the held-out prompts (streams training never uses).
fn held_out_reverse_kl(student: &Qwen2, teacher: &Qwen2) -> f64 {
    let batch = on_policy_batch(student, &Digits, &prompts(true), 4, 1 << 40, &generation(77), 0).unwrap();
    mean_kl(student, teacher, &batch, KlDirection::Reverse)
}

#[test]
fn on_policy_distillation_lowers_the_reverse_kl_on_held_out_prompts() {
    let (student, vars, teacher) = student_and_teacher();
    let before = held_out_reverse_kl(&student, &teacher);
    let cfg = DistillConfig { steps: 30, per_step: 8, samples: 4, temperature: 1.0, chunk_rows: 64, pad_id: 0 };
    let mut opt = optimizer(vars, 1e-2);
    let mut seen = Vec::new();
    let stats =
        distill_on_policy(&student, &teacher, &Digits, &prompts(false), &generation(3), &cfg, &mut opt, |s: &DistillStep, _: &AdamW| {
            seen.push(s.kl);
            Ok::<(), AlgoError>(())
        })
        .unwrap();
    let after = held_out_reverse_kl(&student, &teacher);
    eprintln!(
        "on-policy: held-out reverse KL {before:.4} → {after:.4}; training KL {:.4} → {:.4} (mean {:.4}, {} skipped)",
        stats.first_kl, stats.last_kl, stats.mean_kl, stats.skipped
    );
    assert_eq!((stats.steps, stats.skipped, seen.len()), (30, 0, 30));
    assert!(seen.iter().all(|kl| kl.is_finite() && *kl >= 0.0), "{seen:?}");
    assert!(before > 0.3, "the teacher differs from the student: {before}");
    assert!(after < 0.7 * before, "held-out reverse KL {before} → {after}");
}

/// Sequences whose completions follow a fixed map of the last prompt token.
fn sequences(held_out: bool) -> Vec<SftExample> {
    prompts(held_out)
        .into_iter()
        .map(|p| {
            let last = p[p.len() - 1];
            SftExample { completion: vec![10 + (last * 3) % 80, 10 + (last * 11) % 80, 2], prompt: p }
        })
        .collect()
}

#[test]
fn forward_kl_distillation_lowers_the_forward_kl_on_held_out_sequences() {
    let (student, vars, teacher) = student_and_teacher();
    let held_out = sequences(true);
    let rows: Vec<&SftExample> = held_out.iter().collect();
    let batch = collate(&rows, 0, &Device::Cpu).unwrap();
    let before = mean_kl(&student, &teacher, &batch, KlDirection::Forward);
    let cfg = DistillConfig { steps: 30, per_step: 16, samples: 1, temperature: 1.0, chunk_rows: 64, pad_id: 0 };
    let mut opt = optimizer(vars, 1e-2);
    let stats = distill_forward(&student, &teacher, &sequences(false), &cfg, &mut opt, |_, _: &AdamW| Ok::<(), AlgoError>(())).unwrap();
    let after = mean_kl(&student, &teacher, &batch, KlDirection::Forward);
    eprintln!("forward: held-out forward KL {before:.4} → {after:.4}; training KL {:.4} → {:.4}", stats.first_kl, stats.last_kl);
    assert_eq!((stats.steps, stats.skipped), (30, 0));
    assert!(after < 0.7 * before, "held-out forward KL {before} → {after}");
}

/// The kd stage's `logits` mode on the runtime (a data source hands out the solutions, the
/// learner actor steps) trains exactly what the in-thread loop trains, threaded or not.
#[test]
fn forward_kl_on_the_runtime_trains_what_the_loop_trains() {
    use srlm::learner::checkpoint_place::CheckpointPlace;
    use srlm::learner::example_source::example_pipeline;
    use srlm::learner::kd::KdConfig;
    use srlm::learner::kd_trainer::{publish_nothing, KdTrainer};
    use srlm_actors::{RuntimeConfig, StepSizes};
    let (steps, per_step) = (15, 5);
    let data = sequences(false);
    assert!(steps * per_step > data.len(), "the run should wrap around the sequences");
    let values = |vars: &[(String, candle_core::Var)]| -> Vec<Vec<f32>> {
        vars.iter().map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()).collect()
    };
    let (student, vars, teacher) = student_and_teacher();
    let cfg = DistillConfig { steps, per_step, samples: 1, temperature: 1.0, chunk_rows: 64, pad_id: 0 };
    let looped =
        distill_forward(&student, &teacher, &data, &cfg, &mut optimizer(vars.clone(), 1e-2), |_, _: &AdamW| Ok::<(), AlgoError>(()));
    assert_eq!(looped.unwrap().steps, steps);
    let looped = values(&vars);
    let tmp = tempfile::tempdir().unwrap();
    for deterministic in [true, false] {
        let (student, vars, teacher) = student_and_teacher();
        let checkpoints = CheckpointPlace::bare(
            tmp.path().join(format!("deterministic-{deterministic}")),
            load_hf_weights(&common::fixtures().join("tiny/qwen2")).unwrap().0,
        );
        let kl = KdConfig { temperature: 1.0, direction: KlDirection::Forward, chunk_rows: 64 };
        let opt = optimizer(vars.clone(), 1e-2);
        let trainer = KdTrainer::new(student, vars.clone(), teacher, opt, kl, 0, per_step, publish_nothing, checkpoints);
        let order = (0..steps * per_step).map(|p| p % data.len()).collect();
        let base = RuntimeConfig { metrics_addr: None, ..RuntimeConfig::default() };
        let pipeline = example_pipeline(base, std::sync::Arc::new(data.clone()), order, StepSizes::Fixed(per_step), trainer);
        let summary = if deterministic {
            pipeline.run_deterministic().unwrap()
        } else {
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(pipeline.run()).unwrap()
        };
        assert_eq!(summary.state.step, steps as u64);
        assert!(values(&vars) == looped, "deterministic {deterministic}: the runtime trained other weights than the loop");
    }
}

#[test]
fn a_non_finite_step_is_counted_and_not_applied() {
    let (student, vars, teacher) = student_and_teacher();
    let cfg = DistillConfig { steps: 2, per_step: 4, samples: 1, temperature: f64::MIN_POSITIVE, chunk_rows: 64, pad_id: 0 };
    let before: Vec<f32> = vars[0].1.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
    let mut opt = optimizer(vars.clone(), 1e-2);
    let stats = distill_forward(&student, &teacher, &sequences(false), &cfg, &mut opt, |_, _: &AdamW| Ok::<(), AlgoError>(())).unwrap();
    assert_eq!((stats.steps, stats.skipped), (2, 2), "{stats:?}");
    assert!(stats.mean_kl.is_nan());
    assert_eq!(before, vars[0].1.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap());
}

#[test]
fn kd_configs_that_cannot_run_are_refused_by_name() {
    let out = std::path::Path::new("unused");
    let cases = [
        ("teacher = \"t\"\nmode = \"on_policy\"\nsteps = 0", "kd.steps"),
        ("teacher = \"t\"\nmode = \"logits\"\nprompts_per_step = 0", "kd.prompts_per_step"),
        ("teacher = \"t\"\nmode = \"on_policy\"\nsamples = 0", "kd.samples"),
        ("teacher = \"t\"\nmode = \"on_policy\"\nlr = -1.0", "kd.lr"),
        ("teacher = \"t\"\nmode = \"logits\"\ntemperature = 0.0", "kd.temperature"),
        ("teacher = \"t\"\nsteps = 10", "kd.steps applies to mode `logits` or `on_policy`, and kd.mode is `traces`"),
        ("teacher = \"t\"\nmode = \"logits\"\nmax_new_tokens = 64", "kd.max_new_tokens applies to mode `on_policy`"),
        ("teacher = \"t\"\nmode = \"on_policy\"\nmax_new_tokens = 0", "kd.max_new_tokens = 0: must be at least 1"),
        ("teacher = \"t\"\nmode = \"logits\"\nlayout = \"rewrite\"", "kd.layout applies to mode `traces`"),
        ("teacher = \"t\"\nmode = \"on_policy\"\ndata = \"kd.jsonl\"", "kd.data applies to mode `traces`"),
        ("teacher = \"t\"\nmode = \"logits\"\nsample_temperature = 0.7", "kd.sample_temperature applies to mode `traces`"),
        ("teacher = \"t\"\nmode = \"logits\"\nskip = 100", "kd.skip applies to mode `traces`"),
        ("teacher = \"t\"\nmax_new_tokens = 0", "kd.max_new_tokens = 0: must be at least 1"),
        ("teacher = \"t\"\nmode = \"reverse\"", "unknown variant `reverse`"),
        ("teacher = \"t\"\nmode = \"on_policy\"\ntemprature = 2.0", "temprature"),
        ("teacher = \"t\"\nmode = \"on_policy\"\nsteps = \"many\"", "steps"),
    ];
    for (kd, expected) in cases {
        let err = tiny_config(out, kd).unwrap_err();
        assert!(err.contains("kd.toml") && err.contains(expected), "{kd}: {err}");
    }
    tiny_config(
        out,
        "teacher = \"t\"\nmode = \"on_policy\"\nsteps = 5\nprompts_per_step = 2\nlr = 1e-4\ntemperature = 2.0\nmax_new_tokens = 8",
    )
    .unwrap();
}

/// A tiny teacher directory (another init of the embedded default's model) whose tokenizer is
/// the character tokenizer, with `extra` added to its vocabulary when given.
#[test]
fn a_teacher_with_another_tokenizer_is_refused_before_any_training() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_teacher(tmp.path(), Some("é"));
    let teacher = tmp.path().join("teacher");
    let out = tmp.path().join("run");
    let cfg = tiny_config(&out, &format!("teacher = {:?}\nmode = \"on_policy\"\nsteps = 2", teacher.to_str().unwrap())).unwrap();
    let err = format!("{:#}", run_training(&cfg, &RunOptions::default()).unwrap_err());
    assert!(err.contains(teacher.to_str().unwrap()) && err.contains("tokenizers differ") && err.contains("vocabulary sizes"), "{err}");
    assert!(!out.join("stage-0-kd").exists(), "nothing was trained");
}

#[test]
fn the_kd_stage_runs_both_logit_modes_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_teacher(tmp.path(), None);
    let teacher = tmp.path().join("teacher");
    for mode in ["on_policy", "logits"] {
        let out = tmp.path().join(mode);
        let kd = format!(
            "teacher = {:?}\nmode = \"{mode}\"\nsteps = 3\nprompts_per_step = 2\nsamples = 2\nlr = 1e-3",
            teacher.to_str().unwrap()
        );
        let reports = run_training(&tiny_config(&out, &kd).unwrap(), &RunOptions::default()).unwrap();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].steps, 3, "{mode}");
        assert!(out.join("stage-0-kd/model.safetensors").is_file(), "{mode}");
    }
}

/// `runtime.checkpoint_every` applies to every mode outside GRPO too (sft, and so trace KD, which
/// is SFT on the teacher's traces; both logit KD modes; all on the runtime), and a run resumed from such a checkpoint ends with the
/// uninterrupted run's weights, threaded and under `--deterministic`.
#[test]
fn a_periodic_checkpoint_of_each_mode_resumes_exactly() {
    use srlm::train::config::Stage;
    let tmp = tempfile::tempdir().unwrap();
    tiny_teacher(tmp.path(), None);
    let teacher = tmp.path().join("teacher");
    for deterministic in [false, true] {
        for mode in ["on_policy", "logits", "sft"] {
            let kd = match mode {
                "sft" => format!("teacher = {:?}", teacher.to_str().unwrap()),
                _ => format!(
                    "teacher = {:?}\nmode = \"{mode}\"\nsteps = 4\nprompts_per_step = 2\nsamples = 2\nlr = 1e-3",
                    teacher.to_str().unwrap()
                ),
            };
            let name = format!("{mode}-{deterministic}");
            let config = |run: &str| {
                let mut cfg = tiny_config(&tmp.path().join(format!("{name}-{run}")), &kd).unwrap();
                (cfg.runtime.pipeline.checkpoint_every, cfg.runtime.keep_checkpoints) = (2, 0);
                if mode == "sft" {
                    cfg.stages = vec![Stage::Sft];
                }
                // Small SFT steps, so there are more than two of them.
                (cfg.sft.examples, cfg.sft.token_budget) = (16, 48);
                cfg
            };
            let opts = |resume: Option<std::path::PathBuf>| RunOptions { resume, deterministic, ..RunOptions::default() };
            let whole = run_training(&config("whole"), &opts(None)).unwrap();
            let stage = if mode == "sft" { "sft" } else { "kd" };
            let ckpt = tmp.path().join(format!("{name}-whole/checkpoints-stage-0/checkpoint-00000002"));
            assert!(whole[0].steps > 2 && ckpt.join("manifest.json").is_file(), "{name}: no checkpoint at step 2 of {}", whole[0].steps);
            let resumed = run_training(&config("resumed"), &opts(Some(ckpt))).unwrap();
            // The report counts the stage's steps; the resumed invocation took the rest (were it
            // to take them all from the checkpoint, the weights below would differ).
            assert_eq!(resumed[0].steps, whole[0].steps, "{name}: the stage's steps");
            let weights = |run: &str| std::fs::read(tmp.path().join(format!("{name}-{run}/stage-0-{stage}/model.safetensors"))).unwrap();
            assert!(weights("whole") == weights("resumed"), "{name}: resumed from step 2, the weights differ");
            // The stage's step series: one entry per step, the resumed run's the same whole series
            // (steps 1-2 taken from the checkpoint's run, the rest trained again).
            let series = |run: &str| -> serde_json::Value {
                let path = tmp.path().join(format!("{name}-{run}/steps-stage-0.json"));
                serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
            };
            let steps: Vec<u64> = series("whole").as_array().unwrap().iter().map(|s| s["step"].as_u64().unwrap()).collect();
            assert_eq!(steps, (1..=whole[0].steps).collect::<Vec<_>>(), "{name}: one entry per step");
            assert_eq!(series("resumed"), series("whole"), "{name}: the resumed stage's step series");
        }
    }
}

/// On-policy KD places its generator as GRPO places its first: on `cpu:1`, a slot of its own
/// that gets a copy of each version, it trains what it trains sharing the learner's weights.
#[test]
fn on_policy_kd_generator_on_a_device_of_its_own_trains_the_same_weights() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_teacher(tmp.path(), None);
    let kd = format!(
        "teacher = {:?}\nmode = \"on_policy\"\nsteps = 3\nprompts_per_step = 2\nsamples = 2\nlr = 1e-3",
        tmp.path().join("teacher").to_str().unwrap()
    );
    let weights = |devices: &[&str]| {
        let out = tmp.path().join(format!("on-{}", devices.len()));
        let mut cfg = tiny_config(&out, &kd).unwrap();
        cfg.runtime.generator_devices = devices.iter().map(|d| d.to_string()).collect();
        run_training(&cfg, &RunOptions { deterministic: true, ..RunOptions::default() }).unwrap();
        std::fs::read(out.join("stage-0-kd/model.safetensors")).unwrap()
    };
    assert!(weights(&["cpu:1"]) == weights(&[]), "a generator on cpu:1 trained other weights");
}

#[test]
fn sigterm_in_each_logit_kd_mode_checkpoints_and_the_resume_is_exact() {
    use common::running::{named_checkpoint, Running};
    let tmp = tempfile::tempdir().unwrap();
    tiny_teacher(tmp.path(), None);
    let teacher = tmp.path().join("teacher");
    for mode in ["on_policy", "logits"] {
        let kd = format!(
            "teacher = {:?}\nmode = \"{mode}\"\nsteps = 60\nprompts_per_step = 2\nsamples = 2\nlr = 1e-3",
            teacher.to_str().unwrap()
        );
        let config = tmp.path().join(format!("{mode}.toml"));
        std::fs::write(&config, format!("{}[kd]\n{kd}\n", TINY.replace("OUT", "unused"))).unwrap();
        let srlm = || {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_srlm"));
            c.env("CANDLE_NUM_THREADS", "1").args(["train", "--config", config.to_str().unwrap(), "--out"]);
            c
        };
        let (whole, stopped) = (tmp.path().join(format!("{mode}-whole")), tmp.path().join(format!("{mode}-stopped")));
        assert!(srlm().arg(&whole).status().unwrap().success(), "{mode}");
        let mut r = Running::start(srlm(), &[stopped.to_str().unwrap()]);
        r.wait_for("kd step    3/60");
        r.signal("INT");
        let (code, text) = r.finish();
        assert_eq!(code, Some(75), "{mode}: {text}");
        assert!(!stopped.join("stage-0-kd").exists(), "{mode}: an unfinished stage is not exported");
        let ckpt = named_checkpoint(&text);
        let resumed = srlm().arg(&stopped).arg("--resume").arg(&ckpt).output().unwrap();
        let resumed_err = String::from_utf8_lossy(&resumed.stderr);
        assert!(resumed.status.success(), "{mode}: {resumed_err}");
        assert!(!resumed_err.contains("kd step    1/60"), "{mode}: the resumed stage starts again from step 1: {resumed_err}");
        assert_eq!(
            std::fs::read(whole.join("stage-0-kd/model.safetensors")).unwrap(),
            std::fs::read(stopped.join("stage-0-kd/model.safetensors")).unwrap(),
            "{mode}: stopped + resumed KD differs from the uninterrupted run"
        );
    }
}
