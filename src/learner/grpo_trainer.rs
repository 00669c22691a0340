//! The learner's capability for GRPO: one `grpo_step` per batch of scored groups, a policy
//! snapshot per version, checkpoints with exact resume state.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use srlm_actors::poison::lock;
use srlm_actors::{RunState, ScoredGroup, Start, StepStats, Trainer};

use crate::checkpoint;
use crate::learner::checkpoint_place::CheckpointPlace;
use crate::learner::grpo::{grpo_step, GrpoConfig, ScoredSequence};
use crate::learner::rollout_log::RolloutLog;
use crate::learner::run_state::from_trainer_state;
use crate::learner::trained_params::TrainedParams;
use crate::learner::trainer_error::TrainerError;
use crate::model::{CausalLm, LoraAdapters, LoraConfig, Qwen2, Weights};
use crate::optim::AdamW;

/// Called after each step (progress display).
pub type OnStep = Box<dyn FnMut(&StepProgress) + Send>;

/// What one trainer holds: what trains (every weight, or LoRA adapters) and the model built on
/// it, the frozen reference (β > 0 only), the optimizer, and where checkpoints go.
pub struct GrpoTrainer {
    params: TrainedParams,
    policy: Qwen2,
    reference: Option<Qwen2>,
    optimizer: AdamW,
    grpo: GrpoConfig,
    checkpoints: CheckpointPlace,
    start: RunState,
    /// Called after each step (progress display).
    pub on_step: Option<OnStep>,
    latest: Arc<Mutex<Option<Arc<Weights>>>>,
    rollout_log: Option<RolloutLog>,
    tokens_so_far: u64,
    /// Learner steps completed, counted from the run's start (restored on resume): the one step
    /// count the log, progress and versions use. The optimizer's own counts differ from it when
    /// a step takes several updates (`iterations`) or skips one.
    steps_done: u64,
    /// Groups the learner dropped without training (stale, or equal rewards under dynamic
    /// sampling) since the stage began.
    dropped: u64,
    /// Problems the stage has used up (trained or dropped) since it began.
    problems_done: u64,
    /// The optimizer's (applied, skipped) update counts when the last step completed. AdamW
    /// counts an update before it writes any weight, so a failed step that left the applied
    /// count unchanged left weights and moments as that step found them.
    completed: (u64, u64),
    last_checkpoint: Arc<Mutex<Option<PathBuf>>>,
}

/// What the progress display shows after each step.
#[derive(Debug, Clone)]
pub struct StepProgress {
    pub step: u64,
    pub loss: f64,
    pub reward_mean: f64,
    pub accuracy: f64,
    pub clip_fraction: f64,
    /// Largest lag (in versions) of a group in this batch behind the learner's policy.
    pub max_staleness: u64,
    pub tokens_so_far: u64,
    /// Groups dropped without training (stale, or equal rewards under dynamic sampling) before
    /// this step, since the stage began: each used up one of the stage's problems, as each
    /// trained group does.
    pub dropped_so_far: u64,
    /// Problems used up (trained or dropped) with this step, since the stage began.
    pub problems_done: u64,
}

impl GrpoTrainer {
    /// `weights` become trainable; `reference` is loaded separately by the caller when β > 0
    /// (sharing storage with the policy would make it move with it).
    /// The model's config comes with `checkpoints`.
    pub fn new(
        weights: &Weights,
        reference: Option<Qwen2>,
        optimizer: crate::optim::AdamWConfig,
        grpo: GrpoConfig,
        checkpoints: CheckpointPlace,
    ) -> Result<Self, TrainerError> {
        let (trainable, vars) = weights.to_vars().map_err(model_error)?;
        let policy = Qwen2::new(&checkpoints.config, &trainable).map_err(model_error)?;
        let optimizer = AdamW::new(vars.clone(), optimizer).map_err(model_error)?;
        Ok(Self::assemble(TrainedParams::Full(vars), policy, reference, optimizer, grpo, checkpoints))
    }

    /// LoRA adapters over the frozen `base` train instead of every weight; each published
    /// version is the base with the adapters merged, so generators need nothing new. No dropout:
    /// the learner's log-probs must be those of the weights that sampled the tokens.
    /// `base_model` names the base in the adapters' PEFT config.
    pub fn with_lora(
        base: Weights,
        lora: &LoraConfig,
        base_model: String,
        reference: Option<Qwen2>,
        optimizer: crate::optim::AdamWConfig,
        grpo: GrpoConfig,
        checkpoints: CheckpointPlace,
    ) -> Result<Self, TrainerError> {
        if lora.dropout > 0.0 {
            return Err(model_error(format!(
                "LoRA dropout {} in GRPO: the learner's log-probs would not be the sampler's; set it to 0",
                lora.dropout
            )));
        }
        let adapters = Arc::new(LoraAdapters::init(lora, &base, &checkpoints.config).map_err(model_error)?);
        let policy = Qwen2::with_lora(&checkpoints.config, &base, &adapters, false).map_err(model_error)?;
        let optimizer = AdamW::new(adapters.vars(), optimizer).map_err(model_error)?;
        let params = TrainedParams::Lora { adapters, base, base_model };
        Ok(Self::assemble(params, policy, reference, optimizer, grpo, checkpoints))
    }

