//! Locking that survives a panicked holder.

use std::sync::{Mutex, MutexGuard};

/// Poisoning only means another thread panicked mid-update of plain data that is overwritten
/// whole (counters, the latest version, a path), so the value is still worth reading.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
