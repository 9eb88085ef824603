//! A session's boundaries, built once from its `AuthResult` (spec §3.3), and what the session
//! registered itself (the own-id exemption of settled decision 4).
//!
//! The session does not decide: the rule order lives in `invoke_access.rs` and
//! `registration.rs`. Prefix arithmetic is `prefix_rewrite.rs`'s.

use serde_json::Value;

use crate::auth_result::{AuthError, AuthResult};
use crate::engine_ids::is_ownable_function;
use crate::expose_filter::DEFAULT_NAMESPACE;
use crate::function_catalog::FunctionCatalog;
use crate::id_matcher::IdMatcher;
use crate::id_set::IdSet;
use crate::wildcard::unwrap_match;

/// One connection's access boundaries. Owned by the connection; the own-id sets change as the
/// session registers and unregisters.
#[derive(Debug, Clone)]
pub struct Session {
    allowed: IdSet,
    forbidden: IdSet,
    grants: IdMatcher,
    namespaces: Vec<String>,
    allowed_trigger_types: Option<IdSet>,
    allow_trigger_type_registration: bool,
    allow_function_registration: bool,
    prefix: Option<String>,
    context: Value,
    own_functions: IdSet,
    own_triggers: IdSet,
}

impl Session {
    /// The session of a listener with no auth function: no lists, every trigger type, both
    /// kinds of registration allowed (note: trigger-type registration too, unlike the serde
    /// default of `AuthResult`), no prefix, context `{}`.
    #[must_use]
    pub fn permissive() -> Self {
        Self {
            allowed: IdSet::default(),
            forbidden: IdSet::default(),
            grants: IdMatcher::empty(),
            namespaces: Vec::new(),
            allowed_trigger_types: None,
            allow_trigger_type_registration: true,
            allow_function_registration: true,
            prefix: None,
            context: Value::Object(serde_json::Map::new()),
            own_functions: IdSet::default(),
            own_triggers: IdSet::default(),
        }
    }

    /// The session an auth result describes. `namespaces.default` grants (exact ids or
    /// wildcards, bare or `match("…")`) act as wildcard allows; grants for other namespaces are
    /// not given (settled decision 1).
    ///
    /// # Errors
    /// [`AuthError::BadShape`] when a grant cannot be compiled.
    pub fn from_auth_result(result: AuthResult) -> Result<Self, AuthError> {
        let grants = match result.namespaces.get(DEFAULT_NAMESPACE) {
            Some(grants) => IdMatcher::new(
                grants
                    .iter()
                    .map(|grant| unwrap_match(grant).unwrap_or(grant)),
            )
            .map_err(|error| AuthError::BadShape(format!("namespaces.default: {error}")))?,
            None => IdMatcher::empty(),
        };
        Ok(Self {
            allowed: result.allowed_functions.into_iter().collect(),
            forbidden: result.forbidden_functions.into_iter().collect(),
            grants,
            namespaces: result.namespaces.into_keys().collect(),
            allowed_trigger_types: result
                .allowed_trigger_types
                .map(|types| types.into_iter().collect()),
            allow_trigger_type_registration: result.allow_trigger_type_registration,
            allow_function_registration: result.allow_function_registration,
            prefix: result.function_registration_prefix,
            context: result.context,
            own_functions: IdSet::default(),
            own_triggers: IdSet::default(),
        })
    }

    /// The context forwarded to the middleware and the hooks.
    #[must_use]
    pub const fn context(&self) -> &Value {
        &self.context
    }

    /// `function_registration_prefix`, if any.
    #[must_use]
    pub fn prefix(&self) -> Option<&str> {
        self.prefix.as_deref()
    }

    /// Whether `forbidden_functions` names this exact id.
    #[must_use]
    pub fn forbids(&self, function_id: &str) -> bool {
        self.forbidden.contains(function_id)
    }

    /// Whether `allowed_functions` names this exact id.
    pub(crate) fn allows_exactly(&self, function_id: &str) -> bool {
        self.allowed.contains(function_id)
    }

    /// Whether a `namespaces.default` grant covers this id.
    pub(crate) fn grants(&self, function_id: &str) -> bool {
        !self.grants.is_empty() && self.grants.is_match(function_id)
    }

    /// The namespaces the auth result named, sorted (spec §4.4).
    pub(crate) fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    pub(crate) fn may_register_functions(&self) -> bool {
        self.allow_function_registration
    }

    pub(crate) fn may_register_trigger_types(&self) -> bool {
        self.allow_trigger_type_registration
    }

    /// Whether the session may bind triggers of this type.
    pub(crate) fn may_use_trigger_type(&self, trigger_type: &str) -> bool {
        self.allowed_trigger_types
            .as_ref()
            .is_none_or(|types| types.contains(trigger_type))
    }

    /// Records a function the session registered, by its stored (prefixed) id. Recorded ids
    /// are reachable through the own-id exemption (settled decision 4), so the caller must
    /// record an id only after **both** hold:
    ///
    /// - the engine accepted the registration (its reply, not the client's frame), and
    /// - the engine did not already have that id owned by another worker: check the engine's
    ///   catalog, e.g. with [`Session::may_record_function`]. Otherwise a session could
    ///   "register" `billing::charge`, which another worker serves, and then call it past
    ///   `expose_functions`.
    ///
    /// `engine::*` ids, the carve-out and the discovery ids never get the own grant, recorded
    /// or not.
    pub fn record_function(&mut self, stored_id: impl Into<String>) {
        self.own_functions.insert(stored_id.into());
    }

