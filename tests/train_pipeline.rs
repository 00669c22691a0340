//! `srlm train` end to end on the embedded default's tiny model: deterministic runs repeat
//! exactly, a GRPO run can be interrupted and resumed, and bad configs fail before any work.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn srlm(args: &[&str], out: &Path) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_srlm")).args(args).arg("--out").arg(out).env("CANDLE_NUM_THREADS", "1").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    output
}

/// The embedded default cut down to seconds: a few SFT steps and GRPO steps.
fn short_config(dir: &Path) -> PathBuf {
    let default =
        String::from_utf8(Command::new(env!("CARGO_BIN_EXE_srlm")).args(["train", "--print-default"]).output().unwrap().stdout).unwrap();
    let text = default
        .replace("train_size = 4000", "train_size = 400")
        .replace("heldout_size = 100", "heldout_size = 16")
        .replace("epochs = 6", "epochs = 1")
        // No metrics endpoint: the threaded tests run at once, and another srlm may hold the port.
        .replace("checkpoint_every = 20", "checkpoint_every = 2\nmetrics_addr = \"\"");
    let path = dir.join("short.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `short_config` with `edit` applied to its text. An edit that changes nothing means the
/// embedded default moved under the test, and fails it.
fn short_config_edited(dir: &Path, edit: impl FnOnce(&str) -> String) -> PathBuf {
    let path = short_config(dir);
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = edit(&text);
    assert_ne!(edited, text, "the edit found nothing to change in the embedded default");
    std::fs::write(&path, edited).unwrap();
    path
}

/// A deterministic `srlm train` of `steps` GRPO steps into `out`, from `resume` when given,
/// which must succeed.
fn train(cfg: &str, steps: &str, out: &Path, resume: Option<&Path>) -> Output {
    let mut args = vec!["train", "--config", cfg, "--deterministic", "--grpo-steps", steps];
    if let Some(ckpt) = resume {
        args.extend(["--resume", ckpt.to_str().unwrap()]);
    }
    let o = srlm(&args, out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

/// The resumed run ended byte for byte as the uninterrupted one: step series and final weights.
fn assert_resumed_run_matches(run: &Path, resumed: &Path) {
    assert_eq!(read(&run.join("steps-stage-1.json")), read(&resumed.join("steps-stage-1.json")), "step series differ");
    let weights = |dir: &Path| read(&dir.join("stage-1-grpo/model.safetensors"));
    assert!(weights(run) == weights(resumed), "final weights differ");
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn two_deterministic_runs_give_identical_weights_and_metric_series() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = short_config(tmp.path());
    let cfg = cfg.to_str().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for out in [&a, &b] {
        train(cfg, "4", out, None);
    }
    let steps = read(&a.join("steps-stage-1.json"));
    assert_eq!(steps, read(&b.join("steps-stage-1.json")), "metric series differ");
    let series: serde_json::Value = serde_json::from_slice(&steps).unwrap();
    assert_eq!(series.as_array().unwrap().len(), 4);
    // The SFT stage records its series too, and its loss falls over the epoch.
    let sft = read(&a.join("steps-stage-0.json"));
    assert_eq!(sft, read(&b.join("steps-stage-0.json")), "SFT series differ");
    let sft: serde_json::Value = serde_json::from_slice(&sft).unwrap();
    let loss: Vec<f64> = sft.as_array().unwrap().iter().map(|s| s["loss"].as_f64().unwrap()).collect();
    assert!(loss.len() >= 4, "{} SFT steps", loss.len());
    let (first, last) = loss.split_at(loss.len() / 2);
    let mean = |l: &[f64]| l.iter().sum::<f64>() / l.len() as f64;
    assert!(mean(last) < mean(first), "SFT loss did not fall: {loss:?}");
    for stage in ["stage-0-sft", "stage-1-grpo"] {
        assert_eq!(
            read(&a.join(stage).join("model.safetensors")),
            read(&b.join(stage).join("model.safetensors")),
            "{stage} weights differ"
        );
    }
    // GRPO changed the weights it started from.
    assert_ne!(read(&a.join("stage-0-sft/model.safetensors")), read(&a.join("stage-1-grpo/model.safetensors")));
    let report = String::from_utf8_lossy(&train(cfg, "4", &tmp.path().join("c"), None).stdout).into_owned();
    assert!(report.contains("sft") && report.contains("grpo"), "{report}");
}

#[test]
fn resuming_a_grpo_checkpoint_continues_from_its_step() {
    let tmp = tempfile::tempdir().unwrap();
    // Asynchronous (the default's max_staleness = 1): the harness holds generators at each
    // periodic checkpoint, so none has a group in flight and resuming is exact.
    let cfg = short_config(tmp.path());
    assert!(std::fs::read_to_string(&cfg).unwrap().contains("max_staleness = 1"));
    let cfg = cfg.to_str().unwrap();
    let run = tmp.path().join("run");
    train(cfg, "4", &run, None);
    let ckpt = run.join("checkpoints-stage-1").join("checkpoint-00000002");
    assert!(ckpt.join("trainer_state.json").is_file(), "no checkpoint at step 2 in {}", run.display());
    let resumed = tmp.path().join("resumed");
    let o = train(cfg, "4", &resumed, Some(&ckpt));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("resumed from"), "{stderr}");
    assert!(stderr.contains("checkpoint-00000002: stage 1 (grpo) onwards"), "{stderr}");
    // The stage table counts the stage's steps, the two before the checkpoint included.
    let stdout = String::from_utf8_lossy(&o.stdout);
    let row: Vec<&str> = stdout.lines().find(|l| l.starts_with("grpo ")).unwrap_or_else(|| panic!("{stdout}")).split_whitespace().collect();
    assert_eq!(row.get(3), Some(&"4"), "{stdout}");
    // Progress counts on from the checkpoint, and staleness stays within max_staleness.
    assert!(stderr.contains("grpo step    3/4") && !stderr.contains("grpo step    1/4"), "{stderr}");
    let staleness: Vec<u64> = stderr.split("staleness ≤").skip(1).map(|t| t.split_whitespace().next().unwrap().parse().unwrap()).collect();
    assert!(!staleness.is_empty() && staleness.iter().all(|&s| s <= 1), "{staleness:?}: {stderr}");
    // Steps 3 and 4 again, from the checkpoint, after steps 1 and 2 taken from the checkpoint's
    // run: the same whole series as the uninterrupted run's.
    let whole: serde_json::Value = serde_json::from_slice(&read(&resumed.join("steps-stage-1.json"))).unwrap();
    assert_eq!(whole.as_array().unwrap().len(), 4);
    assert_resumed_run_matches(&run, &resumed);
}

/// A run killed mid-stage has its step series on disk up to its last step (the file is kept
/// current, not written at the end), and resumed in its own folder from its newest checkpoint it
/// ends with the uninterrupted run's whole series and rollout log.
#[test]
fn a_killed_run_resumed_in_its_folder_ends_as_the_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = short_config_edited(tmp.path(), |t| t.replace("log_rollouts_every = 10", "log_rollouts_every = 1"));
    let cfg = cfg.to_str().unwrap();
    let args = ["train", "--config", cfg, "--deterministic", "--grpo-steps", "12"];
    let full = tmp.path().join("full");
    train(cfg, "12", &full, None);

    let run = tmp.path().join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_srlm"))
        .args(args)
        .arg("--out")
        .arg(&run)
        .env("CANDLE_NUM_THREADS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        // Step 6's progress line comes after step 5 is recorded (it is printed mid-step).
        let in_step_6 = line.contains("grpo step    6/12");
        seen.push(line);
        if in_step_6 {
            break;
        }
    }
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success(), "the run ended before it was killed: {seen:?}");
    let series: serde_json::Value = serde_json::from_slice(&read(&run.join("steps-stage-1.json"))).unwrap();
    let kept = series.as_array().unwrap().len();
    assert!((5..12).contains(&kept), "{kept} steps on disk after a kill in step 6");

    let checkpoints = run.join("checkpoints-stage-1");
    let mut names: Vec<_> = std::fs::read_dir(&checkpoints).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.retain(|n| n.starts_with("checkpoint-"));
    names.sort();
    let newest = checkpoints.join(names.last().expect("a checkpoint before step 6"));
    train(cfg, "12", &run, Some(&newest));
    for file in ["steps-stage-1.json", "rollouts.jsonl"] {
        assert_eq!(
            String::from_utf8(read(&run.join(file))).unwrap(),
            String::from_utf8(read(&full.join(file))).unwrap(),
            "{file} of the killed and resumed run differs from the uninterrupted run's"
        );
    }
}

/// Under dynamic sampling the counts of dropped groups continue across a resume: the
/// checkpoint carries them, so the resumed series equals the uninterrupted one.
#[test]
fn dropped_group_counts_continue_across_a_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = short_config_edited(tmp.path(), |t| {
        t.replace("metrics_addr = \"\"", "metrics_addr = \"\"\ndynamic_sampling = true")
            .replace("log_rollouts_every = 10", "log_rollouts_every = 1")
    });
    let cfg = cfg.to_str().unwrap();
    let run = tmp.path().join("run");
    train(cfg, "12", &run, None);
    let full: serde_json::Value = serde_json::from_slice(&read(&run.join("steps-stage-1.json"))).unwrap();
    let dropped: Vec<u64> = full.as_array().unwrap().iter().map(|s| s["dropped_uniform_so_far"].as_u64().unwrap()).collect();
    let ckpt = run.join("checkpoints-stage-1").join("checkpoint-00000002");
    assert!(ckpt.join("trainer_state.json").is_file(), "no checkpoint at step 2 in {}", run.display());
    // The case this test is for: groups were dropped before the checkpoint, and steps follow it.
    // (Most of the tiny task's groups after SFT earn equal rewards: 12 planned steps of 8 groups
    // give a few learner steps.)
    assert!(dropped.len() > 2 && dropped[1] > 0, "no group dropped by step 2: {dropped:?}");
    let resumed = tmp.path().join("resumed");
    train(cfg, "12", &resumed, Some(&ckpt));
    let whole: serde_json::Value = serde_json::from_slice(&read(&resumed.join("steps-stage-1.json"))).unwrap();
    assert_eq!(whole, full, "the resumed stage's step series differs from the uninterrupted run's");
    let state: serde_json::Value = serde_json::from_slice(&read(&ckpt.join("trainer_state.json"))).unwrap();
    assert_eq!(state["extra"]["dropped_uniform"].as_u64(), Some(dropped[1]), "{state}");
    // Resumed in its own folder, the run samples the groups after the checkpoint again: the
    // rollout log ends as the uninterrupted run's, each group (trained or dropped) once.
    let log = read(&run.join("rollouts.jsonl"));
    let o = train(cfg, "12", &run, Some(&ckpt));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("groups after the checkpoint left"), "{stderr}");
    assert_eq!(String::from_utf8(read(&run.join("rollouts.jsonl"))).unwrap(), String::from_utf8(log).unwrap());
}

