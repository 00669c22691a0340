//! Remote scorer: a worker node's loop. Borrows sampled groups from the hub's rollout queue,
//! scores them with the same `ScorerCore` a local scorer runs, and sends them back.

use std::sync::Arc;

use crate::cluster::node::Connection;
use crate::cluster::remote_generator::WorkerEnd;
use crate::cluster::wire::{Reply, Report, Request};
use crate::cluster::ClusterError;
use crate::scorer::ScorerCore;
use crate::traits::Rewarder;
use crate::worker::Worker;

pub async fn run_scorer<R: Rewarder>(conn: Arc<Connection>, rewarder: R) -> Result<WorkerEnd, ClusterError> {
    let name = format!("srlm-remote-scorer-{}", conn.worker);
    let core =
        Worker::spawn(&name, None, ScorerCore::new(conn.worker as usize, rewarder)).map_err(|e| ClusterError::Worker(e.to_string()))?;
    let mut end = WorkerEnd { groups: 0, versions_adopted: 0 };
    loop {
        let group = match conn.ask(&Request::Rollout { worker: conn.worker }).await? {
            Reply::Rollout(Some(g)) => g,
            Reply::Rollout(None) => continue,
            Reply::Finished => return Ok(end),
            other => return Err(ClusterError::Protocol(format!("asked for a rollout, got {other:?}"))),
        };
        let scored = core.call(move |c| c.score(group).map_err(|e| e.to_string())).await;
        let scored = match scored.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(s) => s,
            Err(reason) => {
                conn.tell(&Report::Failed { worker: conn.worker, reason: reason.clone() })?;
                return Err(ClusterError::Worker(reason));
            }
        };
        end.groups += 1;
        conn.tell(&Report::GroupScored { worker: conn.worker, group: scored })?;
    }
}
