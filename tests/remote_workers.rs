//! `srlm train --listen` with `srlm worker` processes on 127.0.0.1: two generator workers and a
//! scorer worker finish a GRPO stage; a generator worker that dies holding prompts loses none;
//! a worker with the wrong cookie is refused; TLS; a learner node stopped by SIGTERM resumes with
//! new workers.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::ports::free_loopback_port;
use common::running::{named_checkpoint, Running};

const STEPS: u64 = 4;
const BATCH_GROUPS: u64 = 2;

/// The embedded default cut to a GRPO-only stage of seconds; no metrics port (tests run at once).
fn grpo_config(dir: &Path) -> PathBuf {
    let default =
        String::from_utf8(Command::new(env!("CARGO_BIN_EXE_srlm")).args(["train", "--print-default"]).output().unwrap().stdout).unwrap();
    let text = default
        .replace("stages = [\"sft\", \"grpo\"]", "stages = [\"grpo\"]")
        .replace("train_size = 4000", "train_size = 200")
        .replace("heldout_size = 100", "heldout_size = 8")
        .replace("group_size = 16", "group_size = 4")
        .replace("batch_groups = 8", &format!("batch_groups = {BATCH_GROUPS}"))
        .replace("checkpoint_every = 20", "checkpoint_every = 2")
        .replace("log_rollouts_every = 10", "log_rollouts_every = 1")
        .replace("[runtime]", "[runtime]\nmetrics_addr = \"\"");
    assert!(
        text.contains("stages = [\"grpo\"]") && text.contains("group_size = 4") && text.contains("log_rollouts_every = 1"),
        "the default changed: {text}"
    );
    let path = dir.join("grpo.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn spawn(args: &[&str], log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_srlm"))
        .args(args)
        .env("CANDLE_NUM_THREADS", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// The learner node with `local` generators and scorers of its own (`[generators, scorers]`).
fn learner(tmp: &Path, port: u16, local: [&str; 2], extra: &[&str]) -> Child {
    let cfg = grpo_config(tmp);
    let (cfg, out, addr) = (cfg.to_str().unwrap().to_string(), tmp.join("out"), format!("127.0.0.1:{port}"));
    let steps = STEPS.to_string();
    let mut args = vec![
        "train",
        "--config",
        &cfg,
        "--out",
        out.to_str().unwrap(),
        "--grpo-steps",
        &steps,
        "--listen",
        &addr,
        "--local-generators",
        local[0],
        "--local-scorers",
        local[1],
    ];
    args.extend_from_slice(extra);
    spawn(&args, &tmp.join("learner.log"))
}

fn worker(tmp: &Path, port: u16, role: &str, name: &str, extra: &[&str]) -> Child {
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec!["worker", "--connect", &addr, "--role", role, "--patience", "120"];
    args.extend_from_slice(extra);
    spawn(&args, &tmp.join(format!("{name}.log")))
}

/// Waits for `child`, killing it after `limit`; the exit status and the log.
fn finish(mut child: Child, log: &Path, limit: Duration) -> (Option<i32>, String) {
    let until = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (status, std::fs::read_to_string(log).unwrap_or_default())
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// How many times each prompt id was trained, over the stage's step series.
fn trained_prompts(out: &Path) -> BTreeMap<u64, usize> {
    let mut seen = BTreeMap::new();
    for step in json(&out.join("steps-stage-0.json")).as_array().unwrap() {
        for id in step["prompts"].as_array().unwrap() {
            *seen.entry(id.as_u64().unwrap()).or_insert(0) += 1;
        }
    }
    seen
}

/// The prompt ids the learner dropped without training, from the rollout log (every group is
/// logged: `log_rollouts_every = 1`), each with why.
fn dropped_prompts(out: &Path) -> BTreeMap<u64, String> {
    let log = std::fs::read_to_string(out.join("rollouts.jsonl")).unwrap_or_default();
    log.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|g| Some((g["prompt_id"].as_u64().unwrap(), g.get("dropped")?.as_str()?.to_string())))
        .collect()
}

/// Every prompt of the stage was trained exactly once, or dropped as stale (two workers can
/// finish out of order, so a slow worker's group may reach the learner more than
/// `max_staleness` versions late; the design drops it and counts it) — never lost unaccounted.
/// Returns how many were dropped.
fn assert_every_prompt_trained_once_or_dropped_stale(out: &Path, total: u64) -> u64 {
    let seen = trained_prompts(out);
    let dropped = dropped_prompts(out);
    assert!(seen.values().all(|&n| n == 1), "a prompt trained twice: {seen:?}");
    assert!(dropped.values().all(|why| why == "stale"), "dropped for another reason: {dropped:?}");
    assert!(dropped.keys().all(|id| !seen.contains_key(id)), "a prompt both trained and dropped: {seen:?} {dropped:?}");
    let mut all: Vec<u64> = seen.keys().chain(dropped.keys()).copied().collect();
    all.sort();
    assert_eq!(all, (0..total).collect::<Vec<_>>(), "trained {seen:?}, dropped {dropped:?}");
    dropped.len() as u64
}

#[test]
fn two_generator_workers_and_a_scorer_worker_finish_the_grpo_stage() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_loopback_port();
    let l = learner(tmp.path(), port, ["0", "0"], &[]);
    let workers: Vec<(String, Child)> = [("generator", "gen-a"), ("generator", "gen-b"), ("scorer", "scorer")]
        .into_iter()
        .map(|(role, name)| (name.to_string(), worker(tmp.path(), port, role, name, &[])))
        .collect();
    let (status, log) = finish(l, &tmp.path().join("learner.log"), Duration::from_secs(300));
    assert_eq!(status, Some(0), "learner: {log}");
    for (name, w) in workers {
        let (status, wlog) = finish(w, &tmp.path().join(format!("{name}.log")), Duration::from_secs(20));
        assert_eq!(status, Some(0), "{name}: {wlog}");
        assert!(wlog.contains("the run is over"), "{name}: {wlog}");
    }
    let out = tmp.path().join("out");
    let dropped = assert_every_prompt_trained_once_or_dropped_stale(&out, STEPS * BATCH_GROUPS);
    let run = json(&out.join("run-stage-0.json"));
    assert_eq!(run["groups_dropped_stale"], dropped, "{run}");
    let remote = &run["remote"];
    assert_eq!(remote["workers_joined"], 3, "{run}");
    assert_eq!(remote["workers_lost"], 0, "{run}");
    // No local generator or scorer: the workers did all of it.
    assert_eq!(remote["groups_scored"], STEPS * BATCH_GROUPS, "{run}");
    assert!(remote["groups_generated"].as_u64().unwrap() >= STEPS * BATCH_GROUPS, "{run}");
    // Each generator downloaded its first version and at least one newer one.
    assert!(remote["weight_transfers"].as_u64().unwrap() >= 3, "{run}");
    assert!(remote["weight_bytes"].as_u64().unwrap() > 0, "{run}");
    assert!(out.join("stage-0-grpo/model.safetensors").is_file());
}

