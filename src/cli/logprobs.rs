//! `srlm logprobs`: log-probs of a completion given a prompt, computed by the learner's path.

use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;
use srlm::model::logprobs::DEFAULT_CHUNK_ROWS;
use srlm::model::CausalLm;
use srlm::model::{token_logprobs, TokenBatch};

use super::ModelArgs;

#[derive(Args)]
pub struct LogprobsArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The prompt text, used verbatim (render chat templates yourself).
    #[arg(long)]
    prompt: String,
    /// The completion text whose tokens are scored.
    #[arg(long)]
    completion: String,
    /// Divide logits by this temperature first (1 = the model's own distribution).
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Print JSON (the only format; kept for symmetry with `generate --json`).
    #[arg(long)]
    json: bool,
}

pub fn run(args: LogprobsArgs) -> Result<()> {
    let m = args.model.load()?;
    let model = m.model()?;
    // Tokenized separately and concatenated, as trainers do.
    let prompt_ids = m.tokenizer.encode(&args.prompt, false)?;
    let completion_ids = m.tokenizer.encode(&args.completion, false)?;
    if prompt_ids.is_empty() || completion_ids.is_empty() {
        bail!("prompt and completion must each encode to at least one token");
    }
    let seq: Vec<u32> = prompt_ids.iter().chain(&completion_ids).copied().collect();
    let batch = TokenBatch::right_padded(&[seq], 0, model.device())?;
    let out = token_logprobs(&model, &batch, args.temperature, false, DEFAULT_CHUNK_ROWS)?;
    let all: Vec<f32> = out.logprobs.squeeze(0)?.to_vec1()?;
    let logprobs = &all[prompt_ids.len() - 1..];
    println!("{}", json!({ "prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": logprobs }));
    Ok(())
}
