//! Registry: the workers that joined the learner node, by id, with the node each runs on and
//! whether it was told the run is over.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::cluster::wire::WorkerRole;
use crate::poison::lock;

#[derive(Default)]
pub struct Registry {
    state: Mutex<RegistryState>,
}

#[derive(Default)]
struct RegistryState {
    next: u64,
    workers: BTreeMap<u64, Entry>,
}

struct Entry {
    node: String,
    role: WorkerRole,
    live: bool,
    told_finished: bool,
}

impl Registry {
    /// Registers a worker; ids start at 1 and are never reused within a run.
    pub fn join(&self, node: &str, role: WorkerRole) -> u64 {
        let mut s = lock(&self.state);
        s.next += 1;
        let id = s.next;
        s.workers.insert(id, Entry { node: node.to_string(), role, live: true, told_finished: false });
        id
    }

    /// A live worker of any role; `None` for an unknown or lost one.
    pub fn role(&self, id: u64) -> Option<WorkerRole> {
        lock(&self.state).workers.get(&id).filter(|e| e.live).map(|e| e.role)
    }

    pub fn is_live(&self, id: u64) -> bool {
        self.role(id).is_some()
    }

    /// Marks every worker on `node` lost; returns their ids.
    pub fn leave(&self, node: &str) -> Vec<u64> {
        let mut s = lock(&self.state);
        let lost: Vec<u64> = s.workers.iter().filter(|(_, e)| e.live && e.node == node).map(|(id, _)| *id).collect();
        for id in &lost {
            if let Some(e) = s.workers.get_mut(id) {
                e.live = false;
            }
        }
        lost
    }

    pub fn told_finished(&self, id: u64) {
        if let Some(e) = lock(&self.state).workers.get_mut(&id) {
            e.told_finished = true;
        }
    }

    /// Every live worker has heard that the run is over.
    pub fn all_told(&self) -> bool {
        lock(&self.state).workers.values().all(|e| !e.live || e.told_finished)
    }

    pub fn live(&self) -> usize {
        lock(&self.state).workers.values().filter(|e| e.live).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_leaving_loses_only_its_workers() {
        let r = Registry::default();
        let a = r.join("node-a", WorkerRole::Generator);
        let b = r.join("node-b", WorkerRole::Scorer);
        assert_eq!(r.leave("node-a"), vec![a]);
        assert!(!r.is_live(a) && r.is_live(b));
        assert!(r.leave("node-a").is_empty(), "a lost worker is lost once");
        assert!(!r.all_told());
        r.told_finished(b);
        assert!(r.all_told());
    }
}
