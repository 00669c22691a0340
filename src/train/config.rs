//! The `srlm train` configuration (TOML). Every section has defaults; unknown keys, wrong types
//! and impossible combinations are errors naming the file and the key, before any work starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::PromptFormat;
use crate::learner::grpo::GrpoConfig;
use crate::learner::sft::Overlong;
use crate::learner::sft_data::DataFormat;
use crate::learner::sft_recipe::LoraSection;
use crate::learner::traces::TraceLayout;
use crate::model::LoraConfig;
use crate::optim::{AdamWConfig, Schedule};
use crate::overlong::{OverlongPenalty, OVERLONG};
use crate::ranges::{at_least, positive};
use crate::rewarder::GoldFormat;
use srlm_actors::{AdvantageScale, RuntimeConfig};

/// The embedded default: a tiny model learns arithmetic (SFT warm-up, then GRPO).
pub const EMBEDDED_DEFAULT: &str = include_str!("../../configs/default.toml");

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Seeds data order, initialisation and every sampler's RNG streams.
    #[serde(default)]
    pub seed: u64,
    /// Stages run in order, each starting from the previous one's weights: sft, kd, grpo.
    /// Required (absent reads as empty, which `validate` refuses) except where a command has its
    /// own default ([`TrainConfig::from_toml_or_stages`]).
    #[serde(default)]
    pub stages: Vec<Stage>,
    /// Where checkpoints, the final model, logs and reports go.
    pub out_dir: PathBuf,
    pub model: ModelSection,
    /// The task's problems (training and held-out); absent only for an SFT-only run on
    /// `[sft] data`, which then has no held-out check.
    #[serde(default)]
    pub data: DataSection,
    /// Reward name → weight (accuracy, accuracy_boxed, format, format_strict, format_soft, format_boxed;
    /// overlong, the soft length penalty, see [`TrainConfig::overlong_penalty`]).
    #[serde(default = "default_rewards")]
    pub rewards: BTreeMap<String, f32>,
    #[serde(default)]
    pub eval: EvalSection,
    #[serde(default)]
    pub sft: SftSection,
    #[serde(default)]
    pub kd: Option<KdSection>,
    #[serde(default)]
    pub grpo: GrpoSection,
    #[serde(default)]
    pub runtime: RuntimeSection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Sft,
    Kd,
    Grpo,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// `tiny` (a fresh tiny Qwen2 with a character tokenizer), an HF directory, a .gguf file,
    /// or a hub id in the local HF cache.
    pub source: String,
    #[serde(default = "cpu")]
    pub device: String,
    #[serde(default = "f32")]
    pub dtype: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// `arithmetic` (synthetic, built in), `gsm8k` (a GSM8K-layout JSONL at `train`) or `none`
    /// (the default: no problems, for an SFT-only run on `[sft] data`).
    #[serde(default = "default_task")]
    pub task: String,
    pub train: Option<PathBuf>,
    pub heldout: Option<PathBuf>,
    /// Synthetic task: operands are below this.
    #[serde(default = "default_max_operand")]
    pub max_operand: i64,
    #[serde(default = "default_train_size")]
    pub train_size: usize,
    #[serde(default = "default_heldout_size")]
    pub heldout_size: usize,
    /// Prompt format: `plain` (the question alone), `r1` (think/answer system prompt) or `boxed`
    /// (the evaluations' instruction as a system prompt); the prompts `srlm eval --format` renders.
    #[serde(default = "default_format")]
    pub format: PromptFormat,
    #[serde(default = "default_gold")]
    pub gold: GoldFormat,
}

impl Default for DataSection {
    fn default() -> Self {
        toml::from_str("").expect("all data fields have defaults")
    }
}

impl DataSection {
    /// Whether the run has training and held-out problems.
    pub fn has_problems(&self) -> bool {
        self.task != NO_TASK
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    /// Samples per held-out problem (pass@1 is averaged over them).
    #[serde(default = "default_eval_samples")]
    pub samples: usize,
    #[serde(default = "one")]
    pub temperature: f64,
    #[serde(default = "default_max_new_tokens")]
    pub max_new_tokens: usize,
}

impl Default for EvalSection {
    fn default() -> Self {
        Self { samples: default_eval_samples(), temperature: 1.0, max_new_tokens: default_max_new_tokens() }
    }
}

/// `[sft]`; its optimizer keys are read straight into `AdamWConfig` (the section checks for
/// unknown keys; serde's flatten cannot).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SftSection {
    #[serde(default = "default_sft_lr")]
    pub lr: f64,
    #[serde(default = "one_usize")]
    pub epochs: usize,
    /// Training examples used (the first N of the shuffled training set, or of `data`); 0 = all.
    /// A grpo stage after an SFT on the training set starts at problem N
    /// (`TrainConfig::grpo_first_prompt`).
    #[serde(default)]
    pub examples: usize,
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    #[serde(default = "default_token_budget")]
    pub token_budget: usize,
    #[serde(default = "one_usize")]
    pub grad_accum: usize,
    /// Micro-batches computed at once, one thread each (README: CPU speed settings).
    #[serde(default = "one_usize")]
    pub lanes: usize,
    /// A JSONL of worked examples to train on instead of the training problems' solutions.
    #[serde(default)]
    pub data: Option<PathBuf>,
    /// How the rows of `data` read: `gsm8k` (`question`, `answer`; prompted in `[data] format`)
    /// or `chat` (`messages`, the last one the assistant's).
    #[serde(default = "default_sft_data_format")]
    pub data_format: DataFormat,
    /// An example longer than `max_len`: `drop` it, or `truncate` its completion.
    #[serde(default = "default_overlong")]
    pub overlong: Overlong,
    /// Warmup as a fraction of the stage's optimizer steps (rounded up), instead of `warmup_steps`.
    #[serde(default)]
    pub warmup_ratio: Option<f64>,
    /// Train low-rank adapters over frozen weights instead of every weight; the stage's export
    /// holds them merged.
    #[serde(default)]
    pub lora: Option<LoraSection>,
    /// With `lora`: also write the adapters as a PEFT directory, `stage-<i>-sft-adapter`.
    #[serde(default)]
    pub save_adapter: bool,
    /// beta1, beta2, eps, weight_decay, max_grad_norm (0 = off), lr_schedule, warmup_steps.
    #[serde(flatten)]
    pub optimizer: AdamWConfig,
}

