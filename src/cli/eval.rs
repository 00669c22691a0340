//! `srlm eval`: benchmarks → completions.jsonl (resumable) and report.json in --out.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use srlm::data::{benchmark_file, load_problems, LoadOptions, PromptFormat};
use srlm::eval::{check_settings, summarise, write_atomic, CompletionLog, EvalError, EvalReport, EvalSettings, Evaluator, Progress};
use srlm::reward::Benchmark;
use srlm::sampling::SamplingParams;
use srlm::train::progress::Pace;

use super::ModelArgs;

/// The seed's longest budget.
const MAX_NEW_TOKENS_LIMIT: usize = 32_768;

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Comma-separated: gsm8k, math500, minerva, olympiadbench, amc23.
    #[arg(long, value_delimiter = ',', default_value = "gsm8k,math500,minerva,olympiadbench,amc23")]
    benchmarks: Vec<String>,
    /// Only the first N problems of each benchmark.
    #[arg(long)]
    limit: Option<usize>,
    /// Samples per problem (pass@1 is their mean); `--samples` is the same option, named as
    /// the train config's `[eval] samples`.
    #[arg(long, visible_alias = "samples", default_value_t = 1)]
    k: usize,
    /// Always take the most likely token.
    #[arg(long, conflicts_with_all = ["temperature", "top_p"])]
    greedy: bool,
    #[arg(long, default_value_t = 0.6)]
    temperature: f32,
    #[arg(long = "top-p", default_value_t = 0.95)]
    top_p: f32,
    #[arg(long = "max-new-tokens", default_value_t = 2048)]
    max_new_tokens: usize,
    /// Prompt format: boxed or r1.
    #[arg(long, default_value = "boxed")]
    format: PromptFormat,
    /// Folder laid out like shared/data (gsm8k/test.jsonl, eval/math500.jsonl, ...).
    /// Default: $SRLM_DATA, else ./data.
    #[arg(long = "data-dir")]
    data_dir: Option<PathBuf>,
    /// A benchmark's file instead of its place under --data-dir, as NAME=PATH (repeatable;
    /// JSONL or Parquet in the benchmark's published layout).
    #[arg(long = "data", value_name = "NAME=PATH")]
    data: Vec<String>,
    /// Output folder: completions.jsonl, report.json, settings.json. Rerunning resumes.
    #[arg(long, default_value = "eval-out")]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Problems decoding together (each a group of k rows); a finished problem's rows go to the
    /// next one at once (continuous batching).
    #[arg(long = "batch-size", default_value_t = 8)]
    batch_size: usize,
}

