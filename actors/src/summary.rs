//! RunSummary and StepRecord: what a run reports, and the per-step metric series the
//! deterministic harness compares between runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::broadcast::WeightSyncs;
use crate::messages::RunState;
use crate::traits::StepStats;

/// Called with each step's record as soon as the learner has it (e.g. to keep a metrics file
/// current, so a run that dies keeps its series up to its last step).
pub type OnStepRecorded = Box<dyn FnMut(&StepRecord) + Send>;

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
    /// Mean total reward of every group that reached the learner since the previous step,
    /// dropped ones included: what the policy earns, where `reward_means` is the trained batch
    /// (under dynamic sampling only groups with differing rewards).
    pub sampled_reward_mean: f64,
    pub dropped_uniform_so_far: u64,
}

#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Where the run stopped (what its last checkpoint holds).
    pub state: RunState,
    pub groups_trained: u64,
    pub groups_dropped_stale: u64,
    /// Groups with equal rewards dropped under dynamic sampling.
    pub groups_dropped_uniform: u64,
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
    /// Groups re-queued after a failed actor or a lost worker node (each sampled again).
    pub groups_requeued: u64,
    pub remote: RemoteCounts,
    /// Why the end-of-run checkpoint of a run that finished could not be written (the run's
    /// result stands; only a resume from its end is lost).
    pub final_checkpoint_error: Option<String>,
    /// Periodic checkpoints that could not be written (step, why); the run went on from each.
    pub failed_checkpoints: Vec<(u64, String)>,
}

/// Run-wide tallies of remote workers, updated by the hub (the metrics facade has no read side).
#[derive(Debug, Default)]
pub struct RemoteTally {
    pub workers_joined: AtomicU64,
    pub workers_lost: AtomicU64,
    pub groups_generated: AtomicU64,
    pub groups_scored: AtomicU64,
    pub frames_refused: AtomicU64,
    pub weight_transfers: AtomicU64,
    pub weight_bytes: AtomicU64,
    pub weight_transfer_ns: AtomicU64,
}

/// A snapshot of [`RemoteTally`] for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RemoteCounts {
    pub workers_joined: u64,
    pub workers_lost: u64,
    pub groups_generated: u64,
    pub groups_scored: u64,
    pub frames_refused: u64,
    pub weight_transfers: u64,
    pub weight_bytes: u64,
    pub weight_transfer_seconds: f64,
}

impl RemoteTally {
    pub fn counts(&self) -> RemoteCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RemoteCounts {
            workers_joined: get(&self.workers_joined),
            workers_lost: get(&self.workers_lost),
            groups_generated: get(&self.groups_generated),
            groups_scored: get(&self.groups_scored),
            frames_refused: get(&self.frames_refused),
            weight_transfers: get(&self.weight_transfers),
            weight_bytes: get(&self.weight_bytes),
            weight_transfer_seconds: get(&self.weight_transfer_ns) as f64 * 1e-9,
        }
    }
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
