//! srlm-actors: the asynchronous training runtime. Its principal type is [`Pipeline`]: generators
//! (prompt → [`RolloutGroup`]), a scorer pool ([`RolloutGroup`] → [`ScoredGroup`]) and a learner
//! (batches → optimizer step → [`WeightsPublished`]) joined by bounded queues, under a supervisor.
//!
//! It knows nothing of candle: the model side plugs in through the capability traits
//! [`Sampler`], [`Rewarder`], [`Trainer`] and [`PromptSource`]; weights are an opaque `Arc<W>`.
//! [`Pipeline::run`] runs the actors on tokio (each heavy part on its own OS thread);
//! [`Pipeline::run_deterministic`] steps the same cores on one thread in a fixed order.

pub mod advantages;
pub mod broadcast;
pub mod cluster;
pub mod config;
pub mod context;
pub mod error;
pub mod fake;
pub mod gate;
pub mod generator;
pub mod harness;
pub mod learner;
pub mod ledger;
pub mod messages;
pub mod metrics;
pub mod pipeline;
pub mod poison;
pub mod queue;
pub mod scorer;
pub mod shutdown;
pub mod step_sizes;
pub mod summary;
pub mod supervisor;
pub mod traits;
pub mod worker;

pub use advantages::{group_advantages, AdvantageScale};
pub use broadcast::{Broadcast, CopyToDevice, WeightSyncs};
pub use config::RuntimeConfig;
pub use error::{FailureCheckpoint, RuntimeError};
pub use messages::{
    GroupRewards, Policy, PolicyVersion, Prompt, RolloutGroup, RunState, SampledCompletion, SampledGroup, ScoredGroup, Timings,
    WeightsPublished,
};
pub use pipeline::Pipeline;
pub use shutdown::{on_signals, on_signals_in_background, ShutdownHandle};
pub use step_sizes::StepSizes;
pub use summary::{OnStepRecorded, RemoteCounts, RunSummary, StepRecord};
pub use supervisor::Factory;
pub use traits::{PromptSource, Rewarder, Sampler, Start, StepStats, Trainer};
