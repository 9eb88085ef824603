//! Entry points for `fuzz/` and the benchmark's naive baseline. Not a stable API.
//!
//! The fuzz target feeds arbitrary bytes to [`config_and_decisions`]; it must never panic
//! except through the agreement checks below, which make disagreements into findings.

use serde_json::Value;

use crate::id_matcher::IdMatcher;
use crate::listener_config::ListenerConfig;
use crate::listener_policy::ListenerPolicy;
use crate::policy_test_file::PolicyTestFile;
use crate::session::Session;
use crate::wildcard::naive_match;

/// The spec's one-pattern-at-a-time wildcard algorithm.
#[must_use]
pub fn naive_wildcard_match(pattern: &str, id: &str) -> bool {
    naive_match(pattern, id)
}

/// Whether the compiled matcher for `patterns` matches `id` (for differential checks).
#[must_use]
pub fn compiled_wildcard_match(patterns: &[&str], id: &str) -> Option<bool> {
    IdMatcher::new(patterns.iter().copied())
        .ok()
        .map(|matcher| matcher.is_match(id))
}

/// Parses `data` as `<listener YAML> \0 <auth result JSON> \0 <ids, one per line>` and runs
/// every decision on every id; also parses the whole input as a policy test file and runs it.
///
/// # Panics
/// When the compiled wildcard matcher and the reference algorithm disagree, when a prefix
/// does not round-trip, or when a forbidden id is allowed: those are the findings.
pub fn config_and_decisions(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = PolicyTestFile::parse(text) {
        let _ = file.run(Some(text));
    }
    let mut parts = text.splitn(3, '\0');
    let config_text = parts.next().unwrap_or_default();
    let auth_text = parts.next().unwrap_or_default();
    let ids: Vec<&str> = parts.next().unwrap_or_default().split('\n').collect();
    let Ok(config) = crate::config_error::from_yaml::<ListenerConfig>(config_text) else {
        return;
    };
    let patterns: Vec<String> = config
        .rbac
        .iter()
        .flat_map(|rbac| rbac.expose_functions.iter())
        .filter_map(|filter| match filter {
            crate::expose_filter::FunctionFilter::Id(pattern) => Some(pattern.clone()),
            crate::expose_filter::FunctionFilter::Metadata(_) => None,
        })
        .collect();
    let Ok(policy) = ListenerPolicy::new(config) else {
        return;
    };
    let session = serde_json::from_str::<Value>(auth_text)
        .ok()
        .and_then(|auth| policy.session_from_auth(auth).ok())
        .unwrap_or_else(Session::permissive);
    check_decisions(&policy, session, &patterns, &ids);
}

#[allow(clippy::panic)]
fn check_decisions(
    policy: &ListenerPolicy,
    mut session: Session,
    patterns: &[String],
    ids: &[&str],
) {
    let matcher = IdMatcher::new(patterns.iter().map(String::as_str)).ok();
    for id in ids {
        let stored = session.stored_id(id).into_owned();
        if session.strip_prefix(&stored) != *id {
            panic!("prefix does not round-trip for {id:?}");
        }
        let compiled = matcher.as_ref().map(|m| m.is_match(id));
        let naive = patterns.iter().any(|pattern| naive_match(pattern, id));
        if compiled.is_some_and(|compiled| compiled != naive) {
            panic!("matcher disagrees with the reference for {id:?} and {patterns:?}");
        }
        let metadata = Value::Null;
        let target = policy.resolve_target(&session, id);
        let decision = policy.decide_invoke(&session, &target, Some(&metadata));
        if session.forbids(&target) && decision.denial().is_none() {
            panic!("forbidden id {target:?} was allowed");
        }
        let _ = policy.decide_register_function(&session, id);
        let _ = policy.decide_register_trigger(&session, id, &target, None);
        let _ = policy.decide_unregister_trigger(&session, id);
        let _ = policy.middleware_for(id);
        session.record_function(stored);
    }
}
