//! Metrics: every exported name in one place (with kind, unit, labels and help), and the
//! Prometheus exporter serving `/metrics`. Names are `srlm_<role>_<what>_<unit>`.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

use crate::error::RuntimeError;
use crate::traits::StepStats;

pub const GENERATOR_TOKENS: &str = "srlm_generator_tokens_total";
pub const GENERATOR_GROUPS: &str = "srlm_generator_groups_total";
pub const GENERATOR_BUSY_RATIO: &str = "srlm_generator_busy_ratio";
pub const GENERATOR_WAIT: &str = "srlm_generator_wait_seconds";
pub const GENERATOR_GROUP_SECONDS: &str = "srlm_generator_group_seconds";
pub const SCORER_GROUPS: &str = "srlm_scorer_groups_total";
pub const REWARD_MEAN: &str = "srlm_reward_mean";
pub const ACCURACY: &str = "srlm_accuracy_ratio";
pub const LEARNER_GROUPS: &str = "srlm_learner_groups_total";
pub const LEARNER_DROPPED: &str = "srlm_learner_groups_dropped_total";
pub const POLICY_VERSION: &str = "srlm_policy_version";
pub const STALENESS: &str = "srlm_group_staleness_versions";
pub const QUEUE_DEPTH: &str = "srlm_queue_depth";
pub const QUEUE_CAPACITY: &str = "srlm_queue_capacity";
pub const LEARNER_BUSY_RATIO: &str = "srlm_learner_busy_ratio";
pub const LEARNER_STEPS: &str = "srlm_learner_steps_total";
pub const LEARNER_STEP_SECONDS: &str = "srlm_learner_step_seconds";
pub const LOSS: &str = "srlm_learner_loss";
pub const KL: &str = "srlm_learner_kl";
pub const CLIP_FRACTION: &str = "srlm_learner_clip_ratio";
pub const ENTROPY: &str = "srlm_learner_entropy_nats";
pub const GRAD_NORM: &str = "srlm_learner_grad_norm";
pub const LEARNING_RATE: &str = "srlm_learner_learning_rate";
pub const RESTARTS: &str = "srlm_actor_restarts_total";
pub const CHECKPOINT_SECONDS: &str = "srlm_checkpoint_seconds";
pub const CHECKPOINT_FAILURES: &str = "srlm_checkpoint_failures_total";
pub const WEIGHT_SYNC_SECONDS: &str = "srlm_weight_sync_seconds";
pub const REMOTE_WORKERS: &str = "srlm_remote_workers";
pub const REMOTE_REFUSED: &str = "srlm_remote_frames_refused_total";
pub const WEIGHT_TRANSFER_SECONDS: &str = "srlm_weight_transfer_seconds";
pub const WEIGHT_TRANSFER_BYTES: &str = "srlm_weight_transfer_bytes_total";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

pub struct MetricDef {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Option<Unit>,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

const fn def(name: &'static str, kind: Kind, unit: Option<Unit>, labels: &'static [&'static str], help: &'static str) -> MetricDef {
    MetricDef { name, kind, unit, labels, help }
}

use Kind::{Counter, Gauge, Histogram};

/// The registry: what the runtime exports. README tables and the dashboard test read it.
pub const METRICS: &[MetricDef] = &[
    def(GENERATOR_TOKENS, Counter, None, &["generator"], "Completion tokens sampled."),
    def(GENERATOR_GROUPS, Counter, None, &["generator"], "Groups sampled."),
    def(GENERATOR_BUSY_RATIO, Gauge, None, &["generator"], "Fraction of wall time spent sampling since the generator started."),
    def(
        GENERATOR_WAIT,
        Histogram,
        Some(Unit::Seconds),
        &["generator"],
        "Time one group waited for room in the rollout queue (backpressure).",
    ),
    def(
        GENERATOR_GROUP_SECONDS,
        Histogram,
        Some(Unit::Seconds),
        &["generator"],
        "Time to sample one group; rate(_sum) is the busy fraction.",
    ),
    def(SCORER_GROUPS, Counter, None, &["scorer"], "Groups scored."),
    def(
        REWARD_MEAN,
        Gauge,
        None,
        &["function"],
        "Mean reward of the last trained batch per reward function (function=\"total\": weighted sum).",
    ),
    def(ACCURACY, Gauge, None, &[], "Fraction of correct completions in the last trained batch."),
    def(LEARNER_GROUPS, Counter, None, &[], "Groups trained on."),
    def(
        LEARNER_DROPPED,
        Counter,
        None,
        &["reason"],
        "Groups dropped before training (reason=\"stale\": older than max_staleness; \"uniform\": equal rewards under dynamic sampling).",
    ),
    def(POLICY_VERSION, Gauge, None, &[], "Version of the newest published policy."),
    def(STALENESS, Histogram, None, &[], "Policy versions between a group's sampling and its training (dropped groups included)."),
    def(QUEUE_DEPTH, Gauge, None, &["queue"], "Items waiting in a bounded queue."),
    def(QUEUE_CAPACITY, Gauge, None, &["queue"], "Capacity of a bounded queue."),
    def(LEARNER_BUSY_RATIO, Gauge, None, &[], "Fraction of wall time the learner spent in steps and checkpoints since it started."),
    def(LEARNER_STEPS, Counter, None, &[], "Optimizer steps taken."),
    def(LEARNER_STEP_SECONDS, Histogram, Some(Unit::Seconds), &[], "Duration of one optimizer step; rate(_sum) is the busy fraction."),
    def(LOSS, Gauge, None, &[], "Loss of the last step."),
    def(KL, Gauge, None, &[], "KL divergence to the reference policy in the last step."),
    def(CLIP_FRACTION, Gauge, None, &[], "Fraction of tokens whose importance ratio was clipped in the last step."),
    def(ENTROPY, Gauge, None, &[], "Mean token entropy of the policy in the last step."),
    def(GRAD_NORM, Gauge, None, &[], "Gradient norm before clipping in the last step."),
    def(LEARNING_RATE, Gauge, None, &[], "Learning rate of the last step."),
    def(RESTARTS, Counter, None, &["role"], "Actor restarts after a panic or error."),
    def(CHECKPOINT_SECONDS, Histogram, Some(Unit::Seconds), &[], "Time to write one checkpoint."),
    def(
        CHECKPOINT_FAILURES,
        Counter,
        None,
        &[],
        "Periodic checkpoints that could not be written (the run goes on; the newest written one stays its resume point).",
    ),
    def(
        WEIGHT_SYNC_SECONDS,
        Histogram,
        Some(Unit::Seconds),
        &["device"],
        "Time to copy one published policy version to a generator device.",
    ),
];

/// What a learner node exports only while it listens for workers (`Pipeline::listen`).
pub const CLUSTER_METRICS: &[MetricDef] = &[
    def(REMOTE_WORKERS, Gauge, None, &[], "Workers on other nodes currently joined to the learner node."),
    def(
        REMOTE_REFUSED,
        Counter,
        None,
        &["reason"],
        "Frames from workers refused (undecodable, unknown_worker, not_held, stale_version, future_version).",
    ),
    def(
        WEIGHT_TRANSFER_SECONDS,
        Histogram,
        Some(Unit::Seconds),
        &["worker"],
        "Time for a remote generator to download one policy version.",
    ),
    def(WEIGHT_TRANSFER_BYTES, Counter, Some(Unit::Bytes), &["worker"], "Bytes of policy weights downloaded by a remote generator."),
];

fn every_metric() -> impl Iterator<Item = &'static MetricDef> {
    METRICS.iter().chain(CLUSTER_METRICS)
}

/// Histogram bucket bounds: seconds-long steps and groups on CPU, versions for staleness.
fn buckets(name: &str) -> &'static [f64] {
    match name {
        STALENESS => &[0.0, 1.0, 2.0, 3.0, 4.0, 8.0, 16.0],
        _ => &[0.001, 0.005, 0.025, 0.1, 0.25, 1.0, 2.5, 10.0, 30.0, 100.0, 300.0],
    }
}

