//! Supervisor: spawns the generators, scorers and learner as linked children; restarts a failed
//! generator or scorer with backoff after re-queueing its prompts; a learner failure ends the run.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::context::Context;
use crate::error::RuntimeError;
use crate::generator::{Generator, GeneratorArgs, GeneratorCore};
use crate::learner::{end_after_failure, Learner, LearnerArgs, LearnerCore};
use crate::ledger::Holder;
use crate::metrics as m;
use crate::scorer::{Scorer, ScorerArgs, ScorerCore};
use crate::traits::{Rewarder, Sampler, Trainer};
use crate::worker::Worker;

/// Builds the sampler (or rewarder) of slot `index` from a seed; called again on every restart.
pub type Factory<X> = Arc<dyn Fn(usize, u64) -> X + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Generator(usize),
    Scorer(usize),
    Learner,
}

impl Role {
    fn label(self) -> &'static str {
        match self {
            Role::Generator(_) => "generator",
            Role::Scorer(_) => "scorer",
            Role::Learner => "learner",
        }
    }

    fn holder(self) -> Option<Holder> {
        match self {
            Role::Generator(i) => Some(Holder::Generator(i)),
            Role::Scorer(i) => Some(Holder::Scorer(i)),
            Role::Learner => None,
        }
    }
}

