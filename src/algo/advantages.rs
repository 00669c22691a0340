//! Scorer → learner: group-relative advantages from the rewards of each prompt's G completions.

use serde::{Deserialize, Serialize};

use super::AlgoError;

/// What the mean-centred rewards are divided by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AdvantageScale {
    /// The standard deviation of the rewards of the same group (GRPO).
    #[default]
    Group,
    /// The standard deviation of all rewards of the batch (more robust when a group's rewards
    /// are nearly equal).
    Batch,
    /// Nothing: only the group mean is removed (Dr. GRPO).
    None,
}

/// Added to the std before dividing, so a group whose rewards are all equal gets zero
/// advantages instead of 0/0 (TRL uses the same constant).
pub const STD_EPS: f64 = 1e-4;

/// Advantages of `rewards`, laid out as consecutive groups of `group_size` completions of one
/// prompt: A = (r − mean of its group) / (std + 1e-4), with the unbiased (Bessel) std.
pub fn group_advantages(rewards: &[f32], group_size: usize, scale: AdvantageScale) -> Result<Vec<f32>, AlgoError> {
    if group_size == 0 || rewards.len() % group_size != 0 {
        return Err(AlgoError::BadBatch(format!(
            "{} rewards do not split into groups of {group_size}",
            rewards.len()
        )));
    }
    if let Some(i) = rewards.iter().position(|r| !r.is_finite()) {
        return Err(AlgoError::BadBatch(format!("reward {i} is {}", rewards[i])));
    }
    let rewards: Vec<f64> = rewards.iter().map(|&r| r as f64).collect();
    let batch_std = unbiased_std(&rewards);
    let mut out = Vec::with_capacity(rewards.len());
    for group in rewards.chunks(group_size) {
        let mean = group.iter().sum::<f64>() / group.len() as f64;
        let divisor = match scale {
            AdvantageScale::Group => unbiased_std(group) + STD_EPS,
            AdvantageScale::Batch => batch_std + STD_EPS,
            AdvantageScale::None => 1.0,
        };
        out.extend(group.iter().map(|r| ((r - mean) / divisor) as f32));
    }
    Ok(out)
}

/// Sample std with Bessel's correction; 0 for fewer than two values (torch gives NaN there,
/// which would poison a group of one).
fn unbiased_std(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    let ss: f64 = xs.iter().map(|x| (x - mean).powi(2)).sum();
    (ss / (xs.len() - 1) as f64).sqrt()
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

    // Group 1: rewards 1, 0, 0, 1 → mean 0.5, deviations ±0.5, unbiased var = 4·0.25/3 = 1/3.
    // Group 2: rewards 2, 0, 0, 0 → mean 0.5, deviations 1.5, −0.5 ×3, var = (2.25 + 0.75)/3 = 1.
    const REWARDS: [f32; 8] = [1.0, 0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 0.0];

    #[test]
    fn group_std_scaling_matches_hand_values() {
        let s1 = (1.0f64 / 3.0).sqrt() + 1e-4;
        let s2 = 1.0 + 1e-4;
        let want = [0.5 / s1, -0.5 / s1, -0.5 / s1, 0.5 / s1, 1.5 / s2, -0.5 / s2, -0.5 / s2, -0.5 / s2];
        close(&group_advantages(&REWARDS, 4, AdvantageScale::Group).unwrap(), &want);
    }

    #[test]
    fn batch_std_scaling_matches_hand_values() {
        // All 8 rewards: mean 0.5, squared deviations 0.25·6 + 2.25 + 0.25 = 4.0 → var 4/7.
        let s = (4.0f64 / 7.0).sqrt() + 1e-4;
        let want = [0.5 / s, -0.5 / s, -0.5 / s, 0.5 / s, 1.5 / s, -0.5 / s, -0.5 / s, -0.5 / s];
        close(&group_advantages(&REWARDS, 4, AdvantageScale::Batch).unwrap(), &want);
    }

    #[test]
    fn dr_grpo_only_centres() {
        let want = [0.5, -0.5, -0.5, 0.5, 1.5, -0.5, -0.5, -0.5];
        close(&group_advantages(&REWARDS, 4, AdvantageScale::None).unwrap(), &want);
    }

    #[test]
    fn equal_rewards_give_zero_advantages() {
        let adv = group_advantages(&[1.0, 1.0, 1.0], 3, AdvantageScale::Group).unwrap();
        assert_eq!(adv, vec![0.0, 0.0, 0.0]);
    }

    #[test]
    fn bad_shapes_and_values_are_refused() {
        assert!(group_advantages(&[1.0, 2.0, 3.0], 2, AdvantageScale::Group).is_err());
        assert!(group_advantages(&[1.0], 0, AdvantageScale::Group).is_err());
        let err = group_advantages(&[1.0, f32::NAN], 2, AdvantageScale::Group).unwrap_err();
        assert!(err.to_string().contains("reward 1"), "{err}");
    }
}
