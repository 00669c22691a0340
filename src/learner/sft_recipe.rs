//! The `srlm sft --config FILE.toml` recipe: every key named, unknown keys refused.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::sft::Overlong;
use super::sft_data::DataFormat;
use crate::data::PromptFormat;
use crate::model::load::parse_dtype;
use crate::model::LoraConfig;
use crate::optim::{AdamWConfig, Decay, Schedule};
use crate::ranges::{at_least, non_negative, positive};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftRecipe {
    /// HF directory, .gguf file or cached hub id.
    pub model: String,
    /// JSONL training data.
    pub data: PathBuf,
    pub format: DataFormat,
    /// Prompt format of GSM8K questions (`plain`, `r1`, `boxed`: the prompts `srlm train`,
    /// `distill` and `eval` render); defaults to `r1`.
    pub prompt_format: Option<PromptFormat>,
    /// A custom system prompt before each GSM8K question instead of the format's.
    pub system_prompt: Option<String>,
    /// Where the result goes (an HF directory or a PEFT adapter directory).
    pub output: PathBuf,
    /// `merged` (LoRA folded into an HF dir), `adapter` (PEFT) or `full`; defaults to `full`
    /// without [lora], `merged` with it.
    pub save: Option<SaveAs>,
    #[serde(default = "defaults::lr")]
    pub lr: f64,
    #[serde(default)]
    pub weight_decay: f64,
    /// Decay after warmup: `cosine`, `linear` (both to 0 at the last step) or `constant`.
    #[serde(default = "defaults::lr_schedule")]
    pub lr_schedule: Decay,
    /// Warmup steps (the first step has lr 0); give this or `warmup_ratio`, not both.
    pub warmup_steps: Option<usize>,
    /// Warmup as a fraction of all steps, rounded up; defaults to 0.03.
    pub warmup_ratio: Option<f64>,
    #[serde(default = "defaults::one")]
    pub epochs: usize,
    #[serde(default = "defaults::max_length")]
    pub max_length: usize,
    #[serde(default = "defaults::overlong")]
    pub overlong: Overlong,
    /// Padded tokens per micro-batch.
    #[serde(default = "defaults::token_budget")]
    pub token_budget: usize,
    #[serde(default = "defaults::one")]
    pub grad_accum: usize,
    /// Micro-batches computed at once, one thread each (README: CPU speed settings).
    #[serde(default = "defaults::one")]
    pub lanes: usize,
    #[serde(default = "defaults::max_grad_norm")]
    pub max_grad_norm: f64,
    #[serde(default)]
    pub seed: u64,
    /// Use only the first N rows of `data`.
    pub limit: Option<usize>,
    #[serde(default = "defaults::device")]
    pub device: String,
    #[serde(default = "defaults::dtype")]
    pub dtype: String,
    /// Optimiser steps between checkpoints; 0 (the default) saves none.
    #[serde(default)]
    pub checkpoint_every: usize,
    /// Newest checkpoints kept; 0 keeps all.
    #[serde(default = "defaults::keep_checkpoints")]
    pub keep_checkpoints: usize,
    /// Where checkpoints go; defaults to `<output>-checkpoints`.
    pub checkpoint_dir: Option<PathBuf>,
    pub lora: Option<LoraSection>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SaveAs {
    Full,
    Merged,
    Adapter,
}

/// `[lora]` of a recipe, `[sft.lora]` of a `srlm train` config.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoraSection {
    pub r: usize,
    pub alpha: f64,
    #[serde(default)]
    pub dropout: f64,
    #[serde(default = "defaults::targets")]
    pub target_modules: Vec<String>,
}

mod defaults {
    pub fn lr() -> f64 {
        1e-4
    }
    pub fn one() -> usize {
        1
    }
    pub fn max_length() -> usize {
        2048
    }
    pub fn overlong() -> super::Overlong {
        super::Overlong::Truncate
    }
    pub fn token_budget() -> usize {
        8192
    }
    pub fn max_grad_norm() -> f64 {
        1.0
    }
    pub fn lr_schedule() -> super::Decay {
        super::Decay::Cosine
    }
    pub fn keep_checkpoints() -> usize {
        2
    }
    pub fn device() -> String {
        "cpu".into()
    }
    pub fn dtype() -> String {
        "f32".into()
    }
    pub fn targets() -> Vec<String> {
        crate::model::lora::LORA_MODULES.iter().map(|(_, m)| m.to_string()).collect()
    }
}

