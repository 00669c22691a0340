//! The flat `srlm sft` recipe (configs/sft_*.toml) as a one-stage `srlm train` config: each
//! recipe key lands on the train config's key that does the same, so one driver runs every SFT.
//!
//! The run folder is the recipe's checkpoint folder (`checkpoint_dir`, else `<output>-checkpoints`,
//! where its checkpoints always went); the finished model or adapter then moves to `output`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use toml::{Table, Value};

use crate::data::PromptFormat;
use crate::learner::sft_recipe::{SaveAs, SftRecipe};
use crate::train::config::TrainConfig;

/// Keys only the flat layout has at its top level.
const FLAT_ONLY: [&str; 4] = ["output", "format", "max_length", "checkpoint_dir"];

/// Whether `table` is a flat recipe rather than a train config (whose `model` is a section).
pub fn is_flat_recipe(table: &Table) -> bool {
    matches!(table.get("model"), Some(Value::String(_))) || FLAT_ONLY.iter().any(|k| table.contains_key(*k))
}

pub struct MappedRecipe {
    pub config: TrainConfig,
    /// Where the recipe wants its result.
    pub output: PathBuf,
    /// The folder of the run's outputs that is that result.
    pub from: String,
}

/// Reads the recipe at `path` (its errors name the recipe's keys) and maps it.
pub fn map_recipe(path: &Path) -> Result<MappedRecipe> {
    let recipe = SftRecipe::from_file(path)?;
    let origin = path.display().to_string();
    let table = config_table(&recipe).with_context(|| origin.clone())?;
    let text = toml::to_string(&table).context("writing the mapped recipe")?;
    let config = TrainConfig::from_toml(&text, &format!("{origin} (as a train config)"))?;
    let from = match recipe.save_as() {
        SaveAs::Adapter => "stage-0-sft-adapter",
        SaveAs::Full | SaveAs::Merged => "stage-0-sft",
    };
    Ok(MappedRecipe { config, output: recipe.output.clone(), from: from.into() })
}

fn config_table(r: &SftRecipe) -> Result<Table> {
    if r.system_prompt.is_some() {
        bail!(
            "system_prompt: a recipe's own system prompt is no longer read; GSM8K rows are asked in \
             `prompt_format` (plain, r1, boxed; `[data] format` in a train config), as every command asks them"
        );
    }
    let mut sft = Table::new();
    sft.insert("data".into(), Value::String(r.data.display().to_string()));
    sft.insert("data_format".into(), value(&r.format)?);
    sft.insert("lr".into(), Value::Float(r.lr));
    sft.insert("weight_decay".into(), Value::Float(r.weight_decay));
    sft.insert("max_grad_norm".into(), Value::Float(r.max_grad_norm));
    sft.insert("lr_schedule".into(), value(&r.lr_schedule)?);
    match r.warmup_steps {
        Some(steps) => sft.insert("warmup_steps".into(), Value::Integer(steps as i64)),
        None => sft.insert("warmup_ratio".into(), Value::Float(r.warmup_ratio.unwrap_or(crate::learner::sft_recipe::DEFAULT_WARMUP_RATIO))),
    };
    for (key, n) in [
        ("epochs", r.epochs),
        ("max_len", r.max_length),
        ("token_budget", r.token_budget),
        ("grad_accum", r.grad_accum),
        ("lanes", r.lanes),
        ("examples", r.limit.unwrap_or(0)),
    ] {
        sft.insert(key.into(), Value::Integer(n as i64));
    }
    sft.insert("overlong".into(), value(&r.overlong)?);
    if let Some(lora) = &r.lora {
        sft.insert("lora".into(), value(lora)?);
        sft.insert("save_adapter".into(), Value::Boolean(r.save_as() == SaveAs::Adapter));
    }
    let mut model = Table::new();
    model.insert("source".into(), Value::String(r.model.clone()));
    model.insert("device".into(), Value::String(r.device.clone()));
    model.insert("dtype".into(), Value::String(r.dtype.clone()));
    let mut data = Table::new();
    data.insert("format".into(), value(&r.prompt_format.unwrap_or(PromptFormat::R1))?);
    let mut runtime = Table::new();
    runtime.insert("checkpoint_every".into(), Value::Integer(r.checkpoint_every as i64));
    // A recipe's `checkpoint_every = 0` means none at all, not one at the end.
    runtime.insert("end_checkpoint".into(), Value::Boolean(r.checkpoint_every > 0));
    runtime.insert("keep_checkpoints".into(), Value::Integer(r.keep_checkpoints as i64));
    // A recipe never served metrics; a port taken by another run would stop it.
    runtime.insert("metrics_addr".into(), Value::String(String::new()));
    let mut t = Table::new();
    t.insert("stages".into(), Value::Array(vec![Value::String("sft".into())]));
    t.insert("seed".into(), Value::Integer(r.seed as i64));
    t.insert("out_dir".into(), Value::String(r.checkpoint_root().display().to_string()));
    t.insert("model".into(), Value::Table(model));
    t.insert("data".into(), Value::Table(data));
    t.insert("sft".into(), Value::Table(sft));
    t.insert("runtime".into(), Value::Table(runtime));
    Ok(t)
}

