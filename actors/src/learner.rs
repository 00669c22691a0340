//! Learner: ScoredGroup → batches → Trainer::step → WeightsPublished; drops groups staler than
//! `max_staleness` (and, under dynamic sampling, groups whose rewards are all equal), checkpoints
//! every N steps, at a shutdown request and at the end.

use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::context::Context;
use crate::error::{FailureCheckpoint, RuntimeError};
use crate::ledger::Holder;
use crate::messages::{Policy, RunState, ScoredGroup, WeightsPublished};
use crate::metrics as m;
use crate::step_sizes::StepSizes;
use crate::summary::{OnStepRecorded, RunSummary, StepRecord};
use crate::traits::Trainer;
use crate::worker::Worker;

pub struct LearnerCore<T: Trainer> {
    trainer: T,
    ctx: Arc<Context<T::Weights>>,
    sizes: StepSizes,
    step: u64,
    version: u64,
    batch: Vec<ScoredGroup>,
    /// Groups trained in this run.
    trained: u64,
    /// Groups dropped since the stage began, counted on across resumes (the step records and
    /// checkpoints carry them); `resumed_dropped` is where this run took over.
    dropped_stale: u64,
    dropped_uniform: u64,
    resumed_dropped: (u64, u64),
    /// Sum and count of the total rewards offered since the last step (dropped groups included).
    offered_rewards: (f64, usize),
    started: Instant,
    busy: Duration,
    history: Vec<StepRecord>,
    on_recorded: Option<OnStepRecorded>,
    /// The step and location of the newest checkpoint this run wrote.
    last_saved: Option<(u64, String)>,
    /// Periodic checkpoints that could not be written: the step and why.
    failed_checkpoints: Vec<(u64, String)>,
    /// The trainer finished a step whose bookkeeping here did not finish (a panic in between):
    /// its state is then one step ahead of the ledger's, and must not be checkpointed with it.
    unrecorded_step: bool,
}

/// What happened to an offered group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Batched,
    DroppedStale,
    /// Every completion earned the same total reward (dynamic sampling).
    DroppedUniform,
}

impl<T: Trainer> LearnerCore<T> {
    /// `start` is the trainer's `Start` state, so a resumed run continues its counts.
    pub fn new(trainer: T, ctx: Arc<Context<T::Weights>>, start: &RunState) -> Self {
        let (step, version) = (start.step, start.version);
        metrics::gauge!(m::POLICY_VERSION).set(version as f64);
        // Exported from the start so dashboards show 0 rather than no data.
        metrics::counter!(m::LEARNER_DROPPED, "reason" => "stale").increment(0);
        metrics::counter!(m::LEARNER_DROPPED, "reason" => "uniform").increment(0);
        metrics::counter!(m::CHECKPOINT_FAILURES).increment(0);
        Self {
            trainer,
            sizes: ctx.cfg.step_sizes(),
            ctx,
            step,
            version,
            batch: Vec::new(),
            trained: 0,
            dropped_stale: start.dropped_stale,
            dropped_uniform: start.dropped_uniform,
            resumed_dropped: (start.dropped_stale, start.dropped_uniform),
            offered_rewards: (0.0, 0),
            started: Instant::now(),
            busy: Duration::ZERO,
            history: Vec::new(),
            on_recorded: None,
            last_saved: None,
            failed_checkpoints: Vec::new(),
            unrecorded_step: false,
        }
    }

