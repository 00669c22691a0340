//! `accuracy_boxed`: 1.0 when the answer in the completion's last closed `\boxed{…}` is right,
//! else 0.0. One reward for the boxed prompt that is both its layout and correctness: a boxed
//! wrong answer, an unboxed right one and a completion cut by the token limit all score 0, so
//! within a group nothing is gained by finishing without being right. A separate `format_boxed`
//! term pays for that, and on a real model it shortened the reasoning (BENCHMARKS.md, "GRPO in
//! the boxed prompt format").

use crate::accuracy::grade_with;
use crate::extract::{ExtractConfig, Strategy};
use crate::format::as_score;
use crate::gold::Gold;
use crate::Reward;

#[derive(Debug, Clone)]
pub struct BoxedAccuracyReward {
    /// The box only: no fallback to a tag, a phrase or the last number.
    config: ExtractConfig,
}

impl Default for BoxedAccuracyReward {
    fn default() -> Self {
        BoxedAccuracyReward { config: ExtractConfig::new(vec![Strategy::Boxed]) }
    }
}

impl Reward for BoxedAccuracyReward {
    fn name(&self) -> &str {
        "accuracy_boxed"
    }

    fn score(&self, completion: &str, gold: &Gold) -> f32 {
        as_score(grade_with(&self.config, completion, gold).correct)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accuracy::AccuracyReward;

    #[test]
    fn only_a_right_answer_in_the_box_scores() {
        let gold = Gold::gsm8k("48 + 24 = 72\n#### 72").unwrap();
        let reward = BoxedAccuracyReward::default();
        let plain = AccuracyReward::default();
        let score = |c: &str| (reward.score(c, &gold), plain.score(c, &gold));
        assert_eq!(score("48 + 24 = 72, so she sold $\\boxed{72}$ clips."), (1.0, 1.0));
        // Right but not boxed: `accuracy` falls back to the last number, this reward does not.
        assert_eq!(score("48 + 24 = 72, so she sold 72 clips."), (0.0, 1.0));
        assert_eq!(score("48 + 24 = 70, so \\boxed{70}."), (0.0, 0.0));
        // Cut by the token limit inside the box, or before it.
        assert_eq!(score("48 + 24 = 72, so \\boxed{7"), (0.0, 0.0));
        // The last box is the answer: an intermediate right one does not count.
        assert_eq!(score("First \\boxed{72}, then 72 - 2 = \\boxed{70}."), (0.0, 0.0));
        assert_eq!(score("\\boxed{ }"), (0.0, 0.0));
    }
}
