//! The admin listener (loopback by default): `/healthz`, `/readyz`, `/status`, `/metrics`.

mod metrics;
mod probes;
mod server;

pub use server::{AdminError, RunningAdmin, start};