#[test]
fn config_errors_name_the_file_and_key_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let base = "out_dir = \"x\"\n[model]\nsource = \"tiny\"\n[data]\ntask = \"arithmetic\"\n";
    let bad = [
        (format!("stages = [\"grpo\"]\n{base}[grpo]\nlearning_rate = 1e-6\n"), "learning_rate"),
        (format!("seed = \"zero\"\nstages = [\"grpo\"]\n{base}"), "seed"),
        (format!("stages = [\"ppo\"]\n{base}"), "ppo"),
        (format!("stages = [\"kd\"]\n{base}"), "kd"),
    ];
    for (i, (text, key)) in bad.iter().enumerate() {
        let path = tmp.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = tmp.path().join(format!("out{i}"));
        let o = srlm(&["train", "--config", path.to_str().unwrap()], &out);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(&format!("bad{i}.toml")) && stderr.contains(key), "error should name the file and '{key}': {stderr}");
        assert!(!out.exists(), "work started before the config was checked");
    }
}

#[test]
fn groups_in_flight_train_every_batch_threaded() {
    // Several groups per generator call (continuous batching), on the threaded runtime.
    let tmp = tempfile::tempdir().unwrap();
    let cfg =
        short_config_edited(tmp.path(), |t| t.replace("stages = [\"sft\", \"grpo\"]", "stages = [\"grpo\"]") + "groups_in_flight = 4\n");
    let run = tmp.path().join("run");
    let o = srlm(&["train", "--config", cfg.to_str().unwrap(), "--grpo-steps", "3"], &run);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&read(&run.join("run-stage-0.json"))).unwrap();
    assert_eq!(summary["steps"], serde_json::json!(3));
    let groups = summary["groups_trained"].as_u64().unwrap() + summary["groups_dropped_stale"].as_u64().unwrap();
    assert!(groups >= 24, "3 steps of 8 groups: {summary}");
    let bad = std::fs::read_to_string(&cfg).unwrap().replace("groups_in_flight = 4", "groups_in_flight = 0");
    std::fs::write(&cfg, bad).unwrap();
    let o = srlm(&["train", "--config", cfg.to_str().unwrap()], &tmp.path().join("bad"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("runtime.groups_in_flight"));
}

