//! RunSummary and StepRecord: what a run reports, and the per-step metric series the
//! deterministic harness compares between runs.

use std::time::Duration;

use crate::broadcast::WeightSyncs;
use crate::messages::RunState;
use crate::traits::StepStats;

/// One optimizer step as recorded by the learner: everything here is deterministic under the harness.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub step: u64,
    pub version: u64,
    pub stats: StepStats,
    /// Mean reward per function over the batch, `"total"` last.
    pub reward_means: Vec<(String, f64)>,
    pub accuracy: Option<f64>,
    /// Prompt ids trained in this step, in batch order.
    pub prompts: Vec<u64>,
    /// Completions trained in this step and their generated tokens.
    pub completions: u64,
    pub tokens: u64,
    /// Largest lag (in versions) of a trained group behind the policy it trained.
    pub max_staleness: u64,
    pub dropped_stale_so_far: u64,
}

#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Where the run stopped (what its last checkpoint holds).
    pub state: RunState,
    pub groups_trained: u64,
    pub groups_dropped_stale: u64,
    pub groups_generated: u64,
    pub tokens_generated: u64,
    pub restarts: u32,
    /// Stopped by a shutdown request before the prompts ran out.
    pub interrupted: bool,
    pub elapsed: Duration,
    pub learner_busy: Duration,
    pub generator_busy: Vec<Duration>,
    pub steps: Vec<StepRecord>,
    pub max_queue_depth: Vec<(&'static str, usize, usize)>,
    /// Sends that found a queue full and waited, per queue.
    pub full_waits: Vec<(&'static str, u64)>,
    /// Policy copies to generator devices other than the learner's.
    pub weight_syncs: WeightSyncs,
}

impl RunSummary {
    pub fn learner_busy_fraction(&self) -> f64 {
        self.learner_busy.as_secs_f64() / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn generator_busy_fractions(&self) -> Vec<f64> {
        let wall = self.elapsed.as_secs_f64().max(1e-9);
        self.generator_busy.iter().map(|b| b.as_secs_f64() / wall).collect()
    }
}
