//! `srlm plot` end to end: the charts a training run (an SFT stage, then GRPO) and two evaluation
//! reports give, as real PNG files with each stage's trend printed, and a directory with nothing to plot refused by name.

use std::path::Path;
use std::process::Command;

use serde_json::json;

fn srlm(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_srlm")).args(args).output().unwrap()
}

fn report(accuracy: f64) -> serde_json::Value {
    let bench = |name: &str| {
        json!({"benchmark": name, "data_file": "d.jsonl", "n": 10, "k": 1, "correct": (accuracy * 10.0) as u64,
               "accuracy": accuracy, "ci95": [accuracy / 2.0, (accuracy + 0.2).min(1.0)], "mean_completion_tokens": 100.0,
               "truncated": 0, "generation_seconds": 1.0, "wall_seconds": 1.0, "resumed": 0})
    };
    json!({"settings": {"model": "m", "format": "boxed", "k": 1, "greedy": true, "temperature": 0.6, "top_p": 0.95,
                        "max_new_tokens": 64, "seed": 0},
           "benchmarks": [bench("gsm8k"), bench("math500")]})
}

fn is_png(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| b.len() > 1000 && b.starts_with(b"\x89PNG\r\n\x1a\n"))
}

#[test]
fn a_run_and_two_reports_give_curves_and_one_bar_chart() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    let steps: Vec<_> = (1..=6)
        .map(|i| {
            json!({"step": i, "loss": 0.1, "kl": 0.01 * i as f64, "clip_fraction": 0.0, "accuracy": 0.1 * i as f64,
                        "rewards": [["accuracy", 0.1 * i as f64], ["format", 0.8], ["total", 0.3]],
                        "completions": 32, "tokens": 3200, "max_staleness": 1})
        })
        .collect();
    std::fs::write(run.join("steps-stage-1.json"), serde_json::to_string(&steps).unwrap()).unwrap();
    // An SFT stage before it records no rewards, sampling or staleness: its loss is the trend.
    let sft: Vec<_> = [2.0, 1.6, 1.2, 1.0]
        .iter()
        .enumerate()
        .map(|(i, loss)| json!({"step": i + 1, "loss": loss, "grad_norm": 1.0, "lr": 1e-5, "completions": 4, "tokens": 600}))
        .collect();
    std::fs::write(run.join("steps-stage-0.json"), serde_json::to_string(&sft).unwrap()).unwrap();
    for (name, acc) in [("before", 0.3), ("after", 0.45)] {
        std::fs::create_dir(dir.path().join(name)).unwrap();
        std::fs::write(dir.path().join(name).join("report.json"), report(acc).to_string()).unwrap();
    }
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let out = srlm(&["plot", &p("run"), &p("before"), &p("after"), "--window", "2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plots = run.join("plots");
    for metric in ["reward", "accuracy", "format", "kl", "clip", "length", "staleness", "loss"] {
        assert!(is_png(&plots.join(format!("stage-1-{metric}.png"))), "{metric}");
    }
    assert!(is_png(&plots.join("eval.png")));
    for metric in ["loss", "length"] {
        assert!(is_png(&plots.join(format!("stage-0-{metric}.png"))), "sft {metric}");
    }
    for metric in ["reward", "kl", "staleness"] {
        assert!(!plots.join(format!("stage-0-{metric}.png")).exists(), "sft {metric}: nothing recorded to draw");
    }
    // Eleven files, then each stage's trend: a header and one line per reward, or the loss's.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 11 + 2 + 4, "{stdout}");
    let words = |line: &str| line.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert!(lines[11].contains("stage-0: mean loss over the first and the last 2 of 4 steps"), "{stdout}");
    assert_eq!(words(lines[12]), ["loss", "1.800", "->", "1.100", "-0.700"]);
    assert!(lines[13].contains("stage-1: mean reward over the first and the last 2 of 6 steps"), "{stdout}");
    // Accuracy 0.1 · step: (0.1 + 0.2) / 2 at the start, (0.5 + 0.6) / 2 at the end.
    assert_eq!(words(lines[14]), ["accuracy", "0.150", "->", "0.550", "+0.400"]);
    assert_eq!(words(lines[16]), ["total", "0.300", "->", "0.300", "+0.000"]);

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = srlm(&["plot", empty.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("empty") && err.contains("nothing to plot"), "{err}");
    // A damaged report names its file.
    std::fs::write(dir.path().join("before/report.json"), "{").unwrap();
    let out = srlm(&["plot", &p("before")]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("report.json"));
}