pub fn run(args: EvalArgs) -> Result<()> {
    for (name, value) in [("--k (--samples)", Some(args.k)), ("--batch-size", Some(args.batch_size)), ("--limit", args.limit)] {
        if value == Some(0) {
            bail!("{name} must be at least 1");
        }
    }
    if args.max_new_tokens == 0 || args.max_new_tokens > MAX_NEW_TOKENS_LIMIT {
        bail!("--max-new-tokens must be in 1..={MAX_NEW_TOKENS_LIMIT}, got {}", args.max_new_tokens);
    }
    SamplingParams { temperature: args.temperature, top_p: args.top_p, top_k: 0, greedy: args.greedy }.validate()?;
    let files = data_files(&args)?;
    let settings = EvalSettings {
        model: args.model.model.clone(),
        adapter: args.model.adapter.as_ref().map(|d| d.display().to_string()),
        format: args.format,
        k: args.k,
        greedy: args.greedy,
        temperature: args.temperature,
        top_p: args.top_p,
        max_new_tokens: args.max_new_tokens,
        seed: args.seed,
    };
    // Every data file loads before the model does, so bad data fails in seconds.
    let mut sets = Vec::new();
    for (bench, path) in files {
        let mut problems = load_problems(bench, &path, &LoadOptions::default())?.problems;
        problems.truncate(args.limit.unwrap_or(usize::MAX));
        sets.push((bench, path, problems));
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    check_settings(&args.out.join("settings.json"), &settings)?;
    let mut log = CompletionLog::open(&args.out.join("completions.jsonl"), args.k)?;
    let loaded = args.model.load()?;
    let model = loaded.inference_model()?;
    let evaluator = Evaluator { model: &model, tokenizer: &loaded.tokenizer, settings: &settings, batch_size: args.batch_size };
    let mut report = EvalReport { settings: settings.clone(), benchmarks: Vec::new() };
    for (bench, path, problems) in sets {
        let start = Instant::now();
        let bar = progress_bar(bench, problems.len());
        let mut first = None;
        let (records, resumed) = evaluator.run(&problems, &mut log, |p| show(&bar, bench, p, &mut first)).map_err(|e| match e {
            EvalError::PromptTooLong { .. } => anyhow!("{}: {e}", path.display()),
            other => other.into(),
        })?;
        bar.finish_and_clear();
        let summary = summarise(bench, path.display().to_string(), args.format, &records, args.k, start.elapsed().as_secs_f64(), resumed);
        eprintln!(
            "{bench}: {:.1}% ({}/{} samples, 95% CI {:.1}–{:.1}%){}, {:.0} tokens/completion, {:.0}s",
            100.0 * summary.accuracy,
            summary.correct,
            summary.n * summary.k,
            100.0 * summary.ci95[0],
            100.0 * summary.ci95[1],
            summary.format_compliance.map(|f| format!(", {} format {:.1}%", args.format, 100.0 * f)).unwrap_or_default(),
            summary.mean_completion_tokens,
            summary.wall_seconds
        );
        report.benchmarks.push(summary);
        // Written after every benchmark, so a later failure keeps the earlier results.
        write_atomic(&args.out.join("report.json"), serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// Each requested benchmark with its data file, which must exist.
fn data_files(args: &EvalArgs) -> Result<Vec<(Benchmark, PathBuf)>> {
    let mut explicit = Vec::new();
    for spec in &args.data {
        let (name, path) = spec.split_once('=').with_context(|| format!("--data '{spec}': expected NAME=PATH"))?;
        explicit.push((name.parse::<Benchmark>()?, PathBuf::from(path)));
    }
    let dir = args.data_dir.clone().or_else(|| std::env::var_os("SRLM_DATA").map(PathBuf::from)).unwrap_or_else(|| PathBuf::from("data"));
    let mut benches: Vec<Benchmark> = Vec::new();
    for name in args.benchmarks.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let bench: Benchmark = name.parse()?;
        if !benches.contains(&bench) {
            benches.push(bench);
        }
    }
    let mut files = Vec::new();
    for bench in benches {
        let path = explicit.iter().find(|(b, _)| *b == bench).map(|(_, p)| p.clone()).unwrap_or_else(|| benchmark_file(&dir, bench));
        check_exists(&path, bench, &dir)?;
        files.push((bench, path));
    }
    if files.is_empty() {
        bail!("--benchmarks names no benchmark");
    }
    Ok(files)
}

fn check_exists(path: &Path, bench: Benchmark, dir: &Path) -> Result<()> {
    if !path.is_file() {
        bail!(
            "{bench} data file {} not found: pass --data-dir (a folder laid out like shared/data, currently {}), \
             set SRLM_DATA, or give --data {bench}=PATH",
            path.display(),
            dir.display()
        );
    }
    Ok(())
}

/// A bar with the running accuracy, drawn only when stderr is a terminal.
fn progress_bar(bench: Benchmark, total: usize) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
    let bar = ProgressBar::with_draw_target(Some(total as u64), target);
    if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(bench.name());
    bar
}

fn show(bar: &ProgressBar, bench: Benchmark, p: Progress, first: &mut Option<(usize, Pace)>) {
    bar.set_position(p.done as u64);
    let accuracy = 100.0 * p.correct as f64 / p.samples.max(1) as f64;
    if p.samples > 0 {
        bar.set_message(format!("acc {accuracy:.1}%"));
    }
    // The first report is what the completion log already held; without a terminal, a line
    // every tenth of the way (and at the end) stands in for the bar.
    let (resumed, pace) = first.get_or_insert_with(|| (p.done, Pace::start()));
    let resumed = *resumed;
    if p.done == resumed {
        if resumed > 0 {
            eprintln!("{bench}: resuming, {resumed}/{} problems already in the completion log", p.total);
        }
        return;
    }
    if bar.is_hidden() && pace.passed_a_mark(p.done, p.total) {
        let pace = pace.note(p.done - resumed, p.total - resumed);
        eprintln!("{bench}: {}/{} problems, accuracy {accuracy:.1}% so far ({pace})", p.done, p.total);
    }
}
