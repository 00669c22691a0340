//! Loopback addresses for servers a test starts. A port found by binding `:0` comes from the
//! OS's ephemeral range, where any client socket opened meanwhile (a worker of a test running
//! beside it) may take it before the server binds it; ports below that range are never handed
//! to client sockets, and a counter keeps those of one test process apart.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};

const LOWEST: u32 = 10_000;
static NEXT: AtomicU32 = AtomicU32::new(0);

/// The first port the OS hands to client sockets (Linux's default when unreadable).
fn ephemeral_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A 127.0.0.1 address below the ephemeral range that nothing listens on right now.
pub fn free_loopback_addr() -> SocketAddr {
    let span = ephemeral_start().max(LOWEST + 1_000) - LOWEST;
    let base = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let port = (LOWEST + (base + NEXT.fetch_add(1, Ordering::Relaxed)) % span) as u16;
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            return l.local_addr().expect("local address");
        }
    }
    panic!("no free loopback port between {LOWEST} and {}", LOWEST + span);
}

pub fn free_loopback_port() -> u16 {
    free_loopback_addr().port()
}
