//! Scorer → learner: group-relative advantages from the total rewards of one prompt's G
//! completions. The one advantage function of srlm; `grpo.advantage_scale` picks the divisor.

use serde::{Deserialize, Serialize};

/// What the mean-centred rewards of a group are divided by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AdvantageScale {
    /// The group's population std, + 1e-4 (the GRPO paper's reference code).
    #[default]
    Std,
    /// The group's sample (Bessel-corrected) std, + 1e-4, as TRL's `torch.std`.
    SampleStd,
    /// Nothing: only the group mean is removed (Dr. GRPO).
    None,
}

/// Added to the std before dividing, so a group whose rewards are all equal gets zero
/// advantages instead of 0/0 (TRL uses the same constant).
pub const STD_EPS: f64 = 1e-4;

/// A = (r − mean) / divisor over one group's rewards.
pub fn group_advantages(total: &[f32], scale: AdvantageScale) -> Vec<f32> {
    if total.is_empty() {
        return Vec::new();
    }
    let n = total.len() as f64;
    let mean = total.iter().map(|&r| r as f64).sum::<f64>() / n;
    let squares = total.iter().map(|&r| (r as f64 - mean).powi(2)).sum::<f64>();
    let divisor = match scale {
        AdvantageScale::Std => (squares / n).sqrt() + STD_EPS,
        // One completion has no sample std (torch gives NaN, which would poison the batch).
        AdvantageScale::SampleStd if total.len() < 2 => STD_EPS,
        AdvantageScale::SampleStd => (squares / (n - 1.0)).sqrt() + STD_EPS,
        AdvantageScale::None => 1.0,
    };
    total.iter().map(|&r| ((r as f64 - mean) / divisor) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-5, "got {got:?}, want {want:?}");
        }
    }

    // Rewards 2, 0, 0, 0: mean 0.5, deviations 1.5, −0.5 ×3, squares summing to 3.
    const GROUP: [f32; 4] = [2.0, 0.0, 0.0, 0.0];

    #[test]
    fn population_std_matches_hand_values() {
        let s = (3.0f64 / 4.0).sqrt() + 1e-4;
        close(&group_advantages(&GROUP, AdvantageScale::Std), &[1.5 / s, -0.5 / s, -0.5 / s, -0.5 / s]);
    }

    #[test]
    fn sample_std_matches_hand_values() {
        let s = (3.0f64 / 3.0).sqrt() + 1e-4;
        close(&group_advantages(&GROUP, AdvantageScale::SampleStd), &[1.5 / s, -0.5 / s, -0.5 / s, -0.5 / s]);
    }

    #[test]
    fn dr_grpo_only_centres() {
        close(&group_advantages(&GROUP, AdvantageScale::None), &[1.5, -0.5, -0.5, -0.5]);
    }

    #[test]
    fn equal_rewards_and_single_completions_give_zero_advantages() {
        for scale in [AdvantageScale::Std, AdvantageScale::SampleStd, AdvantageScale::None] {
            assert_eq!(group_advantages(&[1.0, 1.0, 1.0], scale), vec![0.0, 0.0, 0.0]);
            assert_eq!(group_advantages(&[3.0], scale), vec![0.0]);
            assert!(group_advantages(&[], scale).is_empty());
        }
    }
}
