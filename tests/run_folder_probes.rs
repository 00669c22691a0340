//! `srlm train` as a careless user or a process supervisor drives it: re-runs into a used
//! folder, two runs at once, resumes with a changed recipe or a bad path, and SIGTERM in the
//! middle of a stage. Nothing is lost or mixed, every refusal comes before any work, and a
//! stopped run exits with status 75 naming the command that continues it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::running::{named_checkpoint, Running};

const STOPPED: i32 = 75;

fn srlm() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_srlm"));
    c.env("CANDLE_NUM_THREADS", "1");
    c
}

fn run(args: &[&str]) -> Output {
    let out = srlm().args(args).output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The embedded default cut to seconds; `edits` are (from, to) replacements of its text.
fn config(dir: &Path, name: &str, edits: &[(&str, &str)]) -> PathBuf {
    let mut text = String::from_utf8(run(&["train", "--print-default"]).stdout).unwrap();
    for (from, to) in [
        ("train_size = 4000", "train_size = 400"),
        ("heldout_size = 100", "heldout_size = 8"),
        ("epochs = 6", "epochs = 1"),
        ("checkpoint_every = 20", "checkpoint_every = 2"),
    ]
    .iter()
    .chain(edits)
    {
        assert!(text.contains(from), "the default has no '{from}'");
        text = text.replacen(from, to, 1);
    }
    // Tests here run at once: no two may serve metrics on the default port.
    text.push_str("metrics_addr = \"\"\n");
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn checkpoints(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_folder_holding_a_finished_run_is_refused_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "c.toml", &[("stages = [\"sft\", \"grpo\"]", "stages = [\"grpo\"]")]);
    let (cfg, out) = (cfg.to_str().unwrap(), tmp.path().join("run"));
    let out_s = out.to_str().unwrap();
    let first = run(&["train", "--config", cfg, "--deterministic", "--grpo-steps", "6", "--out", out_s]);
    assert!(first.status.success(), "{}", stderr(&first));
    let old = checkpoints(&out.join("checkpoints-stage-0"));
    assert!(!old.is_empty());
    let old_weights = std::fs::read(out.join("stage-0-grpo/model.safetensors")).unwrap();

    let again = run(&["train", "--config", cfg, "--deterministic", "--grpo-steps", "2", "--out", out_s]);
    let text = stderr(&again);
    assert_eq!(again.status.code(), Some(1), "{text}");
    assert!(text.contains("holds run") && text.contains("--force") && text.contains("--resume"), "{text}");
    assert!(!text.contains("held-out"), "refused before any work: {text}");
    assert_eq!(checkpoints(&out.join("checkpoints-stage-0")), old, "nothing of the old run was touched");
    assert_eq!(std::fs::read(out.join("stage-0-grpo/model.safetensors")).unwrap(), old_weights);

    let forced = run(&["train", "--config", cfg, "--deterministic", "--grpo-steps", "2", "--out", out_s, "--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    // Only the new run's checkpoint (step 2) is left: none of the old run's steps 2..6 survive,
    // and retention could not have deleted the new one in their favour.
    assert_eq!(checkpoints(&out.join("checkpoints-stage-0")), vec!["checkpoint-00000002"]);
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("checkpoints-stage-0/checkpoint-00000002/trainer_state.json")).unwrap()).unwrap();
    let run_json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(state["run_id"], run_json["run_id"]);
}

#[test]
fn sigterm_in_the_sft_stage_checkpoints_and_the_resume_is_exact() {
    let tmp = tempfile::tempdir().unwrap();
    // About 40 SFT steps, so the signal lands inside the stage.
    let edits = [
        ("stages = [\"sft\", \"grpo\"]", "stages = [\"sft\"]"),
        ("train_size = 400", "train_size = 4000"),
        ("epochs = 1", "epochs = 2"),
        ("token_budget = 2048", "token_budget = 512"),
    ];
    let cfg = config(tmp.path(), "c.toml", &edits);
    let cfg = cfg.to_str().unwrap();
    let (whole, stopped) = (tmp.path().join("whole"), tmp.path().join("stopped"));
    let o = run(&["train", "--config", cfg, "--deterministic", "--out", whole.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));

    let mut r = Running::start(srlm(), &["train", "--config", cfg, "--deterministic", "--out", stopped.to_str().unwrap()]);
    r.wait_for("sft step   10");
    r.signal("TERM");
    let (code, text) = r.finish();
    assert_eq!(code, Some(STOPPED), "{text}");
    assert!(text.contains("stopped by a signal during stage 0 (sft)"), "{text}");
    assert!(!stopped.join("stage-0-sft").exists(), "an unfinished stage is not exported: {text}");
    assert!(!text.contains("held-out after"), "{text}");
    let ckpt = named_checkpoint(&text);
    assert!(ckpt.join("manifest.json").is_file(), "{}", ckpt.display());

    let o = run(&["train", "--config", cfg, "--deterministic", "--out", stopped.to_str().unwrap(), "--resume", ckpt.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("held-out at the resume point"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(whole.join("stage-0-sft/model.safetensors")).unwrap(),
        std::fs::read(stopped.join("stage-0-sft/model.safetensors")).unwrap(),
        "stopped + resumed SFT differs from the uninterrupted run"
    );
    // Its step series too: the steps before the checkpoint from the stopped run's file.
    let series = |run: &Path| std::fs::read(run.join("steps-stage-0.json")).unwrap();
    assert_eq!(series(&whole), series(&stopped), "the resumed SFT stage's step series differs");
}

#[test]
fn sigterm_in_grpo_exits_75_without_exporting_and_a_second_run_is_locked_out() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "c.toml", &[("stages = [\"sft\", \"grpo\"]", "stages = [\"grpo\"]")]);
    let (cfg, out) = (cfg.to_str().unwrap(), tmp.path().join("run"));
    let out_s = out.to_str().unwrap();
    let mut r = Running::start(srlm(), &["train", "--config", cfg, "--out", out_s]);
    r.wait_for("grpo step    1/");
    // The folder is locked while the first run lives: a second one is refused with its PID.
    let second = run(&["train", "--config", cfg, "--out", out_s, "--force"]);
    let text = stderr(&second);
    assert_eq!(second.status.code(), Some(1), "{text}");
    assert!(text.contains(&format!("in use by another srlm run (PID {})", r.child.id())), "{text}");
    r.signal("TERM");
    let (code, text) = r.finish();
    assert_eq!(code, Some(STOPPED), "{text}");
    assert!(text.contains("stopped by a signal during stage 0 (grpo)"), "{text}");
    assert!(!out.join("stage-0-grpo").exists(), "an unfinished stage is not exported");
    assert!(!text.contains("held-out after"), "{text}");
    let ckpt = named_checkpoint(&text);
    assert!(ckpt.join("manifest.json").is_file() && ckpt.starts_with(&out), "{}", ckpt.display());
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("run-stage-0.json")).unwrap()).unwrap();
    assert_eq!(summary["interrupted"], serde_json::json!(true));
}

