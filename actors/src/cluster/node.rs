//! Node: the ractor_cluster side of both ends. The learner node listens (cookie-authenticated)
//! and puts the hub in a process group; a worker node connects, waits until its session is
//! authenticated and synced, finds the hub in that group and joins the run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorRef};
use ractor_cluster::node::NodeServerSessionInformation;
use ractor_cluster::{IncomingEncryptionMode, NodeEventSubscription, NodeServer, NodeServerMessage};

use crate::cluster::hub::{Hub, HubArgs};
use crate::cluster::registry::Registry;
use crate::cluster::tls::{ClientTls, ServerTls};
use crate::cluster::weights::{EncodeWeights, DEFAULT_CHUNK_BYTES};
use crate::cluster::wire::{decode, encode, HubMsg, Reply, Request, WorkerRole, HUB_GROUP, MAX_FRAME_BYTES};
use crate::cluster::ClusterError;
use crate::context::Context;
use crate::messages::PolicyVersion;

/// How the learner node accepts workers.
pub struct ListenOptions<W> {
    pub addr: SocketAddr,
    /// Shared secret of ractor_cluster's handshake; a worker with another one is refused.
    pub cookie: String,
    /// The run's recipe, sent to every worker that joins.
    pub recipe: String,
    pub encode: EncodeWeights<W>,
    /// Weight chunk size; kept below the frame limit.
    pub chunk_bytes: usize,
    /// Sessions over TLS with this certificate; plain TCP without.
    pub tls: Option<ServerTls>,
}

impl<W> ListenOptions<W> {
    pub fn new(addr: SocketAddr, cookie: String, recipe: String, encode: EncodeWeights<W>) -> Self {
        Self { addr, cookie, recipe, encode, chunk_bytes: DEFAULT_CHUNK_BYTES, tls: None }
    }
}

/// A listening learner node; [`Listening::close`] ends it.
pub struct Listening {
    server: ActorRef<NodeServerMessage>,
    hub: ActorRef<HubMsg>,
    registry: Arc<Registry>,
}

const LEARNER_NODE: &str = "srlm-learner";
/// Time for replies already sent to leave through their TCP session before it is closed.
const REPLIES_IN_FLIGHT: Duration = Duration::from_millis(300);

pub async fn listen<W: Send + Sync + 'static>(ctx: Arc<Context<W>>, opts: ListenOptions<W>) -> Result<Listening, ClusterError> {
    let addr = opts.addr;
    let encryption = match &opts.tls {
        Some(tls) => Some(IncomingEncryptionMode::Tls(tls.acceptor().map_err(|e| ClusterError::Listen { addr, reason: e.to_string() })?)),
        None => None,
    };
    let server =
        NodeServer::new(addr.port(), opts.cookie, LEARNER_NODE.into(), addr.ip().to_string(), encryption, None).with_listen_addr(addr.ip());
    let (server, _) = Actor::spawn(None, server, ()).await.map_err(|e| ClusterError::Listen { addr, reason: e.to_string() })?;
    let registry = Arc::new(Registry::default());
    let chunk_bytes = opts.chunk_bytes.clamp(1, (MAX_FRAME_BYTES / 2) as usize);
    let args = HubArgs { ctx, registry: Arc::clone(&registry), recipe: opts.recipe, encode: opts.encode, chunk_bytes };
    let (hub, _) = Actor::spawn(None, Hub::<W>::default(), args).await.map_err(|e| ClusterError::Listen { addr, reason: e.to_string() })?;
    ractor::pg::join(HUB_GROUP.to_string(), vec![hub.get_cell()]);
    let subscription = Box::new(SessionsToHub(hub.clone()));
    server
        .cast(NodeServerMessage::SubscribeToEvents { id: "srlm-hub".into(), subscription })
        .map_err(|e| ClusterError::Listen { addr, reason: e.to_string() })?;
    tracing::info!(%addr, tls = opts.tls.is_some(), "learner node listening for workers");
    Ok(Listening { server, hub, registry })
}

impl Listening {
    /// After the run: gives live workers up to `grace` to hear that it is over, then closes.
    pub async fn close(self, grace: Duration) {
        let until = Instant::now() + grace;
        while !self.registry.all_told() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The last replies are still on their way through the node sessions.
        tokio::time::sleep(REPLIES_IN_FLIGHT).await;
        self.hub.stop(None);
        let _ = self.server.stop_and_wait(None, Some(Duration::from_secs(2))).await;
    }
}

/// Tells the hub when a worker's node session closes.
struct SessionsToHub(ActorRef<HubMsg>);

impl NodeEventSubscription for SessionsToHub {
    fn node_session_opened(&self, ses: NodeServerSessionInformation) {
        tracing::debug!(peer = %ses.peer_addr, "node session opened");
    }

    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        match ses.peer_name {
            Some(name) => drop(self.0.cast(HubMsg::NodeLeft(name.name))),
            // It never authenticated (a wrong cookie, say), so it never held anything.
            None => tracing::warn!(peer = %ses.peer_addr, "a node left before authenticating"),
        }
    }

    fn node_session_authenticated(&self, ses: NodeServerSessionInformation) {
        tracing::info!(peer = %ses.peer_addr, "node authenticated");
    }
}

/// A worker's link to the learner node.
pub struct Connection {
    pub worker: u64,
    pub recipe: String,
    /// The policy version published when the worker joined: its first download.
    pub version: PolicyVersion,
    hub: ActorRef<HubMsg>,
    server: ActorRef<NodeServerMessage>,
}

/// How long one request may wait for its reply: above the hub's own wait for work and the
/// time to encode a large model's weights once.
const ASK_TIMEOUT: Duration = Duration::from_secs(120);

