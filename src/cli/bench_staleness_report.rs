//! One row of `srlm bench staleness`: read back from a finished `srlm train` run's
//! run-stage-N.json (wall time, busy time per role, dropped groups) and steps-stage-N.json
//! (reward per step), and printed as a markdown table row and a JSON line.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize)]
pub struct ModeResult {
    pub mode: String,
    pub max_staleness: u64,
    /// CANDLE_NUM_THREADS and RAYON_NUM_THREADS of the child process.
    pub threads: usize,
    pub split_cores: bool,
    pub steps: usize,
    pub elapsed_s: f64,
    pub steps_per_min: f64,
    /// One per generator.
    pub generator_busy: Vec<f64>,
    pub learner_busy: f64,
    /// Sampling time per optimizer step, all generators together.
    pub generation_s_per_step: f64,
    pub learner_s_per_step: f64,
    pub groups_dropped_stale: u64,
    pub tokens_generated: u64,
    /// Mean over steps of the batch's mean total reward, and over each half of the run.
    pub reward_mean: f64,
    pub reward_first_half: f64,
    pub reward_second_half: f64,
    pub accuracy_first_half: f64,
    pub accuracy_second_half: f64,
}

#[derive(Deserialize)]
struct RunFile {
    steps: usize,
    elapsed_s: f64,
    learner_busy_s: f64,
    generator_busy_s: Vec<f64>,
    groups_dropped_stale: u64,
    tokens_generated: u64,
    max_staleness: u64,
}

#[derive(Deserialize)]
struct StepFile {
    rewards: Vec<(String, f64)>,
    accuracy: Option<f64>,
}

pub struct ModeLabel<'a> {
    pub name: &'a str,
    pub threads: usize,
    pub split_cores: bool,
}

impl ModeResult {
    /// Reads the files a GRPO stage at position `stage` wrote into `dir`.
    pub fn read(dir: &Path, stage: usize, label: ModeLabel) -> Result<Self> {
        let run: RunFile = read_json(&dir.join(format!("run-stage-{stage}.json")))?;
        let steps: Vec<StepFile> = read_json(&dir.join(format!("steps-stage-{stage}.json")))?;
        let reward: Vec<f64> = steps.iter().map(|s| s.rewards.iter().find(|(n, _)| n == "total").map_or(f64::NAN, |r| r.1)).collect();
        let accuracy: Vec<f64> = steps.iter().map(|s| s.accuracy.unwrap_or(f64::NAN)).collect();
        let half = reward.len() / 2;
        let per_step = |total: f64| total / (run.steps.max(1) as f64);
        let wall = run.elapsed_s.max(1e-9);
        Ok(Self {
            mode: label.name.to_string(),
            max_staleness: run.max_staleness,
            threads: label.threads,
            split_cores: label.split_cores,
            steps: run.steps,
            elapsed_s: run.elapsed_s,
            steps_per_min: run.steps as f64 / wall * 60.0,
            generator_busy: run.generator_busy_s.iter().map(|b| b / wall).collect(),
            learner_busy: run.learner_busy_s / wall,
            generation_s_per_step: per_step(run.generator_busy_s.iter().sum()),
            learner_s_per_step: per_step(run.learner_busy_s),
            groups_dropped_stale: run.groups_dropped_stale,
            tokens_generated: run.tokens_generated,
            reward_mean: mean(&reward),
            reward_first_half: mean(&reward[..half]),
            reward_second_half: mean(&reward[half..]),
            accuracy_first_half: mean(&accuracy[..half]),
            accuracy_second_half: mean(&accuracy[half..]),
        })
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: unexpected layout", path.display()))
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

/// The markdown table; the `×` columns divide each row's steps/min by that of the lockstep mode on
/// split cores and of the synchronous two-core mode, where those ran.
pub fn markdown_table(rows: &[ModeResult], lockstep_mode: &str, sync_mode: &str) -> String {
    let rate_of = |name: &str| rows.iter().find(|r| r.mode == name).map(|r| r.steps_per_min);
    let ratio = |r: &ModeResult, base: Option<f64>| base.map_or("–".to_string(), |b| format!("{:.2}×", r.steps_per_min / b.max(1e-9)));
    let (lockstep, sync) = (rate_of(lockstep_mode), rate_of(sync_mode));
    let mut out = format!(
        "| mode | staleness | cores | steps | wall s | steps/min | × {lockstep_mode} | × {sync_mode} | generator busy | learner busy | gen s/step | learn s/step | dropped stale | reward mean (1st half → 2nd half) | accuracy (1st → 2nd half) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let cores = if r.split_cores { "gen core 0, learner core 1".to_string() } else { format!("both, {} threads per phase", r.threads) };
        let busy: Vec<String> = r.generator_busy.iter().map(|b| format!("{:.0}%", 100.0 * b)).collect();
        out += &format!(
            "| {} | {} | {} | {} | {:.1} | {:.2} | {} | {} | {} | {:.0}% | {:.3} | {:.3} | {} | {:.3} ({:.3} → {:.3}) | {:.1}% → {:.1}% |\n",
            r.mode,
            r.max_staleness,
            cores,
            r.steps,
            r.elapsed_s,
            r.steps_per_min,
            ratio(r, lockstep),
            ratio(r, sync),
            busy.join(" / "),
            100.0 * r.learner_busy,
            r.generation_s_per_step,
            r.learner_s_per_step,
            r.groups_dropped_stale,
            r.reward_mean,
            r.reward_first_half,
            r.reward_second_half,
            100.0 * r.accuracy_first_half,
            100.0 * r.accuracy_second_half,
        );
    }
    out
}
