//! Trigger types and bindings: parking bindings until their type has a provider, handing them
//! to the provider (a worker, or iii-http's route table), and removing them with their owner.

use std::sync::Arc;

use serde_json::value::RawValue;

use crate::engine::Engine;
use crate::lock::lock;
use crate::protocol::{self, ErrorBody, Frame};
use crate::registry::{BuiltinTrigger, Provider, TriggerEntry, TriggerTypeEntry, raw_null};
use crate::wire_error::WireError;
use crate::worker_handle::WorkerHandle;

/// `registertriggertype` from a worker: it becomes the provider and receives the bindings that
/// were parked for the type.
pub(crate) async fn register_type_from_worker(
    engine: &Engine,
    worker: &Arc<WorkerHandle>,
    frame: &Frame<'_>,
) {
    let Some(id) = frame.id.as_deref() else {
        tracing::debug!(worker.id = %worker.id, "registertriggertype without id dropped");
        return;
    };
    let description = frame.description.as_deref().unwrap_or_default();
    add_type(engine, worker, id, description, frame).await;
}

/// Makes `worker` the provider of trigger type `id` and hands it the bindings parked for the
/// type; a built-in type is never taken over. The formats come from `frame`.
pub(crate) async fn add_type(
    engine: &Engine,
    worker: &Arc<WorkerHandle>,
    id: &str,
    description: &str,
    frame: &Frame<'_>,
) {
    if let Some(existing) = engine.trigger_types.get(id)
        && matches!(existing.provider, Provider::Builtin(_))
    {
        tracing::warn!(worker.id = %worker.id, trigger.type = id, "a worker tried to take over a built-in trigger type; ignored");
        return;
    }
    let entry = TriggerTypeEntry {
        description: description.to_owned(),
        provider: Provider::Worker(worker.clone()),
        trigger_request_format: frame.trigger_request_format.map(ToOwned::to_owned),
        call_request_format: frame.call_request_format.map(ToOwned::to_owned),
    };
    engine.trigger_types.insert(id.to_owned(), entry);
    lock(&worker.owned).trigger_types.insert(id.to_owned());
    let parked: Vec<TriggerEntry> = engine
        .triggers
        .iter()
        .filter(|t| t.trigger_type == id)
        .map(|t| t.value().clone())
        .collect();
    for binding in parked {
        let _ = worker.send_text(binding_frame(&binding)).await;
    }
}

/// The `registertrigger` frame that hands `binding` to a worker provider.
fn binding_frame(binding: &TriggerEntry) -> String {
    protocol::register_trigger_frame(
        &binding.id,
        &binding.trigger_type,
        &binding.function_id,
        binding.config.get(),
        binding.metadata.as_deref().map(RawValue::get),
    )
}

/// `registertrigger` from a worker; failures go back as `triggerregistrationresult`.
pub(crate) async fn register_from_worker(
    engine: &Engine,
    worker: &Arc<WorkerHandle>,
    frame: &Frame<'_>,
) {
    let (Some(id), Some(trigger_type), Some(function_id)) = (
        frame.id.as_deref(),
        frame.trigger_type.as_deref(),
        frame.function_id.as_deref(),
    ) else {
        tracing::debug!(worker.id = %worker.id, "registertrigger without id, trigger_type or function_id dropped");
        return;
    };
    let binding = TriggerEntry {
        id: id.to_owned(),
        trigger_type: trigger_type.to_owned(),
        function_id: function_id.to_owned(),
        config: frame.config.map_or_else(raw_null, ToOwned::to_owned),
        metadata: frame.metadata.map(ToOwned::to_owned),
        owner: Some(worker.clone()),
    };
    if let Err(error) = register(engine, binding).await {
        let _ = worker
            .send_text(protocol::trigger_result_frame(
                id,
                trigger_type,
                worker.local_id(function_id),
                &error,
            ))
            .await;
    }
}

