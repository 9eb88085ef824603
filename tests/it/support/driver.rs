//! The Node and Python SDK drivers (`tests/node/driver.mjs`, `tests/python/driver.py`) as
//! child processes, steered with JSON lines over stdin/stdout.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::NamedTempFile;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::{Engine, STEP, tests_dir};

/// How long a driver may take to start, connect and report `ready`.
const START_TIMEOUT: Duration = Duration::from_secs(40);

/// One SDK worker process. Killed when dropped; its stderr is printed if the test failed.
#[derive(Debug)]
pub(crate) struct Driver {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
    /// Lines read while waiting for something else.
    backlog: VecDeque<Value>,
    next_id: u64,
    stderr: NamedTempFile,
    /// The engine's worker id for this driver's connection.
    pub(crate) worker_id: String,
}

fn node_driver() -> (PathBuf, Vec<String>) {
    let dir = tests_dir().join("node");
    assert!(
        dir.join("node_modules").join("iii-sdk").is_dir(),
        "tests/node/node_modules is missing: run scripts/setup first"
    );
    (
        PathBuf::from("node"),
        vec![dir.join("driver.mjs").display().to_string()],
    )
}

fn python_driver() -> (PathBuf, Vec<String>) {
    let dir = tests_dir().join("python");
    let python = dir.join(".venv").join("bin").join("python");
    assert!(
        python.is_file(),
        "tests/python/.venv is missing: run scripts/setup first"
    );
    (python, vec![dir.join("driver.py").display().to_string()])
}

impl Driver {
    /// Starts a Node `iii-sdk` 0.22.1 worker named `name` against `engine`.
    pub(crate) async fn node(engine: &Engine, name: &str) -> Self {
        let (program, args) = node_driver();
        Self::start(program, args, &engine.ws_url(), name).await
    }

    /// Starts a Node worker against any worker listener URL (a gateway listener), sending
    /// `headers` with the upgrade.
    pub(crate) async fn node_at(url: &str, name: &str, headers: &Value) -> Self {
        let (program, args) = node_driver();
        Self::start_with(program, args, url, name, headers).await
    }

    /// As [`Self::node_at`] for a `wss://` URL whose certificate `ca` signed (the SDK trusts
    /// it through `NODE_EXTRA_CA_CERTS`).
    pub(crate) async fn node_at_trusting(
        url: &str,
        name: &str,
        headers: &Value,
        ca: &std::path::Path,
    ) -> Self {
        let (program, args) = node_driver();
        let mut headers = headers.clone();
        if let Some(map) = headers.as_object_mut() {
            map.insert("__ca".into(), json!(ca.display().to_string()));
        }
        Self::start_with(program, args, url, name, &headers).await
    }

    /// Starts a Python worker against any worker listener URL; `token` becomes `III_TOKEN`
    /// (sent as `Authorization: Bearer`).
    pub(crate) async fn python_at(url: &str, name: &str, token: Option<&str>) -> Self {
        let (program, args) = python_driver();
        let headers = token.map_or(Value::Null, |t| json!({"__token": t}));
        Self::start_with(program, args, url, name, &headers).await
    }

    /// Starts a Python `iii-sdk` 0.25.0 worker named `name` against `engine`.
    pub(crate) async fn python(engine: &Engine, name: &str) -> Self {
        let (program, args) = python_driver();
        Self::start(program, args, &engine.ws_url(), name).await
    }

    async fn start(program: PathBuf, args: Vec<String>, url: &str, name: &str) -> Self {
        Self::start_with(program, args, url, name, &Value::Null).await
    }

    async fn start_with(
        program: PathBuf,
        mut args: Vec<String>,
        url: &str,
        name: &str,
        headers: &Value,
    ) -> Self {
        args.push(url.to_owned());
        args.push(name.to_owned());
        let stderr = NamedTempFile::new().expect("temp file");
        let mut command = Command::new(&program);
        if let Some(token) = headers.get("__token").and_then(Value::as_str) {
            command.env("III_TOKEN", token);
        } else {
            command.env_remove("III_TOKEN");
        }
        if let Some(ca) = headers.get("__ca").and_then(Value::as_str) {
            command.env("NODE_EXTRA_CA_CERTS", ca);
        }
        if let Some(map) = headers.as_object() {
            let sent: serde_json::Map<String, Value> = map
                .iter()
                .filter(|(k, _)| !k.starts_with("__"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            command.env("III_HEADERS", Value::Object(sent).to_string());
        }
        let mut child = command
            .args(&args)
            .current_dir(tests_dir())
            .env("III_URL", url)
            .env("OTEL_ENABLED", "false")
            .env("III_DISABLE_TRACE_PAYLOADS", "1")
            .env("PYTHONUNBUFFERED", "1")
            .env_remove("III_WORKER_NAME")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr.reopen().expect("reopen stderr file"))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {} {args:?}: {e}", program.display()));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let mut driver = Self {
            name: name.to_owned(),
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            backlog: VecDeque::new(),
            next_id: 1,
            stderr,
            worker_id: String::new(),
        };
        let ready = driver.event_within("ready", START_TIMEOUT).await;
        driver.worker_id = ready["worker_id"].as_str().unwrap_or_default().to_owned();
        driver
    }

