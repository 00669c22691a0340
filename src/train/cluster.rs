//! `srlm train --listen` and `srlm worker`: what the model side adds to the runtime's cluster
//! layer — the cookie rule, weights as safetensors bytes, and a worker's sampler or rewarder
//! built from the recipe the learner node sends.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use srlm_actors::cluster::{DecodeWeights, EncodeWeights, ListenOptions, ServerTls};
use srlm_actors::Pipeline;

use crate::model::Weights;
use crate::train::config::TrainConfig;

/// How the learner node accepts workers (`srlm train --listen`).
#[derive(Debug, Clone)]
pub struct Listen {
    pub addr: SocketAddr,
    pub cookie: String,
    /// Generators and scorers still run on the learner node (0: only remote ones).
    pub local_generators: usize,
    pub local_scorers: usize,
    /// Sessions over TLS with this certificate.
    pub tls: Option<ServerTls>,
}

/// Used only on loopback, where every peer is this machine's own user anyway.
const LOOPBACK_COOKIE: &str = "srlm-loopback";

/// The cookie from `--cookie-file` (trimmed); none is allowed only on a loopback address.
pub fn cookie(addr: SocketAddr, file: Option<&Path>) -> Result<String> {
    let Some(file) = file else {
        if addr.ip().is_loopback() {
            return Ok(LOOPBACK_COOKIE.into());
        }
        bail!("{addr} is not a loopback address: pass --cookie-file (the same file on every node) so strangers cannot join");
    };
    let text = std::fs::read_to_string(file).with_context(|| format!("--cookie-file {}", file.display()))?;
    let cookie = text.trim();
    if cookie.is_empty() {
        bail!("--cookie-file {}: the file is empty", file.display());
    }
    Ok(cookie.to_string())
}

/// Weights as one safetensors buffer: what the learner node sends to remote generators.
pub fn encode_weights(w: &Weights) -> Vec<u8> {
    let tensors: Vec<(&str, &candle_core::Tensor)> = w.iter().collect();
    // Serializing in-memory tensors fails only on a shape/dtype bug, which every worker would then report.
    safetensors_candle::serialize(tensors, None).unwrap_or_default()
}

pub fn decode_weights(bytes: &[u8], device: &Device) -> Result<Weights, String> {
    let tensors = candle_core::safetensors::load_buffer(bytes, device).map_err(|e| e.to_string())?;
    if tensors.is_empty() {
        return Err("no tensors".into());
    }
    Ok(Weights::new(tensors.into_iter().collect::<BTreeMap<_, _>>(), &PathBuf::from("<learner node>")))
}

/// The recipe a worker receives: the whole config, as TOML.
pub fn recipe_text(cfg: &TrainConfig) -> Result<String> {
    toml::to_string(cfg).context("writing the recipe for workers")
}

/// Opens the pipeline to workers: local actors shrink to `listen`'s counts.
pub fn attach<S, R, T>(pipeline: &mut Pipeline<S, R, T>, listen: &Listen, cfg: &TrainConfig) -> Result<()>
where
    S: srlm_actors::Sampler<Weights = Weights>,
{
    pipeline.config.generators = listen.local_generators;
    pipeline.config.scorers = listen.local_scorers;
    let encode: EncodeWeights<Weights> = Arc::new(encode_weights);
    let mut opts = ListenOptions::new(listen.addr, listen.cookie.clone(), recipe_text(cfg)?, encode);
    opts.tls = listen.tls.clone();
    if let Some(tls) = &opts.tls {
        // A bad certificate or key fails here, before any model loads.
        tls.acceptor()?;
    }
    pipeline.listen = Some(opts);
    Ok(())
}

/// What workers on other nodes did (all zero without `--listen`).
pub fn remote_json(r: &srlm_actors::RemoteCounts) -> serde_json::Value {
    serde_json::json!({
        "workers_joined": r.workers_joined, "workers_lost": r.workers_lost,
        "groups_generated": r.groups_generated, "groups_scored": r.groups_scored,
        "frames_refused": r.frames_refused, "weight_transfers": r.weight_transfers,
        "weight_bytes": r.weight_bytes, "weight_transfer_s": r.weight_transfer_seconds,
    })
}

pub fn decoder(device: Device) -> DecodeWeights<Weights> {
    Arc::new(move |bytes: &[u8]| decode_weights(bytes, &device))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_survive_the_wire_and_garbage_does_not_decode() {
        let dev = Device::Cpu;
        let t = candle_core::Tensor::arange(0f32, 6f32, &dev).unwrap().reshape((2, 3)).unwrap();
        let w = Weights::new(BTreeMap::from([("a.weight".to_string(), t)]), Path::new("x"));
        let back = decode_weights(&encode_weights(&w), &dev).unwrap();
        let got: Vec<Vec<f32>> = back.get("a.weight", &[2, 3]).unwrap().to_vec2().unwrap();
        assert_eq!(got, vec![vec![0., 1., 2.], vec![3., 4., 5.]]);
        assert!(decode_weights(b"not safetensors", &dev).is_err());
    }

    #[test]
    fn a_cookie_is_required_off_loopback() {
        assert!(cookie("127.0.0.1:7000".parse().unwrap(), None).is_ok());
        let e = cookie("0.0.0.0:7000".parse().unwrap(), None).unwrap_err().to_string();
        assert!(e.contains("--cookie-file"), "{e}");
    }
}
