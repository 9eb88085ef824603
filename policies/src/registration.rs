//! Registration decisions (spec §4.6, settled decisions 5 and 11): function and trigger-type
//! registration flags, the trigger-type allow list, the trigger target check, and
//! unregistering only one's own triggers.
//!
//! Hooks run between these checks and are the caller's: for `registertrigger` call
//! [`ListenerPolicy::decide_trigger_type`], then the hook, then
//! [`ListenerPolicy::decide_trigger_target`] on the hook's (resolved) target.
//! [`ListenerPolicy::decide_register_trigger`] chains both for callers without a hook, and
//! [`ListenerPolicy::decide_trigger_call`] applies them to `engine::register_trigger` /
//! `engine::unregister_trigger` payloads.

use serde_json::Value;

use crate::decision::{Decision, Denial, DenyReason, Grant};
use crate::engine_ids::is_ownable_function;
use crate::function_catalog::FunctionCatalog;
use crate::listener_policy::ListenerPolicy;
use crate::session::Session;

/// The function form of `registertrigger` (spec §4.6).
const REGISTER_TRIGGER: &str = "engine::register_trigger";
/// The function form of `unregistertrigger`.
const UNREGISTER_TRIGGER: &str = "engine::unregister_trigger";

impl ListenerPolicy {
    /// `registerfunction`: refused (and dropped by the caller) when the session may not
    /// register functions. Any id may be registered; ids are not checked against expose.
    pub fn decide_register_function<'a>(
        &self,
        session: &Session,
        function_id: &'a str,
    ) -> Decision<'a> {
        let decision = if session.may_register_functions() {
            Decision::Allow(Grant::Permitted)
        } else {
            Decision::Deny(Denial::new(
                DenyReason::FunctionRegistrationNotAllowed,
                function_id,
            ))
        };
        decision.shadowed(self.is_shadow())
    }

    /// `registertriggertype`.
    pub fn decide_register_trigger_type<'a>(
        &self,
        session: &Session,
        trigger_type_id: &'a str,
    ) -> Decision<'a> {
        let decision = if session.may_register_trigger_types() {
            Decision::Allow(Grant::Permitted)
        } else {
            Decision::Deny(Denial::new(
                DenyReason::TriggerTypeRegistrationNotAllowed,
                trigger_type_id,
            ))
        };
        decision.shadowed(self.is_shadow())
    }

    /// `registertrigger` step 1: is the trigger type in `allowed_trigger_types` (when set)?
    pub fn decide_trigger_type<'a>(
        &self,
        session: &Session,
        trigger_type: &'a str,
    ) -> Decision<'a> {
        let decision = if session.may_use_trigger_type(trigger_type) {
            Decision::Allow(Grant::Permitted)
        } else {
            Decision::Deny(Denial::new(DenyReason::TriggerTypeNotAllowed, trigger_type))
        };
        decision.shadowed(self.is_shadow())
    }

    /// `registertrigger` step 3: may the session bind a trigger to `target` (the resolved
    /// target, see [`ListenerPolicy::resolve_target`])? The same rules as an invoke, since a
    /// firing would otherwise skip the invoke gate; the session's own functions are exempt
    /// when `allow_self_invoke` is on. Denials answer `REGISTRATION_DENIED`.
    pub fn decide_trigger_target<'a>(
        &self,
        session: &Session,
        target: &'a str,
        metadata: Option<&Value>,
    ) -> Decision<'a> {
        // Engine-owned ids (built-ins, discovery, the carve-out) are never trigger targets: a
        // firing calls them with the engine's rights, outside any session, so a discovery
        // function bound to an http route would answer unfiltered.
        if !is_ownable_function(target) {
            return Decision::Deny(Denial::new(DenyReason::TargetNotExposed, target))
                .shadowed(self.is_shadow());
        }
        let decision = match self.access(session, target, metadata) {
            Decision::Deny(denial) => {
                let reason = match denial.reason() {
                    DenyReason::Forbidden => DenyReason::TargetForbidden,
                    // `access` denies only with these two; the rest are listed so a new
                    // reason has to be placed here deliberately.
                    DenyReason::NotExposed
                    | DenyReason::TargetNotExposed
                    | DenyReason::TargetForbidden
                    | DenyReason::FunctionRegistrationNotAllowed
                    | DenyReason::TriggerTypeRegistrationNotAllowed
                    | DenyReason::TriggerTypeNotAllowed
                    | DenyReason::HookDenied
                    | DenyReason::TriggerNotOwned
                    | DenyReason::NamespaceNotAllowed
                    | DenyReason::WorkerNotFound
                    | DenyReason::TriggerHidden => DenyReason::TargetNotExposed,
                };
                Decision::Deny(denial.with_reason(reason))
            }
            other => other,
        };
        decision.shadowed(self.is_shadow())
    }

    /// Both `registertrigger` checks, for a caller with no trigger hook.
    pub fn decide_register_trigger<'a>(
        &self,
        session: &Session,
        trigger_type: &'a str,
        target: &'a str,
        metadata: Option<&Value>,
    ) -> Decision<'a> {
        match self.decide_trigger_type(session, trigger_type) {
            Decision::Deny(denial) => Decision::Deny(denial),
            Decision::ShadowAllow(type_denial) => {
                // Shadow mode goes on to the target check, so the report names a target the
                // rules would refuse as well.
                match self.decide_trigger_target(session, target, metadata) {
                    Decision::Deny(target_denial) | Decision::ShadowAllow(target_denial) => {
                        Decision::ShadowAllow(type_denial.with_also(target_denial))
                    }
                    Decision::Allow(_) => Decision::ShadowAllow(type_denial),
                }
            }
            Decision::Allow(_) => self.decide_trigger_target(session, target, metadata),
        }
    }

    /// An allowed invoke of `engine::register_trigger` or `engine::unregister_trigger`
    /// (settled decision 11): gated like the `registertrigger` / `unregistertrigger` frames,
    /// with the same codes and messages. `{trigger_type, function_id}` goes through
    /// [`ListenerPolicy::decide_trigger_type`] and [`ListenerPolicy::decide_trigger_target`]
    /// (the target resolved with [`ListenerPolicy::resolve_trigger_target`], its metadata from
    /// `catalog`); `{id}` through [`ListenerPolicy::decide_unregister_trigger`]. A missing or
    /// non-string field is checked as the empty string, so a malformed payload fails closed.
    /// Any other function is not a trigger call: `Allow(Permitted)`. Gate the invoke itself
    /// with [`ListenerPolicy::decide_invoke`] first.
    pub fn decide_trigger_call(
        &self,
        session: &Session,
        function_id: &str,
        payload: &Value,
        catalog: &FunctionCatalog,
    ) -> Decision<'static> {
        let field = |key: &str| payload.get(key).and_then(Value::as_str).unwrap_or_default();
        match function_id {
            REGISTER_TRIGGER => {
                let target = self.resolve_trigger_target(session, field("function_id"));
                let metadata = catalog.metadata(&target);
                self.decide_register_trigger(session, field("trigger_type"), &target, metadata)
                    .into_owned()
            }
            UNREGISTER_TRIGGER => self
                .decide_unregister_trigger(session, field("id"))
                .into_owned(),
            _ => Decision::Allow(Grant::Permitted),
        }
    }

    /// `unregistertrigger`: only triggers this session registered (settled decision 11).
    pub fn decide_unregister_trigger<'a>(
        &self,
        session: &Session,
        trigger_id: &'a str,
    ) -> Decision<'a> {
        let decision = if session.owns_trigger(trigger_id) {
            Decision::Allow(Grant::Own)
        } else {
            Decision::Deny(Denial::new(DenyReason::TriggerNotOwned, trigger_id))
        };
        decision.shadowed(self.is_shadow())
    }
}

