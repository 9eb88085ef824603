//! RBAC listeners in the engine's own `config.yaml` (settled decision 15): the auth call after
//! the upgrade, and a per-connection [`Gate`] that the worker connection consults for every
//! inbound frame, deciding with the `policies` crate.
//!
//! The trusted listener has no gate and pays one `Option` check per frame; the outbound
//! prefix strip is the worker handle's (`WorkerHandle::local_id`).

mod auth;
mod discovery;
mod gate;
mod hooks;
mod middleware;
mod registration;
mod upgrade;

pub(crate) use auth::auth_input;
pub(crate) use gate::Gate;
pub(crate) use upgrade::{serve_otel, serve_worker};

#[cfg(test)]
mod tests;
