//! `srlm bench transfer`: seconds for a remote generator to download one policy version from
//! the learner node over loopback, through the same hub, chunks and checksum as a run. Both
//! nodes run in this process; the weights are an opaque blob of the model's size in bytes.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args;
use serde_json::json;
use srlm_actors::cluster::{self, DecodeWeights, EncodeWeights, ListenOptions, WorkerRole};
use srlm_actors::context::Context;
use srlm_actors::ledger::Ledger;
use srlm_actors::{Broadcast, Policy, Prompt, RunState, RuntimeConfig, ShutdownHandle};

#[derive(Args)]
pub struct TransferBench {
    /// Parameter count: a number, or smollm2-135m (134,515,008) or qwen2.5-0.5b (494,032,768).
    #[arg(long, default_value = "smollm2-135m")]
    params: String,
    /// Bytes per parameter: 4 for f32 (what the learner holds), 2 for bf16.
    #[arg(long, default_value_t = 4)]
    bytes_per_param: u64,
    /// Versions downloaded one after another; the first is a warm-up.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Chunk size in MiB (ractor_cluster's frame limit is 16 MiB).
    #[arg(long, default_value_t = 8)]
    chunk_mib: usize,
}

fn param_count(name: &str) -> Result<u64> {
    Ok(match name {
        "smollm2-135m" => 134_515_008,
        "qwen2.5-0.5b" => 494_032_768,
        n => n.parse().with_context(|| format!("--params {n}: a number, smollm2-135m or qwen2.5-0.5b"))?,
    })
}

pub fn run(b: TransferBench) -> Result<()> {
    let bytes = param_count(&b.params)? * b.bytes_per_param;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let times = rt.block_on(async move {
        // A pattern rather than zeros, so the checksum covers something.
        let blob: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
        let cfg = RuntimeConfig { metrics_addr: None, ..RuntimeConfig::default() };
        let broadcast = Broadcast::new(0, Policy { version: 0, weights: Arc::new(blob) }, Box::new(|w: &Vec<u8>, _| w.clone()));
        let ledger = Ledger::new(Arc::new(Vec::<Prompt>::new()), &RunState::default());
        let ctx = Arc::new(Context::new(cfg, ledger, broadcast, ShutdownHandle::new()));
        let encode: EncodeWeights<Vec<u8>> = Arc::new(|w: &Vec<u8>| w.clone());
        let decode: DecodeWeights<Vec<u8>> = Arc::new(|b: &[u8]| Ok(b.to_vec()));
        let mut opts = ListenOptions::new(addr, "bench".into(), String::new(), encode);
        opts.chunk_bytes = b.chunk_mib << 20;
        let node = cluster::listen(Arc::clone(&ctx), opts).await?;
        let conn = cluster::connect(addr, "bench".into(), WorkerRole::Generator, Duration::from_secs(10), None).await?;
        let mut times = Vec::new();
        for version in 0..=b.runs as u64 {
            if version > 0 {
                let weights = Arc::clone(&ctx.broadcast.policy_for(0).weights);
                ctx.broadcast.publish(Policy { version, weights });
            }
            let d = cluster::download(&conn, version, &decode).await?;
            anyhow::ensure!(d.bytes == bytes, "downloaded {} of {bytes} bytes", d.bytes);
            if version > 0 {
                times.push(d.seconds);
            }
        }
        conn.close().await;
        node.close(Duration::ZERO).await;
        anyhow::Ok(times)
    })?;
    let best = times.iter().copied().fold(f64::INFINITY, f64::min);
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    println!(
        "{}",
        json!({
            "impl": "srlm", "what": "weight_transfer", "params": b.params, "bytes": bytes,
            "chunk_mib": b.chunk_mib, "best_s": (best * 1e3).round() / 1e3, "mean_s": (mean * 1e3).round() / 1e3,
            "gb_per_s": ((bytes as f64 / best / 1e9) * 100.0).round() / 100.0, "runs": b.runs,
        })
    );
    Ok(())
}