#[cfg(test)]
mod tests {
    use crate::config_error::from_yaml;
    use crate::decision::{Decision, DenyReason, Grant};
    use crate::function_catalog::FunctionCatalog;
    use crate::listener_config::ListenerConfig;
    use crate::listener_policy::ListenerPolicy;
    use crate::wire_error::WireCode;
    use serde_json::json;

    fn policy(yaml: &str) -> ListenerPolicy {
        ListenerPolicy::new(from_yaml::<ListenerConfig>(yaml).unwrap()).unwrap()
    }

    const API_ONLY: &str =
        "rbac: { auth_function_id: a::auth, expose_functions: ['match(\"api::*\")'] }";

    #[test]
    fn function_registration_follows_the_session_flag() {
        let p = policy(API_ONLY);
        let open = p.session_from_auth(json!({})).unwrap();
        assert_eq!(
            p.decide_register_function(&open, "anything::at::all"),
            Decision::Allow(Grant::Permitted)
        );
        let closed = p
            .session_from_auth(json!({"allow_function_registration": false}))
            .unwrap();
        let denial = p
            .decide_register_function(&closed, "f")
            .enforced_denial()
            .cloned()
            .unwrap();
        assert_eq!(denial.reason(), DenyReason::FunctionRegistrationNotAllowed);
        assert_eq!(denial.code(), WireCode::RegistrationDenied);
    }

