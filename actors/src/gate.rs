//! StalenessGate: admission control for generators. A group may start only while fewer than
//! (version + max_staleness + 1) · batch_groups groups have started, so no group can be more than
//! `max_staleness` versions old when its turn to train comes, and `max_staleness = 0` runs in
//! lockstep (one batch, then wait for the new weights) on the same code path. A barrier (the
//! deterministic harness sets one at each periodic checkpoint) admits no group that would train
//! after a given version, so nothing is in flight when that version's checkpoint is written.

use std::sync::Mutex;

use crate::broadcast::lock;
use crate::messages::PolicyVersion;

pub struct StalenessGate {
    max_staleness: u64,
    batch_groups: u64,
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
    pub fn new(start_version: PolicyVersion, max_staleness: u64, batch_groups: usize) -> Self {
        let (changed, _) = tokio::sync::watch::channel(());
        Self {
            max_staleness,
            batch_groups: batch_groups as u64,
            state: Mutex::new(GateState { base_version: start_version, version: start_version, started: 0, refunds: 0, barrier: None }),
            changed,
        }
    }

    pub fn try_acquire(&self) -> bool {
        let mut s = lock(&self.state);
        let mut limit = (s.version - s.base_version + self.max_staleness + 1) * self.batch_groups + s.refunds;
        if let Some(barrier) = s.barrier {
            limit = limit.min(barrier.saturating_sub(s.base_version) * self.batch_groups + s.refunds);
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
        let g = StalenessGate::new(7, 0, 3);
        assert_eq!(drain(&g), 3);
        g.advance(8);
        assert_eq!(drain(&g), 3);
        g.refund();
        assert_eq!(drain(&g), 1);
    }

    #[test]
    fn barrier_admits_nothing_that_would_train_after_it() {
        let g = StalenessGate::new(5, 2, 4);
        g.hold_at(6);
        assert_eq!(drain(&g), 4, "only the batch of version 6");
        g.advance(6);
        assert_eq!(drain(&g), 0);
        g.hold_at(8);
        assert_eq!(drain(&g), 8, "versions 7 and 8, though the staleness bound would allow 9");
    }

    #[test]
    fn staleness_two_admits_three_batches_ahead() {
        let g = StalenessGate::new(0, 2, 4);
        assert_eq!(drain(&g), 12);
        g.advance(1);
        assert_eq!(drain(&g), 4);
    }
}