#[test]
fn a_generator_on_a_device_of_its_own_gets_each_version_copied_and_timed() {
    // `cpu:1` is the CPU as a slot of its own: the runtime copies every version the generator
    // adopts (in bf16, the generator's dtype), exactly as it would to a GPU. Deterministic, so
    // the generator adopts each published version: one copy per version sampled with.
    let tmp = tempfile::tempdir().unwrap();
    let cfg = short_config_edited(tmp.path(), |t| {
        assert!(t.ends_with("log_rollouts_every = 10\n"), "[runtime] must be the last section");
        t.replace("stages = [\"sft\", \"grpo\"]", "stages = [\"grpo\"]") + "generator_devices = [\"cpu:1\"]\ngenerator_dtype = \"bf16\"\n"
    });
    let run = tmp.path().join("run");
    train(cfg.to_str().unwrap(), "3", &run, None);
    let summary: serde_json::Value = serde_json::from_slice(&read(&run.join("run-stage-0.json"))).unwrap();
    assert_eq!(summary["devices"], serde_json::json!(["cpu", "cpu:1"]));
    assert_eq!(summary["generator_slots"], serde_json::json!([1]));
    let syncs = summary["weight_syncs"].as_u64().unwrap();
    assert!((2..=4).contains(&syncs), "{syncs} copies for 3 steps: {summary}");
    assert!(summary["weight_sync_s"].as_f64().unwrap() > 0.0);
    // A list that does not match the generator count is refused by name before any work.
    let bad = std::fs::read_to_string(&cfg).unwrap().replace("[\"cpu:1\"]", "[\"cpu:1\", \"cpu:2\"]");
    std::fs::write(&cfg, bad).unwrap();
    let o = srlm(&["train", "--config", cfg.to_str().unwrap()], &tmp.path().join("bad"));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && stderr.contains("runtime.generator_devices"), "{stderr}");
}