impl SftSection {
    /// The optimizer of a stage of `total_steps` optimizer steps (known once the data is).
    pub fn adamw(&self, total_steps: usize) -> AdamWConfig {
        let mut optimizer = AdamWConfig { lr: self.lr, ..self.optimizer.clone() };
        optimizer.schedule = match self.warmup_ratio {
            Some(ratio) => Schedule::with_warmup_ratio(optimizer.schedule.decay, ratio, total_steps),
            None => Schedule { total_steps, ..optimizer.schedule },
        };
        optimizer
    }

    /// The adapters' shape, seeded by the run's seed.
    pub fn lora_config(&self, seed: u64) -> Option<LoraConfig> {
        self.lora.as_ref().map(|l| l.config(seed))
    }
}

impl Default for SftSection {
    fn default() -> Self {
        toml::from_str("").expect("all SFT fields have defaults")
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KdSection {
    /// The teacher checkpoint (same tokenizer as the student, checked before anything runs).
    pub teacher: String,
    #[serde(default)]
    pub mode: KdMode,
    /// Samples per prompt: the teacher's (traces; only correct ones are kept) or the student's
    /// at every step (on_policy).
    #[serde(default = "default_kd_samples")]
    pub samples: usize,
    /// Training problems used (the first N; of `data` when set).
    #[serde(default = "default_kd_prompts")]
    pub prompts: usize,
    /// Traces: problems passed over before the first of `prompts` (rows of `data`, or training
    /// problems), so that runs can sample disjoint slices of one file.
    #[serde(default)]
    pub skip: usize,
    /// Traces: a GSM8K-layout JSONL (`question`, and the answer `[data] gold` reads) whose
    /// problems the teacher is sampled on instead of the training problems, in file order: the
    /// SFT before a GRPO stage on a few problems can draw on many others.
    #[serde(default)]
    pub data: Option<PathBuf>,
    /// Traces: what becomes of a correct trace out of `[data] format`'s layout (r1: the
    /// think/answer tags): `any` keeps it as sampled, `require` leaves it out, `rewrite` lays
    /// it out again, so the student learns the shape it is asked for.
    #[serde(default)]
    pub layout: TraceLayout,
    // The logit modes' loop. `None` is the default where the mode uses the field, and an error
    // where it does not (a forgotten `mode` would otherwise ignore them silently).
    /// Optimizer steps.
    pub steps: Option<usize>,
    /// Prompts (on_policy) or worked solutions (logits) per step.
    pub prompts_per_step: Option<usize>,
    pub lr: Option<f64>,
    /// KL temperature: both distributions are softened by it (sampling keeps grpo.temperature).
    pub temperature: Option<f64>,
    /// Length of the student's samples (on_policy) or the teacher's (traces);
    /// grpo.max_new_tokens when absent.
    pub max_new_tokens: Option<usize>,
    /// Traces: the teacher's sampling temperature; grpo.temperature when absent (rejection
    /// sampling wants more right answers, a cooler draw, than GRPO's exploration).
    pub sample_temperature: Option<f64>,
}

/// What the `kd` stage trains the student on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KdMode {
    /// The teacher's correct solutions (rejection-sampled by the accuracy reward) become SFT data.
    #[default]
    Traces,
    /// Forward KL(teacher ‖ student) on the training problems' worked solutions.
    Logits,
    /// Each step the student samples, then reverse KL(student ‖ teacher) on those samples.
    OnPolicy,
}

impl KdMode {
    /// As the config spells it.
    pub fn name(self) -> &'static str {
        match self {
            KdMode::Traces => "traces",
            KdMode::Logits => "logits",
            KdMode::OnPolicy => "on_policy",
        }
    }
}

impl KdSection {
    pub fn steps(&self) -> usize {
        self.steps.unwrap_or(100)
    }
    pub fn prompts_per_step(&self) -> usize {
        self.prompts_per_step.unwrap_or(4)
    }
    pub fn lr(&self) -> f64 {
        self.lr.unwrap_or(1e-5)
    }
    pub fn temperature(&self) -> f64 {
        self.temperature.unwrap_or(1.0)
    }

    /// The sampling temperature and length of the stage's samples (the teacher's traces, the
    /// student's on-policy samples): `[kd]`'s, or `grpo`'s where it sets none.
    pub fn sampling(&self, grpo: &GrpoSection) -> (f64, usize) {
        (self.sample_temperature.unwrap_or(grpo.algo.temperature), self.max_new_tokens.unwrap_or(grpo.max_new_tokens()))
    }

