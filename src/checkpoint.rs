//! Learner → disk: checkpoints that transformers can load and that resume training exactly.
//!
//! A checkpoint is a directory `checkpoint-<step>` holding
//! - an HF model directory (config.json, model.safetensors, generation_config.json, tokenizer
//!   files when there is a tokenizer), written by `model::export`;
//! - `optimizer.safetensors`: AdamW's moments, keyed `m.<param>` / `v.<param>`;
//! - `trainer_state.json`: step, skipped steps, policy version, data cursor, RNG states, the
//!   hash of the run's config and free-form algorithm state;
//! - optional extra files (the hook for PEFT adapters: `adapter_config.json`,
//!   `adapter_model.safetensors`), written and verified like the rest;
//! - `manifest.json`, written last: the size and CRC-32 of every other file.
//!
//! It is written into a temporary sibling, synced and renamed, so a crash leaves either the old
//! state or the new one. Loading checks the manifest first and refuses a damaged checkpoint (a
//! missing file, a wrong size, a checksum mismatch) or one saved for another architecture,
//! naming the file. CRC-32 (crc32fast, already in the dependency tree) rather than SHA-256: it
//! guards against truncation and bit rot, not against tampering, and runs at several GB/s, so
//! verifying a 2 GB model costs well under a second.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::export::{replace_dir, save_safetensors_like, sync_dir_files, temporary_sibling, write_hf_files, write_json};
use crate::model::load::load_hf_weights;
use crate::model::{ModelConfig, ModelError, Weights};
use crate::optim::{AdamW, OptimError};
use crate::tokenizer::Tokenizer;

pub const TRAINER_STATE: &str = "trainer_state.json";
pub const OPTIMIZER: &str = "optimizer.safetensors";
pub const MANIFEST: &str = "manifest.json";
const PREFIX: &str = "checkpoint-";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("damaged checkpoint: {path}: {reason}")]
    Damaged { path: PathBuf, reason: String },
    #[error("{path}: saved for a different model: {field} is {found}, this run has {expected}")]
    Incompatible { path: PathBuf, field: String, expected: String, found: String },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{path}: {source}")]
    Optim { path: PathBuf, source: OptimError },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io { path: path.to_path_buf(), source }
}

/// The exact state of a ChaCha8 generator: key, stream and position in the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// 32-byte key, hex.
    pub key: String,
    pub stream: u64,
    /// Words consumed (a u128, kept as a decimal string because JSON numbers stop at 2^53).
    pub word_pos: String,
}

