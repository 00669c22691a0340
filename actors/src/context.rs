//! Context: what every actor of one run shares (queues, ledger, gate, broadcast, counters).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::broadcast::Broadcast;
use crate::config::RuntimeConfig;
use crate::error::RuntimeError;
use crate::gate::StalenessGate;
use crate::ledger::Ledger;
use crate::messages::{RolloutGroup, ScoredGroup};
use crate::poison::lock;
use crate::queue::Queue;
use crate::shutdown::{ShutdownHandle, Stop};
use crate::summary::RunSummary;

pub struct Context<W> {
    pub cfg: RuntimeConfig,
    pub ledger: Ledger,
    pub gate: StalenessGate,
    pub broadcast: Broadcast<W>,
    pub rollouts: Queue<RolloutGroup>,
    pub scored: Queue<ScoredGroup>,
    pub stop: Stop,
    pub shutdown: ShutdownHandle,
    pub counters: Counters,
    outcome: Mutex<Option<Result<RunSummary, RuntimeError>>>,
}

pub const ROLLOUT_QUEUE: &str = "rollouts";
pub const SCORED_QUEUE: &str = "scored";

impl<W: Send + Sync + 'static> Context<W> {
    pub fn new(cfg: RuntimeConfig, ledger: Ledger, broadcast: Broadcast<W>, shutdown: ShutdownHandle) -> Self {
        let gate = StalenessGate::new(broadcast.version(), cfg.max_staleness, cfg.step_sizes());
        Self {
            ledger,
            gate,
            broadcast,
            rollouts: Queue::new(ROLLOUT_QUEUE, cfg.rollout_capacity),
            scored: Queue::new(SCORED_QUEUE, cfg.scored_capacity),
            stop: Stop::default(),
            shutdown,
            counters: Counters::new(cfg.generators),
            outcome: Mutex::new(None),
            cfg,
        }
    }

    /// Records how the run ended (the first outcome wins) and tells every actor to stop.
    pub fn finish(&self, outcome: Result<RunSummary, RuntimeError>) {
        lock(&self.outcome).get_or_insert(outcome);
        self.stop.stop();
    }

    pub fn take_outcome(&self) -> Option<Result<RunSummary, RuntimeError>> {
        lock(&self.outcome).take()
    }
}

/// Run-wide tallies for the summary (the metrics facade has no read side).
pub struct Counters {
    pub started: Instant,
    generator_busy_ns: Vec<AtomicU64>,
    pub learner_busy_ns: AtomicU64,
    pub restarts: AtomicU32,
    pub groups_generated: AtomicU64,
    pub tokens: AtomicU64,
    /// Groups put back in the queue because their holder failed or its node left.
    pub requeued: AtomicU64,
    /// What workers on other nodes did (all zero without them).
    pub remote: crate::summary::RemoteTally,
}

impl Counters {
    fn new(generators: usize) -> Self {
        Self {
            started: Instant::now(),
            generator_busy_ns: (0..generators).map(|_| AtomicU64::new(0)).collect(),
            learner_busy_ns: AtomicU64::new(0),
            restarts: AtomicU32::new(0),
            groups_generated: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            requeued: AtomicU64::new(0),
            remote: Default::default(),
        }
    }

    pub fn add_generator_busy(&self, index: usize, d: Duration) {
        if let Some(c) = self.generator_busy_ns.get(index) {
            c.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
        }
    }

    pub fn generator_busy(&self) -> Vec<Duration> {
        self.generator_busy_ns.iter().map(|c| Duration::from_nanos(c.load(Ordering::Relaxed))).collect()
    }
}
