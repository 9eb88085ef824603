//! One connected worker as the rest of the engine sees it: its bounded outbound queue, its
//! metadata, and what it owns (functions, triggers, trigger types, invocations routed to it).
//!
//! Per-worker locks only: nothing here serializes the engine as a whole.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::lock::lock;

/// Messages a worker's queue holds before senders wait (backpressure).
pub(crate) const OUTBOUND_QUEUE: usize = 1024;
/// How long a sender waits on a full queue before the worker is deemed stuck and closed, so a
/// slow worker never stalls the others for longer than this (once: a closed worker refuses
/// every later frame at once).
const SEND_DEADLINE: Duration = Duration::from_secs(10);

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SendError {
    /// The connection is gone.
    #[error("worker connection closed")]
    Closed,
    /// The queue stayed full past the deadline; the worker is being closed.
    #[error("worker outbound queue stayed full for {SEND_DEADLINE:?}")]
    Stalled,
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
    tx: mpsc::Sender<Message>,
    pub(crate) meta: Mutex<WorkerMeta>,
    pub(crate) owned: Mutex<Owned>,
    /// Invocations routed to this worker and awaiting its result; `None` once it is gone.
    inflight: Mutex<Option<HashSet<Uuid>>>,
    /// Wakes the connection loop to close it (stalled queue, reattach from a new connection).
    pub(crate) kick: Notify,
    /// Set once the worker is stalled or leaving: frames for it are refused at once.
    closed: AtomicBool,
}

impl WorkerHandle {
    pub(crate) fn new(ip_address: String, connected_at_ms: u64, tx: mpsc::Sender<Message>) -> Self {
        Self {
            id: Uuid::new_v4(),
            reattach_token: Uuid::new_v4(),
            ip_address,
            connected_at_ms,
            tx,
            meta: Mutex::default(),
            owned: Mutex::default(),
            inflight: Mutex::new(Some(HashSet::new())),
            kick: Notify::new(),
            closed: AtomicBool::new(false),
        }
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
        match self.tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SendError::Closed),
            Err(mpsc::error::TrySendError::Full(msg)) => {
                match tokio::time::timeout(SEND_DEADLINE, self.tx.send(msg)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(_)) => Err(SendError::Closed),
                    Err(_) => {
                        tracing::warn!(worker.id = %self.id, "worker is not reading its frames; closing it");
                        self.mark_closed();
                        self.kick.notify_one();
                        Err(SendError::Stalled)
                    }
                }
            }
        }
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