#[test]
fn resume_refuses_a_changed_recipe_a_missing_path_and_a_damaged_checkpoint_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "c.toml", &[("stages = [\"sft\", \"grpo\"]", "stages = [\"grpo\"]")]);
    let out = tmp.path().join("run");
    let o = run(&["train", "--config", cfg.to_str().unwrap(), "--deterministic", "--grpo-steps", "2", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ckpt = out.join("checkpoints-stage-0/checkpoint-00000002");
    let ckpt_s = ckpt.to_str().unwrap();

    let changed = config(
        tmp.path(),
        "changed.toml",
        &[
            ("stages = [\"sft\", \"grpo\"]", "stages = [\"grpo\"]"),
            ("lr = 3e-4", "lr = 1e-3"),
            ("checkpoint_every = 2", "checkpoint_every = 5"),
        ],
    );
    let o = run(&["train", "--config", changed.to_str().unwrap(), "--deterministic", "--out", out.to_str().unwrap(), "--resume", ckpt_s]);
    let text = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("recipe changed") && text.contains("grpo.lr: 0.0003 → 0.001"), "{text}");
    assert!(!text.contains("runtime.checkpoint_every: "), "the cadence may change on resume: {text}");
    assert!(!text.contains("held-out"), "{text}");

    let o = run(&["train", "--config", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "--resume", "no/such/checkpoint-00000009"]);
    let text = stderr(&o);
    assert!(text.contains("no such folder") && !text.contains("damaged"), "{text}");

    // A flipped byte in the weights: refused, naming the file, before the held-out evaluation.
    let weights = ckpt.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&weights, bytes).unwrap();
    let o = run(&["train", "--config", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "--resume", ckpt_s]);
    let text = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("damaged checkpoint") && text.contains("model.safetensors"), "{text}");
    assert!(!text.contains("held-out"), "{text}");
}

#[test]
fn a_finished_stage_is_a_resume_point_for_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "c.toml", &[]);
    let cfg = cfg.to_str().unwrap();
    let (whole, split) = (tmp.path().join("whole"), tmp.path().join("split"));
    let o = run(&["train", "--config", cfg, "--deterministic", "--grpo-steps", "2", "--out", whole.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Continue a copy of the run after its SFT stage: GRPO starts from the SFT export.
    let o = run(&[
        "train",
        "--config",
        cfg,
        "--deterministic",
        "--grpo-steps",
        "2",
        "--out",
        split.to_str().unwrap(),
        "--resume",
        whole.join("stage-0-sft").to_str().unwrap(),
    ]);
    let text = stderr(&o);
    assert!(o.status.success(), "{text}");
    assert!(!text.contains("sft step"), "SFT was finished: {text}");
    assert_eq!(
        std::fs::read(whole.join("stage-1-grpo/model.safetensors")).unwrap(),
        std::fs::read(split.join("stage-1-grpo/model.safetensors")).unwrap(),
        "GRPO from the SFT export differs from the uninterrupted run"
    );
}

#[test]
fn a_stop_during_the_first_evaluation_says_nothing_was_saved() {
    use srlm::train::config::{TrainConfig, EMBEDDED_DEFAULT};
    use srlm::train::resume::Interrupted;
    use srlm::train::stages::{run_training, RunOptions};
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = TrainConfig::from_toml(EMBEDDED_DEFAULT, "default").unwrap();
    cfg.out_dir = tmp.path().join("run");
    cfg.runtime.metrics_addr = String::new();
    let opts = RunOptions::default();
    opts.shutdown.request();
    let err = run_training(&cfg, &opts).unwrap_err();
    let stop = err.downcast_ref::<Interrupted>().unwrap_or_else(|| panic!("not a stop: {err:#}"));
    assert_eq!((stop.during.as_str(), stop.resume_from.as_deref()), ("the held-out evaluation", None));
    assert!(!cfg.out_dir.join("stage-0-sft").exists());
}
