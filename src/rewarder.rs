//! The scorer's capability: weighted rewards of each completion against the prompt's gold answer.

use srlm_actors::{AdvantageScale, GroupRewards, Rewarder, RolloutGroup};

use crate::overlong::{OverlongPenalty, OVERLONG};
use crate::reward::{grade_with, ExtractConfig, Gold, RegistryError, WeightedRewards};
use crate::train::config::TrainConfig;

/// How `Prompt::reference` holds the gold answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GoldFormat {
    /// A GSM8K answer field (worked solution ending in `#### N`).
    Gsm8k,
    /// A MATH-style LaTeX answer.
    Latex,
    /// A plain number (the synthetic task).
    Number,
}

impl GoldFormat {
    /// As the config spells it.
    pub fn name(self) -> &'static str {
        match self {
            GoldFormat::Gsm8k => "gsm8k",
            GoldFormat::Latex => "latex",
            GoldFormat::Number => "number",
        }
    }

    pub fn parse(self, reference: &str) -> Result<Gold, String> {
        let gold = match self {
            GoldFormat::Gsm8k => Gold::gsm8k(reference),
            GoldFormat::Latex => Gold::latex(reference),
            GoldFormat::Number => match reference.trim().parse::<f64>() {
                Ok(v) => Gold::number(v),
                Err(_) => return Err(format!("gold '{reference}' is not a number")),
            },
        };
        gold.map_err(|e| format!("gold '{reference}': {e}"))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("prompt {id}: {message}")]
pub struct RewardError {
    id: u64,
    message: String,
}

/// Rewards plus a correctness verdict (answer from `<answer>`, else `\boxed{}`, else the last
/// number: the default extraction order) reported as accuracy.
pub struct GoldRewarder {
    rewards: WeightedRewards,
    overlong: Option<OverlongPenalty>,
    gold: GoldFormat,
    extract: ExtractConfig,
    scale: AdvantageScale,
}

impl GoldRewarder {
    pub fn new(rewards: WeightedRewards, gold: GoldFormat, scale: AdvantageScale) -> Self {
        Self { rewards, overlong: None, gold, extract: ExtractConfig::default(), scale }
    }

    /// The scorer a recipe describes: its `[rewards]`, overlong penalty included, its gold format
    /// and its advantage scale.
    pub fn for_recipe(cfg: &TrainConfig) -> Result<Self, RegistryError> {
        let rewards = crate::reward::build_rewards(&cfg.reward_spec())?;
        Ok(Self { overlong: cfg.overlong_penalty(), ..Self::new(rewards, cfg.data.gold, cfg.grpo.advantage_scale) })
    }
}

impl Rewarder for GoldRewarder {
    type Error = RewardError;

    fn advantage_scale(&self) -> AdvantageScale {
        self.scale
    }

    fn reward_names(&self) -> Vec<String> {
        let overlong = self.overlong.map(|_| OVERLONG);
        self.rewards.names().into_iter().chain(overlong).map(String::from).collect()
    }

    fn score(&mut self, group: &RolloutGroup) -> Result<GroupRewards, RewardError> {
        let gold = self.gold.parse(&group.prompt.reference).map_err(|message| RewardError { id: group.prompt.id, message })?;
        let names = self.reward_names();
        let mut per_function: Vec<(String, Vec<f32>)> = names.iter().map(|n| (n.clone(), Vec::new())).collect();
        let (mut total, mut correct) = (Vec::new(), Vec::new());
        for completion in &group.completions {
            let b = self.rewards.breakdown(&completion.text, &gold);
            for (slot, part) in per_function.iter_mut().zip(&b.parts) {
                slot.1.push(part.value);
            }
            let mut sum = b.total;
            if let Some(p) = &self.overlong {
                let value = p.value(completion.token_ids.len(), completion.truncated);
                per_function.last_mut().expect("overlong is the last name").1.push(value);
                sum += p.weight * value;
            }
            total.push(sum);
            correct.push(grade_with(&self.extract, &completion.text, &gold).correct);
        }
        Ok(GroupRewards { per_function, total, correct: Some(correct) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use srlm_actors::{Prompt, SampledCompletion, Timings};

    fn completion(text: &str, tokens: usize, truncated: bool) -> SampledCompletion {
        SampledCompletion { text: text.into(), token_ids: vec![0; tokens], behaviour_logprobs: vec![0.0; tokens], truncated }
    }

    /// accuracy 1.0 + overlong 0.5 over the last 16 of 64 tokens: hand-derived totals.
    #[test]
    fn the_overlong_penalty_joins_the_total_and_the_parts() {
        let toml = "stages = [\"grpo\"]\nout_dir = \"x\"\n[model]\nsource = \"tiny\"\n[data]\ntask = \"arithmetic\"\ngold = \"number\"\n\
                    [rewards]\naccuracy = 1.0\noverlong = 0.5\n[grpo]\nmax_new_tokens = 64\noverlong_buffer = 16\n";
        let cfg = TrainConfig::from_toml(toml, "f.toml").unwrap();
        let mut scorer = GoldRewarder::for_recipe(&cfg).unwrap();
        assert_eq!(scorer.reward_names(), ["accuracy", "overlong"]);
        let group = RolloutGroup {
            prompt: Prompt { id: 0, text: "1+2=".into(), reference: "3".into() },
            prompt_token_ids: vec![1],
            // Right and short; right but 8 tokens into the buffer; wrong and cut by the limit.
            completions: vec![completion("3", 10, false), completion("3", 56, false), completion("4", 64, true)],
            policy_version: 0,
            generator: 0,
            timings: Timings::default(),
        };
        let r = scorer.score(&group).unwrap();
        assert_eq!(r.per_function[1], ("overlong".to_string(), vec![0.0, -0.5, -1.0]));
        assert_eq!(r.total, [1.0, 0.75, -0.5]);
        assert_eq!(r.correct, Some(vec![true, true, false]));
    }
}
