//! DAPO's soft overlong punishment: a reward that falls linearly from 0 to −1 over the last
//! `buffer` tokens of the completion budget, so a policy drifting towards the limit is pushed
//! back before its completions are cut, not only once they are.

/// `[rewards] overlong = weight` with `[grpo] overlong_buffer` tokens before `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OverlongPenalty {
    pub weight: f32,
    /// The generators' `max_new_tokens`.
    pub max_tokens: usize,
    /// Tokens before `max_tokens` where the penalty starts; 1..=max_tokens.
    pub buffer: usize,
}

/// Name of the penalty in `[rewards]`, the reward metrics and the rollout log.
pub const OVERLONG: &str = "overlong";

impl OverlongPenalty {
    /// The unweighted penalty of a completion of `tokens` tokens: 0 up to `max_tokens − buffer`,
    /// then `(max_tokens − buffer − tokens) / buffer`, reaching −1 at the limit; −1 when the
    /// length limit stopped it, whatever its count.
    pub fn value(&self, tokens: usize, truncated: bool) -> f32 {
        if truncated {
            return -1.0;
        }
        let free = self.max_tokens.saturating_sub(self.buffer);
        if tokens <= free {
            return 0.0;
        }
        (-((tokens - free) as f32) / self.buffer as f32).max(-1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_penalty_is_zero_then_linear_over_the_buffer_then_minus_one() {
        let p = OverlongPenalty { weight: 1.0, max_tokens: 64, buffer: 16 };
        // Hand values: free up to 48 tokens, then −(len − 48) / 16.
        let got: Vec<f32> = [0, 30, 48, 49, 52, 56, 60, 64, 70].iter().map(|&n| p.value(n, false)).collect();
        assert_eq!(got, [0.0, 0.0, 0.0, -0.0625, -0.25, -0.5, -0.75, -1.0, -1.0]);
        assert_eq!(p.value(20, true), -1.0, "cut by the limit is the full penalty");
    }

    #[test]
    fn a_buffer_as_long_as_the_budget_penalises_from_the_first_token() {
        let p = OverlongPenalty { weight: 1.0, max_tokens: 8, buffer: 8 };
        assert_eq!([0, 2, 8].map(|n| p.value(n, false)), [0.0, -0.25, -1.0]);
    }
}
