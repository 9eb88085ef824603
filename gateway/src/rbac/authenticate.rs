//! The auth step of an upgrade: built-in JWT / API-key verification first, then the listener's
//! auth function (with the verified `identity`) when one is set. Every failure is a message
//! for the AUTH_ERROR frame; nothing here ever holds or logs the credential itself.

use std::time::Duration;

use policies::Session;

use super::ListenerState;
use super::auth_input::RequestInfo;
use super::control::CallError;
use crate::auth::Credentials;

/// Authenticates one connection; `Err` is the AUTH_ERROR message.
pub(crate) async fn authenticate(
    listener: &ListenerState,
    info: &RequestInfo,
) -> Result<Session, String> {
    let policy = &listener.policy;
    let verified = match &listener.builtin {
        Some(builtin) => Some(
            builtin
                .verify(Credentials {
                    headers: &info.headers,
                    query_params: &info.query_params,
                })
                .map_err(|failure| failure.0)?,
        ),
        None => None,
    };
    if let Some(function_id) = policy.auth_function_id() {
        let timeout = Duration::from_millis(policy.config().auth_timeout_ms);
        let input = info.auth_input(verified.as_ref().map(|v| &v.identity));
        let result = listener
            .control
            .invoke(function_id, input, Some(timeout))
            .await
            .map_err(|error| match error {
                CallError::Remote { message, .. } => message,
                CallError::Timeout => {
                    format!("auth function timed out after {} ms", timeout.as_millis())
                }
                CallError::Unavailable => error.to_string(),
            })?;
        if result.is_null() {
            return Err("auth function returned no result".to_owned());
        }
        return policy.session_from_auth(result).map_err(|e| e.to_string());
    }
    match verified {
        Some(verified) => policy
            .session_from_auth(verified.result)
            .map_err(|e| e.to_string()),
        None if policy.requires_auth() => Err("authentication required".to_owned()),
        None => Ok(policy.permissive_session()),
    }
}
