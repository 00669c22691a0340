//! Finding and loading a checkpoint: an HF directory, a GGUF file, or a hub id in the local HF cache.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};

use super::config::ModelConfig;
use super::gguf::GgufFile;
use super::weights::Weights;
use super::{ModelError, Qwen2};
use crate::tokenizer::Tokenizer;

/// Where a model's files are.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    /// config.json, model.safetensors (or a sharded index), tokenizer files.
    HfDir(PathBuf),
    /// A single .gguf file with the tokenizer in its metadata.
    Gguf(PathBuf),
}

impl ModelSource {
    /// `spec` is a directory, a .gguf file, or a hub id such as `Qwen/Qwen2.5-0.5B-Instruct`,
    /// which is looked up in the local HF cache (`$HF_HOME/hub`); nothing is downloaded.
    /// A leading `~/` is the home folder (recipes name fetched checkpoints that way).
    pub fn resolve(spec: &str) -> Result<Self, ModelError> {
        let expanded = expand_home(spec);
        let path = expanded.as_path();
        if path.is_file() {
            return Ok(ModelSource::Gguf(path.to_path_buf()));
        }
        if path.is_dir() {
            if path.join("config.json").is_file() {
                return Ok(ModelSource::HfDir(path.to_path_buf()));
            }
            return Err(ModelError::NotFound(format!("{}: directory has no config.json (expected an HF model directory)", path.display())));
        }
        if looks_like_hub_id(spec) {
            let cache = hf_hub::Cache::from_env();
            if let Some(config) = cache.model(spec.to_string()).get("config.json") {
                if let Some(dir) = config.parent() {
                    return Ok(ModelSource::HfDir(dir.to_path_buf()));
                }
            }
            return Err(ModelError::NotFound(format!(
                "model '{spec}' is not a local path and is not in the HF cache at {} \
                 (this tool does not download: fetch it on a connected machine, e.g. \
                 `huggingface-cli download {spec}`, and copy the cache or pass the directory)",
                cache.path().display()
            )));
        }
        Err(ModelError::NotFound(format!("{spec}: no such file or directory")))
    }

    pub fn path(&self) -> &Path {
        match self {
            ModelSource::HfDir(p) | ModelSource::Gguf(p) => p,
        }
    }
}

/// `spec` with a leading `~/` replaced by $HOME (left as it is without a HOME).
fn expand_home(spec: &str) -> PathBuf {
    match (spec.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(spec),
    }
}

fn looks_like_hub_id(spec: &str) -> bool {
    let parts: Vec<&str> = spec.split('/').collect();
    parts.len() == 2
        && parts.iter().all(|p| !p.is_empty() && !p.starts_with('.') && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
}

/// A checkpoint in memory: shape, weights in the working dtype, tokenizer.
pub struct LoadedModel {
    pub source: ModelSource,
    pub config: ModelConfig,
    pub weights: Weights,
    pub tokenizer: Tokenizer,
}

impl LoadedModel {
    pub fn load(spec: &str, device: &Device, dtype: DType) -> Result<Self, ModelError> {
        let source = ModelSource::resolve(spec)?;
        let (config, weights, tokenizer) = match &source {
            ModelSource::HfDir(dir) => load_hf_dir(dir)?,
            ModelSource::Gguf(path) => load_gguf(path)?,
        };
        let weights = weights.to(dtype, device)?;
        Ok(LoadedModel { source, config, weights, tokenizer })
    }

    /// The decoder over these weights (shared, not copied), for training and scoring.
    pub fn model(&self) -> Result<Qwen2, ModelError> {
        Qwen2::new(&self.config, &self.weights)
    }

    /// The decoder for generation (see `Qwen2::for_inference`).
    pub fn inference_model(&self) -> Result<Qwen2, ModelError> {
        Qwen2::for_inference(&self.config, &self.weights)
    }
}

/// The shape and tokenizer of a checkpoint without reading its weights: what a remote generator
/// needs, since its weights come from the learner node.
pub fn shape_and_tokenizer(spec: &str) -> Result<(ModelConfig, Tokenizer), ModelError> {
    match ModelSource::resolve(spec)? {
        ModelSource::HfDir(dir) => Ok((ModelConfig::from_hf_file(&dir.join("config.json"))?, Tokenizer::from_hf_dir(&dir)?)),
        ModelSource::Gguf(path) => {
            let file = GgufFile::open(&path)?;
            let mut config = file.config()?;
            let tokenizer = Tokenizer::from_gguf(&file.content, &path)?;
            config.eos_token_ids = tokenizer.eos_token_ids().to_vec();
            Ok((config, tokenizer))
        }
    }
}

fn load_gguf(path: &Path) -> Result<(ModelConfig, Weights, Tokenizer), ModelError> {
    let mut file = GgufFile::open(path)?;
    let mut config = file.config()?;
    let weights = file.weights(&config, &Device::Cpu)?;
    Qwen2::new(&config, &weights)?;
    let tokenizer = Tokenizer::from_gguf(&file.content, path)?;
    config.eos_token_ids = tokenizer.eos_token_ids().to_vec();
    Ok((config, weights, tokenizer))
}

fn load_hf_dir(dir: &Path) -> Result<(ModelConfig, Weights, Tokenizer), ModelError> {
    let (config, weights) = load_hf_weights(dir)?;
    // Building the decoder checks every tensor's presence and shape (it copies nothing), before
    // a missing tokenizer can hide a broken checkpoint.
    Qwen2::new(&config, &weights)?;
    let tokenizer = Tokenizer::from_hf_dir(dir)?;
    Ok((config, weights, tokenizer))
}

/// config.json and the safetensors weights (f32, CPU) of an HF directory, without its tokenizer.
pub fn load_hf_weights(dir: &Path) -> Result<(ModelConfig, Weights), ModelError> {
    let config = ModelConfig::from_hf_file(&dir.join("config.json"))?;
    let mut tensors = BTreeMap::new();
    for shard in safetensors_files(dir)? {
        let loaded = candle_core::safetensors::load(&shard, &Device::Cpu)
            .map_err(|e| ModelError::weights(&shard, format!("not a readable safetensors file: {e}")))?;
        for (name, t) in loaded {
            let t = if t.dtype() == DType::F32 { t } else { t.to_dtype(DType::F32)? };
            tensors.insert(name, t);
        }
    }
    Ok((config, Weights::new(tensors, &dir.join("model.safetensors"))))
}

/// model.safetensors, or the shards named by model.safetensors.index.json.
fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if !index.is_file() {
        return Err(ModelError::NotFound(format!("{}: no model.safetensors or model.safetensors.index.json", dir.display())));
    }
    let text = std::fs::read_to_string(&index).map_err(|e| ModelError::io(&index, e))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ModelError::BadConfig { path: index.clone(), reason: format!("not valid JSON: {e}") })?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ModelError::BadConfig { path: index.clone(), reason: "missing object 'weight_map'".into() })?;
    let mut files: Vec<PathBuf> = map.values().filter_map(|v| v.as_str()).map(|f| dir.join(f)).collect();
    files.sort();
    files.dedup();
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        return Err(ModelError::NotFound(format!("{}: shard {} is missing", index.display(), missing.display())));
    }
    Ok(files)
}

