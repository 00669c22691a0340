//! Cluster: generators and scorers on other machines through ractor_cluster. The learner node
//! runs a [`hub::Hub`] beside its local actors; workers connect ([`node::connect`]) and run
//! [`remote_generator::run_generator`] or [`remote_scorer::run_scorer`]. The ledger stays on the
//! learner node: what a worker borrows is held as `Holder::Node(worker)` until it reports back,
//! and goes back to the queue when its node's session closes.

pub mod hub;
pub mod node;
pub mod registry;
pub mod remote_generator;
pub mod remote_scorer;
pub mod tls;
pub mod weights;
pub mod wire;

use std::net::SocketAddr;

pub use node::{connect, listen, Connection, ListenOptions, Listening};
pub use remote_generator::{download, run_generator, Download, RemoteGeneratorConfig, WorkerEnd};
pub use remote_scorer::run_scorer;
pub use tls::{ClientTls, ServerTls, TlsError};
pub use weights::{DecodeWeights, EncodeWeights};
pub use wire::WorkerRole;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("listening on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
    #[error("connecting to the learner node at {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("the learner node at {addr} refused this worker during the handshake (is the cookie the same on both sides, and does the learner node use TLS? then pass --tls-ca)")]
    Refused { addr: SocketAddr },
    #[error("the session with the learner node at {addr} closed during the handshake: is the cookie the same on both sides, does the learner node use TLS too, and does --tls-ca trust its certificate under the name it was given?")]
    RefusedTls { addr: SocketAddr },
    #[error("TLS handshake with the learner node at {addr} failed: {reason} (does --tls-ca trust its certificate, under the name --tls-name gives, and does the learner node use TLS?)")]
    Tls { addr: SocketAddr, reason: String },
    #[error("the learner node refused a request: {0}")]
    RequestRefused(String),
    #[error("lost the learner node: {0}")]
    Lost(String),
    #[error("the learner node's run is over")]
    Finished,
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("worker: {0}")]
    Worker(String),
}