    #[test]
    fn trigger_type_registration_is_off_by_default_for_authenticated_sessions() {
        let p = policy(API_ONLY);
        let s = p.session_from_auth(json!({})).unwrap();
        let denial = p
            .decide_register_trigger_type(&s, "my-type")
            .enforced_denial()
            .cloned()
            .unwrap();
        assert_eq!(denial.message(), "trigger type registration not allowed");
        assert!(
            p.decide_register_trigger_type(&p.permissive_session(), "my-type")
                .is_allowed()
        );
    }

    #[test]
    fn a_trigger_type_outside_the_allowed_list_is_registration_denied() {
        let p = policy(API_ONLY);
        let s = p
            .session_from_auth(json!({"allowed_trigger_types": ["http"]}))
            .unwrap();
        let denial = p
            .decide_register_trigger(&s, "cron", "api::run", None)
            .enforced_denial()
            .cloned()
            .unwrap();
        assert_eq!(denial.code(), WireCode::RegistrationDenied);
        assert_eq!(denial.message(), "trigger type not allowed");
        assert!(
            p.decide_register_trigger(&s, "http", "api::run", None)
                .is_allowed()
        );
    }

    #[test]
    fn a_trigger_to_an_unexposed_target_is_registration_denied_with_the_remediation() {
        let p = policy(API_ONLY);
        let s = p
            .session_from_auth(json!({"forbidden_functions": ["api::nope"]}))
            .unwrap();
        let denial = p
            .decide_register_trigger(&s, "http", "secret::run", None)
            .enforced_denial()
            .cloned()
            .unwrap();
        assert_eq!(denial.code(), WireCode::RegistrationDenied);
        assert_eq!(
            denial.message(),
            "function 'secret::run' not allowed (add to rbac.expose_functions)"
        );
        let denial = p
            .decide_trigger_target(&s, "api::nope", None)
            .enforced_denial()
            .cloned()
            .unwrap();
        assert_eq!(
            denial.message(),
            "function 'api::nope' not allowed (remove from rbac.forbidden_functions)"
        );
        assert_eq!(denial.reason(), DenyReason::TargetForbidden);
    }

    #[test]
    fn engine_owned_ids_are_never_trigger_targets_even_when_exposed() {
        let p = policy("rbac: { expose_functions: ['match(\"*\")'] }");
        let s = p.permissive_session();
        for target in [
            "engine::functions::list",
            "engine::workers::list",
            "engine::log::info",
        ] {
            let decision = p.decide_register_trigger(&s, "http", target, None);
            assert_eq!(
                decision
                    .enforced_denial()
                    .map(crate::decision::Denial::reason),
                Some(DenyReason::TargetNotExposed),
                "{target}"
            );
        }
        assert!(matches!(
            p.decide_register_trigger(&s, "http", "api::x", None),
            Decision::Allow(_)
        ));
    }

    #[test]
    fn a_trigger_to_an_own_function_is_allowed_even_when_not_exposed() {
        let p = policy(API_ONLY);
        let mut s = p
            .session_from_auth(json!({"function_registration_prefix": "tenant1"}))
            .unwrap();
        let stored = s.stored_id("handler").into_owned();
        s.record_function(stored);
        let target = p.resolve_target(&s, "handler");
        assert_eq!(target, "tenant1::handler");
        assert_eq!(
            p.decide_trigger_target(&s, &target, None),
            Decision::Allow(Grant::Own)
        );
    }

    #[test]
    fn without_self_invoke_trigger_targets_are_still_prefixed_but_not_exempt() {
        let p = policy(&format!("{API_ONLY}\nallow_self_invoke: false"));
        let mut s = p
            .session_from_auth(json!({"function_registration_prefix": "tenant1"}))
            .unwrap();
        s.record_function("tenant1::handler");
        let target = p.resolve_trigger_target(&s, "handler");
        assert_eq!(target, "tenant1::handler");
        assert_eq!(
            p.resolve_trigger_target(&s, "api::run"),
            "tenant1::api::run"
        );
        let denial = p
            .decide_trigger_target(&s, &target, None)
            .enforced_denial()
            .cloned()
            .unwrap();
        assert_eq!(
            denial.message(),
            "function 'tenant1::handler' not allowed (add to rbac.expose_functions)"
        );
        let with_self_invoke = policy(API_ONLY);
        assert_eq!(
            with_self_invoke.resolve_trigger_target(&s, "handler"),
            "tenant1::handler"
        );
        assert_eq!(
            with_self_invoke.resolve_trigger_target(&s, "api::run"),
            "api::run"
        );
    }

