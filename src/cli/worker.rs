//! `srlm worker`: generators or scorers for a learner node on another machine. The worker needs
//! the model files and the address; the recipe and every policy version come from the learner.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use srlm::generate::policy_sampler::PolicySampler;
use srlm::rewarder::GoldRewarder;
use srlm::train::cluster::{cookie, decoder};
use srlm::train::config::TrainConfig;
use srlm_actors::cluster::{connect, run_generator, run_scorer, ClientTls, Connection, RemoteGeneratorConfig, WorkerEnd, WorkerRole};

#[derive(Args)]
pub struct WorkerArgs {
    /// The learner node's `srlm train --listen` address.
    #[arg(long, default_value = super::train::DEFAULT_LISTEN)]
    connect: SocketAddr,
    #[arg(long, value_enum)]
    role: Role,
    /// Device this worker samples on (overrides the recipe's `[model] device`).
    #[arg(long)]
    device: Option<String>,
    /// The cluster's shared secret, the same file as the learner node's; required unless the
    /// address is loopback.
    #[arg(long)]
    cookie_file: Option<PathBuf>,
    /// Seconds to keep trying to reach the learner node, which opens its port only when its
    /// GRPO stage starts.
    #[arg(long, default_value_t = 600)]
    patience: u64,
    /// Connect over TLS, trusting the learner node's certificate if this PEM file (a CA, or
    /// the learner's own self-signed certificate) vouches for it.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// The name the learner's certificate must carry (default: the IP address of --connect).
    #[arg(long, requires = "tls_ca")]
    tls_name: Option<String>,
    /// Fault injection for tests: exit abruptly, holding prompts, after sending this many groups.
    #[arg(long, hide = true)]
    exit_after_groups: Option<u64>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Role {
    Generator,
    Scorer,
}

pub fn run(a: WorkerArgs) -> Result<()> {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // As in `srlm train`: the sampler owns its thread; candle's pool would oversubscribe.
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    let cookie = cookie(a.connect, a.cookie_file.as_deref())?;
    let role = match a.role {
        Role::Generator => WorkerRole::Generator,
        Role::Scorer => WorkerRole::Scorer,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        let tls = a.tls_ca.map(|ca| ClientTls { ca, server_name: a.tls_name.unwrap_or_else(|| a.connect.ip().to_string()) });
        let conn = Arc::new(connect(a.connect, cookie, role, Duration::from_secs(a.patience), tls.as_ref()).await?);
        eprintln!("worker {}: joined the learner node at {} as a {role:?}", conn.worker, a.connect);
        let mut cfg = TrainConfig::from_toml(&conn.recipe, "<recipe from the learner node>")?;
        if let Some(device) = a.device {
            cfg.model.device = device;
        }
        // The tiny model writes its tokenizer under out_dir: keep it off the learner's folder.
        let scratch = tempfile::tempdir()?;
        cfg.out_dir = scratch.path().to_path_buf();
        let end = serve(&conn, role, &cfg, a.exit_after_groups).await;
        conn.close().await;
        let end = end?;
        eprintln!("worker {}: the run is over ({} groups, {} policy versions)", conn.worker, end.groups, end.versions_adopted);
        Ok(())
    })
}

/// Runs the generator or scorer loop until the learner node says the run is over.
async fn serve(conn: &Arc<Connection>, role: WorkerRole, cfg: &TrainConfig, exit_after_groups: Option<u64>) -> Result<WorkerEnd> {
    Ok(match role {
        WorkerRole::Generator => {
            let (model, tokenizer, device, generation) = srlm::train::stages::sampler_parts(cfg)?;
            let sampler = PolicySampler::new(model, tokenizer, generation);
            let r = &cfg.runtime;
            let gen_cfg = RemoteGeneratorConfig {
                group_size: r.pipeline.group_size,
                groups_in_flight: r.pipeline.groups_in_flight,
                exit_after_groups,
            };
            run_generator(Arc::clone(conn), sampler, decoder(device), gen_cfg).await?
        }
        WorkerRole::Scorer => run_scorer(Arc::clone(conn), GoldRewarder::for_recipe(cfg).context("the recipe's [rewards]")?).await?,
    })
}
