//! The real `iii-engine` binary on ephemeral loopback ports.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tempfile::TempDir;
use tokio::process::{Child, Command};

use super::tests_dir;

/// How long the engine may take to write its ready file.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The ready file the engine writes once its listeners accept.
#[derive(Debug, Deserialize)]
struct ReadyFile {
    service: String,
    pid: u32,
    addrs: std::collections::BTreeMap<String, String>,
}

/// A running engine. Killed when dropped; its stderr is printed if the test failed.
#[derive(Debug)]
pub(crate) struct Engine {
    child: Child,
    dir: TempDir,
    pid: u32,
    /// Trusted worker WebSocket listener (`addrs.worker`).
    pub(crate) worker_addr: SocketAddr,
    /// REST API listener (`addrs.http`), when iii-http is configured.
    pub(crate) http_addr: Option<SocketAddr>,
    /// Every address of the ready file (`worker`, `worker:1`, …, `http`).
    pub(crate) addrs: std::collections::BTreeMap<String, String>,
}

/// Path of the engine binary: `III_ENGINE_BIN`, else `<workspace>/target/debug/iii-engine`.
pub(crate) fn engine_bin() -> PathBuf {
    super::workspace_bin("iii-engine", "III_ENGINE_BIN")
}

impl Engine {
    /// Starts the engine with `tests/fixtures/engine.yaml` (worker manager + iii-http, port 0).
    pub(crate) async fn start() -> Self {
        Self::start_with_fixture("engine.yaml").await
    }

    /// Starts the engine with a config file from `tests/fixtures/`.
    pub(crate) async fn start_with_fixture(name: &str) -> Self {
        let path = tests_dir().join("fixtures").join(name);
        let yaml = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        Self::start_with_config(&yaml).await
    }

    /// Starts the engine with `yaml` as its config file.
    pub(crate) async fn start_with_config(yaml: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, yaml).expect("write config");
        let ready = dir.path().join("engine.ready.json");
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("stderr file");
        let stdout = std::fs::File::create(dir.path().join("stdout.log")).expect("stdout file");
        let child = Command::new(engine_bin())
            .arg("--config")
            .arg(&config)
            .arg("--ready-file")
            .arg(&ready)
            .current_dir(dir.path())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", engine_bin().display()));
        let pid = child.id().expect("child pid");
        let mut engine = Self {
            child,
            dir,
            pid,
            worker_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_addr: None,
            addrs: std::collections::BTreeMap::new(),
        };
        let ready = engine.wait_ready(&ready).await;
        assert_eq!(ready.service, "iii-engine", "ready file service");
        assert_eq!(ready.pid, pid, "ready file pid");
        engine.worker_addr = ready
            .addrs
            .get("worker")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("ready file has no usable addrs.worker: {:?}", ready.addrs));
        engine.http_addr = ready.addrs.get("http").and_then(|a| a.parse().ok());
        engine.addrs = ready.addrs;
        engine
    }

    /// Runs the engine with `yaml`, expecting it to refuse to start; returns its exit
    /// status and output. Panics if it gets ready instead or runs past the deadline.
    pub(crate) async fn boot_failure(yaml: &str) -> (std::process::ExitStatus, String) {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, yaml).expect("write config");
        let ready = dir.path().join("engine.ready.json");
        let mut child = Command::new(engine_bin())
            .arg("--config")
            .arg(&config)
            .arg("--ready-file")
            .arg(&ready)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn iii-engine");
        let run = async {
            let mut stdout = child.stdout.take().expect("stdout");
            let mut stderr = child.stderr.take().expect("stderr");
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let _ = tokio::join!(
                tokio::io::AsyncReadExt::read_to_end(&mut stdout, &mut a),
                tokio::io::AsyncReadExt::read_to_end(&mut stderr, &mut b)
            );
            let status = child.wait().await.expect("wait");
            (
                status,
                String::from_utf8_lossy(&b).into_owned() + &String::from_utf8_lossy(&a),
            )
        };
        let Ok(out) = tokio::time::timeout(READY_TIMEOUT, run).await else {
            panic!(
                "iii-engine kept running with a config it should refuse (ready file: {})",
                ready.exists()
            );
        };
        assert!(
            !ready.exists(),
            "a refused config must not produce a ready file"
        );
        out
    }

    async fn wait_ready(&mut self, path: &Path) -> ReadyFile {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(text) = std::fs::read_to_string(path) {
                match serde_json::from_str::<ReadyFile>(&text) {
                    Ok(ready) => return ready,
                    // Written atomically, so a half file is a bug, not a race.
                    Err(e) => panic!("ready file is not the documented JSON ({e}): {text:?}"),
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "iii-engine exited before it was ready ({status})\n--- engine stderr ---\n{}",
                    self.stderr()
                );
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "iii-engine wrote no ready file within {READY_TIMEOUT:?}\n--- engine stderr ---\n{}",
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `ws://127.0.0.1:PORT` — the URL the SDKs take.
    pub(crate) fn ws_url(&self) -> String {
        format!("ws://{}", self.worker_addr)
    }

    /// The REST API address; panics when iii-http is not configured.
    pub(crate) fn http(&self) -> SocketAddr {
        self.http_addr.expect("the engine reported no http address")
    }

    /// The engine's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Everything the engine wrote to stderr so far.
    pub(crate) fn stderr(&self) -> String {
        output_in(self.dir.path())
    }

    /// Sends SIGTERM, as a service manager does to stop the engine.
    pub(crate) fn terminate(&self) {
        super::terminate(self.pid);
    }

    /// Waits (at most `limit`) for the engine to exit and returns its status.
    pub(crate) async fn exit_status(&mut self, limit: Duration) -> std::process::ExitStatus {
        let dir = self.dir.path().to_owned();
        super::exit_status(&mut self.child, limit, "iii-engine", move || {
            output_in(&dir)
        })
        .await
    }

    /// Panics (with the engine's output) if the engine has exited.
    pub(crate) fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "iii-engine exited ({status})\n--- engine output ---\n{}",
                self.stderr()
            );
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            eprintln!(
                "--- iii-engine (pid {}) output ---\n{}--- end of iii-engine output ---",
                self.pid,
                self.stderr()
            );
        }
    }
}

/// What an engine started in `dir` wrote (stderr, then stdout).
fn output_in(dir: &Path) -> String {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    read("stderr.log") + &read("stdout.log")
}
