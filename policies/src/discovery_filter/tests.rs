//! Discovery filtering, ported from the rbac-proxy `engine_overrides` fixtures (spec §10).

use serde_json::{Value, json};

use super::{DiscoveryFunction, DiscoveryReply};
use crate::config_error::from_yaml;
use crate::decision::DenyReason;
use crate::function_catalog::FunctionCatalog;
use crate::listener_config::ListenerConfig;
use crate::listener_policy::ListenerPolicy;
use crate::session::Session;
use crate::wire_error::WireCode;

const EXPOSE: &str = "rbac: { auth_function_id: a::auth, expose_functions: ['match(\"api::*\")', 'match(\"tenant1::*\")', { metadata: { public: true } }] }";

fn policy(extra: &str) -> ListenerPolicy {
    ListenerPolicy::new(from_yaml::<ListenerConfig>(&format!("{EXPOSE}\n{extra}")).unwrap())
        .unwrap()
}

fn tenant(p: &ListenerPolicy) -> Session {
    p.session_from_auth(json!({"function_registration_prefix": "tenant1"}))
        .unwrap()
}

fn catalog() -> FunctionCatalog {
    let mut catalog = FunctionCatalog::from_functions_list(&json!({"functions": [
        {"function_id": "api::orders::list", "worker_name": "orders"},
        {"function_id": "secret::run", "worker_name": "orders"},
        {"function_id": "secret::only", "worker_name": "vault"},
        {"function_id": "pub::status", "worker_name": "vault", "metadata": {"public": true}},
        {"function_id": "tenant1::foo", "worker_name": "tenant1::w"},
    ]}));
    catalog.insert_binding("http", "api::orders::list");
    catalog.insert_binding("http", "secret::run");
    catalog.insert_binding("http", "pub::status");
    catalog
}

fn filter(p: &ListenerPolicy, function: DiscoveryFunction, result: Value) -> DiscoveryReply {
    p.filter_discovery(&tenant(p), function, result, &catalog())
}

#[test]
fn every_discovery_id_is_known() {
    for function in DiscoveryFunction::ALL {
        assert_eq!(DiscoveryFunction::from_id(function.id()), Some(function));
    }
    assert_eq!(
        DiscoveryFunction::from_id("engine::workers::register"),
        None
    );
}

#[test]
fn functions_list_filters_and_strips() {
    let p = policy("");
    let reply = filter(
        &p,
        DiscoveryFunction::FunctionsList,
        json!({"functions": [
            {"function_id": "api::orders::list", "worker_name": "orders"},
            {"function_id": "secret::run", "worker_name": "orders"},
            {"function_id": "pub::status", "worker_name": "vault", "metadata": {"public": true}},
            {"function_id": "tenant1::foo", "worker_name": "tenant1::w"},
        ]}),
    );
    assert_eq!(
        reply.result.unwrap(),
        json!({"functions": [
            {"function_id": "api::orders::list", "worker_name": "orders"},
            {"function_id": "pub::status", "worker_name": "vault", "metadata": {"public": true}},
            {"function_id": "foo", "worker_name": "w"},
        ]})
    );
    assert_eq!(reply.hidden, vec!["secret::run".to_owned()]);
    assert!(!reply.shadow);
}

#[test]
fn functions_info_is_forbidden_when_denied_and_stripped_when_allowed() {
    let p = policy("");
    let denied = filter(
        &p,
        DiscoveryFunction::FunctionsInfo,
        json!({"function_id": "secret::run"}),
    );
    let denial = denied.result.unwrap_err();
    assert_eq!(denial.code(), WireCode::Forbidden);
    assert_eq!(
        denial.message(),
        "function 'secret::run' not allowed (add to rbac.expose_functions)"
    );
    let allowed = filter(
        &p,
        DiscoveryFunction::FunctionsInfo,
        json!({
        "function_id": "tenant1::foo", "worker_name": "tenant1::w", "registered_triggers": [{"id": "t"}]}),
    );
    assert_eq!(
        allowed.result.unwrap(),
        json!({
        "function_id": "foo", "worker_name": "w", "registered_triggers": [{"id": "t"}]})
    );
}

