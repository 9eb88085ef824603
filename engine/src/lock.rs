//! Locking a std mutex without panicking: a poisoned lock (a thread panicked while holding it)
//! still yields its data. Every critical section in the engine is a single insert, remove or
//! copy, so the data stays consistent.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, recovering the data if the lock is poisoned.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