    /// The driver's stderr so far (SDK logs).
    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }

    /// Reads the next protocol line (a JSON object), or panics on EOF or after `limit`.
    async fn read_line(&mut self, limit: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let line = match tokio::time::timeout_at(deadline, self.lines.next_line()).await {
                Err(_) => panic!(
                    "driver {}: nothing within {limit:?}\n--- driver stderr ---\n{}",
                    self.name,
                    self.stderr()
                ),
                Ok(Err(e)) => panic!("driver {}: reading stdout: {e}", self.name),
                Ok(Ok(None)) => {
                    let status = self.child.wait().await.ok();
                    panic!(
                        "driver {} exited ({status:?})\n--- driver stderr ---\n{}",
                        self.name,
                        self.stderr()
                    )
                }
                Ok(Ok(Some(line))) => line,
            };
            // Anything that is not one of our JSON objects is SDK chatter.
            if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(&line)
                && (v.get("id").is_some() || v.get("event").is_some())
            {
                return v;
            }
        }
    }

    /// Sends a command and returns its id; collect the reply later with [`Self::reply`].
    pub(crate) async fn send(&mut self, cmd: &str, mut args: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let obj = args.as_object_mut().expect("command args are an object");
        obj.insert("id".into(), json!(id));
        obj.insert("cmd".into(), json!(cmd));
        let mut line = serde_json::to_vec(&args).expect("serialize command");
        line.push(b'\n');
        let stdin = self.stdin.as_mut().expect("driver stdin open");
        if let Err(e) = stdin.write_all(&line).await {
            panic!(
                "driver {}: writing command: {e}\n--- driver stderr ---\n{}",
                self.name,
                self.stderr()
            );
        }
        stdin.flush().await.expect("flush driver stdin");
        id
    }

    /// Waits up to `limit` for the reply to command `id`: `{"ok": bool, "result"|"error": …}`.
    pub(crate) async fn reply_within(&mut self, id: u64, limit: Duration) -> Value {
        if let Some(pos) = self.backlog.iter().position(|v| v["id"] == json!(id)) {
            return self.backlog.remove(pos).expect("position is valid");
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let v = self.read_line(left).await;
            if v["id"] == json!(id) {
                return v;
            }
            self.backlog.push_back(v);
        }
    }

    /// [`Self::reply_within`] with the default step limit.
    pub(crate) async fn reply(&mut self, id: u64) -> Value {
        self.reply_within(id, STEP * 3).await
    }

    /// Sends a command and waits for its reply.
    pub(crate) async fn request(&mut self, cmd: &str, args: Value) -> Value {
        let id = self.send(cmd, args).await;
        self.reply(id).await
    }

    /// Serves `GET /hello/:name` on the engine's REST API: the `http` kind `api::hello`
    /// answers 200 with the request object it was given.
    pub(crate) async fn serve_hello(&mut self) {
        self.ok(
            "register",
            json!({"functions": [{"id": "api::hello", "kind": "http"}]}),
        )
        .await;
        self.ok(
            "register_trigger",
            json!({"key": "hello", "type": "http", "function_id": "api::hello",
                   "config": {"api_path": "/hello/:name", "http_method": "GET"}}),
        )
        .await;
    }

    /// Sends a command that must succeed; returns its `result`.
    pub(crate) async fn ok(&mut self, cmd: &str, args: Value) -> Value {
        let reply = self.request(cmd, args.clone()).await;
        assert_eq!(
            reply["ok"],
            json!(true),
            "driver {}: {cmd} {args} failed: {reply}\n--- driver stderr ---\n{}",
            self.name,
            self.stderr()
        );
        reply["result"].clone()
    }

    /// Waits up to `limit` for an event line named `name`.
    pub(crate) async fn event_within(&mut self, name: &str, limit: Duration) -> Value {
        if let Some(pos) = self.backlog.iter().position(|v| v["event"] == json!(name)) {
            return self.backlog.remove(pos).expect("position is valid");
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let v = self.read_line(left).await;
            if v["event"] == json!(name) {
                return v;
            }
            self.backlog.push_back(v);
        }
    }

    /// Registers functions `[(id, kind)]` (kinds: see the drivers) and waits until the
    /// engine has applied them.
    pub(crate) async fn register(&mut self, functions: &[(&str, &str)]) {
        let specs: Vec<Value> = functions
            .iter()
            .map(|(id, kind)| json!({"id": id, "kind": kind}))
            .collect();
        self.ok("register", json!({ "functions": specs })).await;
    }

    /// Calls `function_id` with `payload` through the SDK; returns the raw reply.
    pub(crate) async fn trigger(&mut self, function_id: &str, payload: Value) -> Value {
        self.request(
            "trigger",
            json!({"function_id": function_id, "payload": payload, "timeoutMs": 10_000}),
        )
        .await
    }

    /// Kills the driver process at once (the socket is not closed politely).
    pub(crate) async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = super::within(STEP, "killed driver exits", self.child.wait()).await;
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            eprintln!(
                "--- driver {} stderr ---\n{}--- end of driver {} stderr ---",
                self.name,
                self.stderr(),
                self.name
            );
        }
    }
}
