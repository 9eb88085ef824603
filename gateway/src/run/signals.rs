//! Our signal handling (pingora installs none of its own here): SIGHUP reloads certificates,
//! SIGTERM and SIGINT (Ctrl-C) start a graceful shutdown. Handlers are installed before the
//! ready file is written, so a SIGHUP right after readiness never kills the process.

use std::sync::Arc;

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::tls::TlsStore;

/// The installed handlers.
#[derive(Debug)]
pub(crate) struct Signals {
    hangup: Signal,
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    /// Installs the handlers. Must run inside a tokio runtime.
    pub(crate) fn install() -> std::io::Result<Self> {
        Ok(Self {
            hangup: signal(SignalKind::hangup())?,
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Serves SIGHUP (reload `tls`) until SIGTERM or SIGINT arrives; returns its name.
    ///
    /// # Cancel safety
    /// Cancel-safe: only `recv` calls are raced.
    pub(crate) async fn until_shutdown(&mut self, tls: Option<&Arc<TlsStore>>) -> &'static str {
        loop {
            tokio::select! {
                _ = self.terminate.recv() => return "SIGTERM",
                _ = self.interrupt.recv() => return "SIGINT",
                _ = self.hangup.recv() => reload(tls),
            }
        }
    }
}

fn reload(tls: Option<&Arc<TlsStore>>) {
    let Some(store) = tls else {
        tracing::info!("SIGHUP: no tls: block, nothing to reload");
        return;
    };
    match store.reload() {
        Ok(count) => tracing::info!(certificates = count, "SIGHUP: certificates reloaded"),
        Err(error) => tracing::warn!(
            error = %error,
            "SIGHUP: cannot load the certificates: keeping the previous ones"
        ),
    }
}