#[test]
fn a_generator_worker_dying_mid_run_loses_no_prompt() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_loopback_port();
    let l = learner(tmp.path(), port, ["0", "1"], &[]);
    // The first worker exits abruptly holding its second batch of prompts, after one group.
    let doomed = worker(tmp.path(), port, "generator", "doomed", &["--exit-after-groups", "1"]);
    let (status, dlog) = finish(doomed, &tmp.path().join("doomed.log"), Duration::from_secs(240));
    assert_eq!(status, Some(3), "the doomed worker should die by its fault injection: {dlog}");
    assert!(dlog.contains("exiting abruptly holding"), "{dlog}");
    let survivor = worker(tmp.path(), port, "generator", "survivor", &[]);
    let (status, log) = finish(l, &tmp.path().join("learner.log"), Duration::from_secs(300));
    assert_eq!(status, Some(0), "learner: {log}");
    let (status, slog) = finish(survivor, &tmp.path().join("survivor.log"), Duration::from_secs(20));
    assert_eq!(status, Some(0), "survivor: {slog}");
    let out = tmp.path().join("out");
    let dropped = assert_every_prompt_trained_once_or_dropped_stale(&out, STEPS * BATCH_GROUPS);
    let run = json(&out.join("run-stage-0.json"));
    assert_eq!(run["groups_dropped_stale"], dropped, "{run}");
    assert_eq!(run["remote"]["workers_lost"], 1, "{run}");
    assert!(run["groups_requeued"].as_u64().unwrap() >= 1, "the dead worker's prompts were re-queued: {run}");
    assert!(log.contains("worker node left"), "{log}");
}

#[test]
fn a_worker_with_the_wrong_cookie_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (right, wrong) = (tmp.path().join("right.cookie"), tmp.path().join("wrong.cookie"));
    std::fs::write(&right, "the-right-secret\n").unwrap();
    std::fs::write(&wrong, "not-the-secret\n").unwrap();
    let port = free_loopback_port();
    let l = learner(tmp.path(), port, ["1", "1"], &["--cookie-file", right.to_str().unwrap()]);
    let intruder = worker(tmp.path(), port, "generator", "intruder", &["--cookie-file", wrong.to_str().unwrap()]);
    let (status, ilog) = finish(intruder, &tmp.path().join("intruder.log"), Duration::from_secs(200));
    assert_eq!(status, Some(1), "{ilog}");
    assert!(ilog.contains("refused this worker") && ilog.contains("cookie"), "{ilog}");
    let (status, log) = finish(l, &tmp.path().join("learner.log"), Duration::from_secs(300));
    assert_eq!(status, Some(0), "learner: {log}");
    let run = json(&tmp.path().join("out").join("run-stage-0.json"));
    assert_eq!(run["remote"]["workers_joined"], 0, "{run}");
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls").join(name).to_str().unwrap().to_string()
}