/// Progress lines, the rollout log and the step series count learner steps, one per batch, also
/// when a batch takes two optimizer updates (`iterations = 2`) and across a resume.
#[test]
fn steps_count_batches_not_optimizer_updates_before_and_after_a_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = short_config_edited(tmp.path(), |t| {
        t.replace("[grpo]\n", "[grpo]\niterations = 2\n").replace("log_rollouts_every = 10", "log_rollouts_every = 1")
    });
    let cfg = cfg.to_str().unwrap();
    let progress = |stderr: &str| -> Vec<String> {
        stderr.lines().filter_map(|l| l.strip_prefix("grpo step").map(|r| r.split_whitespace().next().unwrap().to_string())).collect()
    };
    // Every group of each logged step (the default trains 8 per step), step by step.
    let logged_steps = |run: &Path| -> Vec<u64> {
        let mut steps: Vec<u64> = String::from_utf8(read(&run.join("rollouts.jsonl")))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap())
            .collect();
        let lines = steps.len();
        steps.dedup();
        assert_eq!(lines, 8 * steps.len(), "{steps:?}");
        steps
    };
    let run = tmp.path().join("run");
    let o = train(cfg, "4", &run, None);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(progress(&stderr), ["1/4", "2/4", "3/4", "4/4"], "{stderr}");
    assert_eq!(logged_steps(&run), [0, 1, 2, 3]);
    let series: serde_json::Value = serde_json::from_slice(&read(&run.join("steps-stage-1.json"))).unwrap();
    let pairs: Vec<(u64, u64)> =
        series.as_array().unwrap().iter().map(|s| (s["step"].as_u64().unwrap(), s["version"].as_u64().unwrap())).collect();
    assert_eq!(pairs, [(1, 1), (2, 2), (3, 3), (4, 4)]);

    let ckpt = run.join("checkpoints-stage-1").join("checkpoint-00000002");
    let resumed = tmp.path().join("resumed");
    let o = train(cfg, "4", &resumed, Some(&ckpt));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(progress(&stderr), ["3/4", "4/4"], "{stderr}");
    assert_eq!(logged_steps(&resumed), [2, 3]);
    let state: serde_json::Value =
        serde_json::from_slice(&read(&resumed.join("checkpoints-stage-1").join("checkpoint-00000004").join("trainer_state.json"))).unwrap();
    assert_eq!((state["step"].as_u64(), state["policy_version"].as_u64()), (Some(4), Some(4)), "{state}");
}