impl RngState {
    pub fn capture(rng: &ChaCha8Rng) -> Self {
        RngState {
            key: rng.get_seed().iter().map(|b| format!("{b:02x}")).collect(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    pub fn restore(&self) -> Result<ChaCha8Rng, String> {
        use rand::SeedableRng;
        if self.key.len() != 64 || !self.key.is_ascii() {
            return Err(format!("RNG key '{}' is not 64 hex digits", self.key));
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte =
                u8::from_str_radix(&self.key[2 * i..2 * i + 2], 16).map_err(|_| format!("RNG key '{}' is not 64 hex digits", self.key))?;
        }
        let pos: u128 = self.word_pos.parse().map_err(|_| format!("RNG word_pos '{}' is not an integer", self.word_pos))?;
        let mut rng = ChaCha8Rng::from_seed(key);
        rng.set_stream(self.stream);
        rng.set_word_pos(pos);
        Ok(rng)
    }
}

/// Everything of a run, besides weights and moments, that resuming needs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainerState {
    /// Learner steps taken (skipped updates included).
    pub step: u64,
    pub skipped_steps: u64,
    /// The version of the policy these weights are (what generators are told).
    pub policy_version: u64,
    /// Position in the training data: the next prompt or example never handed out (the
    /// runtime's cursor; those handed out but not trained are `extra.pending`).
    pub data_cursor: u64,
    pub epoch: u64,
    /// Named generators (sampling, data order, dropout…).
    pub rng: BTreeMap<String, RngState>,
    /// Hash of the run's config; a resumed run can refuse a changed config.
    pub config_hash: String,
    /// The run that wrote it: retention deletes only its own run's checkpoints.
    pub run_id: String,
    /// Algorithm-specific state.
    pub extra: Value,
}

/// A file a checkpoint carries beside the model: the hook for PEFT adapters and the like.
pub enum ExtraFile {
    Json { name: String, value: Value },
    Tensors { name: String, tensors: HashMap<String, Tensor> },
}

/// What to save.
pub struct CheckpointContents<'a> {
    pub config: &'a ModelConfig,
    /// Full model weights; None for a checkpoint whose model is the frozen base plus adapters
    /// (then the adapters travel in `extra` and config.json still records the architecture).
    pub weights: Option<&'a Weights>,
    pub tokenizer: Option<&'a Tokenizer>,
    pub optimizer: &'a AdamW,
    pub state: &'a TrainerState,
    pub extra: &'a [ExtraFile],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ManifestEntry {
    size: u64,
    crc32: String,
}

/// Writes `checkpoint-<step>` under `root` atomically, then keeps only the newest `keep_last`
/// checkpoints of the same run (0 keeps all), newest by writing time; another run's
/// checkpoints are never deleted.
/// Returns the checkpoint's path.
pub fn save(root: &Path, contents: &CheckpointContents, keep_last: usize) -> Result<PathBuf, CheckpointError> {
    let dir = root.join(format!("{PREFIX}{:08}", contents.state.step));
    let tmp = temporary_sibling(&dir)?;
    let result = write_all(&tmp, contents).and_then(|()| {
        sync_dir_files(&tmp)?;
        replace_dir(&tmp, &dir)?;
        File::open(root).and_then(|f| f.sync_all()).map_err(io(root))
    });
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if keep_last > 0 {
        // The new checkpoint is whole: older ones left behind cost disk, not the save.
        if let Err(e) = prune(root, &contents.state.run_id, keep_last) {
            tracing::warn!("{}: could not remove older checkpoints (keep_checkpoints = {keep_last}): {e}", root.display());
        }
    }
    if let (Some(size), Ok(free)) = (dir_bytes(&dir), fs2::available_space(root)) {
        if let Some(warning) = space_warning(root, size, free) {
            tracing::warn!("{warning}");
        }
    }
    Ok(dir)
}

/// Deletes all but the newest `keep_last` checkpoints of run `run_id` under `root`.
fn prune(root: &Path, run_id: &str, keep_last: usize) -> Result<(), CheckpointError> {
    // Newest by writing time, not step: after a resume from an earlier checkpoint, the
    // abandoned steps beyond it are the oldest.
    let mut ours: Vec<_> = list(root)?
        .into_iter()
        .filter(|(_, d)| run_id_of(d).as_deref() == Some(run_id))
        .map(|(step, d)| (std::fs::metadata(d.join(MANIFEST)).and_then(|m| m.modified()).ok(), step, d))
        .collect();
    ours.sort();
    for (_, _, old) in ours.iter().take(ours.len().saturating_sub(keep_last)) {
        std::fs::remove_dir_all(old).map_err(io(old))?;
    }
    Ok(())
}

/// A warning when the next checkpoint, as large as the one just written (`size`), will not fit
/// in `free`: the save would fail partway (the newest checkpoint is kept until its successor is
/// complete, so the two need room at once) and the run would go on without a newer resume point.
/// Said now, it leaves the user a checkpoint interval to free space.
fn space_warning(root: &Path, size: u64, free: u64) -> Option<String> {
    use crate::generate::memory::human;
    (free < size).then(|| {
        format!(
            "{}: {} of disk free and the next checkpoint needs about {}: free some space, or that checkpoint will fail and a stopped run will resume from this one",
            root.display(),
            human(free as u128),
            human(size as u128)
        )
    })
}

/// The bytes of the files in `dir` (a checkpoint is flat); None when it cannot be read.
fn dir_bytes(dir: &Path) -> Option<u64> {
    std::fs::read_dir(dir).ok()?.map(|e| e.ok()?.metadata().ok().map(|m| m.len())).sum()
}

fn write_all(dir: &Path, c: &CheckpointContents) -> Result<(), CheckpointError> {
    match c.weights {
        Some(w) => {
            let dtype = w.iter().next().map_or(DType::F32, |(_, t)| t.dtype());
            write_hf_files(dir, c.config, w, c.tokenizer, dtype)?;
        }
        None => write_json(&dir.join("config.json"), &c.config.to_hf_json("float32"))?,
    }
    save_tensors(&c.optimizer.moments(), &dir.join(OPTIMIZER))?;
    let state = serde_json::to_value(c.state).map_err(|e| invalid(&dir.join(TRAINER_STATE), e))?;
    write_json(&dir.join(TRAINER_STATE), &state)?;
    for extra in c.extra {
        match extra {
            ExtraFile::Json { name, value } => write_json(&dir.join(checked_name(dir, name)?), value)?,
            ExtraFile::Tensors { name, tensors } => save_tensors(tensors, &dir.join(checked_name(dir, name)?))?,
        }
    }
    let mut manifest = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        manifest.insert(name, checksum(&path)?);
    }
    let manifest = serde_json::to_value(&manifest).map_err(|e| invalid(&dir.join(MANIFEST), e))?;
    Ok(write_json(&dir.join(MANIFEST), &manifest)?)
}

