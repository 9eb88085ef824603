//! Proptest properties of the access rules (the invariants), over generated listener
//! rules, auth results and ids.

use proptest::prelude::*;
use serde_json::json;

use crate::decision::{Decision, DenyReason};
use crate::expose_filter::FunctionFilter;
use crate::listener_config::{ListenerConfig, RbacConfig};
use crate::listener_policy::ListenerPolicy;
use crate::session::Session;

/// Ids from a small alphabet, so patterns and lists hit them often.
fn id() -> impl Strategy<Value = String> {
    proptest::string::string_regex("(api|engine|x|)(::(log|info|a|b|public))*(::\\*)?").unwrap()
}

fn pattern() -> impl Strategy<Value = String> {
    proptest::string::string_regex("(\\*|api|x|engine)(::(\\*|a|b|log|public))*").unwrap()
}

fn policy(patterns: &[String], rbac: bool, shadow: bool) -> ListenerPolicy {
    ListenerPolicy::new(ListenerConfig {
        rbac: rbac.then(|| RbacConfig {
            expose_functions: patterns.iter().cloned().map(FunctionFilter::Id).collect(),
            ..RbacConfig::default()
        }),
        shadow,
        ..ListenerConfig::default()
    })
    .unwrap()
}

fn session(allowed: &[String], forbidden: &[String], own: &[String]) -> Session {
    let mut session = Session::from_auth_result(
        serde_json::from_value(json!({
            "allowed_functions": allowed,
            "forbidden_functions": forbidden,
        }))
        .unwrap(),
    )
    .unwrap();
    for id in own {
        session.record_function(id.clone());
    }
    session
}

proptest! {
    #[test]
    fn forbidden_always_wins(
        patterns in proptest::collection::vec(pattern(), 0..5),
        allowed in proptest::collection::vec(id(), 0..4),
        own in proptest::collection::vec(id(), 0..4),
        target in id(),
        rbac: bool,
    ) {
        let p = policy(&patterns, rbac, false);
        let mut allowed = allowed;
        allowed.push(target.clone());
        let s = session(&allowed, std::slice::from_ref(&target), &own);
        let decision = p.decide_invoke(&s, &target, None);
        prop_assert_eq!(decision.enforced_denial().map(|d| d.reason()), Some(DenyReason::Forbidden));
    }

    #[test]
    fn no_rbac_block_allows_every_id_not_forbidden(target in id()) {
        let p = policy(&[], false, false);
        prop_assert!(p.decide_invoke(&Session::permissive(), &target, None).is_allowed());
    }

    #[test]
    fn adding_a_forbidden_id_never_turns_a_deny_into_an_allow(
        patterns in proptest::collection::vec(pattern(), 0..5),
        allowed in proptest::collection::vec(id(), 0..4),
        forbidden in proptest::collection::vec(id(), 0..4),
        extra in id(),
        target in id(),
        rbac: bool,
    ) {
        let p = policy(&patterns, rbac, false);
        let before = p.decide_invoke(&session(&allowed, &forbidden, &[]), &target, None);
        let mut more = forbidden;
        more.push(extra);
        let after = p.decide_invoke(&session(&allowed, &more, &[]), &target, None);
        prop_assert!(before.is_allowed() || !after.is_allowed());
    }

    #[test]
    fn every_deny_names_the_field_to_change(
        patterns in proptest::collection::vec(pattern(), 0..5),
        allowed in proptest::collection::vec(id(), 0..4),
        forbidden in proptest::collection::vec(id(), 0..4),
        target in id(),
        shadow: bool,
    ) {
        let p = policy(&patterns, true, shadow);
        let s = session(&allowed, &forbidden, &[]);
        for decision in [
            p.decide_invoke(&s, &target, None),
            p.decide_trigger_target(&s, &target, None),
        ] {
            if let Some(denial) = decision.denial() {
                let message = denial.message();
                let names_field = message.ends_with("(add to rbac.expose_functions)")
                    || message.ends_with("(remove from rbac.forbidden_functions)");
                prop_assert!(names_field, "{}", message);
                let quoted = format!("'{target}'");
                prop_assert!(message.contains(&quoted), "{}", message);
            }
            prop_assert_eq!(matches!(decision, Decision::Deny(_)), !shadow && decision.denial().is_some());
        }
    }

    #[test]
    fn a_decision_never_depends_on_whether_the_id_exists_without_metadata_rules(
        patterns in proptest::collection::vec(pattern(), 0..5),
        target in id(),
    ) {
        // With id rules only, the metadata of an existing function cannot change the answer.
        let p = policy(&patterns, true, false);
        let s = Session::permissive();
        let missing = p.decide_invoke(&s, &target, None);
        let existing = p.decide_invoke(&s, &target, Some(&json!({"public": true})));
        prop_assert_eq!(missing, existing);
    }
}
