//! The gateway config sections as written (ARCHITECTURE "Gateway config shape"): `engine`,
//! `tls`, `edge`, `admin` and `telemetry`. The `listeners:` entries are iii's blocks, typed in
//! `policies`. Unknown keys are errors at every level; defaults are filled by serde and
//! checked in `config/mod.rs`.

use std::path::PathBuf;

use serde::Deserialize;

/// Default bind address of every listener: loopback unless told otherwise.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// Default port of the reverse-proxy edge.
pub const DEFAULT_EDGE_PORT: u16 = 8443;
/// Default port of the admin listener.
pub const DEFAULT_ADMIN_PORT: u16 = 9464;

/// The whole file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a gateway config (a map)")]
pub struct RawGatewayConfig {
    /// The engine behind the edge.
    #[serde(default)]
    pub engine: EngineTarget,
    /// Certificates for every TLS surface; absent = plain (loopback only).
    #[serde(default)]
    pub tls: Option<TlsSection>,
    /// RBAC listeners: iii's listener blocks plus our keys.
    #[serde(default)]
    pub listeners: Vec<policies::ListenerConfig>,
    /// The reverse proxy.
    #[serde(default)]
    pub edge: Option<EdgeSection>,
    /// Health and status.
    #[serde(default)]
    pub admin: Option<AdminSection>,
    /// Logs and traces.
    #[serde(default)]
    pub telemetry: TelemetrySection,
}

/// `engine:`: where the engine's private listeners are.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an engine block (a map)")]
pub struct EngineTarget {
    /// The trusted worker listener (control connection and one upstream per session).
    #[serde(default = "default_engine_url")]
    pub url: String,
    /// The REST API (routes, readiness).
    #[serde(default = "default_rest_url")]
    pub rest_url: String,
    /// The Stream API (routes).
    #[serde(default = "default_stream_url")]
    pub stream_url: String,
    /// PEM CA certificates trusted when the engine is reached over TLS: a `wss://` `url` (the
    /// RBAC listeners' control, session and channel connections) and https / wss `rest_url` /
    /// `stream_url` behind the edge (default: the public web PKI, the platform's for the edge).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl Default for EngineTarget {
    fn default() -> Self {
        Self {
            url: default_engine_url(),
            rest_url: default_rest_url(),
            stream_url: default_stream_url(),
            ca_file: None,
        }
    }
}

/// `tls:`: the certificates, chosen by SNI; the first is the default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a tls block (a map)")]
pub struct TlsSection {
    /// One entry per certificate.
    pub certificates: Vec<CertificateEntry>,
    /// Reload the files when they change on disk (SIGHUP always reloads).
    #[serde(default = "default_true")]
    pub watch: bool,
}

/// One certificate: PEM chain and key files, and the names it serves.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a certificate entry (a map)")]
pub struct CertificateEntry {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// SNI names this certificate answers (`*.example.com` wildcards allowed).
    #[serde(default)]
    pub server_names: Vec<String>,
}

/// `edge:`: the reverse proxy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an edge block (a map)")]
pub struct EdgeSection {
    /// Bind address.
    #[serde(default = "default_host")]
    pub host: String,
    /// Bind port (0 picks a free one).
    #[serde(default = "default_edge_port")]
    pub port: u16,
    /// Serve TLS (default: when a `tls:` block exists).
    #[serde(default)]
    pub tls: Option<bool>,
    /// Advertise HTTP/2 in ALPN. Refused when a route carries WebSockets.
    #[serde(default)]
    pub h2: bool,
    /// Routing rules, first match wins.
    #[serde(default)]
    pub routes: Vec<RouteEntry>,
    /// Allow a route to the trusted worker port (49134).
    #[serde(default)]
    pub allow_trusted: bool,
    /// CORS for the REST routes; absent = no CORS headers added.
    #[serde(default)]
    pub cors: Option<CorsSection>,
    /// `GET rest_url + readiness_path` must answer 2xx for `/readyz`.
    #[serde(default)]
    pub readiness_path: Option<String>,
    /// Peers whose `X-Forwarded-For` / `-Proto` are kept.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Timeouts and sizes.
    #[serde(default)]
    pub limits: EdgeLimits,
    /// pingora worker threads (default: half the cores, at least one).
    #[serde(default)]
    pub threads: Option<std::num::NonZeroUsize>,
}

/// `edge.limits:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an edge limits block (a map)")]
pub struct EdgeLimits {
    /// Largest HTTP request body forwarded.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Upstream connect timeout.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Upstream read timeout for HTTP (never applied to upgraded WebSockets).
    #[serde(default = "default_read_timeout_ms")]
    pub read_timeout_ms: u64,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: default_max_body_bytes(),
            connect_timeout_ms: default_connect_timeout_ms(),
            read_timeout_ms: default_read_timeout_ms(),
        }
    }
}

/// One route: a host, a path prefix, or both; `to` names the surface.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a route (a map)")]
pub struct RouteEntry {
    /// Match this `Host` (no port), e.g. `api.example.com`.
    #[serde(default)]
    pub host: Option<String>,
    /// Match this path prefix (stripped before forwarding), e.g. `/api/`.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// `rest`, `stream`, `engine` or `listener:<name>`.
    pub to: String,
}

/// `edge.cors:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a cors block (a map)")]
pub struct CorsSection {
    /// Exact origins allowed (`*` is refused: be explicit).
    pub allowed_origins: Vec<String>,
    /// Methods allowed in preflight answers.
    #[serde(default = "default_cors_methods")]
    pub allowed_methods: Vec<String>,
    /// Request headers allowed in preflight answers.
    #[serde(default = "default_cors_headers")]
    pub allowed_headers: Vec<String>,
    /// `Access-Control-Max-Age` in seconds.
    #[serde(default = "default_cors_max_age")]
    pub max_age_secs: u64,
}

/// `admin:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an admin block (a map)")]
pub struct AdminSection {
    /// Bind address.
    #[serde(default = "default_host")]
    pub host: String,
    /// Bind port (0 picks a free one).
    #[serde(default = "default_admin_port")]
    pub port: u16,
}

/// `telemetry:`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a telemetry block (a map)")]
pub struct TelemetrySection {
    /// OTLP/gRPC endpoint; empty or absent = no export.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// `text` (default) or `json`.
    #[serde(default)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

fn default_engine_url() -> String {
    "ws://127.0.0.1:49134".to_owned()
}

fn default_rest_url() -> String {
    "http://127.0.0.1:3111".to_owned()
}

fn default_stream_url() -> String {
    "http://127.0.0.1:3112".to_owned()
}

fn default_host() -> String {
    DEFAULT_HOST.to_owned()
}

const fn default_edge_port() -> u16 {
    DEFAULT_EDGE_PORT
}

const fn default_admin_port() -> u16 {
    DEFAULT_ADMIN_PORT
}

const fn default_true() -> bool {
    true
}

const fn default_max_body_bytes() -> u64 {
    16 * 1024 * 1024
}

const fn default_connect_timeout_ms() -> u64 {
    5_000
}

const fn default_read_timeout_ms() -> u64 {
    60_000
}

fn default_cors_methods() -> Vec<String> {
    ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        .map(str::to_owned)
        .to_vec()
}

fn default_cors_headers() -> Vec<String> {
    ["content-type", "authorization"]
        .map(str::to_owned)
        .to_vec()
}

const fn default_cors_max_age() -> u64 {
    600
}
