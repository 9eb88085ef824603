//! Registrations from an RBAC session (spec rbac §4.6, §6, §7; settled decisions 4, 5, 11):
//! permission checks, the hooks, the session's prefix, and recording what the session owns.
//!
//! Refused functions are dropped and logged; refused trigger types and triggers get a
//! `triggerregistrationresult` with `REGISTRATION_DENIED`. Nothing a session registers can
//! take over what another live worker serves.

use std::sync::Arc;

use policies::is_ownable_function;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::gate::Gate;
use super::hooks::{self, Hook, Verdict, mapped_str};
use crate::engine::Engine;
use crate::protocol::{self, Frame};
use crate::registry::{FunctionEntry, Owner, Provider, TriggerEntry, raw_null};
use crate::triggers;
use crate::wire_error::WireError;
use crate::worker_conn::{self, Takeover};
use crate::worker_handle::WorkerHandle;

/// Parses a value a hook returned back into raw JSON.
fn to_raw(value: &Value) -> Option<Box<RawValue>> {
    serde_json::value::to_raw_value(value).ok()
}

/// Parses raw JSON into a value for a hook's input.
fn to_value(raw: Option<&RawValue>) -> Value {
    raw.and_then(|r| serde_json::from_str(r.get()).ok())
        .unwrap_or(Value::Null)
}

/// Tells the session its trigger (type) registration was refused.
async fn refuse(
    worker: &WorkerHandle,
    id: &str,
    trigger_type: &str,
    function_id: &str,
    error: &WireError<'_>,
) {
    tracing::debug!(trigger.id = id, error = %error.body().message, "trigger registration refused");
    let text = protocol::trigger_result_frame(id, trigger_type, function_id, &error.body());
    let _ = worker.send_text(text).await;
}

impl Gate {
    /// `registerfunction`: permission, hook, then `P::id`; recorded as the session's own.
    pub(super) async fn register_function(
        &mut self,
        engine: &Arc<Engine>,
        worker: &Arc<WorkerHandle>,
        frame: &Frame<'_>,
    ) {
        let Some(sent) = frame.id.as_deref().filter(|id| !id.is_empty()) else {
            return;
        };
        let decision = self.policy.decide_register_function(&self.session, sent);
        if let Some(denial) = decision.enforced_denial() {
            tracing::debug!(fn.id = sent, error = %denial, "function registration dropped");
            return;
        }
        let mut id = sent.to_owned();
        let mut description = frame.description.as_deref().map(str::to_owned);
        let mut metadata = frame.metadata.map(ToOwned::to_owned);
        let verdict = hooks::run(engine, &self.policy, Hook::Function, || {
            json!({"function_id": sent, "description": description, "metadata": to_value(frame.metadata),
                   "context": self.session.context()})
        })
        .await;
        match verdict {
            Verdict::NoHook => {}
            Verdict::Deny => {
                tracing::debug!(fn.id = sent, "function registration denied by hook; dropped");
                return;
            }
            Verdict::Allow(fields) => {
                if let Some(mapped) = mapped_str(&fields, "function_id") {
                    mapped.clone_into(&mut id);
                }
                if let Some(mapped) = mapped_str(&fields, "description") {
                    description = Some(mapped.to_owned());
                }
                if let Some(mapped) = fields.get("metadata") {
                    metadata = (!mapped.is_null()).then(|| to_raw(mapped)).flatten();
                }
            }
        }
        let stored = self.session.stored_id(&id).into_owned();
        let entry = FunctionEntry {
            owner: Owner::Worker(worker.clone()),
            description,
            request_format: frame.request_format.map(ToOwned::to_owned),
            response_format: frame.response_format.map(ToOwned::to_owned),
            metadata,
        };
        if !worker_conn::add_function(engine, worker, &stored, entry, Takeover::Refused) {
            tracing::debug!(fn.id = %stored, "function served by another worker; registration dropped");
            return;
        }
        if is_ownable_function(&stored) {
            self.session.record_function(stored);
        }
    }

    /// `unregisterfunction`: the id is the session's `P::id`.
    pub(super) fn unregister_function(
        &mut self,
        engine: &Engine,
        worker: &WorkerHandle,
        frame: &Frame<'_>,
    ) {
        let Some(sent) = frame.id.as_deref() else {
            return;
        };
        let stored = self.session.stored_id(sent);
        worker_conn::remove_function(engine, worker, &stored);
        self.session.forget_function(&stored);
    }

