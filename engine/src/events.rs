//! The engine's own trigger types: `engine::workers-available` (connect, disconnect,
//! metadata update) and `engine::functions-available` (debounced function-set changes).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::builtins::discovery;
use crate::engine::Engine;
use crate::router;
use crate::task::{self, AbortOnDrop};

const WORKERS_AVAILABLE: &str = "engine::workers-available";
const FUNCTIONS_AVAILABLE: &str = "engine::functions-available";
/// Registration bursts (an SDK replaying dozens of functions) are coalesced into one event.
const FUNCTIONS_DEBOUNCE: Duration = Duration::from_millis(200);

/// What happened to a worker.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WorkerEvent {
    Connected,
    Disconnected,
    MetadataUpdated,
}

impl WorkerEvent {
    fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "worker_connected",
            Self::Disconnected => "worker_disconnected",
            Self::MetadataUpdated => "worker_metadata_updated",
        }
    }
}

/// Fires `engine::workers-available` to every binding, without waiting on the targets.
pub(crate) fn worker_event(engine: &Arc<Engine>, event: WorkerEvent, worker_id: Uuid) {
    let payload = json!({ "event": event.as_str(), "worker_id": worker_id }).to_string();
    fire(engine, WORKERS_AVAILABLE, payload);
}

fn fire(engine: &Arc<Engine>, trigger_type: &str, payload: String) {
    let targets: Vec<(String, Option<String>)> = engine
        .triggers
        .iter()
        .filter(|t| t.trigger_type == trigger_type)
        .map(|t| {
            (
                t.function_id.clone(),
                t.metadata.as_ref().map(|m| m.get().to_owned()),
            )
        })
        .collect();
    if targets.is_empty() {
        return;
    }
    let engine = engine.clone();
    task::spawn(async move {
        for (function_id, metadata) in targets {
            router::invoke_void(&engine, &function_id, &payload, metadata.as_deref()).await;
        }
    });
}

/// Starts the debouncer that turns [`Engine::functions_changed`] into
/// `engine::functions-available` events. Stops when the handle drops.
pub(crate) fn start_functions_watch(engine: &Arc<Engine>) -> AbortOnDrop<()> {
    let weak = Arc::downgrade(engine);
    AbortOnDrop(task::spawn(async move {
        loop {
            let Some(engine) = weak.upgrade() else { return };
            engine.functions_changed.notified().await;
            tokio::time::sleep(FUNCTIONS_DEBOUNCE).await;
            let functions = discovery::function_summaries(&engine, false);
            let payload =
                json!({ "event": "functions_changed", "functions": functions }).to_string();
            fire(&engine, FUNCTIONS_AVAILABLE, payload);
        }
    }))
}
