//! `srlm bench generate`: group-generation throughput on the peer's workload
//! (../shared/bench/peer_torch.py): one GSM8K chat prompt, G completions of exactly N tokens.

use std::time::Instant;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;
use srlm::chat::Message;
use srlm::generate::continuous::generate_groups;
use srlm::generate::{generate_group, GenerationConfig};
use srlm::sampling::{SamplingParams, StopStrings};

use super::ModelArgs;

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(Subcommand)]
enum BenchWhat {
    /// Generated tokens/s of one group (G completions of exactly N new tokens, temperature 1).
    Generate(GenerateBench),
    /// GFLOP/s of the model's matrix products (candle's gemm and, with `--features blas`, BLAS).
    Matmul(super::bench_matmul::MatmulBench),
    /// Trained tokens/s and peak memory of one learner step (forward, backward, AdamW).
    Train(super::bench_train::TrainBench),
    /// One GRPO workload with max_staleness 0, 1, 2 on split cores and synchronous on both cores.
    Staleness(super::bench_staleness::StalenessBench),
    /// Seconds to copy the weights to a generator device (one policy version's weight sync).
    Sync(super::bench_sync::SyncBench),
    /// Seconds for a remote generator to download one policy version over loopback.
    Transfer(super::bench_transfer::TransferBench),
}

#[derive(Args)]
struct GenerateBench {
    #[command(flatten)]
    model: ModelArgs,
    /// Group size G.
    #[arg(long, default_value_t = 16)]
    n: usize,
    /// New tokens per completion N (end-of-sequence is suppressed until then).
    #[arg(long = "new-tokens", default_value_t = 128)]
    new_tokens: usize,
    /// Timed repetitions after one short warm-up; the best is reported.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Sampling temperature (1: the peer's workload).
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    /// Nucleus mass (1: no cut).
    #[arg(long = "top-p", default_value_t = 1.0)]
    top_p: f32,
    /// Groups of G decoding together through continuous batching (`generate::continuous`):
    /// GROUPS prompts, their groups in flight at once; absent: one group, `generate_group`.
    #[arg(long)]
    groups: Option<usize>,
}

pub(super) const QUESTION: &str = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in \
May. How many clips did Natalia sell altogether in April and May?";

pub fn run(args: BenchArgs) -> Result<()> {
    match args.what {
        BenchWhat::Generate(b) => generate(b),
        BenchWhat::Matmul(b) => super::bench_matmul::run(b),
        BenchWhat::Train(b) => super::bench_train::run(b),
        BenchWhat::Staleness(b) => super::bench_staleness::run(b),
        BenchWhat::Sync(b) => super::bench_sync::run(b),
        BenchWhat::Transfer(b) => super::bench_transfer::run(b),
    }
}

fn generate(b: GenerateBench) -> Result<()> {
    let m = b.model.load()?;
    let model = m.inference_model()?;
    let prompt = m.tokenizer.chat_template()?.render(&[Message::new("user", QUESTION)], true)?;
    let ids = m.tokenizer.encode(&prompt, false)?;
    let sampling = SamplingParams { temperature: b.temperature, top_p: b.top_p, ..SamplingParams::default() };
    sampling.validate()?;
    let cfg = GenerationConfig {
        sampling,
        max_new_tokens: b.new_tokens,
        min_new_tokens: b.new_tokens,
        eos_ids: m.tokenizer.eos_token_ids().to_vec(),
        stop: StopStrings::default(),
        seed: 0,
    };
    // The warm-up (caches, kernels) needs a few tokens, not a whole run.
    let warm = GenerationConfig { max_new_tokens: b.new_tokens.min(16), min_new_tokens: b.new_tokens.min(16), ..cfg.clone() };
    let groups = b.groups.unwrap_or(1);
    anyhow::ensure!(groups >= 1, "--groups must be at least 1");
    let run = |cfg: &GenerationConfig| -> Result<usize> {
        let mut tokens = 0;
        match b.groups {
            None => {
                tokens += generate_group(&model, &m.tokenizer, &ids, b.n, 0, cfg, |_, _| {})?.iter().map(|c| c.ids.len()).sum::<usize>()
            }
            Some(groups) => {
                let prompts = vec![ids.clone(); groups];
                let streams: Vec<u64> = (0..groups as u64).map(|i| i * b.n as u64).collect();
                generate_groups(
                    &model,
                    &m.tokenizer,
                    &prompts,
                    &streams,
                    b.n,
                    groups * b.n,
                    cfg,
                    |_, done| {
                        tokens += done.iter().map(|c| c.ids.len()).sum::<usize>();
                        Ok(())
                    },
                    |_, _, _| {},
                )?;
            }
        }
        Ok(tokens)
    };
    run(&warm)?;
    // Wall and CPU seconds of the fastest timed run; CPU time depends less on the machine's load.
    let (mut best, mut best_cpu) = (f64::INFINITY, f64::INFINITY);
    let expected = groups * b.n * b.new_tokens;
    for _ in 0..b.runs.max(1) {
        let (start, cpu_start) = (Instant::now(), process_cpu_seconds()?);
        let tokens = run(&cfg)?;
        let (seconds, cpu) = (start.elapsed().as_secs_f64(), process_cpu_seconds()? - cpu_start);
        anyhow::ensure!(tokens == expected, "expected {expected} tokens, got {tokens}");
        if seconds < best {
            (best, best_cpu) = (seconds, cpu);
        }
    }
    let tokens = expected as f64;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{}",
        json!({
            "impl": "srlm", "what": "gen", "model": b.model.model, "G": b.n, "N": b.new_tokens, "groups": groups,
            "rows_in_flight": groups * b.n,
            "prompt_tokens": ids.len(), "seconds": (best * 1000.0).round() / 1000.0,
            "tokens_per_s": (tokens / best * 10.0).round() / 10.0,
            "tokens_per_cpu_s": (tokens / best_cpu * 10.0).round() / 10.0,
            "threads": threads, "device": b.model.device, "dtype": b.model.dtype,
            "temperature": b.temperature, "top_p": b.top_p,
        })
    );
    Ok(())
}

/// User + system CPU time of this process, all threads (/proc/self/stat, 10 ms ticks).
pub fn process_cpu_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th overall.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        let f = fields.get(i).ok_or_else(|| anyhow::anyhow!("/proc/self/stat: missing field {}", i + 3))?;
        Ok(f.parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// Peak resident memory of this process in bytes (VmHWM in /proc/self/status).
/// Resets the peak-RSS high-water mark (Linux `clear_refs` 5); false where that is refused.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

pub fn peak_rss_bytes() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).ok_or_else(|| anyhow::anyhow!("/proc/self/status: no VmHWM"))?;
    let kib: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse()?;
    Ok(kib * 1024)
}
