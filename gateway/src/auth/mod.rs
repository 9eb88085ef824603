//! Built-in authentication under a listener's `auth:` key (JWT and API keys), checked before
//! `rbac.auth_function_id`. Never logs tokens, keys or Authorization headers.

use std::collections::HashMap;

use policies::ConfigError;
use serde_json::Value;

/// The compiled `auth:` block of one listener.
#[derive(Debug)]
pub struct BuiltinAuth {
    _private: (),
}

/// What a verifier looks at: the upgrade request's headers (lowercase names, last value wins)
/// and its form-decoded query parameters.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    /// Request headers.
    pub headers: &'a HashMap<String, String>,
    /// Query parameters, repeated keys in order.
    pub query_params: &'a HashMap<String, Vec<String>>,
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// `{kind, subject, claims | key_id}`: passed to the auth function as `identity`.
    pub identity: Value,
    /// The AuthResult JSON the built-in maps this caller to.
    pub result: Value,
}

/// Why verification failed; the message is safe to send to the client and to log (it never
/// holds the credential).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthFailure(pub String);

impl BuiltinAuth {
    /// Compiles an `auth:` block.
    ///
    /// # Errors
    /// Every problem, with its key path inside the block.
    pub fn from_config(_config: &Value) -> Result<Self, Vec<ConfigError>> {
        Err(vec![ConfigError::new(
            "",
            "built-in auth (jwt, api_keys) is not available in this build",
        )])
    }

    /// Verifies a connection's credentials.
    ///
    /// # Errors
    /// Missing, malformed, expired or unknown credentials.
    pub fn verify(&self, _credentials: Credentials<'_>) -> Result<Verified, AuthFailure> {
        Err(AuthFailure("built-in auth is not available".to_owned()))
    }
}