    /// Batches `group`, or drops it if its policy is more than `max_staleness` versions old or,
    /// under dynamic sampling, if its rewards are all equal.
    pub fn offer(&mut self, group: ScoredGroup) -> Admission {
        let staleness = self.version.saturating_sub(group.group.policy_version);
        metrics::histogram!(m::STALENESS).record(staleness as f64);
        let totals = &group.rewards.total;
        self.offered_rewards.0 += totals.iter().map(|&r| r as f64).sum::<f64>();
        self.offered_rewards.1 += totals.len();
        let id = group.group.prompt.id;
        if staleness > self.ctx.cfg.max_staleness {
            self.dropped_stale += 1;
            metrics::counter!(m::LEARNER_DROPPED, "reason" => "stale").increment(1);
            self.trainer.observe_dropped(&group, "stale");
            self.ctx.ledger.finish(id);
            self.ctx.gate.refund();
            return Admission::DroppedStale;
        }
        if self.ctx.cfg.dynamic_sampling && totals.windows(2).all(|w| w[0] == w[1]) {
            self.dropped_uniform += 1;
            metrics::counter!(m::LEARNER_DROPPED, "reason" => "uniform").increment(1);
            self.trainer.observe_dropped(&group, "uniform");
            self.ctx.ledger.finish(id);
            self.ctx.gate.refund();
            return Admission::DroppedUniform;
        }
        self.ctx.ledger.hand_over(id, Holder::Learner);
        self.batch.push(group);
        Admission::Batched
    }

    /// `hook` sees each step's record as it is made.
    pub fn on_step_recorded(&mut self, hook: Option<OnStepRecorded>) {
        self.on_recorded = hook;
    }

    pub fn batch_full(&self) -> bool {
        self.batch.len() >= self.sizes.of(self.step)
    }

    pub fn batch_is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// One optimizer step on the current batch (full, or the last partial one), then publish.
    pub fn train(&mut self) -> Result<WeightsPublished, T::Error> {
        let t = Instant::now();
        let (stats, weights) = self.trainer.step(&self.batch)?;
        self.unrecorded_step = true;
        let took = t.elapsed();
        self.busy += took;
        self.step += 1;
        self.version += 1;
        let published = self.ctx.broadcast.publish(Policy { version: self.version, weights });
        self.ctx.gate.advance(self.version);
        let batch = std::mem::take(&mut self.batch);
        for g in &batch {
            self.ctx.ledger.finish(g.group.prompt.id);
        }
        self.trained += batch.len() as u64;
        let record = self.record(&batch, stats, took);
        self.offered_rewards = (0.0, 0);
        if let Some(hook) = self.on_recorded.as_mut() {
            hook(&record);
        }
        self.history.push(record);
        self.unrecorded_step = false;
        Ok(published)
    }

    fn record(&self, batch: &[ScoredGroup], stats: crate::traits::StepStats, took: Duration) -> StepRecord {
        let mut reward_means: Vec<(String, f64)> = Vec::new();
        let (mut sum_total, mut n, mut correct, mut judged, mut tokens) = (0f64, 0usize, 0usize, 0usize, 0u64);
        for g in batch {
            for (f, rs) in &g.rewards.per_function {
                let sum: f64 = rs.iter().map(|&r| r as f64).sum();
                match reward_means.iter_mut().find(|(name, _)| name == f) {
                    Some((_, s)) => *s += sum,
                    None => reward_means.push((f.clone(), sum)),
                }
            }
            sum_total += g.rewards.total.iter().map(|&r| r as f64).sum::<f64>();
            n += g.rewards.total.len();
            if let Some(c) = &g.rewards.correct {
                correct += c.iter().filter(|&&x| x).count();
                judged += c.len();
            }
            tokens += g.group.generated_tokens() as u64;
        }
        let n = n.max(1) as f64;
        reward_means.iter_mut().for_each(|(_, s)| *s /= n);
        // Supervised data (SFT) is scored by no function: no reward to report.
        if !reward_means.is_empty() {
            reward_means.push(("total".into(), sum_total / n));
        }
        let accuracy = (judged > 0).then(|| correct as f64 / judged as f64);

        m::record_update(&stats, took, self.version);
        metrics::counter!(m::LEARNER_GROUPS).increment(batch.len() as u64);
        metrics::gauge!(m::LEARNER_BUSY_RATIO).set(self.busy.as_secs_f64() / self.started.elapsed().as_secs_f64().max(1e-9));
        for (f, mean) in &reward_means {
            metrics::gauge!(m::REWARD_MEAN, "function" => f.clone()).set(*mean);
        }
        if let Some(a) = accuracy {
            metrics::gauge!(m::ACCURACY).set(a);
        }
        StepRecord {
            step: self.step,
            version: self.version,
            stats,
            reward_means,
            accuracy,
            prompts: batch.iter().map(|g| g.group.prompt.id).collect(),
            completions: batch.iter().map(|g| g.group.completions.len() as u64).sum(),
            tokens,
            // `version` already counts this step's update; the groups trained version − 1.
            max_staleness: batch.iter().map(|g| (self.version - 1).saturating_sub(g.group.policy_version)).max().unwrap_or(0),
            dropped_stale_so_far: self.dropped_stale,
            sampled_reward_mean: self.offered_rewards.0 / self.offered_rewards.1.max(1) as f64,
            dropped_uniform_so_far: self.dropped_uniform,
        }
    }

