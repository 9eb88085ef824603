//! iii-gateway: the security edge in front of the iii engine.
//!
//! - `config`: the gateway config file, validated into [`config::GatewayConfig`].
//! - `auth`: built-in JWT / API-key authentication.
//! - `rbac`: the RBAC listeners (per-frame gating in front of the engine's trusted port).
//! - `tls`: certificates chosen by SNI, reloadable, shared by every TLS surface.
//! - `edge`: the reverse proxy (pingora) and its routes.
//! - `admin`: `/healthz`, `/readyz`, `/status`, `/metrics`.
//! - `run`: starting and stopping all of it; `dev`: the same with an embedded engine.

pub mod admin;
pub mod auth;
pub mod check;
pub mod config;
pub mod dev;
pub mod edge;
pub mod limits;
pub mod rbac;
pub mod run;
pub mod status;
mod task;
pub mod telemetry;
pub mod tls;