#[test]
fn a_hidden_id_and_a_missing_id_are_answered_the_same_way() {
    let p = policy("");
    let s = tenant(&p);
    let catalog = catalog();
    let exists = json!({"function_id": "secret::run"});
    let missing = json!({"function_id": "secret::nope"});
    let a = p.decide_discovery_request(&s, DiscoveryFunction::FunctionsInfo, &exists, &catalog);
    let b = p.decide_discovery_request(&s, DiscoveryFunction::FunctionsInfo, &missing, &catalog);
    assert_eq!(
        a.enforced_denial().unwrap().code(),
        b.enforced_denial().unwrap().code()
    );
    assert_eq!(
        a.enforced_denial().unwrap().reason(),
        DenyReason::NotExposed
    );
    assert_eq!(
        b.enforced_denial().unwrap().reason(),
        DenyReason::NotExposed
    );
    let batch = filter(
        &p,
        DiscoveryFunction::FunctionsInfo,
        json!({"functions": [
            {"function_id": "secret::run", "worker_name": "orders"},
            {"function_id": "secret::nope", "error": "not_found"},
            {"function_id": "api::gone", "error": "not_found"},
            {"function_id": "tenant1::foo", "worker_name": "tenant1::w"},
        ]}),
    );
    assert_eq!(
        batch.result.unwrap(),
        json!({"functions": [
            {"function_id": "secret::run", "error": "forbidden"},
            {"function_id": "secret::nope", "error": "forbidden"},
            {"function_id": "api::gone", "error": "not_found"},
            {"function_id": "foo", "worker_name": "w"},
        ]})
    );
}

#[test]
fn workers_list_drops_workers_without_visible_functions_recounts_and_strips_internals() {
    let p = policy("");
    let reply = filter(
        &p,
        DiscoveryFunction::WorkersList,
        json!({"workers": [
            {"name": "orders", "function_count": 2, "ip_address": "10.0.0.1", "isolation": "none", "pid": 7},
            {"name": "vault", "function_count": 2},
            {"name": "empty", "function_count": 0},
        ]}),
    );
    assert_eq!(
        reply.result.unwrap(),
        json!({"workers": [
            {"name": "orders", "function_count": 1, "pid": 7},
            {"name": "vault", "function_count": 1},
        ]})
    );
    assert_eq!(reply.hidden, vec!["empty".to_owned()]);
}

#[test]
fn workers_info_filters_strips_and_answers_not_found_when_nothing_is_visible() {
    let p = policy("");
    let reply = filter(
        &p,
        DiscoveryFunction::WorkersInfo,
        json!({
            "worker": {"name": "orders", "function_count": 2, "ip_address": "x", "isolation": "y",
                       "pid": 1, "internal": false, "latest_metrics": {}},
            "functions": [{"function_id": "api::orders::list"}, {"function_id": "secret::run"}],
            "trigger_types": ["http"],
            "registered_triggers": [
                {"id": "t1", "function_id": "api::orders::list"},
                {"id": "t2", "function_id": "secret::run"},
            ],
        }),
    );
    assert_eq!(
        reply.result.unwrap(),
        json!({
            "worker": {"name": "orders", "function_count": 1},
            "functions": [{"function_id": "api::orders::list"}],
            "trigger_types": ["http"],
            "registered_triggers": [{"id": "t1", "function_id": "api::orders::list"}],
        })
    );
    let hidden = filter(
        &p,
        DiscoveryFunction::WorkersInfo,
        json!({
        "worker": {"name": "vault"}, "functions": ["secret::only"]}),
    );
    let denial = hidden.result.unwrap_err();
    assert_eq!(denial.code(), WireCode::NotFound);
    assert_eq!(denial.message(), "worker not found");
}

#[test]
fn registered_triggers_list_drops_and_strips() {
    let p = policy("");
    let reply = filter(
        &p,
        DiscoveryFunction::RegisteredTriggersList,
        json!({"registered_triggers": [
            {"id": "a", "trigger_type": "http", "function_id": "secret::run"},
            {"id": "b", "trigger_type": "http", "function_id": "tenant1::foo", "worker_name": "tenant1::w"},
        ]}),
    );
    assert_eq!(
        reply.result.unwrap(),
        json!({"registered_triggers": [
            {"id": "b", "trigger_type": "http", "function_id": "foo", "worker_name": "w"},
        ]})
    );
}

