//! Hub: the learner node's door for workers on other nodes. It lends prompts to remote
//! generators through the staleness gate and the ledger (held as `Holder::Node(worker)`), serves
//! weight chunks by version, feeds what workers send back into the local queues, and re-queues
//! whatever a lost node held. Bad frames, unknown workers and stale versions are refused and logged.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::cluster::registry::Registry;
use crate::cluster::weights::{EncodeWeights, WeightsBlob};
use crate::cluster::wire::{decode, encode, HubMsg, Reply, Report, Request};
use crate::context::Context;
use crate::ledger::Holder;
use crate::messages::{PolicyVersion, RolloutGroup, ScoredGroup};
use crate::metrics as m;

/// How long a request for work waits before answering "nothing now" (the worker asks again), so
/// a lost reply never strands a worker and a stop is heard within this.
const WAIT_FOR_WORK: Duration = Duration::from_millis(500);
/// Encoded versions kept for transfers in progress: the newest and the one before.
const BLOBS_KEPT: usize = 2;

pub struct Hub<W>(PhantomData<fn() -> W>);

impl<W> Default for Hub<W> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

pub struct HubArgs<W> {
    pub ctx: Arc<Context<W>>,
    pub registry: Arc<Registry>,
    /// The run's recipe, sent to each worker that joins.
    pub recipe: String,
    pub encode: EncodeWeights<W>,
    pub chunk_bytes: usize,
}

pub struct HubState<W> {
    shared: Arc<Shared<W>>,
}

/// What the hub's spawned tasks share with it.
struct Shared<W> {
    ctx: Arc<Context<W>>,
    registry: Arc<Registry>,
    recipe: String,
    encode: EncodeWeights<W>,
    chunk_bytes: usize,
    blobs: tokio::sync::Mutex<VecDeque<Arc<WeightsBlob>>>,
}

impl<W: Send + Sync + 'static> Actor for Hub<W> {
    type Msg = HubMsg;
    type State = HubState<W>;
    type Arguments = HubArgs<W>;

    async fn pre_start(&self, _: ActorRef<HubMsg>, a: HubArgs<W>) -> Result<Self::State, ActorProcessingErr> {
        for reason in ["undecodable", "unknown_worker", "not_held", "stale_version", "future_version"] {
            metrics::counter!(m::REMOTE_REFUSED, "reason" => reason).increment(0);
        }
        metrics::gauge!(m::REMOTE_WORKERS).set(0.0);
        let shared = Shared {
            ctx: a.ctx,
            registry: a.registry,
            recipe: a.recipe,
            encode: a.encode,
            chunk_bytes: a.chunk_bytes,
            blobs: tokio::sync::Mutex::new(VecDeque::new()),
        };
        Ok(HubState { shared: Arc::new(shared) })
    }

    async fn handle(&self, _: ActorRef<HubMsg>, msg: HubMsg, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        match msg {
            HubMsg::Ask(frame, reply) => state.ask(&frame, reply),
            HubMsg::Tell(frame) => state.shared.tell(&frame),
            HubMsg::NodeLeft(node) => state.shared.node_left(&node),
        }
        Ok(())
    }
}

impl<W: Send + Sync + 'static> HubState<W> {
    /// Answers at once what is cheap; work that waits (prompts, rollouts, encoding) runs on a
    /// task of its own so the hub keeps taking reports meanwhile.
    fn ask(&self, frame: &[u8], reply: RpcReplyPort<Vec<u8>>) {
        let s = Arc::clone(&self.shared);
        let request = match decode::<Request>(frame) {
            Ok(r) => r,
            Err(e) => return answer(reply, s.refuse("undecodable", e.to_string())),
        };
        let worker = match request {
            Request::Join { node, role } => return answer(reply, s.join(&node, role)),
            Request::Prompts { worker, .. } | Request::WeightChunk { worker, .. } | Request::Rollout { worker } => worker,
        };
        if !s.registry.is_live(worker) {
            return answer(reply, s.refuse("unknown_worker", format!("worker {worker} is not registered (or its node left)")));
        }
        tokio::spawn(async move {
            let r = match request {
                Request::Prompts { max, .. } => s.lend_prompts(worker, max).await,
                Request::WeightChunk { version, index, .. } => s.weight_chunk(version, index).await,
                Request::Rollout { .. } => s.lend_rollout(worker).await,
                Request::Join { .. } => unreachable!("answered above"),
            };
            if r == Reply::Finished {
                s.registry.told_finished(worker);
            }
            answer(reply, r);
        });
    }
}

fn answer(port: RpcReplyPort<Vec<u8>>, reply: Reply) {
    match encode(&reply) {
        // A worker that has gone is handled by its node's disconnect, not here.
        Ok(bytes) => drop(port.send(bytes)),
        Err(e) => tracing::error!(%e, "encoding a reply to a worker"),
    }
}

