//! Debian's nginx and Caddy running the shipped `examples/nginx` and `examples/caddy` files,
//! unprivileged and on ephemeral loopback ports.
//!
//! The shipped file is what runs. For nginx the test replaces only its deployment values (the
//! `listen` ports, the `upstream` addresses and the certificate paths; each must occur in the
//! file) and includes it in a minimal `http {}` block with temporary paths. For Caddy the file
//! is used verbatim: its `{$III_…}` environment placeholders are set, and a global options
//! block goes in front (`admin off`, `default_bind 127.0.0.1`, the two ports).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tempfile::TempDir;
use tokio::process::{Child, Command};

use super::tls::TestCert;
use super::workspace_root;

/// How long a proxy may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Attempts when a picked port was taken by someone else before the proxy bound it.
const BIND_ATTEMPTS: usize = 4;

/// Which proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Nginx,
    Caddy,
}

/// Which of the two shipped layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// `/api/`, `/stream/`, `/rbac/` on one host.
    PathPrefix,
    /// `api.`, `stream.`, `workers.` host names.
    Subdomain,
}

/// The addresses behind the proxy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Upstreams {
    /// The engine's REST API (3111).
    pub(crate) rest: SocketAddr,
    /// The Stream API (3112): nothing listens there in these tests.
    pub(crate) stream: SocketAddr,
    /// The gateway's RBAC listener (49135).
    pub(crate) rbac: SocketAddr,
}

/// The shipped example file for `kind` and `style`.
pub(crate) fn example_path(kind: Kind, style: Style) -> PathBuf {
    let examples = workspace_root().join("examples");
    match (kind, style) {
        (Kind::Nginx, Style::PathPrefix) => examples.join("nginx").join("path-prefix.conf"),
        (Kind::Nginx, Style::Subdomain) => examples.join("nginx").join("subdomain.conf"),
        (Kind::Caddy, Style::PathPrefix) => examples.join("caddy").join("Caddyfile.path-prefix"),
        (Kind::Caddy, Style::Subdomain) => examples.join("caddy").join("Caddyfile.subdomain"),
    }
}

/// A loopback port that was free a moment ago (bind to port 0, read it, close).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Finds `name` on `PATH` or in the sbin directories (nginx lives in /usr/sbin), failing the
/// test with the way to install it.
fn binary(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed: run scripts/setup (it installs Debian's nginx and \
                 caddy); the proxy example tests need the real binaries"
            )
        })
}

/// Replaces every occurrence of each `from` by `to`, failing when a `from` is missing (the
/// example changed under the test).
fn substitute(file: &Path, mut text: String, subs: &[(&str, String)]) -> String {
    for (from, to) in subs {
        assert!(
            text.contains(from),
            "{} no longer contains {from:?}: update tests/it/support/proxy.rs with it",
            file.display()
        );
        text = text.replace(from, to);
    }
    text
}

/// A running proxy. Killed when dropped; its output is printed if the test failed.
#[derive(Debug)]
pub(crate) struct Proxy {
    child: Child,
    dir: TempDir,
    kind: Kind,
    /// The TLS port (443 in the example).
    pub(crate) https: SocketAddr,
    /// The plain port (80 in the example): redirects only.
    pub(crate) http: SocketAddr,
}

impl Proxy {
    /// Starts `kind` with the shipped `style` file in front of `up`, serving `cert`.
    pub(crate) async fn start(kind: Kind, style: Style, up: &Upstreams, cert: &TestCert) -> Self {
        let program = binary(match kind {
            Kind::Nginx => "nginx",
            Kind::Caddy => "caddy",
        });
        let mut last = String::new();
        for _ in 0..BIND_ATTEMPTS {
            let https = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let mut http = SocketAddr::from(([127, 0, 0, 1], free_port()));
            while http == https {
                http.set_port(free_port());
            }
            let dir = tempfile::tempdir().expect("temp dir");
            let mut command = match kind {
                Kind::Nginx => {
                    nginx_command(&program, dir.path(), style, https, http, up, cert).await
                }
                Kind::Caddy => {
                    caddy_command(&program, dir.path(), style, https, http, up, cert).await
                }
            };
            let log = std::fs::File::create(dir.path().join("output.log")).expect("log file");
            let child = command
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log"))
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| panic!("spawning {}: {e}", program.display()));
            let mut proxy = Self {
                child,
                dir,
                kind,
                https,
                http,
            };
            if proxy.wait_accepting().await {
                return proxy;
            }
            last = proxy.output();
            assert!(
                last.to_ascii_lowercase().contains("address already in use"),
                "{kind:?} exited before accepting connections\n{last}"
            );
        }
        panic!("{kind:?}: every port picked was taken ({BIND_ATTEMPTS} attempts)\n{last}");
    }

    /// True once both ports accept; false when the process exited first.
    async fn wait_accepting(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            let https = tokio::net::TcpStream::connect(self.https).await.is_ok();
            let http = tokio::net::TcpStream::connect(self.http).await.is_ok();
            if https && http {
                // Someone else may hold a port we lost the race for: the proxy then exits
                // with "address already in use" right after.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return !matches!(self.child.try_wait(), Ok(Some(_)));
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{:?} accepted no connection within {START_TIMEOUT:?}\n{}",
                self.kind,
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything the proxy logged so far.
    pub(crate) fn output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("output.log")).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            eprintln!(
                "--- {:?} output ---\n{}--- end of {:?} output ---",
                self.kind,
                self.output(),
                self.kind
            );
        }
    }
}