    /// Fields that mean nothing in this mode, and counts or rates that cannot run.
    fn validate(&self) -> Result<(), String> {
        use KdMode::{Logits, OnPolicy};
        let used_by: [(&str, bool, &[KdMode]); 9] = [
            ("layout", self.layout != TraceLayout::Any, &[KdMode::Traces]),
            ("data", self.data.is_some(), &[KdMode::Traces]),
            ("skip", self.skip > 0, &[KdMode::Traces]),
            ("steps", self.steps.is_some(), &[Logits, OnPolicy]),
            ("prompts_per_step", self.prompts_per_step.is_some(), &[Logits, OnPolicy]),
            ("lr", self.lr.is_some(), &[Logits, OnPolicy]),
            ("temperature", self.temperature.is_some(), &[Logits, OnPolicy]),
            ("max_new_tokens", self.max_new_tokens.is_some(), &[OnPolicy, KdMode::Traces]),
            ("sample_temperature", self.sample_temperature.is_some(), &[KdMode::Traces]),
        ];
        if let Some((name, _, modes)) = used_by.iter().find(|(_, set, modes)| *set && !modes.contains(&self.mode)) {
            let modes: Vec<String> = modes.iter().map(|m| format!("`{}`", m.name())).collect();
            return Err(format!("kd.{name} applies to mode {}, and kd.mode is `{}`", modes.join(" or "), self.mode.name()));
        }
        at_least("kd.prompts", self.prompts, 1)?;
        if self.mode != Logits {
            at_least("kd.samples", self.samples, 1)?;
        }
        at_least("kd.max_new_tokens", self.max_new_tokens.unwrap_or(1), 1)?;
        if self.mode == KdMode::Traces {
            return positive("kd.sample_temperature", self.sample_temperature.unwrap_or(1.0));
        }
        at_least("kd.steps", self.steps(), 1)?;
        at_least("kd.prompts_per_step", self.prompts_per_step(), 1)?;
        positive("kd.lr", self.lr())?;
        positive("kd.temperature", self.temperature())
    }
}

/// `[grpo]`: the learner's step, its optimizer and the generators' sampling, each key read
/// straight into the type that uses it (the section checks for unknown keys; serde's flatten
/// cannot). Each type's `Default` is the documented default.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct GrpoSection {
    /// Optimizer steps (each on `runtime.batch_groups` groups); also the schedule's length.
    #[serde(default = "default_grpo_steps")]
    pub steps: u64,
    #[serde(default = "default_grpo_lr")]
    pub lr: f64,
    /// Nucleus sampling of the generators (the temperature is `algo.temperature`: the learner
    /// takes log-probs at the temperature the tokens were sampled at).
    #[serde(default = "one")]
    pub top_p: f64,
    /// What each group's mean-centred rewards are divided by: `std` (population), `sample_std`
    /// (Bessel-corrected, as TRL) or `none` (Dr. GRPO).
    #[serde(default)]
    pub advantage_scale: AdvantageScale,
    /// With `[rewards] overlong`: the last tokens of `max_new_tokens` over which the soft
    /// overlong penalty falls from 0 to −1; absent, a quarter of `max_new_tokens`.
    #[serde(default)]
    pub overlong_buffer: Option<usize>,
    /// Train low-rank adapters over the stage's starting weights instead of every weight (no
    /// dropout: the learner's log-probs must be those of the weights that sampled); generators
    /// and the stage's export get them merged.
    #[serde(default)]
    pub lora: Option<LoraSection>,
    /// With `lora`: also write the adapters as a PEFT directory, `stage-<i>-grpo-adapter`.
    #[serde(default)]
    pub save_adapter: bool,
    /// Loss, iterations, micro-batches, lanes, temperature, max_new_tokens (`loss`).
    #[serde(flatten)]
    pub algo: GrpoConfig,
    /// beta1, beta2, eps, weight_decay, max_grad_norm (0 = off), lr_schedule, warmup_steps.
    #[serde(flatten)]
    pub optimizer: AdamWConfig,
}

impl GrpoSection {
    /// Tokens each completion may have: the generators' limit and `dr_grpo`'s denominator.
    pub fn max_new_tokens(&self) -> usize {
        self.algo.loss.max_completion_len
    }

    /// The optimizer of a run of `steps` steps.
    pub fn adamw(&self) -> AdamWConfig {
        let mut optimizer = AdamWConfig { lr: self.lr, ..self.optimizer.clone() };
        optimizer.schedule.total_steps = self.steps as usize;
        optimizer
    }

    /// The adapters' shape, seeded by the run's seed.
    pub fn lora_config(&self, seed: u64) -> Option<LoraConfig> {
        self.lora.as_ref().map(|l| l.config(seed))
    }
}

impl Default for GrpoSection {
    fn default() -> Self {
        toml::from_str("").expect("all GRPO fields have defaults")
    }
}

/// `[runtime]`: the actor pipeline's sizes, read straight into the runtime's `RuntimeConfig`
/// (the section checks for unknown keys; serde's flatten cannot), and where its outputs go.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RuntimeSection {
    /// group_size, batch_groups, max_staleness, generators, groups_in_flight, scorers,
    /// rollout_capacity, scored_capacity, checkpoint_every, generator_cores, learner_core.
    #[serde(flatten)]
    pub pipeline: RuntimeConfig,
    /// Newest checkpoints kept of each stage; 0 keeps all.
    #[serde(default = "default_keep")]
    pub keep_checkpoints: usize,
    /// Address of the Prometheus `/metrics` endpoint; empty disables it.
    #[serde(default = "default_metrics_addr")]
    pub metrics_addr: String,
    /// Write every group of every N-th step (prompt, completions, rewards) to rollouts.jsonl.
    #[serde(default = "default_rollout_log_every")]
    pub log_rollouts_every: u64,
    /// Device of each generator (`cpu`, `cpu:N`, `cuda:N`), one per generator; empty: all on
    /// the learner's device, `[model] device`. Each other device gets one copy per policy version.
    #[serde(default)]
    pub generator_devices: Vec<String>,
    /// Dtype generators compute in (e.g. `bf16` beside an f32 learner); the learner's when absent.
    #[serde(default)]
    pub generator_dtype: Option<String>,
}

