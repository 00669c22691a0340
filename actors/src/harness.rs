//! Harness: the same generator, scorer and learner cores stepped on one thread in a fixed order
//! (generators by index, then scorers, then the learner), with every RNG seeded from the run seed.
//! Two runs with one seed produce identical step records and weights. No restarts: an error (or a
//! trainer panic) ends the run after checkpointing what can be saved, as the threaded learner does.
//!
//! Resuming from a periodic checkpoint continues exactly, whatever `max_staleness`: the gate holds
//! generators at each periodic checkpoint's version, so when it is written no group is in flight
//! (their behaviour log-probs come from older weights no checkpoint keeps) and the round ends;
//! the resumed run starts a round from the same ledger, gate and weights. Samplers draw from
//! per-prompt RNG streams, so they hold no state to save. The cost: generators idle for up to
//! `max_staleness` steps before each checkpoint. A shutdown's checkpoint has groups in flight; a
//! resume from it re-samples them with newer weights: every prompt still trains once, not bit-exactly.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::RuntimeError;
use crate::gate::StalenessGate;
use crate::generator::GeneratorCore;
use crate::learner::LearnerCore;
use crate::ledger::Holder;
use crate::pipeline::{Pipeline, Prepared};
use crate::scorer::ScorerCore;
use crate::summary::RunSummary;
use crate::supervisor::{derive_seed, Role};
use crate::traits::{Rewarder, Sampler, Trainer};
use crate::worker::panic_message;

impl<S, R, T> Pipeline<S, R, T>
where
    S: Sampler,
    R: Rewarder,
    T: Trainer<Weights = S::Weights>,
{
    /// Runs deterministically on the calling thread (no actors, no metrics endpoint).
    pub fn run_deterministic(self) -> Result<RunSummary, RuntimeError> {
        if self.listen.is_some() {
            return Err(RuntimeError::Config { field: "listen", reason: "remote workers cannot join a deterministic run".into() });
        }
        let Prepared { ctx, mut learner, samplers, rewarders } = self.prepare()?;
        let cfg = ctx.cfg.clone();
        let fail = |learner: &mut LearnerCore<T>, role: &str, e: String| {
            let checkpoint = learner.checkpoint_after_failure();
            RuntimeError::Learner { step: learner.step(), reason: format!("{role}: {e}"), checkpoint }
        };
        let mut generators: Vec<_> = (0..cfg.generators)
            .map(|i| GeneratorCore::new(i, samplers(i, derive_seed(cfg.seed, Role::Generator(i), 0)), ctx.clone()))
            .collect();
        let mut scorers: Vec<_> =
            (0..cfg.scorers).map(|i| ScorerCore::new(i, rewarders(i, derive_seed(cfg.seed, Role::Scorer(i), 0)))).collect();
        hold_at_next_checkpoint(&ctx.gate, &learner);
        let interrupted = loop {
            if ctx.shutdown.is_requested() {
                ctx.ledger.close();
                break true;
            }
            let mut progressed = false;
            for (i, generator) in generators.iter_mut().enumerate() {
                if ctx.rollouts.is_full() || !ctx.gate.try_acquire() {
                    continue;
                }
                let Some(prompt) = ctx.ledger.next_prompt(Holder::Generator(i)) else {
                    ctx.gate.refund();
                    continue;
                };
                let id = prompt.id;
                let group = generator.generate(prompt).map_err(|e| fail(&mut learner, "generator", e.to_string()))?;
                ctx.ledger.hand_over(id, Holder::Queued);
                ctx.rollouts.try_send(group).map_err(|_| fail(&mut learner, "generator", "rollout queue full".into()))?;
                progressed = true;
            }
            for (i, scorer) in scorers.iter_mut().enumerate() {
                if ctx.scored.is_full() {
                    break;
                }
                let Some(group) = ctx.rollouts.try_recv() else { break };
                let id = group.prompt.id;
                ctx.ledger.hand_over(id, Holder::Scorer(i));
                let scored = scorer.score(group).map_err(|e| fail(&mut learner, "scorer", e.to_string()))?;
                ctx.ledger.hand_over(id, Holder::Queued);
                ctx.scored.try_send(scored).map_err(|_| fail(&mut learner, "scorer", "scored queue full".into()))?;
                progressed = true;
            }
            while let Some(scored) = ctx.scored.try_recv() {
                learner.offer(scored);
                progressed = true;
                if learner.batch_full() {
                    train(&mut learner).map_err(|e| fail(&mut learner, "trainer", e))?;
                    if learner.checkpoint_due() {
                        learner.periodic_checkpoint();
                        hold_at_next_checkpoint(&ctx.gate, &learner);
                    }
                }
            }
            if ctx.ledger.drained() {
                if !learner.batch_is_empty() {
                    train(&mut learner).map_err(|e| fail(&mut learner, "trainer", e))?;
                }
                break false;
            }
            if !progressed {
                return Err(fail(&mut learner, "harness", "no actor could make progress".into()));
            }
        };
        learner.end(interrupted)
    }
}

/// One learner step with a trainer panic caught, so that the run can still checkpoint (the
/// trainer says through `Trainer::consistent` whether its state survived).
fn train<T: Trainer>(learner: &mut LearnerCore<T>) -> Result<(), String> {
    match catch_unwind(AssertUnwindSafe(|| learner.train())) {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => Err(format!("panicked: {}", panic_message(panic))),
    }
}

fn hold_at_next_checkpoint<T: Trainer>(gate: &StalenessGate, learner: &LearnerCore<T>) {
    if let Some(version) = learner.next_checkpoint_version() {
        gate.hold_at(version);
    }
}
