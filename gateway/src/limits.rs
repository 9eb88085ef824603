//! Per-session invocation rate limit (governor). Connection caps land with the limits work.

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use policies::LimitsConfig;

/// The message of a `RATE_LIMITED` reply.
pub const RATE_LIMITED_MESSAGE: &str = "rate limit exceeded (limits.invocations_per_second)";

/// One session's invocation budget.
#[derive(Debug)]
pub struct InvocationLimiter(DefaultDirectRateLimiter);

impl InvocationLimiter {
    /// `None` when `invocations_per_second` is unset.
    #[must_use]
    pub fn new(limits: &LimitsConfig) -> Option<Self> {
        let rate =
            NonZeroU32::new(u32::try_from(limits.invocations_per_second?).unwrap_or(u32::MAX))?;
        let burst = limits
            .burst
            .and_then(|b| NonZeroU32::new(u32::try_from(b).unwrap_or(u32::MAX)))
            .unwrap_or(rate);
        Some(Self(RateLimiter::direct(
            Quota::per_second(rate).allow_burst(burst),
        )))
    }

    /// Takes one invocation from the budget; `false` when it is spent.
    #[must_use]
    pub fn try_acquire(&self) -> bool {
        self.0.check().is_ok()
    }
}
