//! How a runtime trainer (GRPO, SFT, logit KD) fails: one shape for all three, so the actors
//! and the CLI report a step, a checkpoint or a setup failure the same way whatever trains.

#[derive(Debug, thiserror::Error)]
pub enum TrainerError {
    /// `objective` is the trainer's name in the message ("GRPO", "SFT", "KD").
    #[error("{objective} step {step}: {message}")]
    Step { objective: &'static str, step: u64, message: String },
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// Building the model or optimizer on the starting weights.
    #[error("{0}")]
    Model(String),
}