    pub fn checkpoint_due(&self) -> bool {
        let every = self.ctx.cfg.checkpoint_every;
        every > 0 && self.step.is_multiple_of(every)
    }

    /// Writes the periodic checkpoint if one is due. One that cannot be written (a full disk)
    /// does not stop the run: checkpoints are written to a temporary directory and renamed, so
    /// the newest one written stays whole and the run's resume point; the failure is logged,
    /// counted in `srlm_checkpoint_failures_total` and listed in the summary, and the next
    /// due step tries again. Hours of training are worth more than one missed resume point.
    pub fn periodic_checkpoint(&mut self) {
        if !self.checkpoint_due() {
            return;
        }
        if let Err(e) = self.checkpoint() {
            let resume = self.last_saved.as_ref().map_or("none yet".to_string(), |(_, at)| at.clone());
            tracing::error!(step = self.step, error = %e, newest = %resume, "periodic checkpoint failed; training goes on");
            metrics::counter!(m::CHECKPOINT_FAILURES).increment(1);
            self.failed_checkpoints.push((self.step, e.to_string()));
        }
    }

    /// The policy version the next periodic checkpoint will hold, if checkpoints are periodic.
    pub fn next_checkpoint_version(&self) -> Option<u64> {
        let every = self.ctx.cfg.checkpoint_every;
        (every > 0).then(|| self.version + every - self.step % every)
    }

    /// Saves the trainer's checkpoint with the ledger's view of what is still to train; returns
    /// where it went.
    pub fn checkpoint(&mut self) -> Result<String, T::Error> {
        let state = self.state();
        let t = Instant::now();
        let location = self.trainer.save_checkpoint(&state)?;
        let took = t.elapsed();
        self.busy += took;
        metrics::histogram!(m::CHECKPOINT_SECONDS).record(took.as_secs_f64());
        self.last_saved = Some((self.step, location.clone()));
        Ok(location)
    }

    /// The run's end: the final checkpoint (unless a finished run was told to write none), then
    /// the summary. A run that trained every prompt keeps its result when that checkpoint cannot
    /// be written (a full disk): the summary says so in `final_checkpoint_error`, and the caller
    /// still has the trained weights. A stopped run without it is an error: nothing could resume it.
    pub fn end(&mut self, interrupted: bool) -> Result<RunSummary, RuntimeError> {
        if !interrupted && !self.ctx.cfg.end_checkpoint {
            return Ok(self.summary(false));
        }
        match self.checkpoint() {
            Ok(_) => Ok(self.summary(interrupted)),
            Err(e) if !interrupted => {
                tracing::warn!(step = self.step, error = %e, "the run finished, but its final checkpoint could not be written");
                Ok(RunSummary { final_checkpoint_error: Some(e.to_string()), ..self.summary(false) })
            }
            Err(e) => Err(RuntimeError::Learner {
                step: self.step,
                reason: format!("final checkpoint: {e}"),
                checkpoint: self.newest_checkpoint("it failed".into()),
            }),
        }
    }

