//! The generator's capability: sample a group with the model at the published policy version.

use std::sync::Arc;

use srlm_actors::{Policy, Prompt, SampledCompletion, SampledGroup, Sampler};

use crate::generate::continuous::generate_groups;
use crate::generate::{generate_group, Completion, FinishReason, GenerationConfig};
use crate::model::{ModelConfig, Qwen2, Weights};
use crate::tokenizer::Tokenizer;

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("prompt {id}: {message}")]
    Prompt { id: u64, message: String },
    #[error("building the policy for version {version}: {message}")]
    Model { version: u64, message: String },
    #[error("sampling prompt {id}: {message}")]
    Generate { id: u64, message: String },
}

/// Samples with an inference model rebuilt once per policy version. `Prompt::text` is the
/// already rendered prompt; RNG streams depend only on the prompt id and the seed, so the
/// same run gives the same samples whichever generator takes the prompt.
pub struct PolicySampler {
    config: ModelConfig,
    tokenizer: Arc<Tokenizer>,
    generation: GenerationConfig,
    current: Option<(u64, Qwen2)>,
}

impl PolicySampler {
    pub fn new(config: ModelConfig, tokenizer: Arc<Tokenizer>, generation: GenerationConfig) -> Self {
        Self { config, tokenizer, generation, current: None }
    }

    fn model(&mut self, policy: &Policy<Weights>) -> Result<&Qwen2, SampleError> {
        if self.current.as_ref().map(|(v, _)| *v) != Some(policy.version) {
            // The old version goes first: two inference copies of a 0.5B model at once are 2 GB
            // more at the run's peak.
            self.current = None;
            let model = Qwen2::for_inference(&self.config, &policy.weights)
                .map_err(|e| SampleError::Model { version: policy.version, message: e.to_string() })?;
            self.current = Some((policy.version, model));
        }
        Ok(&self.current.as_ref().expect("set above").1)
    }
}

impl Sampler for PolicySampler {
    type Weights = Weights;
    type Error = SampleError;

    fn sample(&mut self, prompt: &Prompt, policy: &Policy<Weights>, group_size: usize) -> Result<SampledGroup, SampleError> {
        let ids = self.encode(prompt)?;
        let tokenizer = Arc::clone(&self.tokenizer);
        let generation = self.generation.clone();
        let model = self.model(policy)?;
        let first_stream = prompt.id * group_size as u64;
        let completions = generate_group(model, tokenizer.as_ref(), &ids, group_size, first_stream, &generation, |_, _| {})
            .map_err(|e| SampleError::Generate { id: prompt.id, message: e.to_string() })?;
        Ok(sampled_group(ids, completions))
    }

    /// Every prompt's group in one decode batch (continuous batching): the same RNG streams as
    /// `sample`, so a prompt gets the same tokens either way (up to float rounding).
    fn sample_groups(&mut self, prompts: &[Prompt], policy: &Policy<Weights>, group_size: usize) -> Result<Vec<SampledGroup>, SampleError> {
        let ids = prompts.iter().map(|p| self.encode(p)).collect::<Result<Vec<_>, _>>()?;
        let streams: Vec<u64> = prompts.iter().map(|p| p.id * group_size as u64).collect();
        let tokenizer = Arc::clone(&self.tokenizer);
        let generation = self.generation.clone();
        let model = self.model(policy)?;
        let mut done: Vec<Option<Vec<Completion>>> = vec![None; prompts.len()];
        let rows = prompts.len() * group_size;
        generate_groups(
            model,
            tokenizer.as_ref(),
            &ids,
            &streams,
            group_size,
            rows,
            &generation,
            |i, c| {
                done[i] = Some(c);
                Ok(())
            },
            |_, _, _| {},
        )
        .map_err(|e| SampleError::Generate { id: prompts[0].id, message: format!("(with {} other prompts) {e}", prompts.len() - 1) })?;
        Ok(ids.into_iter().zip(done).map(|(ids, c)| sampled_group(ids, c.expect("every group is handed out"))).collect())
    }
}

impl PolicySampler {
    fn encode(&self, prompt: &Prompt) -> Result<Vec<u32>, SampleError> {
        self.tokenizer.encode(&prompt.text, false).map_err(|e| SampleError::Prompt { id: prompt.id, message: e.to_string() })
    }
}

fn sampled_group(prompt_token_ids: Vec<u32>, completions: Vec<Completion>) -> SampledGroup {
    SampledGroup {
        prompt_token_ids,
        completions: completions
            .into_iter()
            .map(|c| SampledCompletion {
                truncated: c.finish_reason == FinishReason::Length,
                text: c.text,
                token_ids: c.ids,
                behaviour_logprobs: c.logprobs,
            })
            .collect(),
    }
}
