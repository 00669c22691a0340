//! RuntimeError: why a run stopped; FailureCheckpoint: what a failed run leaves to resume from.

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("runtime config: {field}: {reason}")]
    Config { field: &'static str, reason: String },
    #[error("trainer failed to start: {0}")]
    Start(String),
    /// `step` is the number of completed optimizer steps: the failed one, counted from 0.
    #[error("learner failed at step {step}: {reason}; {checkpoint}")]
    Learner { step: u64, reason: String, checkpoint: FailureCheckpoint },
    #[error("{role} {index} failed {failures} times, last: {reason}")]
    TooManyRestarts { role: &'static str, index: usize, failures: u32, reason: String },
    #[error("actor system: {0}")]
    Actor(String),
    #[error("metrics exporter on {addr}: {reason}")]
    Metrics { addr: String, reason: String },
    #[error("pinning a thread to core {core}: {reason}")]
    Affinity { core: usize, reason: String },
}

/// The checkpoint a learner failure leaves behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureCheckpoint {
    /// Written after the failure: the state as of the last completed step.
    Written { step: u64, location: String },
    /// None could be written now (`why`); an earlier one is the newest.
    Earlier { step: u64, location: String, why: String },
    /// No checkpoint of this run exists (`why`).
    Missing { why: String },
}

impl FailureCheckpoint {
    /// Where `--resume` should point, if anywhere.
    pub fn location(&self) -> Option<&str> {
        match self {
            Self::Written { location, .. } | Self::Earlier { location, .. } => Some(location),
            Self::Missing { .. } => None,
        }
    }
}

impl std::fmt::Display for FailureCheckpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Written { step, location } => write!(f, "checkpoint of step {step} (the last completed) written to {location}"),
            Self::Earlier { step, location, why } => {
                write!(f, "no new checkpoint ({why}); the newest is of step {step} at {location}")
            }
            Self::Missing { why } => write!(f, "no checkpoint: {why}"),
        }
    }
}
