//! Every setting is checked before work starts (issue 17): each bad value a user hit fails at
//! once with the file and key named, exit 1, no panic, no `--resume` hint (a config error is not
//! a learner failure), and nothing trained or written.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn srlm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_srlm")).args(args).env("CANDLE_NUM_THREADS", "1").output().unwrap()
}

/// stderr of a run that must fail cleanly and before any training.
fn refused(args: &[&str]) -> String {
    let out = srlm(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: expected exit 1, stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert!(!stderr.contains("--resume"), "a settings error is not resumable: {stderr}");
    assert!(!stderr.contains("held-out before training") && !stderr.contains("sft step"), "work started: {stderr}");
    stderr
}

fn embedded_default() -> String {
    String::from_utf8(srlm(&["train", "--print-default"]).stdout).unwrap()
}

/// The embedded default with `key = value` set in `[section]` (replacing the key's line there, or
/// added after the header); an empty section is the top level.
fn with(section: &str, key: &str, value: &str) -> String {
    let text = embedded_default();
    let header = format!("[{section}]\n");
    let start = if section.is_empty() { 0 } else { text.find(&header).unwrap_or_else(|| panic!("no [{section}]")) + header.len() };
    let end = text[start..].find("\n[").map_or(text.len(), |i| start + i + 1);
    let body = &text[start..end];
    let line = format!("{key} = {value}\n");
    let body = match body.lines().find(|l| l.starts_with(&format!("{key} = "))) {
        Some(old) => body.replacen(&format!("{old}\n"), &line, 1),
        None => format!("{line}{body}"),
    };
    format!("{}{body}{}", &text[..start], &text[end..])
}

/// Runs `srlm train` on `text` written to `dir/name`, expecting a refusal naming the file.
fn train_refused(dir: &Path, name: &str, text: &str, extra: &[&str]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let out = dir.join(format!("{name}-out"));
    let mut args = vec!["train", "--config", path.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend(extra);
    let stderr = refused(&args);
    assert!(!out.exists(), "{name}: {} was created before the settings were checked", out.display());
    stderr
}

#[test]
fn bad_values_in_every_section_name_the_file_and_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    // (section, key, value, the message after the file name)
    let cases = [
        ("grpo", "temperature", "0.0", "grpo.temperature = 0: must be a finite number > 0"),
        ("grpo", "temperature", "-1.0", "grpo.temperature = -1: must be a finite number > 0"),
        ("grpo", "temperature", "nan", "grpo.temperature = NaN: must be a finite number > 0"),
        ("grpo", "micro_batch_size", "0", "grpo.micro_batch_size = 0: must be at least 1"),
        ("grpo", "iterations", "0", "grpo.iterations = 0: must be at least 1"),
        ("grpo", "epsilon_low", "-1.0", "grpo.epsilon_low = -1: must be a finite number >= 0"),
        ("grpo", "lr", "nan", "grpo.lr = NaN: must be a finite number > 0"),
        ("grpo", "lr", "inf", "grpo.lr = inf: must be a finite number > 0"),
        ("runtime", "metrics_addr", "\"localhost:port\"", "runtime.metrics_addr = \"localhost:port\": "),
        ("data", "max_operand", "0", "data.max_operand = 0: must be in 1..="),
        ("grpo", "steps", "0", "grpo.steps = 0: must be at least 1"),
        ("sft", "epochs", "0", "sft.epochs = 0: must be at least 1"),
        ("sft", "max_len", "0", "sft.max_len = 0: must be at least 2"),
        ("sft", "token_budget", "0", "sft.token_budget = 0: must be at least 1"),
        ("grpo", "top_p", "0.0", "grpo.top_p = 0: must be in (0, 1]"),
        ("grpo", "top_p", "2.0", "grpo.top_p = 2: must be in (0, 1]"),
        ("grpo", "max_new_tokens", "0", "grpo.max_new_tokens = 0: must be at least 1"),
        ("eval", "samples", "0", "eval.samples = 0: must be at least 1"),
        ("eval", "temperature", "nan", "eval.temperature = NaN: must be a finite number >= 0"),
    ];
    for (i, (section, key, value, expected)) in cases.into_iter().enumerate() {
        let name = format!("bad{i}.toml");
        let stderr = train_refused(tmp.path(), &name, &with(section, key, value), &[]);
        assert!(stderr.contains(&format!("{name}: {expected}")), "[{section}] {key} = {value}: {stderr}");
    }
}

#[test]
fn grpo_steps_zero_on_the_command_line_is_refused() {
    let out = srlm(&["train", "--grpo-steps", "0", "--out", "/nonexistent/never"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("--grpo-steps"), "{stderr}");
}

#[test]
fn a_busy_metrics_port_is_found_before_the_sft_stage() {
    let tmp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let text = with("runtime", "metrics_addr", &format!("\"{addr}\""));
    let stderr = train_refused(tmp.path(), "busy.toml", &text, &[]);
    assert!(stderr.contains(&format!("runtime.metrics_addr = \"{addr}\": cannot listen there")), "{stderr}");
}

#[test]
fn set_edits_are_checked_like_the_files_own_keys() {
    let stderr = refused(&["train", "--set", "grpo.lr=nan", "--out", "/nonexistent/never"]);
    assert!(stderr.contains("<embedded default> with --set grpo.lr=nan: grpo.lr = NaN: must be a finite number > 0"), "{stderr}");
    let stderr = refused(&["train", "--set", "grpo.lrr=1e-5", "--out", "/nonexistent/never"]);
    assert!(stderr.contains("unknown key 'grpo.lrr'"), "{stderr}");
    let stderr = refused(&["train", "--set", "seed.x=1", "--out", "/nonexistent/never"]);
    assert!(stderr.contains("--set seed.x=1: 'seed.x': 'seed' is not a section"), "{stderr}");
}

#[test]
fn set_replaces_the_files_value_and_every_edit_applies() {
    let tmp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    // The file alone is refused for its lr; with both edits, only the busy port is left to refuse.
    let busy = format!("runtime.metrics_addr=\"{addr}\"");
    let stderr = train_refused(tmp.path(), "lr.toml", &with("grpo", "lr", "nan"), &["--set", "grpo.lr=1e-5", "--set", &busy]);
    assert!(!stderr.contains("grpo.lr = NaN"), "the file's lr was kept: {stderr}");
    assert!(stderr.contains(&format!("runtime.metrics_addr = \"{addr}\": cannot listen there")), "{stderr}");
}

/// A GSM8K-task config over `train`, with a model that is never reached.
fn gsm8k_config(train: &Path, extra: &str) -> String {
    format!(
        "stages = [\"sft\", \"grpo\"]\nout_dir = \"unused\"\n[model]\nsource = \"/nonexistent/model\"\n\
         [data]\ntask = \"gsm8k\"\ntrain = {train:?}\n[runtime]\nmetrics_addr = \"\"\n{extra}"
    )
}

#[test]
fn an_unparsable_gold_names_its_file_and_line_before_the_model_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let train = tmp.path().join("train.jsonl");
    let good = "{\"question\": \"1+1?\", \"answer\": \"1+1=2\\n#### 2\"}";
    std::fs::write(&train, format!("{good}\n{good}\n{{\"question\": \"2+2?\", \"answer\": \"four\"}}\n")).unwrap();
    let stderr = train_refused(tmp.path(), "gold.toml", &gsm8k_config(&train, ""), &[]);
    assert!(stderr.contains(&format!("data.train: {}:3: 'answer'", train.display())), "{stderr}");
    assert!(!stderr.contains("/nonexistent/model"), "the model loaded first: {stderr}");
}

#[test]
fn a_missing_kd_teacher_is_named_before_the_model_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let train = tmp.path().join("train.jsonl");
    std::fs::write(&train, "{\"question\": \"1+1?\", \"answer\": \"#### 2\"}\n").unwrap();
    let text = gsm8k_config(&train, "[kd]\nteacher = \"/nonexistent/teacher\"\n").replace("[\"sft\", \"grpo\"]", "[\"kd\"]");
    let stderr = train_refused(tmp.path(), "kd.toml", &text, &[]);
    assert!(stderr.contains("kd.teacher '/nonexistent/teacher'"), "{stderr}");
}

