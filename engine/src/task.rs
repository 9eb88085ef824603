//! The one place tasks are spawned, so every task has a named owner (the gateway uses it too).

use std::future::Future;

use tokio::task::JoinHandle;

/// Spawns a task on the current runtime. Callers keep the handle (or a `JoinSet`) when the
/// task must be stopped; detached tasks end on their own (connection loops, timers).
#[expect(
    clippy::disallowed_methods,
    reason = "task.rs is the one place tasks are spawned"
)]
pub fn spawn<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(fut)
}

/// A task aborted when this handle is dropped (sweepers, debouncers, per-session helpers).
#[derive(Debug)]
pub struct AbortOnDrop<T>(pub JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
