//! One RBAC listener block as written in the gateway config (the `listeners:` entries of the
//! ARCHITECTURE config shape): iii's `rbac` block verbatim, iii's listener-level keys, and our
//! additions outside `rbac`. Unknown keys are errors at every level.
//!
//! This is the raw stage: values as written, defaults filled by serde. Checking and compiling
//! is `listener_policy.rs`'s job.

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::expose_filter::FunctionFilter;

/// Default bind address (iii: `0.0.0.0`; we bind loopback unless told otherwise).
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// Default port of a public RBAC listener.
pub const DEFAULT_PORT: u16 = 49135;
/// iii's default deadline for the HTTP upgrade request headers.
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Default deadline for the auth function and the registration hooks (settled decision 3).
pub const DEFAULT_AUTH_TIMEOUT_MS: u64 = 5_000;
/// Default largest message a client may send (settled decision 8): 16 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 16 * 1024 * 1024;

/// A `listeners:` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a listener block (a map)")]
pub struct ListenerConfig {
    /// Optional name, used by routes, the ready file and policy tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Bind address.
    #[serde(default = "default_host")]
    pub host: String,
    /// Bind port; 0 picks a free one.
    #[serde(default = "default_port")]
    pub port: u16,
    /// iii's listener-level deadline for the upgrade request headers.
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
    /// iii's listener-level middleware: wraps invocations (settled decision 6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middleware_function_id: Option<String>,
    /// iii's `rbac` block; absent means no gating at all. An explicit empty `rbac:` (null) is
    /// an error, never "no gating".
    #[serde(
        default,
        deserialize_with = "present_rbac",
        skip_serializing_if = "Option::is_none"
    )]
    pub rbac: Option<RbacConfig>,
    /// Serve TLS with the gateway's certificates.
    #[serde(default)]
    pub tls: bool,
    /// Deadline for the auth function and the registration hooks.
    #[serde(default = "default_auth_timeout_ms")]
    pub auth_timeout_ms: u64,
    /// Built-in JWT / API-key auth, checked before `auth_function_id`. Kept as written here;
    /// the gateway's auth module gives it a type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<BuiltinAuthConfig>,
    /// Size, connection and rate limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Whether a session may call and bind triggers to its own functions (settled decision 4).
    #[serde(default = "default_true")]
    pub allow_self_invoke: bool,
    /// Report would-be denials instead of enforcing them.
    #[serde(default)]
    pub shadow: bool,
    /// Channel socket options.
    #[serde(default)]
    pub channels: ChannelsConfig,
    /// Peers whose `X-Forwarded-For` is honoured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
}

/// iii's `rbac` block, exactly its five keys.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an rbac block (a map)")]
pub struct RbacConfig {
    /// Called once per upgrade; unset means every session is permissive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_function_id: Option<String>,
    /// OR of filters; empty exposes nothing beyond the session's own lists and the carve-out.
    #[serde(default)]
    pub expose_functions: Vec<FunctionFilter>,
    /// Hook run on `registerfunction`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_function_registration_function_id: Option<String>,
    /// Hook run on `registertrigger`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_trigger_registration_function_id: Option<String>,
    /// Hook run on `registertriggertype`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_trigger_type_registration_function_id: Option<String>,
}

/// `limits:`. Only `max_message_bytes` has a default; the others are off unless set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a limits block (a map)")]
pub struct LimitsConfig {
    /// Largest message a client may send.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: u64,
    /// Open connections on this listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u64>,
    /// Open connections per client address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_ip: Option<u64>,
    /// Upgrade attempts per client address per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrades_per_ip_per_second: Option<u64>,
    /// Invocations per session per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocations_per_second: Option<u64>,
    /// Burst allowance for `invocations_per_second`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
}

/// `channels:`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a channels block (a map)")]
pub struct ChannelsConfig {
    /// Run the auth hook on channel upgrades too (settled decision 7).
    #[serde(default)]
    pub require_auth: bool,
}

/// The built-in auth block, as written. Its `Debug` never prints the contents: they hold
/// keys and secrets.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BuiltinAuthConfig(pub Value);

impl fmt::Debug for BuiltinAuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BuiltinAuthConfig(<redacted>)")
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_connections: None,
            max_connections_per_ip: None,
            upgrades_per_ip_per_second: None,
            invocations_per_second: None,
            burst: None,
        }
    }
}

