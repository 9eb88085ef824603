//! Typed `config` blocks of the built-in workers the engine runs, as iii writes them, and
//! their validated forms with defaults filled in.

use std::time::Duration;

use policies::RbacConfig;
use serde::Deserialize;

use super::rbac_listener::{RawRbacListener, RbacListener};

/// Where listeners bind when `host` is not given (iii binds 0.0.0.0; we default to loopback).
pub(crate) const DEFAULT_HOST: &str = "127.0.0.1";
/// iii's trusted worker port.
pub(crate) const DEFAULT_WORKER_PORT: u16 = 49134;
/// iii's REST API port.
pub(crate) const DEFAULT_HTTP_PORT: u16 = 3111;
/// iii's `handshake_timeout_ms` default.
const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// iii-http `default_timeout` (ms).
const DEFAULT_HTTP_TIMEOUT_MS: u64 = 30_000;
/// iii-http `concurrency_request_limit`.
const DEFAULT_CONCURRENCY_LIMIT: usize = 1024;
/// Largest accepted timeout (ms): one day. Larger values are mistakes, and would overflow
/// deadline arithmetic.
const MAX_TIMEOUT_MS: u64 = 86_400_000;
/// Largest `concurrency_request_limit` (tokio's semaphore bound).
const MAX_CONCURRENCY_LIMIT: usize = tokio::sync::Semaphore::MAX_PERMITS;

/// Checks a millisecond timeout: `Some(problem)` when it is 0 or over a day.
pub(crate) fn timeout_problem(ms: Option<u64>) -> Option<String> {
    match ms {
        Some(0) => Some("must be greater than 0 (milliseconds)".to_owned()),
        Some(ms) if ms > MAX_TIMEOUT_MS => Some(format!(
            "must be at most {MAX_TIMEOUT_MS} (one day, in milliseconds)"
        )),
        _ => None,
    }
}

/// `iii-worker-manager` `config` as written: iii's keys, plus three of ours for RBAC
/// listeners (`auth_timeout_ms`, `allow_self_invoke`, `limits.max_message_bytes`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWorkerManager {
    host: Option<String>,
    port: Option<u16>,
    handshake_timeout_ms: Option<u64>,
    middleware_function_id: Option<String>,
    #[serde(default, deserialize_with = "super::rbac_listener::present_rbac")]
    rbac: Option<RbacConfig>,
    auth_timeout_ms: Option<u64>,
    allow_self_invoke: Option<bool>,
    limits: Option<RawLimits>,
}

/// `limits` of an RBAC listener: only the message size is enforced by the engine.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub(crate) max_message_bytes: Option<u64>,
}

/// A worker listener (`iii-worker-manager`): trusted, or gated by RBAC when the entry has
/// `rbac` or `middleware_function_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerListenerConfig {
    /// Bind host.
    pub host: String,
    /// Bind port (0 = any).
    pub port: u16,
    /// Deadline for the HTTP upgrade request.
    pub handshake_timeout: Duration,
    /// The compiled policy of an RBAC listener; `None` for a trusted one.
    pub rbac: Option<RbacListener>,
}

impl WorkerListenerConfig {
    /// iii's trusted listener on loopback.
    pub(crate) fn trusted_default() -> Self {
        Self {
            host: DEFAULT_HOST.to_owned(),
            port: DEFAULT_WORKER_PORT,
            handshake_timeout: Duration::from_millis(DEFAULT_HANDSHAKE_TIMEOUT_MS),
            rbac: None,
        }
    }
}

impl RawWorkerManager {
    /// Validates one entry; `Err` holds each problem and the key it is about. `first` is the
    /// trusted listener, which cannot be gated (the auth and hook workers connect to it).
    pub(crate) fn validate(
        self,
        first: bool,
    ) -> Result<WorkerListenerConfig, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let gated = self.rbac.is_some() || self.middleware_function_id.is_some();
        if first && gated {
            let key = if self.rbac.is_some() {
                "rbac"
            } else {
                "middleware_function_id"
            };
            problems.push((
                key.to_owned(),
                "the first iii-worker-manager entry is the trusted listener and cannot have rbac or \
                 middleware_function_id; list a trusted entry (e.g. port 49134) first, then the RBAC listener"
                    .to_owned(),
            ));
        }
        if !gated {
            for (key, set) in [
                ("auth_timeout_ms", self.auth_timeout_ms.is_some()),
                ("allow_self_invoke", self.allow_self_invoke.is_some()),
                ("limits", self.limits.is_some()),
            ] {
                if set {
                    problems.push((
                        key.to_owned(),
                        "applies to RBAC listeners only (an entry with rbac or middleware_function_id)".to_owned(),
                    ));
                }
            }
        }
        let host = self.host.unwrap_or_else(|| DEFAULT_HOST.to_owned());
        if host.trim().is_empty() {
            problems.push(("host".to_owned(), "must not be empty".to_owned()));
        }
        for (key, ms) in [
            ("handshake_timeout_ms", self.handshake_timeout_ms),
            ("auth_timeout_ms", self.auth_timeout_ms),
        ] {
            if let Some(p) = timeout_problem(ms) {
                problems.push((key.to_owned(), p));
            }
        }
        let port = self.port.unwrap_or(DEFAULT_WORKER_PORT);
        let handshake_timeout_ms = self
            .handshake_timeout_ms
            .unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT_MS);
        let rbac = if gated && problems.is_empty() {
            let raw = RawRbacListener {
                host: host.clone(),
                port,
                handshake_timeout_ms,
                middleware_function_id: self.middleware_function_id,
                rbac: self.rbac,
                auth_timeout_ms: self.auth_timeout_ms,
                allow_self_invoke: self.allow_self_invoke,
                max_message_bytes: self.limits.and_then(|l| l.max_message_bytes),
            };
            match raw.validate() {
                Ok(listener) => Some(listener),
                Err(more) => {
                    problems.extend(more);
                    None
                }
            }
        } else {
            None
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(WorkerListenerConfig {
            host,
            port,
            handshake_timeout: Duration::from_millis(handshake_timeout_ms),
            rbac,
        })
    }
}