/// Registers help text and units with whatever recorder is installed.
pub fn describe() {
    for m in every_metric() {
        let (name, help) = (m.name, m.help);
        match (m.kind, m.unit) {
            (Kind::Counter, Some(u)) => metrics::describe_counter!(name, u, help),
            (Kind::Counter, None) => metrics::describe_counter!(name, help),
            (Kind::Gauge, Some(u)) => metrics::describe_gauge!(name, u, help),
            (Kind::Gauge, None) => metrics::describe_gauge!(name, help),
            (Kind::Histogram, Some(u)) => metrics::describe_histogram!(name, u, help),
            (Kind::Histogram, None) => metrics::describe_histogram!(name, help),
        }
    }
}

/// One optimizer update of any objective (GRPO, SFT, KD): the step counter, the policy version it
/// made, how long it took and its statistics, so every stage reads the same on `/metrics`.
pub fn record_update(stats: &StepStats, took: Duration, version: u64) {
    metrics::counter!(LEARNER_STEPS).increment(1);
    metrics::gauge!(POLICY_VERSION).set(version as f64);
    metrics::histogram!(LEARNER_STEP_SECONDS).record(took.as_secs_f64());
    metrics::gauge!(LOSS).set(stats.loss);
    metrics::gauge!(LEARNING_RATE).set(stats.learning_rate);
    for (name, v) in [(KL, stats.kl), (CLIP_FRACTION, stats.clip_fraction), (ENTROPY, stats.entropy), (GRAD_NORM, stats.grad_norm)] {
        if let Some(v) = v {
            metrics::gauge!(name).set(v);
        }
    }
}

static INSTALLED: OnceLock<Result<SocketAddr, String>> = OnceLock::new();

/// Where this process already serves `/metrics`, if it does.
pub fn serving() -> Option<SocketAddr> {
    INSTALLED.get().and_then(|outcome| outcome.as_ref().ok().copied())
}

/// Installs the Prometheus recorder and serves `/metrics` on `addr` from its own thread. Once per
/// process: later calls return the first call's outcome.
pub fn serve(addr: SocketAddr) -> Result<SocketAddr, RuntimeError> {
    let outcome = INSTALLED.get_or_init(|| {
        let mut builder = PrometheusBuilder::new().with_http_listener(addr);
        for m in every_metric().filter(|m| m.kind == Kind::Histogram) {
            builder = builder.set_buckets_for_metric(Matcher::Full(m.name.to_string()), buckets(m.name)).map_err(|e| e.to_string())?;
        }
        // Off any tokio runtime, `install` runs the listener on a thread of its own.
        std::thread::spawn(move || builder.install())
            .join()
            .map_err(|_| "exporter thread panicked".to_string())?
            .map_err(|e| e.to_string())?;
        describe();
        Ok(addr)
    });
    outcome.clone().map_err(|reason| RuntimeError::Metrics { addr: addr.to_string(), reason })
}
