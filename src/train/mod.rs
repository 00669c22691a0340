//! `srlm train`: the model side of the actor runtime (sampler, rewarder, trainer), the stage
//! pipeline (SFT, KD, GRPO with checkpoint hand-off), its configuration and the embedded default.

pub mod cluster;
pub mod config;
mod config_keys;
mod config_ranges;
pub mod heldout;
pub mod policy_sampler;
pub mod progress;
pub mod gold_rewarder;
pub mod grpo_trainer;
pub mod placement;
pub mod preflight;
pub mod snapshot;
pub mod stages;
pub mod problems;
pub mod recipe;
pub mod resume;
pub mod resume_point;
pub mod run_dir;
