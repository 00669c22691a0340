//! RuntimeConfig: sizes of the pipeline, queue capacities, staleness bound, supervision and pinning.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::RuntimeError;
use crate::step_sizes::StepSizes;

/// Also the pipeline keys of `srlm train`'s `[runtime]` section (flattened into it, which checks
/// for unknown keys), so these defaults are the documented ones. Fields the caller derives
/// (devices, seed, metrics address) and the supervision timings are not keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuntimeConfig {
    /// Completions per prompt (G).
    pub group_size: usize,
    /// Scored groups per optimizer step (unless `step_sizes` plans them).
    pub batch_groups: usize,
    /// Oldest policy lag (in versions) a trained group may have; 0 is synchronous on-policy.
    pub max_staleness: u64,
    pub generators: usize,
    /// Groups one generator samples together (continuous batching where the sampler can); the
    /// deterministic harness samples one at a time.
    pub groups_in_flight: usize,
    pub scorers: usize,
    /// Capacity of the generator → scorer queue.
    pub rollout_capacity: usize,
    /// Capacity of the scorer → learner queue.
    pub scored_capacity: usize,
    /// Write a checkpoint every this many steps (0: none on the way).
    pub checkpoint_every: u64,
    /// Write one when the run finishes, too (a stop always writes one: it is how to resume).
    pub end_checkpoint: bool,
    /// DAPO's dynamic sampling: a group whose completions all earned the same total reward has
    /// no advantage, so (with β = 0) no gradient; the learner drops it instead of spending a pass
    /// on it, its prompt counts as done, and steps consist of groups that carry a signal.
    pub dynamic_sampling: bool,
    /// Restart delay after the first failure of an actor; doubles per failure up to `max_backoff`.
    #[serde(skip)]
    pub restart_backoff: Duration,
    #[serde(skip)]
    pub max_backoff: Duration,
    /// Failures of one generator or scorer slot after which the run stops.
    #[serde(skip)]
    pub max_restarts: u32,
    /// Core to pin each generator's thread to (by generator index); empty: no pinning.
    pub generator_cores: Vec<usize>,
    /// Core to pin the learner's thread to.
    pub learner_core: Option<usize>,
    /// Device of each generator (by index; missing → device 0). Generators on the learner's
    /// device share its weights; each other device gets one copy per version.
    #[serde(skip)]
    pub generator_devices: Vec<usize>,
    #[serde(skip)]
    pub learner_device: usize,
    /// Seeds every actor's RNG.
    #[serde(skip)]
    pub seed: u64,
    /// Where `/metrics` is served; `None` keeps metrics in-process.
    #[serde(skip)]
    pub metrics_addr: Option<SocketAddr>,
    /// Workers on other nodes may join (`Pipeline::listen`): local generators and scorers may
    /// then be 0, since remote ones can do that work. Set by `--listen`, not a recipe key.
    #[serde(skip)]
    pub remote_workers: bool,
    /// Groups of each step when they differ (SFT's token-budget steps); `None`: `batch_groups` each.
    #[serde(skip)]
    pub planned_steps: Option<StepSizes>,
}

pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9464";

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            group_size: 16,
            batch_groups: 4,
            max_staleness: 1,
            generators: 1,
            groups_in_flight: 1,
            scorers: 1,
            rollout_capacity: 8,
            scored_capacity: 8,
            checkpoint_every: 50,
            end_checkpoint: true,
            dynamic_sampling: false,
            restart_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            max_restarts: 5,
            generator_cores: Vec::new(),
            learner_core: None,
            generator_devices: Vec::new(),
            learner_device: 0,
            seed: 0,
            metrics_addr: DEFAULT_METRICS_ADDR.parse().ok(),
            remote_workers: false,
            planned_steps: None,
        }
    }
}

impl RuntimeConfig {
    /// Rejects sizes that would make the pipeline stall, naming the field.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        let positive = [
            ("group_size", self.group_size),
            ("batch_groups", self.batch_groups),
            ("generators", self.generators),
            ("groups_in_flight", self.groups_in_flight),
            ("scorers", self.scorers),
            ("rollout_capacity", self.rollout_capacity),
            ("scored_capacity", self.scored_capacity),
        ];
        for (field, value) in positive {
            let remote_may_do_it = self.remote_workers && matches!(field, "generators" | "scorers");
            if value == 0 && !remote_may_do_it {
                return Err(RuntimeError::Config { field, reason: "must be at least 1".into() });
            }
        }
        self.step_sizes().validate().map_err(|reason| RuntimeError::Config { field: "batch_groups", reason })?;
        if self.restart_backoff > self.max_backoff {
            return Err(RuntimeError::Config {
                field: "restart_backoff",
                reason: format!("{:?} exceeds max_backoff {:?}", self.restart_backoff, self.max_backoff),
            });
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        for &core in self.generator_cores.iter().chain(self.learner_core.iter()) {
            if core >= cores {
                return Err(RuntimeError::Config {
                    field: "generator_cores/learner_core",
                    reason: format!("core {core} does not exist (this machine has {cores})"),
                });
            }
        }
        Ok(())
    }

    pub fn step_sizes(&self) -> StepSizes {
        self.planned_steps.clone().unwrap_or(StepSizes::Fixed(self.batch_groups))
    }

    pub fn generator_device(&self, index: usize) -> usize {
        self.generator_devices.get(index).copied().unwrap_or(0)
    }

    /// Backoff before restart number `failures` (1-based): doubles each time, capped.
    pub fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        (self.restart_backoff * 2u32.pow(doublings)).min(self.max_backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_caps() {
        let c =
            RuntimeConfig { restart_backoff: Duration::from_millis(100), max_backoff: Duration::from_millis(500), ..Default::default() };
        let got: Vec<_> = (1..=5).map(|n| c.backoff(n).as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 500, 500]);
    }

    /// Read from an empty section, every field (keys, and those no file sets: supervision
    /// timings, devices) is the documented default, not its type's zero.
    #[test]
    fn an_empty_section_reads_as_the_default() {
        let read: RuntimeConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(read, RuntimeConfig::default());
        assert_eq!((read.max_restarts, read.restart_backoff), (5, Duration::from_millis(100)));
    }

    #[test]
    fn zero_capacity_is_rejected_by_name() {
        let c = RuntimeConfig { scored_capacity: 0, ..Default::default() };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("scored_capacity"), "{e}");
    }
}
