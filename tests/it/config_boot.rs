//! Config handling seen from outside the binary (the parser's unit tests live in engine/).

use crate::support::{Engine, RawWorker, http};

#[tokio::test]
async fn older_modules_key_and_env_defaults_start_the_same_workers() {
    // `modules:` is iii's older name for `workers:`; `${VAR:default}` falls back when unset.
    let engine = Engine::start_with_config(
        "modules:\n\
         \x20 - name: iii-worker-manager\n\
         \x20   config: { host: 127.0.0.1, port: ${III_TESTS_SURELY_UNSET_PORT:0} }\n\
         \x20 - name: iii-http\n\
         \x20   config: { port: ${III_TESTS_SURELY_UNSET_HTTP:0} }\n",
    )
    .await;
    assert!(engine.http_addr.is_some(), "iii-http started from modules:");
    assert!(
        engine.worker_addr.ip().is_loopback(),
        "hosts default to loopback"
    );
    assert!(
        engine.http().ip().is_loopback(),
        "hosts default to loopback"
    );
    let _w = RawWorker::connect(&engine).await;
    assert_eq!(http::get(engine.http(), "/nothing").await.status, 404);
}

#[tokio::test]
async fn rbac_on_the_first_trusted_listener_is_refused_at_boot() {
    let (status, output) = Engine::boot_failure(
        "workers:\n\
         \x20 - name: iii-worker-manager\n\
         \x20   config:\n\
         \x20     port: 0\n\
         \x20     rbac:\n\
         \x20       auth_function_id: app::auth\n\
         \x20       expose_functions: ['match(\"api::*\")']\n",
    )
    .await;
    assert!(
        !status.success(),
        "the trusted listener cannot carry rbac: {output}"
    );
    assert!(
        output.contains("rbac"),
        "the error names the rbac block: {output}"
    );
}

#[tokio::test]
async fn unset_variable_without_default_is_a_boot_error_naming_it() {
    let (status, output) = Engine::boot_failure(
        "workers:\n\
         \x20 - name: iii-worker-manager\n\
         \x20   config: { port: ${III_TESTS_SURELY_UNSET_VAR} }\n",
    )
    .await;
    assert!(!status.success(), "{output}");
    assert!(
        output.contains("III_TESTS_SURELY_UNSET_VAR"),
        "the error names the variable: {output}"
    );
}

#[tokio::test]
async fn unbuilt_iii_worker_is_skipped_with_a_warning() {
    let engine = Engine::start_with_config(
        "workers:\n\
         \x20 - name: iii-worker-manager\n\
         \x20   config: { port: 0 }\n\
         \x20 - name: iii-cron\n\
         \x20   config: {}\n",
    )
    .await;
    let _w = RawWorker::connect(&engine).await;
    let out = engine.stderr();
    assert!(
        out.contains("iii-cron"),
        "the skipped worker is reported: {out}"
    );
}