/// Warmup when a recipe names neither `warmup_steps` nor `warmup_ratio`.
pub const DEFAULT_WARMUP_RATIO: f64 = 0.03;

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl SftRecipe {
    pub fn from_file(path: &Path) -> Result<Self, RecipeError> {
        let text = std::fs::read_to_string(path).map_err(|e| RecipeError::Io { path: path.to_path_buf(), source: e })?;
        Self::parse(&text).map_err(|reason| RecipeError::Invalid { path: path.to_path_buf(), reason })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let recipe: SftRecipe = toml::from_str(text).map_err(|e| e.to_string())?;
        recipe.validate()?;
        Ok(recipe)
    }

    /// The system prompt before each GSM8K question (chat rows carry their own).
    pub fn system(&self) -> Option<&str> {
        match (&self.system_prompt, self.format) {
            (_, DataFormat::Chat) => None,
            (Some(s), _) => Some(s.as_str()),
            (None, DataFormat::Gsm8k) => self.prompt_format.unwrap_or(PromptFormat::R1).system_prompt(),
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.prompt_format.is_some() && self.system_prompt.is_some() {
            return Err("give prompt_format or system_prompt, not both".into());
        }
        if self.format == DataFormat::Chat && (self.prompt_format.is_some() || self.system_prompt.is_some()) {
            return Err("prompt_format and system_prompt apply to format = \"gsm8k\"; chat rows carry their own messages".into());
        }
        self.check_ranges()?;
        match (self.warmup_steps, self.warmup_ratio) {
            (Some(_), Some(_)) => return Err("give warmup_steps or warmup_ratio, not both".into()),
            (None, Some(r)) if !(0.0..=1.0).contains(&r) => return Err(format!("warmup_ratio = {r}: must be in [0, 1]")),
            _ => {}
        }
        match (self.save_as(), &self.lora) {
            (SaveAs::Merged | SaveAs::Adapter, None) => Err("save = \"merged\" or \"adapter\" needs a [lora] section".into()),
            _ => Ok(()),
        }
    }

    /// Every number in its range, named by key.
    fn check_ranges(&self) -> Result<(), String> {
        at_least("epochs", self.epochs, 1)?;
        at_least("grad_accum", self.grad_accum, 1)?;
        at_least("lanes", self.lanes, 1)?;
        // A prompt token and a completion token.
        at_least("max_length", self.max_length, 2)?;
        at_least("token_budget", self.token_budget, 1)?;
        positive("lr", self.lr)?;
        non_negative("weight_decay", self.weight_decay)?;
        // 0 turns clipping off.
        non_negative("max_grad_norm", self.max_grad_norm)?;
        if let Some(limit) = self.limit {
            at_least("limit", limit, 1)?;
        }
        parse_dtype(&self.dtype).map_err(|e| format!("dtype: {e}"))?;
        if self.lora.is_none() {
            crate::optim::precision::check_steps_survive_rounding("lr", self.lr, &self.dtype)?;
        }
        match &self.lora {
            Some(lora) => lora.check("lora"),
            None => Ok(()),
        }
    }

    pub fn save_as(&self) -> SaveAs {
        self.save.unwrap_or(if self.lora.is_some() { SaveAs::Merged } else { SaveAs::Full })
    }

    /// The learning-rate schedule over a run of `total_steps` optimiser steps.
    pub fn schedule(&self, total_steps: usize) -> Schedule {
        match self.warmup_steps {
            Some(warmup_steps) => Schedule { decay: self.lr_schedule, warmup_steps, total_steps },
            None => Schedule::with_warmup_ratio(self.lr_schedule, self.warmup_ratio.unwrap_or(DEFAULT_WARMUP_RATIO), total_steps),
        }
    }

    /// AdamW for a run of `total_steps` optimiser steps.
    pub fn adamw(&self, total_steps: usize) -> AdamWConfig {
        AdamWConfig {
            lr: self.lr,
            weight_decay: self.weight_decay,
            max_grad_norm: (self.max_grad_norm > 0.0).then_some(self.max_grad_norm),
            schedule: self.schedule(total_steps),
            ..AdamWConfig::default()
        }
    }

    /// Where checkpoints go.
    pub fn checkpoint_root(&self) -> PathBuf {
        self.checkpoint_dir.clone().unwrap_or_else(|| {
            let mut name = self.output.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "sft".into());
            name.push("-checkpoints");
            self.output.with_file_name(name)
        })
    }

    pub fn lora_config(&self) -> Option<LoraConfig> {
        self.lora.as_ref().map(|l| l.config(self.seed))
    }
}