fn checked_name<'n>(dir: &Path, name: &'n str) -> Result<&'n str, CheckpointError> {
    let reserved = [MANIFEST, OPTIMIZER, TRAINER_STATE, "config.json", "model.safetensors"];
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') || reserved.contains(&name) {
        return Err(invalid(&dir.join(name), "not a valid name for an extra checkpoint file"));
    }
    Ok(name)
}

/// Writes `tensors` beside the checkpoint's config.json (written first), with its permissions.
fn save_tensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<(), CheckpointError> {
    let on_cpu =
        tensors.iter().map(|(k, t)| Ok((k.clone(), t.to_device(&Device::Cpu)?))).collect::<Result<HashMap<_, _>, candle_core::Error>>()?;
    let like = path.with_file_name("config.json");
    save_safetensors_like(&on_cpu, path, &like).map_err(|e| invalid(path, e))
}

fn checksum(path: &Path) -> Result<ManifestEntry, CheckpointError> {
    let mut file = File::open(path).map_err(io(path))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok(ManifestEntry { size, crc32: format!("{:08x}", hasher.finalize()) })
}

/// A short fingerprint of a run's config text, for `TrainerState::config_hash`.
pub fn config_hash(text: &str) -> String {
    format!("{:08x}", crc32fast::hash(text.as_bytes()))
}

fn invalid(path: &Path, reason: impl ToString) -> CheckpointError {
    CheckpointError::Invalid { path: path.to_path_buf(), reason: reason.to_string() }
}

/// The checkpoints under `root`, oldest first.
pub fn list(root: &Path) -> Result<Vec<(u64, PathBuf)>, CheckpointError> {
    if !root.is_dir() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root).map_err(io(root))? {
        let path = entry.map_err(io(root))?.path();
        let step = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix(PREFIX)).and_then(|s| s.parse().ok());
        if let (Some(step), true) = (step, path.is_dir()) {
            found.push((step, path));
        }
    }
    found.sort();
    Ok(found)
}

/// The newest checkpoint under `root`, if any.
/// The `run_id` in `dir`'s trainer state; None when unreadable (never taken for this run's).
fn run_id_of(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(TRAINER_STATE)).ok()?;
    Some(serde_json::from_str::<TrainerState>(&text).ok()?.run_id)
}

pub fn latest(root: &Path) -> Result<Option<PathBuf>, CheckpointError> {
    Ok(list(root)?.pop().map(|(_, p)| p))
}

/// A verified checkpoint in memory.
pub struct LoadedCheckpoint {
    pub dir: PathBuf,
    pub config: ModelConfig,
    /// None for adapter-only checkpoints.
    pub weights: Option<Weights>,
    pub state: TrainerState,
    pub moments: HashMap<String, Tensor>,
}

