//! `iii-gateway run`: start every surface of a validated config, write the ready file, and
//! serve until SIGTERM/SIGINT (SIGHUP reloads certificates).

mod gateway;
mod signals;

pub use gateway::{Gateway, RunError, run};
pub(crate) use gateway::{announce_ready, build_runtime, wait_for_shutdown};
pub(crate) use signals::Signals;
