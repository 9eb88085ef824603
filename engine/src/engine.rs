//! The engine's shared state (registries, pending invocations, channels, routes) and its
//! construction with the built-in functions and trigger types in place.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::builtins;
use crate::channels::Channels;
use crate::http::RouteTable;
use crate::pending::Pending;
use crate::registry::{BuiltinTrigger, FunctionEntry, TriggerEntry, TriggerTypeEntry};
use crate::worker_handle::WorkerHandle;

/// Everything the listeners and built-in workers share. Cheap to clone through `Arc`.
#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) workers: DashMap<Uuid, Arc<WorkerHandle>>,
    pub(crate) functions: DashMap<String, FunctionEntry>,
    pub(crate) trigger_types: DashMap<String, TriggerTypeEntry>,
    pub(crate) triggers: DashMap<String, TriggerEntry>,
    pub(crate) pending: DashMap<Uuid, Pending>,
    pub(crate) channels: Arc<Channels>,
    /// iii-http's routes, when iii-http runs.
    pub(crate) http: Option<Arc<RouteTable>>,
    /// Signalled whenever the function set changes (`engine::functions-available`).
    pub(crate) functions_changed: Notify,
    /// Turns `true` when the engine shuts down: listeners stop accepting.
    pub(crate) shutdown: watch::Sender<bool>,
}

impl Engine {
    /// A new engine; `with_http` registers the `http` trigger type.
    pub(crate) fn new(with_http: bool) -> Arc<Self> {
        let engine = Self {
            workers: DashMap::new(),
            functions: DashMap::new(),
            trigger_types: DashMap::new(),
            triggers: DashMap::new(),
            pending: DashMap::new(),
            channels: Arc::default(),
            http: with_http.then(|| Arc::new(RouteTable::default())),
            functions_changed: Notify::new(),
            shutdown: watch::Sender::new(false),
        };
        builtins::register_all(&engine);
        engine.trigger_types.insert(
            "engine::workers-available".to_owned(),
            TriggerTypeEntry::builtin(
                BuiltinTrigger::WorkersAvailable,
                "Fires when a worker connects, disconnects or updates its metadata",
            ),
        );
        engine.trigger_types.insert(
            "engine::functions-available".to_owned(),
            TriggerTypeEntry::builtin(
                BuiltinTrigger::FunctionsAvailable,
                "Fires when the set of registered functions changes",
            ),
        );
        if with_http {
            engine.trigger_types.insert(
                "http".to_owned(),
                TriggerTypeEntry::builtin(BuiltinTrigger::Http, "HTTP route on the REST API"),
            );
        }
        Arc::new(engine)
    }
}

/// Resolves once the engine is shutting down (never, if the engine is dropped first).
///
/// # Cancel safety
/// Cancel-safe: it only waits on the watch.
pub(crate) async fn shutting_down(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Milliseconds since the Unix epoch (wall clock, for reporting only).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