/// A recipe value (an enum, a section) as the TOML value it reads from.
fn value<T: serde::Serialize>(v: &T) -> Result<Value> {
    Ok(Value::try_from(v)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learner::sft::Overlong;
    use crate::learner::sft_data::DataFormat;
    use crate::optim::{Decay, Schedule};
    use crate::train::config::Stage;

    fn repo_config(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("configs").join(name)
    }

    fn mapped(text: &str) -> Result<MappedRecipe> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recipe.toml");
        std::fs::write(&path, text).unwrap();
        map_recipe(&path)
    }

    #[test]
    fn the_lora_recipe_maps_key_by_key() {
        let m = map_recipe(&repo_config("sft_gsm8k_lora.toml")).unwrap();
        let (c, s) = (&m.config, &m.config.sft);
        assert_eq!(c.stages, [Stage::Sft]);
        assert_eq!((c.model.source.as_str(), c.model.dtype.as_str()), ("Qwen/Qwen2.5-0.5B-Instruct", "f32"));
        assert!(!c.data.has_problems());
        assert_eq!(c.data.format, PromptFormat::R1);
        assert_eq!(s.data.as_deref(), Some(Path::new("../shared/data/gsm8k/train.jsonl")));
        assert_eq!((s.data_format, s.overlong), (DataFormat::Gsm8k, Overlong::Truncate));
        assert_eq!((s.lr, s.epochs, s.max_len, s.token_budget, s.grad_accum, s.examples), (1e-4, 4, 8192, 8192, 4, 0));
        let lora = s.lora_config(c.seed).unwrap();
        assert_eq!((lora.r, lora.alpha, lora.dropout, lora.target_modules.len()), (16, 32.0, 0.05, 7));
        assert!(s.save_adapter);
        // 3 % warmup of the stage's steps, rounded up, then cosine; clipping at 1.
        let opt = s.adamw(100);
        assert_eq!(opt.schedule, Schedule { decay: Decay::Cosine, warmup_steps: 3, total_steps: 100 });
        assert_eq!(opt.max_grad_norm, Some(1.0));
        assert_eq!((c.runtime.pipeline.checkpoint_every, c.runtime.keep_checkpoints), (200, 2));
        assert_eq!(c.out_dir, PathBuf::from("runs/sft-lora-checkpoints"));
        assert_eq!((m.output, m.from.as_str()), (PathBuf::from("runs/sft-lora"), "stage-0-sft-adapter"));
    }

    #[test]
    fn the_full_recipe_maps_to_all_weights_and_the_stage_export() {
        let m = map_recipe(&repo_config("sft_gsm8k_full.toml")).unwrap();
        assert!(m.config.sft.lora.is_none() && !m.config.sft.save_adapter);
        assert_eq!(m.config.sft.lr, 4e-5);
        assert_eq!(m.from, "stage-0-sft");
    }

    #[test]
    fn limits_checkpoint_dir_prompt_format_and_warmup_steps_carry_over() {
        let base = "model = \"m\"\ndata = \"d.jsonl\"\nformat = \"gsm8k\"\noutput = \"out\"\n";
        let m = mapped(&format!(
            "{base}limit = 7\ncheckpoint_dir = \"ck\"\nprompt_format = \"boxed\"\nwarmup_steps = 5\nkeep_checkpoints = 0\nmax_grad_norm = 0\n"
        ))
        .unwrap();
        let c = &m.config;
        assert_eq!((c.sft.examples, c.out_dir.as_path(), c.data.format), (7, Path::new("ck"), PromptFormat::Boxed));
        assert_eq!(c.sft.adamw(20).schedule.warmup_steps, 5);
        assert_eq!((c.runtime.keep_checkpoints, c.sft.adamw(20).max_grad_norm), (0, None));
        // checkpoint_every's default 0 is "never": no end checkpoint either.
        assert_eq!((c.runtime.pipeline.checkpoint_every, c.runtime.pipeline.end_checkpoint), (0, false));
        let every = mapped(&format!("{base}checkpoint_every = 5\n")).unwrap().config.runtime.pipeline;
        assert_eq!((every.checkpoint_every, every.end_checkpoint), (5, true));
        let chat = mapped(&base.replace("\"gsm8k\"", "\"chat\"")).unwrap();
        assert_eq!(chat.config.sft.data_format, DataFormat::Chat);
    }

    #[test]
    fn a_custom_system_prompt_is_refused_naming_the_key_that_replaces_it() {
        let err = mapped("model = \"m\"\ndata = \"d\"\nformat = \"gsm8k\"\noutput = \"o\"\nsystem_prompt = \"Be brief.\"\n").err().unwrap();
        let err = format!("{err:#}");
        assert!(err.contains("system_prompt") && err.contains("prompt_format") && err.contains("[data] format"), "{err}");
    }

    #[test]
    fn recipe_errors_still_name_the_recipe_key() {
        let err = mapped("model = \"m\"\ndata = \"d\"\nformat = \"chat\"\noutput = \"o\"\nmax_length = 1\n").err().unwrap();
        assert!(format!("{err:#}").contains("max_length = 1: must be at least 2"), "{err:#}");
    }

    #[test]
    fn flat_recipes_are_told_from_train_configs() {
        let table = |t: &str| t.parse::<Table>().unwrap();
        assert!(is_flat_recipe(&table("model = \"m\"\n")));
        assert!(is_flat_recipe(&table("output = \"o\"\n")));
        assert!(!is_flat_recipe(&table("out_dir = \"o\"\n[model]\nsource = \"tiny\"\n[sft]\nlr = 1e-3\n")));
    }
}