#[test]
fn an_sft_recipe_out_of_range_names_the_file_and_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = tmp.path().join("r.toml");
    std::fs::write(&recipe, "model = \"/nonexistent/m\"\ndata = \"d.jsonl\"\nformat = \"chat\"\noutput = \"o\"\ntoken_budget = 0\n")
        .unwrap();
    let stderr = refused(&["sft", "--config", recipe.to_str().unwrap()]);
    assert!(stderr.contains("r.toml: token_budget = 0: must be at least 1"), "{stderr}");
}

#[test]
fn generating_more_rows_than_memory_holds_is_refused_with_the_estimate() {
    let tmp = tempfile::tempdir().unwrap();
    let model = common::tiny_model_dir(tmp.path());
    let stderr = refused(&["generate", "--model", model.to_str().unwrap(), "--prompt", "1+1=", "--n", "100000000"]);
    assert!(stderr.contains("--n 100000000: 100000000 rows of up to ") && stderr.contains("lower --n or --max-new-tokens"), "{stderr}");
}

/// A question of several megabytes is refused at load with its line, before any tokenizer or
/// model sees it.
#[test]
fn an_over_long_eval_question_is_refused_at_load_with_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("test.jsonl");
    let long = "7".repeat(4 << 20);
    std::fs::write(
        &data,
        format!("{{\"question\": \"1+1?\", \"answer\": \"#### 2\"}}\n{{\"question\": \"{long}\", \"answer\": \"#### 7\"}}\n"),
    )
    .unwrap();
    let out = tmp.path().join("eval-out");
    let stderr = refused(&[
        "eval",
        "--model",
        "/nonexistent/model",
        "--benchmarks",
        "gsm8k",
        "--data",
        &format!("gsm8k={}", data.display()),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(stderr.contains(&format!("{}:2: question is 4194304 characters", data.display())), "{stderr}");
    assert!(!out.exists(), "the eval started");
}

/// The eval's own prompts are checked against the model's context before any problem runs.
#[test]
fn an_eval_prompt_longer_than_the_context_names_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let model = common::tiny_model_dir(tmp.path());
    let data = tmp.path().join("test.jsonl");
    // The tiny model's context is 512 positions; the character tokenizer spends one per digit.
    std::fs::write(
        &data,
        format!("{{\"question\": \"1+1?\", \"answer\": \"#### 2\"}}\n{{\"question\": \"{}\", \"answer\": \"#### 7\"}}\n", "7".repeat(600)),
    )
    .unwrap();
    let stderr = refused(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--benchmarks",
        "gsm8k",
        "--data",
        &format!("gsm8k={}", data.display()),
        "--out",
        tmp.path().join("eval-out").to_str().unwrap(),
        "--max-new-tokens",
        "4",
    ]);
    assert!(stderr.contains(&format!("{}: gsm8k problem on line 2: its prompt is ", data.display())), "{stderr}");
    assert!(stderr.contains("the model's context holds 512"), "{stderr}");
}

#[test]
fn groups_too_large_for_memory_are_refused_before_the_first_evaluation() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("huge.toml");
    // No metrics endpoint: a training run on this machine may hold the default port, and its
    // check comes first.
    let text = with("runtime", "group_size", "100000000000").replace("[runtime]\n", "[runtime]\nmetrics_addr = \"\"\n");
    std::fs::write(&path, text).unwrap();
    let out = tmp.path().join("run");
    let stderr = refused(&["train", "--config", path.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(stderr.contains("runtime.group_size × groups_in_flight × generators, grpo.max_new_tokens: 100000000000 rows"), "{stderr}");
    let stages = std::fs::read_dir(&out)
        .map_or(0, |d| d.filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("stage-")).count());
    assert_eq!(stages, 0, "a stage ran");
}