    /// Whether the caller may record `stored_id` as this session's own once the engine has
    /// accepted the registration: the id is ownable (not `engine::*`, the carve-out or a
    /// discovery id), and the engine's catalog does not list it, or lists it as served by
    /// `own_worker` (this session's worker name). An id the catalog lists without an owner is
    /// not recorded: whose it is cannot be told.
    #[must_use]
    pub fn may_record_function(
        &self,
        stored_id: &str,
        own_worker: &str,
        catalog: &FunctionCatalog,
    ) -> bool {
        if !is_ownable_function(stored_id) {
            return false;
        }
        if !catalog.contains(stored_id) {
            return true;
        }
        catalog.owner(stored_id) == Some(own_worker)
    }

    /// Forgets a function the session unregistered, by its stored (prefixed) id.
    pub fn forget_function(&mut self, stored_id: &str) {
        self.own_functions.remove(stored_id);
    }

    /// Whether the session registered this stored id.
    #[must_use]
    pub fn owns_function(&self, stored_id: &str) -> bool {
        self.own_functions.contains(stored_id)
    }

    /// Records a trigger the session registered.
    pub fn record_trigger(&mut self, trigger_id: impl Into<String>) {
        self.own_triggers.insert(trigger_id.into());
    }

    /// Forgets a trigger the session unregistered.
    pub fn forget_trigger(&mut self, trigger_id: &str) {
        self.own_triggers.remove(trigger_id);
    }

    /// Whether the session registered this trigger.
    #[must_use]
    pub fn owns_trigger(&self, trigger_id: &str) -> bool {
        self.own_triggers.contains(trigger_id)
    }
}

#[cfg(test)]
mod tests {
    use super::Session;
    use crate::auth_result::AuthResult;
    use crate::function_catalog::FunctionCatalog;
    use serde_json::json;

    fn session(auth: serde_json::Value) -> Session {
        Session::from_auth_result(AuthResult::from_json(auth).unwrap()).unwrap()
    }

    #[test]
    fn the_permissive_session_allows_trigger_type_registration() {
        let permissive = Session::permissive();
        assert!(permissive.may_register_trigger_types());
        assert!(permissive.may_register_functions());
        assert!(permissive.may_use_trigger_type("anything"));
        assert_eq!(permissive.context(), &json!({}));
        assert_eq!(permissive.prefix(), None);
        let from_empty = session(json!({}));
        assert!(!from_empty.may_register_trigger_types());
        assert!(from_empty.may_register_functions());
    }

    #[test]
    fn default_namespace_grants_act_as_wildcard_allows_in_both_spellings() {
        let s = session(json!({"namespaces": {
            "default": ["svc::*", "match(\"jobs::*\")", "match(\"one::exact\")"],
            "orders": ["orders::*"],
        }}));
        assert!(s.grants("svc::a::b"));
        assert!(s.grants("jobs::x"));
        assert!(s.grants("one::exact"));
        assert!(
            !s.grants("orders::x"),
            "grants for other namespaces are not given"
        );
        assert_eq!(s.namespaces(), ["default".to_owned(), "orders".to_owned()]);
    }

    #[test]
    fn a_namespace_key_with_an_empty_list_grants_nothing() {
        let s = session(json!({"namespaces": {"default": []}}));
        assert!(!s.grants("anything"));
        assert!(!s.grants(""));
    }

    #[test]
    fn allowed_and_forbidden_lists_are_exact_ids() {
        let s = session(json!({"allowed_functions": ["api::*"], "forbidden_functions": ["x::*"]}));
        assert!(s.allows_exactly("api::*"));
        assert!(!s.allows_exactly("api::x"));
        assert!(s.forbids("x::*"));
        assert!(!s.forbids("x::y"));
    }

    #[test]
    fn allowed_trigger_types_limit_types_when_set() {
        let s = session(json!({"allowed_trigger_types": ["http"]}));
        assert!(s.may_use_trigger_type("http"));
        assert!(!s.may_use_trigger_type("cron"));
    }

    #[test]
    fn an_id_another_worker_serves_may_not_be_recorded_as_own() {
        let mut catalog = FunctionCatalog::new();
        catalog.insert_function("billing::charge", Some("billing"), None);
        catalog.insert_function("mine::fn", Some("me"), None);
        catalog.insert_function("orphan::fn", None, None);
        let s = Session::permissive();
        assert!(!s.may_record_function("billing::charge", "me", &catalog));
        assert!(s.may_record_function("mine::fn", "me", &catalog));
        assert!(s.may_record_function("new::fn", "me", &catalog));
        assert!(!s.may_record_function("orphan::fn", "me", &catalog));
        assert!(!s.may_record_function("engine::functions::list", "me", &catalog));
        assert!(!s.may_record_function("engine::custom", "me", &catalog));
    }

    #[test]
    fn own_ids_are_recorded_and_forgotten() {
        let mut s = Session::permissive();
        s.record_function("t1::foo");
        s.record_trigger("trig-1");
        assert!(s.owns_function("t1::foo"));
        assert!(s.owns_trigger("trig-1"));
        s.forget_function("t1::foo");
        s.forget_trigger("trig-1");
        assert!(!s.owns_function("t1::foo"));
        assert!(!s.owns_trigger("trig-1"));
    }
}
