//! The learner's capability for SFT (and trace KD): one planned step per batch of examples from
//! `ExampleReader`, checkpoints with the runtime's run state and the plan's fingerprint.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use srlm_actors::{Pipeline, RunState, RuntimeConfig, ScoredGroup, Start, StepSizes, StepStats, Trainer};

use super::example_source::{example_pipeline, examples_of, in_position_order, ExampleReader, Unscored};
use super::run_state::StepBook;
use super::sft::{sft_update, SftConfig, SftExample, SftPlan, SftStepStats};
use super::sft_checkpoint::SftCheckpoints;
use super::trainer_error::TrainerError;
use crate::model::{CausalLm, Qwen2};
use crate::optim::AdamW;

/// Called after each step (the log line).
pub type OnSftStep = Box<dyn FnMut(&SftStepStats) + Send>;

pub struct SftTrainer {
    /// Built on the trainable variables (full) or the base with adapters (LoRA).
    model: Qwen2,
    optimizer: AdamW,
    plan: SftPlan,
    cfg: SftConfig,
    checkpoints: SftCheckpoints,
    book: StepBook,
    pub on_step: Option<OnSftStep>,
}

impl SftTrainer {
    /// `optimizer` holds the parameters `model` trains; `checkpoints.params` shares their storage.
    pub fn new(model: Qwen2, optimizer: AdamW, plan: SftPlan, cfg: SftConfig, checkpoints: SftCheckpoints) -> Self {
        Self { book: StepBook::new(&optimizer), model, optimizer, plan, cfg, checkpoints, on_step: None }
    }

    /// Restores the parameters, moments, dropout stream and run state saved in `dir`.
    pub fn resume_from(&mut self, dir: &Path) -> Result<(), TrainerError> {
        let start = self.checkpoints.resume(dir, &mut self.optimizer).map_err(|e| TrainerError::Checkpoint(e.to_string()))?;
        self.book.resumed(start, &self.optimizer);
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

    /// The batch as the plan's micro-batches of step `step`: the examples must be exactly the
    /// positions that step covers (the runtime hands them out in order, one data source).
    fn micro_batches(&self, step: usize, batch: &[ScoredGroup]) -> Result<Vec<Vec<SftExample>>, String> {
        let planned = self.plan.steps().get(step).ok_or_else(|| format!("the plan has {} steps", self.plan.steps().len()))?;
        let rows = in_position_order(batch, self.plan.examples_before(step), planned.examples())?;
        let mut rows = rows.into_iter().flat_map(examples_of);
        Ok(planned.micro_batches.iter().map(|m| rows.by_ref().take(m.len()).collect()).collect())
    }
}

/// SFT on the runtime: the data source hands out the examples in `trainer`'s plan order, and
/// the steps are as large as the plan says.
pub fn sft_pipeline(
    base: RuntimeConfig,
    examples: Arc<Vec<SftExample>>,
    trainer: SftTrainer,
) -> Pipeline<ExampleReader, Unscored, SftTrainer> {
    let (order, sizes) = (trainer.plan.example_order(), StepSizes::planned(&trainer.plan.step_sizes()));
    example_pipeline(base, examples, order, sizes, trainer)
}

impl Trainer for SftTrainer {
    type Weights = ();
    type Error = TrainerError;

    fn start(&mut self) -> Result<Start<()>, TrainerError> {
        Ok(Start { state: self.book.start.clone(), weights: Arc::new(()) })
    }

    fn step(&mut self, batch: &[ScoredGroup]) -> Result<(StepStats, Arc<()>), TrainerError> {
        let step = self.book.steps_done;
        let fail = |message: String| TrainerError::Step { objective: "SFT", step, message };
        let micro = self.micro_batches(step as usize, batch).map_err(fail)?;
        let rows: Vec<Vec<&SftExample>> = micro.iter().map(|m| m.iter().collect()).collect();
        let update = sft_update(&self.model as &dyn CausalLm, &mut self.optimizer, &rows, &self.cfg).map_err(|e| fail(e.to_string()))?;
        let epoch = self.plan.steps()[step as usize].epoch;
        let stats = update.stats(step as usize, epoch, self.plan.examples_before(step as usize + 1));
        if let Some(f) = self.on_step.as_mut() {
            f(&stats);
        }
        self.book.step_completed(&self.optimizer);
        let out = StepStats { loss: stats.loss, grad_norm: Some(stats.grad_norm), learning_rate: stats.lr, ..StepStats::default() };
        Ok((out, Arc::new(())))
    }

    fn save_checkpoint(&mut self, state: &RunState) -> Result<String, TrainerError> {
        let dir = self.checkpoints.save(&self.optimizer, state).map_err(|e| TrainerError::Checkpoint(e.to_string()))?;
        self.book.saved(&dir);
        Ok(dir.display().to_string())
    }

    fn consistent(&self) -> bool {
        self.book.consistent(&self.optimizer)
    }
}
