//! `srlm compare BEFORE AFTER`: two `srlm eval` folders, problem by problem (McNemar's test).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use srlm::eval::{pair_up, paired_markdown, summarise_pairs, write_atomic, EvalRun};

#[derive(Args)]
pub struct CompareArgs {
    /// The `srlm eval --out` folder of the model before training.
    before: PathBuf,
    /// The `srlm eval --out` folder of the model after training (same problems and settings).
    after: PathBuf,
    /// Also write every pair and the per-benchmark tables as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: CompareArgs) -> Result<()> {
    let before = EvalRun::read(&args.before)?;
    let after = EvalRun::read(&args.after)?;
    let pairs = pair_up(&before, &after)?;
    let summaries = summarise_pairs(&pairs);
    print!("{}", paired_markdown(&before, &after, &pairs, &summaries));
    if let Some(path) = &args.out {
        let report = json!({ "before": before.settings, "after": after.settings, "benchmarks": summaries, "pairs": pairs });
        write_atomic(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    Ok(())
}
