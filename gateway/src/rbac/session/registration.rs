//! Registrations from the client: the session's flags, the registration hooks (an object
//! allows, with mapped fields; anything else denies), the function prefix, the trigger type
//! and target checks, refusals answered per settled decision 5, no takeover of an id another
//! worker serves, and unregistration of the session's own functions and triggers only.

use std::time::Duration;

use policies::{Denial, is_ownable_function};
use serde_json::{Map, Value, json};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::{Outbox, Shared};
use crate::rbac::control::CallError;
use crate::rbac::frames::{self, str_field};
use crate::status::bump;

/// How long a registration of an id another worker still serves waits for that worker to go
/// (a reconnecting client's old session may not be cleaned up yet).
const TAKEOVER_WAIT: Duration = Duration::from_millis(1000);
const TAKEOVER_POLL: Duration = Duration::from_millis(100);
/// How old a catalog may be for the takeover check (shared by sessions registering at once).
const CATALOG_AGE: Duration = Duration::from_millis(100);
/// Listing trigger types or bindings for the takeover check.
const LIST_TIMEOUT: Duration = Duration::from_secs(5);

/// Calls a registration hook: `Ok(Some(map))` to go on with the mapped fields, `Ok(None)`
/// when no hook is configured, `Err` when it denied (threw, timed out, or returned a
/// non-object).
async fn call_hook(
    shared: &Shared,
    hook: Option<&str>,
    input: Value,
) -> Result<Option<Map<String, Value>>, String> {
    let Some(hook) = hook else {
        return Ok(None);
    };
    let timeout = Duration::from_millis(shared.listener.policy.config().auth_timeout_ms);
    match shared
        .listener
        .control
        .invoke(hook, input, Some(timeout))
        .await
    {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err("hook returned no object".to_owned()),
        Err(error) => Err(error.to_string()),
    }
}

fn hook_denial(shared: &Shared, kind: &str, subject: &str, why: &str) {
    refused(shared, kind, subject, &format!("denied by hook: {why}"));
}

/// Audits and counts a refused registration (`REGISTRATION_DENIED`).
fn refused(shared: &Shared, kind: &str, subject: &str, why: &str) {
    shared.refused(
        kind,
        subject,
        "REGISTRATION_DENIED",
        why,
        false,
        &shared.listener.status.denied,
    );
}

fn rbac_hook(
    shared: &Shared,
    pick: fn(&policies::RbacConfig) -> Option<&String>,
) -> Option<String> {
    shared
        .listener
        .policy
        .config()
        .rbac
        .as_ref()
        .and_then(pick)
        .cloned()
}

/// Copies the string fields a hook may change (absent keeps the value).
fn take_string(mapped: &Map<String, Value>, key: &str, into: &mut String) {
    if let Some(Value::String(value)) = mapped.get(key) {
        value.clone_into(into);
    }
}

pub(super) async fn on_register_function(shared: &Shared, text: &str, out: &mut Outbox) {
    let policy = &shared.listener.policy;
    let Some(mut frame) = frames::parse_object(text) else {
        return;
    };
    let mut id = str_field(&frame, "id").to_owned();
    let decision = policy
        .decide_register_function(&shared.session(), &id)
        .into_owned();
    if shared.allowed("register_function", &decision).is_err() {
        return;
    }
    let context = shared.session().context().clone();
    let hook = rbac_hook(shared, |r| r.on_function_registration_function_id.as_ref());
    let input = json!({
        "function_id": id,
        "description": frame.get("description").cloned().unwrap_or(Value::Null),
        "metadata": frame.get("metadata").cloned().unwrap_or(Value::Null),
        "context": context,
    });
    match call_hook(shared, hook.as_deref(), input).await {
        Err(why) => return hook_denial(shared, "register_function", &id, &why),
        Ok(Some(mapped)) => {
            take_string(&mapped, "function_id", &mut id);
            for key in ["description", "metadata"] {
                if let Some(value) = mapped.get(key) {
                    frame.insert(key.into(), value.clone());
                }
            }
        }
        Ok(None) => {}
    }
    let stored = shared.session().stored_id(&id).into_owned();
    if shared.listener.reserved_function(&stored) {
        let why = "function id reserved for the gateway's auth, middleware or hooks";
        refused(shared, "register_function", &stored, why);
        return;
    }
    if !shared.session().owns_function(&stored)
        && taken_by_another(shared, Claim::Function, &stored).await
    {
        let why = "function id already served by another worker";
        refused(shared, "register_function", &stored, why);
        return;
    }
    if is_ownable_function(&stored) {
        shared.session().record_function(stored.clone());
    }
    frame.insert("id".into(), stored.into());
    bump(&shared.listener.status.allowed);
    out.engine(Message::text(Value::Object(frame).to_string()));
}

