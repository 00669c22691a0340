//! The data source and scorer for training on fixed examples (SFT, forward-KL distillation): a
//! `Sampler` that hands out each example (its prompt and reference completion, a group of one)
//! instead of sampling, and a `Rewarder` with no reward function. Examples reach the learner
//! through the same bounded queues, ledger and checkpointed cursor as GRPO's rollouts.

use std::sync::Arc;

use srlm_actors::{
    AdvantageScale, Factory, GroupRewards, Pipeline, Policy, Prompt, Rewarder, RolloutGroup, RuntimeConfig, SampledCompletion,
    SampledGroup, Sampler, ScoredGroup, StepSizes, Trainer,
};

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

/// Training on `examples` on the runtime: position `p` of the run is `examples[order[p]]`, and
/// step `s` trains `sizes.of(s)` positions, in order. One data source and one scorer keep the
/// examples in that order (the trainers check it); reading is cheap, the learner is the work.
/// The gate lets the source run a step ahead. `base` gives queue capacities, checkpoint
/// interval, seed and metrics.
pub fn example_pipeline<T: Trainer<Weights = ()>>(
    base: RuntimeConfig,
    examples: Arc<Vec<SftExample>>,
    order: Vec<usize>,
    sizes: StepSizes,
    trainer: T,
) -> Pipeline<ExampleReader, Unscored, T> {
    let (batch_groups, planned_steps) = match sizes {
        StepSizes::Fixed(n) => (n, None),
        planned => (base.batch_groups, Some(planned)),
    };
    let runtime = RuntimeConfig {
        group_size: 1,
        batch_groups,
        max_staleness: 1,
        generators: 1,
        groups_in_flight: 1,
        scorers: 1,
        dynamic_sampling: false,
        planned_steps,
        ..base
    };
    let reader = ExampleReader::new(examples, Arc::new(order));
    let prompts = reader.prompts();
    let sources: Factory<ExampleReader> = Arc::new(move |_, _| reader.fresh());
    let scorers: Factory<Unscored> = Arc::new(|_, _| Unscored);
    Pipeline::new(runtime, Arc::new(prompts), sources, scorers, trainer)
}

/// `batch` must hold exactly the `count` positions from `first` on (the step's share of the
/// run, handed out in order); returns its groups in position order.
pub fn in_position_order(batch: &[ScoredGroup], first: u64, count: usize) -> Result<Vec<&ScoredGroup>, String> {
    let mut rows: Vec<&ScoredGroup> = batch.iter().collect();
    rows.sort_by_key(|g| g.group.prompt.id);
    let got: Vec<u64> = rows.iter().map(|g| g.group.prompt.id).collect();
    let want: Vec<u64> = (first..first + count as u64).collect();
    if got != want {
        return Err(format!("got positions {got:?}, the step covers {want:?}"));
    }
    Ok(rows)
}

/// The (prompt, completion) rows of a group: its one example, or each sample of on-policy KD.
pub fn examples_of(g: &ScoredGroup) -> impl Iterator<Item = SftExample> + '_ {
    g.group.completions.iter().map(|c| SftExample { prompt: g.group.prompt_token_ids.clone(), completion: c.token_ids.clone() })
}
