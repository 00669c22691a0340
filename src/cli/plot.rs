//! `srlm plot DIR…`: PNG charts of training runs and evaluation reports, and each training
//! stage's reward trend (first and last steps; the loss's for SFT and KD stages) on stdout.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use srlm::plot::plot_dirs;
use srlm::plot::trend::stage_trends;

#[derive(Args)]
pub struct PlotArgs {
    /// `srlm train` output directories (steps-stage-N.json: one chart per stage and metric) and
    /// `srlm eval` output directories (report.json: one bar chart of them all, in this order).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Where the PNG files go; default `plots/` inside the first directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Steps averaged at each end of a stage for the printed reward trend.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    window: u64,
}

pub fn run(args: PlotArgs) -> Result<()> {
    let out = args.out.unwrap_or_else(|| args.dirs[0].join("plots"));
    let plotted = plot_dirs(&args.dirs, &out)?;
    for path in &plotted.files {
        println!("{}", path.display());
    }
    eprintln!("{} charts in {}", plotted.files.len(), out.display());
    for (dir, stage, steps) in &plotted.stages {
        let (what, trends) = stage_trends(steps, args.window as usize);
        print_trends(&format!("{} {stage}", dir.display()), what, &trends);
    }
    Ok(())
}

fn print_trends(stage: &str, what: &str, trends: &[srlm::plot::trend::Trend]) {
    let Some(t) = trends.first() else { return };
    let overlap = if t.steps < 2 * t.window { " (the two overlap)" } else { "" };
    println!("{stage}: mean {what} over the first and the last {} of {} steps{overlap}", t.window, t.steps);
    for t in trends {
        println!("  {:<28} {:>8.3} -> {:>8.3}  {:+.3}", t.name, t.first, t.last, t.change());
    }
}
