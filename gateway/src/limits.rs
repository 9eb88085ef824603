//! A listener's `limits:` as enforced at run time (governor): the per-IP upgrade rate and the
//! global and per-IP connection caps, checked before the WebSocket upgrade
//! ([`ConnectionLimits`]), and the per-session invocation rate ([`InvocationLimiter`]).
//!
//! Answering a refusal (HTTP 429/503 before the upgrade, `RATE_LIMITED` on an invoke),
//! counting it in the status, and calling [`ConnectionLimits::retain_recent`] every few
//! seconds are the listener's job. `max_message_bytes` is enforced by the frame reader.
//!
//! A limit that is not written is off. Rates above `u32::MAX` per second count as
//! `u32::MAX`; config validation rejects `0` for every key here.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use http::StatusCode;
use policies::LimitsConfig;

/// The message of the `RATE_LIMITED` error an over-limit invoke gets.
pub const RATE_LIMITED_MESSAGE: &str = "rate limit exceeded (limits.invocations_per_second)";

type KeyedLimiter<C> =
    RateLimiter<IpAddr, DashMapStateStore<IpAddr>, C, NoOpMiddleware<<C as Clock>::Instant>>;
type DirectLimiter<C> =
    RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// Why an upgrade was refused. Per-address limits answer 429, the listener-wide cap 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `limits.upgrades_per_ip_per_second`.
    #[error("too many upgrade attempts from this address (limits.upgrades_per_ip_per_second)")]
    UpgradeRate,
    /// `limits.max_connections_per_ip`.
    #[error("too many connections from this address (limits.max_connections_per_ip)")]
    ConnectionsPerIp,
    /// `limits.max_connections`.
    #[error("too many connections (limits.max_connections)")]
    Connections,
}

impl Refusal {
    /// The HTTP status to answer the upgrade request with.
    #[must_use]
    pub const fn status(self) -> StatusCode {
        match self {
            Self::UpgradeRate | Self::ConnectionsPerIp => StatusCode::TOO_MANY_REQUESTS,
            Self::Connections => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The config key of the limit.
    #[must_use]
    pub const fn config_key(self) -> &'static str {
        match self {
            Self::UpgradeRate => "limits.upgrades_per_ip_per_second",
            Self::ConnectionsPerIp => "limits.max_connections_per_ip",
            Self::Connections => "limits.max_connections",
        }
    }
}

/// Open connections, in total and per client address. Addresses with none are removed, so
/// the map holds at most one entry per open connection.
#[derive(Debug, Default)]
struct OpenConnections {
    total: u64,
    per_ip: HashMap<IpAddr, u64>,
}

type Shared = Arc<Mutex<OpenConnections>>;

/// Counters only, never held across an await or a panic-prone call: a poisoned lock still
/// holds consistent counts.
fn lock(open: &Mutex<OpenConnections>) -> MutexGuard<'_, OpenConnections> {
    open.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The connection limits of one listener; share it behind an `Arc`.
pub struct ConnectionLimits<C: Clock = DefaultClock> {
    upgrade_rate: Option<KeyedLimiter<C>>,
    max_connections: Option<u64>,
    max_connections_per_ip: Option<u64>,
    open: Shared,
}

impl<C: Clock> fmt::Debug for ConnectionLimits<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionLimits")
            .field("upgrade_rate", &self.upgrade_rate.is_some())
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("open", &self.open_connections())
            .finish()
    }
}

/// One admitted connection; dropping it (on every path) gives its place back.
#[must_use = "the connection's place is released when the permit is dropped"]
#[derive(Debug)]
pub struct ConnectionPermit {
    open: Shared,
    ip: IpAddr,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.per_ip.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

impl ConnectionLimits {
    /// The limits of `config`, on governor's default clock.
    #[must_use]
    pub fn new(config: &LimitsConfig) -> Self {
        Self::with_clock(config, DefaultClock::default())
    }
}

impl<C: Clock> ConnectionLimits<C> {
    /// The limits of `config`, on `clock` (tests pass governor's `FakeRelativeClock`).
    #[must_use]
    pub fn with_clock(config: &LimitsConfig, clock: C) -> Self {
        let upgrade_rate = config
            .upgrades_per_ip_per_second
            .map(|rate| RateLimiter::dashmap_with_clock(Quota::per_second(non_zero(rate)), clock));
        Self {
            upgrade_rate,
            max_connections: config.max_connections,
            max_connections_per_ip: config.max_connections_per_ip,
            open: Shared::default(),
        }
    }

