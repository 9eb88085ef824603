//! TLS for every public surface: PEM files loaded into one certificate store, chosen by SNI,
//! served through rustls `ServerConfig`s that share one resolver, so a reload (SIGHUP or a
//! file change) reaches every listener without dropping a connection.

mod load;
mod store;
mod watch;

pub use load::TlsError;
pub(crate) use load::client_config_trusting;
pub use store::{Alpn, TlsStore};
pub use watch::watch_files;
