//! Reloading certificates when their files change on disk (`tls.watch`, default on): the
//! files' modification times and sizes are polled; a change triggers [`TlsStore::reload`].
//! SIGHUP handling lives with the other signals in `run`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::TlsStore;

/// How often the certificate files are checked.
const POLL_EVERY: Duration = Duration::from_secs(2);

/// Polls the files of `store` until `shutdown` turns true (or its sender is gone), reloading
/// when any changed. A failed reload keeps the old certificates and is retried on the next
/// change (a renewal tool writing the certificate and the key one after the other).
///
/// # Cancel safety
/// Cancel-safe: dropping it stops the polling; nothing is half-applied.
pub async fn watch_files(store: Arc<TlsStore>, mut shutdown: watch::Receiver<bool>) {
    if !store.watches_files() {
        return;
    }
    let mut seen = store.fingerprint();
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
        let now = store.fingerprint();
        if now == seen {
            continue;
        }
        seen = now;
        match store.reload() {
            Ok(count) => {
                tracing::info!(certificates = count, "certificate files changed: reloaded")
            }
            Err(error) => tracing::warn!(
                error = %error,
                "certificate files changed but cannot be loaded: keeping the previous certificates"
            ),
        }
    }
}
