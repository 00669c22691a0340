//! `srlm grade`: re-grade completions with the current checker, one output line per input line.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use srlm::eval::{regrade_line, write_atomic};

#[derive(Args)]
pub struct GradeArgs {
    /// JSONL of {"benchmark", "completion", "gold"} lines, or an eval completions.jsonl.
    #[arg(long)]
    input: PathBuf,
    /// Where to write the graded JSONL (atomically); stdout when absent.
    #[arg(long)]
    output: Option<PathBuf>,
}

pub fn run(args: GradeArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let mut out = String::new();
    let (mut lines, mut correct, mut blank) = (0usize, 0usize, 0usize);
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            // Still one output line, so that output line N grades input line N.
            blank += 1;
            out.push_str(&serde_json::to_string(&no_answer())?);
            out.push('\n');
            continue;
        }
        lines += 1;
        let at = || format!("{}:{}", args.input.display(), i + 1);
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| anyhow!("{}: invalid JSON ({e})", at()))?;
        let graded = regrade_line(&value).map_err(|e| anyhow!("{}: {e}", at()))?;
        correct += usize::from(graded["correct"] == serde_json::Value::Bool(true));
        out.push_str(&serde_json::to_string(&graded)?);
        out.push('\n');
    }
    match &args.output {
        Some(path) => write_atomic(path, out.as_bytes())?,
        None => std::io::stdout().lock().write_all(out.as_bytes())?,
    }
    // The summary goes to stderr, so stdout stays one graded line per input line.
    let share = if lines > 0 { 100.0 * correct as f64 / lines as f64 } else { 0.0 };
    let blanks = match blank {
        0 => String::new(),
        n => format!("; {n} blank line(s) written as no answer"),
    };
    eprintln!("{correct}/{lines} correct ({share:.1}%){blanks}");
    Ok(())
}

/// The graded line of a blank input line: nothing to extract, so not correct.
fn no_answer() -> serde_json::Value {
    serde_json::json!({"extracted": null, "correct": false})
}
