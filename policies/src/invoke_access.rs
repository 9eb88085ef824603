//! Access resolution for invokes (spec §4, settled decision 1): forbidden always wins → the
//! session's own functions → allowed (and `namespaces.default` grants) → the infrastructure
//! carve-out → no `rbac` block allows → `expose_functions` → deny. Also middleware
//! applicability (settled decision 6) and the `engine::workers::register` namespace check
//! (spec §4.4).
//!
//! Frames, replies and the middleware call itself are the caller's.

use serde_json::Value;

use crate::decision::{Decision, Denial, DenyReason, Grant};
use crate::engine_ids::{DiscoveryFunction, is_infrastructure_function, is_ownable_function};
use crate::listener_policy::ListenerPolicy;
use crate::session::Session;

/// The function through which a worker declares its namespace (spec §4.4).
const WORKERS_REGISTER: &str = "engine::workers::register";

impl ListenerPolicy {
    /// May this session invoke `function_id`? Pass the resolved target
    /// ([`ListenerPolicy::resolve_target`]) and its registered metadata (`None` when the
    /// function does not exist or [`ListenerPolicy::needs_metadata`] is false). A missing id
    /// is denied exactly like a hidden one.
    pub fn decide_invoke<'a>(
        &self,
        session: &Session,
        function_id: &'a str,
        metadata: Option<&Value>,
    ) -> Decision<'a> {
        self.access(session, function_id, metadata)
            .shadowed(self.is_shadow())
    }

    /// The rule order without shadow mode; shared with trigger-target and discovery checks.
    pub(crate) fn access<'a>(
        &self,
        session: &Session,
        function_id: &'a str,
        metadata: Option<&Value>,
    ) -> Decision<'a> {
        if session.forbids(function_id) {
            return Decision::Deny(Denial::new(DenyReason::Forbidden, function_id));
        }
        if self.config().allow_self_invoke
            && is_ownable_function(function_id)
            && session.owns_function(function_id)
        {
            return Decision::Allow(Grant::Own);
        }
        if session.allows_exactly(function_id) {
            return Decision::Allow(Grant::Allowed);
        }
        if session.grants(function_id) {
            return Decision::Allow(Grant::NamespaceGrant);
        }
        if is_infrastructure_function(function_id) {
            return Decision::Allow(Grant::Infrastructure);
        }
        let Some(expose) = self.expose() else {
            return Decision::Allow(Grant::NoRbac);
        };
        if expose.is_match(function_id, metadata) {
            Decision::Allow(Grant::Exposed)
        } else {
            Decision::Deny(Denial::new(DenyReason::NotExposed, function_id))
        }
    }

    /// The middleware to call for an allowed invoke of `function_id` (the resolved id), if any:
    /// every invocation except the carve-out and the discovery functions goes through it.
    #[must_use]
    pub fn middleware_for(&self, function_id: &str) -> Option<&str> {
        let middleware = self.config().middleware_function_id.as_deref()?;
        let exempt = is_infrastructure_function(function_id)
            || DiscoveryFunction::from_id(function_id).is_some();
        (!exempt).then_some(middleware)
    }

    /// For an allowed `engine::workers::register` call: may the worker declare this namespace
    /// (`None` means `default`)? Only checked when the auth result named namespaces.
    pub fn decide_worker_namespace<'a>(
        &self,
        session: &Session,
        function_id: &str,
        declared: Option<&'a str>,
    ) -> Decision<'a> {
        let namespaces = session.namespaces();
        if function_id != WORKERS_REGISTER || namespaces.is_empty() {
            return Decision::Allow(Grant::Permitted);
        }
        let declared = declared.unwrap_or(crate::expose_filter::DEFAULT_NAMESPACE);
        if namespaces.iter().any(|namespace| namespace == declared) {
            Decision::Allow(Grant::Permitted)
        } else {
            Decision::Deny(Denial::namespace(declared, namespaces.join(", ")))
                .shadowed(self.is_shadow())
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config_error::from_yaml;
    use crate::decision::{Decision, DenyReason, Grant};
    use crate::engine_ids::INFRASTRUCTURE_FUNCTIONS;
    use crate::listener_config::ListenerConfig;
    use crate::listener_policy::ListenerPolicy;
    use crate::session::Session;
    use crate::wire_error::WireCode;
    use serde_json::{Value, json};

    fn policy(yaml: &str) -> ListenerPolicy {
        ListenerPolicy::new(from_yaml::<ListenerConfig>(yaml).unwrap()).unwrap()
    }

    fn session(p: &ListenerPolicy, auth: Value) -> Session {
        p.session_from_auth(auth).unwrap()
    }

    const API_ONLY: &str =
        "rbac: { auth_function_id: a::auth, expose_functions: ['match(\"api::*\")'] }";

    #[test]
    fn a_denied_invoke_answers_forbidden_with_the_expose_remediation() {
        let p = policy(API_ONLY);
        let s = session(&p, json!({}));
        let decision = p.decide_invoke(&s, "secret::run", None);
        let denial = decision.enforced_denial().unwrap();
        assert_eq!(denial.code(), WireCode::Forbidden);
        assert_eq!(
            denial.message(),
            "function 'secret::run' not allowed (add to rbac.expose_functions)"
        );
        assert_eq!(
            p.decide_invoke(&s, "api::x", None),
            Decision::Allow(Grant::Exposed)
        );
    }

    #[test]
    fn a_forbidden_id_gets_the_forbidden_remediation_even_if_it_does_not_exist() {
        let p = policy(API_ONLY);
        let s = session(&p, json!({"forbidden_functions": ["api::admin::wipe"]}));
        let decision = p.decide_invoke(&s, "api::admin::wipe", None);
        assert_eq!(
            decision.enforced_denial().unwrap().message(),
            "function 'api::admin::wipe' not allowed (remove from rbac.forbidden_functions)"
        );
    }

    #[test]
    fn precedence_follows_the_settled_order() {
        let p = policy(API_ONLY);
        let mut s = session(
            &p,
            json!({"allowed_functions": ["x::allowed", "api::both"], "forbidden_functions": ["api::both", "own::forbidden"],
                   "namespaces": {"default": ["granted::*"]}}),
        );
        s.record_function("own::fn");
        s.record_function("own::forbidden");
        assert_eq!(
            p.decide_invoke(&s, "api::both", None)
                .denial()
                .unwrap()
                .reason(),
            DenyReason::Forbidden
        );
        assert_eq!(
            p.decide_invoke(&s, "own::forbidden", None)
                .denial()
                .unwrap()
                .reason(),
            DenyReason::Forbidden
        );
        assert_eq!(
            p.decide_invoke(&s, "own::fn", None),
            Decision::Allow(Grant::Own)
        );
        assert_eq!(
            p.decide_invoke(&s, "x::allowed", None),
            Decision::Allow(Grant::Allowed)
        );
        assert_eq!(
            p.decide_invoke(&s, "granted::a::b", None),
            Decision::Allow(Grant::NamespaceGrant)
        );
        assert_eq!(
            p.decide_invoke(&s, "engine::log::info", None),
            Decision::Allow(Grant::Infrastructure)
        );
        assert!(
            p.decide_invoke(&s, "nothing", None)
                .enforced_denial()
                .is_some()
        );
    }

    #[test]
    fn own_functions_need_allow_self_invoke() {
        let p = policy(&format!("{API_ONLY}\nallow_self_invoke: false"));
        let mut s = session(&p, json!({}));
        s.record_function("mine::fn");
        assert!(
            p.decide_invoke(&s, "mine::fn", None)
                .enforced_denial()
                .is_some()
        );
    }

    #[test]
    fn recording_an_engine_id_never_grants_it_as_own() {
        let p = policy("rbac: { expose_functions: [] }");
        let mut s = Session::permissive();
        for id in [
            "engine::functions::list",
            "engine::registered-triggers::info",
            "engine::custom::thing",
            "engine::register_trigger",
        ] {
            s.record_function(id);
            let decision = p.decide_invoke(&s, id, None);
            assert_eq!(
                decision.enforced_denial().map(|d| d.reason()),
                Some(DenyReason::NotExposed),
                "{id}"
            );
            assert!(!p.decide_trigger_target(&s, id, None).is_allowed(), "{id}");
        }
        s.record_function("engine::log::info");
        assert_eq!(
            p.decide_invoke(&s, "engine::log::info", None),
            Decision::Allow(Grant::Infrastructure),
            "the carve-out still answers for itself"
        );
        s.record_function("mine::fn");
        assert_eq!(
            p.decide_invoke(&s, "mine::fn", None),
            Decision::Allow(Grant::Own)
        );
    }

    #[test]
    fn the_carve_out_is_reachable_under_an_empty_expose_but_forbidding_wins() {
        let p = policy("rbac: { expose_functions: [] }");
        let s = session(&p, json!({"forbidden_functions": ["engine::log::error"]}));
        for id in INFRASTRUCTURE_FUNCTIONS {
            let decision = p.decide_invoke(&s, id, None);
            if id == "engine::log::error" {
                assert!(
                    decision
                        .enforced_denial()
                        .unwrap()
                        .message()
                        .contains("rbac.forbidden_functions")
                );
            } else {
                assert_eq!(decision, Decision::Allow(Grant::Infrastructure), "{id}");
            }
        }
    }

    #[test]
    fn discovery_ids_are_gated_like_any_function() {
        let p = policy("rbac: { expose_functions: ['match(\"api::*\")'] }");
        let s = Session::permissive();
        for id in [
            "engine::functions::list",
            "engine::workers::list",
            "engine::register_trigger",
        ] {
            let denial = p
                .decide_invoke(&s, id, None)
                .enforced_denial()
                .cloned()
                .unwrap();
            assert!(
                denial.message().contains("add to rbac.expose_functions"),
                "{id}"
            );
        }
    }

    #[test]
    fn no_rbac_block_allows_everything_not_forbidden() {
        let p = policy("{}");
        let s = Session::permissive();
        assert_eq!(
            p.decide_invoke(&s, "anything::at::all", None),
            Decision::Allow(Grant::NoRbac)
        );
    }

    #[test]
    fn allowed_functions_take_no_wildcards() {
        let p = policy("rbac: { expose_functions: [] }");
        let s = session(&p, json!({"allowed_functions": ["api::*"]}));
        assert!(
            p.decide_invoke(&s, "api::x", None)
                .enforced_denial()
                .is_some()
        );
    }

    #[test]
    fn metadata_filters_see_the_registered_metadata() {
        let p = policy("rbac: { expose_functions: [{ metadata: { public: true } }] }");
        let s = Session::permissive();
        assert!(
            p.decide_invoke(&s, "f", Some(&json!({"public": true})))
                .is_allowed()
        );
        assert!(
            !p.decide_invoke(&s, "f", Some(&json!({"public": false})))
                .is_allowed()
        );
        assert!(!p.decide_invoke(&s, "f", None).is_allowed());
    }

    #[test]
    fn shadow_mode_allows_and_reports_would_be_denials() {
        let p = policy(&format!("{API_ONLY}\nshadow: true"));
        let s = session(&p, json!({"forbidden_functions": ["api::x"]}));
        let Decision::ShadowAllow(denial) = p.decide_invoke(&s, "api::x", None) else {
            panic!("expected a shadow allow");
        };
        assert_eq!(denial.reason(), DenyReason::Forbidden);
        assert_eq!(
            p.decide_invoke(&s, "api::y", None),
            Decision::Allow(Grant::Exposed)
        );
    }

    #[test]
    fn middleware_wraps_everything_but_the_carve_out_and_discovery() {
        let p = policy("middleware_function_id: m::mw");
        assert_eq!(p.middleware_for("api::x"), Some("m::mw"));
        assert_eq!(p.middleware_for("engine::custom::thing"), Some("m::mw"));
        assert_eq!(p.middleware_for("engine::channels::create"), None);
        assert_eq!(p.middleware_for("engine::functions::list"), None);
        assert_eq!(policy("{}").middleware_for("api::x"), None);
    }

    #[test]
    fn workers_may_declare_only_namespaces_the_session_was_given() {
        let p = policy("{}");
        let s = session(&p, json!({"namespaces": {"default": [], "billing": []}}));
        assert!(
            p.decide_worker_namespace(&s, "engine::workers::register", None)
                .is_allowed()
        );
        assert!(
            p.decide_worker_namespace(&s, "engine::workers::register", Some("billing"))
                .is_allowed()
        );
        let decision = p.decide_worker_namespace(&s, "engine::workers::register", Some("orders"));
        assert_eq!(
            decision.enforced_denial().unwrap().message(),
            "namespace 'orders' not allowed for this session (permitted: billing, default)"
        );
        let open = Session::permissive();
        assert!(
            p.decide_worker_namespace(&open, "engine::workers::register", Some("orders"))
                .is_allowed()
        );
    }
}
