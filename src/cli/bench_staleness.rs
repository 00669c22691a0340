//! `srlm bench staleness`: one GRPO workload run with max_staleness 0, 1 and 2 on split cores
//! (generator pinned to core 0, learner to core 1, as dedicated devices would be), then
//! synchronously with both cores in each phase; steps per minute, busy fractions and reward
//! progress side by side (issue 5, acceptance 5).
//!
//! Every mode is a child `srlm train` process on a recipe derived from one base recipe: candle
//! sizes its CPU thread pools once per process (the element-wise pool from CANDLE_NUM_THREADS,
//! gemm's rayon pool from RAYON_NUM_THREADS), so modes with different thread counts cannot share
//! one process. Stages before GRPO (the SFT warm-up) run once, and every mode starts from their
//! weights.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use clap::{Args, ValueEnum};
use toml::Value;

use super::bench_staleness_report::{markdown_table, ModeLabel, ModeResult};
use super::recipe_edit::Recipe;

/// The bench's own workload: the embedded default's tiny model and arithmetic task, with the
/// GRPO step tuned so that generation and learning cost about the same.
const BENCH_RECIPE: &str = include_str!("../../configs/bench_staleness.toml");

#[derive(Args)]
pub struct StalenessBench {
    /// A `srlm train` recipe with a grpo stage; configs/bench_staleness.toml (embedded) when absent.
    #[arg(long)]
    config: Option<PathBuf>,
    /// GRPO steps per mode (the recipe's grpo.steps when absent).
    #[arg(long)]
    steps: Option<u64>,
    /// The modes, run in this order.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "s0,s1,s2,sync")]
    modes: Vec<ModeName>,
    /// Change a recipe key for every mode, e.g. `--set runtime.group_size=8` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Start every mode from this checkpoint (HF dir or .gguf) instead of running the recipe's
    /// stages before GRPO.
    #[arg(long)]
    start_from: Option<PathBuf>,
    /// Recipes, logs and per-mode run files go here.
    #[arg(long, default_value = "runs/bench-staleness")]
    out: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeName {
    /// max_staleness 0 (lockstep), generator on core 0, learner on core 1.
    S0,
    /// max_staleness 1, generator on core 0, learner on core 1.
    S1,
    /// max_staleness 2, generator on core 0, learner on core 1.
    S2,
    /// Synchronous (max_staleness 0), no pinning, two threads for candle in each phase.
    Sync,
}

/// How one mode runs: the staleness bound, where the roles run, and candle's thread count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    pub name: &'static str,
    pub max_staleness: u64,
    pub split_cores: bool,
    pub threads: usize,
}

impl ModeName {
    pub fn mode(self) -> Mode {
        let split = |name, max_staleness| Mode { name, max_staleness, split_cores: true, threads: 1 };
        match self {
            ModeName::S0 => split("s0-split", 0),
            ModeName::S1 => split("s1-split", 1),
            ModeName::S2 => split("s2-split", 2),
            ModeName::Sync => Mode { name: "sync-2core", max_staleness: 0, split_cores: false, threads: 2 },
        }
    }
}