/// `[grpo.lora]`: the GRPO stage trains adapters over the SFT stage's export. Its checkpoints hold
/// only adapters, a resume from one (into another folder) ends with the uninterrupted run's
/// weights, and the PEFT adapter it writes, over the SFT export, is the merged export.
#[test]
fn a_lora_grpo_stage_exports_merged_weights_and_resumes_from_adapter_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = short_config_edited(tmp.path(), |t| {
        assert!(t.contains("[grpo]\nlr = 3e-4\n"), "the default's [grpo] changed");
        t.replace("[grpo]\nlr = 3e-4\n", "[grpo]\nlr = 3e-3\nsave_adapter = true\n")
            + "\n[grpo.lora]\nr = 4\nalpha = 8\ntarget_modules = [\"q_proj\", \"v_proj\", \"down_proj\"]\n"
    });
    let cfg = cfg.to_str().unwrap();
    let run = tmp.path().join("run");
    let stderr = String::from_utf8_lossy(&train(cfg, "4", &run, None).stderr).into_owned();
    assert!(stderr.contains("grpo: adapters written to"), "{stderr}");
    let (sft, grpo) = (run.join("stage-0-sft"), run.join("stage-1-grpo"));
    assert_ne!(read(&sft.join("model.safetensors")), read(&grpo.join("model.safetensors")), "GRPO left the weights as they were");

    let ckpt = run.join("checkpoints-stage-1").join("checkpoint-00000002");
    assert!(ckpt.join("adapter_model.safetensors").is_file(), "{}", ckpt.display());
    assert!(!ckpt.join("model.safetensors").exists(), "a LoRA checkpoint needs no copy of the base");

    // The adapter names the SFT export as its base, and over it equals the merged export.
    let adapter = run.join("stage-1-grpo-adapter");
    let peft: serde_json::Value = serde_json::from_slice(&read(&adapter.join("adapter_config.json"))).unwrap();
    assert_eq!(peft["base_model_name_or_path"].as_str(), Some(sft.to_str().unwrap()), "{peft}");
    let (config, base) = srlm::model::load::load_hf_weights(&sft).unwrap();
    let merged = srlm::model::LoraAdapters::load_peft(&adapter, &base, &config).unwrap().merged(&base).unwrap();
    let (_, exported) = srlm::model::load::load_hf_weights(&grpo).unwrap();
    let mut changed = 0;
    for (name, want) in merged.iter() {
        let got = exported.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("{name} not exported")).1;
        let diff = (want - got).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-6, "{name}: the adapter over the SFT export differs from the export by {diff}");
        let moved = (want - base.iter().find(|(n, _)| *n == name).unwrap().1).unwrap().abs().unwrap();
        changed += (moved.flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap() > 0.0) as usize;
    }
    assert_eq!(changed, 3 * config.num_layers, "only the wrapped projections move");

    let resumed = tmp.path().join("resumed");
    train(cfg, "4", &resumed, Some(&ckpt));
    assert_resumed_run_matches(&run, &resumed);
}

/// With β > 0 the KL reference is the weights the stage started from: a stage resumed into
/// another `--out` finds them beside its checkpoint's run (the SFT stage's export there), and
/// ends bit for bit as the uninterrupted run, whose reference is its in-memory copy of the same
/// weights (both take the same kernels: neither records a gradient graph).
#[test]
fn a_kl_regularised_grpo_stage_resumed_into_another_folder_ends_as_the_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = short_config_edited(tmp.path(), |t| t.replace("[grpo]\nlr = 3e-4\n", "[grpo]\nlr = 3e-4\nbeta = 0.04\n"));
    let cfg = cfg.to_str().unwrap();
    let run = tmp.path().join("run");
    train(cfg, "4", &run, None);
    let ckpt = run.join("checkpoints-stage-1").join("checkpoint-00000002");
    let resumed = tmp.path().join("resumed");
    train(cfg, "4", &resumed, Some(&ckpt));
    let series = serde_json::from_slice::<serde_json::Value>(&read(&run.join("steps-stage-1.json"))).unwrap();
    assert_eq!(series.as_array().unwrap().len(), 4);
    assert!(series[3]["kl"].as_f64().unwrap() > 0.0, "no KL term in {}", series[3]);
    assert_resumed_run_matches(&run, &resumed);
}
