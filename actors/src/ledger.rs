//! Ledger: the prompt queue and who holds each prompt until it is trained or dropped, so a failed
//! actor's prompts can be re-queued and a checkpoint can list exactly what was not trained yet.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::messages::{Prompt, RunState};
use crate::poison::lock;
use crate::traits::PromptSource;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    Generator(usize),
    Scorer(usize),
    /// In a queue between actors.
    Queued,
    /// In the learner's batch.
    Learner,
    /// With a worker on another node (its id from the hub), until it reports back.
    Node(u64),
}

pub struct Ledger {
    source: Arc<dyn PromptSource>,
    state: Mutex<LedgerState>,
    changed: tokio::sync::watch::Sender<()>,
}

struct LedgerState {
    cursor: u64,
    exhausted: bool,
    closed: bool,
    pending: VecDeque<u64>,
    outstanding: BTreeMap<u64, Holder>,
}

impl Ledger {
    /// Starts at `resume.cursor`, issuing `resume.pending` first.
    pub fn new(source: Arc<dyn PromptSource>, resume: &RunState) -> Self {
        Self {
            source,
            state: Mutex::new(LedgerState {
                cursor: resume.cursor,
                exhausted: false,
                closed: false,
                pending: resume.pending.iter().copied().collect(),
                outstanding: BTreeMap::new(),
            }),
            changed: tokio::sync::watch::channel(()).0,
        }
    }

    /// The next prompt (re-queued ones first), now held by `holder`; `None` when closed or when
    /// nothing is left for now (a failure elsewhere may still re-queue one: see [`Self::subscribe`]).
    pub fn next_prompt(&self, holder: Holder) -> Option<Prompt> {
        let mut s = lock(&self.state);
        if s.closed {
            return None;
        }
        let prompt = loop {
            if let Some(id) = s.pending.pop_front() {
                // A resumed pending id past the source's end is a changed dataset: skip it.
                if let Some(p) = self.source.prompt(id) {
                    break p;
                }
                continue;
            }
            if s.exhausted {
                return None;
            }
            match self.source.prompt(s.cursor) {
                Some(p) => {
                    s.cursor += 1;
                    break p;
                }
                None => {
                    s.exhausted = true;
                    drop(s);
                    self.changed.send_replace(());
                    return None;
                }
            }
        };
        s.outstanding.insert(prompt.id, holder);
        Some(prompt)
    }

    pub fn hand_over(&self, id: u64, holder: Holder) {
        if let Some(h) = lock(&self.state).outstanding.get_mut(&id) {
            *h = holder;
        }
    }

    /// Puts every prompt `holder` held back in the queue; returns how many.
    pub fn requeue_held_by(&self, holder: Holder) -> usize {
        let mut s = lock(&self.state);
        let ids: Vec<u64> = s.outstanding.iter().filter(|(_, h)| **h == holder).map(|(id, _)| *id).collect();
        for id in &ids {
            s.outstanding.remove(id);
            s.pending.push_back(*id);
        }
        drop(s);
        self.changed.send_replace(());
        ids.len()
    }

    /// Who holds prompt `id` now; `None` once it is done or back in the queue.
    pub fn holder(&self, id: u64) -> Option<Holder> {
        lock(&self.state).outstanding.get(&id).copied()
    }

    /// Puts prompt `id` back in the queue (a remote group refused as stale): sampled again.
    pub fn requeue(&self, id: u64) {
        let mut s = lock(&self.state);
        if s.outstanding.remove(&id).is_some() {
            s.pending.push_back(id);
        }
        drop(s);
        self.changed.send_replace(());
    }

    /// The prompt was trained on or dropped: it is done.
    pub fn finish(&self, id: u64) {
        lock(&self.state).outstanding.remove(&id);
        self.changed.send_replace(());
    }

    /// Stop handing out prompts (graceful shutdown).
    pub fn close(&self) {
        lock(&self.state).closed = true;
        self.changed.send_replace(());
    }

    /// Every prompt has been handed out and nothing is held outside the learner's batch.
    pub fn drained(&self) -> bool {
        let s = lock(&self.state);
        s.exhausted && s.pending.is_empty() && s.outstanding.values().all(|h| *h == Holder::Learner)
    }

    /// The run state to checkpoint: everything handed out but not done is pending on resume.
    pub fn snapshot(&self, step: u64, version: u64) -> RunState {
        let s = lock(&self.state);
        let mut pending: Vec<u64> = s.outstanding.keys().copied().chain(s.pending.iter().copied()).collect();
        pending.sort_unstable();
        RunState { step, version, cursor: s.cursor, pending, ..RunState::default() }
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<()> {
        self.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompts(n: usize) -> Arc<dyn PromptSource> {
        Arc::new((0..n).map(|i| Prompt { id: 0, text: format!("p{i}"), reference: String::new() }).collect::<Vec<_>>())
    }

    #[test]
    fn requeued_prompts_come_first_and_snapshot_lists_unfinished() {
        let l = Ledger::new(prompts(4), &RunState::default());
        let a = l.next_prompt(Holder::Generator(0)).unwrap();
        let b = l.next_prompt(Holder::Generator(1)).unwrap();
        assert_eq!((a.id, b.id), (0, 1));
        l.hand_over(b.id, Holder::Queued);
        assert_eq!(l.requeue_held_by(Holder::Generator(0)), 1);
        assert_eq!(l.next_prompt(Holder::Generator(1)).unwrap().id, 0);
        l.finish(1);
        assert_eq!(l.snapshot(3, 3,), RunState { step: 3, version: 3, cursor: 2, pending: vec![0], ..RunState::default() });
    }

    #[test]
    fn resume_issues_pending_then_continues_at_cursor() {
        let l = Ledger::new(prompts(5), &RunState { step: 1, version: 1, cursor: 3, pending: vec![1], ..RunState::default() });
        let ids: Vec<u64> = std::iter::from_fn(|| l.next_prompt(Holder::Generator(0)).map(|p| p.id)).collect();
        assert_eq!(ids, [1, 3, 4]);
        assert!(!l.drained());
        for id in ids {
            l.hand_over(id, Holder::Learner);
        }
        assert!(l.drained());
    }
}
