//! `srlm bench sync`: seconds to copy one published policy version to a generator device, as
//! the runtime does once per version and generator device (`srlm_weight_sync_seconds`).

use std::time::Instant;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use srlm::model::load::{parse_device, parse_dtype};
use srlm::train::placement::copy_weights;

use super::ModelArgs;

#[derive(Args)]
pub struct SyncBench {
    /// The learner's side: `--device` and `--dtype` are where and how the weights live.
    #[command(flatten)]
    model: ModelArgs,
    /// The generator's device.
    #[arg(long)]
    to: String,
    /// The generator's dtype (the learner's when absent).
    #[arg(long = "to-dtype")]
    to_dtype: Option<String>,
    /// Timed copies after one warm-up; the best and the mean are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

pub fn run(b: SyncBench) -> Result<()> {
    let m = b.model.load()?;
    let to = parse_device(&b.to).map_err(anyhow::Error::msg)?;
    let dtype = b.to_dtype.as_deref().map(parse_dtype).transpose().map_err(anyhow::Error::msg)?;
    let bytes: usize = m.weights.iter().map(|(_, t)| t.elem_count() * t.dtype().size_in_bytes()).sum();
    let mut times = Vec::with_capacity(b.runs);
    for run in 0..=b.runs {
        let start = Instant::now();
        let copied = copy_weights(&m.weights, &to, dtype)?;
        // The copy is done when the device says so, not when the calls return.
        to.synchronize()?;
        let seconds = start.elapsed().as_secs_f64();
        drop(copied);
        if run > 0 {
            times.push(seconds);
        }
    }
    let best = times.iter().copied().fold(f64::INFINITY, f64::min);
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    println!(
        "{}",
        json!({
            "impl": "srlm", "what": "weight_sync", "model": b.model.model, "from": b.model.device,
            "from_dtype": b.model.dtype, "to": b.to, "to_dtype": b.to_dtype.unwrap_or(b.model.dtype.clone()),
            "bytes": bytes, "best_s": (best * 1e4).round() / 1e4, "mean_s": (mean * 1e4).round() / 1e4,
            "gb_per_s": ((bytes as f64 / best / 1e9) * 100.0).round() / 100.0, "runs": b.runs,
        })
    );
    Ok(())
}