/// Adds a binding and hands it to its provider; with no provider yet it is parked.
pub(crate) async fn register(engine: &Engine, binding: TriggerEntry) -> Result<(), ErrorBody> {
    // A new binding under an existing id replaces it.
    if engine.triggers.contains_key(&binding.id) {
        unregister_if(engine, &binding.id, |_| true).await;
    }
    let provider = engine
        .trigger_types
        .get(&binding.trigger_type)
        .map(|t| t.provider.clone());
    match &provider {
        Some(Provider::Builtin(BuiltinTrigger::Http)) => {
            let routes = engine.http.as_ref().ok_or_else(|| {
                WireError::TriggerRegistrationFailed("iii-http is not running".into()).body()
            })?;
            routes
                .add(&binding)
                .map_err(|msg| WireError::TriggerRegistrationFailed(msg).body())?;
        }
        Some(Provider::Worker(p)) => {
            let _ = p.send_text(binding_frame(&binding)).await;
        }
        Some(Provider::Builtin(_)) | None => {}
    }
    if let Some(owner) = &binding.owner {
        lock(&owner.owned).triggers.insert(binding.id.clone());
    }
    engine.triggers.insert(binding.id.clone(), binding);
    Ok(())
}

/// `unregistertrigger` from a worker: only the binding's own connection may remove it.
pub(crate) async fn unregister_from_worker(
    engine: &Engine,
    worker: &WorkerHandle,
    frame: &Frame<'_>,
) {
    let Some(id) = frame.id.as_deref() else {
        return;
    };
    if !unregister_if(engine, id, |t| t.owned_by(worker.id)).await {
        tracing::debug!(worker.id = %worker.id, trigger.id = id, "unregistertrigger for a binding this worker does not own ignored");
    }
}

/// Removes a binding when `keep_out` holds for it (checked and removed atomically, so a
/// binding replaced meanwhile under the same id survives), and tells its provider; `false`
/// when nothing was removed.
pub(crate) async fn unregister_if(
    engine: &Engine,
    id: &str,
    keep_out: impl Fn(&TriggerEntry) -> bool,
) -> bool {
    let Some((_, binding)) = engine.triggers.remove_if(id, |_, t| keep_out(t)) else {
        return false;
    };
    if let Some(owner) = &binding.owner {
        lock(&owner.owned).triggers.remove(id);
    }
    let provider = engine
        .trigger_types
        .get(&binding.trigger_type)
        .map(|t| t.provider.clone());
    match provider {
        Some(Provider::Builtin(BuiltinTrigger::Http)) => {
            if let Some(routes) = &engine.http {
                routes.remove(id);
            }
        }
        Some(Provider::Worker(p)) => {
            let _ = p
                .send_text(protocol::unregister_trigger_frame(
                    id,
                    &binding.trigger_type,
                ))
                .await;
        }
        Some(Provider::Builtin(_)) | None => {}
    }
    true
}

/// `triggerregistrationresult` from a provider: a failure is passed on to the binding's owner.
/// Only the type's provider may answer for a binding.
pub(crate) async fn on_registration_result(
    engine: &Engine,
    from: &WorkerHandle,
    frame: &Frame<'_>,
) {
    let (Some(id), Some(error)) = (frame.id.as_deref(), frame.error) else {
        return;
    };
    let Some(binding) = engine.triggers.get(id).map(|t| t.value().clone()) else {
        return;
    };
    let from_provider = engine
        .trigger_types
        .get(&binding.trigger_type)
        .is_some_and(|t| matches!(&t.provider, Provider::Worker(p) if p.id == from.id));
    if !from_provider {
        tracing::debug!(
            trigger.id = id,
            "triggerregistrationresult from a worker that is not the provider ignored"
        );
        return;
    }
    let error = serde_json::from_str::<ErrorBody>(error.get())
        .unwrap_or_else(|_| WireError::TriggerRegistrationFailed(error.get().to_owned()).body());
    tracing::debug!(trigger.id = id, error = %error.message, "trigger provider refused a binding");
    if let Some(owner) = &binding.owner {
        let text = protocol::trigger_result_frame(
            id,
            &binding.trigger_type,
            owner.local_id(&binding.function_id),
            &error,
        );
        let _ = owner.send_text(text).await;
    }
}

/// On disconnect: the worker's bindings go, and the trigger types it provided lose their
/// provider (their remaining bindings are parked until a new provider registers).
pub(crate) async fn remove_worker(engine: &Engine, worker: &WorkerHandle) {
    let (triggers, types) = {
        let mut owned = lock(&worker.owned);
        (
            std::mem::take(&mut owned.triggers),
            std::mem::take(&mut owned.trigger_types),
        )
    };
    for id in types {
        engine.trigger_types.remove_if(
            &id,
            |_, t| matches!(&t.provider, Provider::Worker(p) if p.id == worker.id),
        );
    }
    for id in triggers {
        unregister_if(engine, &id, |t| t.owned_by(worker.id)).await;
    }
}
