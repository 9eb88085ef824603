//! Helpers for the end-to-end tests: the engine process, the SDK drivers, a raw
//! WebSocket client and a raw HTTP/1.1 client. Every wait here is bounded.

// Test support prints captured child output when a test fails; not every helper is used
// by every test.
#![allow(clippy::print_stderr, dead_code)]

pub(crate) mod driver;
pub(crate) mod engine;
pub(crate) mod gateway;
pub(crate) mod http;
pub(crate) mod proxy;
pub(crate) mod tls;
pub(crate) mod ws;

use std::path::PathBuf;
use std::time::Duration;

pub(crate) use driver::Driver;
pub(crate) use engine::Engine;
pub(crate) use gateway::Gateway;
pub(crate) use ws::RawWorker;

/// Upper bound for anything that should happen "at once" (a frame, a reply).
pub(crate) const STEP: Duration = Duration::from_secs(10);

/// The workspace root (the parent of this crate).
pub(crate) fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `tests/` itself: drivers and fixtures live under it.
pub(crate) fn tests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Awaits `fut` for at most `limit`, panicking with `what` when it takes longer.
pub(crate) async fn within<F: Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

/// Polls `check` every 20 ms until it returns `Some`, for at most `limit`.
pub(crate) async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("not reached within {limit:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// True when `s` is a hyphenated lowercase UUID.
pub(crate) fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::parse_str(s).is_ok() && s == s.to_ascii_lowercase()
}

/// The position-dependent test text of `n` characters the drivers build and check:
/// `"00000000|00000001|…"` cut to length.
pub(crate) fn pattern(n: usize) -> String {
    let mut out = String::with_capacity(n + 9);
    let mut i = 0_u64;
    while out.len() < n {
        out.push_str(&format!("{i:08}|"));
        i += 1;
    }
    out.truncate(n);
    out
}

/// Sends SIGTERM to a child process, as a service manager does to stop it.
pub(crate) fn terminate(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {pid} failed");
}

/// Waits (at most `limit`) for `child` to exit; panics with `output()` if it does not.
pub(crate) async fn exit_status(
    child: &mut tokio::process::Child,
    limit: Duration,
    name: &str,
    output: impl FnOnce() -> String,
) -> std::process::ExitStatus {
    match tokio::time::timeout(limit, child.wait()).await {
        Ok(status) => status.unwrap_or_else(|e| panic!("wait for {name}: {e}")),
        Err(_) => panic!("{name} did not exit within {limit:?}\n{}", output()),
    }
}

/// A binary of this workspace: `$env_var` when set, else `<target>/debug/<name>` (which must
/// have been built: `cargo build --bins`, as scripts/test does).
pub(crate) fn workspace_bin(name: &str, env_var: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var) {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let bin = target.join("debug").join(name);
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --bins` first (scripts/test does)",
        bin.display()
    );
    bin
}
