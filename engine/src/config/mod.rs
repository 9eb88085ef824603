//! Engine configuration: iii's `config.yaml` format, in three stages (raw text with `${VAR}`
//! expanded → typed raw entries → validated [`EngineConfig`]).

mod env_expand;
mod error;
mod load;
mod rbac_listener;
mod workers;

pub use error::{ConfigError, ConfigErrors};
pub use load::{EMBEDDED_DEFAULT, EngineConfig, load_file, load_str};
pub use rbac_listener::RbacListener;
pub use workers::{CorsConfig, HttpConfig, HttpMiddleware, WorkerListenerConfig};
