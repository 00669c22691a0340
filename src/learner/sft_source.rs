//! SFT's data source and scorer in the runtime: a `Sampler` that hands out each planned example
//! (its prompt and reference completion, a group of one) instead of sampling, and a `Rewarder`
//! with no reward function. Examples reach the learner through the same bounded queues, ledger
//! and checkpointed cursor as GRPO's rollouts.

use std::sync::Arc;

use srlm_actors::{AdvantageScale, GroupRewards, Policy, Prompt, Rewarder, RolloutGroup, SampledCompletion, SampledGroup, Sampler};

use super::sft::SftExample;

#[derive(Debug, thiserror::Error)]
#[error("example position {0} is past the plan's end")]
pub struct PastThePlan(u64);

/// Position `p` of the run (the prompt id) is `examples[order[p]]`.
pub struct ExampleReader {
    examples: Arc<Vec<SftExample>>,
    order: Arc<Vec<usize>>,
}

impl ExampleReader {
    pub fn new(examples: Arc<Vec<SftExample>>, order: Arc<Vec<usize>>) -> Self {
        Self { examples, order }
    }

    /// Another reader of the same examples (each generator slot owns one).
    pub fn fresh(&self) -> Self {
        Self { examples: Arc::clone(&self.examples), order: Arc::clone(&self.order) }
    }

    /// The run's prompts: one per planned position (the text lives in the examples' tokens).
    pub fn prompts(&self) -> Vec<Prompt> {
        (0..self.order.len() as u64).map(|id| Prompt { id, text: String::new(), reference: String::new() }).collect()
    }
}

impl Sampler for ExampleReader {
    /// SFT samples nothing: the generators need no weights.
    type Weights = ();
    type Error = PastThePlan;

    fn sample(&mut self, prompt: &Prompt, _: &Policy<()>, _: usize) -> Result<SampledGroup, PastThePlan> {
        let example = usize::try_from(prompt.id).ok().and_then(|p| self.order.get(p)).map(|&i| &self.examples[i]);
        let example = example.ok_or(PastThePlan(prompt.id))?;
        let completion = SampledCompletion {
            text: String::new(),
            token_ids: example.completion.clone(),
            behaviour_logprobs: Vec::new(),
            truncated: false,
        };
        Ok(SampledGroup { prompt_token_ids: example.prompt.clone(), completions: vec![completion] })
    }
}

/// Supervised data carries no reward: every total is 0 and no function is reported.
pub struct Unscored;

impl Rewarder for Unscored {
    type Error = std::convert::Infallible;

    fn reward_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn score(&mut self, group: &RolloutGroup) -> Result<GroupRewards, Self::Error> {
        Ok(GroupRewards { per_function: Vec::new(), total: vec![0.0; group.completions.len()], correct: None })
    }

    fn advantage_scale(&self) -> AdvantageScale {
        AdvantageScale::None
    }
}