impl<W: Send + Sync + 'static> Shared<W> {
    fn refuse(&self, reason: &'static str, detail: String) -> Reply {
        tracing::warn!(reason, %detail, "refused a worker's frame");
        metrics::counter!(m::REMOTE_REFUSED, "reason" => reason).increment(1);
        self.ctx.counters.remote.frames_refused.fetch_add(1, Ordering::Relaxed);
        Reply::Refused(detail)
    }

    fn join(&self, node: &str, role: crate::cluster::wire::WorkerRole) -> Reply {
        let worker = self.registry.join(node, role);
        tracing::info!(worker, node, ?role, "worker joined");
        self.ctx.counters.remote.workers_joined.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!(m::REMOTE_WORKERS).set(self.registry.live() as f64);
        Reply::Joined { worker, recipe: self.recipe.clone(), version: self.ctx.broadcast.version() }
    }

    /// Prompts for a remote generator, each with a gate slot, as a local generator takes them.
    async fn lend_prompts(&self, worker: u64, max: usize) -> Reply {
        let ctx = &self.ctx;
        let holder = Holder::Node(worker);
        let nothing = || {
            if ctx.stop.is_stopped() {
                Reply::Finished
            } else {
                Reply::Prompts { prompts: Vec::new(), version: ctx.broadcast.version() }
            }
        };
        if !matches!(tokio::time::timeout(WAIT_FOR_WORK, ctx.gate.acquire(&ctx.stop)).await, Ok(Some(()))) {
            return nothing();
        }
        let first = tokio::time::timeout(WAIT_FOR_WORK, async {
            loop {
                let mut changed = ctx.ledger.subscribe();
                if let Some(p) = ctx.ledger.next_prompt(holder) {
                    return Some(p);
                }
                tokio::select! {
                    _ = changed.changed() => {}
                    _ = ctx.stop.stopped() => return None,
                }
            }
        });
        let Ok(Some(first)) = first.await else {
            ctx.gate.refund();
            return nothing();
        };
        let mut prompts = vec![first];
        while prompts.len() < max && ctx.gate.try_acquire() {
            match ctx.ledger.next_prompt(holder) {
                Some(p) => prompts.push(p),
                None => {
                    ctx.gate.refund();
                    break;
                }
            }
        }
        // Its node may have left while we waited: then no one else would put these back.
        if !self.registry.is_live(worker) {
            self.requeue(worker);
            return Reply::Finished;
        }
        Reply::Prompts { prompts, version: ctx.broadcast.version() }
    }

    async fn lend_rollout(&self, worker: u64) -> Reply {
        let ctx = &self.ctx;
        match tokio::time::timeout(WAIT_FOR_WORK, ctx.rollouts.recv(&ctx.stop)).await {
            Ok(Some(group)) => {
                ctx.ledger.hand_over(group.prompt.id, Holder::Node(worker));
                if !self.registry.is_live(worker) {
                    self.requeue(worker);
                    return Reply::Finished;
                }
                Reply::Rollout(Some(group))
            }
            Ok(None) => Reply::Finished,
            Err(_) if ctx.stop.is_stopped() => Reply::Finished,
            Err(_) => Reply::Rollout(None),
        }
    }

    async fn weight_chunk(&self, version: PolicyVersion, index: u32) -> Reply {
        let Some(blob) = self.blob(version).await else {
            let newest = self.ctx.broadcast.version();
            let reason = if version > newest { "future_version" } else { "stale_version" };
            return self.refuse(reason, format!("weights of version {version} are not served (newest is {newest})"));
        };
        match blob.chunk(index) {
            Some(chunk) => Reply::Chunk(chunk),
            None => Reply::Refused(format!("version {version} has {} chunks, not {}", blob.chunks(), index + 1)),
        }
    }

    /// The encoded blob of `version`: cached, or encoded now if it is the newest.
    async fn blob(&self, version: PolicyVersion) -> Option<Arc<WeightsBlob>> {
        let mut blobs = self.blobs.lock().await;
        if let Some(b) = blobs.iter().find(|b| b.version == version) {
            return Some(Arc::clone(b));
        }
        let policy = self.ctx.broadcast.policy_for(self.ctx.cfg.learner_device);
        if policy.version != version {
            return None;
        }
        let (encode, chunk_bytes) = (Arc::clone(&self.encode), self.chunk_bytes);
        let blob = tokio::task::spawn_blocking(move || WeightsBlob::new(version, encode(&policy.weights), chunk_bytes)).await.ok()?;
        let blob = Arc::new(blob);
        blobs.push_back(Arc::clone(&blob));
        while blobs.len() > BLOBS_KEPT {
            blobs.pop_front();
        }
        Some(blob)
    }

    fn tell(self: &Arc<Self>, frame: &[u8]) {
        let report = match decode::<Report>(frame) {
            Ok(r) => r,
            Err(e) => return drop(self.refuse("undecodable", e.to_string())),
        };
        let worker = match &report {
            Report::GroupsGenerated { worker, .. }
            | Report::GroupScored { worker, .. }
            | Report::WeightsAdopted { worker, .. }
            | Report::Failed { worker, .. } => *worker,
        };
        if !self.registry.is_live(worker) {
            return drop(
                self.refuse("unknown_worker", format!("a report from worker {worker}, which is not registered (or its node left)")),
            );
        }
        match report {
            Report::GroupsGenerated { groups, .. } => groups.into_iter().for_each(|g| self.generated(worker, g)),
            Report::GroupScored { group, .. } => self.scored(worker, group),
            Report::WeightsAdopted { version, bytes, seconds, .. } => self.adopted(worker, version, bytes, seconds),
            Report::Failed { reason, .. } => {
                tracing::warn!(worker, %reason, "remote worker failed; re-queueing what it held");
                self.requeue(worker);
            }
        }
    }

    fn generated(self: &Arc<Self>, worker: u64, group: RolloutGroup) {
        let ctx = &self.ctx;
        let id = group.prompt.id;
        if ctx.ledger.holder(id) != Some(Holder::Node(worker)) {
            return drop(self.refuse("not_held", format!("worker {worker} sent a group of prompt {id}, which it does not hold")));
        }
        let newest = ctx.broadcast.version();
        let too_old = newest.saturating_sub(group.policy_version) > ctx.cfg.max_staleness;
        if group.policy_version > newest || too_old {
            let reason = if too_old { "stale_version" } else { "future_version" };
            drop(self.refuse(
                reason,
                format!("worker {worker}: prompt {id} sampled with version {} (newest {newest}); sampled again", group.policy_version),
            ));
            ctx.ledger.requeue(id);
            ctx.counters.requeued.fetch_add(1, Ordering::Relaxed);
            ctx.gate.refund();
            return;
        }
        let (label, tokens) = (format!("node-{worker}"), group.generated_tokens() as u64);
        ctx.counters.groups_generated.fetch_add(1, Ordering::Relaxed);
        ctx.counters.tokens.fetch_add(tokens, Ordering::Relaxed);
        ctx.counters.remote.groups_generated.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::GENERATOR_TOKENS, "generator" => label.clone()).increment(tokens);
        metrics::counter!(m::GENERATOR_GROUPS, "generator" => label.clone()).increment(1);
        metrics::histogram!(m::GENERATOR_GROUP_SECONDS, "generator" => label).record(group.timings.sampling.as_secs_f64());
        ctx.ledger.hand_over(id, Holder::Queued);
        let s = Arc::clone(self);
        tokio::spawn(async move { s.ctx.rollouts.send(group, &s.ctx.stop).await });
    }

    fn scored(self: &Arc<Self>, worker: u64, scored: ScoredGroup) {
        let ctx = &self.ctx;
        let id = scored.group.prompt.id;
        if ctx.ledger.holder(id) != Some(Holder::Node(worker)) {
            return drop(self.refuse("not_held", format!("worker {worker} scored prompt {id}, which it does not hold")));
        }
        ctx.counters.remote.groups_scored.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::SCORER_GROUPS, "scorer" => format!("node-{worker}")).increment(1);
        ctx.ledger.hand_over(id, Holder::Queued);
        let s = Arc::clone(self);
        tokio::spawn(async move { s.ctx.scored.send(scored, &s.ctx.stop).await });
    }

    fn adopted(&self, worker: u64, version: PolicyVersion, bytes: u64, seconds: f64) {
        let remote = &self.ctx.counters.remote;
        remote.weight_transfers.fetch_add(1, Ordering::Relaxed);
        remote.weight_bytes.fetch_add(bytes, Ordering::Relaxed);
        remote.weight_transfer_ns.fetch_add((seconds.max(0.0) * 1e9) as u64, Ordering::Relaxed);
        let label = format!("node-{worker}");
        metrics::histogram!(m::WEIGHT_TRANSFER_SECONDS, "worker" => label.clone()).record(seconds);
        metrics::counter!(m::WEIGHT_TRANSFER_BYTES, "worker" => label).increment(bytes);
        tracing::debug!(worker, version, bytes, seconds, "worker adopted a policy version");
    }

    /// A node's session closed: its workers are lost and what they held goes back to the queue.
    fn node_left(&self, node: &str) {
        for worker in self.registry.leave(node) {
            let requeued = self.requeue(worker);
            self.ctx.counters.remote.workers_lost.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(worker, node, requeued, "worker node left; its prompts are back in the queue");
        }
        metrics::gauge!(m::REMOTE_WORKERS).set(self.registry.live() as f64);
    }

    /// Puts back every prompt `worker` holds, each with its gate slot; returns how many.
    fn requeue(&self, worker: u64) -> usize {
        let ctx = &self.ctx;
        let n = ctx.ledger.requeue_held_by(Holder::Node(worker));
        ctx.counters.requeued.fetch_add(n as u64, Ordering::Relaxed);
        for _ in 0..n {
            ctx.gate.refund();
        }
        n
    }
}
