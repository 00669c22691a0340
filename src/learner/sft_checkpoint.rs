//! SFT run ↔ disk: periodic checkpoints of `srlm sft` (full weights, or LoRA adapters over the
//! frozen base) in the crate's checkpoint format, and the exact resume from one.
//!
//! Besides weights and moments, exactness needs the run state (examples trained, and those handed
//! out but not trained: the plans themselves follow from the seed) and, with LoRA dropout, the
//! mask stream's position (`TrainedParams` writes and restores both kinds).

use std::path::{Path, PathBuf};

use srlm_actors::RunState;

use super::checkpoint_place::CheckpointPlace;
use super::run_state::from_trainer_state;
use super::sft::{SftConfig, SftExample, SftStepStats};
use super::trained_params::TrainedParams;
use crate::checkpoint::{self, CheckpointError, TrainerState, TRAINER_STATE};
use crate::optim::AdamW;

/// Where and how often an SFT run saves checkpoints, and what it trains.
pub struct SftCheckpoints {
    pub place: CheckpointPlace,
    /// Optimiser steps between checkpoints; 0 saves none.
    pub every: usize,
    pub params: TrainedParams,
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
        let (weights, extra) = self.params.checkpoint_parts(root, &mut state)?;
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
        self.params.restore(&loaded, opt)?;
        from_trainer_state(&loaded.state).map_err(invalid)
    }
}
