//! Loading the gateway config: `${VAR:default}` expansion on the raw text (as iii does), YAML
//! into the sections of `sections.rs`, then validation into an immutable [`GatewayConfig`].
//! Every validation problem is reported at once as `file[:line:col]: key.path: problem`.

mod sections;

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use policies::{ConfigError, ListenerConfig, ListenerPolicy};

pub use sections::{
    AdminSection, CertificateEntry, CorsSection, DEFAULT_ADMIN_PORT, DEFAULT_EDGE_PORT,
    DEFAULT_HOST, EdgeLimits, EdgeSection, EngineTarget, LogFormat, RawGatewayConfig, RouteEntry,
    TelemetrySection, TlsSection,
};

/// Every problem found in one config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The file (or `<embedded>`).
    pub source: String,
    /// The problems, in file order where known.
    pub problems: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{problem}", self.source)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The validated gateway configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The file it came from.
    pub source: String,
    /// Where the engine is.
    pub engine: EngineTarget,
    /// Certificates, when any surface serves TLS.
    pub tls: Option<TlsSection>,
    /// RBAC listeners, in file order.
    pub listeners: Vec<Listener>,
    /// The reverse proxy.
    pub edge: Option<Edge>,
    /// Health and status.
    pub admin: Option<AdminSection>,
    /// Logs and traces.
    pub telemetry: TelemetrySection,
    /// Operator-facing warnings, logged at boot and printed by `check`.
    pub warnings: Vec<String>,
}

/// One validated RBAC listener.
#[derive(Debug, Clone)]
pub struct Listener {
    /// Its key in the ready file and in routes: `listener:<name>` or `listener:<index>`.
    pub key: String,
    /// The compiled policy (holds the config as written, defaults filled in).
    pub policy: Arc<ListenerPolicy>,
}

impl Listener {
    /// The listener block.
    #[must_use]
    pub fn config(&self) -> &ListenerConfig {
        self.policy.config()
    }
}

/// The validated edge.
#[derive(Debug, Clone)]
pub struct Edge {
    /// The section as written.
    pub section: EdgeSection,
    /// Whether the edge serves TLS.
    pub tls: bool,
    /// Routes in match order.
    pub routes: Vec<Route>,
}

/// One validated route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Host to match (lowercase, no port).
    pub host: Option<String>,
    /// Path prefix to match and strip, without its trailing slash (`/api`); `None` = any path.
    pub path_prefix: Option<String>,
    /// Where matching requests go.
    pub target: RouteTarget,
}

/// A route's destination surface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTarget {
    /// The engine's REST API (`engine.rest_url`).
    Rest,
    /// The engine's Stream API (`engine.stream_url`), WebSocket passthrough.
    Stream,
    /// The trusted worker port (`engine.url`): only with `allow_trusted`.
    Engine,
    /// An RBAC listener of this gateway, by key (`listener:<name>`).
    Listener(String),
}

impl RouteTarget {
    /// Whether requests on this route may be WebSocket upgrades.
    #[must_use]
    pub const fn carries_websockets(&self) -> bool {
        !matches!(self, Self::Rest)
    }
}

/// Reads, expands and validates a config file.
///
/// # Errors
/// Every problem found, or the read error.
pub fn load_file(path: &Path) -> Result<GatewayConfig, ConfigErrors> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        source: source.clone(),
        problems: vec![ConfigError::new(
            "",
            format!("cannot read the config file: {e}"),
        )],
    })?;
    load_str(&source, &text, |name| std::env::var(name).ok())
}