/// Verifies the manifest of `dir`, checks that it was saved for a model shaped like `expected`,
/// and reads it.
pub fn load(dir: &Path, expected: &ModelConfig) -> Result<LoadedCheckpoint, CheckpointError> {
    verify(dir)?;
    let config_path = dir.join("config.json");
    let config = ModelConfig::from_hf_file(&config_path)?;
    check_compatible(&config_path, expected, &config)?;
    let weights = if dir.join("model.safetensors").is_file() { Some(load_hf_weights(dir)?.1) } else { None };
    let state_path = dir.join(TRAINER_STATE);
    let text = std::fs::read_to_string(&state_path).map_err(io(&state_path))?;
    let state: TrainerState = serde_json::from_str(&text).map_err(|e| invalid(&state_path, e))?;
    let moments = read_tensors(&dir.join(OPTIMIZER))?;
    Ok(LoadedCheckpoint { dir: dir.to_path_buf(), config, weights, state, moments })
}

/// Every file the manifest lists exists with its size and checksum; the required files are
/// listed.
pub fn verify(dir: &Path) -> Result<(), CheckpointError> {
    let manifest_path = dir.join(MANIFEST);
    let damaged = |path: &Path, reason: String| CheckpointError::Damaged { path: path.to_path_buf(), reason };
    if !manifest_path.is_file() {
        return Err(damaged(&manifest_path, "missing (the checkpoint was not completely written)".into()));
    }
    let text = std::fs::read_to_string(&manifest_path).map_err(io(&manifest_path))?;
    let manifest: BTreeMap<String, ManifestEntry> =
        serde_json::from_str(&text).map_err(|e| damaged(&manifest_path, format!("unreadable: {e}")))?;
    for required in ["config.json", OPTIMIZER, TRAINER_STATE] {
        if !manifest.contains_key(required) {
            return Err(damaged(&manifest_path, format!("does not list {required}")));
        }
    }
    for (name, want) in &manifest {
        let path = dir.join(name);
        if !path.is_file() {
            return Err(damaged(&path, "missing".into()));
        }
        let got = checksum(&path)?;
        if got.size != want.size {
            return Err(damaged(&path, format!("{} bytes, the manifest says {}", got.size, want.size)));
        }
        if got.crc32 != want.crc32 {
            return Err(damaged(&path, format!("checksum {} does not match the manifest's {}", got.crc32, want.crc32)));
        }
    }
    Ok(())
}

fn check_compatible(path: &Path, expected: &ModelConfig, found: &ModelConfig) -> Result<(), CheckpointError> {
    let fields: [(&str, String, String); 9] = [
        ("model_type", expected.arch.model_type().into(), found.arch.model_type().into()),
        ("vocab_size", expected.vocab_size.to_string(), found.vocab_size.to_string()),
        ("hidden_size", expected.hidden_size.to_string(), found.hidden_size.to_string()),
        ("intermediate_size", expected.intermediate_size.to_string(), found.intermediate_size.to_string()),
        ("num_hidden_layers", expected.num_layers.to_string(), found.num_layers.to_string()),
        ("num_attention_heads", expected.num_heads.to_string(), found.num_heads.to_string()),
        ("num_key_value_heads", expected.num_kv_heads.to_string(), found.num_kv_heads.to_string()),
        ("head_dim", expected.head_dim.to_string(), found.head_dim.to_string()),
        ("tie_word_embeddings", expected.tie_word_embeddings.to_string(), found.tie_word_embeddings.to_string()),
    ];
    match fields.into_iter().find(|(_, e, f)| e != f) {
        Some((field, expected, found)) => {
            Err(CheckpointError::Incompatible { path: path.to_path_buf(), field: field.into(), expected, found })
        }
        None => Ok(()),
    }
}

fn read_tensors(path: &Path) -> Result<HashMap<String, Tensor>, CheckpointError> {
    candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| invalid(path, format!("not a readable safetensors file: {e}")))
}

impl LoadedCheckpoint {
    /// Tensors of an extra safetensors file (e.g. `adapter_model.safetensors`).
    pub fn extra_tensors(&self, name: &str) -> Result<HashMap<String, Tensor>, CheckpointError> {
        read_tensors(&self.dir.join(checked_name(&self.dir, name)?))
    }

