//! Fake policies: a sampler, rewarder and trainer with no model, deterministic given their seeds,
//! that burn a configurable amount of CPU time. For the runtime's tests and the fake-policy
//! staleness benchmark.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::messages::{GroupRewards, Policy, Prompt, RolloutGroup, RunState, SampledCompletion, SampledGroup, ScoredGroup};
use crate::poison::lock;
use crate::traits::{Rewarder, Sampler, Start, StepStats, Trainer};

/// The fake policy's parameters.
pub type FakeWeights = Vec<f64>;

#[derive(Debug, thiserror::Error)]
#[error("fake {0}")]
pub struct FakeError(pub String);

/// Called before each sample with the prompt and policy: tests use it to panic, fail or block.
pub type SampleHook = Arc<dyn Fn(&Prompt, &Policy<FakeWeights>) -> Result<(), FakeError> + Send + Sync>;
/// Called at the start of each trainer step with the step number (0-based) and the batch.
pub type StepHook = Arc<dyn Fn(u64, &[ScoredGroup]) + Send + Sync>;

/// Keeps the CPU busy for `d` (a stand-in for model compute; sleeping would not occupy a core).
pub fn burn(d: Duration) {
    let t = Instant::now();
    let mut x = 0u64;
    while t.elapsed() < d {
        for i in 0..1000u64 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
    }
}

/// Each prompt gets its own RNG stream (as the model's sampler does), so a group depends only on
/// the seed, the prompt and the weights, never on what this sampler drew before: a resumed run
/// that issues the same prompts draws the same groups.
pub struct FakeSampler {
    seed: u64,
    pub cost: Duration,
    pub hook: Option<SampleHook>,
    /// Prompts per `sample_groups` call, when a test wants to see how groups were batched.
    pub batches: Option<Arc<Mutex<Vec<usize>>>>,
}

impl FakeSampler {
    pub fn new(seed: u64) -> Self {
        Self { seed, cost: Duration::ZERO, hook: None, batches: None }
    }

    pub fn with_hook(mut self, hook: Option<SampleHook>) -> Self {
        self.hook = hook;
        self
    }
}

impl Sampler for FakeSampler {
    type Weights = FakeWeights;
    type Error = FakeError;

    fn sample(&mut self, prompt: &Prompt, policy: &Policy<FakeWeights>, group_size: usize) -> Result<SampledGroup, FakeError> {
        if let Some(hook) = &self.hook {
            hook(prompt, policy)?;
        }
        burn(self.cost);
        // Tokens lean towards the parity the rewarder pays for as weights[0] grows.
        let bias = policy.weights.first().copied().unwrap_or(0.0);
        let p_right = 1.0 / (1.0 + (-bias).exp());
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(prompt.id);
        let completions = (0..group_size)
            .map(|_| {
                let len = rng.gen_range(1..=8);
                let mut token_ids: Vec<u32> = (0..len).map(|_| rng.gen_range(0..96)).collect();
                let right = rng.gen_bool(p_right.clamp(0.0, 1.0));
                let want = (prompt.id % 2) as u32;
                if let Some(last) = token_ids.last_mut() {
                    *last = (*last & !1) | if right { want } else { 1 - want };
                }
                let behaviour_logprobs = token_ids.iter().map(|_| -rng.gen_range(0.01f32..3.0)).collect();
                SampledCompletion { text: format!("{token_ids:?}"), token_ids, behaviour_logprobs, truncated: len == 8 }
            })
            .collect();
        Ok(SampledGroup { prompt_token_ids: vec![(prompt.id % 96) as u32], completions })
    }

    fn sample_groups(
        &mut self,
        prompts: &[Prompt],
        policy: &Policy<FakeWeights>,
        group_size: usize,
    ) -> Result<Vec<SampledGroup>, FakeError> {
        if let Some(batches) = &self.batches {
            lock(batches).push(prompts.len());
        }
        prompts.iter().map(|p| self.sample(p, policy, group_size)).collect()
    }
}

/// Rewards `format` (an even number of tokens) and `accuracy` (last token's parity matches the prompt id's).
#[derive(Default)]
pub struct FakeRewarder {
    pub cost: Duration,
}

impl Rewarder for FakeRewarder {
    type Error = FakeError;

    fn reward_names(&self) -> Vec<String> {
        vec!["format".into(), "accuracy".into()]
    }

    fn score(&mut self, group: &RolloutGroup) -> Result<GroupRewards, FakeError> {
        burn(self.cost);
        let want = (group.prompt.id % 2) as u32;
        let format: Vec<f32> = group.completions.iter().map(|c| (c.token_ids.len() % 2 == 0) as u8 as f32).collect();
        let correct: Vec<bool> = group.completions.iter().map(|c| c.token_ids.last().map(|t| t % 2) == Some(want)).collect();
        let accuracy: Vec<f32> = correct.iter().map(|&c| c as u8 as f32).collect();
        let total = format.iter().zip(&accuracy).map(|(f, a)| 0.2 * f + a).collect();
        Ok(GroupRewards { per_function: vec![("format".into(), format), ("accuracy".into(), accuracy)], total, correct: Some(correct) })
    }
}

/// A group as the fake trainer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trained {
    pub prompt: u64,
    pub step: u64,
    /// Versions between sampling and training.
    pub staleness: u64,
}

/// What the fake trainer's checkpoint holds.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeCheckpoint {
    pub weights: FakeWeights,
    pub state: RunState,
}

/// Shared with the test: checkpoints written, groups trained and groups dropped (prompt id and
/// why), surviving the trainer.
#[derive(Default, Clone)]
pub struct FakeStore {
    pub checkpoints: Arc<Mutex<Vec<FakeCheckpoint>>>,
    pub trained: Arc<Mutex<Vec<Trained>>>,
    pub dropped: Arc<Mutex<Vec<(u64, &'static str)>>>,
}

impl FakeStore {
    pub fn last_checkpoint(&self) -> Option<FakeCheckpoint> {
        lock(&self.checkpoints).last().cloned()
    }

