//! Weighted rewards: several named rewards → one total, with each part kept for metrics.

use crate::gold::Gold;
use crate::Reward;

/// One reward's unweighted value and its weight.
#[derive(Debug, Clone, PartialEq)]
pub struct RewardPart {
    pub name: String,
    pub value: f32,
    pub weight: f32,
}

/// Σ weight · value, and the parts it was made of, in the order the rewards were added.
#[derive(Debug, Clone, PartialEq)]
pub struct RewardBreakdown {
    pub total: f32,
    pub parts: Vec<RewardPart>,
}

impl RewardBreakdown {
    pub fn get(&self, name: &str) -> Option<f32> {
        self.parts.iter().find(|p| p.name == name).map(|p| p.value)
    }
}

#[derive(Default)]
pub struct WeightedRewards {
    terms: Vec<(Box<dyn Reward>, f32)>,
}

impl WeightedRewards {
    pub fn new() -> Self {
        WeightedRewards::default()
    }

    pub fn with(mut self, reward: Box<dyn Reward>, weight: f32) -> Self {
        self.push(reward, weight);
        self
    }

    pub fn push(&mut self, reward: Box<dyn Reward>, weight: f32) {
        self.terms.push((reward, weight));
    }

    pub fn names(&self) -> Vec<&str> {
        self.terms.iter().map(|(r, _)| r.name()).collect()
    }

    pub fn breakdown(&self, completion: &str, gold: &Gold) -> RewardBreakdown {
        let parts: Vec<RewardPart> = self
            .terms
            .iter()
            .map(|(r, w)| RewardPart { name: r.name().to_string(), value: r.score(completion, gold), weight: *w })
            .collect();
        let total = parts.iter().map(|p| p.value * p.weight).sum();
        RewardBreakdown { total, parts }
    }
}

impl Reward for WeightedRewards {
    fn name(&self) -> &str {
        "weighted"
    }

    fn score(&self, completion: &str, gold: &Gold) -> f32 {
        self.breakdown(completion, gold).total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accuracy::AccuracyReward;
    use crate::format::{FormatMode, FormatReward};

    #[test]
    fn total_and_parts() {
        let rewards = WeightedRewards::new()
            .with(Box::new(AccuracyReward::default()), 1.0)
            .with(Box::new(FormatReward::new(FormatMode::Lenient)), 0.5);
        let gold = Gold::latex("3").unwrap();
        let b = rewards.breakdown("<think>1+2</think><answer>3</answer>", &gold);
        assert_eq!(b.total, 1.5);
        assert_eq!(b.get("accuracy"), Some(1.0));
        assert_eq!(b.get("format"), Some(1.0));
        let b = rewards.breakdown("3", &gold);
        assert_eq!((b.total, b.get("format")), (1.0, Some(0.0))); // last-number fallback
        assert_eq!(rewards.names(), vec!["accuracy", "format"]);
    }
}