/// Runs `command` to completion (bounded), panicking with its output on failure.
async fn run_check(mut command: Command, what: &str) {
    let out = super::within(
        START_TIMEOUT,
        what,
        command.stdin(Stdio::null()).kill_on_drop(true).output(),
    )
    .await
    .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({})\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Renders the shipped nginx file into `dir`, checks it with `nginx -t` and returns the
/// command that runs it in the foreground, one process (no workers to outlive a kill).
async fn nginx_command(
    program: &Path,
    dir: &Path,
    style: Style,
    https: SocketAddr,
    http: SocketAddr,
    up: &Upstreams,
    cert: &TestCert,
) -> Command {
    let file = example_path(Kind::Nginx, style);
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
    let site = substitute(
        &file,
        text,
        &[
            ("listen 443 ", format!("listen {https} ")),
            ("listen 80", format!("listen {http}")),
            ("server 127.0.0.1:3111;", format!("server {};", up.rest)),
            ("server 127.0.0.1:3112;", format!("server {};", up.stream)),
            ("server 127.0.0.1:49135;", format!("server {};", up.rbac)),
            (
                "/etc/nginx/tls/example.com/fullchain.pem",
                cert.cert_path().display().to_string(),
            ),
            (
                "/etc/nginx/tls/example.com/privkey.pem",
                cert.key_path().display().to_string(),
            ),
        ],
    );
    std::fs::write(dir.join("site.conf"), site).expect("write site.conf");
    let d = dir.display();
    let main = format!(
        "# The http {{}} block a distribution's nginx.conf provides, with temporary paths.\n\
         events {{ worker_connections 256; }}\n\
         http {{\n\
         \x20   access_log {d}/access.log;\n\
         \x20   client_body_temp_path {d}/client_body;\n\
         \x20   proxy_temp_path {d}/proxy;\n\
         \x20   fastcgi_temp_path {d}/fastcgi;\n\
         \x20   uwsgi_temp_path {d}/uwsgi;\n\
         \x20   scgi_temp_path {d}/scgi;\n\
         \x20   include {d}/site.conf;\n\
         }}\n"
    );
    std::fs::write(dir.join("nginx.conf"), main).expect("write nginx.conf");
    let globals =
        format!("daemon off; master_process off; pid {d}/nginx.pid; error_log stderr info;");
    let args = [
        "-p".to_owned(),
        d.to_string(),
        "-c".to_owned(),
        format!("{d}/nginx.conf"),
        "-e".to_owned(),
        "stderr".to_owned(),
        "-g".to_owned(),
        globals,
    ];
    let mut test = Command::new(program);
    test.arg("-t").args(&args);
    run_check(test, "nginx -t on the rendered example").await;
    let mut run = Command::new(program);
    run.args(&args);
    run
}

/// Writes the Caddyfile (test global options + the shipped file verbatim) into `dir`, checks
/// it with `caddy validate` and returns the `caddy run` command with the placeholders set.
async fn caddy_command(
    program: &Path,
    dir: &Path,
    style: Style,
    https: SocketAddr,
    http: SocketAddr,
    up: &Upstreams,
    cert: &TestCert,
) -> Command {
    let file = example_path(Kind::Caddy, style);
    let shipped = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
    let domain = match style {
        Style::PathPrefix => "localhost",
        Style::Subdomain => "example.com",
    };
    let caddyfile = format!(
        "# Test-only global options; the shipped {} follows unchanged.\n\
         {{\n\
         \tadmin off\n\
         \tdefault_bind 127.0.0.1\n\
         \thttp_port {}\n\
         \thttps_port {}\n\
         \tskip_install_trust\n\
         }}\n\n{shipped}",
        file.display(),
        http.port(),
        https.port()
    );
    let config = dir.join("Caddyfile");
    std::fs::write(&config, caddyfile).expect("write Caddyfile");
    let env: Vec<(&str, String)> = vec![
        ("HOME", dir.display().to_string()),
        ("XDG_DATA_HOME", dir.join("data").display().to_string()),
        ("XDG_CONFIG_HOME", dir.join("config").display().to_string()),
        ("III_DOMAIN", domain.to_owned()),
        ("III_TLS_CERT", cert.cert_path().display().to_string()),
        ("III_TLS_KEY", cert.key_path().display().to_string()),
        ("III_REST", up.rest.to_string()),
        ("III_STREAM", up.stream.to_string()),
        ("III_RBAC", up.rbac.to_string()),
    ];
    let mut validate = Command::new(program);
    validate
        .args(["validate", "--adapter", "caddyfile", "--config"])
        .arg(&config)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    run_check(validate, "caddy validate on the example").await;
    let mut run = Command::new(program);
    run.args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&config)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    run
}