/// Over TLS (test certificates from scripts/gen_test_tls.sh): a worker trusting the learner's CA
/// does the whole sampling; one trusting another CA, and one without TLS, are refused by name.
#[test]
fn workers_join_over_tls_and_an_untrusted_certificate_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_loopback_port();
    let (cert, key) = (fixture("learner.pem"), fixture("learner.key"));
    let l = learner(tmp.path(), port, ["0", "1"], &["--tls-cert", &cert, "--tls-key", &key]);
    let wary = worker(tmp.path(), port, "generator", "wary", &["--tls-ca", &fixture("other-ca.pem")]);
    let (status, wlog) = finish(wary, &tmp.path().join("wary.log"), Duration::from_secs(200));
    assert_eq!(status, Some(1), "{wlog}");
    assert!(wlog.contains("TLS handshake") && wlog.contains("--tls-ca"), "{wlog}");
    let plain = worker(tmp.path(), port, "generator", "plain", &[]);
    let (status, plog) = finish(plain, &tmp.path().join("plain.log"), Duration::from_secs(60));
    assert_eq!(status, Some(1), "{plog}");
    assert!(plog.contains("--tls-ca"), "{plog}");
    let trusted = worker(tmp.path(), port, "generator", "trusted", &["--tls-ca", &fixture("ca.pem")]);
    let (status, log) = finish(l, &tmp.path().join("learner.log"), Duration::from_secs(300));
    assert_eq!(status, Some(0), "learner: {log}");
    let (status, tlog) = finish(trusted, &tmp.path().join("trusted.log"), Duration::from_secs(20));
    assert_eq!(status, Some(0), "trusted: {tlog}");
    let out = tmp.path().join("out");
    let dropped = assert_every_prompt_trained_once_or_dropped_stale(&out, STEPS * BATCH_GROUPS);
    let run = json(&out.join("run-stage-0.json"));
    assert_eq!(run["groups_dropped_stale"], dropped, "{run}");
    assert_eq!(run["remote"]["workers_joined"], 1, "{run}");
    assert!(run["remote"]["groups_generated"].as_u64().unwrap() >= STEPS * BATCH_GROUPS, "{run}");
}

/// SIGTERM to a learner node with a remote generator attached: it checkpoints, tells the worker
/// the run is over and exits 75; `--resume` with a new worker finishes the stage, and across both
/// runs every prompt trains exactly once.
#[test]
fn a_stopped_learner_node_resumes_with_new_workers() {
    const LONG: u64 = 10;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = grpo_config(tmp.path());
    let (cfg, out) = (cfg.to_str().unwrap().to_string(), tmp.path().join("out"));
    let (steps, out_s) = (LONG.to_string(), out.to_str().unwrap().to_string());
    let node = |port: u16, resume: Option<&str>| {
        let addr = format!("127.0.0.1:{port}");
        let mut args = vec![
            "train",
            "--config",
            &cfg,
            "--out",
            &out_s,
            "--grpo-steps",
            &steps,
            "--listen",
            &addr,
            "--local-generators",
            "0",
            "--local-scorers",
            "1",
        ];
        args.extend(resume.map(|r| ["--resume", r]).into_iter().flatten());
        let mut c = Command::new(env!("CARGO_BIN_EXE_srlm"));
        c.env("CANDLE_NUM_THREADS", "1");
        Running::start(c, &args)
    };
    let port = free_loopback_port();
    let mut first = node(port, None);
    let early = worker(tmp.path(), port, "generator", "early", &[]);
    first.wait_for("grpo step    3/");
    first.signal("TERM");
    let (status, text) = first.finish();
    assert_eq!(status, Some(75), "{text}");
    assert!(text.contains("stopped by a signal during stage 0 (grpo)"), "{text}");
    let (status, elog) = finish(early, &tmp.path().join("early.log"), Duration::from_secs(30));
    assert_eq!(status, Some(0), "the worker should hear that the run is over: {elog}");
    let before = trained_prompts(&out);
    let ckpt = named_checkpoint(&text);
    let port = free_loopback_port();
    let resumed = node(port, Some(ckpt.to_str().unwrap()));
    let late = worker(tmp.path(), port, "generator", "late", &[]);
    let (status, text) = resumed.finish();
    assert_eq!(status, Some(0), "{text}");
    let (status, llog) = finish(late, &tmp.path().join("late.log"), Duration::from_secs(30));
    assert_eq!(status, Some(0), "{llog}");
    // The resumed stage's step series is the whole stage's: the steps before the stop, then the rest.
    let after = trained_prompts(&out);
    assert!(before.iter().all(|(id, n)| after.get(id) == Some(n)), "steps before the stop {before:?} lost from {after:?}");
    // Over both runs (the rollout log keeps what the checkpoint covers, then the rest).
    assert_every_prompt_trained_once_or_dropped_stale(&out, LONG * BATCH_GROUPS);
    assert!(out.join("stage-0-grpo/model.safetensors").is_file());
}
