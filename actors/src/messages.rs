//! Messages: every type that crosses between roles (prompt → RolloutGroup → ScoredGroup → WeightsPublished).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Version of the policy weights; the learner bumps it after every optimizer step.
pub type PolicyVersion = u64;

/// One training prompt. `id` is its index in the [`crate::PromptSource`] order, which is what
/// the data cursor and the checkpointed pending list refer to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    pub id: u64,
    pub text: String,
    /// The reference answer, or any payload the `Rewarder` understands (for example JSON gold).
    pub reference: String,
}

/// The weights a sampler generates with: the version and a shared handle (never a copy on one device).
#[derive(Debug)]
pub struct Policy<W> {
    pub version: PolicyVersion,
    pub weights: Arc<W>,
}

impl<W> Clone for Policy<W> {
    fn clone(&self) -> Self {
        Self { version: self.version, weights: Arc::clone(&self.weights) }
    }
}

/// One sampled completion with what the loss needs to correct for off-policy data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampledCompletion {
    pub text: String,
    pub token_ids: Vec<u32>,
    /// Log-probability of each token under the behaviour policy, one per `token_ids` entry.
    pub behaviour_logprobs: Vec<f32>,
    /// Stopped by the length limit rather than an end-of-sequence token.
    pub truncated: bool,
}

/// What a `Sampler` returns for one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct SampledGroup {
    pub prompt_token_ids: Vec<u32>,
    pub completions: Vec<SampledCompletion>,
}

/// Where one group spent its time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Time inside `Sampler::sample`.
    pub sampling: Duration,
}

/// Fact: a generator sampled a group of completions of one prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutGroup {
    pub prompt: Prompt,
    pub prompt_token_ids: Vec<u32>,
    pub completions: Vec<SampledCompletion>,
    pub policy_version: PolicyVersion,
    pub generator: usize,
    pub timings: Timings,
}

impl RolloutGroup {
    pub fn generated_tokens(&self) -> usize {
        self.completions.iter().map(|c| c.token_ids.len()).sum()
    }
}

/// Rewards of every completion of a group, per reward function and in total.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRewards {
    /// `(function name, one reward per completion)`, in the `Rewarder::reward_names` order.
    pub per_function: Vec<(String, Vec<f32>)>,
    /// The weighted total per completion: what advantages are computed from.
    pub total: Vec<f32>,
    /// Whether each completion's answer was correct, when the rewarder can tell.
    pub correct: Option<Vec<bool>>,
}

/// Fact: a scorer rewarded a group and computed its advantages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredGroup {
    pub group: RolloutGroup,
    pub rewards: GroupRewards,
    /// One advantage per completion.
    pub advantages: Vec<f32>,
}

/// Fact: the learner made a new policy version available to the generators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightsPublished {
    pub version: PolicyVersion,
}

/// Where a run stands: what a checkpoint must hold to resume exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunState {
    /// Optimizer steps taken.
    pub step: u64,
    /// The policy version of the current weights.
    pub version: PolicyVersion,
    /// Index of the next prompt never handed out.
    pub cursor: u64,
    /// Prompts handed out before `cursor` but neither trained nor dropped: issued again on resume.
    pub pending: Vec<u64>,
    /// Groups the learner dropped so far as too stale, and with equal rewards (dynamic
    /// sampling): a resumed run counts on from them.
    pub dropped_stale: u64,
    pub dropped_uniform: u64,
}
