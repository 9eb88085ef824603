//! The invocation router: resolves a function id, records the caller as pending *before*
//! forwarding (so a fast result is never lost), forwards to the owning worker's queue, and
//! relays the result — or `invocation_stopped` when the owner goes away.

use std::sync::Arc;
use std::time::Duration;

use dashmap::mapref::entry::Entry;
use serde_json::value::RawValue;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use uuid::Uuid;

use crate::builtins;
use crate::engine::Engine;
use crate::pending::{Outcome, Pending, Reply};
use crate::protocol::{self, Action, ErrorBody, Frame, Trace};
use crate::registry::Owner;
use crate::wire_error::WireError;
use crate::worker_handle::WorkerHandle;

/// Handles `invokefunction` from a worker.
pub(crate) async fn invoke_from_worker(
    engine: &Arc<Engine>,
    caller: &Arc<WorkerHandle>,
    frame: &Frame<'_>,
) {
    let Some(function_id) = frame.function_id.as_deref() else {
        tracing::debug!(worker.id = %caller.id, "invokefunction without function_id dropped");
        return;
    };
    let data = frame.data.map_or("null", RawValue::get);
    invoke_as(engine, caller, frame, function_id, data).await;
}

/// The id a caller's result goes back under: `None` for void calls, which never get a reply
/// even when the caller sent an id (spec §2.2).
pub(crate) fn reply_id(frame: &Frame<'_>) -> Option<Uuid> {
    match frame.action {
        Some(Action::Void) => None,
        _ => frame.invocation_id,
    }
}

/// Routes an `invokefunction` to `function_id` with `data`, which an RBAC gate may have
/// resolved (own prefixed id) or rewritten; otherwise both are the frame's own.
pub(crate) async fn invoke_as(
    engine: &Arc<Engine>,
    caller: &Arc<WorkerHandle>,
    frame: &Frame<'_>,
    function_id: &str,
    data: &str,
) {
    let reply_id = reply_id(frame);
    if let Some(Action::Enqueue { queue }) = &frame.action {
        let queue = queue.as_deref().unwrap_or_default();
        reply_error(
            caller,
            reply_id,
            function_id,
            WireError::NoQueueWorker(queue),
        )
        .await;
        return;
    }
    let Some(owner) = engine.functions.get(function_id).map(|e| e.owner.clone()) else {
        reply_error(
            caller,
            reply_id,
            function_id,
            WireError::FunctionNotFound(function_id),
        )
        .await;
        return;
    };
    let trace = Trace {
        traceparent: frame.traceparent.as_deref(),
        baggage: frame.baggage.as_deref(),
    };
    match owner {
        Owner::Builtin(f) => {
            let outcome = builtins::call(engine, f, Some(caller), data).await;
            if let Some(id) = reply_id {
                let text = match outcome {
                    Ok(value) => protocol::result_frame(&id, function_id, &value, Trace::default()),
                    Err(e) => protocol::error_frame(&id, function_id, &e),
                };
                let _ = caller.send_text(text).await;
            }
        }
        Owner::Worker(owner) => {
            let invocation_id = match reply_id {
                Some(id) => {
                    let pending = Pending {
                        reply: Reply::Worker(caller.clone()),
                        owner: owner.id,
                        function_id: function_id.to_owned(),
                    };
                    if let Err(e) = record(engine, &owner, id, pending) {
                        reply_error(caller, reply_id, function_id, e).await;
                        return;
                    }
                    id
                }
                // The owner still gets an id (SDKs answer every invoke that has one); its
                // result finds no pending entry and is dropped quietly.
                None => Uuid::new_v4(),
            };
            let meta = frame.metadata.map(RawValue::get);
            let text = protocol::invoke_frame(
                &invocation_id,
                owner.local_id(function_id),
                data,
                meta,
                trace,
                Some(&caller.id),
            );
            forward(engine, &owner, invocation_id, text, reply_id.is_some()).await;
        }
    }
}

/// Answers a caller that wants a reply with an error.
async fn reply_error(
    caller: &WorkerHandle,
    reply_id: Option<Uuid>,
    function_id: &str,
    error: WireError<'_>,
) {
    if let Some(id) = reply_id {
        let _ = caller
            .send_text(protocol::error_frame(&id, function_id, &error.body()))
            .await;
    }
}

/// Records a pending invocation on the engine and on its owner. Fails for a duplicate id (two
/// calls in flight under one id could not be told apart) or an owner that is already gone.
fn record(
    engine: &Engine,
    owner: &WorkerHandle,
    id: Uuid,
    pending: Pending,
) -> Result<(), WireError<'static>> {
    match engine.pending.entry(id) {
        Entry::Occupied(_) => return Err(WireError::DuplicateInvocationId),
        Entry::Vacant(v) => {
            v.insert(pending);
        }
    }
    if owner.track(id) {
        Ok(())
    } else {
        engine.pending.remove(&id);
        Err(WireError::InvocationStopped)
    }
}

/// Queues the invoke on the owner; when that fails, the pending caller is answered at once.
async fn forward(engine: &Engine, owner: &WorkerHandle, id: Uuid, text: String, pending: bool) {
    if owner.send_text(text).await.is_err() && pending {
        owner.untrack(&id);
        if let Some((_, p)) = engine.pending.remove(&id) {
            p.fail(&id, &WireError::InvocationStopped.body()).await;
        }
    }
}