impl Default for ListenerConfig {
    /// `{}`: every default, no `rbac` block.
    fn default() -> Self {
        Self {
            name: None,
            host: default_host(),
            port: DEFAULT_PORT,
            handshake_timeout_ms: DEFAULT_HANDSHAKE_TIMEOUT_MS,
            middleware_function_id: None,
            rbac: None,
            tls: false,
            auth_timeout_ms: DEFAULT_AUTH_TIMEOUT_MS,
            auth: None,
            limits: LimitsConfig::default(),
            allow_self_invoke: true,
            shadow: false,
            channels: ChannelsConfig::default(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// `rbac:` when the key is written: a block is required. Only called for a present key, so a
/// missing key still means "no rbac block" (serde's default).
fn present_rbac<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<RbacConfig>, D::Error> {
    match Option::<RbacConfig>::deserialize(deserializer)? {
        Some(rbac) => Ok(Some(rbac)),
        None => Err(D::Error::custom(
            "rbac is empty: remove the key to disable RBAC, or give at least expose_functions: []",
        )),
    }
}

fn default_host() -> String {
    DEFAULT_HOST.to_owned()
}

const fn default_port() -> u16 {
    DEFAULT_PORT
}

const fn default_handshake_timeout_ms() -> u64 {
    DEFAULT_HANDSHAKE_TIMEOUT_MS
}

const fn default_auth_timeout_ms() -> u64 {
    DEFAULT_AUTH_TIMEOUT_MS
}

const fn default_max_message_bytes() -> u64 {
    DEFAULT_MAX_MESSAGE_BYTES
}

/// serde's `default = "…"` for flags that are on unless written off (also `AuthResult`'s).
pub(crate) const fn default_true() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::{ListenerConfig, RbacConfig};
    use crate::config_error::from_yaml;
    use crate::expose_filter::FunctionFilter;

    #[test]
    fn an_empty_block_takes_every_default() {
        let config: ListenerConfig = from_yaml("{}").unwrap();
        assert_eq!(config, ListenerConfig::default());
        assert_eq!(config.limits.max_message_bytes, 16 * 1024 * 1024);
        assert!(config.allow_self_invoke);
        assert!(!config.shadow);
        assert!(!config.channels.require_auth);
        assert!(config.rbac.is_none());
    }

    #[test]
    fn the_architecture_example_parses() {
        let config: ListenerConfig = from_yaml(
            r#"
name: public-workers
host: 127.0.0.1
port: 49135
handshake_timeout_ms: 10000
middleware_function_id: my-app::middleware
rbac:
  auth_function_id: my-app::auth
  expose_functions: [ 'match("api::*")', { metadata: { public: true } } ]
  on_function_registration_function_id: my-app::on-fn-reg
  on_trigger_registration_function_id: my-app::on-trig-reg
  on_trigger_type_registration_function_id: my-app::on-type-reg
tls: true
auth_timeout_ms: 5000
auth: { jwt: { secret: s3cr3t }, api_keys: {} }
limits: { max_message_bytes: 16777216, max_connections: 10000, max_connections_per_ip: 100,
          upgrades_per_ip_per_second: 10, invocations_per_second: 1000, burst: 200 }
allow_self_invoke: true
shadow: false
channels: { require_auth: false }
trusted_proxies: []
"#,
        )
        .unwrap();
        let rbac = config.rbac.as_ref().unwrap();
        assert_eq!(rbac.auth_function_id.as_deref(), Some("my-app::auth"));
        assert_eq!(rbac.expose_functions.len(), 2);
        assert_eq!(
            rbac.expose_functions[0],
            FunctionFilter::Id("api::*".into())
        );
        assert_eq!(config.limits.burst, Some(200));
        assert!(
            !format!("{config:?}").contains("s3cr3t"),
            "secrets stay out of Debug"
        );
    }

    #[test]
    fn unknown_keys_are_rejected_at_every_level() {
        for (yaml, path) in [
            ("bogus: 1", "bogus"),
            ("rbac: { allowed_functions: [a] }", "rbac.allowed_functions"),
            ("limits: { max_bytes: 1 }", "limits.max_bytes"),
            ("channels: { auth: true }", "channels.auth"),
        ] {
            let error = from_yaml::<ListenerConfig>(yaml).unwrap_err();
            assert!(error.problem().contains("unknown field"), "{yaml}: {error}");
            assert_eq!(error.path(), path, "{yaml}");
        }
    }

    #[test]
    fn an_explicit_empty_rbac_block_is_an_error_not_an_open_listener() {
        for yaml in ["rbac:\n", "rbac: null", "rbac: ~"] {
            let error = from_yaml::<ListenerConfig>(yaml).unwrap_err();
            assert_eq!(error.path(), "rbac", "{yaml}");
            assert!(
                error
                    .problem()
                    .starts_with("rbac is empty: remove the key to disable RBAC"),
                "{yaml}: {error}"
            );
        }
        let error =
            crate::config_error::from_value::<ListenerConfig>(serde_json::json!({"rbac": null}))
                .unwrap_err();
        assert_eq!(error.path(), "rbac");
        let empty: ListenerConfig = from_yaml("rbac: {}").unwrap();
        assert_eq!(empty.rbac, Some(RbacConfig::default()));
    }

    #[test]
    fn a_bad_filter_is_named_by_its_index() {
        let error = from_yaml::<ListenerConfig>(
            "rbac:\n  expose_functions:\n    - match(\"a\")\n    - api::*\n",
        )
        .unwrap_err();
        assert_eq!(error.path(), "rbac.expose_functions[1]");
        assert!(error.problem().contains("got: api::*"), "{error}");
        assert_eq!(error.location().map(|(line, _)| line), Some(4));
    }

    #[test]
    fn config_round_trips_through_yaml_and_json() {
        let config = ListenerConfig {
            name: Some("x".into()),
            rbac: Some(RbacConfig {
                auth_function_id: Some("a::auth".into()),
                expose_functions: vec![FunctionFilter::Id("api::*".into())],
                ..RbacConfig::default()
            }),
            ..ListenerConfig::default()
        };
        let yaml = yaml_serde::to_string(&config).unwrap();
        assert_eq!(from_yaml::<ListenerConfig>(&yaml).unwrap(), config);
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(
            serde_json::from_str::<ListenerConfig>(&json).unwrap(),
            config
        );
    }
}
