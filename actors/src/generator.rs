//! Generator: prompt → RolloutGroup; adopts the newest published weights between groups. The
//! sampler runs on the generator's own OS thread (optionally pinned to a core).

use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::context::Context;
use crate::ledger::Holder;
use crate::messages::{PolicyVersion, Prompt, RolloutGroup, SampledGroup, Timings};
use crate::metrics as m;
use crate::traits::Sampler;
use crate::worker::Worker;

/// The synchronous part: what the harness steps directly and the actor runs on its worker thread.
pub struct GeneratorCore<S: Sampler> {
    index: usize,
    label: String,
    device: usize,
    sampler: S,
    ctx: Arc<Context<S::Weights>>,
    started: Instant,
    busy: Duration,
}

impl<S: Sampler> GeneratorCore<S> {
    pub fn new(index: usize, sampler: S, ctx: Arc<Context<S::Weights>>) -> Self {
        let device = ctx.cfg.generator_device(index);
        Self { index, label: index.to_string(), device, sampler, ctx, started: Instant::now(), busy: Duration::ZERO }
    }

    /// Samples one group with the newest weights (this is the group boundary).
    pub fn generate(&mut self, prompt: Prompt) -> Result<RolloutGroup, S::Error> {
        let policy = self.ctx.broadcast.policy_for(self.device);
        let t = Instant::now();
        let sampled = self.sampler.sample(&prompt, &policy, self.ctx.cfg.group_size)?;
        Ok(self.rollout(prompt, sampled, policy.version, t.elapsed()))
    }

    /// Samples a group of each prompt together with the newest weights; each group is charged
    /// an equal share of the time.
    pub fn generate_many(&mut self, prompts: Vec<Prompt>) -> Result<Vec<RolloutGroup>, S::Error> {
        if prompts.len() == 1 {
            return Ok(vec![self.generate(prompts.into_iter().next().expect("one prompt"))?]);
        }
        let policy = self.ctx.broadcast.policy_for(self.device);
        let t = Instant::now();
        let sampled = self.sampler.sample_groups(&prompts, &policy, self.ctx.cfg.group_size)?;
        let share = t.elapsed() / prompts.len().max(1) as u32;
        Ok(prompts.into_iter().zip(sampled).map(|(p, s)| self.rollout(p, s, policy.version, share)).collect())
    }

    fn rollout(&mut self, prompt: Prompt, sampled: SampledGroup, version: PolicyVersion, sampling: Duration) -> RolloutGroup {
        let group = RolloutGroup {
            prompt,
            prompt_token_ids: sampled.prompt_token_ids,
            completions: sampled.completions,
            policy_version: version,
            generator: self.index,
            timings: Timings { sampling },
        };
        self.record(&group);
        group
    }

    fn record(&mut self, group: &RolloutGroup) {
        let sampling = group.timings.sampling;
        self.busy += sampling;
        let tokens = group.generated_tokens() as u64;
        let c = &self.ctx.counters;
        c.add_generator_busy(self.index, sampling);
        c.groups_generated.fetch_add(1, Ordering::Relaxed);
        c.tokens.fetch_add(tokens, Ordering::Relaxed);
        let l = self.label.clone();
        metrics::counter!(m::GENERATOR_TOKENS, "generator" => l.clone()).increment(tokens);
        metrics::counter!(m::GENERATOR_GROUPS, "generator" => l.clone()).increment(1);
        metrics::histogram!(m::GENERATOR_GROUP_SECONDS, "generator" => l.clone()).record(sampling.as_secs_f64());
        let ratio = self.busy.as_secs_f64() / self.started.elapsed().as_secs_f64().max(1e-9);
        metrics::gauge!(m::GENERATOR_BUSY_RATIO, "generator" => l).set(ratio);
    }
}

pub struct Generator<S>(PhantomData<fn() -> S>);

impl<S> Default for Generator<S> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

pub struct GeneratorArgs<S: Sampler> {
    pub core: GeneratorCore<S>,
    pub pin_core: Option<usize>,
}

pub struct GeneratorState<S: Sampler> {
    index: usize,
    worker: Worker<GeneratorCore<S>>,
    ctx: Arc<Context<S::Weights>>,
}

pub enum GeneratorMsg {
    /// Take a prompt, sample its group, queue it; then send `Next` again.
    Next,
}

// Local only: ractor's `cluster` feature (remote workers) asks every message type to say so.
impl ractor::Message for GeneratorMsg {}

impl<S: Sampler> Actor for Generator<S> {
    type Msg = GeneratorMsg;
    type State = GeneratorState<S>;
    type Arguments = GeneratorArgs<S>;

    async fn pre_start(&self, myself: ActorRef<GeneratorMsg>, args: GeneratorArgs<S>) -> Result<Self::State, ActorProcessingErr> {
        let (index, ctx) = (args.core.index, Arc::clone(&args.core.ctx));
        let worker = Worker::spawn(&format!("srlm-generator-{index}"), args.pin_core, args.core)?;
        myself.send_message(GeneratorMsg::Next)?;
        Ok(GeneratorState { index, worker, ctx })
    }

    async fn handle(&self, myself: ActorRef<GeneratorMsg>, msg: GeneratorMsg, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        match msg {
            GeneratorMsg::Next => {
                if state.next_group().await? {
                    myself.send_message(GeneratorMsg::Next)?;
                } else {
                    myself.stop(None);
                }
                Ok(())
            }
        }
    }
}

impl<S: Sampler> GeneratorState<S> {
    /// One group (or up to `groups_in_flight` groups, sampled together) from prompt to queue;
    /// `false` once the run is stopping.
    async fn next_group(&mut self) -> Result<bool, ActorProcessingErr> {
        let ctx = Arc::clone(&self.ctx);
        if ctx.gate.acquire(&ctx.stop).await.is_none() {
            return Ok(false);
        }
        let holder = Holder::Generator(self.index);
        let first = loop {
            let mut changed = ctx.ledger.subscribe();
            if let Some(p) = ctx.ledger.next_prompt(holder) {
                break p;
            }
            // Nothing to do for now; a failed actor elsewhere may re-queue a prompt.
            tokio::select! {
                _ = changed.changed() => {}
                _ = ctx.stop.stopped() => return Ok(false),
            }
        };
        // More groups join only if the gate and the ledger have them now: never wait for them.
        let mut prompts = vec![first];
        while prompts.len() < ctx.cfg.groups_in_flight && ctx.gate.try_acquire() {
            match ctx.ledger.next_prompt(holder) {
                Some(p) => prompts.push(p),
                None => {
                    ctx.gate.refund();
                    break;
                }
            }
        }
        let groups = self.worker.call(move |core| core.generate_many(prompts)).await??;
        for group in groups {
            ctx.ledger.hand_over(group.prompt.id, Holder::Queued);
            let Some(waited) = ctx.rollouts.send(group, &ctx.stop).await else {
                return Ok(false);
            };
            metrics::histogram!(m::GENERATOR_WAIT, "generator" => self.index.to_string()).record(waited.as_secs_f64());
        }
        Ok(true)
    }
}