/// Handles `invocationresult` from a worker: relays it to whoever waits for it.
pub(crate) async fn on_result(
    engine: &Engine,
    from: &WorkerHandle,
    frame: &Frame<'_>,
    text: &Utf8Bytes,
) {
    let Some(id) = frame.invocation_id else {
        return;
    };
    // Only the worker the call went to may answer it.
    let Some((_, pending)) = engine.pending.remove_if(&id, |_, p| p.owner == from.id) else {
        tracing::trace!(invocation.id = %id, "result for no pending invocation dropped");
        return;
    };
    from.untrack(&id);
    match pending.reply {
        Reply::Worker(caller) => {
            // The frame already has the caller's shape: forward it as is, without copying.
            let _ = caller.send(Message::Text(text.clone())).await;
        }
        Reply::Internal(tx) => {
            let outcome = match frame.error {
                Some(err) => Err(serde_json::from_str::<ErrorBody>(err.get())
                    .unwrap_or_else(|_| WireError::InvocationFailed(err.get()).body())),
                None => Ok(frame
                    .result
                    .map_or_else(crate::registry::raw_null, ToOwned::to_owned)),
            };
            let _ = tx.send(outcome);
        }
    }
}

/// Answers every caller waiting on a worker that just went away with `invocation_stopped`.
pub(crate) async fn fail_inflight(engine: &Engine, owner: &WorkerHandle) {
    let error = WireError::InvocationStopped.body();
    for id in owner.close_inflight() {
        if let Some((_, p)) = engine.pending.remove(&id) {
            p.fail(&id, &error).await;
        }
    }
}

/// Forgets the calls a departed worker was waiting on: their results have nowhere to go, and
/// their owners stop counting them as active.
pub(crate) fn forget_caller(engine: &Engine, caller: &WorkerHandle) {
    let mut gone = Vec::new();
    engine.pending.retain(|id, p| {
        let mine = matches!(&p.reply, Reply::Worker(w) if w.id == caller.id);
        if mine {
            gone.push((*id, p.owner));
        }
        !mine
    });
    for (id, owner) in gone {
        if let Some(owner) = engine.workers.get(&owner) {
            owner.untrack(&id);
        }
    }
}

/// Removes a pending internal invocation if its waiter gives up (timeout, dropped request).
struct PendingGuard<'a> {
    engine: &'a Engine,
    owner: Arc<WorkerHandle>,
    id: Uuid,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.owner.untrack(&self.id);
        self.engine.pending.remove(&self.id);
    }
}

/// An engine-started call (HTTP, trigger fires) with a fresh id, bounded by `timeout`.
///
/// # Cancel safety
/// Cancel-safe: dropping the future forgets the pending entry; a late result is dropped.
pub(crate) async fn invoke(
    engine: &Arc<Engine>,
    function_id: &str,
    data: &str,
    metadata: Option<&str>,
    timeout: Duration,
) -> Outcome {
    let owner = engine.functions.get(function_id).map(|e| e.owner.clone());
    let owner = match owner {
        None => return Err(WireError::FunctionNotFound(function_id).body()),
        Some(Owner::Builtin(f)) => {
            return builtins::call(engine, f, None, data).await.and_then(|v| {
                RawValue::from_string(v).map_err(|e| WireError::Serialization(e.to_string()).body())
            });
        }
        Some(Owner::Worker(owner)) => owner,
    };
    let id = Uuid::new_v4();
    let (tx, rx) = oneshot::channel();
    let pending = Pending {
        reply: Reply::Internal(tx),
        owner: owner.id,
        function_id: function_id.to_owned(),
    };
    record(engine, &owner, id, pending).map_err(|e| e.body())?;
    let guard = PendingGuard {
        engine,
        owner: owner.clone(),
        id,
    };
    let text = protocol::invoke_frame(
        &id,
        owner.local_id(function_id),
        data,
        metadata,
        Trace::default(),
        None,
    );
    forward(engine, &owner, id, text, true).await;
    let outcome = match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => Err(WireError::InvocationStopped.body()),
        Err(_) => Err(WireError::Timeout.body()),
    };
    drop(guard);
    outcome
}

/// An engine-started fire-and-forget call (trigger fires): queued on the owner, no result.
pub(crate) async fn invoke_void(
    engine: &Arc<Engine>,
    function_id: &str,
    data: &str,
    metadata: Option<&str>,
) {
    let owner = engine.functions.get(function_id).map(|e| e.owner.clone());
    match owner {
        None => tracing::debug!(
            function.id = function_id,
            "trigger target is not registered; fire dropped"
        ),
        Some(Owner::Builtin(f)) => {
            let _ = builtins::call(engine, f, None, data).await;
        }
        Some(Owner::Worker(owner)) => {
            let text = protocol::invoke_frame(
                &Uuid::new_v4(),
                owner.local_id(function_id),
                data,
                metadata,
                Trace::default(),
                None,
            );
            let _ = owner.send_text(text).await;
        }
    }
}