pub fn run(b: StalenessBench) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let modes: Vec<Mode> = b.modes.iter().map(|m| m.mode()).collect();
    ensure!(
        cores >= 2 || modes.iter().all(|m| !m.split_cores),
        "split-core modes pin to cores 0 and 1, and this machine shows {cores} core(s)"
    );
    let mut base = match &b.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            Recipe::parse(&text, &path.display().to_string())?
        }
        None => Recipe::parse(BENCH_RECIPE, "configs/bench_staleness.toml (embedded)")?,
    };
    base.apply(&b.sets)?;
    if let Some(steps) = b.steps {
        base.set("grpo.steps", Value::Integer(i64::try_from(steps).context("--steps is too large")?))?;
    }
    std::fs::create_dir_all(&b.out).with_context(|| format!("creating {}", b.out.display()))?;
    let cfg = base.write_checked(&b.out.join("recipe.toml"))?;
    let stages = base.stages();
    let grpo = stages.iter().position(|s| s == "grpo").context("the recipe has no grpo stage to benchmark")?;
    let load_start = load_average()?;
    let started = Instant::now();

    let start_from = match (&b.start_from, grpo) {
        (Some(dir), _) => Some(dir.clone()),
        (None, 0) => None,
        (None, _) => Some(warm_up(&base, &stages[..grpo], &b.out.join("warmup"))?),
    };
    eprintln!(
        "workload: {} steps of {} groups × {} completions, ≤ {} new tokens, micro-batch {}; {} core(s); load average {load_start}",
        cfg.grpo.steps,
        cfg.runtime.pipeline.batch_groups,
        cfg.runtime.pipeline.group_size,
        cfg.grpo.max_new_tokens(),
        cfg.grpo.algo.micro_batch_size,
        cores
    );
    // Queues that hold every batch the largest bound lets be in flight, in every mode: the
    // staleness bound, not the queue capacity, then limits how far generation runs ahead.
    let most_stale = modes.iter().map(|m| m.max_staleness as usize).max().unwrap_or(0);
    let capacity = cfg.runtime.pipeline.batch_groups * (most_stale + 1);
    let queues =
        Queues { rollout: cfg.runtime.pipeline.rollout_capacity.max(capacity), scored: cfg.runtime.pipeline.scored_capacity.max(capacity) };
    let mut rows = Vec::new();
    for mode in &modes {
        let dir = b.out.join(mode.name);
        let recipe = mode_recipe(&base, mode, queues, &dir, start_from.as_deref())?;
        recipe.write_checked(&dir.join("recipe.toml"))?;
        for name in ["run-stage-0.json", "steps-stage-0.json"] {
            // A previous bench in the same folder must not pass for this one's result.
            let path = dir.join(name);
            if path.exists() {
                std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            }
        }
        eprintln!("{}: running (log: {})", mode.name, dir.join("train.log").display());
        run_child(&dir, mode.threads)?;
        let row = ModeResult::read(&dir, 0, ModeLabel { name: mode.name, threads: mode.threads, split_cores: mode.split_cores })?;
        eprintln!("{}: {:.1} steps/min", mode.name, row.steps_per_min);
        rows.push(row);
    }

    println!("{}", markdown_table(&rows, ModeName::S0.mode().name, ModeName::Sync.mode().name));
    println!(
        "workload: {} steps of {} groups × {} completions, ≤ {} new tokens, micro-batch {}, queues {}/{} groups, start {}; load average before {load_start}, after {}; {:.0} s in all",
        cfg.grpo.steps,
        cfg.runtime.pipeline.batch_groups,
        cfg.runtime.pipeline.group_size,
        cfg.grpo.max_new_tokens(),
        cfg.grpo.algo.micro_batch_size,
        queues.rollout,
        queues.scored,
        start_from.as_ref().map_or(cfg.model.source.clone(), |p| p.display().to_string()),
        load_average()?,
        started.elapsed().as_secs_f64()
    );
    for r in &rows {
        println!("{}", serde_json::to_string(r)?);
    }
    Ok(())
}

/// The recipe of one mode: only the GRPO stage, from the warmed-up weights, with the mode's
/// staleness and placement, and without the metrics endpoint or rollout logs.
#[derive(Debug, Clone, Copy)]
struct Queues {
    rollout: usize,
    scored: usize,
}

fn mode_recipe(base: &Recipe, mode: &Mode, queues: Queues, dir: &Path, start_from: Option<&Path>) -> Result<Recipe> {
    let mut r = Recipe { table: base.table.clone() };
    r.set("stages", Value::Array(vec![Value::String("grpo".into())]))?;
    r.set("out_dir", Value::String(dir.display().to_string()))?;
    if let Some(start) = start_from {
        r.set("model.source", Value::String(start.display().to_string()))?;
    }
    r.set("runtime.max_staleness", Value::Integer(mode.max_staleness as i64))?;
    r.set("runtime.generators", Value::Integer(1))?;
    r.set("runtime.rollout_capacity", Value::Integer(queues.rollout as i64))?;
    r.set("runtime.scored_capacity", Value::Integer(queues.scored as i64))?;
    r.set("runtime.metrics_addr", Value::String(String::new()))?;
    r.set("runtime.log_rollouts_every", Value::Integer(0))?;
    r.set("runtime.checkpoint_every", Value::Integer(0))?;
    if mode.split_cores {
        r.set("runtime.generator_cores", Value::Array(vec![Value::Integer(0)]))?;
        r.set("runtime.learner_core", Value::Integer(1))?;
    } else {
        r.set("runtime.generator_cores", Value::Array(Vec::new()))?;
        r.remove("runtime", "learner_core");
    }
    Ok(r)
}

