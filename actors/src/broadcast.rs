//! Broadcast: learner → generators. Hands out the newest weights as `Arc` clones (shared, not
//! copied, on the learner's device) and calls a per-device copy hook once per version elsewhere,
//! timing each copy (`srlm_weight_sync_seconds`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::messages::{Policy, PolicyVersion, WeightsPublished};
use crate::metrics as m;
use crate::poison::lock;

/// Copies weights to device `d`; called at most once per (version, device).
pub type CopyToDevice<W> = Box<dyn Fn(&W, usize) -> W + Send + Sync>;

/// The newest copy on one foreign device, filled when a generator there first asks for it.
type DeviceSlot<W> = Arc<Mutex<Option<Policy<W>>>>;

pub struct Broadcast<W> {
    home_device: usize,
    latest: Mutex<Policy<W>>,
    /// One slot per foreign device; its own lock so a copy to one device blocks neither the
    /// learner's publish nor other devices.
    copies: Mutex<HashMap<usize, DeviceSlot<W>>>,
    copy: CopyToDevice<W>,
    published: tokio::sync::watch::Sender<PolicyVersion>,
    syncs: Mutex<WeightSyncs>,
}

/// Copies made to foreign devices and the time they took, for the run summary.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WeightSyncs {
    pub copies: u64,
    pub seconds: Duration,
}

impl<W: Send + Sync + 'static> Broadcast<W> {
    pub fn new(home_device: usize, initial: Policy<W>, copy: CopyToDevice<W>) -> Self {
        let (published, _) = tokio::sync::watch::channel(initial.version);
        Self {
            home_device,
            latest: Mutex::new(initial),
            copies: Mutex::new(HashMap::new()),
            copy,
            published,
            syncs: Mutex::new(WeightSyncs::default()),
        }
    }

    pub fn syncs(&self) -> WeightSyncs {
        *lock(&self.syncs)
    }

    pub fn publish(&self, policy: Policy<W>) -> WeightsPublished {
        let version = policy.version;
        *lock(&self.latest) = policy;
        self.published.send_replace(version);
        WeightsPublished { version }
    }

    pub fn version(&self) -> PolicyVersion {
        lock(&self.latest).version
    }

    /// The newest policy as seen from `device`; copies it there first if this version has not been.
    pub fn policy_for(&self, device: usize) -> Policy<W> {
        let latest = lock(&self.latest).clone();
        if device == self.home_device {
            return latest;
        }
        let slot = Arc::clone(lock(&self.copies).entry(device).or_default());
        let mut slot = lock(&slot);
        match &*slot {
            Some(copy) if copy.version == latest.version => copy.clone(),
            _ => {
                let started = Instant::now();
                let copied = Policy { version: latest.version, weights: Arc::new((self.copy)(&latest.weights, device)) };
                let took = started.elapsed();
                metrics::histogram!(m::WEIGHT_SYNC_SECONDS, "device" => device.to_string()).record(took.as_secs_f64());
                let mut syncs = lock(&self.syncs);
                syncs.copies += 1;
                syncs.seconds += took;
                *slot = Some(copied.clone());
                copied
            }
        }
    }

    /// Wakes when a new version is published.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<PolicyVersion> {
        self.published.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn one_copy_per_version_and_foreign_device_and_none_at_home() {
        let copies = Arc::new(AtomicUsize::new(0));
        let counted = copies.clone();
        let b = Broadcast::new(
            0,
            Policy { version: 0, weights: Arc::new(vec![1.0f32]) },
            Box::new(move |w: &Vec<f32>, d| {
                counted.fetch_add(1, Ordering::SeqCst);
                w.iter().map(|x| x + d as f32 * 100.0).collect()
            }),
        );
        let home_a = b.policy_for(0);
        let home_b = b.policy_for(0);
        assert!(Arc::ptr_eq(&home_a.weights, &home_b.weights), "home device must share, not copy");
        let d1a = b.policy_for(1);
        let d1b = b.policy_for(1);
        assert!(Arc::ptr_eq(&d1a.weights, &d1b.weights));
        assert_eq!(*d1a.weights, vec![101.0]);
        b.policy_for(2);
        assert_eq!(copies.load(Ordering::SeqCst), 2);
        b.publish(Policy { version: 1, weights: Arc::new(vec![2.0]) });
        for _ in 0..3 {
            assert_eq!(b.policy_for(1).version, 1);
            assert_eq!(*b.policy_for(2).weights, vec![202.0]);
        }
        assert_eq!(copies.load(Ordering::SeqCst), 4);
        assert_eq!(b.syncs().copies, 4);
    }
}