    /// An extra JSON file (e.g. `adapter_config.json`).
    pub fn extra_json(&self, name: &str) -> Result<Value, CheckpointError> {
        let path = self.dir.join(checked_name(&self.dir, name)?);
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        serde_json::from_str(&text).map_err(|e| invalid(&path, e))
    }

    /// Sets the optimizer's parameters from the saved weights (by name, in their current dtype
    /// and device) and restores its moments, step and skip count.
    pub fn restore(&self, opt: &mut AdamW) -> Result<(), CheckpointError> {
        let weights_path = self.dir.join("model.safetensors");
        let weights = self
            .weights
            .as_ref()
            .ok_or_else(|| invalid(&weights_path, "missing: this checkpoint has no full weights (restore its adapters instead)"))?;
        self.restore_params(opt, weights)
    }

    /// Like [`restore`](Self::restore) for a checkpoint of adapters over a frozen base: the
    /// parameters come from the extra safetensors file `name` (e.g. `adapter_model.safetensors`).
    pub fn restore_adapters(&self, opt: &mut AdamW, name: &str) -> Result<(), CheckpointError> {
        let path = self.dir.join(checked_name(&self.dir, name)?);
        let tensors = self.extra_tensors(name)?.into_iter().collect();
        self.restore_params(opt, &Weights::new(tensors, &path))
    }

    fn restore_params(&self, opt: &mut AdamW, weights: &Weights) -> Result<(), CheckpointError> {
        let mut values = Vec::new();
        for (name, var) in opt.params() {
            let dims = var.as_tensor().dims().to_vec();
            let t = weights.get(name, &dims)?;
            values.push((var.clone(), t.to_device(var.device())?.to_dtype(var.dtype())?));
        }
        let optimizer_path = self.dir.join(OPTIMIZER);
        opt.restore(self.state.step, self.state.skipped_steps, &self.moments)
            .map_err(|source| CheckpointError::Optim { path: optimizer_path, source })?;
        for (var, value) in values {
            var.set(&value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn config_hash_is_standard_crc32() {
        // The CRC-32 check value of "123456789".
        assert_eq!(config_hash("123456789"), "cbf43926");
    }

    #[test]
    fn rng_state_restores_the_stream_position() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        rng.set_stream(3);
        for _ in 0..37 {
            rng.gen::<u32>();
        }
        let state = RngState::capture(&rng);
        let json = serde_json::to_string(&state).unwrap();
        let mut back = serde_json::from_str::<RngState>(&json).unwrap().restore().unwrap();
        let a: Vec<u64> = (0..5).map(|_| rng.gen()).collect();
        let b: Vec<u64> = (0..5).map(|_| back.gen()).collect();
        assert_eq!(a, b);
        let bad = RngState { key: "zz".into(), ..state };
        assert!(bad.restore().unwrap_err().contains("64 hex digits"));
    }

    #[test]
    fn the_space_warning_comes_when_the_next_checkpoint_would_not_fit() {
        let root = Path::new("run/checkpoints-stage-0");
        // The failure it foretells: a 7.6 GB checkpoint with 4.8 GB left.
        let said = space_warning(root, 7_562_108_000, 4_800_000_000).expect("7.6 GB does not fit in 4.8 GB");
        assert_eq!(
            said,
            "run/checkpoints-stage-0: 4.8 GB of disk free and the next checkpoint needs about 7.6 GB: free some space, or that checkpoint will fail and a stopped run will resume from this one"
        );
        assert_eq!(space_warning(root, 7_562_108_000, 7_562_108_000), None);
    }

    #[test]
    fn a_checkpoint_size_is_the_sum_of_its_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), [0u8; 1000]).unwrap();
        std::fs::write(dir.path().join("b"), [0u8; 24]).unwrap();
        assert_eq!(dir_bytes(dir.path()), Some(1024));
        assert_eq!(dir_bytes(&dir.path().join("missing")), None);
    }
}
