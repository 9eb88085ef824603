//! `iii-gateway dev [--ready-file PATH] [--port-base N]`: an embedded engine and the gateway in
//! one process, with a self-signed certificate for `localhost` / `127.0.0.1`, on fixed local
//! ports. Everything binds loopback only.
//!
//! Ports (default, or `--port-base N` → N, N+1, … in this order; `--port-base 0` = all
//! ephemeral, read them from the ready file):
//!
//! | # | surface | default |
//! |---|---|---|
//! | N   | engine worker port (trusted, plain ws) | 49134 |
//! | N+1 | engine REST API (plain http)            | 3111  |
//! | N+2 | RBAC listener `dev` (wss)               | 49135 |
//! | N+3 | edge (https: `/api/` → REST, `/rbac/` → the RBAC listener) | 8443 |
//! | N+4 | admin (http: `/healthz`, `/readyz`, `/status`, `/metrics`) | 9464 |

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config;
use crate::run::{Gateway, RunError, Signals, announce_ready, build_runtime, wait_for_shutdown};
use crate::status::Status;

/// Default ports, in `--port-base` order.
pub const DEFAULT_PORTS: [u16; 5] = [49134, 3111, 49135, 8443, 9464];
/// Calls in flight on the embedded engine get this long at shutdown.
const ENGINE_GRACE: Duration = Duration::from_secs(2);

/// `dev` arguments.
#[derive(Debug, Clone, Default)]
pub struct DevOptions {
    /// Where to write the ready file.
    pub ready_file: Option<PathBuf>,
    /// First of five consecutive ports (0 = all ephemeral).
    pub port_base: Option<u16>,
}

/// The five ports for `port_base`.
///
/// # Errors
/// When `base + 4` does not fit in a port number.
pub fn ports(port_base: Option<u16>) -> Result<[u16; 5], RunError> {
    match port_base {
        None => Ok(DEFAULT_PORTS),
        Some(0) => Ok([0; 5]),
        Some(base) => {
            let mut ports = [0_u16; 5];
            for (offset, port) in (0_u16..).zip(ports.iter_mut()) {
                *port = base.checked_add(offset).ok_or_else(|| {
                    RunError::Engine(format!("--port-base {base}: base + 4 is over 65535"))
                })?;
            }
            Ok(ports)
        }
    }
}

