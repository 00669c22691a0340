//! The learner role: the objectives (GRPO's loss and step, SFT full or LoRA, knowledge
//! distillation by traces or logits), each an `Objective` whose micro-batches `optimizer_step`
//! accumulates before stepping the crate AdamW (src/optim.rs), and the runtime's `Trainer`s on
//! the real model: `grpo_trainer`, `sft_trainer` and `kd_trainer`, the last two fed fixed
//! examples by `example_source` (or, on-policy KD, the student's samples).
//! Synchronous and deterministic; the actors call these. The scorer's group advantages are
//! `srlm_actors::advantages`.

pub mod checkpoint_place;
pub mod example_source;
pub mod grpo;
pub mod grpo_loss;
pub mod grpo_trainer;
pub mod kd;
pub mod kd_trainer;
pub mod lanes;
pub mod logit_kd;
pub mod objective;
pub mod rollout_log;
pub mod run_state;
pub mod sft;
pub mod sft_checkpoint;
pub mod sft_data;
pub mod sft_recipe;
pub mod sft_trainer;
pub mod traces;
pub mod trained_params;
pub mod trainer_error;

pub use grpo::{grpo_step, GrpoConfig, GrpoStats, ScoredBatch};
pub use grpo_loss::{grpo_loss, GrpoLoss, GrpoLossConfig, LossInputs, LossStats, LossType, RatioLevel};

#[derive(Debug, thiserror::Error)]
pub enum AlgoError {
    /// A batch whose shapes or values cannot be trained on.
    #[error("bad batch: {0}")]
    BadBatch(String),
    #[error("bad config field '{field}': {reason}")]
    BadConfig { field: String, reason: String },
    #[error(transparent)]
    Optim(#[from] crate::optim::OptimError),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
