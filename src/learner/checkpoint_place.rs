//! Where a learner's checkpoints go and what each carries besides the trained state: the model
//! config and tokenizer (a checkpoint loads on its own), the run that owns it (retention keeps to
//! its own run) and the stage stamp. GRPO, SFT and logit KD save through it.

use std::path::PathBuf;
use std::sync::Arc;

use srlm_actors::RunState;

use super::run_state::to_trainer_state;
use crate::checkpoint::{self, CheckpointContents, CheckpointError, ExtraFile, TrainerState};
use crate::model::{ModelConfig, Weights};
use crate::optim::AdamW;
use crate::tokenizer::Tokenizer;

pub struct CheckpointPlace {
    pub root: PathBuf,
    /// Newest checkpoints kept; 0 keeps all.
    pub keep: usize,
    pub config: ModelConfig,
    pub tokenizer: Option<Arc<Tokenizer>>,
    /// The run that owns the checkpoints; empty for none.
    pub run_id: String,
    /// JSON files every checkpoint carries (e.g. `srlm train`'s stage stamp).
    pub stamp: Vec<(String, serde_json::Value)>,
}

impl CheckpointPlace {
    /// A place with no owning run, tokenizer or stamp (library use and tests).
    pub fn bare(root: PathBuf, config: ModelConfig) -> Self {
        CheckpointPlace { root, keep: 0, config, tokenizer: None, run_id: String::new(), stamp: Vec::new() }
    }

    /// The record of `run` as this place's checkpoints store it (`skipped`: the optimizer's
    /// skipped updates at the state's step).
    pub fn trainer_state(&self, run: &RunState, skipped: u64) -> TrainerState {
        to_trainer_state(run, skipped, &self.run_id)
    }

    /// Writes `checkpoint-<step>` under `root`: `weights` (None when `extra` holds what trains,
    /// e.g. LoRA adapters), the optimizer's moments, `state`, `extra` and the stamp.
    pub fn save(
        &self,
        weights: Option<&Weights>,
        optimizer: &AdamW,
        state: &TrainerState,
        mut extra: Vec<ExtraFile>,
    ) -> Result<PathBuf, CheckpointError> {
        extra.extend(self.stamp.iter().map(|(name, value)| ExtraFile::Json { name: name.clone(), value: value.clone() }));
        let contents =
            CheckpointContents { config: &self.config, weights, tokenizer: self.tokenizer.as_deref(), optimizer, state, extra: &extra };
        checkpoint::save(&self.root, &contents, self.keep)
    }
}
