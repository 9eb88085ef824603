//! The real `iii-gateway` binary in front of a test engine, on ephemeral loopback ports.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tempfile::TempDir;
use tokio::process::{Child, Command};

use super::Engine;

/// How long the gateway may take to write its ready file.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
struct ReadyFile {
    service: String,
    addrs: BTreeMap<String, String>,
}

/// A running gateway. Killed when dropped; its output is printed if the test failed.
#[derive(Debug)]
pub(crate) struct Gateway {
    child: Child,
    dir: TempDir,
    pid: u32,
    /// Bound addresses from the ready file (`listener:<name>`, `edge`, `admin`).
    pub(crate) addrs: BTreeMap<String, SocketAddr>,
}

/// Path of the gateway binary: `III_GATEWAY_BIN`, else `<target>/debug/iii-gateway`.
pub(crate) fn gateway_bin() -> PathBuf {
    super::workspace_bin("iii-gateway", "III_GATEWAY_BIN")
}

impl Gateway {
    /// Starts the gateway in front of `engine`; `yaml` is the rest of the config (listeners,
    /// edge, admin…), the `engine:` block is added here.
    pub(crate) async fn start(engine: &Engine, yaml: &str) -> Self {
        let config = format!("engine:\n  url: {}\n{yaml}", engine.ws_url());
        Self::start_with_config(&config).await
    }

    /// Starts the gateway with `yaml` as its whole config file.
    pub(crate) async fn start_with_config(yaml: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("gateway.yaml");
        std::fs::write(&config, yaml).expect("write config");
        let ready = dir.path().join("gateway.ready.json");
        let log = std::fs::File::create(dir.path().join("output.log")).expect("log file");
        let child = Command::new(gateway_bin())
            .arg("run")
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
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", gateway_bin().display()));
        let pid = child.id().expect("child pid");
        let mut gateway = Self {
            child,
            dir,
            pid,
            addrs: BTreeMap::new(),
        };
        let ready = gateway.wait_ready(&ready).await;
        assert_eq!(ready.service, "iii-gateway");
        gateway.addrs = ready
            .addrs
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.parse().ok()?)))
            .collect();
        gateway
    }

    async fn wait_ready(&mut self, path: &Path) -> ReadyFile {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(text) = std::fs::read_to_string(path) {
                return serde_json::from_str(&text).unwrap_or_else(|e| {
                    panic!("ready file is not the documented JSON ({e}): {text:?}")
                });
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "iii-gateway exited before it was ready ({status})\n{}",
                    self.output()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "iii-gateway wrote no ready file within {READY_TIMEOUT:?}\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The address of a listener (`listener:<name>`).
    pub(crate) fn addr(&self, key: &str) -> SocketAddr {
        *self
            .addrs
            .get(key)
            .unwrap_or_else(|| panic!("no {key} in the ready file: {:?}", self.addrs))
    }

    /// `ws://ADDR` of a listener.
    pub(crate) fn ws_url(&self, key: &str) -> String {
        format!("ws://{}", self.addr(key))
    }

    /// Everything the gateway logged so far.
    pub(crate) fn output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("output.log")).unwrap_or_default()
    }

    /// Sends SIGTERM.
    pub(crate) fn terminate(&self) {
        super::terminate(self.pid);
    }

    /// Waits (at most `limit`) for the gateway to exit.
    pub(crate) async fn exit_status(&mut self, limit: Duration) -> std::process::ExitStatus {
        let log = self.dir.path().join("output.log");
        let output = move || std::fs::read_to_string(log).unwrap_or_default();
        super::exit_status(&mut self.child, limit, "iii-gateway", output).await
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            eprintln!(
                "--- iii-gateway (pid {}) output ---\n{}--- end of iii-gateway output ---",
                self.pid,
                self.output()
            );
        }
    }
}
