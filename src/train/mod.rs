//! `srlm train`: the model side of the actor runtime (sampler, rewarder, trainer), the stage
//! pipeline (SFT, KD, GRPO with checkpoint hand-off), its configuration and the embedded default.

pub mod cluster;
pub mod config;
mod config_keys;
mod config_ranges;
pub mod gold_rewarder;
pub mod grpo_trainer;
pub mod heldout;
pub mod placement;
pub mod policy_sampler;
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