/// Expands and validates config text; `lookup` reads environment variables.
///
/// # Errors
/// Every problem found.
pub fn load_str(
    source: &str,
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<GatewayConfig, ConfigErrors> {
    let fail = |problems| ConfigErrors {
        source: source.to_owned(),
        problems,
    };
    let expanded =
        policies::expand_env(text, env!("CARGO_PKG_VERSION"), lookup).map_err(|unset| {
            fail(
                unset
                    .iter()
                    .map(|u| {
                        ConfigError::new("", format!("{}:{}: {}", u.line, u.column, u.problem()))
                    })
                    .collect(),
            )
        })?;
    let raw: RawGatewayConfig = policies::from_yaml(&expanded).map_err(|e| fail(vec![e]))?;
    validate(source, raw).map_err(fail)
}

/// Checks a parsed config and compiles its listener policies.
///
/// # Errors
/// Every problem found.
pub fn validate(source: &str, raw: RawGatewayConfig) -> Result<GatewayConfig, Vec<ConfigError>> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    check_url(&raw.engine.url, &["ws", "wss"], "engine.url", &mut problems);
    check_url(
        &raw.engine.rest_url,
        &["http", "https"],
        "engine.rest_url",
        &mut problems,
    );
    check_url(
        &raw.engine.stream_url,
        &["http", "https", "ws", "wss"],
        "engine.stream_url",
        &mut problems,
    );
    if let Some(tls) = &raw.tls
        && tls.certificates.is_empty()
    {
        problems.push(ConfigError::new(
            "tls.certificates",
            "give at least one certificate",
        ));
    }

    let listeners = validate_listeners(&raw, &mut problems);
    let edge = raw
        .edge
        .as_ref()
        .and_then(|edge| validate_edge(edge, &raw, &listeners, &mut problems, &mut warnings));
    if let Some(admin) = &raw.admin {
        check_host(&admin.host, "admin.host", &mut problems);
    }
    if raw.listeners.is_empty() && raw.edge.is_none() {
        warnings.push("no listeners and no edge: the gateway serves nothing".to_owned());
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(GatewayConfig {
        source: source.to_owned(),
        engine: raw.engine,
        tls: raw.tls,
        listeners,
        edge,
        admin: raw.admin,
        telemetry: TelemetrySection {
            otlp_endpoint: raw.telemetry.otlp_endpoint.filter(|e| !e.trim().is_empty()),
            log_format: raw.telemetry.log_format,
        },
        warnings,
    })
}

fn validate_listeners(raw: &RawGatewayConfig, problems: &mut Vec<ConfigError>) -> Vec<Listener> {
    let mut listeners = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    for (index, config) in raw.listeners.iter().enumerate() {
        let at = format!("listeners[{index}]");
        let key = match &config.name {
            Some(name) => format!("listener:{name}"),
            None => format!("listener:{index}"),
        };
        if keys.contains(&key) {
            problems.push(ConfigError::new(
                format!("{at}.name"),
                format!("duplicate listener name ({key})"),
            ));
        }
        keys.push(key.clone());
        let loopback = check_host(&config.host, &format!("{at}.host"), problems);
        if config.tls && raw.tls.is_none() {
            problems.push(ConfigError::new(
                format!("{at}.tls"),
                "tls: true needs a top-level tls: block with certificates",
            ));
        }
        if !config.tls && loopback == Some(false) {
            problems.push(ConfigError::new(
                format!("{at}.host"),
                "a plain (non-TLS) listener may only bind a loopback address: set tls: true",
            ));
        }
        for (i, proxy) in config.trusted_proxies.iter().enumerate() {
            if proxy.parse::<IpAddr>().is_err() {
                problems.push(ConfigError::new(
                    format!("{at}.trusted_proxies[{i}]"),
                    format!("'{proxy}' is not an IP address"),
                ));
            }
        }
        let limits = &config.limits;
        for (key, value) in [
            ("max_connections", limits.max_connections),
            ("max_connections_per_ip", limits.max_connections_per_ip),
            (
                "upgrades_per_ip_per_second",
                limits.upgrades_per_ip_per_second,
            ),
            ("invocations_per_second", limits.invocations_per_second),
            ("burst", limits.burst),
        ] {
            if value == Some(0) {
                problems.push(ConfigError::new(
                    format!("{at}.limits.{key}"),
                    "must be greater than 0 (remove the key to turn the limit off)",
                ));
            }
        }
        if let Some(auth) = &config.auth
            && let Err(errors) = crate::auth::BuiltinAuth::from_config(&auth.0)
        {
            problems.extend(errors.into_iter().map(|e| e.under(&format!("{at}.auth"))));
        }
        match ListenerPolicy::new(config.clone()) {
            Ok(policy) => listeners.push(Listener {
                key,
                policy: Arc::new(policy),
            }),
            Err(errors) => problems.extend(errors.into_iter().map(|e| e.under(&at))),
        }
    }
    listeners
}

fn validate_edge(
    edge: &EdgeSection,
    raw: &RawGatewayConfig,
    listeners: &[Listener],
    problems: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Option<Edge> {
    let before = problems.len();
    let tls = edge.tls.unwrap_or(raw.tls.is_some());
    let loopback = check_host(&edge.host, "edge.host", problems);
    if tls && raw.tls.is_none() {
        problems.push(ConfigError::new(
            "edge.tls",
            "tls: true needs a top-level tls: block with certificates",
        ));
    }
    if !tls && loopback == Some(false) {
        problems.push(ConfigError::new(
            "edge.host",
            "a plain (non-TLS) edge may only bind a loopback address: add a tls: block",
        ));
    }
    let mut routes = Vec::new();
    for (i, entry) in edge.routes.iter().enumerate() {
        let at = format!("edge.routes[{i}]");
        if let Some(route) = validate_route(entry, &at, edge, listeners, problems, warnings) {
            routes.push(route);
        }
    }
    if edge.routes.is_empty() {
        warnings.push("edge has no routes: every request gets 404".to_owned());
    }
    if edge.h2 && routes.iter().any(|r| r.target.carries_websockets()) {
        problems.push(ConfigError::new(
            "edge.h2",
            "h2 cannot carry WebSocket upgrades: keep it off while a route goes to stream, engine or a listener",
        ));
    }
    if let Some(cors) = &edge.cors
        && cors.allowed_origins.iter().any(|o| o.trim() == "*")
    {
        problems.push(ConfigError::new(
            "edge.cors.allowed_origins",
            "'*' is refused: list the origins",
        ));
    }
    if let Some(path) = &edge.readiness_path {
        if !path.starts_with('/') {
            problems.push(ConfigError::new(
                "edge.readiness_path",
                "must start with '/'",
            ));
        }
        if raw.engine.rest_url.trim_start().starts_with("https:") {
            // /readyz could never pass: the probe speaks plain HTTP to the engine's port.
            problems.push(ConfigError::new(
                "edge.readiness_path",
                "is probed over plain HTTP: give engine.rest_url as http:// (the engine's REST port on a private network)",
            ));
        }
    }
    for (i, proxy) in edge.trusted_proxies.iter().enumerate() {
        if proxy.parse::<IpAddr>().is_err() {
            problems.push(ConfigError::new(
                format!("edge.trusted_proxies[{i}]"),
                format!("'{proxy}' is not an IP address"),
            ));
        }
    }
    let limits = [
        ("edge.limits.max_body_bytes", edge.limits.max_body_bytes),
        (
            "edge.limits.connect_timeout_ms",
            edge.limits.connect_timeout_ms,
        ),
        ("edge.limits.read_timeout_ms", edge.limits.read_timeout_ms),
    ];
    for (key, value) in limits {
        if value == 0 {
            problems.push(ConfigError::new(key, "must be greater than 0"));
        }
    }
    (problems.len() == before).then(|| Edge {
        section: edge.clone(),
        tls,
        routes,
    })
}

fn validate_route(
    entry: &RouteEntry,
    at: &str,
    edge: &EdgeSection,
    listeners: &[Listener],
    problems: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Option<Route> {
    let target = match entry.to.as_str() {
        "rest" => RouteTarget::Rest,
        "stream" => RouteTarget::Stream,
        "engine" => {
            if !edge.allow_trusted {
                problems.push(ConfigError::new(
                    format!("{at}.to"),
                    "a route to the trusted worker port needs edge.allow_trusted: true (anyone reaching it can do anything)",
                ));
                return None;
            }
            warnings.push(format!(
                "{at} routes to the TRUSTED worker port: anyone reaching it can do anything"
            ));
            RouteTarget::Engine
        }
        other => match other.strip_prefix("listener:") {
            Some(name) if listeners.iter().any(|l| l.key == other) => {
                RouteTarget::Listener(format!("listener:{name}"))
            }
            _ => {
                problems.push(ConfigError::new(
                    format!("{at}.to"),
                    format!(
                        "unknown target '{other}': expected rest, stream, engine or listener:<name> of a declared listener"
                    ),
                ));
                return None;
            }
        },
    };
    if entry.host.is_none() && entry.path_prefix.is_none() {
        problems.push(ConfigError::new(at, "give host, path_prefix or both"));
        return None;
    }
    let host = entry.host.as_ref().map(|h| h.trim().to_ascii_lowercase());
    if host
        .as_deref()
        .is_some_and(|h| h.is_empty() || h.contains(['/', ':', ' ']))
    {
        problems.push(ConfigError::new(
            format!("{at}.host"),
            "a host name without scheme, port or path",
        ));
        return None;
    }
    let path_prefix = match entry.path_prefix.as_deref() {
        None => None,
        Some(p) if !p.starts_with('/') || p.contains(['?', '#', ' ']) => {
            problems.push(ConfigError::new(
                format!("{at}.path_prefix"),
                "must start with '/' and hold no query or fragment",
            ));
            return None;
        }
        Some(p) => {
            let trimmed = p.trim_end_matches('/');
            (!trimmed.is_empty()).then(|| trimmed.to_owned())
        }
    };
    Some(Route {
        host,
        path_prefix,
        target,
    })
}

/// Checks a bind host; returns whether it is loopback (`None` when invalid).
fn check_host(host: &str, key: &str, problems: &mut Vec<ConfigError>) -> Option<bool> {
    if host == "localhost" {
        return Some(true);
    }
    match host.parse::<IpAddr>() {
        Ok(ip) => Some(ip.is_loopback()),
        Err(_) => {
            problems.push(ConfigError::new(
                key,
                format!("'{host}' is not an IP address (or localhost)"),
            ));
            None
        }
    }
}

fn check_url(url: &str, schemes: &[&str], key: &str, problems: &mut Vec<ConfigError>) {
    match url.parse::<http::Uri>() {
        Ok(uri)
            if uri.scheme_str().is_some_and(|s| schemes.contains(&s)) && uri.host().is_some() => {}
        _ => problems.push(ConfigError::new(
            key,
            format!("'{url}' is not a {} URL with a host", schemes.join("/")),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::{RouteTarget, load_str};

    fn load(text: &str) -> Result<super::GatewayConfig, String> {
        load_str("gw.yaml", text, |name| {
            (name == "PORT").then(|| "7000".to_owned())
        })
        .map_err(|e| e.to_string())
    }

    #[test]
    fn the_empty_file_takes_defaults_and_warns() {
        let config = load("{}").unwrap();
        assert_eq!(config.engine.url, "ws://127.0.0.1:49134");
        assert!(config.listeners.is_empty());
        assert_eq!(config.warnings.len(), 1);
    }

    #[test]
    fn listeners_get_keys_and_env_expands() {
        let config = load(
            "listeners:\n  - { name: pub, port: ${PORT} }\n  - { port: 0, rbac: { expose_functions: [] } }\n",
        )
        .unwrap();
        let keys: Vec<&str> = config.listeners.iter().map(|l| l.key.as_str()).collect();
        assert_eq!(keys, ["listener:pub", "listener:1"]);
        assert_eq!(config.listeners[0].config().port, 7000);
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let error = load(
            "engine: { url: http://x }\nlisteners:\n  - { host: 0.0.0.0 }\n  - { auth_timeout_ms: 0, tls: true }\nedge:\n  routes:\n    - { path_prefix: /ws/, to: engine }\n    - { path_prefix: api, to: rest }\n    - { to: 'listener:nope', path_prefix: /r/ }\n",
        )
        .unwrap_err();
        for needle in [
            "gw.yaml:engine.url: 'http://x' is not a ws/wss URL",
            "listeners[0].host: a plain (non-TLS) listener may only bind a loopback address",
            "listeners[1].tls: tls: true needs a top-level tls: block",
            "listeners[1].auth_timeout_ms: must be greater than 0",
            "edge.routes[0].to: a route to the trusted worker port needs edge.allow_trusted",
            "edge.routes[1].path_prefix: must start with '/'",
            "edge.routes[2].to: unknown target 'listener:nope'",
        ] {
            assert!(error.contains(needle), "missing {needle:?} in:\n{error}");
        }
    }

    #[test]
    fn routes_are_normalised_and_trusted_routes_warn() {
        let config = load(
            "listeners: [{ name: w, port: 0 }]\nedge:\n  allow_trusted: true\n  routes:\n    - { path_prefix: /api/, to: rest }\n    - { host: Workers.Example.com, to: 'listener:w' }\n    - { path_prefix: /ws/, to: engine }\n",
        )
        .unwrap();
        let edge = config.edge.unwrap();
        assert_eq!(edge.routes[0].path_prefix.as_deref(), Some("/api"));
        assert_eq!(edge.routes[1].host.as_deref(), Some("workers.example.com"));
        assert_eq!(
            edge.routes[1].target,
            RouteTarget::Listener("listener:w".into())
        );
        assert!(config.warnings.iter().any(|w| w.contains("TRUSTED")));
        assert!(!edge.tls);
    }

    #[test]
    fn a_readiness_path_needs_a_plain_rest_url() {
        let error =
            load("engine: { rest_url: 'https://engine:3111' }\nedge: { readiness_path: /health }")
                .unwrap_err();
        assert!(
            error.contains("edge.readiness_path: is probed over plain HTTP"),
            "{error}"
        );
        assert!(load("edge: { readiness_path: /health }").is_ok());
    }

    #[test]
    fn edge_threads_are_a_positive_count() {
        let config = load("edge: { threads: 3 }").unwrap();
        assert_eq!(
            config.edge.unwrap().section.threads.map(|n| n.get()),
            Some(3)
        );
        assert!(
            load("edge: {}")
                .unwrap()
                .edge
                .unwrap()
                .section
                .threads
                .is_none()
        );
        let error = load("edge: { threads: 0 }").unwrap_err();
        assert!(error.contains("edge.threads"), "{error}");
    }

    #[test]
    fn h2_with_websocket_routes_is_refused() {
        let error =
            load("edge: { h2: true, routes: [{ path_prefix: /s/, to: stream }] }").unwrap_err();
        assert!(error.contains("edge.h2"), "{error}");
    }

    #[test]
    fn zero_limits_are_errors_not_off_switches() {
        let error = load(
            "listeners:\n  - { limits: { max_connections: 0, burst: 0, invocations_per_second: 5 } }\n",
        )
        .unwrap_err();
        for key in ["max_connections", "burst"] {
            let needle = format!(
                "gw.yaml:listeners[0].limits.{key}: must be greater than 0 (remove the key to turn the limit off)"
            );
            assert!(error.contains(&needle), "missing {needle:?} in:\n{error}");
        }
        assert_eq!(error.lines().count(), 2, "{error}");
    }

    #[test]
    fn unknown_keys_are_errors_with_position() {
        let error = load("edge:\n  bogus: 1\n").unwrap_err();
        assert!(
            error.starts_with("gw.yaml:2:3: edge.bogus: unknown field `bogus`"),
            "{error}"
        );
    }
}