/// What a registration would claim on the engine.
#[derive(Debug, Clone, Copy)]
enum Claim {
    Function,
    TriggerType,
    Trigger,
}

/// Whether the engine already has `id` (a function, trigger type or trigger binding), by
/// asking it now.
async fn in_use(shared: &Shared, claim: Claim, id: &str) -> Result<bool, CallError> {
    let control = &shared.listener.control;
    let (function, key) = match claim {
        Claim::Function => {
            let catalog = control.fresh_catalog(CATALOG_AGE).await?;
            return Ok(catalog.contains(id));
        }
        Claim::TriggerType => ("engine::triggers::list", "triggers"),
        Claim::Trigger => ("engine::registered-triggers::list", "registered_triggers"),
    };
    let list = control
        .invoke(
            function,
            json!({ "include_internal": true }),
            Some(LIST_TIMEOUT),
        )
        .await?;
    let listed = list
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    Ok(listed
        .filter_map(|entry| entry.get("id").and_then(Value::as_str))
        .any(|listed| listed == id))
}

/// Whether the engine has `id` from another connection: registering it would take it over
/// (the newest registration wins on the trusted port), so it is refused. Waits briefly for a
/// departing owner (the same client reconnecting) to be cleaned up. Fails closed: an engine
/// that cannot be asked counts as "taken".
async fn taken_by_another(shared: &Shared, claim: Claim, id: &str) -> bool {
    let deadline = tokio::time::Instant::now() + TAKEOVER_WAIT;
    loop {
        match in_use(shared, claim, id).await {
            Ok(false) => return false,
            Ok(true) if tokio::time::Instant::now() < deadline => {}
            Ok(true) | Err(_) => return true,
        }
        tokio::time::sleep(TAKEOVER_POLL).await;
    }
}

pub(super) async fn on_unregister_function(shared: &Shared, text: &str, out: &mut Outbox) {
    let Some(mut frame) = frames::parse_object(text) else {
        return;
    };
    let stored = shared
        .session()
        .stored_id(str_field(&frame, "id"))
        .into_owned();
    if !shared.session().owns_function(&stored) {
        let why = "not registered by this session";
        refused(shared, "unregister_function", &stored, why);
        return;
    }
    shared.session().forget_function(&stored);
    frame.insert("id".into(), stored.into());
    out.engine(Message::text(Value::Object(frame).to_string()));
}

pub(super) async fn on_register_trigger_type(shared: &Shared, text: &str, out: &mut Outbox) {
    let policy = &shared.listener.policy;
    let Some(mut frame) = frames::parse_object(text) else {
        return;
    };
    let mut id = str_field(&frame, "id").to_owned();
    let decision = policy
        .decide_register_trigger_type(&shared.session(), &id)
        .into_owned();
    if let Err(denial) = shared.allowed("register_trigger_type", &decision) {
        let reply =
            frames::registration_denied(&id, "", "", denial.code().as_str(), &denial.message());
        return out.client(reply);
    }
    let context = shared.session().context().clone();
    let hook = rbac_hook(shared, |r| {
        r.on_trigger_type_registration_function_id.as_ref()
    });
    let description = str_field(&frame, "description").to_owned();
    let input = json!({ "trigger_type_id": id, "description": description, "context": context });
    match call_hook(shared, hook.as_deref(), input).await {
        Err(why) => {
            hook_denial(shared, "register_trigger_type", &id, &why);
            let reply =
                frames::registration_denied(&id, "", "", "REGISTRATION_DENIED", "denied by hook");
            return out.client(reply);
        }
        Ok(Some(mapped)) => {
            take_string(&mapped, "trigger_type_id", &mut id);
            if let Some(Value::String(d)) = mapped.get("description") {
                frame.insert("description".into(), d.clone().into());
            }
        }
        Ok(None) => {}
    }
    let own = shared.owns_trigger_type(&id);
    if !own && taken_by_another(shared, Claim::TriggerType, &id).await {
        let why = "trigger type already provided by another worker";
        refused(shared, "register_trigger_type", &id, why);
        return out.client(frames::registration_denied(
            &id,
            "",
            "",
            "REGISTRATION_DENIED",
            why,
        ));
    }
    shared.record_trigger_type(&id);
    frame.insert("id".into(), id.into());
    bump(&shared.listener.status.allowed);
    out.engine(Message::text(Value::Object(frame).to_string()));
}