    /// Admits a connection from `ip`: the upgrade rate first (every attempt counts, admitted
    /// or not), then the address's own cap, then the listener's, so a client over its own
    /// cap hears 429 (its fault) rather than 503.
    ///
    /// # Errors
    /// The first limit the attempt is over.
    pub fn admit(&self, ip: IpAddr) -> Result<ConnectionPermit, Refusal> {
        // An IPv4 client seen through an IPv6 socket (`::ffff:a.b.c.d`) is one address.
        let ip = ip.to_canonical();
        if let Some(rate) = &self.upgrade_rate
            && rate.check_key(&ip).is_err()
        {
            return Err(Refusal::UpgradeRate);
        }
        let mut open = lock(&self.open);
        let from_ip = open.per_ip.get(&ip).copied().unwrap_or(0);
        if self
            .max_connections_per_ip
            .is_some_and(|cap| from_ip >= cap)
        {
            return Err(Refusal::ConnectionsPerIp);
        }
        if self.max_connections.is_some_and(|cap| open.total >= cap) {
            return Err(Refusal::Connections);
        }
        open.total += 1;
        *open.per_ip.entry(ip).or_insert(0) += 1;
        drop(open);
        Ok(ConnectionPermit {
            open: Arc::clone(&self.open),
            ip,
        })
    }

    /// Connections admitted and not yet dropped.
    #[must_use]
    pub fn open_connections(&self) -> u64 {
        lock(&self.open).total
    }

    /// Forgets the upgrade-rate state of addresses that have been quiet for a full refill,
    /// and returns the memory. Call it every few seconds: it bounds the rate limiter to the
    /// addresses seen recently.
    pub fn retain_recent(&self) {
        if let Some(rate) = &self.upgrade_rate {
            rate.retain_recent();
            rate.shrink_to_fit();
        }
    }

    /// Addresses the upgrade-rate limiter holds state for.
    #[must_use]
    pub fn tracked_addresses(&self) -> usize {
        self.upgrade_rate.as_ref().map_or(0, RateLimiter::len)
    }
}

/// The invocation rate of one session (`limits.invocations_per_second`, `limits.burst`).
pub struct InvocationLimiter<C: Clock = DefaultClock> {
    limiter: DirectLimiter<C>,
}

impl<C: Clock> fmt::Debug for InvocationLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvocationLimiter").finish_non_exhaustive()
    }
}

impl InvocationLimiter {
    /// The session limiter of `config`; `None` when `invocations_per_second` is unset.
    #[must_use]
    pub fn new(config: &LimitsConfig) -> Option<Self> {
        Self::with_clock(config, DefaultClock::default())
    }
}

impl<C: Clock> InvocationLimiter<C> {
    /// As [`InvocationLimiter::new`], on `clock`. `burst` defaults to the rate.
    #[must_use]
    pub fn with_clock(config: &LimitsConfig, clock: C) -> Option<Self> {
        let rate = config.invocations_per_second?;
        let burst = config.burst.unwrap_or(rate);
        let quota = Quota::per_second(non_zero(rate)).allow_burst(non_zero(burst));
        Some(Self {
            limiter: RateLimiter::direct_with_clock(quota, clock),
        })
    }

    /// Takes one invocation from the budget; `false` means answer `RATE_LIMITED`.
    #[must_use]
    pub fn try_acquire(&self) -> bool {
        self.limiter.check().is_ok()
    }
}

/// A config count as governor wants it: at least 1, at most `u32::MAX`.
fn non_zero(value: u64) -> NonZeroU32 {
    NonZeroU32::new(u32::try_from(value).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN)
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;