    /// `registertriggertype`: permission, hook, and no takeover of another worker's type.
    pub(super) async fn register_trigger_type(
        &mut self,
        engine: &Arc<Engine>,
        worker: &Arc<WorkerHandle>,
        frame: &Frame<'_>,
    ) {
        let Some(sent) = frame.id.as_deref() else {
            return;
        };
        let decision = self
            .policy
            .decide_register_trigger_type(&self.session, sent);
        if let Some(denial) = decision.enforced_denial() {
            return refuse(worker, sent, "", "", &WireError::Denied(denial)).await;
        }
        let mut id = sent.to_owned();
        let mut description = frame.description.as_deref().unwrap_or_default().to_owned();
        let verdict = hooks::run(engine, &self.policy, Hook::TriggerType, || {
            json!({"trigger_type_id": sent, "description": description, "context": self.session.context()})
        })
        .await;
        match verdict {
            Verdict::NoHook => {}
            Verdict::Deny => return refuse(worker, sent, "", "", &WireError::HookDenied).await,
            Verdict::Allow(fields) => {
                if let Some(mapped) = mapped_str(&fields, "trigger_type_id") {
                    mapped.clone_into(&mut id);
                }
                if let Some(mapped) = mapped_str(&fields, "description") {
                    mapped.clone_into(&mut description);
                }
            }
        }
        let taken = engine.trigger_types.get(&id).is_some_and(
            |t| matches!(&t.provider, Provider::Worker(p) if p.id != worker.id && !p.is_closed()),
        );
        if taken {
            return refuse(worker, &id, "", "", &WireError::TriggerTypeTaken(&id)).await;
        }
        triggers::add_type(engine, worker, &id, &description, frame).await;
    }

    /// `registertrigger`: trigger type allowed, hook, then the target check on the resolved
    /// target (the session's own functions are exempt, settled decision 4).
    pub(super) async fn register_trigger(
        &mut self,
        engine: &Arc<Engine>,
        worker: &Arc<WorkerHandle>,
        frame: &Frame<'_>,
    ) {
        let (Some(sent_id), Some(sent_type), Some(sent_fn)) = (
            frame.id.as_deref(),
            frame.trigger_type.as_deref(),
            frame.function_id.as_deref(),
        ) else {
            // The trusted handler logs and drops the incomplete frame.
            return triggers::register_from_worker(engine, worker, frame).await;
        };
        let decision = self.policy.decide_trigger_type(&self.session, sent_type);
        if let Some(denial) = decision.enforced_denial() {
            let error = WireError::Denied(denial);
            return refuse(worker, sent_id, sent_type, sent_fn, &error).await;
        }
        let (mut id, mut trigger_type, mut function_id) =
            (sent_id.to_owned(), sent_type.to_owned(), sent_fn.to_owned());
        let mut config = frame.config.map_or_else(raw_null, ToOwned::to_owned);
        let verdict = hooks::run(engine, &self.policy, Hook::Trigger, || {
            json!({"trigger_id": sent_id, "trigger_type": sent_type, "function_id": sent_fn,
                   "config": to_value(frame.config), "metadata": to_value(frame.metadata),
                   "context": self.session.context()})
        })
        .await;
        match verdict {
            Verdict::NoHook => {}
            Verdict::Deny => {
                let error = WireError::HookDenied;
                return refuse(worker, sent_id, sent_type, sent_fn, &error).await;
            }
            Verdict::Allow(fields) => {
                if let Some(mapped) = mapped_str(&fields, "trigger_id") {
                    mapped.clone_into(&mut id);
                }
                if let Some(mapped) = mapped_str(&fields, "trigger_type") {
                    mapped.clone_into(&mut trigger_type);
                }
                if let Some(mapped) = mapped_str(&fields, "function_id") {
                    mapped.clone_into(&mut function_id);
                }
                if let Some(mapped) = fields.get("config").and_then(to_raw) {
                    config = mapped;
                }
            }
        }
        let target = self
            .policy
            .resolve_trigger_target(&self.session, &function_id)
            .into_owned();
        let metadata = self.metadata(engine, &target);
        let decision = self
            .policy
            .decide_trigger_target(&self.session, &target, metadata.as_ref());
        if let Some(denial) = decision.enforced_denial() {
            let error = WireError::Denied(denial);
            return refuse(worker, &id, &trigger_type, &function_id, &error).await;
        }
        // Another connection's binding is never replaced through its id.
        if engine
            .triggers
            .get(&id)
            .is_some_and(|t| !t.owned_by(worker.id))
        {
            let decision = self.policy.decide_unregister_trigger(&self.session, &id);
            if let Some(denial) = decision.enforced_denial() {
                let error = WireError::Denied(denial);
                return refuse(worker, &id, &trigger_type, &function_id, &error).await;
            }
        }
        let binding = TriggerEntry {
            id: id.clone(),
            trigger_type: trigger_type.clone(),
            function_id: target,
            config,
            metadata: frame.metadata.map(ToOwned::to_owned),
            owner: Some(worker.clone()),
        };
        match triggers::register(engine, binding).await {
            Ok(()) => self.session.record_trigger(id),
            Err(error) => {
                let text = protocol::trigger_result_frame(&id, &trigger_type, &function_id, &error);
                let _ = worker.send_text(text).await;
            }
        }
    }

    /// `unregistertrigger`: only a trigger this session registered.
    pub(super) async fn unregister_trigger(
        &mut self,
        engine: &Arc<Engine>,
        worker: &Arc<WorkerHandle>,
        frame: &Frame<'_>,
    ) {
        let Some(id) = frame.id.as_deref() else {
            return;
        };
        let decision = self.policy.decide_unregister_trigger(&self.session, id);
        if let Some(denial) = decision.enforced_denial() {
            tracing::debug!(trigger.id = id, error = %denial, "unregistertrigger ignored");
            return;
        }
        triggers::unregister_from_worker(engine, worker, frame).await;
        self.session.forget_trigger(id);
    }
}
