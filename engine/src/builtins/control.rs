//! The built-ins that change state: worker metadata, durable trigger bindings, channel
//! creation, and `engine::log::*`.

use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{LogLevel, opt_str, req_str};
use crate::engine::Engine;
use crate::events::{self, WorkerEvent};
use crate::lock::lock;
use crate::protocol::ErrorBody;
use crate::registry::TriggerEntry;
use crate::triggers;
use crate::wire_error::WireError;
use crate::worker_handle::WorkerHandle;

/// `engine::workers::register`: the calling worker's metadata (spec §1.6).
pub(crate) fn workers_register(
    engine: &Arc<Engine>,
    caller: Option<&Arc<WorkerHandle>>,
    input: &Value,
) -> Result<Value, ErrorBody> {
    let worker = caller
        .cloned()
        .or_else(|| {
            // Engine-routed form: the caller is named by `_caller_worker_id`.
            let id = opt_str(input, "_caller_worker_id").and_then(|s| Uuid::parse_str(s).ok())?;
            engine.workers.get(&id).map(|w| w.value().clone())
        })
        .ok_or_else(|| {
            WireError::InvalidInput(
                "engine::workers::register must be called by a connected worker".into(),
            )
            .body()
        })?;
    let text = |k: &str| opt_str(input, k).map(str::to_owned);
    {
        let mut meta = lock(&worker.meta);
        meta.name = text("name").or(meta.name.take());
        meta.runtime = text("runtime");
        meta.version = text("version");
        meta.description = text("description");
        meta.os = text("os");
        meta.pid = input.get("pid").and_then(Value::as_u64);
        meta.isolation = text("isolation");
    }
    events::worker_event(engine, WorkerEvent::MetadataUpdated, worker.id);
    Ok(json!({ "success": true }))
}

fn to_raw(value: Option<&Value>) -> Result<Option<Box<RawValue>>, ErrorBody> {
    value
        .map(|v| {
            serde_json::value::to_raw_value(v)
                .map_err(|e| WireError::Serialization(e.to_string()).body())
        })
        .transpose()
}

/// `engine::register_trigger`: a durable binding with no owning connection.
pub(crate) async fn register_trigger(engine: &Engine, input: Value) -> Result<Value, ErrorBody> {
    let trigger_type = req_str(&input, "trigger_type")?.to_owned();
    let function_id = req_str(&input, "function_id")?.to_owned();
    let id = Uuid::new_v4().to_string();
    let binding = TriggerEntry {
        id: id.clone(),
        trigger_type,
        function_id,
        config: to_raw(input.get("config"))?.unwrap_or_else(crate::registry::raw_null),
        metadata: to_raw(input.get("metadata"))?,
        owner: None,
    };
    triggers::register(engine, binding).await?;
    Ok(json!({ "id": id }))
}

/// `engine::unregister_trigger`.
pub(crate) async fn unregister_trigger(engine: &Engine, input: &Value) -> Result<Value, ErrorBody> {
    let id = req_str(input, "id")?;
    let removed = triggers::unregister_if(engine, id, |_| true).await;
    Ok(json!({ "removed": removed }))
}

/// `engine::channels::create`.
pub(crate) fn channels_create(engine: &Engine, input: &Value) -> Result<Value, ErrorBody> {
    let buffer_size = match input.get("buffer_size") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    WireError::InvalidInput("`buffer_size` must be a positive integer".into())
                        .body()
                })?,
        ),
    };
    let (id, key) = engine.channels.create(buffer_size);
    let reference =
        |direction: &str| json!({ "channel_id": id, "access_key": key, "direction": direction });
    Ok(json!({ "writer": reference("write"), "reader": reference("read") }))
}

/// `engine::log::<level>`: logs the worker's message at that level. The payload is not logged
/// (it may carry secrets); only its message.
pub(crate) fn log(level: LogLevel, caller: Option<&Arc<WorkerHandle>>, input: &Value) -> Value {
    let message = opt_str(input, "message")
        .or_else(|| input.as_str())
        .unwrap_or_default();
    let worker_name = caller.map(|w| w.name()).unwrap_or_default();
    let function_id = opt_str(input, "function_name")
        .or_else(|| opt_str(input, "function_id"))
        .unwrap_or_default();
    match level {
        LogLevel::Trace => tracing::trace!(target: "worker", worker_name, function_id, "{message}"),
        LogLevel::Debug => tracing::debug!(target: "worker", worker_name, function_id, "{message}"),
        LogLevel::Info => tracing::info!(target: "worker", worker_name, function_id, "{message}"),
        LogLevel::Warn => tracing::warn!(target: "worker", worker_name, function_id, "{message}"),
        LogLevel::Error => tracing::error!(target: "worker", worker_name, function_id, "{message}"),
    }
    Value::Null
}
