//! Learner algorithms: SFT (full or LoRA), knowledge distillation, and the optimiser they step.

pub mod kd;
pub mod optimizer;
pub mod sft;
pub mod sft_data;
pub mod sft_recipe;
pub mod traces;