impl Default for RuntimeSection {
    fn default() -> Self {
        toml::from_str("").expect("all runtime fields have defaults")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    Read { path: String, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl TrainConfig {
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::Read { path: path.display().to_string(), message: e.to_string() })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// `origin` names the text in errors (a file path, or `<embedded default>`).
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        Self::from_toml_or_stages(text, origin, &[])
    }

    /// [`TrainConfig::from_toml`], with `stages` read as `default` when the file names none
    /// (`srlm sft`'s one sft stage); errors keep the file's own line numbers.
    pub fn from_toml_or_stages(text: &str, origin: &str, default: &[Stage]) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { path: origin.into(), message };
        let mut cfg: TrainConfig = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let file: toml::Table = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if !file.contains_key("stages") {
            cfg.stages = default.to_vec();
        }
        let parsed = serde_json::to_value(&cfg).map_err(|e| invalid(e.to_string()))?;
        if let Some(message) = crate::train::config_keys::first_unknown_key(&file, &parsed) {
            return Err(invalid(message));
        }
        cfg.validate().map_err(invalid)?;
        Ok(cfg)
    }

    /// Where the GRPO stage starts in the training set: past the examples an earlier sft stage of
    /// this run trained on, when it used a slice, so RL is rewarded on problems it has not been
    /// shown the solutions of.
    pub fn grpo_first_prompt(&self) -> usize {
        let sft_before_grpo = self.stages.iter().take_while(|s| **s != Stage::Grpo).any(|s| *s == Stage::Sft);
        // An SFT on its own `[sft] data` saw none of the training problems.
        if sft_before_grpo && self.sft.data.is_none() {
            self.sft.examples
        } else {
            0
        }
    }

    /// The rewards of the completion's text (every `[rewards]` entry but `overlong`) as
    /// (name, weight) pairs, in name order.
    pub fn reward_spec(&self) -> Vec<(String, f32)> {
        self.rewards.iter().filter(|(n, _)| n.as_str() != OVERLONG).map(|(n, w)| (n.clone(), *w)).collect()
    }

    /// `[rewards] overlong`, the soft penalty on the completion's length, over the last
    /// `grpo.overlong_buffer` tokens of `grpo.max_new_tokens`.
    pub fn overlong_penalty(&self) -> Option<OverlongPenalty> {
        let weight = *self.rewards.get(OVERLONG)?;
        let max_tokens = self.grpo.max_new_tokens();
        let buffer = self.grpo.overlong_buffer.unwrap_or((max_tokens / 4).max(1));
        Some(OverlongPenalty { weight, max_tokens, buffer })
    }

    fn check_rewards(&self) -> Result<(), String> {
        if self.grpo.overlong_buffer.is_some() && !self.rewards.contains_key(OVERLONG) {
            return Err("grpo.overlong_buffer: set, but [rewards] has no `overlong` weight to apply it".into());
        }
        if let Some(p) = self.overlong_penalty() {
            if !p.weight.is_finite() {
                return Err(format!("rewards.overlong: weight {} is not finite", p.weight));
            }
            if p.buffer == 0 || p.buffer > p.max_tokens {
                return Err(format!("grpo.overlong_buffer: {} must be in 1..={} (grpo.max_new_tokens)", p.buffer, p.max_tokens));
            }
            if self.reward_spec().is_empty() {
                return Err("rewards: `overlong` only shapes other rewards; add one (e.g. accuracy = 1.0)".into());
            }
        }
        crate::reward::build_rewards(&self.reward_spec()).map(drop).map_err(|e| match e {
            crate::reward::RegistryError::UnknownReward { .. } => format!("rewards: {e}, or {OVERLONG} (the length penalty)"),
            _ => format!("rewards: {e}"),
        })
    }

    /// Every stage trains all weights in `model.dtype`: each stage's lr must move them.
    fn check_full_weight_steps_survive_rounding(&self) -> Result<(), String> {
        use crate::optim::precision::check_steps_survive_rounding;
        let dtype = self.model.dtype.as_str();
        for stage in &self.stages {
            match (stage, &self.kd) {
                // Adapters train in f32 whatever the base's dtype.
                (Stage::Sft, _) if self.sft.lora.is_some() => {}
                (Stage::Sft, _) | (Stage::Kd, Some(KdSection { mode: KdMode::Traces, .. })) => {
                    check_steps_survive_rounding("sft.lr", self.sft.lr, dtype)?
                }
                (Stage::Kd, Some(kd)) => check_steps_survive_rounding("kd.lr", kd.lr(), dtype)?,
                (Stage::Kd, None) => {}
                (Stage::Grpo, _) if self.grpo.lora.is_some() => {}
                (Stage::Grpo, _) => check_steps_survive_rounding("grpo.lr", self.grpo.lr, dtype)?,
            }
        }
        Ok(())
    }

    /// Without problems only SFT on its own examples can run.
    fn check_runs_without_problems(&self) -> Result<(), String> {
        if let Some(stage) = self.stages.iter().find(|s| **s != Stage::Sft) {
            return Err(format!("stage `{stage:?}` needs problems: set data.task (arithmetic or gsm8k)").to_lowercase());
        }
        if self.sft.data.is_none() {
            return Err("data.task: with no task, the sft stage needs its own examples in [sft] data".into());
        }
        Ok(())
    }

    /// The SFT keys that only mean something together.
    fn check_sft_extras(&self) -> Result<(), String> {
        let s = &self.sft;
        if let Some(ratio) = s.warmup_ratio {
            if s.optimizer.schedule.warmup_steps > 0 {
                return Err("sft: give warmup_steps or warmup_ratio, not both".into());
            }
            if !(0.0..=1.0).contains(&ratio) {
                return Err(format!("sft.warmup_ratio = {ratio}: must be in [0, 1]"));
            }
        }
        if s.save_adapter && s.lora.is_none() {
            return Err("sft.save_adapter needs an [sft.lora] section".into());
        }
        if let Some(lora) = &s.lora {
            lora.check("sft.lora")?;
        }
        Ok(())
    }

