//! Where a resumed `srlm train` continues: inside a stage (one of its checkpoints) or after a
//! finished stage (its `stage-N-…` export). Both carry a stage stamp (run, stage, recipe), so
//! a resume with a changed recipe or a damaged checkpoint is refused before any work.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::checkpoint::{self, ExtraFile, MANIFEST};
use crate::train::config::TrainConfig;
use crate::train::recipe::{Recipe, MAY_CHANGE_ON_RESUME};

/// The stamp's file name, in checkpoints and in stage exports.
pub const STAGE_STAMP: &str = "srlm_stage.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageStamp {
    pub run_id: String,
    /// Index into the recipe's `stages`.
    pub stage: usize,
    pub recipe_hash: String,
    pub recipe: Value,
}

impl StageStamp {
    pub fn new(run_id: &str, stage: usize, recipe: &Recipe) -> Self {
        StageStamp { run_id: run_id.into(), stage, recipe_hash: recipe.hash(), recipe: recipe.to_json() }
    }

    /// The stamp as a checkpoint's extra file (written and verified with the checkpoint).
    pub fn extra_file(&self) -> ExtraFile {
        ExtraFile::Json { name: STAGE_STAMP.into(), value: serde_json::to_value(self).expect("serializable") }
    }

    /// Writes the stamp into a finished stage's export folder.
    pub fn write_into(&self, dir: &Path) -> Result<()> {
        let path = dir.join(STAGE_STAMP);
        crate::atomic_file::write_atomic(&path, serde_json::to_string_pretty(self)?.as_bytes())
            .with_context(|| format!("writing {}", path.display()))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ResumeAt {
    /// Stage `stage` continues from the checkpoint `dir`.
    Inside { stage: usize, dir: PathBuf },
    /// Stage `stage` finished with the weights in `dir`; the run continues with the next one.
    After { stage: usize, dir: PathBuf },
}

#[derive(Debug, Clone)]
pub struct ResumePoint {
    pub at: ResumeAt,
    /// Empty for checkpoints written before runs had ids.
    pub run_id: String,
}

impl ResumePoint {
    /// Checks `dir` before any work: it exists, a checkpoint is undamaged, and the recipe is the
    /// one it was saved with (up to [`MAY_CHANGE_ON_RESUME`]).
    pub fn open(dir: &Path, cfg: &TrainConfig, recipe: &Recipe) -> Result<ResumePoint> {
        if !dir.exists() {
            bail!(
                "--resume {}: no such folder (give a checkpoint-N folder under checkpoints-stage-*, or a finished stage-* folder)",
                dir.display()
            );
        }
        let is_checkpoint = dir.join(MANIFEST).is_file();
        if is_checkpoint {
            checkpoint::verify(dir).with_context(|| format!("--resume {}", dir.display()))?;
        }
        let stamp_path = dir.join(STAGE_STAMP);
        let point = if stamp_path.is_file() {
            let text = std::fs::read_to_string(&stamp_path).with_context(|| format!("reading {}", stamp_path.display()))?;
            let stamp: StageStamp = serde_json::from_str(&text).with_context(|| format!("{}: not a stage stamp", stamp_path.display()))?;
            check_recipe(dir, &stamp, recipe)?;
            let at = if is_checkpoint {
                ResumeAt::Inside { stage: stamp.stage, dir: dir.into() }
            } else {
                ResumeAt::After { stage: stamp.stage, dir: dir.into() }
            };
            ResumePoint { at, run_id: stamp.run_id }
        } else if is_checkpoint {
            legacy_grpo_checkpoint(dir, cfg)?
        } else {
            bail!("--resume {}: neither a checkpoint (no {MANIFEST}) nor a finished stage of srlm train (no {STAGE_STAMP})", dir.display());
        };
        let stage = match point.at {
            ResumeAt::Inside { stage, .. } | ResumeAt::After { stage, .. } => stage,
        };
        if stage >= cfg.stages.len() {
            bail!("--resume {}: saved in stage {stage}, and the recipe has {} stages", dir.display(), cfg.stages.len());
        }
        Ok(point)
    }

    /// The first stage to run and whether it continues from a checkpoint.
    pub fn first_stage(&self) -> usize {
        match self.at {
            ResumeAt::Inside { stage, .. } => stage,
            ResumeAt::After { stage, .. } => stage + 1,
        }
    }

    pub fn dir(&self) -> &Path {
        match &self.at {
            ResumeAt::Inside { dir, .. } | ResumeAt::After { dir, .. } => dir,
        }
    }

    /// The checkpoint stage `index` continues from, if this point is inside it.
    pub fn checkpoint_for(&self, index: usize) -> Option<&Path> {
        match &self.at {
            ResumeAt::Inside { stage, dir } if *stage == index => Some(dir),
            _ => None,
        }
    }
}

fn check_recipe(dir: &Path, stamp: &StageStamp, recipe: &Recipe) -> Result<()> {
    let saved = Recipe::from_json(&stamp.recipe).with_context(|| format!("{}: unreadable recipe", dir.join(STAGE_STAMP).display()))?;
    let changes = recipe.changes_since(&saved);
    if !changes.is_empty() {
        bail!(
            "--resume {}: the recipe changed since it was saved:\n  {}\nonly {} may change on resume; restore the others, or start a new run with another --out",
            dir.display(),
            changes.join("\n  "),
            MAY_CHANGE_ON_RESUME.join(", ")
        );
    }
    Ok(())
}

/// A GRPO checkpoint from before stage stamps: its stage is the recipe's GRPO stage, and its
/// recipe cannot be checked.
fn legacy_grpo_checkpoint(dir: &Path, cfg: &TrainConfig) -> Result<ResumePoint> {
    let stage = cfg.stages.iter().position(|s| *s == crate::train::config::Stage::Grpo).context(
        "--resume: this checkpoint has no stage stamp (an older srlm), so it can only continue a GRPO stage, and the recipe has none",
    )?;
    tracing::warn!("{}: no {STAGE_STAMP} (written by an older srlm): the recipe cannot be checked", dir.display());
    Ok(ResumePoint { at: ResumeAt::Inside { stage, dir: dir.into() }, run_id: String::new() })
}
