//! Queue: a named bounded channel between actors; reports its depth and how often senders waited.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::metrics as m;
use crate::shutdown::Stop;

pub struct Queue<T> {
    name: &'static str,
    capacity: usize,
    tx: flume::Sender<T>,
    rx: flume::Receiver<T>,
    max_depth: AtomicUsize,
    full_waits: AtomicU64,
}

impl<T> Queue<T> {
    pub fn new(name: &'static str, capacity: usize) -> Self {
        let (tx, rx) = flume::bounded(capacity);
        metrics::gauge!(m::QUEUE_CAPACITY, "queue" => name).set(capacity as f64);
        metrics::gauge!(m::QUEUE_DEPTH, "queue" => name).set(0.0);
        Self { name, capacity, tx, rx, max_depth: AtomicUsize::new(0), full_waits: AtomicU64::new(0) }
    }

    /// Sends, waiting while the queue is full (backpressure). Returns the time waited, or `None`
    /// (item dropped) if the run stops first.
    pub async fn send(&self, item: T, stop: &Stop) -> Option<Duration> {
        let item = match self.tx.try_send(item) {
            Ok(()) => {
                self.observe();
                return Some(Duration::ZERO);
            }
            Err(flume::TrySendError::Full(item)) => item,
            Err(flume::TrySendError::Disconnected(_)) => return None,
        };
        self.full_waits.fetch_add(1, Ordering::Relaxed);
        let waited = Instant::now();
        tokio::select! {
            sent = self.tx.send_async(item) => sent.ok()?,
            _ = stop.stopped() => return None,
        }
        self.observe();
        Some(waited.elapsed())
    }

    /// Single-thread harness: send only if there is room.
    pub fn try_send(&self, item: T) -> Result<(), T> {
        self.tx.try_send(item).map_err(|e| e.into_inner())?;
        self.observe();
        Ok(())
    }

    pub async fn recv(&self, stop: &Stop) -> Option<T> {
        let item = tokio::select! {
            item = self.rx.recv_async() => item.ok()?,
            _ = stop.stopped() => return None,
        };
        self.observe();
        Some(item)
    }

    pub fn try_recv(&self) -> Option<T> {
        let item = self.rx.try_recv().ok()?;
        self.observe();
        Some(item)
    }

    pub fn is_full(&self) -> bool {
        self.tx.is_full()
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The deepest the queue has been.
    pub fn max_depth(&self) -> usize {
        self.max_depth.load(Ordering::Relaxed)
    }

    /// How many sends found the queue full and had to wait.
    pub fn full_waits(&self) -> u64 {
        self.full_waits.load(Ordering::Relaxed)
    }

    fn observe(&self) {
        let depth = self.rx.len();
        self.max_depth.fetch_max(depth, Ordering::Relaxed);
        metrics::gauge!(m::QUEUE_DEPTH, "queue" => self.name).set(depth as f64);
    }
}