    /// `[grpo.lora]` and what goes with it.
    fn check_grpo_lora(&self) -> Result<(), String> {
        let g = &self.grpo;
        if g.save_adapter && g.lora.is_none() {
            return Err("grpo.save_adapter needs a [grpo.lora] section".into());
        }
        if let Some(lora) = &g.lora {
            lora.check("grpo.lora")?;
            if lora.dropout > 0.0 {
                return Err(format!(
                    "grpo.lora.dropout = {}: must be 0 (with dropout the learner's log-probs are not the sampler's, \
                     and the importance ratio would be off from the first token)",
                    lora.dropout
                ));
            }
        }
        Ok(())
    }

    /// Whether stage `index` trains LoRA adapters (its checkpoints then hold no full weights).
    pub fn stage_trains_adapters(&self, index: usize) -> bool {
        match self.stages.get(index) {
            Some(Stage::Sft) => self.sft.lora.is_some(),
            Some(Stage::Grpo) => self.grpo.lora.is_some(),
            _ => false,
        }
    }

    /// Values and combinations that cannot run, found before loading anything.
    fn validate(&self) -> Result<(), String> {
        if self.stages.is_empty() {
            return Err("`stages` is missing or empty: name at least one of sft, kd, grpo".into());
        }
        if self.stages.contains(&Stage::Kd) && self.kd.is_none() {
            return Err("stage `kd` needs a [kd] section with `teacher`".into());
        }
        if let Some(kd) = &self.kd {
            kd.validate()?;
        }
        self.check_full_weight_steps_survive_rounding()?;
        match self.data.task.as_str() {
            "arithmetic" => {}
            "gsm8k" if self.data.train.is_some() => {}
            "gsm8k" => return Err("data.train: task `gsm8k` needs the path of a GSM8K-layout JSONL".into()),
            NO_TASK => self.check_runs_without_problems()?,
            other => return Err(format!("data.task: unknown task '{other}' (known: arithmetic, gsm8k, none)")),
        }
        self.check_sft_extras()?;
        self.check_grpo_lora()?;
        if self.model.source == "tiny" && self.data.task != "arithmetic" {
            return Err("model.source `tiny` has a character tokenizer for the arithmetic task only".into());
        }
        self.check_ranges()?;
        if self.runtime.pipeline.group_size < 2 && self.stages.contains(&Stage::Grpo) {
            return Err("runtime.group_size: GRPO needs at least 2 completions per prompt".into());
        }
        self.check_rewards()?;
        crate::train::placement::check_count(&self.runtime.generator_devices, self.runtime.pipeline.generators)
    }
}

fn cpu() -> String {
    "cpu".into()
}
fn f32() -> String {
    "f32".into()
}
fn one() -> f64 {
    1.0
}
fn one_usize() -> usize {
    1
}
/// `data.task` of a run without problems.
pub const NO_TASK: &str = "none";

