//! `srlm train`: the stage pipeline (SFT, KD, GRPO with checkpoint hand-off) that wires the
//! roles (`generate::policy_sampler`, `rewarder`, `learner::grpo_trainer`) into the actor
//! runtime, its configuration and the embedded default.

pub mod cluster;
pub mod config;
mod config_keys;
mod config_ranges;
pub mod heldout;
pub mod placement;
pub mod preflight;
pub mod problems;
pub mod progress;
pub mod recipe;
pub mod resume;
pub mod resume_point;
pub mod run_dir;
pub mod sft_recipe_map;
pub mod snapshot;
pub mod stages;
