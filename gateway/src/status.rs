//! Counters the gateway keeps (sessions, allowed, denied, shadow-denied, rate-limited…) and
//! the status document served by the `iii-gateway::status` function and the admin `/status`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde_json::{Value, json};

/// Process-wide counters; cheap to bump from any task.
#[derive(Debug, Default)]
pub struct Status {
    /// Sessions open now.
    pub sessions_open: AtomicU64,
    /// Sessions accepted since start.
    pub sessions_total: AtomicU64,
    /// Upgrades refused by authentication.
    pub auth_failures: AtomicU64,
    /// Upgrades or calls refused by a limit.
    pub rate_limited: AtomicU64,
    /// Frames allowed through a gate (invokes, registrations).
    pub allowed: AtomicU64,
    /// Frames denied.
    pub denied: AtomicU64,
    /// Would-be denials let through in shadow mode.
    pub shadow_denied: AtomicU64,
    /// Messages refused for their size.
    pub oversized: AtomicU64,
    /// Channel sockets bridged now.
    pub channels_open: AtomicU64,
    /// Whether the control connection to the engine is up.
    pub control_connected: AtomicBool,
}

/// Bumps a counter by one.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Takes one off a gauge.
pub fn drop_one(counter: &AtomicU64) {
    counter.fetch_sub(1, Ordering::Relaxed);
}

impl Status {
    /// The status document.
    #[must_use]
    pub fn snapshot(&self) -> Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json!({
            "service": "iii-gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "control_connected": self.control_connected.load(Ordering::Relaxed),
            "sessions": { "open": get(&self.sessions_open), "total": get(&self.sessions_total) },
            "channels_open": get(&self.channels_open),
            "auth_failures": get(&self.auth_failures),
            "allowed": get(&self.allowed),
            "denied": get(&self.denied),
            "shadow_denied": get(&self.shadow_denied),
            "rate_limited": get(&self.rate_limited),
            "oversized": get(&self.oversized),
        })
    }
}
