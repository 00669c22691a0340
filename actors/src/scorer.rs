//! Scorer: RolloutGroup → ScoredGroup (rewards per function, group advantages). A pool of them,
//! each with its rewarder on its own thread.

use std::marker::PhantomData;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::advantages::group_advantages;
use crate::context::Context;
use crate::ledger::Holder;
use crate::messages::{RolloutGroup, ScoredGroup};
use crate::metrics as m;
use crate::traits::Rewarder;
use crate::worker::Worker;

/// A rewarder returned rewards that do not line up with the group's completions.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError<E: std::error::Error + 'static> {
    #[error(transparent)]
    Rewarder(E),
    #[error("prompt {prompt}: reward '{function}' has {got} values for {want} completions")]
    Shape { prompt: u64, function: String, got: usize, want: usize },
}

pub struct ScorerCore<R: Rewarder> {
    label: String,
    rewarder: R,
}

impl<R: Rewarder> ScorerCore<R> {
    pub fn new(index: usize, rewarder: R) -> Self {
        Self { label: index.to_string(), rewarder }
    }

    pub fn score(&mut self, group: RolloutGroup) -> Result<ScoredGroup, ScoreError<R::Error>> {
        let rewards = self.rewarder.score(&group).map_err(ScoreError::Rewarder)?;
        let want = group.completions.len();
        let columns = rewards.per_function.iter().map(|(f, r)| (f.as_str(), r.len()));
        for (function, got) in std::iter::once(("total", rewards.total.len())).chain(columns) {
            if got != want {
                return Err(ScoreError::Shape { prompt: group.prompt.id, function: function.into(), got, want });
            }
        }
        let advantages = group_advantages(&rewards.total, self.rewarder.advantage_scale());
        metrics::counter!(m::SCORER_GROUPS, "scorer" => self.label.clone()).increment(1);
        Ok(ScoredGroup { group, rewards, advantages })
    }
}

pub struct Scorer<R>(PhantomData<fn() -> R>);

impl<R> Default for Scorer<R> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

pub struct ScorerArgs<R: Rewarder, W> {
    pub index: usize,
    pub core: ScorerCore<R>,
    pub ctx: Arc<Context<W>>,
}

pub struct ScorerState<R: Rewarder, W> {
    index: usize,
    worker: Worker<ScorerCore<R>>,
    ctx: Arc<Context<W>>,
}

pub enum ScorerMsg {
    /// Take a group from the rollout queue, score it, queue it for the learner; then again.
    Next,
}

// Local only: ractor's `cluster` feature (remote workers) asks every message type to say so.
impl ractor::Message for ScorerMsg {}

impl<R: Rewarder, W: Send + Sync + 'static> Actor for Scorer<(R, W)> {
    type Msg = ScorerMsg;
    type State = ScorerState<R, W>;
    type Arguments = ScorerArgs<R, W>;

    async fn pre_start(&self, myself: ActorRef<ScorerMsg>, args: Self::Arguments) -> Result<Self::State, ActorProcessingErr> {
        let worker = Worker::spawn(&format!("srlm-scorer-{}", args.index), None, args.core)?;
        myself.send_message(ScorerMsg::Next)?;
        Ok(ScorerState { index: args.index, worker, ctx: args.ctx })
    }

    async fn handle(&self, myself: ActorRef<ScorerMsg>, msg: ScorerMsg, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        match msg {
            ScorerMsg::Next => {
                if state.next_group().await? {
                    myself.send_message(ScorerMsg::Next)?;
                } else {
                    myself.stop(None);
                }
                Ok(())
            }
        }
    }
}

impl<R: Rewarder, W: Send + Sync + 'static> ScorerState<R, W> {
    async fn next_group(&mut self) -> Result<bool, ActorProcessingErr> {
        let ctx = Arc::clone(&self.ctx);
        let Some(group) = ctx.rollouts.recv(&ctx.stop).await else {
            return Ok(false);
        };
        let id = group.prompt.id;
        ctx.ledger.hand_over(id, Holder::Scorer(self.index));
        let scored = self.worker.call(move |core| core.score(group)).await??;
        ctx.ledger.hand_over(id, Holder::Queued);
        Ok(ctx.scored.send(scored, &ctx.stop).await.is_some())
    }
}
