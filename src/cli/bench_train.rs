//! `srlm bench train`: trained tokens/s of one learner step on the peer's workload
//! (../shared/bench/peer_torch.py): a group of G sequences (the GSM8K chat prompt + N completion
//! tokens), per-token log-probs, loss = −mean completion log-prob, backward, one AdamW step.

use std::time::Instant;

use anyhow::Result;
use candle_core::D;
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use clap::Args;
use rand::{Rng, SeedableRng};
use serde_json::json;
use srlm::chat::Message;
use srlm::model::logprobs::DEFAULT_CHUNK_ROWS;
use srlm::model::{token_logprobs, LoadedModel, Qwen2, TokenBatch};

use super::bench::{peak_rss_bytes, process_cpu_seconds, QUESTION};
use super::ModelArgs;

#[derive(Args)]
pub struct TrainBench {
    #[command(flatten)]
    model: ModelArgs,
    /// Sequences per step (the group size G).
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Completion tokens per sequence N, after the prompt (the peer's default is 128).
    #[arg(long = "new-tokens", default_value_t = 128)]
    new_tokens: usize,
    /// Timed steps after one warm-up step; the mean is reported.
    #[arg(long, default_value_t = 2)]
    steps: usize,
    /// Rows of the output projection computed at once.
    #[arg(long = "chunk-rows", default_value_t = DEFAULT_CHUNK_ROWS)]
    chunk_rows: usize,
}

pub fn run(b: TrainBench) -> Result<()> {
    let LoadedModel { config, weights, tokenizer, .. } = b.model.load()?;
    let (trainable, vars) = weights.to_vars()?;
    drop(weights);
    let model = Qwen2::new(&config, &trainable)?;
    let params = ParamsAdamW { lr: 1e-6, ..ParamsAdamW::default() };
    let mut opt = AdamW::new(vars.into_iter().map(|(_, v)| v).collect(), params)?;

    let prompt = tokenizer.chat_template()?.render(&[Message::new("user", QUESTION)], true)?;
    let prompt_ids = tokenizer.encode(&prompt, false)?;
    // Completion content does not change the cost; fixed pseudo-random ids keep runs identical.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let seqs: Vec<Vec<u32>> = (0..b.batch)
        .map(|_| {
            let completion = (0..b.new_tokens).map(|_| rng.gen_range(0..config.vocab_size as u32));
            prompt_ids.iter().copied().chain(completion).collect()
        })
        .collect();
    let batch = TokenBatch::right_padded(&seqs, 0, model.device())?;
    let (p, seq) = (prompt_ids.len(), prompt_ids.len() + b.new_tokens);

    let mut step = || -> Result<f32> {
        let lp = token_logprobs(&model, &batch, 1.0, false, b.chunk_rows)?;
        // Predictions of the completion tokens: positions p - 1 .. seq - 2 of the (b, seq - 1) grid.
        let loss = lp.logprobs.narrow(D::Minus1, p - 1, b.new_tokens)?.mean_all()?.neg()?;
        opt.backward_step(&loss)?;
        Ok(loss.to_scalar::<f32>()?)
    };
    step()?;
    let (start, cpu_start) = (Instant::now(), process_cpu_seconds()?);
    let mut loss = 0.0;
    for _ in 0..b.steps.max(1) {
        loss = step()?;
    }
    let steps = b.steps.max(1) as f64;
    let seconds = start.elapsed().as_secs_f64() / steps;
    let cpu_seconds = (process_cpu_seconds()? - cpu_start) / steps;
    let tokens = (b.batch * seq) as f64;
    println!(
        "{}",
        json!({
            "impl": "srlm", "what": "train", "model": b.model.model, "G": b.batch, "seq": seq,
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "tokens_per_s": (tokens / seconds * 10.0).round() / 10.0,
            "tokens_per_cpu_s": (tokens / cpu_seconds * 10.0).round() / 10.0,
            "peak_rss_gib": (peak_rss_bytes()? as f64 / (1u64 << 30) as f64 * 100.0).round() / 100.0,
            "loss": loss, "blas": cfg!(feature = "blas"),
            "threads": std::thread::available_parallelism().map_or(1, |n| n.get()),
        })
    );
    Ok(())
}

