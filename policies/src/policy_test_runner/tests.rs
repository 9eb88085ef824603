//! The runner on small files: passing and failing cases, references and their errors.

use super::{CaseOutcome, CaseResult};
use crate::policy_test_file::{PolicyTestError, PolicyTestFile};

const GATEWAY: &str = r#"
engine: { url: ws://127.0.0.1:49134 }
listeners:
  - name: public-workers
    rbac:
      auth_function_id: my-app::auth
      expose_functions: [ 'match("api::*")', { metadata: { public: true } } ]
  - name: open
"#;

fn run(test: &str) -> Vec<CaseResult> {
    PolicyTestFile::parse(test)
        .unwrap()
        .run(Some(GATEWAY))
        .unwrap()
}

fn outcomes(results: &[CaseResult]) -> Vec<(&str, CaseOutcome)> {
    results
        .iter()
        .map(|r| (r.name.as_str(), r.outcome))
        .collect()
}

#[test]
fn the_issue_example_passes_against_a_referenced_listener() {
    let results = run(r#"
listener: { config: ../gateway.yaml, name: public-workers }
functions:
  - { id: api::orders::list }
  - { id: pub::status, metadata: { public: true } }
  - { id: secret::run }
cases:
  - name: browser can list orders
    auth: { context: { tenant: t1 } }
    invoke: api::orders::list
    expect: allow
  - name: admin functions stay hidden
    auth: { forbidden_functions: [api::admin::wipe] }
    invoke: api::admin::wipe
    expect: { deny: FORBIDDEN, message: "remove from rbac.forbidden_functions" }
  - name: anonymous is refused when auth is configured
    unauthenticated: true
    invoke: api::orders::list
    expect: { deny: AUTH_ERROR, message: "auth function returned no result" }
  - name: discovery shows only what may be invoked
    auth: { allowed_functions: [engine::functions::list] }
    discover: engine::functions::list
    expect: { ids: [api::orders::list, pub::status] }
"#);
    assert!(
        results.iter().all(|r| r.outcome == CaseOutcome::Pass),
        "{results:#?}"
    );
    assert_eq!(
        results[1].reason,
        "denied FORBIDDEN: function 'api::admin::wipe' not allowed (remove from rbac.forbidden_functions)"
    );
}

#[test]
fn failing_cases_say_what_was_expected_and_what_happened() {
    let results = run(r#"
listener: { config: gw.yaml, name: public-workers }
cases:
  - name: wrongly expects allow
    auth: {}
    invoke: secret::run
    expect: allow
  - name: wrongly expects a forbidden remediation
    auth: {}
    invoke: secret::run
    expect: { deny: FORBIDDEN, message: "remove from" }
"#);
    assert_eq!(
        outcomes(&results),
        [
            ("wrongly expects allow", CaseOutcome::Fail),
            ("wrongly expects a forbidden remediation", CaseOutcome::Fail),
        ]
    );
    assert_eq!(
        results[0].reason,
        "expected allow, got denied FORBIDDEN: function 'secret::run' not allowed (add to rbac.expose_functions)"
    );
    assert!(results[1].reason.starts_with(
        "expected deny FORBIDDEN with message containing \"remove from\", got denied"
    ));
}

#[test]
fn prefixes_own_functions_and_registrations_are_simulated() {
    let results = run(r#"
listener: { config: gw.yaml, name: public-workers }
cases:
  - name: registration is prefixed
    auth: { function_registration_prefix: tenant1 }
    register_function: foo
    expect: { id: tenant1::foo }
  - name: a bare self-invoke resolves to the own function
    auth: { function_registration_prefix: tenant1 }
    registered_functions: [foo]
    invoke: foo
    expect: { id: tenant1::foo }
  - name: a trigger to a foreign hidden target is refused
    auth: { function_registration_prefix: tenant1 }
    register_trigger: { type: http, target: secret::run }
    expect: { deny: REGISTRATION_DENIED, message: "add to rbac.expose_functions" }
  - name: only own triggers may be removed
    auth: {}
    registered_triggers: [t1]
    unregister_trigger: t2
    expect: { deny: REGISTRATION_DENIED }
  - name: trigger types are off by default
    auth: {}
    register_trigger_type: my-type
    expect: { deny: REGISTRATION_DENIED, message: "trigger type registration not allowed" }
"#);
    assert!(
        results.iter().all(|r| r.outcome == CaseOutcome::Pass),
        "{results:#?}"
    );
}

#[test]
fn an_open_listener_gives_unauthenticated_cases_a_permissive_session() {
    let results = run(r#"
listener: { config: gw.yaml, name: open }
cases:
  - name: everything is allowed without an rbac block
    unauthenticated: true
    invoke: anything::goes
    expect: allow
  - name: permissive sessions may register trigger types
    register_trigger_type: my-type
    expect: allow
"#);
    assert!(
        results.iter().all(|r| r.outcome == CaseOutcome::Pass),
        "{results:#?}"
    );
}

#[test]
fn shadow_listeners_report_would_be_denials() {
    let file = PolicyTestFile::parse(
        r#"
listener: { shadow: true, rbac: { expose_functions: [] } }
cases:
  - name: allowed but reported
    invoke: secret::run
    expect: { deny: FORBIDDEN, shadow: true }
  - name: a shadow denial is not an enforced one
    invoke: secret::run
    expect: deny
"#,
    )
    .unwrap();
    let results = file.run(None).unwrap();
    assert_eq!(
        outcomes(&results),
        [
            ("allowed but reported", CaseOutcome::Pass),
            ("a shadow denial is not an enforced one", CaseOutcome::Fail),
        ]
    );
}

#[test]
fn a_bad_auth_result_is_an_auth_error() {
    let file = PolicyTestFile::parse(
        r#"
listener: { rbac: { auth_function_id: a::auth } }
cases:
  - name: wrong type
    auth: { allowed_functions: nope }
    invoke: x
    expect: { deny: AUTH_ERROR, message: "invalid type" }
"#,
    )
    .unwrap();
    assert_eq!(file.run(None).unwrap()[0].outcome, CaseOutcome::Pass);
}

#[test]
fn discovery_info_does_not_reveal_whether_a_hidden_id_exists() {
    let results = run(r#"
listener: { config: gw.yaml, name: public-workers }
functions: [ { id: secret::run }, { id: api::x } ]
cases:
  - name: existing hidden id
    auth: { allowed_functions: [engine::functions::info] }
    discover: engine::functions::info
    request: { function_id: secret::run }
    expect: { deny: FORBIDDEN, message: "add to rbac.expose_functions" }
  - name: missing id
    auth: { allowed_functions: [engine::functions::info] }
    discover: engine::functions::info
    request: { function_id: secret::missing }
    expect: { deny: FORBIDDEN, message: "add to rbac.expose_functions" }
  - name: batch
    auth: { allowed_functions: [engine::functions::info] }
    discover: engine::functions::info
    request: { function_ids: [secret::run, secret::missing, api::x] }
    expect: { ids: [api::x] }
  - name: the discovery id itself is gated
    auth: {}
    discover: engine::functions::list
    expect: { deny: FORBIDDEN }
"#);
    assert!(
        results.iter().all(|r| r.outcome == CaseOutcome::Pass),
        "{results:#?}"
    );
}

#[test]
fn reference_problems_are_file_errors() {
    let file =
        PolicyTestFile::parse("listener: { config: gw.yaml, name: nope }\ncases: []\n").unwrap();
    assert!(matches!(
        file.run(None),
        Err(PolicyTestError::MissingConfig { .. })
    ));
    assert!(matches!(
        file.run(Some(GATEWAY)),
        Err(PolicyTestError::ListenerNotFound { .. })
    ));
    let error = file.run(Some("listeners: 3")).unwrap_err();
    assert!(
        matches!(error, PolicyTestError::GatewayConfig { .. }),
        "{error}"
    );
    let invalid = PolicyTestFile::parse("listener: { auth_timeout_ms: 0 }\ncases: []\n").unwrap();
    assert!(matches!(
        invalid.run(None),
        Err(PolicyTestError::Listener(_))
    ));
}

#[test]
fn built_in_auth_makes_unauthenticated_cases_auth_errors() {
    for auth in ["{ jwt: { secret: s } }", "{ api_keys: { keys: [k] } }"] {
        let file = format!(
            "listener: {{ auth: {auth}, rbac: {{ expose_functions: ['match(\"api::*\")'] }} }}\n\
             cases:\n  - name: no credentials\n    unauthenticated: true\n    invoke: api::x\n    \
             expect: {{ deny: AUTH_ERROR }}\n"
        );
        let results = PolicyTestFile::parse(&file).unwrap().run(None).unwrap();
        assert_eq!(
            outcomes(&results),
            [("no credentials", CaseOutcome::Pass)],
            "{auth}: {results:#?}"
        );
    }
}

#[test]
fn every_discovery_function_reports_ids() {
    let results = run(r#"
listener: { config: gw.yaml, name: public-workers }
functions:
  - { id: api::orders::list, worker: orders }
  - { id: secret::run, worker: orders }
trigger_types:
  - { id: http, worker: api }
  - { id: cron, worker: scheduler }
triggers:
  - { id: t-orders, type: http, function_id: api::orders::list, worker: orders }
  - { id: t-secret, type: cron, function_id: secret::run, worker: orders }
cases:
  - name: a single info call shows its id
    auth: { allowed_functions: [engine::functions::info] }
    discover: engine::functions::info
    request: { function_id: api::orders::list }
    expect: { ids: [api::orders::list] }
  - name: worker info shows the visible functions
    auth: { allowed_functions: [engine::workers::info] }
    discover: engine::workers::info
    request: { name: orders }
    expect: { ids: [api::orders::list] }
  - name: trigger types are listed
    auth: { allowed_functions: [engine::triggers::list] }
    discover: engine::triggers::list
    expect: { ids: [http, cron] }
  - name: a trigger type's info shows its id
    auth: { allowed_functions: [engine::triggers::info] }
    discover: engine::triggers::info
    request: { id: cron }
    expect: { ids: [cron] }
  - name: an unknown trigger type is the engine's not found
    auth: { allowed_functions: [engine::triggers::info] }
    discover: engine::triggers::info
    request: { id: queue }
    expect: { deny: NOT_FOUND, message: "Trigger type 'queue' is not registered." }
  - name: registered triggers to hidden functions are dropped
    auth: { allowed_functions: [engine::registered-triggers::list] }
    discover: engine::registered-triggers::list
    expect: { ids: [t-orders] }
  - name: a visible registered trigger's info shows its id
    auth: { allowed_functions: [engine::registered-triggers::info] }
    discover: engine::registered-triggers::info
    request: { id: t-orders }
    expect: { ids: [t-orders] }
  - name: hidden and unknown registered triggers answer alike
    auth: { allowed_functions: [engine::registered-triggers::info] }
    discover: engine::registered-triggers::info
    request: { id: t-secret }
    expect: { deny: FORBIDDEN, message: "trigger 't-secret' not allowed (add its function" }
  - name: an unknown worker answers like a hidden one
    auth: { allowed_functions: [engine::workers::info] }
    discover: engine::workers::info
    request: { name: nobody }
    expect: { deny: NOT_FOUND, message: "worker not found" }
"#);
    assert!(
        results.iter().all(|r| r.outcome == CaseOutcome::Pass),
        "{results:#?}"
    );
}

#[test]
fn trigger_info_counts_only_bindings_the_session_may_see() {
    let file = PolicyTestFile::parse(
        r#"
listener: { rbac: { expose_functions: ['match("api::*")'] } }
trigger_types: [{ id: http }]
triggers:
  - { id: a, type: http, function_id: api::x }
  - { id: b, type: http, function_id: secret::y }
cases: []
"#,
    )
    .unwrap();
    let policy =
        crate::listener_policy::ListenerPolicy::new(file.listener_config(None).unwrap()).unwrap();
    let reply = file
        .engine_reply(
            crate::engine_ids::DiscoveryFunction::TriggersInfo,
            &serde_json::json!({"id": "http"}),
        )
        .unwrap();
    assert_eq!(reply["instance_count"], 2);
    let filtered = policy.filter_discovery(
        &policy.permissive_session(),
        crate::engine_ids::DiscoveryFunction::TriggersInfo,
        reply,
        &file.catalog,
    );
    assert_eq!(filtered.result.unwrap()["instance_count"], 1);
}

#[test]
fn trigger_functions_are_gated_on_their_payload() {
    let results = run(r#"
listener: { config: gw.yaml, name: public-workers }
cases:
  - name: a trigger to an exposed target
    auth: { allowed_functions: [engine::register_trigger] }
    invoke: engine::register_trigger
    request: { trigger_type: http, function_id: api::run }
    expect: allow
  - name: a trigger to a hidden target
    auth: { allowed_functions: [engine::register_trigger] }
    invoke: engine::register_trigger
    request: { trigger_type: http, function_id: secret::run }
    expect: { deny: REGISTRATION_DENIED, message: "function 'secret::run' not allowed" }
  - name: a trigger type outside the list
    auth: { allowed_functions: [engine::register_trigger], allowed_trigger_types: [cron] }
    invoke: engine::register_trigger
    request: { trigger_type: http, function_id: api::run }
    expect: { deny: REGISTRATION_DENIED, message: "trigger type not allowed" }
  - name: removing someone else's trigger
    auth: { allowed_functions: [engine::unregister_trigger] }
    registered_triggers: [mine]
    invoke: engine::unregister_trigger
    request: { id: theirs }
    expect: { deny: REGISTRATION_DENIED, message: "not registered by this session" }
  - name: removing one's own trigger
    auth: { allowed_functions: [engine::unregister_trigger] }
    registered_triggers: [mine]
    invoke: engine::unregister_trigger
    request: { id: mine }
    expect: allow
  - name: the call itself must be allowed first
    auth: {}
    invoke: engine::register_trigger
    request: { trigger_type: http, function_id: api::run }
    expect: { deny: FORBIDDEN }
"#);
    assert!(
        results.iter().all(|r| r.outcome == CaseOutcome::Pass),
        "{results:#?}"
    );
}
