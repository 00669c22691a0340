//! Capability traits: what the runtime needs from the model side (`Sampler`, `Rewarder`,
//! `Trainer`, `PromptSource`), named for what they can do so they don't clash with the actors.

use std::error::Error;
use std::sync::Arc;

use crate::advantages::AdvantageScale;
use crate::messages::{GroupRewards, Policy, Prompt, RunState, SampledGroup, ScoredGroup};

/// Samples a group of completions of one prompt. Runs on its generator's own OS thread.
pub trait Sampler: Send + 'static {
    type Weights: Send + Sync + 'static;
    type Error: Error + Send + Sync + 'static;
    /// Sample `group_size` completions of `prompt` with `policy`; the version changes only between
    /// groups, so a sampler may cache whatever it derives from the weights keyed by version.
    fn sample(&mut self, prompt: &Prompt, policy: &Policy<Self::Weights>, group_size: usize) -> Result<SampledGroup, Self::Error>;

    /// A group for each prompt, in prompt order, sampled together where the sampler can (many
    /// groups in one decode batch); the default samples them one after another.
    fn sample_groups(
        &mut self,
        prompts: &[Prompt],
        policy: &Policy<Self::Weights>,
        group_size: usize,
    ) -> Result<Vec<SampledGroup>, Self::Error> {
        prompts.iter().map(|p| self.sample(p, policy, group_size)).collect()
    }
}

/// Scores the completions of a group. Runs on its scorer's own thread.
pub trait Rewarder: Send + 'static {
    type Error: Error + Send + Sync + 'static;
    /// Names of the reward functions, used as the `function` metric label.
    fn reward_names(&self) -> Vec<String>;
    fn score(&mut self, group: &crate::RolloutGroup) -> Result<GroupRewards, Self::Error>;
    /// How the group's advantages are scaled; GRPO's population std unless overridden.
    fn advantage_scale(&self) -> AdvantageScale {
        AdvantageScale::default()
    }
}

/// Statistics of one optimizer step; `None` where the algorithm has no such quantity (no KL in SFT).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepStats {
    pub loss: f64,
    pub kl: Option<f64>,
    pub clip_fraction: Option<f64>,
    pub entropy: Option<f64>,
    pub grad_norm: Option<f64>,
    pub learning_rate: f64,
}

/// Where training starts: the restored run state (default for a fresh run) and its weights.
pub struct Start<W> {
    pub state: RunState,
    pub weights: Arc<W>,
}

/// Owns the optimizer and the trainable weights. Runs on the learner's own OS thread.
pub trait Trainer: Send + 'static {
    type Weights: Send + Sync + 'static;
    type Error: Error + Send + Sync + 'static;
    /// Called once before anything runs: a fresh start, or the state saved by the last checkpoint.
    fn start(&mut self) -> Result<Start<Self::Weights>, Self::Error>;
    /// One optimizer step on `batch`; returns its statistics and the new weights.
    fn step(&mut self, batch: &[ScoredGroup]) -> Result<(StepStats, Arc<Self::Weights>), Self::Error>;
    /// Write a checkpoint holding the weights, optimizer and `state` (atomically: temp then rename);
    /// returns where it went (a path, or what names it), for messages and `--resume`.
    fn save_checkpoint(&mut self, state: &RunState) -> Result<String, Self::Error>;
    /// Whether the weights and optimizer are exactly as the last completed `step` left them. Always
    /// true between steps; after a `step` that returned an error or panicked, false whenever it may
    /// have changed them (a half-applied update). The learner checkpoints after a failure only when
    /// this holds, so a checkpoint never pairs half-updated weights with the previous step's state.
    fn consistent(&self) -> bool;
    /// A scored group the learner dropped without training, and why (`"stale"`: older than
    /// `max_staleness`; `"uniform"`: equal rewards under dynamic sampling), e.g. for a log of
    /// every rollout; nothing by default.
    fn observe_dropped(&mut self, _group: &ScoredGroup, _reason: &'static str) {}
}

/// The training prompts in a fixed order; `None` past the end.
pub trait PromptSource: Send + Sync + 'static {
    fn prompt(&self, index: u64) -> Option<Prompt>;
}

impl PromptSource for Vec<Prompt> {
    fn prompt(&self, index: u64) -> Option<Prompt> {
        let mut p = self.get(usize::try_from(index).ok()?)?.clone();
        p.id = index;
        Some(p)
    }
}
