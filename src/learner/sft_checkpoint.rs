//! SFT run ↔ disk: periodic checkpoints of `srlm sft` (full weights, or LoRA adapters over the
//! frozen base) in the crate's checkpoint format, and the exact resume from one.
//!
//! Besides weights and moments, exactness needs the run state (examples trained, and those handed
//! out but not trained: the plans themselves follow from the seed) and, with LoRA dropout, the
//! mask stream's position.
//! A LoRA checkpoint holds only the adapters (PEFT layout); the resumed run reloads the base
//! from the original model, which the adapters never changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Var;
use srlm_actors::RunState;

use super::checkpoint_place::CheckpointPlace;
use super::run_state::from_trainer_state;
use super::sft::{SftConfig, SftExample, SftStepStats};
use crate::checkpoint::{self, CheckpointError, ExtraFile, RngState, TrainerState, TRAINER_STATE};
use crate::model::lora::{ADAPTER_CONFIG, ADAPTER_WEIGHTS};
use crate::model::{LoraAdapters, LoraError, Weights};
use crate::optim::AdamW;

/// The key of the LoRA dropout stream in `TrainerState::rng`.
const DROPOUT_RNG: &str = "lora_dropout";

/// What an SFT run trains (handles sharing the trained storage).
pub enum SftParams {
    /// Every weight, named as in the HF checkpoint.
    Full(Vec<(String, Var)>),
    /// Adapters over a frozen base; `base_model` is recorded in adapter_config.json.
    Lora { adapters: Arc<LoraAdapters>, base_model: String },
}

/// Where and how often an SFT run saves checkpoints, and what it trains.
pub struct SftCheckpoints {
    pub place: CheckpointPlace,
    /// Optimiser steps between checkpoints; 0 saves none.
    pub every: usize,
    pub params: SftParams,
    /// [`plan_fingerprint`] of the run; a resumed run must plan the same batches.
    pub plan: String,
}

/// A fingerprint of everything that decides the batches: the examples' tokens, epochs, token
/// budget, accumulation and seed.
pub fn plan_fingerprint(examples: &[SftExample], cfg: &SftConfig) -> String {
    let mut h = crc32fast::Hasher::new();
    for v in [cfg.epochs as u64, cfg.token_budget as u64, cfg.grad_accum as u64, cfg.seed, examples.len() as u64] {
        h.update(&v.to_le_bytes());
    }
    for e in examples {
        h.update(&(e.prompt.len() as u64).to_le_bytes());
        for t in e.prompt.iter().chain(&e.completion) {
            h.update(&t.to_le_bytes());
        }
        h.update(&(e.completion.len() as u64).to_le_bytes());
    }
    format!("{:08x}", h.finalize())
}

impl SftCheckpoints {
    /// Saves a checkpoint when `stats` completes a multiple of `every` steps (the in-thread loop,
    /// `train_sft`; nothing is in flight between its steps).
    pub fn after_step(&self, stats: &SftStepStats, opt: &AdamW) -> Result<Option<PathBuf>, CheckpointError> {
        if self.every == 0 || !(stats.step + 1).is_multiple_of(self.every) {
            return Ok(None);
        }
        let done = stats.step as u64 + 1;
        self.save(opt, &RunState { step: done, version: done, cursor: stats.next_cursor, ..RunState::default() }).map(Some)
    }

    /// Writes `checkpoint-<step>` under `root`: the run continues from `run`.
    pub fn save(&self, opt: &AdamW, run: &RunState) -> Result<PathBuf, CheckpointError> {
        let root = &self.place.root;
        let mut state = TrainerState { config_hash: self.plan.clone(), ..self.place.trainer_state(run, opt.skipped_count()) };
        let (weights, extra) = match &self.params {
            SftParams::Full(vars) => {
                let tensors = vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect::<BTreeMap<_, _>>();
                (Some(Weights::new(tensors, root)), Vec::new())
            }
            SftParams::Lora { adapters, base_model } => {
                let lora = |e: LoraError| CheckpointError::Invalid { path: root.clone(), reason: e.to_string() };
                state.rng.insert(DROPOUT_RNG.into(), RngState::capture(&adapters.dropout_rng().map_err(lora)?));
                let extra = vec![
                    ExtraFile::Json { name: ADAPTER_CONFIG.into(), value: adapters.peft_config(base_model) },
                    ExtraFile::Tensors { name: ADAPTER_WEIGHTS.into(), tensors: adapters.peft_tensors().map_err(lora)? },
                ];
                (None, extra)
            }
        };
        self.place.save(weights.as_ref(), opt, &state, extra)
    }

    /// Restores weights (or adapters), moments, schedule position and dropout stream from the
    /// checkpoint `dir`; returns where the run continues.
    pub fn resume(&self, dir: &Path, opt: &mut AdamW) -> Result<RunState, CheckpointError> {
        let loaded = checkpoint::load(dir, &self.place.config)?;
        let state_path = dir.join(TRAINER_STATE);
        let invalid = |reason: String| CheckpointError::Invalid { path: state_path.clone(), reason };
        if loaded.state.config_hash != self.plan {
            return Err(invalid(format!(
                "saved for another SFT plan (fingerprint {}, this run {}): the data, epochs, token_budget, \
                 grad_accum or seed differ",
                loaded.state.config_hash, self.plan
            )));
        }
        match &self.params {
            SftParams::Full(_) => loaded.restore(opt)?,
            SftParams::Lora { adapters, .. } => {
                loaded.restore_adapters(opt, ADAPTER_WEIGHTS)?;
                match loaded.state.rng.get(DROPOUT_RNG) {
                    Some(saved) => {
                        let rng = saved.restore().map_err(|e| invalid(format!("rng.{DROPOUT_RNG}: {e}")))?;
                        adapters.set_dropout_rng(rng).map_err(|e| invalid(e.to_string()))?;
                    }
                    None if adapters.config().dropout > 0.0 => {
                        return Err(invalid(format!("no rng.{DROPOUT_RNG}, and this run's LoRA dropout needs it")));
                    }
                    None => {}
                }
            }
        }
        from_trainer_state(&loaded.state).map_err(invalid)
    }
}