/// Runs the stages before GRPO once (both cores) and returns the checkpoint the last one wrote.
fn warm_up(base: &Recipe, stages: &[String], dir: &Path) -> Result<PathBuf> {
    let mut r = Recipe { table: base.table.clone() };
    r.set("stages", Value::Array(stages.iter().map(|s| Value::String(s.clone())).collect()))?;
    r.set("out_dir", Value::String(dir.display().to_string()))?;
    r.write_checked(&dir.join("recipe.toml"))?;
    eprintln!("warm-up ({}): running (log: {})", stages.join(", "), dir.join("train.log").display());
    run_child(dir, 2)?;
    let last = stages.len() - 1;
    Ok(dir.join(format!("stage-{last}-{}", stages[last])))
}

/// `srlm train --config DIR/recipe.toml` with candle's pools sized to `threads`, output to DIR/train.log.
fn run_child(dir: &Path, threads: usize) -> Result<()> {
    let exe = std::env::current_exe().context("locating the srlm binary")?;
    let log_path = dir.join("train.log");
    let log = File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let status = Command::new(exe)
        .arg("train")
        .arg("--config")
        .arg(dir.join("recipe.toml"))
        .env("CANDLE_NUM_THREADS", threads.to_string())
        .env("RAYON_NUM_THREADS", threads.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .context("starting srlm train")?;
    if !status.success() {
        bail!("srlm train for {} failed ({status}); see {}", dir.display(), log_path.display());
    }
    Ok(())
}

/// The 1-, 5- and 15-minute load averages, as `uptime` prints them.
fn load_average() -> Result<String> {
    let text = std::fs::read_to_string("/proc/loadavg").context("reading /proc/loadavg")?;
    Ok(text.split_whitespace().take(3).collect::<Vec<_>>().join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_differ_only_in_staleness_and_placement() {
        let modes: Vec<Mode> = [ModeName::S0, ModeName::S1, ModeName::S2, ModeName::Sync].map(ModeName::mode).to_vec();
        assert_eq!(modes.iter().map(|m| m.max_staleness).collect::<Vec<_>>(), [0, 1, 2, 0]);
        assert!(modes[..3].iter().all(|m| m.split_cores && m.threads == 1));
        assert!(!modes[3].split_cores && modes[3].threads == 2);
    }

    #[test]
    fn each_mode_recipe_is_a_valid_grpo_only_run() {
        let base = Recipe::parse(BENCH_RECIPE, "bench").unwrap();
        assert!(base.stages().contains(&"grpo".to_string()));
        let tmp = tempfile::tempdir().unwrap();
        for name in [ModeName::S1, ModeName::Sync] {
            let mode = name.mode();
            let r =
                mode_recipe(&base, &mode, Queues { rollout: 96, scored: 8 }, tmp.path(), Some(Path::new("runs/x/stage-0-sft"))).unwrap();
            let cfg = r.write_checked(&tmp.path().join(format!("{}.toml", mode.name))).unwrap();
            assert_eq!(cfg.stages, [srlm::train::config::Stage::Grpo]);
            assert_eq!(cfg.runtime.pipeline.max_staleness, mode.max_staleness);
            assert_eq!(cfg.runtime.pipeline.learner_core, mode.split_cores.then_some(1));
            assert_eq!(cfg.model.source, "runs/x/stage-0-sft");
            assert!(cfg.runtime.metrics_addr.is_empty());
            assert_eq!((cfg.runtime.pipeline.rollout_capacity, cfg.runtime.pipeline.scored_capacity), (96, 8));
        }
    }
}
