//! srlm: train small reasoning language models with GRPO, SFT and distillation.
//!
//! The principal type is [`model::Qwen2`], the decoder used for both training and generation,
//! behind [`model::CausalLm`]. The runtime's three roles have a module each: [`generate`] (the
//! generator's sampler), [`rewarder`] (the scorer's rewards) and [`learner`] (the objectives and
//! the trainer); [`train`] wires them into `srlm train`'s stages.

pub mod atomic_file;
pub mod checkpoint;
pub mod data;
pub mod eval;
pub mod model;
pub mod optim;
pub mod overlong;
/// The answer checker and rewards live in their own crate (`grader/`), usable without candle.
pub use srlm_grader as reward;
pub mod chat;
pub mod generate;
mod id_list;
pub mod learner;
pub mod plot;
pub mod ranges;
pub mod rewarder;
pub mod sampling;
pub mod synthetic;
pub mod tokenizer;
pub mod train;
