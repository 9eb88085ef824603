//! iii-engine: an engine that speaks the iii worker protocol so the official SDKs work
//! unchanged, reading iii's `config.yaml`.
//!
//! The trusted worker listener routes invocations between workers (recording each pending
//! call before forwarding it), serves channels, and hosts the `engine::*` built-ins; iii-http
//! turns `http` triggers into REST routes.

mod builtins;
mod channels;
pub mod config;
mod engine;
mod error;
mod events;
mod fragment;
mod http;
mod listener;
mod lock;
mod pending;
mod protocol;
mod rbac;
mod ready;
mod registry;
mod router;
mod start;
pub mod task;
mod triggers;
mod wire_error;
mod worker_conn;
mod worker_handle;

pub use error::{Error, Side};
pub use protocol::ErrorBody;
pub use ready::{ready_line, write_ready_file};
pub use start::{RunningEngine, StartError, start};
pub use worker_handle::SendError;