impl LoraSection {
    /// Every value in its range, named as `section.key`.
    pub fn check(&self, section: &str) -> Result<(), String> {
        at_least(&format!("{section}.r"), self.r, 1)?;
        positive(&format!("{section}.alpha"), self.alpha)?;
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("{section}.dropout = {}: must be in [0, 1)", self.dropout));
        }
        if self.target_modules.is_empty() {
            return Err(format!("{section}.target_modules is empty: name at least one projection (q_proj, v_proj, ...)"));
        }
        Ok(())
    }

    pub fn config(&self, seed: u64) -> LoraConfig {
        LoraConfig { r: self.r, alpha: self.alpha, dropout: self.dropout, target_modules: self.target_modules.clone(), seed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "model = \"m\"\ndata = \"d.jsonl\"\nformat = \"gsm8k\"\noutput = \"out\"\n";

    #[test]
    fn minimal_recipe_takes_defaults() {
        let r = SftRecipe::parse(BASE).unwrap();
        assert_eq!((r.epochs, r.max_length, r.save_as()), (1, 2048, SaveAs::Full));
        let r = SftRecipe::parse(&format!("{BASE}lr = 4e-5\n[lora]\nr = 8\nalpha = 16\n")).unwrap();
        assert_eq!(r.save_as(), SaveAs::Merged);
        assert_eq!(r.lora_config().unwrap().target_modules.len(), 7);
    }

    #[test]
    fn schedule_defaults_to_cosine_with_three_percent_warmup() {
        let r = SftRecipe::parse(BASE).unwrap();
        assert_eq!(r.schedule(100), Schedule { decay: Decay::Cosine, warmup_steps: 3, total_steps: 100 });
        let r = SftRecipe::parse(&format!("{BASE}lr_schedule = \"linear\"\nwarmup_steps = 7\nmax_grad_norm = 0\n")).unwrap();
        let opt = r.adamw(50);
        assert_eq!(opt.schedule, Schedule { decay: Decay::Linear, warmup_steps: 7, total_steps: 50 });
        assert_eq!(opt.max_grad_norm, None);
        let err = SftRecipe::parse(&format!("{BASE}warmup_steps = 7\nwarmup_ratio = 0.1\n")).unwrap_err();
        assert!(err.contains("warmup_steps or warmup_ratio"), "{err}");
        assert_eq!(r.checkpoint_root(), PathBuf::from("out-checkpoints"));
    }

    #[test]
    fn committed_recipes_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let recipes: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("sft_")))
            .collect();
        assert!(recipes.len() >= 2);
        for path in recipes {
            SftRecipe::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn values_out_of_range_are_refused_by_key() {
        let cases = [
            ("epochs = 0", "epochs = 0: must be at least 1"),
            ("max_length = 1", "max_length = 1: must be at least 2"),
            ("token_budget = 0", "token_budget = 0"),
            ("lr = nan", "lr = NaN: must be a finite number > 0"),
            ("weight_decay = -0.1", "weight_decay = -0.1"),
            ("max_grad_norm = inf", "max_grad_norm = inf"),
            ("limit = 0", "limit = 0"),
            ("warmup_ratio = 2.0", "warmup_ratio = 2: must be in [0, 1]"),
            ("dtype = \"f64\"", "dtype: bad dtype 'f64'"),
            ("[lora]\nr = 0\nalpha = 16", "lora.r = 0"),
            ("[lora]\nr = 8\nalpha = 0", "lora.alpha = 0"),
            ("[lora]\nr = 8\nalpha = 16\ndropout = 1.0", "lora.dropout = 1: must be in [0, 1)"),
            ("[lora]\nr = 8\nalpha = 16\ntarget_modules = []", "lora.target_modules is empty"),
        ];
        for (line, expected) in cases {
            let err = SftRecipe::parse(&format!("{BASE}{line}\n")).unwrap_err();
            assert!(err.contains(expected), "{line}: {err}");
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = SftRecipe::parse(&format!("{BASE}learning_rate = 1e-4\n")).unwrap_err();
        assert!(err.contains("learning_rate"), "{err}");
        let err = SftRecipe::parse(&format!("{BASE}[lora]\nr = 8\nalpha = 16\nrank = 4\n")).unwrap_err();
        assert!(err.contains("rank"), "{err}");
        let err = SftRecipe::parse(&format!("{BASE}save = \"adapter\"\n")).unwrap_err();
        assert!(err.contains("[lora]"), "{err}");
    }
}
