//! The runtime's `RunState` in a checkpoint's trainer_state.json: step, version and data cursor
//! in their fields; the positions handed out but not trained (`pending`) and the dropped-group
//! counts in `extra`. Every trainer on the runtime (GRPO, SFT, KD) saves and resumes it so.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::json;
use srlm_actors::RunState;

use crate::checkpoint::TrainerState;
use crate::optim::AdamW;

/// `run` as a checkpoint records it; `skipped_steps` and `run_id` are the trainer's.
pub fn to_trainer_state(run: &RunState, skipped_steps: u64, run_id: &str) -> TrainerState {
    TrainerState {
        step: run.step,
        skipped_steps,
        policy_version: run.version,
        data_cursor: run.cursor,
        extra: json!({
            "pending": run.pending,
            "dropped_stale": run.dropped_stale,
            "dropped_uniform": run.dropped_uniform,
        }),
        run_id: run_id.into(),
        ..TrainerState::default()
    }
}

/// Where a run continues from `state`; an `extra` that is not what `to_trainer_state` writes
/// is an error naming the key.
pub fn from_trainer_state(state: &TrainerState) -> Result<RunState, String> {
    let pending = match state.extra.get("pending") {
        Some(p) => serde_json::from_value(p.clone()).map_err(|e| format!("extra.pending: {e}"))?,
        None => Vec::new(),
    };
    let count = |key: &str| match state.extra.get(key) {
        Some(v) => v.as_u64().ok_or_else(|| format!("extra.{key}: {v} is not a count")),
        None => Ok(0),
    };
    Ok(RunState {
        step: state.step,
        version: state.policy_version,
        cursor: state.data_cursor,
        pending,
        dropped_stale: count("dropped_stale")?,
        dropped_uniform: count("dropped_uniform")?,
    })
}

/// Where a trainer on the runtime stands: the run state it started from (fresh, or a
/// checkpoint's), the learner steps completed, the optimizer's applied-update count when the last
/// step completed, and the newest checkpoint it wrote.
pub struct StepBook {
    pub start: RunState,
    pub steps_done: u64,
    applied: u64,
    last_checkpoint: Arc<Mutex<Option<PathBuf>>>,
}

impl StepBook {
    pub fn new(opt: &AdamW) -> Self {
        Self { start: RunState::default(), steps_done: 0, applied: opt.step_count(), last_checkpoint: Arc::default() }
    }

    /// The run continues from `start`, with `opt` as the checkpoint restored it.
    pub fn resumed(&mut self, start: RunState, opt: &AdamW) {
        self.steps_done = start.step;
        self.start = start;
        self.applied = opt.step_count();
    }

    pub fn step_completed(&mut self, opt: &AdamW) {
        self.applied = opt.step_count();
        self.steps_done += 1;
    }

    /// AdamW counts an update before it writes any weight: an unchanged count after a failed
    /// step means weights and moments are as that step found them.
    pub fn consistent(&self, opt: &AdamW) -> bool {
        opt.step_count() == self.applied
    }

    pub fn saved(&self, dir: &Path) {
        *srlm_actors::poison::lock(&self.last_checkpoint) = Some(dir.to_path_buf());
    }

    /// Where the newest checkpoint went, readable after the trainer has moved into the runtime.
    pub fn last_checkpoint(&self) -> Arc<Mutex<Option<PathBuf>>> {
        Arc::clone(&self.last_checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_state_survives_the_trainer_state() {
        let run = RunState { step: 7, version: 7, cursor: 30, pending: vec![27, 29], dropped_stale: 2, dropped_uniform: 5 };
        let saved = to_trainer_state(&run, 1, "r");
        assert_eq!((saved.skipped_steps, saved.run_id.as_str()), (1, "r"));
        assert_eq!(from_trainer_state(&saved).unwrap(), run);
        let bad = TrainerState { extra: json!({ "pending": "soon" }), ..saved };
        assert!(from_trainer_state(&bad).unwrap_err().starts_with("extra.pending"));
    }
}