/// `cpu`, `cuda` or `cuda:N` (the latter need the `cuda` cargo feature). `cpu:N` is the CPU
/// too: a separate placement slot, so a generator there keeps its own copy of the weights.
pub fn parse_device(spec: &str) -> Result<Device, String> {
    let cpu_slot = spec.strip_prefix("cpu:").is_some_and(|n| n.parse::<usize>().is_ok());
    match spec {
        _ if spec == "cpu" || cpu_slot => Ok(Device::Cpu),
        _ => {
            let ordinal = match spec.strip_prefix("cuda") {
                Some("") => 0,
                Some(rest) => rest
                    .strip_prefix(':')
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| format!("bad device '{spec}': expected cpu, cpu:N, cuda or cuda:N"))?,
                None => return Err(format!("bad device '{spec}': expected cpu, cpu:N, cuda or cuda:N")),
            };
            if !candle_core::utils::cuda_is_available() {
                return Err(format!("device '{spec}' needs a build with `--features cuda`"));
            }
            cuda_device(ordinal).map_err(|e| format!("device '{spec}': {e}"))
        }
    }
}

/// One candle device per CUDA ordinal for the whole process: candle treats two `new_cuda(0)`
/// handles as different devices (ops between their tensors fail, copies go through the host).
fn cuda_device(ordinal: usize) -> candle_core::Result<Device> {
    static DEVICES: std::sync::Mutex<Vec<(usize, Device)>> = std::sync::Mutex::new(Vec::new());
    let mut devices = srlm_actors::poison::lock(&DEVICES);
    if let Some((_, d)) = devices.iter().find(|(o, _)| *o == ordinal) {
        return Ok(d.clone());
    }
    let device = Device::new_cuda(ordinal)?;
    devices.push((ordinal, device.clone()));
    Ok(device)
}

/// `f32` (default), `bf16` or `f16`.
pub fn parse_dtype(spec: &str) -> Result<DType, String> {
    match spec {
        "f32" | "float32" => Ok(DType::F32),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        "f16" | "float16" => Ok(DType::F16),
        _ => Err(format!("bad dtype '{spec}': expected f32, bf16 or f16")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_are_recognised() {
        assert!(looks_like_hub_id("Qwen/Qwen2.5-0.5B-Instruct"));
        assert!(!looks_like_hub_id("./model"));
        assert!(!looks_like_hub_id("a/b/c"));
        assert!(!looks_like_hub_id("../x"));
    }

    #[test]
    fn absent_hub_model_says_it_is_offline() {
        std::env::set_var("HF_HOME", "/nonexistent-srlm-test");
        let err = ModelSource::resolve("NoSuchOrg/no-such-model").unwrap_err().to_string();
        assert!(err.contains("not in the HF cache"), "{err}");
    }

    #[test]
    fn devices_and_dtypes_parse() {
        assert!(matches!(parse_device("cpu"), Ok(Device::Cpu)));
        assert!(matches!(parse_device("cpu:1"), Ok(Device::Cpu)));
        assert!(parse_device("cpu:x").unwrap_err().contains("cpu:x"));
        assert!(parse_device("gpu").is_err());
        assert_eq!(parse_dtype("bf16").unwrap(), DType::BF16);
        assert!(parse_dtype("f8").unwrap_err().contains("f8"));
    }
}
