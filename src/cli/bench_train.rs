//! `srlm bench train`: trained tokens/s and peak memory of one learner step on the peer's
//! workload (../shared/bench/peer_torch.py): a group of G sequences (the GSM8K chat prompt + N
//! completion tokens), per-token log-probs, a loss, backward, one AdamW step.
//!
//! `--loss nll` is the peer's objective (−mean completion log-prob); `--loss grpo` runs the
//! learner's real `grpo_step` (on-policy behaviour log-probs, ±1 advantages, β = 0).
//! `--lora-rank R` trains LoRA adapters on every projection instead of all weights.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use anyhow::Result;
use candle_core::D;
use clap::{Args, ValueEnum};
use rand::{Rng, SeedableRng};
use serde_json::json;
use srlm::chat::Message;
use srlm::learner::grpo::{grpo_step, GrpoConfig, ScoredSequence};
use srlm::learner::lanes::Lanes;
use srlm::model::logprobs::DEFAULT_CHUNK_ROWS;
use srlm::model::lora::{LoraAdapters, LoraConfig};
use srlm::model::{token_logprobs, CausalLm, LoadedModel, Qwen2, TokenBatch};
use srlm::optim::{AdamW, AdamWConfig};

use super::bench::{peak_rss_bytes, process_cpu_seconds, reset_peak_rss, QUESTION};
use super::ModelArgs;

/// One timed learner step; returns the loss.
type LearnerStep<'a> = Box<dyn FnMut(&mut AdamW) -> Result<f64> + 'a>;

#[derive(Clone, Copy, ValueEnum)]
enum Loss {
    /// −mean completion log-prob, as the peer computes.
    Nll,
    /// The learner's GRPO step.
    Grpo,
}

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
    /// Timed steps after the warm-up; the mean is reported.
    #[arg(long, default_value_t = 2)]
    steps: usize,
    /// Untimed steps first (allocation, caches); 0 for memory runs of a big model.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Rows of the output projection computed at once.
    #[arg(long = "chunk-rows", default_value_t = DEFAULT_CHUNK_ROWS)]
    chunk_rows: usize,
    #[arg(long, value_enum, default_value_t = Loss::Nll)]
    loss: Loss,
    /// Sequences per forward/backward; gradients of the micro-batches are accumulated into
    /// one update. Defaults to the whole batch.
    #[arg(long = "micro-batch")]
    micro_batch: Option<usize>,
    /// Micro-batches computed at once, one per thread (see `[grpo] lanes`).
    #[arg(long, default_value_t = 1)]
    lanes: usize,
    /// Train rank-R LoRA adapters (α = 2R) on every attention and MLP projection instead of
    /// all weights.
    #[arg(long = "lora-rank")]
    lora_rank: Option<usize>,
}