impl Connection {
    pub async fn ask(&self, request: &Request) -> Result<Reply, ClusterError> {
        let frame = encode(request).map_err(|e| ClusterError::Protocol(e.to_string()))?;
        let bytes =
            ractor::call_t!(self.hub, HubMsg::Ask, ASK_TIMEOUT.as_millis() as u64, frame).map_err(|e| ClusterError::Lost(e.to_string()))?;
        decode(&bytes).map_err(|e| ClusterError::Protocol(e.to_string()))
    }

    pub fn tell(&self, report: &crate::cluster::wire::Report) -> Result<(), ClusterError> {
        let frame = encode(report).map_err(|e| ClusterError::Protocol(e.to_string()))?;
        self.hub.cast(HubMsg::Tell(frame)).map_err(|e| ClusterError::Lost(e.to_string()))
    }

    /// Closes this node's session; before the runtime ends, or its listener respawns in a loop.
    pub async fn close(&self) {
        let _ = self.server.stop_and_wait(None, Some(Duration::from_secs(2))).await;
    }
}

/// Session progress seen by a worker's node server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Session {
    Pending,
    Ready,
    Closed { authenticated: bool },
}

struct SessionWatch(tokio::sync::watch::Sender<Session>, std::sync::atomic::AtomicBool);

impl NodeEventSubscription for SessionWatch {
    fn node_session_opened(&self, _: NodeServerSessionInformation) {}

    fn node_session_disconnected(&self, _: NodeServerSessionInformation) {
        let authenticated = self.1.load(std::sync::atomic::Ordering::SeqCst);
        self.0.send_replace(Session::Closed { authenticated });
    }

    fn node_session_authenticated(&self, _: NodeServerSessionInformation) {
        self.1.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn node_session_ready(&self, _: NodeServerSessionInformation) {
        self.0.send_replace(Session::Ready);
    }
}

/// Connects to the learner node at `addr` (retrying until `patience` runs out, since the learner
/// opens its port only when its GRPO stage starts) and joins the run as `role`; over TLS when
/// `tls` names what to trust.
pub async fn connect(
    addr: SocketAddr,
    cookie: String,
    role: WorkerRole,
    patience: Duration,
    tls: Option<&ClientTls>,
) -> Result<Connection, ClusterError> {
    let tls = match tls {
        Some(t) => Some(t.connector().map_err(|e| ClusterError::Connect { addr, reason: e.to_string() })?),
        None => None,
    };
    let host = hostname();
    let node = format!("srlm-{}-{}", format!("{role:?}").to_lowercase(), std::process::id());
    // A worker accepts no connections, but a node server always listens: loopback, any port.
    let server = NodeServer::new(0, cookie, node.clone(), host.clone(), None, None).with_listen_addr([127, 0, 0, 1].into());
    let (server, _) = Actor::spawn(None, server, ()).await.map_err(|e| ClusterError::Connect { addr, reason: e.to_string() })?;
    let (tx, mut session) = tokio::sync::watch::channel(Session::Pending);
    let watch = Box::new(SessionWatch(tx, false.into()));
    server
        .cast(NodeServerMessage::SubscribeToEvents { id: "srlm-worker".into(), subscription: watch })
        .map_err(|e| ClusterError::Connect { addr, reason: e.to_string() })?;
    let deadline = Instant::now() + patience;
    loop {
        let opened = match &tls {
            Some((connector, name)) => ractor_cluster::client_connect_enc(&server, addr, connector.clone(), name.clone()).await,
            None => ractor_cluster::client_connect(&server, addr).await,
        };
        match opened {
            Ok(()) => break,
            // The learner is there but the handshake failed: waiting will not change that.
            Err(ractor_cluster::ClientConnectErr::Encryption(e)) => return Err(ClusterError::Tls { addr, reason: e.to_string() }),
            Err(e) if Instant::now() >= deadline => return Err(ClusterError::Connect { addr, reason: e.to_string() }),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(10));
    let settled = tokio::time::timeout(left, session.wait_for(|s| *s != Session::Pending)).await;
    match settled.map(|r| r.map(|s| *s)) {
        Ok(Ok(Session::Ready)) => {}
        Ok(Ok(Session::Closed { authenticated: false })) if tls.is_some() => return Err(ClusterError::RefusedTls { addr }),
        Ok(Ok(Session::Closed { authenticated: false })) => return Err(ClusterError::Refused { addr }),
        _ => return Err(ClusterError::Connect { addr, reason: "the session never became ready".into() }),
    }
    let hub = find_hub(addr, deadline).await?;
    let conn = Connection { worker: 0, recipe: String::new(), version: 0, hub, server };
    match conn.ask(&Request::Join { node: format!("{node}@{host}"), role }).await? {
        Reply::Joined { worker, recipe, version } => Ok(Connection { worker, recipe, version, ..conn }),
        other => Err(ClusterError::Protocol(format!("join answered {other:?}"))),
    }
}

/// The hub shows up in its process group once the session's state exchange is done.
async fn find_hub(addr: SocketAddr, deadline: Instant) -> Result<ActorRef<HubMsg>, ClusterError> {
    let deadline = deadline.max(Instant::now() + Duration::from_secs(5));
    loop {
        let members = ractor::pg::get_members(&HUB_GROUP.to_string());
        if let Some(hub) = members.into_iter().find(|c| !c.get_id().is_local()) {
            return Ok(hub.into());
        }
        if Instant::now() >= deadline {
            return Err(ClusterError::Connect { addr, reason: format!("no '{HUB_GROUP}' process group on the learner node") });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
