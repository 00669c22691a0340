//! `srlm eval` and `srlm grade` end to end: output files, resuming without regeneration, and
//! bad input failing with the file and line named.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{fixtures, real_model, SMOL_GGUF};
use serde_json::{json, Value};

fn srlm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_srlm")).args(args).output().unwrap()
}

fn stderr_of_failure(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "expected exit 1, stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    stderr
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn grade_keeps_input_order_and_reports_null_extractions() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let text = [
        json!({"benchmark": "gsm8k", "completion": "The answer is \\boxed{72}.", "gold": "48 + 24 = 72\n#### 72"}),
        json!({"benchmark": "math500", "completion": "I cannot tell.", "gold": "\\frac{1}{2}"}),
        json!({"benchmark": "olympiadbench", "completion": "\\boxed{(1, 2)}", "gold": ["$(2,1)$"]}),
        json!({"benchmark": "math500", "completion": "so \\boxed{0.5}", "gold": "\\dfrac{1}{2}", "id": 7}),
    ]
    .iter()
    .map(|v| v.to_string() + "\n")
    .collect::<String>();
    std::fs::write(&input, text).unwrap();
    let out = srlm(&["grade", "--input", s(&input)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("2/4 correct (50.0%)"), "{}", String::from_utf8_lossy(&out.stderr));
    let graded: Vec<Value> = String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let verdicts: Vec<(Value, Value)> = graded.iter().map(|g| (g["extracted"].clone(), g["correct"].clone())).collect();
    assert_eq!(
        verdicts,
        [(json!("72"), json!(true)), (Value::Null, json!(false)), (json!("(1, 2)"), json!(false)), (json!("0.5"), json!(true))]
    );
    assert_eq!(graded[3]["id"], json!(7));

    let output = dir.path().join("out.jsonl");
    let out = srlm(&["grade", "--input", s(&input), "--output", s(&output)]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    assert_eq!(lines(&output), graded);
}

#[test]
fn grade_answers_blank_lines_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let line = json!({"benchmark": "gsm8k", "completion": "\\boxed{72}", "gold": "#### 72"}).to_string();
    std::fs::write(&input, format!("{line}\n\n   \n{line}\n")).unwrap();
    let out = srlm(&["grade", "--input", s(&input)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let graded: Vec<Value> = String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let verdicts: Vec<(Value, Value)> = graded.iter().map(|g| (g["extracted"].clone(), g["correct"].clone())).collect();
    let no_answer = (Value::Null, json!(false));
    assert_eq!(verdicts, [(json!("72"), json!(true)), no_answer.clone(), no_answer, (json!("72"), json!(true))]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("2/2 correct (100.0%); 2 blank line(s) written as no answer"), "{stderr}");
}

#[test]
fn grade_names_the_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"benchmark\": \"gsm8k\", \"completion\": \"1\", \"gold\": \"#### 1\"}\n{\"benchmark\": \"gsm8k\", \"compl")
        .unwrap();
    let err = stderr_of_failure(&srlm(&["grade", "--input", s(&input)]));
    assert!(err.contains("in.jsonl:2: invalid JSON"), "{err}");
    std::fs::write(&input, "{\"benchmark\": \"mmlu\", \"completion\": \"1\", \"gold\": \"1\"}\n").unwrap();
    let output = dir.path().join("out.jsonl");
    let err = stderr_of_failure(&srlm(&["grade", "--input", s(&input), "--output", s(&output)]));
    assert!(err.contains("in.jsonl:1: unknown benchmark 'mmlu'"), "{err}");
    assert!(!output.exists(), "nothing is written on failure");
}

#[test]
fn eval_bad_input_fails_before_loading_the_model() {
    let dir = tempfile::tempdir().unwrap();
    // The tiny fixture has no tokenizer: reaching the model load would fail differently.
    let model = fixtures().join("tiny/qwen2");
    let out_dir = dir.path().join("out");
    let eval = |extra: &[&str]| {
        let mut args = vec!["eval", "--model", s(&model), "--out", s(&out_dir)];
        args.extend_from_slice(extra);
        stderr_of_failure(&srlm(&args))
    };
    let err = eval(&["--benchmarks", "gsm8k,mmlu", "--data-dir", s(dir.path())]);
    assert!(err.contains("unknown benchmark 'mmlu'"), "{err}");
    let err = eval(&["--benchmarks", "math500", "--data-dir", s(&dir.path().join("nowhere"))]);
    assert!(err.contains("math500 data file") && err.contains("eval/math500.jsonl") && err.contains("--data-dir"), "{err}");
    let no_answer = dir.path().join("no_answer.jsonl");
    std::fs::write(&no_answer, "{\"problem\": \"p1\", \"answer\": \"1\"}\n{\"problem\": \"p2\"}\n").unwrap();
    let err = eval(&["--benchmarks", "math500", "--data", &format!("math500={}", s(&no_answer))]);
    assert!(err.contains("no_answer.jsonl:2: no 'answer' field"), "{err}");
    let cut = dir.path().join("cut.jsonl");
    std::fs::write(&cut, "{\"question\": \"q\", \"answer\": \"#### 1\"}\n{\"question\": \"q2\", \"ans").unwrap();
    let err = eval(&["--benchmarks", "gsm8k", "--data", &format!("gsm8k={}", s(&cut))]);
    assert!(err.contains("cut.jsonl:2: invalid JSON"), "{err}");
    let err = eval(&["--benchmarks", "gsm8k", "--data-dir", s(dir.path()), "--max-new-tokens", "40000"]);
    assert!(err.contains("--max-new-tokens"), "{err}");
    // `--samples` is `--k` under the train config's name.
    let err = eval(&["--benchmarks", "gsm8k", "--data-dir", s(dir.path()), "--samples", "0"]);
    assert!(err.contains("--k (--samples) must be at least 1"), "{err}");
    // Clap rejects the value itself (usage error, exit 2).
    let out = srlm(&["eval", "--model", s(&model), "--format", "xml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("unknown prompt format 'xml'"), "{err}");
}

struct Run {
    out: PathBuf,
    stderr: String,
}

fn eval_smol(model: &Path, out: &Path, extra: &[&str]) -> Run {
    let data = format!("gsm8k={}", s(&fixtures().join("data/gsm8k_head.parquet")));
    let mut args = vec![
        "eval",
        "--model",
        s(model),
        "--benchmarks",
        "gsm8k",
        "--data",
        &data,
        "--limit",
        "2",
        "--max-new-tokens",
        "32",
        "--greedy",
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    let output = srlm(&args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    Run { out: out.to_path_buf(), stderr }
}

fn report(run: &Run) -> Value {
    serde_json::from_str(&std::fs::read_to_string(run.out.join("report.json")).unwrap()).unwrap()
}

#[test]
fn eval_writes_report_and_resumes_without_regenerating() {
    let Some(model) = real_model(SMOL_GGUF) else { return };
    let dir = tempfile::tempdir().unwrap();
    let first = eval_smol(&model, &dir.path().join("a"), &[]);
    let log = first.out.join("completions.jsonl");
    let records = lines(&log);
    assert_eq!(records.len(), 2);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["benchmark"], json!("gsm8k"));
        assert_eq!(r["index"], json!(i));
        assert!(r["tokens"].as_u64().unwrap() <= 32);
        // The logged verdict is the checker's verdict on the logged completion.
        let regraded = srlm::eval::regrade_line(r).unwrap();
        assert_eq!((&regraded["extracted"], &regraded["correct"]), (&r["extracted"], &r["correct"]));
    }
    // Each line records the prompt as rendered: the question in the boxed format through the
    // model's own chat template (what `srlm train` with format = "boxed" renders too).
    let loaded = srlm::model::LoadedModel::load(s(&model), &candle_core::Device::Cpu, candle_core::DType::F32).unwrap();
    let template = loaded.tokenizer.chat_template().unwrap();
    let questions = srlm::data::read_records(&fixtures().join("data/gsm8k_head.parquet")).unwrap();
    for (r, (_, q)) in records.iter().zip(questions.rows.iter()) {
        let want = srlm::data::PromptFormat::Boxed.render(&template, q["question"].as_str().unwrap()).unwrap();
        assert_eq!(r["prompt"], json!(want));
    }
    let rep = report(&first);
    let b = &rep["benchmarks"][0];
    assert_eq!((b["n"].clone(), b["k"].clone(), b["resumed"].clone()), (json!(2), json!(1), json!(0)));
    let correct = records.iter().filter(|r| r["correct"] == json!(true)).count();
    assert_eq!(b["accuracy"], json!(correct as f64 / 2.0));
    assert_eq!(rep["settings"]["max_new_tokens"], json!(32));
    assert_eq!(rep["settings"]["format"], json!("boxed"));

    // Interrupt: the second problem's line was cut mid-write.
    let text = std::fs::read_to_string(&log).unwrap();
    let first_line = text.lines().next().unwrap().to_string();
    std::fs::write(&log, format!("{first_line}\n{}", &text.lines().nth(1).unwrap()[..20])).unwrap();
    let resumed = eval_smol(&model, &first.out, &[]);
    let after = lines(&log);
    assert_eq!(after.len(), 2);
    // The first problem was not regenerated: its line (with its timing) is byte-identical.
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().next().unwrap(), first_line);
    assert_eq!(after[1]["completion"], records[1]["completion"], "greedy regeneration repeats itself");
    assert_eq!(report(&resumed)["benchmarks"][0]["resumed"], json!(1));

    // Nothing left to do: nothing changes.
    let before = std::fs::read_to_string(&log).unwrap();
    let again = eval_smol(&model, &first.out, &[]);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), before);
    assert_eq!(report(&again)["benchmarks"][0]["resumed"], json!(2));
    assert!(again.stderr.contains("gsm8k:"), "{}", again.stderr);

    // Other settings in the same folder are refused.
    let out = srlm(&[
        "eval",
        "--model",
        s(&model),
        "--benchmarks",
        "gsm8k",
        "--data",
        &format!("gsm8k={}", s(&fixtures().join("data/gsm8k_head.parquet"))),
        "--limit",
        "2",
        "--max-new-tokens",
        "64",
        "--greedy",
        "--out",
        s(&first.out),
    ]);
    let err = stderr_of_failure(&out);
    assert!(err.contains("max_new_tokens differs"), "{err}");

    // One prompt at a time gives the same greedy completions as the batch of two.
    let alone = eval_smol(&model, &dir.path().join("b"), &["--batch-size", "1"]);
    let alone: Vec<Value> = lines(&alone.out.join("completions.jsonl"));
    for (a, b) in alone.iter().zip(&after) {
        assert_eq!(a["completion"], b["completion"]);
    }
}
