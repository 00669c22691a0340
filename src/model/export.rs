//! `srlm export`: a model in memory → an HF directory that transformers and vLLM load as is.
//!
//! Everything is written into a temporary sibling directory, synced, then renamed into place,
//! so a crash never leaves a half-written model at the destination.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use serde_json::json;

use super::load::LoadedModel;
use super::{ModelConfig, ModelError, Weights};
use crate::tokenizer::Tokenizer;

/// Writes `model` to `out` in `dtype`. Fails if `out` exists unless `overwrite`.
pub fn export_hf(model: &LoadedModel, out: &Path, dtype: DType, overwrite: bool) -> Result<(), ModelError> {
    export_weights(&model.config, &model.weights, Some(&model.tokenizer), out, dtype, overwrite)
}

/// Writes an HF directory of `weights` atomically: a temporary sibling, synced, then renamed.
pub fn export_weights(
    cfg: &ModelConfig,
    weights: &Weights,
    tokenizer: Option<&Tokenizer>,
    out: &Path,
    dtype: DType,
    overwrite: bool,
) -> Result<(), ModelError> {
    if out.exists() && !overwrite {
        return Err(ModelError::NotFound(format!("{}: already exists (pass --force to replace it)", out.display())));
    }
    let tmp = temporary_sibling(out)?;
    let result =
        write_hf_files(&tmp, cfg, weights, tokenizer, dtype).and_then(|()| sync_dir_files(&tmp)).and_then(|()| replace_dir(&tmp, out));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// Writes `tensors` to `path` with the permissions of `like`, a file beside it: the safetensors
/// writer creates its file owner-only, which other readers of a model directory trip over.
pub(crate) fn save_safetensors_like(tensors: &HashMap<String, Tensor>, path: &Path, like: &Path) -> Result<(), ModelError> {
    candle_core::safetensors::save(tensors, path).map_err(|e| ModelError::weights(path, format!("cannot write: {e}")))?;
    let like = std::fs::metadata(like).map_err(|e| ModelError::io(like, e))?;
    std::fs::set_permissions(path, like.permissions()).map_err(|e| ModelError::io(path, e))
}

/// Writes config.json, model.safetensors, generation_config.json and, when given, the tokenizer
/// files into the existing directory `dir` (not synced: the caller syncs and renames).
pub fn write_hf_files(
    dir: &Path,
    cfg: &ModelConfig,
    weights: &Weights,
    tokenizer: Option<&Tokenizer>,
    dtype: DType,
) -> Result<(), ModelError> {
    let torch_dtype = match dtype {
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        _ => "float32",
    };
    write_json(&dir.join("config.json"), &cfg.to_hf_json(torch_dtype))?;

    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (name, t) in weights.iter() {
        // Tied checkpoints store the embedding once; HF re-ties lm_head on load.
        if cfg.tie_word_embeddings && name == "lm_head.weight" {
            continue;
        }
        tensors.insert(name.to_string(), t.to_dtype(dtype)?.to_device(&candle_core::Device::Cpu)?);
    }
    save_safetensors_like(&tensors, &dir.join("model.safetensors"), &dir.join("config.json"))?;

    let mut generation = json!({ "_from_model_config": false, "do_sample": true });
    if let Some(bos) = tokenizer.and_then(|t| t.bos_token_id()).or(cfg.bos_token_id) {
        generation["bos_token_id"] = json!(bos);
    }
    let eos = tokenizer.map_or(cfg.eos_token_ids.as_slice(), |t| t.eos_token_ids());
    if let Some(eos) = crate::id_list::to_json(eos) {
        generation["eos_token_id"] = eos;
    }
    if let Some(pad) = tokenizer.and_then(|t| t.pad_token_id()) {
        generation["pad_token_id"] = json!(pad);
    }
    if let Some(tok) = tokenizer {
        tok.save_hf(dir)?;
    }
    write_json(&dir.join("generation_config.json"), &generation)
}

pub(crate) fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), ModelError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| ModelError::weights(path, e.to_string()))?;
    std::fs::write(path, text + "\n").map_err(|e| ModelError::io(path, e))
}

pub(crate) fn temporary_sibling(out: &Path) -> Result<PathBuf, ModelError> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| ModelError::io(&parent, e))?;
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| ModelError::io(&tmp, e))?;
    }
    std::fs::create_dir(&tmp).map_err(|e| ModelError::io(&tmp, e))?;
    Ok(tmp)
}

pub(crate) fn sync_dir_files(dir: &Path) -> Result<(), ModelError> {
    for entry in std::fs::read_dir(dir).map_err(|e| ModelError::io(dir, e))? {
        let path = entry.map_err(|e| ModelError::io(dir, e))?.path();
        File::open(&path).and_then(|f| f.sync_all()).map_err(|e| ModelError::io(&path, e))?;
    }
    File::open(dir).and_then(|f| f.sync_all()).map_err(|e| ModelError::io(dir, e))
}

/// Moves `tmp` to `out`; an existing `out` is moved aside first and removed only afterwards.
pub(crate) fn replace_dir(tmp: &Path, out: &Path) -> Result<(), ModelError> {
    if out.exists() {
        let old = tmp.with_extension("old");
        std::fs::rename(out, &old).map_err(|e| ModelError::io(out, e))?;
        std::fs::rename(tmp, out).map_err(|e| ModelError::io(out, e))?;
        std::fs::remove_dir_all(&old).map_err(|e| ModelError::io(&old, e))?;
    } else {
        std::fs::rename(tmp, out).map_err(|e| ModelError::io(out, e))?;
    }
    Ok(())
}
