//! The scorer's capability: weighted rewards of each completion against the prompt's gold answer.

use srlm_actors::{AdvantageScale, GroupRewards, Rewarder, RolloutGroup};

use crate::reward::{grade_with, ExtractConfig, Gold, WeightedRewards};

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
    gold: GoldFormat,
    extract: ExtractConfig,
    scale: AdvantageScale,
}

impl GoldRewarder {
    pub fn new(rewards: WeightedRewards, gold: GoldFormat, scale: AdvantageScale) -> Self {
        Self { rewards, gold, extract: ExtractConfig::default(), scale }
    }
}

impl Rewarder for GoldRewarder {
    type Error = RewardError;

    fn advantage_scale(&self) -> AdvantageScale {
        self.scale
    }

    fn reward_names(&self) -> Vec<String> {
        self.rewards.names().into_iter().map(String::from).collect()
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
            total.push(b.total);
            correct.push(grade_with(&self.extract, &completion.text, &gold).correct);
        }
        Ok(GroupRewards { per_function, total, correct: Some(correct) })
    }
}