    /// After a failed step (or any failure that ends the run): checkpoints the last completed
    /// step when the trainer's state is still exactly that. The failed batch's prompts are still
    /// outstanding in the ledger, so the checkpoint lists them as pending and a resume trains them.
    pub fn checkpoint_after_failure(&mut self) -> FailureCheckpoint {
        if self.unrecorded_step {
            return self.newest_checkpoint(format!("the trainer finished step {} but the learner did not record it", self.step));
        }
        if !self.trainer.consistent() {
            return self.newest_checkpoint("the failed step may have changed the weights or optimizer half-way".into());
        }
        match self.checkpoint() {
            Ok(location) => FailureCheckpoint::Written { step: self.step, location },
            Err(e) => self.newest_checkpoint(format!("writing one failed: {e}")),
        }
    }

    /// The newest checkpoint this run wrote, since none can be written now (`why`).
    pub fn newest_checkpoint(&self, why: String) -> FailureCheckpoint {
        match &self.last_saved {
            Some((step, location)) => FailureCheckpoint::Earlier { step: *step, location: location.clone(), why },
            None => FailureCheckpoint::Missing { why: format!("{why}, and this run wrote none before") },
        }
    }

    pub fn step(&self) -> u64 {
        self.step
    }

    /// Where the run stands now: what a checkpoint holds.
    fn state(&self) -> RunState {
        RunState {
            dropped_stale: self.dropped_stale,
            dropped_uniform: self.dropped_uniform,
            ..self.ctx.ledger.snapshot(self.step, self.version)
        }
    }

    pub fn summary(&self, interrupted: bool) -> RunSummary {
        let ctx = &self.ctx;
        let c = &ctx.counters;
        RunSummary {
            state: self.state(),
            groups_trained: self.trained,
            // This run's, like the groups it trained.
            groups_dropped_stale: self.dropped_stale - self.resumed_dropped.0,
            groups_dropped_uniform: self.dropped_uniform - self.resumed_dropped.1,
            groups_generated: c.groups_generated.load(Ordering::Relaxed),
            tokens_generated: c.tokens.load(Ordering::Relaxed),
            restarts: c.restarts.load(Ordering::Relaxed),
            interrupted,
            elapsed: c.started.elapsed(),
            learner_busy: self.busy,
            generator_busy: c.generator_busy(),
            steps: self.history.clone(),
            max_queue_depth: vec![
                (ctx.rollouts.name(), ctx.rollouts.max_depth(), ctx.rollouts.capacity()),
                (ctx.scored.name(), ctx.scored.max_depth(), ctx.scored.capacity()),
            ],
            full_waits: vec![(ctx.rollouts.name(), ctx.rollouts.full_waits()), (ctx.scored.name(), ctx.scored.full_waits())],
            weight_syncs: ctx.broadcast.syncs(),
            groups_requeued: c.requeued.load(Ordering::Relaxed),
            remote: c.remote.counts(),
            final_checkpoint_error: None,
            failed_checkpoints: self.failed_checkpoints.clone(),
        }
    }
}

pub struct Learner<T>(PhantomData<fn() -> T>);

impl<T> Default for Learner<T> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

/// The supervisor spawns the worker and keeps a handle too, to checkpoint should this actor fail.
pub struct LearnerArgs<T: Trainer> {
    pub worker: Worker<LearnerCore<T>>,
    pub ctx: Arc<Context<T::Weights>>,
    pub step: u64,
}

pub struct LearnerState<T: Trainer> {
    worker: Worker<LearnerCore<T>>,
    ctx: Arc<Context<T::Weights>>,
    /// The step count after the last successful step, for the failure message.
    step: u64,
}

pub enum LearnerMsg {
    /// Wait for the next scored group, a shutdown request or the end of the prompts.
    Next,
}

// Local only: ractor's `cluster` feature (remote workers) asks every message type to say so.
impl ractor::Message for LearnerMsg {}

/// Why the learner loop stopped.
enum Ending {
    Drained,
    Interrupted,
}

impl<T: Trainer> Actor for Learner<T> {
    type Msg = LearnerMsg;
    type State = LearnerState<T>;
    type Arguments = LearnerArgs<T>;

