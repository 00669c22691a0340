//! `srlm export`: write an HF directory.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use srlm::model::export::export_hf;
use srlm::model::load::parse_dtype;

use super::ModelArgs;

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Destination directory (must not exist unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Precision of the written weights: f32, bf16 or f16.
    #[arg(long = "out-dtype", default_value = "f32")]
    out_dtype: String,
    /// Replace an existing destination.
    #[arg(long)]
    force: bool,
}

pub fn run(args: ExportArgs) -> Result<()> {
    let dtype = parse_dtype(&args.out_dtype).map_err(anyhow::Error::msg)?;
    let model = args.model.load()?;
    export_hf(&model, &args.out, dtype, args.force)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
