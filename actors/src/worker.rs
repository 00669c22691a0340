//! Worker: a dedicated OS thread that owns one piece of heavy state (a sampler, a trainer) so
//! model compute never runs on the async executor; optionally pinned to a CPU core.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread;

use crate::error::RuntimeError;

type Job<T> = Box<dyn FnOnce(&mut T) + Send>;

/// The job panicked (the message is the panic payload) or the thread is gone.
#[derive(Debug, Clone, thiserror::Error)]
#[error("worker thread '{thread}' {what}")]
pub struct WorkerFailed {
    pub thread: String,
    pub what: String,
}

/// A handle to the thread; clones share it, and the thread ends when the last one is dropped.
pub struct Worker<T> {
    name: String,
    jobs: mpsc::Sender<Job<T>>,
}

impl<T> Clone for Worker<T> {
    fn clone(&self) -> Self {
        Self { name: self.name.clone(), jobs: self.jobs.clone() }
    }
}

impl<T: Send + 'static> Worker<T> {
    /// Moves `state` onto a new thread named `name`, pinned to `core` when given.
    pub fn spawn(name: &str, core: Option<usize>, state: T) -> Result<Self, RuntimeError> {
        let (jobs, inbox) = mpsc::channel::<Job<T>>();
        let (pinned_tx, pinned_rx) = mpsc::channel();
        thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let pinned = core.map_or(Ok(()), pin_current_thread);
                let ok = pinned.is_ok();
                let _ = pinned_tx.send(pinned);
                if ok {
                    run_jobs(state, inbox);
                }
            })
            .map_err(|e| RuntimeError::Actor(format!("spawning thread {name}: {e}")))?;
        pinned_rx.recv().map_err(|_| RuntimeError::Actor(format!("thread {name} died while starting")))??;
        Ok(Self { name: name.to_string(), jobs })
    }

    /// Runs `f` on the worker thread and awaits its result. A panic inside `f` is caught and
    /// returned; the state it may have left half-updated stays on the thread, because only the
    /// caller knows what it is still good for: a failed generator or scorer drops its handle and
    /// is restarted with fresh state, while the learner asks its trainer whether the last
    /// completed step can still be checkpointed.
    pub async fn call<R: Send + 'static>(&self, f: impl FnOnce(&mut T) -> R + Send + 'static) -> Result<R, WorkerFailed> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job<T> = Box::new(move |state| {
            let _ = tx.send(catch_unwind(AssertUnwindSafe(|| f(state))).map_err(panic_message));
        });
        let gone = || WorkerFailed { thread: self.name.clone(), what: "has stopped".into() };
        self.jobs.send(job).map_err(|_| gone())?;
        match rx.await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(msg)) => Err(WorkerFailed { thread: self.name.clone(), what: format!("panicked: {msg}") }),
            Err(_) => Err(gone()),
        }
    }
}

fn run_jobs<T>(mut state: T, inbox: mpsc::Receiver<Job<T>>) {
    while let Ok(job) = inbox.recv() {
        job(&mut state);
    }
}

pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".into()
    }
}

/// Pins the calling thread to one CPU core (Linux); elsewhere pinning is refused, not ignored.
pub fn pin_current_thread(core: usize) -> Result<(), RuntimeError> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: cpu_set_t is plain data; CPU_SET stays in bounds because core < CPU_SETSIZE is
        // checked first, and sched_setaffinity(0, ..) only affects the calling thread.
        unsafe {
            if core >= libc::CPU_SETSIZE as usize {
                return Err(RuntimeError::Affinity { core, reason: "beyond CPU_SETSIZE".into() });
            }
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(core, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                let reason = std::io::Error::last_os_error().to_string();
                return Err(RuntimeError::Affinity { core, reason });
            }
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(RuntimeError::Affinity { core, reason: "thread pinning is implemented for Linux only".into() })
    }
}

/// The cores the calling thread may run on (Linux), for tests and benchmark reports.
#[cfg(target_os = "linux")]
pub fn current_affinity() -> Vec<usize> {
    // SAFETY: as above; sched_getaffinity writes at most size_of::<cpu_set_t>() bytes into `set`.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
    }
}
