//! The Qwen2-family decoder behind `CausalLm`, the kernels it picks, its weights, KV cache and
//! checkpoint formats.

#[cfg(feature = "blas")]
mod blas;
pub mod causal_lm;
pub mod config;
mod custom_grad;
mod decode_attention;
mod error;
pub mod export;
pub mod gguf;
pub mod init;
mod kernels;
pub mod kv_cache;
mod linear;
pub mod load;
pub mod logit_kl;
pub mod logprobs;
pub mod lora;
mod lora_matmul;
pub mod matmul;
mod norm;
mod packed_linear;
mod projection_grad;
pub mod qwen2;
mod rope;
pub mod target_logprobs;
mod train_kernels;
pub mod weights;
mod xwt_matmul;

pub use causal_lm::CausalLm;
pub use config::{Arch, ModelConfig};
pub use error::ModelError;
pub use kv_cache::KvCache;
pub use load::{LoadedModel, ModelSource};
pub use logprobs::{token_logprobs, TokenBatch, TokenLogProbs};
pub use lora::{LoraAdapters, LoraConfig, LoraError};
pub use qwen2::{Positions, Qwen2};
pub use weights::Weights;
