//! StepSizes: how many groups each optimizer step trains. GRPO steps all take `batch_groups`;
//! SFT's token-budget steps hold different numbers of examples (one group each), planned up front.

use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepSizes {
    /// Every step trains this many groups.
    Fixed(usize),
    /// `before[s]` groups train in the steps before step `s`; the plan has `before.len() - 1` steps.
    Planned { before: Arc<[u64]> },
}

impl StepSizes {
    /// A plan from the groups of each step, in order (each at least 1).
    pub fn planned(sizes: &[usize]) -> Self {
        let before: Vec<u64> = std::iter::once(0)
            .chain(sizes.iter().scan(0u64, |sum, &n| {
                *sum += n as u64;
                Some(*sum)
            }))
            .collect();
        Self::Planned { before: before.into() }
    }

    /// Groups step `step` trains. Past a plan's end no step is ever full: the run ends with the
    /// prompts, and the learner trains what is left.
    pub fn of(&self, step: u64) -> usize {
        match self {
            Self::Fixed(n) => *n,
            Self::Planned { before } => match (usize::try_from(step).ok().and_then(|s| before.get(s..s + 2))).map(|w| w[1] - w[0]) {
                Some(n) => n as usize,
                None => usize::MAX,
            },
        }
    }

    /// Groups trained by the steps before `step`. Past a plan's end, unbounded: the gate then
    /// lets a generator ask the ledger for more, which is how the run learns the prompts ended.
    pub fn before(&self, step: u64) -> u64 {
        match self {
            Self::Fixed(n) => step.saturating_mul(*n as u64),
            Self::Planned { before } => usize::try_from(step).ok().and_then(|s| before.get(s)).copied().unwrap_or(u64::MAX),
        }
    }

    /// A planned step of no group could never fill (the learner waits for one more group).
    pub(crate) fn validate(&self) -> Result<(), String> {
        match self {
            Self::Fixed(0) => Err("must be at least 1".into()),
            Self::Planned { before } => match before.windows(2).position(|w| w[1] == w[0]) {
                Some(step) => Err(format!("step {step} of the plan trains no group")),
                None => Ok(()),
            },
            Self::Fixed(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_steps_count_batch_groups_each() {
        let s = StepSizes::Fixed(4);
        assert_eq!((s.of(0), s.of(9)), (4, 4));
        assert_eq!((s.before(0), s.before(3)), (0, 12));
    }

    #[test]
    fn planned_steps_follow_the_plan_and_end_with_it() {
        let s = StepSizes::planned(&[3, 1, 5]);
        assert_eq!((s.of(0), s.of(1), s.of(2)), (3, 1, 5));
        assert_eq!(s.of(3), usize::MAX);
        assert_eq!([0, 1, 2, 3, 4].map(|k| s.before(k)), [0, 3, 4, 9, u64::MAX]);
        assert!(s.validate().is_ok());
        assert!(StepSizes::planned(&[2, 0]).validate().unwrap_err().contains("step 1"));
    }
}
