//! The compiled `auth:` block of one listener: which credential a request presents (API key
//! header or query parameter, bearer JWT or bearer API key), and handing it to `jwt.rs` or
//! `api_keys.rs`.
//!
//! Calling `rbac.auth_function_id` with the resulting identity, and turning a failure into
//! `AUTH_ERROR` + 1008, belong to the listener.

use std::collections::HashMap;
use std::fmt;

use policies::ConfigError;
use serde_json::Value;

use super::api_keys::ApiKeys;
use super::config_fields::{Fields, Problems};
use super::jwt::JwtVerifier;

const KEYS: &[&str] = &["jwt", "api_keys"];

/// The header an API key may come in.
const API_KEY_HEADER: &str = "x-api-key";
/// The query parameter an API key may come in.
const API_KEY_PARAM: &str = "api_key";

/// The compiled `auth:` block of one listener. Its `Debug` shows no secret.
#[derive(Debug)]
pub struct BuiltinAuth {
    jwt: Option<JwtVerifier>,
    api_keys: Option<ApiKeys>,
}

/// What a verifier looks at: the upgrade request's headers (lowercase names, last value wins)
/// and its form-decoded query parameters. Its `Debug` shows names, never values.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    /// Request headers.
    pub headers: &'a HashMap<String, String>,
    /// Query parameters, repeated keys in order.
    pub query_params: &'a HashMap<String, Vec<String>>,
}

impl fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field(
                "query_params",
                &self.query_params.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
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

/// The credential chosen from a request.
enum Presented<'a> {
    Jwt(&'a str),
    ApiKey(&'a str),
}

impl BuiltinAuth {
    /// Compiles an `auth:` block, reading every `*_file` it names.
    ///
    /// # Errors
    /// Every problem, with its key path inside the block.
    pub fn from_config(config: &Value) -> Result<Self, Vec<ConfigError>> {
        let mut problems = Problems::new();
        let Some(fields) = Fields::new(config, "", KEYS, &mut problems) else {
            return Err(problems);
        };
        let jwt = fields
            .get("jwt")
            .and_then(|jwt| JwtVerifier::from_config(jwt, "jwt", &mut problems));
        let api_keys = fields
            .get("api_keys")
            .and_then(|keys| ApiKeys::from_config(keys, "api_keys", &mut problems));
        if !fields.has("jwt") && !fields.has("api_keys") {
            problems.push(ConfigError::new("", "give jwt, api_keys or both"));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self { jwt, api_keys })
    }

    /// Verifies a connection's credentials.
    ///
    /// # Errors
    /// Missing, malformed, expired or unknown credentials.
    pub fn verify(&self, credentials: Credentials<'_>) -> Result<Verified, AuthFailure> {
        match self.choose(credentials)? {
            Presented::Jwt(token) => match &self.jwt {
                Some(jwt) => jwt.verify(token),
                None => Err(self.missing()),
            },
            Presented::ApiKey(key) => match &self.api_keys {
                Some(keys) => keys.verify(key),
                None => Err(self.missing()),
            },
        }
    }

    /// Whether `jwt:` is configured.
    #[must_use]
    pub const fn has_jwt(&self) -> bool {
        self.jwt.is_some()
    }

    /// How many API keys are loaded (0 without `api_keys:`).
    #[must_use]
    pub fn api_key_count(&self) -> usize {
        self.api_keys.as_ref().map_or(0, ApiKeys::len)
    }

    /// The order: `x-api-key`, then `api_key` (API keys only), then `Authorization: Bearer`,
    /// which is a JWT when it has three dot-separated segments (or when no API keys are
    /// configured) and an API key otherwise.
    fn choose<'a>(&self, credentials: Credentials<'a>) -> Result<Presented<'a>, AuthFailure> {
        if self.api_keys.is_some() {
            if let Some(key) = credentials
                .headers
                .get(API_KEY_HEADER)
                .map(|k| k.trim())
                .filter(|k| !k.is_empty())
            {
                return Ok(Presented::ApiKey(key));
            }
            match credentials
                .query_params
                .get(API_KEY_PARAM)
                .map(Vec::as_slice)
            {
                Some([key]) if !key.is_empty() => return Ok(Presented::ApiKey(key)),
                Some([_, _, ..]) => {
                    return Err(AuthFailure(
                        "the api_key query parameter is given more than once".to_owned(),
                    ));
                }
                _ => {}
            }
        }
        let Some(authorization) = credentials.headers.get("authorization") else {
            return Err(self.missing());
        };
        let authorization = authorization.trim();
        let (scheme, token) = authorization.split_once(' ').unwrap_or((authorization, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthFailure(
                "unsupported Authorization scheme (expected Bearer)".to_owned(),
            ));
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(self.missing());
        }
        if self.jwt.is_some() && (looks_like_jwt(token) || self.api_keys.is_none()) {
            Ok(Presented::Jwt(token))
        } else {
            Ok(Presented::ApiKey(token))
        }
    }

    fn missing(&self) -> AuthFailure {
        let places = match (self.jwt.is_some(), self.api_keys.is_some()) {
            (true, true) => "Authorization: Bearer or x-api-key",
            (true, false) => "Authorization: Bearer",
            (false, _) => "x-api-key, Authorization: Bearer or api_key",
        };
        AuthFailure(format!("missing credentials ({places})"))
    }
}

/// Three dot-separated segments: `header.payload.signature`.
fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}

#[cfg(test)]
#[path = "builtin_tests.rs"]
mod tests;