    pub fn trained(&self) -> Vec<Trained> {
        lock(&self.trained).clone()
    }

    pub fn dropped(&self) -> Vec<(u64, &'static str)> {
        lock(&self.dropped).clone()
    }
}

/// How the fake trainer's step fails on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeFailure {
    /// Returns an error before touching the weights.
    Error,
    /// Panics before touching the weights.
    Panic,
    /// Changes the weights, then returns an error: a half-applied update.
    HalfApplied,
}

pub struct FakeTrainer {
    weights: FakeWeights,
    state: RunState,
    learning_rate: f64,
    pub cost: Duration,
    pub hook: Option<StepHook>,
    /// The step (0-based, counted in this process) that fails, and how.
    pub fail_at: Option<(u64, FakeFailure)>,
    store: FakeStore,
    steps_here: u64,
    /// A step changed the weights without completing.
    half_applied: bool,
    /// Every checkpoint fails, as on a full disk.
    pub disk_full: bool,
    /// The next N checkpoints fail, as on a disk that was full for a while.
    pub failing_checkpoints: u32,
}

impl FakeTrainer {
    /// Starts fresh, or from `resume` (as a real trainer restores its checkpoint directory).
    pub fn new(store: FakeStore, resume: Option<FakeCheckpoint>) -> Self {
        let (weights, state) = match resume {
            Some(c) => (c.weights, c.state),
            None => (vec![0.0; 4], RunState::default()),
        };
        Self {
            weights,
            state,
            learning_rate: 0.5,
            cost: Duration::ZERO,
            hook: None,
            fail_at: None,
            store,
            steps_here: 0,
            half_applied: false,
            disk_full: false,
            failing_checkpoints: 0,
        }
    }
}

impl Trainer for FakeTrainer {
    type Weights = FakeWeights;
    type Error = FakeError;

    fn start(&mut self) -> Result<Start<FakeWeights>, FakeError> {
        Ok(Start { state: self.state.clone(), weights: Arc::new(self.weights.clone()) })
    }

    fn step(&mut self, batch: &[ScoredGroup]) -> Result<(StepStats, Arc<FakeWeights>), FakeError> {
        if let Some(hook) = &self.hook {
            hook(self.state.step, batch);
        }
        if let Some((at, how)) = self.fail_at {
            if at == self.steps_here {
                let why = format!("trainer step {} failed on purpose", self.state.step);
                match how {
                    FakeFailure::Error => return Err(FakeError(why)),
                    FakeFailure::Panic => panic!("{why}"),
                    FakeFailure::HalfApplied => {
                        self.weights[0] += 1.0;
                        self.half_applied = true;
                        return Err(FakeError(why));
                    }
                }
            }
        }
        self.steps_here += 1;
        burn(self.cost);
        // A policy-gradient caricature: push weights[0] towards advantage-weighted right answers.
        let (mut grad, mut logp, mut n) = (0.0f64, 0.0f64, 0usize);
        for g in batch {
            let want = (g.group.prompt.id % 2) as u32;
            for (c, &a) in g.group.completions.iter().zip(&g.advantages) {
                let right = c.token_ids.last().map(|t| t % 2) == Some(want);
                grad += a as f64 * if right { 1.0 } else { -1.0 };
                logp += c.behaviour_logprobs.iter().map(|&l| l as f64).sum::<f64>();
                n += 1;
            }
        }
        let n = n.max(1) as f64;
        let grad_norm = (grad / n).abs();
        self.weights[0] += self.learning_rate * grad / n;
        for (i, w) in self.weights.iter_mut().enumerate().skip(1) {
            *w += 1e-3 * (i as f64) * grad / n;
        }
        let mut trained = lock(&self.store.trained);
        for g in batch {
            let staleness = self.state.version - g.group.policy_version;
            trained.push(Trained { prompt: g.group.prompt.id, step: self.state.step, staleness });
        }
        drop(trained);
        self.state.step += 1;
        self.state.version += 1;
        let stats = StepStats {
            loss: -logp / n * grad / n,
            kl: Some(grad_norm * 0.01),
            clip_fraction: Some(0.0),
            entropy: Some(-logp / n),
            grad_norm: Some(grad_norm),
            learning_rate: self.learning_rate,
        };
        Ok((stats, Arc::new(self.weights.clone())))
    }

    fn save_checkpoint(&mut self, state: &RunState) -> Result<String, FakeError> {
        if self.disk_full || self.failing_checkpoints > 0 {
            self.failing_checkpoints = self.failing_checkpoints.saturating_sub(1);
            return Err(FakeError("no space left on device".into()));
        }
        let mut saved = lock(&self.store.checkpoints);
        saved.push(FakeCheckpoint { weights: self.weights.clone(), state: state.clone() });
        Ok(format!("fake checkpoint #{}", saved.len() - 1))
    }

    fn consistent(&self) -> bool {
        !self.half_applied
    }

    fn observe_dropped(&mut self, group: &ScoredGroup, reason: &'static str) {
        lock(&self.store.dropped).push((group.group.prompt.id, reason));
    }
}

/// A checksum of weights that changes with any bit of any value.
pub fn checksum(weights: &[f64]) -> u64 {
    weights.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, w| (h ^ w.to_bits()).wrapping_mul(0x0100_0000_01b3))
}

/// `n` prompts "p0" … with references their parity.
pub fn prompts(n: usize) -> Vec<Prompt> {
    (0..n).map(|i| Prompt { id: i as u64, text: format!("p{i}"), reference: (i % 2).to_string() }).collect()
}
