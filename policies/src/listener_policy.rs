//! A listener's compiled, immutable policy: the validated config with `expose_functions`
//! compiled into one matcher, and the sessions it hands out (spec §3.3).
//!
//! The decisions themselves are implemented in `invoke_access.rs`, `registration.rs` and
//! `discovery_filter.rs`, as further `impl ListenerPolicy` blocks.

use std::borrow::Cow;

use serde_json::Value;

use crate::auth_result::{AuthError, AuthResult};
use crate::config_error::ConfigError;
use crate::expose_matcher::ExposeMatcher;
use crate::listener_config::ListenerConfig;
use crate::session::Session;

/// A validated listener: build it once per config load and share it between sessions.
#[derive(Debug, Clone)]
pub struct ListenerPolicy {
    config: ListenerConfig,
    expose: Option<ExposeMatcher>,
}

impl ListenerPolicy {
    /// Validates a listener block and compiles its matchers.
    ///
    /// # Errors
    /// Every problem found, each with its key path inside the listener block.
    pub fn new(config: ListenerConfig) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let positive = [
            ("handshake_timeout_ms", config.handshake_timeout_ms),
            ("auth_timeout_ms", config.auth_timeout_ms),
            ("limits.max_message_bytes", config.limits.max_message_bytes),
        ];
        for (key, value) in positive {
            if value == 0 {
                errors.push(ConfigError::new(key, "must be greater than 0"));
            }
        }
        let mut ids = vec![(
            "middleware_function_id",
            config.middleware_function_id.as_deref(),
        )];
        if let Some(rbac) = &config.rbac {
            ids.extend([
                ("rbac.auth_function_id", rbac.auth_function_id.as_deref()),
                (
                    "rbac.on_function_registration_function_id",
                    rbac.on_function_registration_function_id.as_deref(),
                ),
                (
                    "rbac.on_trigger_registration_function_id",
                    rbac.on_trigger_registration_function_id.as_deref(),
                ),
                (
                    "rbac.on_trigger_type_registration_function_id",
                    rbac.on_trigger_type_registration_function_id.as_deref(),
                ),
            ]);
        }
        for (key, id) in ids {
            if id.is_some_and(|id| id.trim().is_empty()) {
                errors.push(ConfigError::new(key, "must not be empty"));
            }
        }
        let expose = match &config.rbac {
            Some(rbac) => match ExposeMatcher::new(&rbac.expose_functions) {
                Ok(matcher) => Some(matcher),
                Err((index, problem)) => {
                    let path = match index {
                        Some(index) => format!("rbac.expose_functions[{index}]"),
                        None => "rbac.expose_functions".to_owned(),
                    };
                    errors.push(ConfigError::new(path, problem));
                    None
                }
            },
            None => None,
        };
        if errors.is_empty() {
            Ok(Self { config, expose })
        } else {
            Err(errors)
        }
    }

    /// The validated config, defaults filled in.
    #[must_use]
    pub const fn config(&self) -> &ListenerConfig {
        &self.config
    }

    /// `rbac.auth_function_id`: the function called once per upgrade, if any. Built-in
    /// `auth:` may require authentication without it; ask [`ListenerPolicy::requires_auth`]
    /// whether a connection with no auth result may get a permissive session.
    #[must_use]
    pub fn auth_function_id(&self) -> Option<&str> {
        self.config
            .rbac
            .as_ref()
            .and_then(|rbac| rbac.auth_function_id.as_deref())
    }

    /// Whether a connection must authenticate: `rbac.auth_function_id` or a built-in `auth:`
    /// block (JWT / API keys) is set. When true, a connection without an auth result gets
    /// `AUTH_ERROR` (settled decisions 3 and 12), never a permissive session.
    #[must_use]
    pub fn requires_auth(&self) -> bool {
        self.auth_function_id().is_some() || self.config.auth.is_some()
    }

    /// Whether a decision may need the target's registered metadata (some expose filter is a
    /// metadata filter). When false, callers may pass `None` without a catalog lookup.
    #[must_use]
    pub fn needs_metadata(&self) -> bool {
        self.expose
            .as_ref()
            .is_some_and(ExposeMatcher::uses_metadata)
    }

    /// Whether would-be denials are reported instead of enforced.
    #[must_use]
    pub const fn is_shadow(&self) -> bool {
        self.config.shadow
    }

    /// The session for a connection when no auth function is configured.
    #[must_use]
    pub fn permissive_session(&self) -> Session {
        Session::permissive()
    }

    /// The session for a connection whose auth function returned `result`.
    ///
    /// # Errors
    /// `AUTH_ERROR` for a null result or a wrong shape.
    pub fn session_from_auth(&self, result: Value) -> Result<Session, AuthError> {
        Session::from_auth_result(AuthResult::from_json(result)?)
    }

    /// Resolves an inbound invoke or trigger target: the session's own `P::id` when
    /// `allow_self_invoke` is on and the session registered it, otherwise the id as sent.
    /// Decisions are made on the resolved id.
    #[must_use]
    pub fn resolve_target<'a>(&self, session: &Session, function_id: &'a str) -> Cow<'a, str> {
        if self.config.allow_self_invoke {
            session.resolve_own(function_id)
        } else {
            Cow::Borrowed(function_id)
        }
    }

    /// Resolves an inbound trigger target (`registertrigger`, `engine::register_trigger`):
    /// with `allow_self_invoke`, as [`ListenerPolicy::resolve_target`] (the own `P::id` when
    /// the session registered it, else the id as sent); without it, `P::id` whenever the
    /// session has a prefix, as the engine does, with no own-id exemption.
    #[must_use]
    pub fn resolve_trigger_target<'a>(
        &self,
        session: &Session,
        function_id: &'a str,
    ) -> Cow<'a, str> {
        if self.config.allow_self_invoke {
            session.resolve_own(function_id)
        } else {
            session.stored_id(function_id)
        }
    }

    pub(crate) fn expose(&self) -> Option<&ExposeMatcher> {
        self.expose.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::ListenerPolicy;
    use crate::config_error::from_yaml;
    use crate::listener_config::ListenerConfig;
    use serde_json::json;

    fn policy(yaml: &str) -> Result<ListenerPolicy, Vec<crate::config_error::ConfigError>> {
        ListenerPolicy::new(from_yaml::<ListenerConfig>(yaml).unwrap())
    }

    #[test]
    fn validation_reports_every_problem() {
        let errors = policy(
            "auth_timeout_ms: 0\nlimits: { max_message_bytes: 0 }\nrbac: { auth_function_id: ' ' }\n",
        )
        .unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path()).collect();
        assert_eq!(
            paths,
            [
                "auth_timeout_ms",
                "limits.max_message_bytes",
                "rbac.auth_function_id"
            ]
        );
    }

    #[test]
    fn metadata_lookups_are_needed_only_with_metadata_filters() {
        assert!(!policy("{}").unwrap().needs_metadata());
        assert!(
            !policy("rbac: { expose_functions: ['match(\"a\")'] }")
                .unwrap()
                .needs_metadata()
        );
        assert!(
            policy("rbac: { expose_functions: [{ metadata: { p: 1 } }] }")
                .unwrap()
                .needs_metadata()
        );
    }

    #[test]
    fn sessions_come_from_auth_results_or_are_permissive() {
        let p = policy("rbac: { auth_function_id: a::auth }").unwrap();
        assert_eq!(p.auth_function_id(), Some("a::auth"));
        let session = p
            .session_from_auth(json!({"context": {"tenant": "t1"}}))
            .unwrap();
        assert_eq!(session.context(), &json!({"tenant": "t1"}));
        assert!(p.session_from_auth(json!(null)).is_err());
        assert_eq!(policy("{}").unwrap().auth_function_id(), None);
        assert!(p.requires_auth());
        assert!(!policy("{}").unwrap().requires_auth());
        assert!(
            policy("auth: { jwt: { secret: s } }")
                .unwrap()
                .requires_auth()
        );
    }
}
