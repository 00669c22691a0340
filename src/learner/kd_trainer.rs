//! The learner's capability for logit distillation on the runtime: one KL step towards the
//! frozen teacher per batch. Forward KL on fixed examples (fed by `ExampleReader`; no weights
//! go out) or reverse KL on the student's own samples (on-policy: the generator samples with
//! the weights each step publishes).
//!
//! The teacher runs here, beside the student, not as a scorer: a full-distribution KL needs the
//! teacher's distribution at every completion position, vocabulary × tokens floats per
//! completion, far more than a queue should carry.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::Var;
use srlm_actors::{RunState, ScoredGroup, Start, StepStats, Trainer};

use super::checkpoint_place::CheckpointPlace;
use super::example_source::{examples_of, in_position_order};
use super::kd::{kd_step, KdConfig};
use super::logit_kd::DistillStep;
use super::run_state::{from_trainer_state, StepBook};
use super::sft::{collate, SftExample};
use super::trainer_error::TrainerError;
use crate::checkpoint;
use crate::model::{CausalLm, Qwen2};
use crate::optim::AdamW;

/// Called after each step (the log line).
pub type OnKdStep = Box<dyn FnMut(&DistillStep) + Send>;

/// The weights a step hands the generators: none for fixed examples, a snapshot on-policy.
pub type Publish<W> = fn(&[(String, Var)]) -> Result<Arc<W>, String>;

pub struct KdTrainer<W> {
    student: Qwen2,
    /// The student's trainable variables (what `student` is built on and `optimizer` steps).
    vars: Vec<(String, Var)>,
    teacher: Qwen2,
    optimizer: AdamW,
    kd: KdConfig,
    pad_id: u32,
    /// Groups (prompts or examples) each step trains.
    per_step: usize,
    publish: Publish<W>,
    checkpoints: CheckpointPlace,
    book: StepBook,
    pub on_step: Option<OnKdStep>,
}

impl<W> KdTrainer<W> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        student: Qwen2,
        vars: Vec<(String, Var)>,
        teacher: Qwen2,
        optimizer: AdamW,
        kd: KdConfig,
        pad_id: u32,
        per_step: usize,
        publish: Publish<W>,
        checkpoints: CheckpointPlace,
    ) -> Self {
        Self {
            book: StepBook::new(&optimizer),
            student,
            vars,
            teacher,
            optimizer,
            kd,
            pad_id,
            per_step,
            publish,
            checkpoints,
            on_step: None,
        }
    }

    /// Restores the student's weights, the moments and the run state saved in `dir`.
    pub fn resume_from(&mut self, dir: &Path) -> Result<(), TrainerError> {
        let fail = |e: String| TrainerError::Checkpoint(format!("{}: {e}", dir.display()));
        let loaded = checkpoint::load(dir, &self.checkpoints.config).map_err(|e| fail(e.to_string()))?;
        loaded.restore(&mut self.optimizer).map_err(|e| fail(e.to_string()))?;
        self.book.resumed(from_trainer_state(&loaded.state).map_err(fail)?, &self.optimizer);
        Ok(())
    }

    /// The step the run starts at: 0, or the resumed checkpoint's.
    pub fn start_step(&self) -> u64 {
        self.book.start.step
    }

    /// Where the newest checkpoint went, readable after the run.
    pub fn last_checkpoint(&self) -> Arc<Mutex<Option<PathBuf>>> {
        self.book.last_checkpoint()
    }
}

/// No weights for the data source of fixed examples.
pub fn publish_nothing(_: &[(String, Var)]) -> Result<Arc<()>, String> {
    Ok(Arc::new(()))
}

/// A copy of the student for the generator (on-policy).
pub fn publish_snapshot(vars: &[(String, Var)]) -> Result<Arc<crate::model::Weights>, String> {
    crate::train::snapshot::snapshot(vars).map(Arc::new).map_err(|e| e.to_string())
}

impl<W: Send + Sync + 'static> Trainer for KdTrainer<W> {
    type Weights = W;
    type Error = TrainerError;

    fn start(&mut self) -> Result<Start<W>, TrainerError> {
        let weights = (self.publish)(&self.vars).map_err(TrainerError::Checkpoint)?;
        Ok(Start { state: self.book.start.clone(), weights })
    }

    fn step(&mut self, batch: &[ScoredGroup]) -> Result<(StepStats, Arc<W>), TrainerError> {
        let step = self.book.steps_done;
        let fail = |message: String| TrainerError::Step { objective: "KD", step, message };
        let groups = in_position_order(batch, step * self.per_step as u64, self.per_step).map_err(fail)?;
        // A sample that ended at once has no token to match.
        let rows: Vec<SftExample> = groups.into_iter().flat_map(examples_of).filter(|e| !e.completion.is_empty()).collect();
        if rows.is_empty() {
            return Err(fail("no completion token to distill on (every sample ended at once)".into()));
        }
        let rows: Vec<&SftExample> = rows.iter().collect();
        let tokens = collate(&rows, self.pad_id, self.student.device()).map_err(|e| fail(e.to_string()))?;
        let s = kd_step(&self.student as &dyn CausalLm, &self.teacher, &mut self.optimizer, &tokens, &self.kd)
            .map_err(|e| fail(e.to_string()))?;
        if let Some(f) = self.on_step.as_mut() {
            f(&DistillStep { step: step as usize + 1, kl: s.loss, grad_norm: s.grad_norm, tokens: tokens.targets, skipped: s.skipped });
        }
        self.book.step_completed(&self.optimizer);
        let weights = (self.publish)(&self.vars).map_err(fail)?;
        let stats = StepStats {
            loss: s.loss,
            kl: Some(s.loss),
            grad_norm: Some(s.grad_norm),
            learning_rate: self.optimizer.lr(),
            ..StepStats::default()
        };
        Ok((stats, weights))
    }

    fn save_checkpoint(&mut self, state: &RunState) -> Result<String, TrainerError> {
        let weights = crate::train::snapshot::snapshot(&self.vars).map_err(|e| TrainerError::Checkpoint(e.to_string()))?;
        let trainer_state = self.checkpoints.trainer_state(state, self.optimizer.skipped_count());
        let dir = self
            .checkpoints
            .save(Some(&weights), &self.optimizer, &trainer_state, Vec::new())
            .map_err(|e| TrainerError::Checkpoint(e.to_string()))?;
        self.book.saved(&dir);
        Ok(dir.display().to_string())
    }

    fn consistent(&self) -> bool {
        self.book.consistent(&self.optimizer)
    }
}
