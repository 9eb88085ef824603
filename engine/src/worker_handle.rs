//! One connected worker as the rest of the engine sees it: its bounded outbound queue, its
//! metadata, and what it owns (functions, triggers, trigger types, invocations routed to it).
//!
//! Per-worker locks only: nothing here serializes the engine as a whole.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use std::sync::Arc;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::lock::lock;

/// Messages a worker's queue holds before senders wait (backpressure).
pub(crate) const OUTBOUND_QUEUE: usize = 1024;
/// Messages at least this large also count against the byte budget below (smaller ones are
/// bounded by the message count: 1024 × 64 KiB).
const LARGE_MESSAGE_BYTES: usize = 64 << 10;
/// Bytes of large messages a worker's queue may hold before senders wait: two 64 MiB messages,
/// not 1024 of them.
const LARGE_BYTES_BUDGET: usize = 128 << 20;
/// How long a sender waits on a full queue before the worker is deemed stuck and closed, so a
/// slow worker never stalls the others for longer than this (once: a closed worker refuses
/// every later frame at once).
const SEND_DEADLINE: Duration = Duration::from_secs(10);

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The connection is gone.
    #[error("worker connection closed")]
    Closed,
    /// The queue stayed full past the deadline; the worker is being closed.
    #[error("worker outbound queue stayed full for {SEND_DEADLINE:?}")]
    Stalled,
}

/// One queued frame; a large one carries its share of the byte budget until it is written.
#[derive(Debug)]
pub(crate) struct Outbound {
    pub(crate) msg: Message,
    pub(crate) budget: Option<OwnedSemaphorePermit>,
}

/// What the worker told `engine::workers::register` about itself.
#[derive(Debug, Clone, Default)]
pub(crate) struct WorkerMeta {
    pub(crate) name: Option<String>,
    pub(crate) runtime: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) os: Option<String>,
    pub(crate) pid: Option<u64>,
    pub(crate) isolation: Option<String>,
}

/// Ids owned by a worker, removed with it.
#[derive(Debug, Default)]
pub(crate) struct Owned {
    pub(crate) functions: HashSet<String>,
    pub(crate) triggers: HashSet<String>,
    pub(crate) trigger_types: HashSet<String>,
}

/// A connected worker.
#[derive(Debug)]
pub(crate) struct WorkerHandle {
    pub(crate) id: Uuid,
    pub(crate) reattach_token: Uuid,
    pub(crate) ip_address: String,
    pub(crate) connected_at_ms: u64,
    tx: mpsc::Sender<Outbound>,
    /// Budget for large queued messages, in bytes.
    large_bytes: Arc<Semaphore>,
    pub(crate) meta: Mutex<WorkerMeta>,
    pub(crate) owned: Mutex<Owned>,
    /// Invocations routed to this worker and awaiting its result; `None` once it is gone.
    inflight: Mutex<Option<HashSet<Uuid>>>,
    /// Wakes the connection loop to close it (stalled queue, reattach from a new connection).
    pub(crate) kick: Notify,
    /// Set once the worker is stalled or leaving: frames for it are refused at once.
    closed: AtomicBool,
    /// Set when the engine shuts down: the next kick closes with 1001 (going away).
    going_away: AtomicBool,
    /// An RBAC session's `function_registration_prefix`: stripped from function ids sent to
    /// it, so the SDK finds its local handlers (spec rbac §7). `None` on trusted listeners.
    prefix: Option<Box<str>>,
}

impl WorkerHandle {
    pub(crate) fn new(
        ip_address: String,
        connected_at_ms: u64,
        tx: mpsc::Sender<Outbound>,
    ) -> Self {
        Self {
            id: Uuid::new_v4(),
            reattach_token: Uuid::new_v4(),
            ip_address,
            connected_at_ms,
            tx,
            large_bytes: Arc::new(Semaphore::new(LARGE_BYTES_BUDGET)),
            meta: Mutex::default(),
            owned: Mutex::default(),
            inflight: Mutex::new(Some(HashSet::new())),
            kick: Notify::new(),
            closed: AtomicBool::new(false),
            going_away: AtomicBool::new(false),
            prefix: None,
        }
    }

    /// Sets the RBAC session's registration prefix (before the handle is shared).
    pub(crate) fn with_prefix(mut self, prefix: Option<&str>) -> Self {
        self.prefix = prefix.map(Box::from);
        self
    }

