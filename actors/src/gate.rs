//! StalenessGate: admission control for generators. A group may start only while fewer groups
//! have started than the steps up to version + max_staleness train, so no group can be more than
//! `max_staleness` versions old when its turn to train comes, and `max_staleness = 0` runs in
//! lockstep (one batch, then wait for the new weights) on the same code path. A barrier (the
//! deterministic harness sets one at each periodic checkpoint) admits no group that would train
//! after a given version, so nothing is in flight when that version's checkpoint is written.

use std::sync::Mutex;

use crate::messages::PolicyVersion;
use crate::poison::lock;
use crate::step_sizes::StepSizes;

pub struct StalenessGate {
    max_staleness: u64,
    sizes: StepSizes,
    state: Mutex<GateState>,
    changed: tokio::sync::watch::Sender<()>,
}

struct GateState {
    base_version: PolicyVersion,
    version: PolicyVersion,
    started: u64,
    /// Starts that produced no trainable group (failed, dropped stale): their slot is given back.
    refunds: u64,
    barrier: Option<PolicyVersion>,
}

impl StalenessGate {
    /// Versions count steps: step `s` trains the groups the policy of version `s` admitted.
    pub fn new(start_version: PolicyVersion, max_staleness: u64, sizes: StepSizes) -> Self {
        let (changed, _) = tokio::sync::watch::channel(());
        Self {
            max_staleness,
            sizes,
            state: Mutex::new(GateState { base_version: start_version, version: start_version, started: 0, refunds: 0, barrier: None }),
            changed,
        }
    }

    pub fn try_acquire(&self) -> bool {
        let mut s = lock(&self.state);
        // Groups the steps from the base up to (not including) `version` train.
        let upto = |version: PolicyVersion| self.sizes.before(version.max(s.base_version)) - self.sizes.before(s.base_version);
        let mut limit = upto(s.version.saturating_add(self.max_staleness).saturating_add(1)).saturating_add(s.refunds);
        if let Some(barrier) = s.barrier {
            limit = limit.min(upto(barrier).saturating_add(s.refunds));
        }
        if s.started < limit {
            s.started += 1;
            true
        } else {
            false
        }
    }

    /// Waits for a slot; `None` if `stop` fires first.
    pub async fn acquire(&self, stop: &crate::shutdown::Stop) -> Option<()> {
        loop {
            let mut rx = self.changed.subscribe();
            if self.try_acquire() {
                return Some(());
            }
            tokio::select! {
                _ = rx.changed() => {}
                _ = stop.stopped() => return None,
            }
        }
    }

    pub fn advance(&self, version: PolicyVersion) {
        lock(&self.state).version = version;
        self.changed.send_replace(());
    }

    /// Admit only groups that train at or before `version`, until the barrier is moved.
    pub fn hold_at(&self, version: PolicyVersion) {
        lock(&self.state).barrier = Some(version);
        self.changed.send_replace(());
    }

    pub fn refund(&self) {
        lock(&self.state).refunds += 1;
        self.changed.send_replace(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(g: &StalenessGate) -> usize {
        std::iter::from_fn(|| g.try_acquire().then_some(())).count()
    }

    #[test]
    fn synchronous_gate_admits_one_batch_per_version() {
        let g = StalenessGate::new(7, 0, StepSizes::Fixed(3));
        assert_eq!(drain(&g), 3);
        g.advance(8);
        assert_eq!(drain(&g), 3);
        g.refund();
        assert_eq!(drain(&g), 1);
    }

    #[test]
    fn barrier_admits_nothing_that_would_train_after_it() {
        let g = StalenessGate::new(5, 2, StepSizes::Fixed(4));
        g.hold_at(6);
        assert_eq!(drain(&g), 4, "only the batch of version 6");
        g.advance(6);
        assert_eq!(drain(&g), 0);
        g.hold_at(8);
        assert_eq!(drain(&g), 8, "versions 7 and 8, though the staleness bound would allow 9");
    }

    #[test]
    fn staleness_two_admits_three_batches_ahead() {
        let g = StalenessGate::new(0, 2, StepSizes::Fixed(4));
        assert_eq!(drain(&g), 12);
        g.advance(1);
        assert_eq!(drain(&g), 4);
    }

    #[test]
    fn planned_steps_admit_each_step_its_own_groups() {
        // Resumed at step 1 of a plan of steps with 2, 3, 1 and 4 groups.
        let g = StalenessGate::new(1, 0, StepSizes::planned(&[2, 3, 1, 4]));
        assert_eq!(drain(&g), 3, "step 1's groups");
        g.advance(2);
        assert_eq!(drain(&g), 1);
        g.hold_at(3);
        g.advance(3);
        assert_eq!(drain(&g), 0, "the barrier holds step 3's groups");
        g.hold_at(9);
        assert_eq!(drain(&g), 4);
        g.advance(4);
        assert!(g.try_acquire(), "past the plan a generator may ask the ledger, which says the prompts have ended");
    }
}
