//! `iii-gateway check --config FILE`: validates a config like `nginx -t` and prints what it
//! would serve — bind addresses, TLS, auth mode, filter counts, routes — and its warnings.
//! Exit 1 on any error. Never prints secrets (the `auth:` block is summarised, not shown).

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use crate::config::{self, GatewayConfig, Listener, RouteTarget};

/// Runs the check and prints the summary (stdout) or the problems (stderr).
pub fn run(path: &Path) -> ExitCode {
    match config::load_file(path) {
        Ok(config) => {
            let mut out = std::io::stdout().lock();
            let _ = std::io::Write::write_all(&mut out, summary(&config).as_bytes());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            let mut err = std::io::stderr().lock();
            let _ = writeln_io(&mut err, &errors.to_string());
            let _ = writeln_io(
                &mut err,
                &format!(
                    "{}: configuration check failed ({} problem(s))",
                    errors.source,
                    errors.problems.len()
                ),
            );
            ExitCode::FAILURE
        }
    }
}

fn writeln_io(out: &mut impl std::io::Write, line: &str) -> std::io::Result<()> {
    out.write_all(line.as_bytes())?;
    out.write_all(b"\n")
}

/// The human summary of a valid config.
pub fn summary(config: &GatewayConfig) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}: configuration OK", config.source);
    let _ = writeln!(
        s,
        "engine: {} (rest {}, stream {})",
        config.engine.url, config.engine.rest_url, config.engine.stream_url
    );
    match &config.tls {
        Some(tls) => {
            let _ = writeln!(s, "tls: {} certificate(s)", tls.certificates.len());
            for cert in &tls.certificates {
                let names = if cert.server_names.is_empty() {
                    "(default)".to_owned()
                } else {
                    cert.server_names.join(", ")
                };
                let _ = writeln!(s, "  {} for {names}", cert.cert_file.display());
            }
        }
        None => {
            let _ = writeln!(s, "tls: none (plain, loopback only)");
        }
    }
    for listener in &config.listeners {
        listener_summary(&mut s, listener);
    }
    if let Some(edge) = &config.edge {
        let scheme = if edge.tls { "https" } else { "http" };
        let _ = writeln!(
            s,
            "edge: {scheme}://{}:{} ({} route(s))",
            edge.section.host,
            edge.section.port,
            edge.routes.len()
        );
        for route in &edge.routes {
            let target = match &route.target {
                RouteTarget::Rest => format!("rest {}", config.engine.rest_url),
                RouteTarget::Stream => format!("stream {}", config.engine.stream_url),
                RouteTarget::Engine => format!("TRUSTED worker port {}", config.engine.url),
                RouteTarget::Listener(key) => key.clone(),
            };
            let host = route.host.as_deref().unwrap_or("*");
            let path = route
                .path_prefix
                .as_deref()
                .map_or_else(|| "/".to_owned(), |p| format!("{p}/ (stripped)"));
            let _ = writeln!(s, "  {host} {path} -> {target}");
        }
    }
    if let Some(admin) = &config.admin {
        let _ = writeln!(
            s,
            "admin: http://{}:{} (/healthz, /readyz, /status)",
            admin.host, admin.port
        );
    }
    if let Some(endpoint) = &config.telemetry.otlp_endpoint {
        let _ = writeln!(s, "telemetry: OTLP to {endpoint}");
    }
    for warning in &config.warnings {
        let _ = writeln!(s, "warning: {warning}");
    }
    s
}

fn listener_summary(s: &mut String, listener: &Listener) {
    let c = listener.config();
    let scheme = if c.tls { "wss" } else { "ws" };
    let _ = writeln!(s, "{}: {scheme}://{}:{}", listener.key, c.host, c.port);
    let mut auth = Vec::new();
    if let Some(builtin) = &c.auth
        && let Some(map) = builtin.0.as_object()
    {
        auth.extend(map.keys().map(|k| format!("built-in {k}")));
    }
    if let Some(id) = listener.policy.auth_function_id() {
        auth.push(format!("auth function {id}"));
    }
    let auth = if auth.is_empty() {
        "none (permissive sessions)".to_owned()
    } else {
        auth.join(" then ")
    };
    let _ = writeln!(s, "  auth: {auth}");
    match &c.rbac {
        Some(rbac) => {
            let _ = writeln!(
                s,
                "  rbac: {} expose filter(s)",
                rbac.expose_functions.len()
            );
            for (hook, id) in [
                (
                    "function registration hook",
                    &rbac.on_function_registration_function_id,
                ),
                (
                    "trigger registration hook",
                    &rbac.on_trigger_registration_function_id,
                ),
                (
                    "trigger type registration hook",
                    &rbac.on_trigger_type_registration_function_id,
                ),
            ] {
                if let Some(id) = id {
                    let _ = writeln!(s, "  {hook}: {id}");
                }
            }
        }
        None => {
            let _ = writeln!(s, "  rbac: none (every call allowed)");
        }
    }
    if let Some(id) = &c.middleware_function_id {
        let _ = writeln!(s, "  middleware: {id}");
    }
    let l = &c.limits;
    let opt = |v: Option<u64>| v.map_or_else(|| "off".to_owned(), |v| v.to_string());
    let _ = writeln!(
        s,
        "  limits: max_message_bytes {}, max_connections {}, per ip {}, upgrades/ip/s {}, invocations/s {} (burst {})",
        l.max_message_bytes,
        opt(l.max_connections),
        opt(l.max_connections_per_ip),
        opt(l.upgrades_per_ip_per_second),
        opt(l.invocations_per_second),
        opt(l.burst),
    );
    if c.shadow {
        let _ = writeln!(s, "  SHADOW MODE: denials are reported, not enforced");
    }
}

#[cfg(test)]
mod tests {
    use super::summary;
    use crate::config::load_str;

    #[test]
    fn the_summary_names_listeners_auth_and_routes() {
        let config = load_str(
            "gw.yaml",
            "listeners:\n  - name: pub\n    port: 49135\n    middleware_function_id: app::mw\n    rbac: { auth_function_id: app::auth, expose_functions: ['match(\"api::*\")'] }\nedge:\n  routes: [{ path_prefix: /api/, to: rest }, { path_prefix: /rbac/, to: 'listener:pub' }]\n",
            |_| None,
        )
        .unwrap();
        let text = summary(&config);
        for needle in [
            "listener:pub: ws://127.0.0.1:49135",
            "auth: auth function app::auth",
            "rbac: 1 expose filter(s)",
            "middleware: app::mw",
            "* /api/ (stripped) -> rest http://127.0.0.1:3111",
            "* /rbac/ (stripped) -> listener:pub",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }
}