pub fn run(b: TrainBench) -> Result<()> {
    let LoadedModel { config, weights, tokenizer, .. } = b.model.load()?;
    let weights_params: usize = weights.iter().map(|(_, t)| t.elem_count()).sum();
    let (model, params, _adapters) = match b.lora_rank {
        Some(r) => {
            let targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
            let lora = LoraConfig {
                r,
                alpha: 2.0 * r as f64,
                dropout: 0.0,
                target_modules: targets.iter().map(|s| s.to_string()).collect(),
                seed: 0,
            };
            let adapters = LoraAdapters::init(&lora, &weights, &config)?;
            let model = Qwen2::with_lora(&config, &weights, &adapters, true)?;
            (model, adapters.vars(), Some(adapters))
        }
        None => {
            let (trainable, vars) = weights.to_vars()?;
            drop(weights);
            (Qwen2::new(&config, &trainable)?, vars, None)
        }
    };
    let trainable: usize = params.iter().map(|(_, v)| v.elem_count()).sum();
    let total_params = if b.lora_rank.is_some() { weights_params } else { trainable };
    let model_device = model.device().clone();
    let mut opt = AdamW::new(params, AdamWConfig { lr: 1e-6, ..AdamWConfig::default() })?;

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
    let (p, seq) = (prompt_ids.len(), prompt_ids.len() + b.new_tokens);
    let micro = b.micro_batch.unwrap_or(b.batch).clamp(1, b.batch.max(1));
    let load_peak = peak_rss_bytes()?;
    let step_peak_measured = reset_peak_rss();

    let lanes = Lanes::new(b.lanes)?;
    let lanes = &lanes;
    let phases = RefCell::new(Phases::default());
    let phases = &phases;
    let mut step: LearnerStep = match b.loss {
        Loss::Nll => {
            let batches = seqs
                .chunks(micro)
                .map(|rows| Ok(TokenBatch::right_padded(rows, 0, model.device())?.scoring_only(&completion_mask(rows.len(), p, seq))))
                .collect::<candle_core::Result<Vec<_>>>()?;
            let model = &model;
            Box::new(move |opt: &mut AdamW| {
                let mut grads = opt.accumulator();
                let mut total = 0.0;
                let work = |_: usize, batch: &TokenBatch| -> Result<_> {
                    let t = Instant::now();
                    let lp = token_logprobs(model, batch, 1.0, false, b.chunk_rows)?;
                    // Predictions of the completion tokens: positions p − 1 .. seq − 2 of (b, seq − 1).
                    let share = batch.ids.dim(0)? as f64 / b.batch as f64;
                    let loss = (lp.logprobs.narrow(D::Minus1, p - 1, b.new_tokens)?.mean_all()?.neg()? * share)?;
                    let value = loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
                    let forward_done = Instant::now();
                    let g = loss.backward()?;
                    Ok((value, g, forward_done - t, forward_done.elapsed()))
                };
                lanes.fold_in_order(&batches, work, |(value, g, forward, backward)| {
                    total += value;
                    let t = Instant::now();
                    grads.add(&g)?;
                    phases.borrow_mut().add([forward, backward, t.elapsed()]);
                    Ok(true)
                })?;
                let t = Instant::now();
                opt.step(grads)?;
                phases.borrow_mut().optimizer += t.elapsed();
                Ok(total)
            })
        }
        Loss::Grpo => {
            let batch = on_policy_group(&model, &seqs, p, b.chunk_rows)?;
            let cfg = GrpoConfig { micro_batch_size: micro, lanes: b.lanes, chunk_rows: b.chunk_rows, ..GrpoConfig::default() };
            let model = &model;
            Box::new(move |opt: &mut AdamW| {
                let stats = grpo_step(model, None, &batch, &cfg, opt)?;
                Ok(stats.iterations.last().map_or(f64::NAN, |s| s.loss.loss))
            })
        }
    };
    for _ in 0..b.warmup {
        step(&mut opt)?;
    }
    *phases.borrow_mut() = Phases::default();
    let (start, cpu_start) = (Instant::now(), process_cpu_seconds()?);
    let mut loss = 0.0;
    for _ in 0..b.steps.max(1) {
        loss = step(&mut opt)?;
    }
    // A GPU step is done when the device has run it, not when its launches return.
    model_device.synchronize()?;
    let steps = b.steps.max(1) as f64;
    let seconds = start.elapsed().as_secs_f64() / steps;
    let cpu_seconds = (process_cpu_seconds()? - cpu_start) / steps;
    let tokens = (b.batch * seq) as f64;
    // Model FLOPs utilisation against an H100/H200's dense bf16 peak (989 TFLOP/s): 6 FLOPs per
    // parameter per trained token (forward 2, backward 4), as the issue and the peer count them.
    let flops_per_s = 6.0 * total_params as f64 * tokens / seconds;
    let gib = |bytes: u64| (bytes as f64 / (1u64 << 30) as f64 * 100.0).round() / 100.0;
    println!(
        "{}",
        json!({
            "impl": "srlm", "what": "train", "model": b.model.model, "G": b.batch, "seq": seq,
            "loss_kind": match b.loss { Loss::Nll => "nll", Loss::Grpo => "grpo" },
            "micro_batch": micro, "lanes": lanes.count(), "lora_rank": b.lora_rank, "trainable_params": trainable,
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "tokens_per_s": (tokens / seconds * 10.0).round() / 10.0,
            "tokens_per_cpu_s": (tokens / cpu_seconds * 10.0).round() / 10.0,
            "load_peak_rss_gib": gib(load_peak),
            // Peak since the model was loaded (loading dequantises the checkpoint, a transient
            // peak of its own); null where the kernel cannot reset the high-water mark.
            "step_peak_rss_gib": if step_peak_measured { Some(gib(peak_rss_bytes()?)) } else { None },
            // The whole process: the larger of the two.
            "peak_rss_gib": gib(peak_rss_bytes()?.max(load_peak)),
            "loss": loss, "blas": cfg!(feature = "blas"),
            // Seconds per step in each part (nll only; null for grpo); with lanes, forward and
            // backward add up the lanes' times, which overlap.
            "phases_s": phases.borrow().per_step(steps),
            "threads": std::thread::available_parallelism().map_or(1, |n| n.get()),
            "device": b.model.device, "dtype": b.model.dtype, "params": total_params,
            "tflops": (flops_per_s / 1e10).round() / 100.0, "mfu_989": (flops_per_s / 989e12 * 1e4).round() / 1e4,
        })
    );
    Ok(())
}