/// `iii-http` `config` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttp {
    host: Option<String>,
    port: Option<u16>,
    default_timeout: Option<u64>,
    concurrency_request_limit: Option<usize>,
    cors: Option<CorsConfig>,
    middleware: Option<Vec<HttpMiddleware>>,
}

/// `cors` of iii-http: when present, only these origins and methods are allowed (empty or
/// `*` means any, as in iii).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Allowed `Origin` values.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Allowed methods.
    #[serde(default)]
    pub allowed_methods: Vec<String>,
}

/// One global iii-http middleware: a function called before every route's handler.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpMiddleware {
    /// The function to call.
    pub function_id: String,
    /// Only `preHandler` exists.
    #[serde(default = "pre_handler")]
    pub phase: String,
    /// Lower runs first.
    #[serde(default)]
    pub priority: i64,
}

fn pre_handler() -> String {
    "preHandler".to_owned()
}

/// The validated REST API config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Bind host.
    pub host: String,
    /// Bind port (0 = any).
    pub port: u16,
    /// Per-request deadline (504 after it).
    pub default_timeout: Duration,
    /// Requests handled at once; more wait for a slot within the deadline.
    pub concurrency_request_limit: usize,
    /// Restrictive CORS when set; permissive otherwise (iii's development default).
    pub cors: Option<CorsConfig>,
    /// Global middleware, in the order it runs (by priority).
    pub middleware: Vec<HttpMiddleware>,
}

impl RawHttp {
    /// Validates the block.
    pub(crate) fn validate(self) -> Result<HttpConfig, Vec<(&'static str, String)>> {
        let mut problems = Vec::new();
        let mut middleware = self.middleware.unwrap_or_default();
        for m in &middleware {
            if m.phase != "preHandler" {
                problems.push((
                    "middleware",
                    format!("phase `{}` is not supported (only `preHandler`)", m.phase),
                ));
            }
            if m.function_id.trim().is_empty() {
                problems.push(("middleware", "function_id must not be empty".to_owned()));
            }
        }
        middleware.sort_by_key(|m| m.priority);
        let host = self.host.unwrap_or_else(|| DEFAULT_HOST.to_owned());
        if host.trim().is_empty() {
            problems.push(("host", "must not be empty".to_owned()));
        }
        if let Some(p) = timeout_problem(self.default_timeout) {
            problems.push(("default_timeout", p));
        }
        if let Some(cors) = &self.cors {
            for origin in cors.allowed_origins.iter().filter(|o| o.as_str() != "*") {
                if http::HeaderValue::try_from(origin.as_str()).is_err() || !origin.contains("://")
                {
                    problems.push((
                        "cors.allowed_origins",
                        format!("`{origin}` is not an origin (scheme://host[:port]) or `*`"),
                    ));
                }
            }
            for method in cors.allowed_methods.iter().filter(|m| m.as_str() != "*") {
                if http::Method::from_bytes(method.to_uppercase().as_bytes()).is_err() {
                    problems.push((
                        "cors.allowed_methods",
                        format!("`{method}` is not an HTTP method"),
                    ));
                }
            }
        }
        if let Some(n) = self.concurrency_request_limit
            && !(1..=MAX_CONCURRENCY_LIMIT).contains(&n)
        {
            problems.push((
                "concurrency_request_limit",
                format!("must be between 1 and {MAX_CONCURRENCY_LIMIT}"),
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(HttpConfig {
            host,
            port: self.port.unwrap_or(DEFAULT_HTTP_PORT),
            default_timeout: Duration::from_millis(
                self.default_timeout.unwrap_or(DEFAULT_HTTP_TIMEOUT_MS),
            ),
            concurrency_request_limit: self
                .concurrency_request_limit
                .unwrap_or(DEFAULT_CONCURRENCY_LIMIT),
            cors: self.cors,
            middleware,
        })
    }
}