    fn assemble(
        params: TrainedParams,
        policy: Qwen2,
        reference: Option<Qwen2>,
        optimizer: AdamW,
        grpo: GrpoConfig,
        checkpoints: CheckpointPlace,
    ) -> Self {
        Self {
            params,
            policy,
            reference,
            optimizer,
            grpo,
            checkpoints,
            start: RunState::default(),
            on_step: None,
            latest: Arc::new(Mutex::new(None)),
            rollout_log: None,
            tokens_so_far: 0,
            steps_done: 0,
            dropped: 0,
            problems_done: 0,
            completed: (0, 0),
            last_checkpoint: Arc::new(Mutex::new(None)),
        }
    }

    /// The adapters a LoRA trainer trains (shared: they keep changing while it runs).
    pub fn adapters(&self) -> Option<Arc<LoraAdapters>> {
        match &self.params {
            TrainedParams::Lora { adapters, .. } => Some(Arc::clone(adapters)),
            TrainedParams::Full(_) => None,
        }
    }

    /// Restores weights, optimizer moments and run state from a checkpoint directory.
    pub fn resume_from(&mut self, dir: &std::path::Path) -> Result<(), TrainerError> {
        let loaded = checkpoint::load(dir, &self.checkpoints.config).map_err(|e| TrainerError::Checkpoint(e.to_string()))?;
        self.params.restore(&loaded, &mut self.optimizer).map_err(|e| TrainerError::Checkpoint(e.to_string()))?;
        self.completed = (self.optimizer.step_count(), self.optimizer.skipped_count());
        let s = &loaded.state;
        self.start = from_trainer_state(s).map_err(|e| TrainerError::Checkpoint(format!("{}: {e}", dir.display())))?;
        self.problems_done = s.data_cursor.saturating_sub(self.start.pending.len() as u64);
        self.steps_done = self.start.step;
        self.dropped = self.start.dropped_stale + self.start.dropped_uniform;
        Ok(())
    }

    /// The learner step the trainer starts after: 0 for a fresh stage, the checkpoint's on resume.
    pub fn start_step(&self) -> u64 {
        self.start.step
    }

    /// Problems the stage has used up (trained or dropped), counting those before a resume.
    pub fn problems_done(&self) -> u64 {
        self.problems_done
    }

    /// Where the newest checkpoint of this trainer went, readable after the run.
    pub fn last_checkpoint(&self) -> Arc<Mutex<Option<PathBuf>>> {
        Arc::clone(&self.last_checkpoint)
    }

    /// The current weights (a copy; LoRA: merged), e.g. for evaluation or export.
    pub fn weights(&self) -> Result<Weights, TrainerError> {
        self.params.current_weights().map_err(TrainerError::Model)
    }

    pub fn optimizer(&self) -> &AdamW {
        &self.optimizer
    }

    /// The last published weights, readable after the trainer has moved into the runtime.
    pub fn latest_weights(&self) -> Arc<Mutex<Option<Arc<Weights>>>> {
        Arc::clone(&self.latest)
    }

    /// Append every group of every `every`-th batch (prompt, completions, rewards) to `path`,
    /// first dropping the lines of stage `stage` that the trainer's starting point does not
    /// cover (a resumed stage samples those groups again). Returns how many lines went.
    pub fn log_rollouts(&mut self, path: PathBuf, every: u64, stage: usize) -> std::io::Result<usize> {
        let log = RolloutLog { path, every, stage };
        let removed = log.keep_only_used(&self.start)?;
        self.rollout_log = Some(log);
        Ok(removed)
    }

    fn write_rollouts(&self, step: u64, batch: &[ScoredGroup]) -> std::io::Result<()> {
        batch.iter().try_for_each(|g| self.write_rollout(step, g, None))
    }

    fn write_rollout(&self, step: u64, g: &ScoredGroup, dropped: Option<&str>) -> std::io::Result<()> {
        match &self.rollout_log {
            Some(log) => log.write(step, g, dropped),
            None => Ok(()),
        }
    }
}

fn model_error(e: impl std::fmt::Display) -> TrainerError {
    TrainerError::Model(e.to_string())
}

