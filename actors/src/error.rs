//! RuntimeError: why a run stopped.

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("runtime config: {field}: {reason}")]
    Config { field: &'static str, reason: String },
    #[error("trainer failed to start: {0}")]
    Start(String),
    #[error("learner failed at step {step}: {reason}; {checkpoint}")]
    Learner { step: u64, reason: String, checkpoint: String },
    #[error("{role} {index} failed {failures} times, last: {reason}")]
    TooManyRestarts { role: &'static str, index: usize, failures: u32, reason: String },
    #[error("actor system: {0}")]
    Actor(String),
    #[error("metrics exporter on {addr}: {reason}")]
    Metrics { addr: String, reason: String },
    #[error("pinning a thread to core {core}: {reason}")]
    Affinity { core: usize, reason: String },
}