/// Seed of one actor incarnation: distinct per role, slot and restart, fixed by the run seed.
pub fn derive_seed(seed: u64, role: Role, incarnation: u32) -> u64 {
    let (kind, index) = match role {
        Role::Generator(i) => (1u64, i as u64),
        Role::Scorer(i) => (2, i as u64),
        Role::Learner => (3, 0),
    };
    splitmix(seed ^ splitmix(kind << 56 ^ index << 24 ^ incarnation as u64))
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub struct Supervisor<X>(PhantomData<fn() -> X>);

impl<X> Default for Supervisor<X> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

pub struct SupervisorArgs<S: Sampler, R: Rewarder, T: Trainer<Weights = S::Weights>> {
    pub ctx: Arc<Context<S::Weights>>,
    pub samplers: Factory<S>,
    pub rewarders: Factory<R>,
    /// Taken once by `pre_start`: the learner is never restarted.
    pub learner: Mutex<Option<LearnerCore<T>>>,
}

pub struct SupervisorState<S: Sampler, R: Rewarder, T: Trainer> {
    ctx: Arc<Context<S::Weights>>,
    samplers: Factory<S>,
    rewarders: Factory<R>,
    /// The learner's worker thread, which outlives a failed learner actor so that what it
    /// trained can still be checkpointed.
    learner: Worker<LearnerCore<T>>,
    children: HashMap<ActorId, Role>,
    failures: HashMap<Role, u32>,
}

pub enum SupervisorMsg {
    Restart(Role),
}

// Local only: ractor's `cluster` feature (remote workers) asks every message type to say so.
impl ractor::Message for SupervisorMsg {}

impl<S, R, T> Actor for Supervisor<(S, R, T)>
where
    S: Sampler,
    R: Rewarder,
    T: Trainer<Weights = S::Weights>,
{
    type Msg = SupervisorMsg;
    type State = SupervisorState<S, R, T>;
    type Arguments = SupervisorArgs<S, R, T>;

    async fn pre_start(&self, myself: ActorRef<SupervisorMsg>, args: Self::Arguments) -> Result<Self::State, ActorProcessingErr> {
        let learner = args.learner.lock().map_err(|_| "learner slot poisoned")?.take().ok_or("learner already started")?;
        let step = learner.step();
        let learner = Worker::spawn("srlm-learner", args.ctx.cfg.learner_core, learner)?;
        let mut state = SupervisorState {
            ctx: args.ctx,
            samplers: args.samplers,
            rewarders: args.rewarders,
            learner,
            children: HashMap::new(),
            failures: HashMap::new(),
        };
        let cell = myself.get_cell();
        for role in [Role::Generator(0), Role::Scorer(0), Role::Learner] {
            metrics::counter!(m::RESTARTS, "role" => role.label()).increment(0);
        }
        for i in 0..state.ctx.cfg.generators {
            state.spawn(Role::Generator(i), cell.clone()).await?;
        }
        for i in 0..state.ctx.cfg.scorers {
            state.spawn(Role::Scorer(i), cell.clone()).await?;
        }
        let args = LearnerArgs { worker: state.learner.clone(), ctx: Arc::clone(&state.ctx), step };
        let (learner, _) = Actor::spawn_linked(None, Learner::<T>::default(), args, cell).await?;
        state.children.insert(learner.get_id(), Role::Learner);
        Ok(state)
    }

    async fn handle(&self, myself: ActorRef<SupervisorMsg>, msg: SupervisorMsg, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Restart(role) => {
                if !state.ctx.stop.is_stopped() {
                    state.spawn(role, myself.get_cell()).await?;
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.children.remove(&cell.get_id());
            }
            SupervisionEvent::ActorFailed(cell, err) => match state.children.remove(&cell.get_id()) {
                Some(Role::Learner) => {
                    let reason = format!("the learner actor failed: {err}");
                    end_after_failure(&state.learner, &state.ctx, 0, reason).await;
                }
                Some(role) => state.failed(&myself, role, err.to_string()),
                None => {}
            },
            _ => {}
        }
        if state.ctx.stop.is_stopped() && state.children.is_empty() {
            myself.stop(None);
        }
        Ok(())
    }
}

impl<S: Sampler, R: Rewarder, T: Trainer> SupervisorState<S, R, T> {
    async fn spawn(&mut self, role: Role, supervisor: ActorCell) -> Result<(), ActorProcessingErr> {
        let incarnation = self.failures.get(&role).copied().unwrap_or(0);
        let seed = derive_seed(self.ctx.cfg.seed, role, incarnation);
        let ctx = Arc::clone(&self.ctx);
        let id = match role {
            Role::Generator(i) => {
                let core = GeneratorCore::new(i, (self.samplers)(i, seed), ctx);
                let pin_core = self.ctx.cfg.generator_cores.get(i).copied();
                Actor::spawn_linked(None, Generator::<S>::default(), GeneratorArgs { core, pin_core }, supervisor).await?.0.get_id()
            }
            Role::Scorer(i) => {
                let args = ScorerArgs { index: i, core: ScorerCore::new(i, (self.rewarders)(i, seed)), ctx };
                Actor::spawn_linked(None, Scorer::<(R, S::Weights)>::default(), args, supervisor).await?.0.get_id()
            }
            Role::Learner => return Err("the learner is never restarted".into()),
        };
        self.children.insert(id, role);
        Ok(())
    }

    /// A generator or scorer failed: re-queue its prompts and restart it after a backoff.
    fn failed(&mut self, myself: &ActorRef<SupervisorMsg>, role: Role, reason: String) {
        let ctx = &self.ctx;
        let Some(holder) = role.holder() else { return };
        // Counted before the prompts go back: once they do, another worker may train them and
        // end the run, whose summary must already include this restart.
        let restarting = !ctx.stop.is_stopped();
        if restarting {
            ctx.counters.restarts.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(m::RESTARTS, "role" => role.label()).increment(1);
        }
        let requeued = ctx.ledger.requeue_held_by(holder);
        ctx.counters.requeued.fetch_add(requeued as u64, Ordering::Relaxed);
        for _ in 0..requeued {
            ctx.gate.refund();
        }
        if !restarting {
            return;
        }
        let failures = self.failures.entry(role).or_insert(0);
        *failures += 1;
        let failures = *failures;
        let index = match role {
            Role::Generator(i) | Role::Scorer(i) => i,
            Role::Learner => 0,
        };
        if failures > ctx.cfg.max_restarts {
            ctx.finish(Err(RuntimeError::TooManyRestarts { role: role.label(), index, failures, reason }));
            return;
        }
        let backoff = ctx.cfg.backoff(failures);
        tracing::warn!(role = role.label(), index, failures, ?backoff, %reason, "actor failed; restarting");
        myself.send_after(backoff, move || SupervisorMsg::Restart(role));
    }
}