#[test]
fn registered_trigger_info_is_forbidden_for_hidden_targets() {
    let p = policy("");
    let denied = filter(
        &p,
        DiscoveryFunction::RegisteredTriggersInfo,
        json!({"id": "a", "function_id": "secret::run"}),
    );
    assert_eq!(denied.result.unwrap_err().code(), WireCode::Forbidden);
    let allowed = filter(
        &p,
        DiscoveryFunction::RegisteredTriggersInfo,
        json!({
        "id": "b", "function_id": "tenant1::foo", "function": {"function_id": "tenant1::foo"}}),
    );
    assert_eq!(
        allowed.result.unwrap(),
        json!({
        "id": "b", "function_id": "foo", "function": {"function_id": "foo"}})
    );
}

#[test]
fn triggers_info_recounts_accessible_bindings_and_triggers_list_passes_through() {
    let p = policy("");
    let reply = filter(
        &p,
        DiscoveryFunction::TriggersInfo,
        json!({"id": "http", "instance_count": 3}),
    );
    assert_eq!(
        reply.result.unwrap(),
        json!({"id": "http", "instance_count": 2})
    );
    let no_data = p.filter_discovery(
        &tenant(&p),
        DiscoveryFunction::TriggersInfo,
        json!({"id": "http", "instance_count": 3}),
        &FunctionCatalog::new(),
    );
    assert_eq!(
        no_data.result.unwrap(),
        json!({"id": "http", "instance_count": 3})
    );
    let list = json!({"triggers": [{"id": "http"}, {"id": "secret-type"}]});
    assert_eq!(
        filter(&p, DiscoveryFunction::TriggersList, list.clone())
            .result
            .unwrap(),
        list
    );
}

#[test]
fn shadow_mode_reports_what_would_be_hidden_but_filters_nothing() {
    let p = policy("shadow: true");
    let reply = filter(
        &p,
        DiscoveryFunction::FunctionsList,
        json!({"functions": [
        {"function_id": "secret::run"}, {"function_id": "tenant1::foo"}]}),
    );
    assert!(reply.shadow);
    assert_eq!(reply.hidden, vec!["secret::run".to_owned()]);
    assert_eq!(
        reply.result.unwrap(),
        json!({"functions": [
        {"function_id": "secret::run"}, {"function_id": "foo"}]})
    );
    let info = filter(
        &p,
        DiscoveryFunction::FunctionsInfo,
        json!({"function_id": "secret::run"}),
    );
    assert!(info.result.is_ok());
    assert_eq!(info.hidden, vec!["secret::run".to_owned()]);
}

#[test]
fn hidden_and_unknown_workers_and_triggers_answer_alike() {
    let p = policy("");
    let hidden_worker = filter(
        &p,
        DiscoveryFunction::WorkersInfo,
        json!({"worker": {"name": "vault"}, "functions": ["secret::only"]}),
    )
    .result
    .unwrap_err();
    let unknown_worker = p
        .discovery_error(
            DiscoveryFunction::WorkersInfo,
            &json!({"name": "nobody"}),
            "NOT_FOUND",
        )
        .unwrap();
    assert_eq!(
        (hidden_worker.code(), hidden_worker.message()),
        (unknown_worker.code(), unknown_worker.message())
    );
    let hidden_trigger = filter(
        &p,
        DiscoveryFunction::RegisteredTriggersInfo,
        json!({"id": "t9", "function_id": "secret::run"}),
    )
    .result
    .unwrap_err();
    assert!(
        !hidden_trigger.message().contains("secret::run"),
        "the bound function is not named: {hidden_trigger}"
    );
    let unknown_trigger = p
        .discovery_error(
            DiscoveryFunction::RegisteredTriggersInfo,
            &json!({"id": "t9"}),
            "NOT_FOUND",
        )
        .unwrap();
    assert_eq!(
        (hidden_trigger.code(), hidden_trigger.message()),
        (unknown_trigger.code(), unknown_trigger.message())
    );
    assert_eq!(
        p.discovery_error(DiscoveryFunction::WorkersInfo, &json!({}), "TIMEOUT"),
        None
    );
    assert_eq!(
        p.discovery_error(
            DiscoveryFunction::TriggersInfo,
            &json!({"id": "x"}),
            "NOT_FOUND"
        ),
        None
    );
}