pub(super) async fn on_register_trigger(shared: &Shared, text: &str, out: &mut Outbox) {
    let policy = &shared.listener.policy;
    let Some(mut frame) = frames::parse_object(text) else {
        return;
    };
    let mut id = str_field(&frame, "id").to_owned();
    let mut trigger_type = str_field(&frame, "trigger_type").to_owned();
    let mut function_id = str_field(&frame, "function_id").to_owned();
    let deny = |id: &str, trigger_type: &str, function_id: &str, denial: &Denial<'_>| {
        frames::registration_denied(
            id,
            trigger_type,
            function_id,
            denial.code().as_str(),
            &denial.message(),
        )
    };
    let decision = policy
        .decide_trigger_type(&shared.session(), &trigger_type)
        .into_owned();
    if let Err(denial) = shared.allowed("register_trigger", &decision) {
        return out.client(deny(&id, &trigger_type, &function_id, &denial));
    }
    let context = shared.session().context().clone();
    let hook = rbac_hook(shared, |r| r.on_trigger_registration_function_id.as_ref());
    let input = json!({
        "trigger_id": id,
        "trigger_type": trigger_type,
        "function_id": function_id,
        "config": frame.get("config").cloned().unwrap_or(Value::Null),
        "metadata": frame.get("metadata").cloned().unwrap_or(Value::Null),
        "context": context,
    });
    match call_hook(shared, hook.as_deref(), input).await {
        Err(why) => {
            hook_denial(shared, "register_trigger", &id, &why);
            let reply = frames::registration_denied(
                &id,
                &trigger_type,
                &function_id,
                "REGISTRATION_DENIED",
                "denied by hook",
            );
            return out.client(reply);
        }
        Ok(Some(mapped)) => {
            take_string(&mapped, "trigger_id", &mut id);
            take_string(&mapped, "trigger_type", &mut trigger_type);
            take_string(&mapped, "function_id", &mut function_id);
            if let Some(config) = mapped.get("config") {
                frame.insert("config".into(), config.clone());
            }
        }
        Ok(None) => {}
    }
    let target = policy
        .resolve_trigger_target(&shared.session(), &function_id)
        .into_owned();
    let catalog = if policy.needs_metadata() {
        Some(shared.catalog(false).await)
    } else {
        None
    };
    let decision = {
        let session = shared.session();
        let metadata = catalog.as_ref().and_then(|c| c.metadata(&target));
        policy
            .decide_register_trigger(&session, &trigger_type, &target, metadata)
            .into_owned()
    };
    if let Err(denial) = shared.allowed("register_trigger", &decision) {
        return out.client(deny(&id, &trigger_type, &function_id, &denial));
    }
    let own = shared.session().owns_trigger(&id);
    if !own && taken_by_another(shared, Claim::Trigger, &id).await {
        let why = "trigger id already in use by another worker";
        refused(shared, "register_trigger", &id, why);
        return out.client(frames::registration_denied(
            &id,
            &trigger_type,
            &function_id,
            "REGISTRATION_DENIED",
            why,
        ));
    }
    shared.session().record_trigger(id.clone());
    frame.insert("id".into(), id.into());
    frame.insert("trigger_type".into(), trigger_type.into());
    frame.insert("function_id".into(), target.into());
    bump(&shared.listener.status.allowed);
    out.engine(Message::text(Value::Object(frame).to_string()));
}

pub(super) async fn on_unregister_trigger(shared: &Shared, text: Utf8Bytes, out: &mut Outbox) {
    let Some(frame) = frames::parse_object(text.as_str()) else {
        return;
    };
    let id = str_field(&frame, "id");
    let decision = shared
        .listener
        .policy
        .decide_unregister_trigger(&shared.session(), id)
        .into_owned();
    if shared.allowed("unregister_trigger", &decision).is_err() {
        return;
    }
    shared.session().forget_trigger(id);
    out.engine(Message::Text(text));
}
