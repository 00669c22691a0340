//! What a learner trains: every weight, or LoRA adapters over a frozen base. SFT and GRPO share
//! how each kind is copied out as weights, written into a checkpoint and restored from one.
//!
//! A LoRA checkpoint holds only the adapters (PEFT layout) and the dropout stream's position; the
//! resumed run reloads the base from where the stage started, which the adapters never changed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::Var;

use crate::checkpoint::{CheckpointError, ExtraFile, LoadedCheckpoint, RngState, TrainerState, TRAINER_STATE};
use crate::model::lora::{ADAPTER_CONFIG, ADAPTER_WEIGHTS};
use crate::model::{LoraAdapters, LoraError, Weights};
use crate::optim::AdamW;
use crate::train::snapshot::snapshot;

/// The key of the LoRA dropout stream in `TrainerState::rng`.
const DROPOUT_RNG: &str = "lora_dropout";

/// The trained parameters (handles sharing the trained storage).
pub enum TrainedParams {
    /// Every weight, named as in the HF checkpoint.
    Full(Vec<(String, Var)>),
    /// Adapters over the frozen `base`; `base_model` is recorded in adapter_config.json.
    Lora { adapters: Arc<LoraAdapters>, base: Weights, base_model: String },
}

impl TrainedParams {
    /// The model's weights now, sharing no storage that a later update changes (full: a copy of
    /// every variable; LoRA: the base with the adapters merged into their projections).
    pub fn current_weights(&self) -> Result<Weights, String> {
        match self {
            TrainedParams::Full(vars) => snapshot(vars).map_err(|e| e.to_string()),
            TrainedParams::Lora { adapters, base, .. } => adapters.merged(base).map_err(|e| e.to_string()),
        }
    }

    /// What a checkpoint under `root` holds of these parameters: the weights file (full) or the
    /// adapter files (LoRA, whose dropout stream goes into `state.rng`).
    pub fn checkpoint_parts(&self, root: &Path, state: &mut TrainerState) -> Result<(Option<Weights>, Vec<ExtraFile>), CheckpointError> {
        match self {
            TrainedParams::Full(vars) => {
                let tensors = vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect::<BTreeMap<_, _>>();
                Ok((Some(Weights::new(tensors, root)), Vec::new()))
            }
            TrainedParams::Lora { adapters, base_model, .. } => {
                let lora = |e: LoraError| CheckpointError::Invalid { path: root.to_path_buf(), reason: e.to_string() };
                state.rng.insert(DROPOUT_RNG.into(), RngState::capture(&adapters.dropout_rng().map_err(lora)?));
                let extra = vec![
                    ExtraFile::Json { name: ADAPTER_CONFIG.into(), value: adapters.peft_config(base_model) },
                    ExtraFile::Tensors { name: ADAPTER_WEIGHTS.into(), tensors: adapters.peft_tensors().map_err(lora)? },
                ];
                Ok((None, extra))
            }
        }
    }

    /// Sets the parameters, `opt`'s moments and, with LoRA dropout, the mask stream from `loaded`.
    pub fn restore(&self, loaded: &LoadedCheckpoint, opt: &mut AdamW) -> Result<(), CheckpointError> {
        match self {
            TrainedParams::Full(_) => loaded.restore(opt),
            TrainedParams::Lora { adapters, .. } => {
                if !loaded.dir.join(ADAPTER_WEIGHTS).is_file() {
                    return Err(CheckpointError::Invalid {
                        path: loaded.dir.clone(),
                        reason: format!("no {ADAPTER_WEIGHTS}: this run trains LoRA adapters, the checkpoint does not hold any"),
                    });
                }
                loaded.restore_adapters(opt, ADAPTER_WEIGHTS)?;
                let invalid = |reason: String| CheckpointError::Invalid { path: loaded.dir.join(TRAINER_STATE), reason };
                match loaded.state.rng.get(DROPOUT_RNG) {
                    Some(saved) => {
                        let rng = saved.restore().map_err(|e| invalid(format!("rng.{DROPOUT_RNG}: {e}")))?;
                        adapters.set_dropout_rng(rng).map_err(|e| invalid(e.to_string()))
                    }
                    None if adapters.config().dropout > 0.0 => {
                        Err(invalid(format!("no rng.{DROPOUT_RNG}, and this run's LoRA dropout needs it")))
                    }
                    None => Ok(()),
                }
            }
        }
    }
}
