//! What the auth function returns (spec §3.3), and the `AUTH_ERROR` failures of reading it
//! (spec §3.4).
//!
//! Calling the auth function, and its timeout, belong to the caller; turning a result into
//! session boundaries is `session.rs`'s job.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::wire_error::WireCode;

/// An auth function's result. Every field is optional and unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthResult {
    /// Per-namespace grants (exact ids or wildcards). Only `default` grants are given.
    #[serde(default)]
    pub namespaces: BTreeMap<String, Vec<String>>,
    /// Exact ids the session may invoke.
    #[serde(default)]
    pub allowed_functions: Vec<String>,
    /// Exact ids the session may never invoke; they win over every other rule.
    #[serde(default)]
    pub forbidden_functions: Vec<String>,
    /// Trigger types the session may bind; `None` means every type.
    #[serde(default)]
    pub allowed_trigger_types: Option<Vec<String>>,
    /// Whether the session may register trigger types (default false).
    #[serde(default)]
    pub allow_trigger_type_registration: bool,
    /// Whether the session may register functions (default true).
    #[serde(default = "crate::listener_config::default_true")]
    pub allow_function_registration: bool,
    /// Prefix added to the ids the session registers (spec §7).
    #[serde(default)]
    pub function_registration_prefix: Option<String>,
    /// Forwarded to the middleware and hooks.
    #[serde(default = "empty_object")]
    pub context: Value,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

impl Default for AuthResult {
    /// The serde defaults, as if the auth function returned `{}`.
    fn default() -> Self {
        Self {
            namespaces: BTreeMap::new(),
            allowed_functions: Vec::new(),
            forbidden_functions: Vec::new(),
            allowed_trigger_types: None,
            allow_trigger_type_registration: false,
            allow_function_registration: true,
            function_registration_prefix: None,
            context: empty_object(),
        }
    }
}

/// Why an auth result could not become a session. Every case answers `AUTH_ERROR`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    /// The auth function returned null or nothing.
    #[error("auth function returned no result")]
    NoResult,
    /// The result did not have the shape of an `AuthResult` (the serde message).
    #[error("{0}")]
    BadShape(String),
}

impl AuthError {
    /// Always `AUTH_ERROR`.
    #[must_use]
    pub const fn code(&self) -> WireCode {
        match self {
            Self::NoResult | Self::BadShape(_) => WireCode::AuthError,
        }
    }
}

impl AuthResult {
    /// Reads the auth function's return value.
    ///
    /// # Errors
    /// [`AuthError::NoResult`] for null, [`AuthError::BadShape`] for a wrong type.
    pub fn from_json(value: Value) -> Result<Self, AuthError> {
        if value.is_null() {
            return Err(AuthError::NoResult);
        }
        serde_json::from_value(value).map_err(|error| AuthError::BadShape(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::{AuthError, AuthResult};
    use serde_json::json;

    #[test]
    fn an_empty_result_takes_the_spec_defaults() {
        let result = AuthResult::from_json(json!({})).unwrap();
        assert_eq!(result, AuthResult::default());
        assert!(result.allow_function_registration);
        assert!(!result.allow_trigger_type_registration);
        assert_eq!(result.allowed_trigger_types, None);
        assert_eq!(result.context, json!({}));
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let result = AuthResult::from_json(json!({"user": "u1", "allowed_functions": ["a"]}));
        assert_eq!(result.unwrap().allowed_functions, vec!["a".to_owned()]);
    }

    #[test]
    fn null_and_wrong_types_are_auth_errors() {
        assert_eq!(AuthResult::from_json(json!(null)), Err(AuthError::NoResult));
        assert_eq!(
            AuthError::NoResult.to_string(),
            "auth function returned no result"
        );
        let Err(AuthError::BadShape(message)) =
            AuthResult::from_json(json!({"allowed_functions": "a"}))
        else {
            panic!("expected a shape error");
        };
        assert!(message.contains("invalid type"), "{message}");
        assert_eq!(
            AuthResult::from_json(json!("token"))
                .unwrap_err()
                .code()
                .as_str(),
            "AUTH_ERROR"
        );
    }
}