    #[test]
    fn only_own_triggers_may_be_unregistered() {
        let p = policy(API_ONLY);
        let mut s = p.session_from_auth(json!({})).unwrap();
        s.record_trigger("t-1");
        assert!(p.decide_unregister_trigger(&s, "t-1").is_allowed());
        let denial = p
            .decide_unregister_trigger(&s, "t-2")
            .enforced_denial()
            .cloned()
            .unwrap();
        assert_eq!(
            denial.message(),
            "trigger 't-2' was not registered by this session"
        );
    }

    #[test]
    fn trigger_calls_are_gated_like_the_frames() {
        let p = policy(API_ONLY);
        let mut s = p
            .session_from_auth(json!({"allowed_trigger_types": ["http"]}))
            .unwrap();
        s.record_trigger("mine");
        let catalog = FunctionCatalog::new();
        let call = |function_id: &str, payload: serde_json::Value| {
            p.decide_trigger_call(&s, function_id, &payload, &catalog)
        };
        let register = "engine::register_trigger";
        assert!(
            call(
                register,
                json!({"trigger_type": "http", "function_id": "api::run"})
            )
            .is_allowed()
        );
        let denial = call(
            register,
            json!({"trigger_type": "cron", "function_id": "api::run"}),
        );
        let denial = denial.enforced_denial().unwrap();
        assert_eq!(denial.code(), WireCode::RegistrationDenied);
        assert_eq!(denial.message(), "trigger type not allowed");
        let denial = call(
            register,
            json!({"trigger_type": "http", "function_id": "secret::run"}),
        );
        assert_eq!(
            denial.enforced_denial().unwrap().message(),
            "function 'secret::run' not allowed (add to rbac.expose_functions)"
        );
        assert!(
            call(register, json!({"trigger_type": "http"}))
                .enforced_denial()
                .is_some(),
            "a payload without a target fails closed"
        );
        let unregister = "engine::unregister_trigger";
        assert!(call(unregister, json!({"id": "mine"})).is_allowed());
        assert_eq!(
            call(unregister, json!({"id": "theirs"}))
                .enforced_denial()
                .unwrap()
                .message(),
            "trigger 'theirs' was not registered by this session"
        );
        assert!(call(unregister, json!(null)).enforced_denial().is_some());
        assert_eq!(
            call("api::run", json!({"id": "theirs"})),
            Decision::Allow(Grant::Permitted)
        );
    }

    #[test]
    fn shadow_mode_covers_registrations() {
        let p = policy(&format!("{API_ONLY}\nshadow: true"));
        let s = p
            .session_from_auth(json!({"allow_function_registration": false}))
            .unwrap();
        assert!(matches!(
            p.decide_register_function(&s, "f"),
            Decision::ShadowAllow(_)
        ));
        assert!(matches!(
            p.decide_register_trigger(&s, "http", "secret::x", None),
            Decision::ShadowAllow(_)
        ));
        let typed = p
            .session_from_auth(json!({"allowed_trigger_types": ["cron"]}))
            .unwrap();
        let Decision::ShadowAllow(denial) =
            p.decide_register_trigger(&typed, "http", "secret::x", None)
        else {
            panic!("expected a shadow allow");
        };
        assert_eq!(denial.reason(), DenyReason::TriggerTypeNotAllowed);
        assert_eq!(
            denial.also().map(|also| also.message()),
            Some("function 'secret::x' not allowed (add to rbac.expose_functions)".to_owned()),
            "the shadow report includes the target denial"
        );
        let Decision::ShadowAllow(denial) =
            p.decide_register_trigger(&typed, "http", "api::x", None)
        else {
            panic!("expected a shadow allow");
        };
        assert_eq!(denial.also(), None);
        assert!(matches!(
            p.decide_unregister_trigger(&s, "t"),
            Decision::ShadowAllow(_)
        ));
    }
}
