//! The reverse-proxy edge (pingora): routes to the engine's REST and Stream APIs, to the
//! trusted worker port when allowed, and to RBAC listeners through their edge handoff.

mod cors;
mod proxy;
mod routes;
mod server;
mod service;
mod upstream;
mod write_buffer;

pub use server::{EdgeError, RunningEdge, start};
pub(crate) use upstream::host_port;
