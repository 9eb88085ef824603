//! `iii-gateway check --config FILE`: a valid config prints what it would serve and exits 0;
//! an invalid one prints every problem with its position and exits 1.

use std::process::{Command, Output};

#[allow(
    clippy::unwrap_used,
    reason = "test support: a binary that cannot start fails the test"
)]
fn check(yaml: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(&path, yaml).unwrap();
    Command::new(env!("CARGO_BIN_EXE_iii-gateway"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap()
}

#[test]
fn a_valid_config_is_summarised() {
    let output = check(
        "listeners:\n  - name: pub\n    port: 49135\n    rbac: { auth_function_id: app::auth, expose_functions: ['match(\"api::*\")', { metadata: { public: true } }] }\nedge:\n  routes: [{ path_prefix: /rbac/, to: 'listener:pub' }]\n",
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for needle in [
        "configuration OK",
        "listener:pub: ws://127.0.0.1:49135",
        "auth: auth function app::auth",
        "rbac: 2 expose filter(s)",
        "/rbac/ (stripped) -> listener:pub",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
}

#[test]
fn every_problem_is_reported_and_the_exit_code_is_1() {
    let output = check(
        "listeners:\n  - { host: 0.0.0.0, auth_timeout_ms: 0 }\nedge:\n  routes: [{ path_prefix: /ws/, to: engine }]\n",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for needle in [
        "listeners[0].host: a plain (non-TLS) listener may only bind a loopback address",
        "listeners[0].auth_timeout_ms: must be greater than 0",
        "edge.routes[0].to: a route to the trusted worker port needs edge.allow_trusted",
        "configuration check failed (3 problem(s))",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
}