    /// `function_id` as this worker knows it: an RBAC session's own `P::` stripped, anything
    /// else unchanged. Trusted workers pay one `Option` check.
    pub(crate) fn local_id<'a>(&self, function_id: &'a str) -> &'a str {
        let Some(prefix) = self.prefix.as_deref() else {
            return function_id;
        };
        // The same arithmetic as `policies::Session::strip_prefix`, which this handle cannot
        // reach (the session lives with the connection).
        function_id
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix("::"))
            .unwrap_or(function_id)
    }

    /// Whether the worker is stalled or leaving (frames for it are refused).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The worker's display name (`engine::workers::register` name, else its id).
    pub(crate) fn name(&self) -> String {
        lock(&self.meta)
            .name
            .clone()
            .unwrap_or_else(|| self.id.to_string())
    }

    /// Queues a frame, waiting while the queue is full (up to a deadline, after which the
    /// worker is closed and [`SendError::Stalled`] returned).
    ///
    /// # Cancel safety
    /// Not cancel-safe: a cancelled call may or may not have queued the frame.
    pub(crate) async fn send(&self, msg: Message) -> Result<(), SendError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        let budget = if msg.len() >= LARGE_MESSAGE_BYTES {
            Some(self.reserve_bytes(msg.len()).await?)
        } else {
            None
        };
        let item = Outbound { msg, budget };
        match self.tx.try_send(item) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SendError::Closed),
            Err(mpsc::error::TrySendError::Full(item)) => {
                match tokio::time::timeout(SEND_DEADLINE, self.tx.send(item)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(_)) => Err(SendError::Closed),
                    Err(_) => Err(self.stalled()),
                }
            }
        }
    }

    /// Takes `len` bytes of the large-message budget, waiting (up to the deadline) for queued
    /// large messages to be written.
    async fn reserve_bytes(&self, len: usize) -> Result<OwnedSemaphorePermit, SendError> {
        // Messages are at most 64 MiB, well under both the budget and u32::MAX.
        let n = u32::try_from(len.min(LARGE_BYTES_BUDGET)).unwrap_or(u32::MAX);
        match self.large_bytes.clone().try_acquire_many_owned(n) {
            Ok(permit) => Ok(permit),
            Err(TryAcquireError::Closed) => Err(SendError::Closed),
            Err(TryAcquireError::NoPermits) => {
                let wait = self.large_bytes.clone().acquire_many_owned(n);
                match tokio::time::timeout(SEND_DEADLINE, wait).await {
                    Ok(Ok(permit)) => Ok(permit),
                    Ok(Err(_)) => Err(SendError::Closed),
                    Err(_) => Err(self.stalled()),
                }
            }
        }
    }

    /// The worker has not drained its queue within the deadline: close it.
    fn stalled(&self) -> SendError {
        tracing::warn!(worker.id = %self.id, "worker is not reading its frames; closing it");
        self.mark_closed();
        self.kick.notify_one();
        SendError::Stalled
    }

    /// Closes the connection because the engine is shutting down.
    pub(crate) fn go_away(&self) {
        self.going_away.store(true, Ordering::Release);
        self.kick.notify_one();
    }

    /// Whether the engine asked this connection to close because it is shutting down.
    pub(crate) fn is_going_away(&self) -> bool {
        self.going_away.load(Ordering::Acquire)
    }

    /// Refuses every later frame (the worker is stalled or leaving).
    pub(crate) fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Queues a text frame.
    pub(crate) async fn send_text(&self, text: String) -> Result<(), SendError> {
        self.send(Message::text(text)).await
    }

    /// Records an invocation routed to this worker; `false` when the worker is already gone.
    pub(crate) fn track(&self, invocation_id: Uuid) -> bool {
        match lock(&self.inflight).as_mut() {
            Some(set) => {
                set.insert(invocation_id);
                true
            }
            None => false,
        }
    }

    /// Forgets a finished invocation.
    pub(crate) fn untrack(&self, invocation_id: &Uuid) {
        if let Some(set) = lock(&self.inflight).as_mut() {
            set.remove(invocation_id);
        }
    }

    /// Invocations in flight on this worker.
    pub(crate) fn active_invocations(&self) -> usize {
        lock(&self.inflight).as_ref().map_or(0, HashSet::len)
    }

    /// Marks the worker gone and returns what was in flight on it.
    pub(crate) fn close_inflight(&self) -> HashSet<Uuid> {
        lock(&self.inflight).take().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn handle() -> (WorkerHandle, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        (WorkerHandle::new("127.0.0.1".into(), 0, tx), rx)
    }

    #[tokio::test(start_paused = true)]
    async fn large_messages_wait_for_the_byte_budget_then_close_a_stalled_worker() {
        let (worker, mut rx) = handle();
        let big = Message::Binary(Bytes::from(vec![0u8; 64 << 20]));
        worker.send(big.clone()).await.unwrap();
        worker.send(big.clone()).await.unwrap();
        // The budget (128 MiB) is spent: the third waits, then the worker is deemed stuck.
        assert_eq!(worker.send(big.clone()).await, Err(SendError::Stalled));
        assert_eq!(
            worker.send(Message::text("x")).await,
            Err(SendError::Closed)
        );
        assert!(rx.recv().await.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn writing_a_large_message_frees_its_budget() {
        let (worker, mut rx) = handle();
        let big = Message::Binary(Bytes::from(vec![0u8; 64 << 20]));
        worker.send(big.clone()).await.unwrap();
        worker.send(big.clone()).await.unwrap();
        drop(rx.recv().await);
        worker.send(big).await.unwrap();
    }

    #[test]
    fn only_an_rbac_sessions_own_prefix_is_stripped() {
        let (worker, _rx) = handle();
        assert_eq!(worker.local_id("t1::foo"), "t1::foo");
        let worker = worker.with_prefix(Some("t1"));
        assert_eq!(worker.local_id("t1::foo"), "foo");
        assert_eq!(worker.local_id("t10::foo"), "t10::foo");
        assert_eq!(worker.local_id("api::x"), "api::x");
    }

    #[tokio::test]
    async fn small_messages_are_not_charged_and_inflight_closes_once() {
        let (worker, _rx) = handle();
        for _ in 0..10 {
            worker.send(Message::text("{}")).await.unwrap();
        }
        let id = Uuid::new_v4();
        assert!(worker.track(id));
        assert_eq!(worker.active_invocations(), 1);
        assert_eq!(worker.close_inflight().len(), 1);
        assert!(!worker.track(Uuid::new_v4()));
    }
}
