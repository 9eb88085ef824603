//! Unit tests of `limits.rs`, on governor's fake clock.

use std::net::IpAddr;
use std::time::Duration;

use governor::clock::FakeRelativeClock;
use http::StatusCode;
use policies::LimitsConfig;

use super::{ConnectionLimits, InvocationLimiter, RATE_LIMITED_MESSAGE, Refusal};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn limits(config: &LimitsConfig) -> (ConnectionLimits<FakeRelativeClock>, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    (ConnectionLimits::with_clock(config, clock.clone()), clock)
}

#[test]
fn without_limits_everything_is_admitted_and_counted() {
    let limits = ConnectionLimits::new(&LimitsConfig::default());
    let permits: Vec<_> = (0..100)
        .map(|_| limits.admit(ip("10.0.0.1")).unwrap())
        .collect();
    assert_eq!(limits.open_connections(), 100);
    drop(permits);
    assert_eq!(limits.open_connections(), 0);
    assert_eq!(limits.tracked_addresses(), 0);
    assert!(InvocationLimiter::new(&LimitsConfig::default()).is_none());
}

#[test]
fn the_global_cap_answers_503_until_a_connection_closes() {
    let (limits, _) = limits(&LimitsConfig {
        max_connections: Some(2),
        ..LimitsConfig::default()
    });
    let first = limits.admit(ip("10.0.0.1")).unwrap();
    let _second = limits.admit(ip("10.0.0.2")).unwrap();
    let refusal = limits.admit(ip("10.0.0.3")).unwrap_err();
    assert_eq!(refusal, Refusal::Connections);
    assert_eq!(refusal.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        refusal.to_string(),
        "too many connections (limits.max_connections)"
    );
    assert_eq!(limits.open_connections(), 2, "a refusal takes no place");
    drop(first);
    assert!(limits.admit(ip("10.0.0.3")).is_ok());
}

#[test]
fn the_per_ip_cap_answers_429_for_that_address_only() {
    let (limits, _) = limits(&LimitsConfig {
        max_connections_per_ip: Some(1),
        max_connections: Some(1),
        ..LimitsConfig::default()
    });
    let held = limits.admit(ip("10.0.0.1")).unwrap();
    let refusal = limits.admit(ip("10.0.0.1")).unwrap_err();
    assert_eq!(
        refusal,
        Refusal::ConnectionsPerIp,
        "own cap before the global one"
    );
    assert_eq!(refusal.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refusal.config_key(), "limits.max_connections_per_ip");
    assert_eq!(
        limits.admit(ip("10.0.0.2")).unwrap_err(),
        Refusal::Connections
    );
    drop(held);
    let _again = limits.admit(ip("10.0.0.1")).unwrap();
}

#[test]
fn per_ip_entries_are_removed_when_their_last_connection_closes() {
    let (limits, _) = limits(&LimitsConfig {
        max_connections_per_ip: Some(3),
        ..LimitsConfig::default()
    });
    let permits: Vec<_> = (1..=50)
        .flat_map(|n| [ip(&format!("10.0.1.{n}")), ip(&format!("10.0.1.{n}"))])
        .map(|addr| limits.admit(addr).unwrap())
        .collect();
    assert_eq!(limits.open.lock().unwrap().per_ip.len(), 50);
    drop(permits);
    let open = limits.open.lock().unwrap();
    assert_eq!(open.total, 0);
    assert!(open.per_ip.is_empty());
}

#[test]
fn an_ipv4_mapped_address_is_the_same_client() {
    let (limits, _) = limits(&LimitsConfig {
        max_connections_per_ip: Some(1),
        ..LimitsConfig::default()
    });
    let _held = limits.admit(ip("192.0.2.7")).unwrap();
    assert_eq!(
        limits.admit(ip("::ffff:192.0.2.7")).unwrap_err(),
        Refusal::ConnectionsPerIp
    );
}

#[test]
fn the_upgrade_rate_is_per_address_and_refills() {
    let (limits, clock) = limits(&LimitsConfig {
        upgrades_per_ip_per_second: Some(2),
        ..LimitsConfig::default()
    });
    let a = ip("10.0.0.1");
    let _p1 = limits.admit(a).unwrap();
    let _p2 = limits.admit(a).unwrap();
    let refusal = limits.admit(a).unwrap_err();
    assert_eq!(refusal, Refusal::UpgradeRate);
    assert_eq!(refusal.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limits.open_connections(), 2);
    let _other = limits.admit(ip("10.0.0.2")).unwrap();
    clock.advance(Duration::from_millis(500));
    let _p3 = limits.admit(a).unwrap();
    assert_eq!(limits.admit(a).unwrap_err(), Refusal::UpgradeRate);
}

#[test]
fn retain_recent_forgets_quiet_addresses() {
    let (limits, clock) = limits(&LimitsConfig {
        upgrades_per_ip_per_second: Some(10),
        ..LimitsConfig::default()
    });
    for n in 0..20 {
        drop(limits.admit(ip(&format!("10.0.2.{n}"))).unwrap());
    }
    assert_eq!(limits.tracked_addresses(), 20);
    clock.advance(Duration::from_secs(2));
    drop(limits.admit(ip("10.0.3.1")).unwrap());
    limits.retain_recent();
    assert_eq!(limits.tracked_addresses(), 1);
}

#[test]
fn concurrent_admissions_never_exceed_the_cap() {
    let limits = ConnectionLimits::new(&LimitsConfig {
        max_connections: Some(10),
        ..LimitsConfig::default()
    });
    let admitted: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let limits = &limits;
                scope.spawn(move || {
                    (0..10)
                        .filter_map(|n| limits.admit(ip(&format!("10.{t}.0.{n}"))).ok())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let permits: Vec<_> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        permits.len()
    });
    assert_eq!(admitted, 10);
    assert_eq!(limits.open_connections(), 0);
}

#[test]
fn invocations_are_limited_with_a_burst() {
    let clock = FakeRelativeClock::default();
    let config = LimitsConfig {
        invocations_per_second: Some(2),
        burst: Some(5),
        ..LimitsConfig::default()
    };
    let limiter = InvocationLimiter::with_clock(&config, clock.clone()).unwrap();
    assert_eq!((0..10).filter(|_| limiter.try_acquire()).count(), 5);
    clock.advance(Duration::from_millis(500));
    assert!(limiter.try_acquire());
    assert!(!limiter.try_acquire());
    assert_eq!(
        RATE_LIMITED_MESSAGE,
        "rate limit exceeded (limits.invocations_per_second)"
    );
}

#[test]
fn the_burst_defaults_to_the_rate() {
    let clock = FakeRelativeClock::default();
    let config = LimitsConfig {
        invocations_per_second: Some(3),
        ..LimitsConfig::default()
    };
    let limiter = InvocationLimiter::with_clock(&config, clock.clone()).unwrap();
    assert_eq!((0..10).filter(|_| limiter.try_acquire()).count(), 3);
    clock.advance(Duration::from_secs(1));
    assert_eq!((0..10).filter(|_| limiter.try_acquire()).count(), 3);
}

#[test]
fn huge_values_are_clamped_not_wrapped() {
    let config = LimitsConfig {
        invocations_per_second: Some(u64::MAX),
        upgrades_per_ip_per_second: Some(u64::from(u32::MAX) + 1),
        ..LimitsConfig::default()
    };
    let limiter = InvocationLimiter::new(&config).unwrap();
    assert!((0..1000).all(|_| limiter.try_acquire()));
    let limits = ConnectionLimits::new(&config);
    assert!((0..1000).all(|_| limits.admit(ip("10.0.0.1")).is_ok()));
}
