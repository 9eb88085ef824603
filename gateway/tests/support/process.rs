//! The `iii-gateway` binary as a child process: config in a temp dir, the ready file read
//! with a deadline, signals sent with `kill`, output kept in a log printed on failure.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use tokio::time::Instant;

/// How long the gateway may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(25);

pub struct Gateway {
    child: Child,
    pub dir: TempDir,
    pub addrs: HashMap<String, SocketAddr>,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_iii-gateway")
}

impl Gateway {
    /// Runs `iii-gateway run` with `yaml` and waits for the ready file.
    pub async fn run(yaml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::run_in(dir, yaml).await
    }

    /// As [`Gateway::run`], in a directory the caller prepared (certificates…).
    pub async fn run_in(dir: TempDir, yaml: &str) -> Self {
        let config = dir.path().join("gateway.yaml");
        std::fs::write(&config, yaml).unwrap();
        let args = vec![
            "run".to_owned(),
            "--config".to_owned(),
            config.display().to_string(),
        ];
        Self::spawn(dir, &args).await
    }

    /// Runs `iii-gateway dev --port-base 0`.
    pub async fn dev() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::spawn(
            dir,
            &["dev".to_owned(), "--port-base".to_owned(), "0".to_owned()],
        )
        .await
    }

    async fn spawn(dir: TempDir, args: &[String]) -> Self {
        let ready = dir.path().join("ready.json");
        let log = std::fs::File::create(dir.path().join("output.log")).unwrap();
        let child = Command::new(bin())
            .args(args)
            .arg("--ready-file")
            .arg(&ready)
            .current_dir(dir.path())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut gateway = Self {
            child,
            dir,
            addrs: HashMap::new(),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["service"], "iii-gateway");
                for (k, a) in v["addrs"].as_object().unwrap() {
                    gateway
                        .addrs
                        .insert(k.clone(), a.as_str().unwrap().parse().unwrap());
                }
                return gateway;
            }
            if let Ok(Some(status)) = gateway.child.try_wait() {
                panic!(
                    "gateway exited before ready ({status}):\n{}",
                    gateway.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "gateway not ready in {READY_TIMEOUT:?}:\n{}",
                gateway.output()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    pub fn addr(&self, key: &str) -> SocketAddr {
        *self
            .addrs
            .get(key)
            .unwrap_or_else(|| panic!("no {key} in {:?}", self.addrs))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("output.log")).unwrap_or_default()
    }

    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Waits (bounded) for the process to exit.
    pub async fn exited(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "gateway still running after {within:?}:\n{}",
                self.output()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- iii-gateway output ---\n{}", self.output());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion (for start-up failures) with a deadline.
pub async fn run_to_exit(args: &[&str], within: Duration) -> (ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    let log_path: PathBuf = dir.path().join("output.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, std::fs::read_to_string(&log_path).unwrap());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!(
                "still running after {within:?}:\n{}",
                std::fs::read_to_string(&log_path).unwrap()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}
