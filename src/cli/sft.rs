//! `srlm sft --config FILE.toml [--resume CKPT]`: the sft stage of a one-stage `srlm train` run
//! (full or LoRA), from a `srlm train` config or a recipe in the older flat layout, whose keys
//! are mapped onto the train config's (`srlm::train::sft_recipe_map`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use srlm::train::config::{Stage, TrainConfig};
use srlm::train::sft_recipe_map::{is_flat_recipe, map_recipe, MappedRecipe};
use srlm::train::stages::RunOptions;

#[derive(Args)]
pub struct SftArgs {
    /// A `srlm train` config whose stages are `["sft"]` (the default when it names none), or a
    /// flat recipe (configs/sft_*.toml); unknown keys are errors.
    #[arg(long)]
    config: PathBuf,
    /// Replace an existing output (the run folder's outputs; a flat recipe's `output`).
    #[arg(long)]
    force: bool,
    /// Continue from a checkpoint of this stage (`checkpoints-stage-0/checkpoint-N`).
    #[arg(long)]
    resume: Option<PathBuf>,
}

pub fn run(args: SftArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.config).with_context(|| format!("reading {}", args.config.display()))?;
    let origin = args.config.display().to_string();
    let table: toml::Table = toml::from_str(&text).with_context(|| origin.clone())?;
    let (cfg, result) = if is_flat_recipe(&table) {
        let MappedRecipe { config, output, from } = map_recipe(&args.config)?;
        anyhow::ensure!(args.force || !output.exists(), "{}: already exists (--force replaces it)", output.display());
        (config, Some((from, output)))
    } else {
        (one_sft_stage(&text, &origin)?, None)
    };
    let opts = RunOptions { resume: args.resume, force: args.force, progress: true, ..Default::default() };
    crate::cli::train::run_and_report(&cfg, &opts)?;
    if let Some((from, output)) = result {
        move_result(&cfg.out_dir.join(from), &output)?;
        eprintln!("wrote {} (the run's checkpoints and logs: {})", output.display(), cfg.out_dir.display());
    }
    Ok(())
}

/// A `srlm train` config run as `srlm sft`: its stages must be the sft stage alone.
fn one_sft_stage(text: &str, origin: &str) -> Result<TrainConfig> {
    let cfg = TrainConfig::from_toml_or_stages(text, origin, &[Stage::Sft])?;
    if cfg.stages != [Stage::Sft] {
        bail!("{origin}: stages = {:?}: `srlm sft` runs one sft stage; run several with `srlm train --config`", cfg.stages);
    }
    Ok(cfg)
}

/// Puts the stage's export where the recipe's `output` says, replacing what `--force` allowed.
fn move_result(from: &Path, to: &Path) -> Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to).with_context(|| format!("replacing {}", to.display()))?;
    }
    if let Some(parent) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::rename(from, to).with_context(|| format!("moving {} to {}", from.display(), to.display()))
}
