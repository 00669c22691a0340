//! `srlm train`: the stage pipeline (SFT, KD, GRPO) on the actor runtime; with no `--config`,
//! the embedded default (a tiny model learning arithmetic on CPU in a few minutes).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use srlm::train::cluster::{cookie, Listen};
use srlm::train::config::{TrainConfig, EMBEDDED_DEFAULT};
use srlm::train::heldout::HeldoutScore;
use srlm::train::resume::with_resume_command;
use srlm::train::stages::{run_training, RunOptions};
use srlm_actors::cluster::ServerTls;

use super::recipe_edit::apply_assignments;

#[derive(Args)]
pub struct TrainArgs {
    /// A TOML recipe (see configs/); the embedded default when absent.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Continue from a checkpoint (`checkpoints-stage-N/checkpoint-M`: that stage goes on) or
    /// a finished stage (`stage-N-…`: the next stage starts); earlier stages are skipped.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// When `--out` holds another run's outputs, delete them and start over (without it, the
    /// run is refused).
    #[arg(long)]
    force: bool,
    /// Step every actor on one thread in a fixed order: identical runs for one seed.
    #[arg(long)]
    deterministic: bool,
    /// Change one key of the recipe, e.g. `--set grpo.lr=5e-5` or `--set grpo.lora.r=8`
    /// (repeatable; VALUE is a TOML value, a bare word a string). Checked like the file's own keys.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Override `out_dir` of the config.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Override `[model] device` (the learner's device; `cuda:N` needs a `--features cuda` build).
    #[arg(long)]
    device: Option<String>,
    /// Override the number of GRPO steps.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    grpo_steps: Option<u64>,
    /// Print the embedded default configuration and exit.
    #[arg(long)]
    print_default: bool,
    /// Run the learner node and accept `srlm worker` generators and scorers from other
    /// machines during the GRPO stage (address defaults to loopback).
    #[arg(long, num_args = 0..=1, default_missing_value = DEFAULT_LISTEN)]
    listen: Option<std::net::SocketAddr>,
    /// A file holding the cluster's shared secret (the same file on every node); required
    /// unless --listen is a loopback address.
    #[arg(long, requires = "listen")]
    cookie_file: Option<PathBuf>,
    /// With --listen: generators kept on this node (default: `[runtime] generators`; 0 leaves
    /// sampling to workers).
    #[arg(long, requires = "listen")]
    local_generators: Option<usize>,
    /// With --listen: scorers kept on this node (default: `[runtime] scorers`).
    #[arg(long, requires = "listen")]
    local_scorers: Option<usize>,
    /// With --listen: accept workers over TLS, presenting this PEM certificate chain (workers
    /// then need --tls-ca).
    #[arg(long, requires_all = ["listen", "tls_key"])]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// Where `--listen` and `srlm worker --connect` meet when no address is given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";

pub fn run(a: TrainArgs) -> Result<()> {
    if a.print_default {
        print!("{EMBEDDED_DEFAULT}");
        return Ok(());
    }
    let mut cfg = load_recipe(a.config.as_deref(), &a.sets)?;
    if let Some(out) = a.out {
        cfg.out_dir = out;
    }
    if let Some(device) = a.device {
        cfg.model.device = device;
    }
    if let Some(steps) = a.grpo_steps {
        cfg.grpo.steps = steps;
    }
    let listen = match a.listen {
        Some(addr) if a.deterministic => anyhow::bail!("--listen {addr}: remote workers cannot join a --deterministic run"),
        Some(addr) => Some(Listen {
            addr,
            cookie: cookie(addr, a.cookie_file.as_deref())?,
            local_generators: a.local_generators.unwrap_or(cfg.runtime.pipeline.generators),
            local_scorers: a.local_scorers.unwrap_or(cfg.runtime.pipeline.scorers),
            tls: a.tls_cert.zip(a.tls_key).map(|(cert_chain, key)| ServerTls { cert_chain, key }),
        }),
        None => None,
    };
    let opts = RunOptions {
        deterministic: a.deterministic,
        resume: a.resume,
        force: a.force,
        progress: true,
        shutdown: Default::default(),
        listen,
    };
    run_and_report(&cfg, &opts)
}

/// The recipe at `path` (the embedded default when `None`) with the `--set` edits applied.
fn load_recipe(path: Option<&Path>, sets: &[String]) -> Result<TrainConfig> {
    const EMBEDDED: &str = "<embedded default>";
    if sets.is_empty() {
        return Ok(match path {
            Some(p) => TrainConfig::from_file(p)?,
            None => TrainConfig::from_toml(EMBEDDED_DEFAULT, EMBEDDED)?,
        });
    }
    let (text, origin) = match path {
        Some(p) => (std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?, p.display().to_string()),
        None => (EMBEDDED_DEFAULT.to_string(), EMBEDDED.to_string()),
    };
    let edited = apply_assignments(&text, &origin, sets)?;
    // Errors quote the edited text, so the origin names the edits too.
    Ok(TrainConfig::from_toml(&edited, &format!("{origin} with --set {}", sets.join(" --set ")))?)
}

/// Runs the stages of `cfg` and prints each one's held-out accuracy before and after.
pub fn run_and_report(cfg: &TrainConfig, opts: &RunOptions) -> Result<()> {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // Every actor runs on its own thread; candle's spin-waiting pool per op would
        // oversubscribe the cores.
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    // From the first stage on: a stop at any step boundary checkpoints and names the resume command.
    srlm_actors::on_signals_in_background(opts.shutdown.clone())?;
    let args: Vec<String> = std::env::args().collect();
    let reports = run_training(cfg, opts).map_err(|e| with_resume_command(e, &args))?;
    let percent = |s: &Option<HeldoutScore>| s.as_ref().map_or("-".to_string(), |s| format!("{:.1}%", 100.0 * s.accuracy));
    println!("{:<6} {:>10} {:>10} {:>8} {:>8}", "stage", "before", "after", "steps", "seconds");
    for r in &reports {
        println!(
            "{:<6} {:>10} {:>10} {:>8} {:>8.1}",
            format!("{:?}", r.stage).to_lowercase(),
            percent(&r.before),
            percent(&r.after),
            r.steps,
            r.seconds
        );
    }
    println!("weights of each stage: {}/stage-*", cfg.out_dir.display());
    Ok(())
}
