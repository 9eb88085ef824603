//! An RBAC listener declared in the engine's own `config.yaml` (settled decision 15): an
//! `iii-worker-manager` entry after the first with `rbac` and/or `middleware_function_id`,
//! mapped onto `policies::ListenerConfig` and compiled into a `ListenerPolicy`.
//!
//! Parsing the entry is `workers.rs`'s job; enforcing the policy is `crate::rbac`'s.

use std::sync::Arc;

use policies::{LimitsConfig, ListenerConfig, ListenerPolicy, RbacConfig};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::listener::MAX_MESSAGE_BYTES;

/// The compiled policy of one RBAC listener, shared by its sessions.
#[derive(Debug, Clone)]
pub struct RbacListener(Arc<ListenerPolicy>);

impl RbacListener {
    /// The compiled policy.
    #[must_use]
    pub fn policy(&self) -> &Arc<ListenerPolicy> {
        &self.0
    }
}

impl PartialEq for RbacListener {
    fn eq(&self, other: &Self) -> bool {
        self.0.config() == other.0.config()
    }
}

// JSON values in a config never hold NaN, so equality is reflexive.
impl Eq for RbacListener {}

/// The keys of one gated entry, defaults of the trusted listener already applied.
#[derive(Debug)]
pub(crate) struct RawRbacListener {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) handshake_timeout_ms: u64,
    pub(crate) middleware_function_id: Option<String>,
    pub(crate) rbac: Option<RbacConfig>,
    pub(crate) auth_timeout_ms: Option<u64>,
    pub(crate) allow_self_invoke: Option<bool>,
    pub(crate) max_message_bytes: Option<u64>,
}

impl RawRbacListener {
    /// Maps the entry onto a `ListenerConfig` and compiles it; every problem is reported with
    /// its key path inside the entry's `config`. Timeouts are checked by the caller.
    pub(crate) fn validate(self) -> Result<RbacListener, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let limit = u64::try_from(MAX_MESSAGE_BYTES).unwrap_or(u64::MAX);
        if self.max_message_bytes.is_some_and(|n| n > limit) {
            problems.push((
                "limits.max_message_bytes".to_owned(),
                format!("must be at most {limit} (the engine's message limit, 64 MiB)"),
            ));
        }
        let defaults = ListenerConfig::default();
        let config = ListenerConfig {
            host: self.host,
            port: self.port,
            handshake_timeout_ms: self.handshake_timeout_ms,
            middleware_function_id: self.middleware_function_id,
            rbac: self.rbac,
            auth_timeout_ms: self.auth_timeout_ms.unwrap_or(defaults.auth_timeout_ms),
            allow_self_invoke: self.allow_self_invoke.unwrap_or(defaults.allow_self_invoke),
            limits: LimitsConfig {
                max_message_bytes: self
                    .max_message_bytes
                    .unwrap_or(defaults.limits.max_message_bytes),
                ..LimitsConfig::default()
            },
            ..defaults
        };
        match ListenerPolicy::new(config) {
            Ok(policy) if problems.is_empty() => Ok(RbacListener(Arc::new(policy))),
            Ok(_) => Err(problems),
            Err(errors) => {
                problems.extend(
                    errors
                        .into_iter()
                        .map(|e| (e.path().to_owned(), e.problem().to_owned())),
                );
                Err(problems)
            }
        }
    }
}

/// `rbac:` when the key is written must be a block: an explicit empty `rbac:` is an error,
/// never "no gating" (a missing key still means no `rbac` block, through serde's default).
pub(crate) fn present_rbac<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<RbacConfig>, D::Error> {
    match Option::<RbacConfig>::deserialize(deserializer)? {
        Some(rbac) => Ok(Some(rbac)),
        None => Err(D::Error::custom(
            "rbac is empty: remove the key to disable RBAC, or give at least expose_functions: []",
        )),
    }
}
