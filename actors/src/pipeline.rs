//! Pipeline: wiring. Builds the shared context from the trainer's start state and runs the actors
//! under the supervisor (or steps them in the deterministic harness).

use std::sync::{Arc, Mutex};

use ractor::Actor;

use crate::broadcast::{Broadcast, CopyToDevice};
use crate::cluster::ListenOptions;
use crate::config::RuntimeConfig;
use crate::context::Context;
use crate::error::RuntimeError;
use crate::learner::LearnerCore;
use crate::ledger::Ledger;
use crate::messages::Policy;
use crate::shutdown::ShutdownHandle;
use crate::summary::{OnStepRecorded, RunSummary};
use crate::supervisor::{Factory, Supervisor, SupervisorArgs};
use crate::traits::{PromptSource, Rewarder, Sampler, Start, Trainer};

pub struct Pipeline<S: Sampler, R, T> {
    pub config: RuntimeConfig,
    pub prompts: Arc<dyn PromptSource>,
    pub samplers: Factory<S>,
    pub rewarders: Factory<R>,
    pub trainer: T,
    /// Copies weights to a device other than the learner's; needed only when
    /// `config.generator_devices` names one.
    pub copy_to_device: Option<CopyToDevice<S::Weights>>,
    pub shutdown: ShutdownHandle,
    /// Accept generator and scorer workers from other nodes (`srlm train --listen`); local
    /// generators and scorers may then be 0.
    pub listen: Option<ListenOptions<S::Weights>>,
    /// Sees each learner step's record as it is made (the run summary has them all at the end).
    pub on_step_recorded: Option<OnStepRecorded>,
}

/// Everything a run needs once the trainer has said where it starts.
pub(crate) struct Prepared<S: Sampler, R, T: Trainer> {
    pub ctx: Arc<Context<S::Weights>>,
    pub learner: LearnerCore<T>,
    pub samplers: Factory<S>,
    pub rewarders: Factory<R>,
}

impl<S, R, T> Pipeline<S, R, T>
where
    S: Sampler,
    R: Rewarder,
    T: Trainer<Weights = S::Weights>,
{
    pub fn new(config: RuntimeConfig, prompts: Arc<dyn PromptSource>, samplers: Factory<S>, rewarders: Factory<R>, trainer: T) -> Self {
        Self {
            config,
            prompts,
            samplers,
            rewarders,
            trainer,
            copy_to_device: None,
            shutdown: ShutdownHandle::new(),
            listen: None,
            on_step_recorded: None,
        }
    }

    /// Runs to the end of the prompts or to a shutdown request, on the current tokio runtime.
    pub async fn run(mut self) -> Result<RunSummary, RuntimeError> {
        let listen = self.listen.take();
        self.config.remote_workers |= listen.is_some();
        self.config.validate()?;
        if let Some(addr) = self.config.metrics_addr {
            crate::metrics::serve(addr)?;
        }
        // Restoring a checkpoint is heavy blocking work: keep it off the async workers.
        let prepared = tokio::task::spawn_blocking(move || self.prepare())
            .await
            .map_err(|e| RuntimeError::Start(format!("trainer start panicked: {e}")))??;
        let Prepared { ctx, learner, samplers, rewarders } = prepared;
        let node = match listen {
            Some(opts) => Some(crate::cluster::listen(Arc::clone(&ctx), opts).await.map_err(|e| RuntimeError::Actor(e.to_string()))?),
            None => None,
        };
        let args = SupervisorArgs { ctx: Arc::clone(&ctx), samplers, rewarders, learner: Mutex::new(Some(learner)) };
        let (_, handle) =
            Actor::spawn(None, Supervisor::<(S, R, T)>::default(), args).await.map_err(|e| RuntimeError::Actor(e.to_string()))?;
        handle.await.map_err(|e| RuntimeError::Actor(e.to_string()))?;
        if let Some(node) = node {
            // Workers ask at least every half second unless mid-group; give them time to hear it.
            node.close(std::time::Duration::from_secs(5)).await;
        }
        ctx.take_outcome().unwrap_or_else(|| Err(RuntimeError::Actor("the run ended without an outcome".into())))
    }

    pub(crate) fn prepare(mut self) -> Result<Prepared<S, R, T>, RuntimeError> {
        self.config.validate()?;
        let Start { state, weights } = self.trainer.start().map_err(|e| RuntimeError::Start(e.to_string()))?;
        let cfg = self.config;
        let foreign = (0..cfg.generators).any(|i| cfg.generator_device(i) != cfg.learner_device);
        let initial = Policy { version: state.version, weights };
        let broadcast = match self.copy_to_device {
            Some(copy) => Broadcast::new(cfg.learner_device, initial, copy),
            None if !foreign => Broadcast::new(cfg.learner_device, initial, Box::new(|_, d| no_copy(d))),
            None => {
                return Err(RuntimeError::Config {
                    field: "generator_devices",
                    reason: "a generator is on another device than the learner but no copy_to_device hook was given".into(),
                })
            }
        };
        let ledger = Ledger::new(self.prompts, &state);
        let ctx = Arc::new(Context::new(cfg, ledger, broadcast, self.shutdown));
        let mut learner = LearnerCore::new(self.trainer, Arc::clone(&ctx), &state);
        learner.on_step_recorded(self.on_step_recorded);
        Ok(Prepared { ctx, learner, samplers: self.samplers, rewarders: self.rewarders })
    }
}

fn no_copy<W>(device: usize) -> W {
    // `prepare` only picks this hook when every generator shares the learner's device.
    panic!("weights copy to device {device} requested, but all generators share the learner's device")
}
