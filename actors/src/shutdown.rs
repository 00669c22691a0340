//! Shutdown: the handle the binary connects SIGINT/SIGTERM to, and the run-internal stop token.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Asks a run to stop gracefully: stop taking prompts, let the learner finish its step, write a
/// checkpoint, return. Clone freely.
#[derive(Clone)]
pub struct ShutdownHandle {
    requested: tokio::sync::watch::Sender<bool>,
    count: Arc<AtomicU32>,
}

impl Default for ShutdownHandle {
    fn default() -> Self {
        Self::new()
    }
}

impl ShutdownHandle {
    pub fn new() -> Self {
        Self { requested: tokio::sync::watch::channel(false).0, count: Arc::new(AtomicU32::new(0)) }
    }

    /// Returns how many times shutdown has now been requested.
    pub fn request(&self) -> u32 {
        self.requested.send_replace(true);
        self.count.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub fn is_requested(&self) -> bool {
        *self.requested.borrow()
    }

    pub async fn requested(&self) {
        let mut rx = self.requested.subscribe();
        let _ = rx.wait_for(|&r| r).await;
    }
}

/// Connects SIGINT and SIGTERM to `handle`: the first asks for a graceful stop, a second exits the
/// process at once with status 130. Call inside a tokio runtime; the task lives until exit.
pub fn on_signals(handle: ShutdownHandle) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            if handle.request() >= 2 {
                eprintln!("second signal: exiting now without a checkpoint");
                std::process::exit(130);
            }
            eprintln!("signal received: finishing the current step and writing a checkpoint (signal again to exit now)");
        }
    }))
}

/// [`on_signals`] for a whole program that is not inside one tokio runtime for its whole life
/// (stages before and after the actor runtime): the handler lives on a thread of its own and is
/// installed when this returns.
pub fn on_signals_in_background(handle: ShutdownHandle) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (installed, wait) = std::sync::mpsc::channel();
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        runtime.block_on(async move {
            let listening = on_signals(handle);
            let ok = listening.is_ok();
            let _ = installed.send(listening.map(|_| ()));
            if ok {
                std::future::pending::<()>().await;
            }
        })
    })?;
    wait.recv().unwrap_or_else(|_| Err(std::io::Error::other("the signal thread ended before installing its handlers")))
}

/// Run-internal: tells every actor the run is over.
#[derive(Clone)]
pub struct Stop(tokio::sync::watch::Sender<bool>);

impl Default for Stop {
    fn default() -> Self {
        Self(tokio::sync::watch::channel(false).0)
    }
}

impl Stop {
    pub fn stop(&self) {
        self.0.send_replace(true);
    }

    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }

    pub async fn stopped(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|&s| s).await;
    }
}