/// The self-signed certificate, on disk for `curl --cacert`; removed when dropped.
#[derive(Debug)]
struct DevCert {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl DevCert {
    fn create() -> Result<Self, RunError> {
        let fail = |e: String| RunError::Engine(format!("self-signed certificate: {e}"));
        let certified = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .map_err(|e| fail(e.to_string()))?;
        let dir = std::env::temp_dir().join(format!("iii-gateway-dev-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, certified.cert.pem())
            .map_err(|e| fail(format!("{}: {e}", cert.display())))?;
        std::fs::write(&key, certified.signing_key.serialize_pem())
            .map_err(|e| fail(format!("{}: {e}", key.display())))?;
        Ok(Self { dir, cert, key })
    }
}

impl Drop for DevCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn engine_yaml(worker: u16, rest: u16) -> String {
    format!(
        "workers:\n  - name: iii-worker-manager\n    config: {{ host: 127.0.0.1, port: {worker} }}\n  - name: iii-http\n    config: {{ host: 127.0.0.1, port: {rest} }}\n"
    )
}

fn gateway_yaml(worker: SocketAddr, rest: SocketAddr, ports: [u16; 5], cert: &DevCert) -> String {
    let [_, _, listener, edge, admin] = ports;
    format!(
        r#"engine:
  url: ws://{worker}
  rest_url: http://{rest}
tls:
  certificates:
    - cert_file: "{cert}"
      key_file: "{key}"
      server_names: [localhost, 127.0.0.1]
listeners:
  - name: dev
    host: 127.0.0.1
    port: {listener}
    tls: true
    rbac:
      expose_functions: [ 'match("*")' ]
edge:
  host: 127.0.0.1
  port: {edge}
  routes:
    - {{ path_prefix: /api/, to: rest }}
    - {{ path_prefix: /rbac/, to: "listener:dev" }}
admin: {{ host: 127.0.0.1, port: {admin} }}
"#,
        cert = cert.cert.display(),
        key = cert.key.display(),
    )
}

fn addr_of(addrs: &[(String, SocketAddr)], key: &str) -> Option<SocketAddr> {
    addrs.iter().find(|(k, _)| k == key).map(|(_, a)| *a)
}

/// Runs the embedded engine and the gateway until SIGTERM/SIGINT.
///
/// # Errors
/// A port in use, a certificate that cannot be written, or the ready file.
pub fn run(options: &DevOptions) -> Result<(), RunError> {
    let ports = ports(options.port_base)?;
    let cert = DevCert::create()?;
    let runtime = build_runtime()?;
    runtime.block_on(async {
        let mut signals = Signals::install().map_err(RunError::Runtime)?;
        let engine_config =
            iii_engine::config::load_str(&engine_yaml(ports[0], ports[1]), "<dev engine>", |_| {
                None
            })
            .map_err(|e| RunError::Engine(e.to_string()))?;
        let engine = iii_engine::start(&engine_config)
            .await
            .map_err(|e| RunError::Engine(format!("{e}: {}", error_source(&e))))?;
        let (Some(worker), Some(rest)) = (
            addr_of(engine.addrs(), "worker"),
            addr_of(engine.addrs(), "http"),
        ) else {
            return Err(RunError::Engine(
                "the engine reported no addresses".to_owned(),
            ));
        };
        let yaml = gateway_yaml(worker, rest, ports, &cert);
        let config = config::load_str("<dev gateway>", &yaml, |_| None)
            .map_err(|e| RunError::Engine(e.to_string()))?;
        let gateway = match Gateway::start(&config, Arc::new(Status::default())).await {
            Ok(gateway) => gateway,
            Err(error) => {
                engine.shutdown(ENGINE_GRACE).await;
                return Err(error);
            }
        };
        let mut addrs = gateway.addrs().to_vec();
        addrs.push(("engine:worker".to_owned(), worker));
        addrs.push(("engine:http".to_owned(), rest));
        banner(&addrs, &cert.cert);
        announce_ready(options.ready_file.as_deref(), &addrs)?;
        let signal = wait_for_shutdown(&mut signals, gateway.tls()).await;
        tracing::info!("{signal}: shutting down the gateway, then the engine");
        gateway.shutdown().await;
        engine.shutdown(ENGINE_GRACE).await;
        tracing::info!("stopped");
        Ok(())
    })
}

fn error_source(error: &dyn std::error::Error) -> String {
    error.source().map_or_else(String::new, ToString::to_string)
}

/// What a developer needs, on stdout.
fn banner(addrs: &[(String, SocketAddr)], cert: &Path) {
    let port = |key: &str| addr_of(addrs, key).map_or(0, |a| a.port());
    let edge = port("edge");
    let listener = port("listener:dev");
    let worker = port("engine:worker");
    let http = port("engine:http");
    let admin = port("admin");
    let cert = cert.display();
    let lines = [
        String::new(),
        "iii-gateway dev: embedded engine + gateway (loopback only)".to_owned(),
        String::new(),
        format!("  REST API via the edge    https://localhost:{edge}/api/"),
        format!("  RBAC listener via edge   wss://localhost:{edge}/rbac/   (channels: /rbac/ws/channels/{{id}})"),
        format!("  RBAC listener direct     wss://localhost:{listener}/"),
        format!("  engine worker (TRUSTED)  ws://127.0.0.1:{worker}   (plain; never expose it)"),
        format!("  engine REST (direct)     http://127.0.0.1:{http}/"),
        format!("  admin                    http://127.0.0.1:{admin}/readyz  /healthz /status /metrics"),
        String::new(),
        "  !! The TLS certificate is SELF-SIGNED (localhost, 127.0.0.1); clients must trust it:".to_owned(),
        format!("  !!   {cert}"),
        format!("  !!   curl --cacert {cert} https://localhost:{edge}/api/..."),
        format!("  !!   NODE_EXTRA_CA_CERTS={cert} node worker.mjs"),
        "  RBAC listener 'dev': NO authentication, every function exposed (expose_functions: match(\"*\")).".to_owned(),
        "  Fine on loopback for local development; never expose this setup.".to_owned(),
        String::new(),
    ];
    let text = lines.join("\n");
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    let _ = std::io::stdout().lock().flush();
}

#[cfg(test)]
mod tests {
    use super::{DEFAULT_PORTS, ports};

    #[test]
    fn port_base_counts_up_in_the_documented_order() {
        assert_eq!(ports(None).unwrap(), DEFAULT_PORTS);
        assert_eq!(
            ports(Some(20000)).unwrap(),
            [20000, 20001, 20002, 20003, 20004]
        );
        assert_eq!(ports(Some(0)).unwrap(), [0; 5]);
        assert!(ports(Some(65533)).is_err());
    }
}
