//! iii-gateway: the security edge in front of the iii engine.
//!
//! - `config`: the gateway config file, validated into [`config::GatewayConfig`].
//! - `auth`: built-in JWT / API-key authentication.
//! - The RBAC listener, TLS, the reverse-proxy edge and the admin listener are started by
//!   the binary from a validated config.

pub mod auth;
pub mod check;
pub mod config;
pub mod limits;
pub mod rbac;
pub mod run;
pub mod status;
mod task;
pub mod telemetry;
