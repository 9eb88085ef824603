//! The three registration hooks (spec rbac §6): called in process through the router within
//! `auth_timeout_ms`. A hook allows iff it returns a JSON object; the fields it returns
//! replace the registration's (which fields count is `registration.rs`'s business).

use std::sync::Arc;
use std::time::Duration;

use policies::ListenerPolicy;
use serde_json::{Map, Value};

use crate::engine::Engine;
use crate::router;

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hook {
    /// `rbac.on_function_registration_function_id`.
    Function,
    /// `rbac.on_trigger_registration_function_id`.
    Trigger,
    /// `rbac.on_trigger_type_registration_function_id`.
    TriggerType,
}

impl Hook {
    /// The function configured for this hook, if any.
    fn function_id(self, policy: &ListenerPolicy) -> Option<&str> {
        let rbac = policy.config().rbac.as_ref()?;
        match self {
            Self::Function => rbac.on_function_registration_function_id.as_deref(),
            Self::Trigger => rbac.on_trigger_registration_function_id.as_deref(),
            Self::TriggerType => rbac.on_trigger_type_registration_function_id.as_deref(),
        }
    }
}

/// What a hook said.
#[derive(Debug)]
pub(super) enum Verdict {
    /// No hook is configured: the registration goes on unchanged.
    NoHook,
    /// The hook returned an object: its fields override the registration's.
    Allow(Map<String, Value>),
    /// The hook threw, timed out, is not registered, or returned a non-object.
    Deny,
}

/// Runs `hook` with `input` (built only when the hook is configured).
pub(super) async fn run(
    engine: &Arc<Engine>,
    policy: &ListenerPolicy,
    hook: Hook,
    input: impl FnOnce() -> Value,
) -> Verdict {
    let Some(function_id) = hook.function_id(policy) else {
        return Verdict::NoHook;
    };
    let timeout = Duration::from_millis(policy.config().auth_timeout_ms);
    let data = input().to_string();
    match router::invoke(engine, function_id, &data, None, timeout).await {
        Ok(result) => match serde_json::from_str::<Value>(result.get()) {
            Ok(Value::Object(fields)) => Verdict::Allow(fields),
            _ => {
                tracing::debug!(
                    hook = function_id,
                    "registration hook returned no object; denied"
                );
                Verdict::Deny
            }
        },
        Err(error) => {
            tracing::debug!(hook = function_id, error = %error.message, "registration hook failed; denied");
            Verdict::Deny
        }
    }
}

/// A string field the hook returned, if it returned one.
pub(super) fn mapped_str<'a>(fields: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    fields.get(key).and_then(Value::as_str)
}
