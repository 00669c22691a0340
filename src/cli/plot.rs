//! `srlm plot DIR…`: PNG charts of training runs and evaluation reports.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use srlm::plot::plot_dirs;

#[derive(Args)]
pub struct PlotArgs {
    /// `srlm train` output directories (steps-stage-N.json: one chart per stage and metric) and
    /// `srlm eval` output directories (report.json: one bar chart of them all, in this order).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Where the PNG files go; default `plots/` inside the first directory.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: PlotArgs) -> Result<()> {
    let out = args.out.unwrap_or_else(|| args.dirs[0].join("plots"));
    let written = plot_dirs(&args.dirs, &out)?;
    for path in &written {
        println!("{}", path.display());
    }
    eprintln!("{} charts in {}", written.len(), out.display());
    Ok(())
}
