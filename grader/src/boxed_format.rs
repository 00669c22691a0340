//! `format_boxed`: the layout the `boxed` prompt asks for ("put your final answer within
//! \boxed{}"), 1.0 when the completion holds a closed, non-blank `\boxed{…}`, else 0.0. The
//! `<think>`/`<answer>` rewards judge the r1 prompt's layout; this one the boxed prompt's.

use crate::extract::last_boxed;
use crate::format::as_score;
use crate::gold::Gold;
use crate::Reward;

#[derive(Debug, Clone, Default)]
pub struct BoxedFormatReward;

impl Reward for BoxedFormatReward {
    fn name(&self) -> &str {
        "format_boxed"
    }

    fn score(&self, completion: &str, _gold: &Gold) -> f32 {
        boxed_format_score(completion)
    }
}

pub fn boxed_format_score(completion: &str) -> f32 {
    as_score(last_boxed(completion).is_some_and(|answer| !answer.trim().is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_non_blank_box_is_the_layout() {
        assert_eq!(boxed_format_score("48 + 24 = 72, so the answer is $\\boxed{72}$."), 1.0);
        assert_eq!(boxed_format_score("\\boxed{\\frac{1}{2}}"), 1.0);
        // Cut off by the token limit, empty, or absent: not the layout.
        assert_eq!(boxed_format_score("so the answer is \\boxed{7"), 0.0);
        assert_eq!(boxed_format_score("\\boxed{ }"), 0.0);
        assert_eq!(boxed_format_score("<think>a</think><answer>72</answer>"), 0.0);
    }
}