/// Wall time of the parts of the timed steps.
#[derive(Default)]
struct Phases {
    forward: Duration,
    backward: Duration,
    accumulate: Duration,
    optimizer: Duration,
}

impl Phases {
    fn add(&mut self, [forward, backward, accumulate]: [Duration; 3]) {
        self.forward += forward;
        self.backward += backward;
        self.accumulate += accumulate;
    }

    fn per_step(&self, steps: f64) -> Option<serde_json::Value> {
        let s = |d: Duration| (d.as_secs_f64() / steps * 1000.0).round() / 1000.0;
        (self.optimizer > Duration::ZERO).then(|| {
            json!({"forward": s(self.forward), "backward": s(self.backward), "accumulate": s(self.accumulate), "optimizer": s(self.optimizer)})
        })
    }
}

/// The group as the learner receives it: behaviour log-probs from the current weights
/// (synchronous GRPO), advantages alternating +1 and −1.
fn on_policy_group(model: &dyn CausalLm, seqs: &[Vec<u32>], prompt_len: usize, chunk_rows: usize) -> Result<Vec<ScoredSequence>> {
    let mut out = Vec::with_capacity(seqs.len());
    for (i, tokens) in seqs.iter().enumerate() {
        let batch = TokenBatch::right_padded(std::slice::from_ref(tokens), 0, model.device())?.scoring_only(&completion_mask(
            1,
            prompt_len,
            tokens.len(),
        ));
        let lp = token_logprobs(model, &batch, 1.0, false, chunk_rows)?.logprobs.detach();
        let completion = lp.narrow(D::Minus1, prompt_len - 1, tokens.len() - prompt_len)?;
        out.push(ScoredSequence {
            tokens: tokens.clone(),
            prompt_len,
            behaviour_logprobs: completion.squeeze(0)?.to_dtype(candle_core::DType::F32)?.to_vec1()?,
            advantage: if i % 2 == 0 { 1.0 } else { -1.0 },
            truncated: false,
        });
    }
    Ok(out)
}

/// (rows, seq − 1) predictions of the completion tokens: positions p − 1 .. seq − 2 of each row.
fn completion_mask(rows: usize, prompt_len: usize, seq: usize) -> Vec<f32> {
    let row: Vec<f32> = (0..seq - 1).map(|i| if i + 1 >= prompt_len { 1.0 } else { 0.0 }).collect();
    row.repeat(rows)
}