    async fn pre_start(&self, myself: ActorRef<LearnerMsg>, args: LearnerArgs<T>) -> Result<Self::State, ActorProcessingErr> {
        myself.send_message(LearnerMsg::Next)?;
        Ok(LearnerState { worker: args.worker, ctx: args.ctx, step: args.step })
    }

    async fn handle(&self, myself: ActorRef<LearnerMsg>, msg: LearnerMsg, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        match msg {
            LearnerMsg::Next => match state.next().await {
                Ok(None) => myself.send_message(LearnerMsg::Next)?,
                Ok(Some(ending)) => {
                    state.finish(ending).await;
                    myself.stop(None);
                }
                Err(reason) => {
                    state.fail(reason).await;
                    myself.stop(None);
                }
            },
        }
        Ok(())
    }
}

impl<T: Trainer> LearnerState<T> {
    /// Takes in one group and trains if a batch is ready; `Some` when the run should end.
    async fn next(&mut self) -> Result<Option<Ending>, String> {
        let ctx = Arc::clone(&self.ctx);
        if ctx.shutdown.is_requested() {
            ctx.ledger.close();
            return Ok(Some(Ending::Interrupted));
        }
        let mut ledger_changed = ctx.ledger.subscribe();
        if ctx.ledger.drained() {
            return self.train_last().await.map(|()| Some(Ending::Drained));
        }
        let group = tokio::select! {
            g = ctx.scored.recv(&ctx.stop) => match g { Some(g) => g, None => return Ok(Some(Ending::Interrupted)) },
            _ = ctx.shutdown.requested() => return Ok(None),
            _ = ledger_changed.changed() => return Ok(None),
        };
        let full = self
            .call(move |core| {
                core.offer(group);
                core.batch_full()
            })
            .await?;
        if full {
            self.train_one().await?;
        }
        Ok(None)
    }

    async fn train_last(&mut self) -> Result<(), String> {
        if !self.call(|core| core.batch_is_empty()).await? {
            self.train_one().await?;
        }
        Ok(())
    }

    async fn train_one(&mut self) -> Result<(), String> {
        let step = self
            .call(|core| -> Result<u64, String> {
                core.train().map_err(|e| e.to_string())?;
                core.periodic_checkpoint();
                Ok(core.step())
            })
            .await??;
        self.step = step;
        Ok(())
    }

    async fn call<R: Send + 'static>(&self, f: impl FnOnce(&mut LearnerCore<T>) -> R + Send + 'static) -> Result<R, String> {
        self.worker.call(f).await.map_err(|e| e.to_string())
    }

    async fn finish(&mut self, ending: Ending) {
        let interrupted = matches!(ending, Ending::Interrupted);
        let outcome = self.call(move |core| core.end(interrupted));
        let outcome = outcome.await.unwrap_or_else(|reason| {
            Err(RuntimeError::Learner {
                step: self.step,
                reason,
                checkpoint: FailureCheckpoint::Missing { why: "the final one was never written".into() },
            })
        });
        self.ctx.finish(outcome);
    }

    async fn fail(&mut self, reason: String) {
        end_after_failure(&self.worker, &self.ctx, self.step, reason).await;
    }
}

/// Ends the run after a learner failure (a step's error or panic, or the learner actor's own
/// failure): checkpoints what can be saved, then records an error naming the step, the reason and
/// the checkpoint. `last_step` is the fallback step count should the worker thread be gone.
pub(crate) async fn end_after_failure<T: Trainer>(
    worker: &Worker<LearnerCore<T>>,
    ctx: &Context<T::Weights>,
    last_step: u64,
    reason: String,
) {
    let saved = worker.call(|core| (core.step(), core.checkpoint_after_failure())).await;
    let (step, checkpoint) = saved.unwrap_or_else(|e| (last_step, FailureCheckpoint::Missing { why: format!("saving it failed: {e}") }));
    tracing::error!(step, %reason, %checkpoint, "learner failed");
    ctx.finish(Err(RuntimeError::Learner { step, reason, checkpoint }));
}
