//! Registry: reward names and weights (from config or `accuracy=1,format=0.1`) → rewards.

use crate::accuracy::AccuracyReward;
use crate::boxed_accuracy::BoxedAccuracyReward;
use crate::boxed_format::BoxedFormatReward;
use crate::format::{FormatMode, FormatReward};
use crate::weighted::WeightedRewards;
use crate::Reward;

pub const REWARD_NAMES: [&str; 6] = ["accuracy", "accuracy_boxed", "format", "format_strict", "format_soft", "format_boxed"];

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RegistryError {
    #[error("unknown reward '{name}' (known: {})", REWARD_NAMES.join(", "))]
    UnknownReward { name: String },
    #[error("reward '{name}' has weight {weight}, which is not finite")]
    BadWeight { name: String, weight: f32 },
    #[error("reward '{name}' is listed twice")]
    Duplicate { name: String },
    #[error("bad reward spec item '{item}': expected name=weight")]
    BadSpec { item: String },
    #[error("no rewards given")]
    Empty,
}

/// One reward by its registered name, with default settings.
pub fn reward_by_name(name: &str) -> Result<Box<dyn Reward>, RegistryError> {
    Ok(match name {
        "accuracy" => Box::new(AccuracyReward::default()),
        "accuracy_boxed" => Box::new(BoxedAccuracyReward::default()),
        "format" => Box::new(FormatReward::new(FormatMode::Lenient)),
        "format_strict" => Box::new(FormatReward::new(FormatMode::Strict)),
        "format_soft" => Box::new(FormatReward::new(FormatMode::Soft)),
        "format_boxed" => Box::new(BoxedFormatReward),
        _ => return Err(RegistryError::UnknownReward { name: name.to_string() }),
    })
}

/// Builds the weighted sum of the named rewards.
pub fn build_rewards<S: AsRef<str>>(spec: &[(S, f32)]) -> Result<WeightedRewards, RegistryError> {
    if spec.is_empty() {
        return Err(RegistryError::Empty);
    }
    let mut rewards = WeightedRewards::new();
    let mut seen: Vec<&str> = Vec::new();
    for (name, weight) in spec {
        let name = name.as_ref();
        if !weight.is_finite() {
            return Err(RegistryError::BadWeight { name: name.to_string(), weight: *weight });
        }
        if seen.contains(&name) {
            return Err(RegistryError::Duplicate { name: name.to_string() });
        }
        seen.push(name);
        rewards.push(reward_by_name(name)?, *weight);
    }
    Ok(rewards)
}

/// Parses `accuracy=1.0,format=0.2` (a bare name has weight 1).
pub fn parse_reward_spec(spec: &str) -> Result<Vec<(String, f32)>, RegistryError> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (name, weight) = match item.split_once('=') {
                Some((n, w)) => (n.trim(), w.trim().parse::<f32>().map_err(|_| RegistryError::BadSpec { item: item.to_string() })?),
                None => (item, 1.0),
            };
            Ok((name.to_string(), weight))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gold::Gold;

    #[test]
    fn builds_from_spec() {
        let spec = parse_reward_spec("accuracy=1, format_soft=0.25").unwrap();
        let rewards = build_rewards(&spec).unwrap();
        assert_eq!(rewards.names(), vec!["accuracy", "format_soft"]);
        let gold = Gold::latex("2").unwrap();
        assert_eq!(rewards.score("<think>a</think><answer>2</answer>", &gold), 1.25);
        for name in REWARD_NAMES {
            assert_eq!(reward_by_name(name).unwrap().name(), name);
        }
    }

    #[test]
    fn errors() {
        assert!(matches!(reward_by_name("length"), Err(RegistryError::UnknownReward { .. })));
        assert!(matches!(build_rewards(&[("format", f32::NAN)]), Err(RegistryError::BadWeight { .. })));
        assert!(matches!(build_rewards(&[("format", 1.0), ("format", 2.0)]), Err(RegistryError::Duplicate { .. })));
        assert!(matches!(parse_reward_spec("format=x"), Err(RegistryError::BadSpec { .. })));
        assert!(matches!(build_rewards::<&str>(&[]), Err(RegistryError::Empty)));
    }
}