/// Prompt + completion rows of every group, with their advantages.
fn sequences(batch: &[ScoredGroup]) -> Vec<ScoredSequence> {
    batch
        .iter()
        .flat_map(|g| {
            g.group.completions.iter().zip(&g.advantages).map(move |(c, &advantage)| ScoredSequence {
                tokens: g.group.prompt_token_ids.iter().chain(&c.token_ids).copied().collect(),
                prompt_len: g.group.prompt_token_ids.len(),
                behaviour_logprobs: c.behaviour_logprobs.clone(),
                advantage,
                truncated: c.truncated,
            })
        })
        .collect()
}

impl Trainer for GrpoTrainer {
    type Weights = Weights;
    type Error = TrainerError;

    fn start(&mut self) -> Result<Start<Weights>, TrainerError> {
        let weights = Arc::new(self.weights()?);
        *lock(&self.latest) = Some(Arc::clone(&weights));
        Ok(Start { state: self.start.clone(), weights })
    }

    /// Dropped groups go to the rollout log too (marked with why): with `log_rollouts_every = 1`
    /// it holds every group the policy sampled.
    fn observe_dropped(&mut self, group: &ScoredGroup, reason: &'static str) {
        self.dropped += 1;
        self.problems_done += 1;
        if let Err(e) = self.write_rollout(self.steps_done, group, Some(reason)) {
            tracing::warn!("rollout log: {e}");
        }
    }

    fn step(&mut self, batch: &[ScoredGroup]) -> Result<(StepStats, Arc<Weights>), TrainerError> {
        let step = self.steps_done;
        let rows = sequences(batch);
        let stats = grpo_step(&self.policy, self.reference.as_ref().map(|r| r as &dyn CausalLm), &rows, &self.grpo, &mut self.optimizer)
            .map_err(|e| TrainerError::Step { objective: "GRPO", step, message: e.to_string() })?;
        self.write_rollouts(step, batch).map_err(|e| TrainerError::Checkpoint(format!("rollout log: {e}")))?;
        let last = stats.iterations.last();
        let loss = last.map(|i| &i.loss);
        self.tokens_so_far += batch.iter().map(|g| g.group.generated_tokens() as u64).sum::<u64>();
        self.problems_done += batch.len() as u64;
        if let Some(f) = self.on_step.as_mut() {
            let totals: Vec<f32> = batch.iter().flat_map(|g| g.rewards.total.iter().copied()).collect();
            let correct: Vec<bool> = batch.iter().flat_map(|g| g.rewards.correct.iter().flatten().copied()).collect();
            // The policy this step trains (the version before its update).
            let version = self.start.version + (step - self.start.step);
            f(&StepProgress {
                step,
                loss: loss.map_or(f64::NAN, |l| l.loss),
                reward_mean: totals.iter().map(|&r| r as f64).sum::<f64>() / totals.len().max(1) as f64,
                accuracy: correct.iter().filter(|&&c| c).count() as f64 / correct.len().max(1) as f64,
                clip_fraction: loss.map_or(0.0, |l| l.clip_low + l.clip_high),
                max_staleness: batch.iter().map(|g| version.saturating_sub(g.group.policy_version)).max().unwrap_or(0),
                tokens_so_far: self.tokens_so_far,
                dropped_so_far: self.dropped,
                problems_done: self.problems_done,
            });
        }
        let out = StepStats {
            loss: loss.map_or(f64::NAN, |l| l.loss),
            kl: loss.and_then(|l| l.kl),
            clip_fraction: loss.map(|l| l.clip_low + l.clip_high),
            entropy: loss.and_then(|l| l.entropy),
            grad_norm: last.map(|i| i.grad_norm),
            learning_rate: last.map_or(0.0, |i| i.lr),
        };
        let published = Arc::new(self.weights()?);
        *lock(&self.latest) = Some(Arc::clone(&published));
        self.completed = (self.optimizer.step_count(), self.optimizer.skipped_count());
        self.steps_done += 1;
        Ok((out, published))
    }

    fn consistent(&self) -> bool {
        self.optimizer.step_count() == self.completed.0
    }

    fn save_checkpoint(&mut self, state: &RunState) -> Result<String, TrainerError> {
        let failed = |e: checkpoint::CheckpointError| TrainerError::Checkpoint(e.to_string());
        // As of the last completed step: a failed step's refused updates are retried on resume.
        let mut trainer_state = self.checkpoints.trainer_state(state, self.completed.1);
        let (weights, extra) = self.params.checkpoint_parts(&self.checkpoints.root, &mut trainer_state).map_err(failed)?;
        let dir = self.checkpoints.save(weights.as_ref(), &self.optimizer, &trainer_state, extra).map_err(failed)?;
        *lock(&self.last_checkpoint) = Some(dir.clone());
        Ok(dir.display().to_string())
    }
}
