//! `iii-gateway policy test` end to end: the shipped examples pass, a failing fixture fails
//! with a FAIL line and exit code 1, and `--format json` reports the same.

use std::path::PathBuf;
use std::process::{Command, Output};

#[allow(
    clippy::unwrap_used,
    reason = "test support: a binary that cannot start fails the test"
)]
fn gateway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iii-gateway"))
        .args(args)
        .output()
        .unwrap()
}

fn path(relative: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(relative)
        .display()
        .to_string()
}

#[test]
fn the_shipped_policy_examples_pass() {
    let output = gateway(&["policy", "test", &path("../policies/examples")]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("browser_test.yaml: a signed-in user can list orders: PASS"),
        "{stdout}"
    );
    assert!(stdout.contains("tenant_test.yaml"), "{stdout}");
    assert!(stdout.contains("partner_test.yaml"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert!(stdout.trim_end().ends_with(" passed, 0 failed"), "{stdout}");
}

#[test]
fn a_failing_case_prints_fail_with_the_reason_and_exits_1() {
    let output = gateway(&["policy", "test", &path("tests/fixtures/policy")]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "failing_test.yaml: this case expects the wrong thing: FAIL (expected allow, got denied \
             FORBIDDEN: function 'admin::wipe' not allowed (add to rbac.expose_functions))"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("exposed ids are allowed: PASS"), "{stdout}");
    assert!(
        stdout.trim_end().ends_with("1 passed, 1 failed"),
        "{stdout}"
    );
}

#[test]
fn json_output_reports_every_case_and_the_totals() {
    let output = gateway(&[
        "policy",
        "test",
        "--format",
        "json",
        &path("tests/fixtures/policy"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["passed"], 1);
    assert_eq!(report["failed"], 1);
    let cases = &report["files"][0]["cases"];
    assert_eq!(cases[0]["outcome"], "pass");
    assert_eq!(cases[1]["outcome"], "fail");
    assert_eq!(cases[1]["name"], "this case expects the wrong thing");
}

#[test]
fn a_path_that_cannot_be_read_is_an_error_and_fails_the_run() {
    let output = gateway(&[
        "policy",
        "test",
        &path("tests/fixtures/policy/missing_test.yaml"),
    ]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("missing_test.yaml: ERROR: cannot read"),
        "{stdout}"
    );
    assert!(
        stdout.trim_end().ends_with("0 passed, 1 failed"),
        "{stdout}"
    );
}

#[test]
fn variables_in_the_referenced_gateway_config_are_expanded() {
    let output = Command::new(env!("CARGO_BIN_EXE_iii-gateway"))
        .args(["policy", "test", &path("tests/fixtures/policy_env")])
        .env("POLICY_ENV_LISTENER", "from-env")
        .env_remove("POLICY_ENV_EXPOSED")
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("the exposed prefix comes from the environment: PASS"),
        "{stdout}"
    );
}

#[test]
fn an_unset_variable_in_the_referenced_config_is_named_with_its_position() {
    let output = Command::new(env!("CARGO_BIN_EXE_iii-gateway"))
        .args(["policy", "test", &path("tests/fixtures/policy_env")])
        .env_remove("POLICY_ENV_LISTENER")
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("gateway.yaml:3:11: environment variable `POLICY_ENV_LISTENER` is not set"),
        "{stdout}"
    );
}

/// A fresh, empty directory for one test under cargo's per-target temp dir.
#[allow(
    clippy::unwrap_used,
    reason = "test support: a directory that cannot be made fails the test"
)]
fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[cfg(unix)]
#[test]
fn a_symlink_loop_is_not_followed() {
    let dir = scratch_dir("policy_symlink_loop");
    std::fs::write(
        dir.join("open_test.yaml"),
        "listener: {}\ncases:\n  - { name: open, invoke: a::b, expect: allow }\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(&dir, dir.join("loop")).unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::os::unix::fs::symlink("..", dir.join("sub").join("up")).unwrap();
    let output = gateway(&["policy", "test", &dir.display().to_string()]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.trim_end().ends_with("1 passed, 0 failed"),
        "{stdout}"
    );
}

#[test]
fn finding_no_test_files_fails_and_says_where_it_looked() {
    let dir = scratch_dir("policy_no_tests");
    std::fs::write(dir.join("gateway.yaml"), "listeners: []\n").unwrap();
    let output = gateway(&["policy", "test", &dir.display().to_string()]);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "no *_test.yaml files found under {}",
            dir.display()
        )),
        "{stderr}"
    );
}
