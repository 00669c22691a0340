//! Remote generator: a worker node's loop. Borrows prompts from the hub, samples their groups
//! with the newest policy, and sends them back. A newer version announced by the hub is
//! downloaded in the background (while the group in hand is sampled and reported) and swapped in
//! at a group boundary, before the prompts lent under it are sampled.

use std::sync::Arc;
use std::time::Instant;

use crate::cluster::node::Connection;
use crate::cluster::weights::{Assembly, DecodeWeights};
use crate::cluster::wire::{Reply, Report, Request};
use crate::cluster::ClusterError;
use crate::messages::{Policy, PolicyVersion, RolloutGroup, Timings};
use crate::traits::Sampler;
use crate::worker::Worker;

pub struct RemoteGeneratorConfig {
    pub group_size: usize,
    /// Prompts asked for (and sampled together) at a time.
    pub groups_in_flight: usize,
    /// Fault injection for tests: exit the process abruptly, holding prompts, once this many
    /// groups were sent (as a crashed machine would).
    pub exit_after_groups: Option<u64>,
}

/// How a worker's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerEnd {
    pub groups: u64,
    pub versions_adopted: u64,
}

/// A downloaded version and what its transfer cost.
pub struct Download<W> {
    pub policy: Policy<W>,
    pub bytes: u64,
    /// Request of the first chunk to the last one's arrival (the hub's encoding included).
    pub seconds: f64,
}

pub async fn run_generator<S: Sampler>(
    conn: Arc<Connection>,
    sampler: S,
    decode: DecodeWeights<S::Weights>,
    cfg: RemoteGeneratorConfig,
) -> Result<WorkerEnd, ClusterError> {
    let mut end = WorkerEnd { groups: 0, versions_adopted: 0 };
    let mut policy = adopt(&conn, download(&conn, conn.version, &decode).await?, &mut end)?;
    let sampler =
        Worker::spawn(&format!("srlm-remote-generator-{}", conn.worker), None, sampler).map_err(|e| ClusterError::Worker(e.to_string()))?;
    let mut next: Option<tokio::task::JoinHandle<Result<Download<S::Weights>, ClusterError>>> = None;
    'group: loop {
        // The group boundary: a finished download replaces the policy; a failed one is retried
        // at the version the hub names next.
        if next.as_ref().is_some_and(|t| t.is_finished()) {
            let finished = next.take().expect("checked").await.map_err(|e| ClusterError::Worker(e.to_string()))?;
            match finished {
                Ok(d) => policy = adopt(&conn, d, &mut end)?,
                Err(e) => tracing::warn!(%e, "weights download failed; retrying with the newest version"),
            }
        }
        let (prompts, newest) = match conn.ask(&Request::Prompts { worker: conn.worker, max: cfg.groups_in_flight }).await? {
            Reply::Prompts { prompts, version } => (prompts, version),
            Reply::Finished => return Ok(end),
            other => return Err(ClusterError::Protocol(format!("asked for prompts, got {other:?}"))),
        };
        if newest > policy.version && next.is_none() {
            let (conn, decode) = (Arc::clone(&conn), Arc::clone(&decode));
            next = Some(tokio::spawn(async move { download(&conn, newest, &decode).await }));
        }
        if prompts.is_empty() {
            continue;
        }
        // The staleness gate lent these prompts assuming the newest weights, as a local
        // generator has; sampled with older ones they could be dropped as stale when trained.
        while newest > policy.version {
            let download = next.take().unwrap_or_else(|| {
                let (conn, decode) = (Arc::clone(&conn), Arc::clone(&decode));
                tokio::spawn(async move { download(&conn, newest, &decode).await })
            });
            match download.await.map_err(|e| ClusterError::Worker(e.to_string()))? {
                Ok(d) => policy = adopt(&conn, d, &mut end)?,
                Err(e) => {
                    // Give the prompts back rather than sample them with stale weights.
                    tracing::warn!(%e, "weights download failed; returning the prompts and retrying");
                    conn.tell(&Report::Failed { worker: conn.worker, reason: e.to_string() })?;
                    continue 'group;
                }
            }
        }
        let (p, group_size) = (policy.clone(), cfg.group_size);
        let ids = prompts.clone();
        let started = Instant::now();
        let sampled = sampler.call(move |s| s.sample_groups(&ids, &p, group_size).map_err(|e| e.to_string())).await;
        let sampled = match sampled.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(s) => s,
            Err(reason) => {
                conn.tell(&Report::Failed { worker: conn.worker, reason: reason.clone() })?;
                return Err(ClusterError::Worker(reason));
            }
        };
        let share = started.elapsed() / prompts.len().max(1) as u32;
        let groups: Vec<RolloutGroup> = prompts
            .into_iter()
            .zip(sampled)
            .map(|(prompt, s)| RolloutGroup {
                prompt,
                prompt_token_ids: s.prompt_token_ids,
                completions: s.completions,
                policy_version: policy.version,
                generator: conn.worker as usize,
                timings: Timings { sampling: share },
            })
            .collect();
        if cfg.exit_after_groups.is_some_and(|n| end.groups >= n) {
            eprintln!("worker {}: exiting abruptly holding {} prompt(s) (--exit-after-groups)", conn.worker, groups.len());
            std::process::exit(3);
        }
        end.groups += groups.len() as u64;
        conn.tell(&Report::GroupsGenerated { worker: conn.worker, groups })?;
    }
}

/// Swaps in a downloaded version and tells the hub what its transfer cost.
fn adopt<W>(conn: &Connection, d: Download<W>, end: &mut WorkerEnd) -> Result<Policy<W>, ClusterError> {
    end.versions_adopted += 1;
    conn.tell(&Report::WeightsAdopted { worker: conn.worker, version: d.policy.version, bytes: d.bytes, seconds: d.seconds })?;
    Ok(d.policy)
}

/// Downloads `version` chunk by chunk and decodes it off the async workers.
pub async fn download<W: Send + Sync + 'static>(
    conn: &Connection,
    version: PolicyVersion,
    decode: &DecodeWeights<W>,
) -> Result<Download<W>, ClusterError> {
    let started = Instant::now();
    let mut assembly = Assembly::new(version);
    let blob = loop {
        let request = Request::WeightChunk { worker: conn.worker, version, index: assembly.next_index() };
        let chunk = match conn.ask(&request).await? {
            Reply::Chunk(c) => c,
            Reply::Refused(reason) => return Err(ClusterError::RequestRefused(reason)),
            Reply::Finished => return Err(ClusterError::Finished),
            other => return Err(ClusterError::Protocol(format!("asked for a weight chunk, got {other:?}"))),
        };
        if let Some(blob) = assembly.add(chunk).map_err(|e| ClusterError::Protocol(e.to_string()))? {
            break blob;
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let bytes = blob.len() as u64;
    let decode = Arc::clone(decode);
    let weights = tokio::task::spawn_blocking(move || decode(&blob))
        .await
        .map_err(|e| ClusterError::Worker(e.to_string()))?
        .map_err(|e| ClusterError::Protocol(format!("weights of version {version} do not decode: {e}")))?;
    Ok(Download { policy: Policy { version, weights: Arc::new(weights) }, bytes, seconds })
}