fn default_task() -> String {
    NO_TASK.into()
}
fn default_sft_data_format() -> DataFormat {
    DataFormat::Gsm8k
}
fn default_overlong() -> Overlong {
    Overlong::Drop
}
fn default_max_operand() -> i64 {
    20
}
fn default_train_size() -> usize {
    2000
}
fn default_heldout_size() -> usize {
    64
}
fn default_format() -> PromptFormat {
    PromptFormat::R1
}
fn default_gold() -> GoldFormat {
    GoldFormat::Gsm8k
}
fn default_rewards() -> BTreeMap<String, f32> {
    BTreeMap::from([("format".into(), 0.5), ("accuracy".into(), 1.0)])
}
fn default_eval_samples() -> usize {
    4
}
fn default_max_new_tokens() -> usize {
    2048
}
fn default_sft_lr() -> f64 {
    4e-5
}
fn default_max_len() -> usize {
    8192
}
fn default_token_budget() -> usize {
    4096
}
fn default_kd_samples() -> usize {
    4
}
fn default_kd_prompts() -> usize {
    256
}
fn default_grpo_lr() -> f64 {
    1e-6
}
fn default_grpo_steps() -> u64 {
    100
}
fn default_keep() -> usize {
    2
}
fn default_metrics_addr() -> String {
    "127.0.0.1:9464".into()
}
fn default_rollout_log_every() -> u64 {
    10
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learner::grpo_loss::LossType;

    /// Every `srlm train` recipe in configs/ parses and passes validation (the `sft_*` files are
    /// `srlm sft` recipes, checked by that module).
    #[test]
    fn every_train_recipe_in_configs_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.extension().is_some_and(|e| e == "toml") && !name.starts_with("sft_gsm8k") {
                let cfg = TrainConfig::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
                // A problem file the repo carries reads, and holds every problem the recipe asks for.
                if let Some(train) = cfg.data.train.as_ref().filter(|t| t.starts_with("configs")) {
                    let rows = crate::train::problems::gsm8k_rows(&dir.join("..").join(train), cfg.data.gold).unwrap();
                    assert!(rows.len() >= cfg.data.train_size, "{name}: {} problems in {}", rows.len(), train.display());
                }
                // So does an SFT file it carries (own traces), with at least one conversation.
                if let Some(data) = cfg.sft.data.as_ref().filter(|d| d.starts_with("configs")) {
                    let rows =
                        crate::learner::sft_data::read_conversations(&dir.join("..").join(data), cfg.sft.data_format, cfg.data.format)
                            .unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert!(!rows.is_empty(), "{name}: no conversations in {}", data.display());
                }
                // And a kd stage's own problem file (../shared's GSM8K beside the clone) holds
                // the rows the stage samples.
                if let Some(kd) = cfg.kd.as_ref().filter(|_| cfg.stages.contains(&Stage::Kd)) {
                    if let Some(data) = &kd.data {
                        let rows = crate::train::problems::gsm8k_rows(&dir.join("..").join(data), cfg.data.gold)
                            .unwrap_or_else(|e| panic!("{name}: kd.data: {e}"));
                        assert!(rows.len() >= kd.skip + kd.prompts, "{name}: {} problems in {}", rows.len(), data.display());
                    }
                }
                checked += 1;
            }
        }
        assert!(checked >= 7, "only {checked} recipes found");
    }

    #[test]
    fn the_embedded_default_is_the_tiny_arithmetic_pipeline() {
        let cfg = TrainConfig::from_toml(EMBEDDED_DEFAULT, "<embedded default>").unwrap();
        assert_eq!(cfg.stages, [Stage::Sft, Stage::Grpo]);
        assert_eq!((cfg.model.source.as_str(), cfg.data.task.as_str()), ("tiny", "arithmetic"));
    }

    const GRPO_BASE: &str =
        "stages = [\"grpo\"]\nout_dir = \"x\"\n[model]\nsource = \"tiny\"\n[data]\ntask = \"arithmetic\"\ngold = \"number\"\n";

    /// `[rewards] overlong` is no text reward: it becomes the penalty, over a quarter of the
    /// budget unless `grpo.overlong_buffer` says otherwise, and bad settings are named.
    #[test]
    fn the_overlong_penalty_reads_its_budget_and_refuses_bad_settings() {
        let with = |extra: &str| TrainConfig::from_toml(&format!("{GRPO_BASE}{extra}"), "f.toml");
        let cfg = with("[rewards]\naccuracy = 1.0\noverlong = 0.5\n[grpo]\nmax_new_tokens = 384\n").unwrap();
        assert_eq!(cfg.reward_spec(), [("accuracy".to_string(), 1.0)]);
        assert_eq!(cfg.overlong_penalty(), Some(OverlongPenalty { weight: 0.5, max_tokens: 384, buffer: 96 }));
        let cfg = with("[rewards]\naccuracy = 1.0\noverlong = 1.0\n[grpo]\nmax_new_tokens = 384\noverlong_buffer = 64\n").unwrap();
        assert_eq!(cfg.overlong_penalty().map(|p| p.buffer), Some(64));
        assert_eq!(with("[rewards]\naccuracy = 1.0\n").unwrap().overlong_penalty(), None);
        for (extra, field) in [
            ("[rewards]\naccuracy = 1.0\noverlong = 1.0\n[grpo]\nmax_new_tokens = 64\noverlong_buffer = 65\n", "grpo.overlong_buffer"),
            ("[rewards]\naccuracy = 1.0\noverlong = 1.0\n[grpo]\noverlong_buffer = 0\n", "grpo.overlong_buffer"),
            ("[rewards]\noverlong = 1.0\n", "rewards: `overlong` only shapes"),
            ("[rewards]\naccuracy = 1.0\n[grpo]\noverlong_buffer = 16\n", "grpo.overlong_buffer: set, but"),
            ("[rewards]\naccuracy = 1.0\noverlng = 1.0\n", "unknown reward 'overlng' (known: accuracy, "),
            ("[rewards]\naccuracy = 1.0\noverlng = 1.0\n", "or overlong (the length penalty)"),
        ] {
            let err = with(extra).unwrap_err().to_string();
            assert!(err.contains(field), "{extra}: {err}");
        }
    }

    /// The keys the old hand copy dropped reach the loss and the optimizer the stage builds.
    #[test]
    fn every_grpo_key_reaches_the_type_that_uses_it() {
        let grpo = "[grpo]\nsteps = 20\nratio_cap = 1.5\nmax_new_tokens = 64\nchunk_rows = 64\nbeta1 = 0.8\nbeta2 = 0.95\neps = 1e-6\nweight_decay = 0.1\nmax_grad_norm = 0.0\nlr_schedule = \"cosine\"\nwarmup_steps = 5\n";
        let cfg = TrainConfig::from_toml(&format!("{GRPO_BASE}{grpo}"), "f.toml").unwrap();
        let (algo, opt) = (&cfg.grpo.algo, cfg.grpo.adamw());
        assert_eq!((algo.loss.ratio_cap, algo.loss.max_completion_len, algo.chunk_rows), (Some(1.5), 64, 64));
        assert_eq!((opt.beta1, opt.beta2, opt.eps, opt.weight_decay, opt.max_grad_norm), (0.8, 0.95, 1e-6, 0.1, None));
        assert_eq!(opt.schedule, crate::optim::Schedule { decay: crate::optim::Decay::Cosine, warmup_steps: 5, total_steps: 20 });
        let scaled = TrainConfig::from_toml(&format!("{GRPO_BASE}[grpo]\nadvantage_scale = \"none\"\n"), "f.toml").unwrap();
        assert_eq!((cfg.grpo.advantage_scale, scaled.grpo.advantage_scale), (AdvantageScale::Std, AdvantageScale::None));
    }

    /// GRPO after an sft stage that trained on a slice starts past that slice; alone, after all
    /// of the data, before the sft stage, or after an SFT on its own `[sft] data` it starts at
    /// the first problem.
    #[test]
    fn grpo_starts_past_the_problems_an_earlier_sft_slice_saw() {
        let recipe = |stages: &str, sft: &str| {
            let text = format!("stages = {stages}\nout_dir = \"x\"\n[model]\nsource = \"tiny\"\n[data]\ntask = \"arithmetic\"\ngold = \"number\"\n[sft]\n{sft}\n");
            TrainConfig::from_toml(&text, "f.toml").unwrap().grpo_first_prompt()
        };
        assert_eq!(recipe(r#"["sft", "grpo"]"#, "examples = 128"), 128);
        assert_eq!(recipe(r#"["sft", "grpo"]"#, "examples = 32\ndata = \"solutions.jsonl\""), 0);
        assert_eq!(recipe(r#"["sft", "grpo"]"#, "examples = 0"), 0);
        assert_eq!(recipe(r#"["grpo"]"#, "examples = 128"), 0);
        assert_eq!(recipe(r#"["grpo", "sft"]"#, "examples = 128"), 0);
    }

    /// An absent `[grpo]` gives the README's defaults (the real types' `Default`s).
    #[test]
    fn grpo_defaults_are_the_documented_ones() {
        let g = TrainConfig::from_toml(GRPO_BASE, "f.toml").unwrap().grpo;
        assert_eq!(
            (g.algo.loss.loss_type, g.algo.loss.epsilon_low, g.algo.loss.epsilon_high, g.algo.loss.ratio_cap),
            (LossType::Dapo, 0.2, 0.28, None)
        );
        assert_eq!((g.algo.micro_batch_size, g.max_new_tokens(), g.steps, g.top_p), (16, 2048, 100, 1.0));
        assert_eq!((g.adamw().lr, g.optimizer.max_grad_norm, g.adamw().schedule.total_steps), (1e-6, Some(1.0), 100));
        assert_eq!((g.algo, g.optimizer), (GrpoConfig::default(), AdamWConfig::default()));
    }

    #[test]
    fn a_misspelled_or_derived_grpo_key_is_refused_by_name() {
        let err = TrainConfig::from_toml(&format!("{GRPO_BASE}[grpo]\nratio_kap = 1.5\n"), "f.toml").unwrap_err().to_string();
        assert!(err.starts_with("f.toml: unknown key 'grpo.ratio_kap'") && err.contains("ratio_cap"), "{err}");
        // The tokenizer's pad id and the schedule's length (grpo.steps) are not settings.
        for key in ["pad_id = 3", "total_steps = 9"] {
            let err = TrainConfig::from_toml(&format!("{GRPO_BASE}[grpo]\n{key}\n"), "f.toml").unwrap_err().to_string();
            assert!(err.contains("unknown key 'grpo."), "{key}: {err}");
        }
    }

    /// The SFT stage's optimizer keys reach its AdamW; its learning rate keeps its own default.
    #[test]
    fn sft_optimizer_keys_reach_the_sft_optimizer() {
        let sft = "[sft]\nweight_decay = 0.01\nlr_schedule = \"linear\"\nwarmup_steps = 3\nmax_grad_norm = 0.0\n";
        let s = TrainConfig::from_toml(&format!("{GRPO_BASE}{sft}"), "f.toml").unwrap().sft;
        let opt = s.adamw(40);
        assert_eq!((opt.lr, opt.weight_decay, opt.max_grad_norm), (4e-5, 0.01, None));
        assert_eq!(opt.schedule, crate::optim::Schedule { decay: crate::optim::Decay::Linear, warmup_steps: 3, total_steps: 40 });
        let defaults = TrainConfig::from_toml(GRPO_BASE, "f.toml").unwrap().sft.adamw(40);
        assert_eq!(
            (defaults.max_grad_norm, defaults.schedule.decay, defaults.weight_decay),
            (Some(1.0), crate::optim::Decay::Constant, 0.0)
        );
    }

    /// `[runtime]` is the runtime's own `RuntimeConfig`; what the stage derives is not a key.
    #[test]
    fn runtime_keys_reach_the_runtime_config() {
        let cfg = TrainConfig::from_toml(&format!("{GRPO_BASE}[runtime]\nscorers = 3\nmax_staleness = 0\n"), "f.toml").unwrap();
        assert_eq!((cfg.runtime.pipeline.scorers, cfg.runtime.pipeline.max_staleness, cfg.runtime.pipeline.group_size), (3, 0, 16));
        let err = TrainConfig::from_toml(&format!("{GRPO_BASE}[runtime]\nseed = 3\n"), "f.toml").unwrap_err().to_string();
        assert!(err.contains("unknown key 'runtime.seed'"), "{err}");
    }

    #[test]
    fn unknown_keys_and_bad_combinations_are_named() {
        let base = "stages = [\"grpo\"]\nout_dir = \"x\"\n[model]\nsource = \"tiny\"\n[data]\ntask = \"arithmetic\"\ngold = \"number\"\n";
        let err = TrainConfig::from_toml(&format!("{base}[runtime]\ngroup_sise = 4\n"), "f.toml").unwrap_err().to_string();
        assert!(err.contains("f.toml") && err.contains("group_sise"), "{err}");
        let err = TrainConfig::from_toml(&format!("{base}[rewards]\nbrevity = 1.0\n"), "f.toml").unwrap_err().to_string();
        assert!(err.contains("brevity"), "{err}");
        let err = TrainConfig::from_toml(&base.replace("\"arithmetic\"", "\"gsm8k\""), "f.toml").unwrap_err().to_string();
        assert!(err.contains("data.train"), "{err}");
        let err = TrainConfig::from_toml(&format!("{base}[sft]\nlanes = 0\n"), "f.toml").unwrap_err().to_string();
        assert!(err.contains("sft.lanes"), "{err}");
        let err = TrainConfig::from_toml(&format!("{base}[runtime]\ngroup_size = 1\n"), "f.toml").unwrap_err().to_string();
        assert!(err.contains("group_size"), "{err}");
    }

    #[test]
    fn a_run_without_problems_is_an_sft_stage_on_its_own_examples() {
        let base = "out_dir = \"x\"\n[model]\nsource = \"m\"\n";
        let ok =
            TrainConfig::from_toml(&format!("stages = [\"sft\"]\n{base}[sft]\ndata = \"d.jsonl\"\ndata_format = \"chat\"\n"), "f.toml")
                .unwrap();
        assert!(!ok.data.has_problems());
        let err = TrainConfig::from_toml(&format!("stages = [\"sft\"]\n{base}"), "f.toml").unwrap_err().to_string();
        assert!(err.contains("[sft] data"), "{err}");
        let err = TrainConfig::from_toml(&format!("stages = [\"sft\", \"grpo\"]\n{base}[sft]\ndata = \"d.jsonl\"\n"), "f.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("stage `grpo` needs problems: set data.task"), "{err}");
    }

    #[test]
    fn a_default_stage_list_keeps_the_files_line_numbers() {
        let body = "out_dir = \"x\"\n[model]\nsource = \"tiny\"\n[data]\ntask = \"arithmetic\"\ngold = \"number\"\n[sft]\n";
        let sft = TrainConfig::from_toml_or_stages(body, "f.toml", &[Stage::Sft]).unwrap();
        assert_eq!(sft.stages, [Stage::Sft]);
        // A mistake on the file's line 8 is reported on line 8 (a prepended stage line made it 9).
        let err = TrainConfig::from_toml_or_stages(&format!("{body}lr = \"fast\"\n"), "f.toml", &[Stage::Sft]).unwrap_err().to_string();
        assert!(err.contains("line 8"), "{err}");
        // The file's own list wins; `srlm train` has no default.
        let grpo = TrainConfig::from_toml_or_stages(&format!("stages = [\"grpo\"]\n{body}"), "f.toml", &[Stage::Sft]).unwrap();
        assert_eq!(grpo.stages, [Stage::Grpo]);
        let err = TrainConfig::from_toml(body, "f.toml").unwrap_err().to_string();
        assert!(err.contains("`stages` is missing or empty"), "{err}");
    }

    #[test]
    fn sft_lora_adapter_and_warmup_keys_are_checked_together() {
        let base =
            "stages = [\"sft\"]\nout_dir = \"x\"\n[model]\nsource = \"tiny\"\n[data]\ntask = \"arithmetic\"\ngold = \"number\"\n[sft]\n";
        let parse = |extra: &str| TrainConfig::from_toml(&format!("{base}{extra}"), "f.toml").map_err(|e| e.to_string());
        let cfg = parse("save_adapter = true\nwarmup_ratio = 0.1\n[sft.lora]\nr = 4\nalpha = 8\n").unwrap();
        assert_eq!(cfg.sft.lora_config(cfg.seed).unwrap().r, 4);
        assert_eq!(cfg.sft.adamw(25).schedule.warmup_steps, 3);
        assert!(parse("save_adapter = true\n").unwrap_err().contains("sft.save_adapter needs an [sft.lora] section"));
        assert!(parse("warmup_ratio = 0.1\nwarmup_steps = 2\n").unwrap_err().contains("warmup_steps or warmup_ratio"));
        assert!(parse("warmup_ratio = 1.5\n").unwrap_err().contains("sft.warmup_ratio = 1.5"));
        assert!(parse("[sft.lora]\nr = 0\nalpha = 8\n").unwrap_err().contains("sft.lora.r = 0"));
        assert!(parse("[sft.lora]\nr = 4\nalpha = 8\nrank = 2\n").unwrap_err().contains("rank"));
        // A LoRA stage trains f32 adapters: an lr too small for bf16 weights is fine there.
        let bf16 = base.replace("source = \"tiny\"", "source = \"tiny\"\ndtype = \"bf16\"");
        let tiny_lr = "lr = 1e-9\n";
        assert!(TrainConfig::from_toml(&format!("{bf16}{tiny_lr}"), "f.toml").is_err());
        assert!(TrainConfig::from_toml(&format!("{bf16}{tiny_lr}[sft.lora]\nr = 4\nalpha = 8\n"), "f.toml").is_ok());
    }

    #[test]
    fn grpo_lora_keys_are_checked_and_dropout_is_refused() {
        let base =
            "stages = [\"grpo\"]\nout_dir = \"x\"\n[model]\nsource = \"tiny\"\n[data]\ntask = \"arithmetic\"\ngold = \"number\"\n[grpo]\n";
        let parse = |extra: &str| TrainConfig::from_toml(&format!("{base}{extra}"), "f.toml").map_err(|e| e.to_string());
        let cfg = parse("save_adapter = true\n[grpo.lora]\nr = 2\nalpha = 4\n").unwrap();
        let lora = cfg.grpo.lora_config(cfg.seed).unwrap();
        assert_eq!((lora.r, lora.alpha, lora.dropout), (2, 4.0, 0.0));
        assert!(cfg.stage_trains_adapters(0) && !parse("").unwrap().stage_trains_adapters(0));
        assert!(parse("save_adapter = true\n").unwrap_err().contains("grpo.save_adapter needs a [grpo.lora] section"));
        let err = parse("[grpo.lora]\nr = 2\nalpha = 4\ndropout = 0.05\n").unwrap_err();
        assert!(err.contains("grpo.lora.dropout = 0.05") && err.contains("sampler"), "{err}");
        assert!(parse("[grpo.lora]\nr = 0\nalpha = 4\n").unwrap_err().contains("grpo.lora.r = 0"));
        assert!(parse("[grpo.lora]\nr = 2\nalpha = 4\nrank = 2\n").unwrap_err().contains("rank"));
        // Adapters train in f32: an lr too small for bf16 weights is fine there.
        let bf16 = base.replace("source = \"tiny\"", "source = \"tiny\"\ndtype = \"bf16\"");
        assert!(TrainConfig::from_toml(&format!("{bf16}lr = 1e-9\n"), "f.toml").is_err());
        assert!(TrainConfig::from_toml(&format!("{bf16}lr = 1e-9\n[grpo.lora]\nr = 2\nalpha = 4\n"), "f.toml").is_ok());
    }
}
