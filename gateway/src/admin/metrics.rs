//! `/metrics`: the [`Status`] counters in Prometheus' text exposition format (0.0.4).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::status::Status;

/// Renders every counter and gauge.
pub(crate) fn render(status: &Status) -> String {
    let counters: [(&str, &str, &str, &AtomicU64); 9] = [
        (
            "iii_gateway_sessions_open",
            "gauge",
            "RBAC sessions open now.",
            &status.sessions_open,
        ),
        (
            "iii_gateway_sessions_total",
            "counter",
            "RBAC sessions accepted since start.",
            &status.sessions_total,
        ),
        (
            "iii_gateway_channels_open",
            "gauge",
            "Channel sockets bridged now.",
            &status.channels_open,
        ),
        (
            "iii_gateway_auth_failures_total",
            "counter",
            "Upgrades refused by authentication.",
            &status.auth_failures,
        ),
        (
            "iii_gateway_allowed_total",
            "counter",
            "Frames allowed through a gate.",
            &status.allowed,
        ),
        (
            "iii_gateway_denied_total",
            "counter",
            "Frames denied.",
            &status.denied,
        ),
        (
            "iii_gateway_shadow_denied_total",
            "counter",
            "Would-be denials let through in shadow mode.",
            &status.shadow_denied,
        ),
        (
            "iii_gateway_rate_limited_total",
            "counter",
            "Upgrades or calls refused by a limit.",
            &status.rate_limited,
        ),
        (
            "iii_gateway_oversized_total",
            "counter",
            "Messages refused for their size.",
            &status.oversized,
        ),
    ];
    let mut out = String::with_capacity(2048);
    for (name, kind, help, value) in counters {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
    }
    let connected = u8::from(status.control_connected.load(Ordering::Relaxed));
    let _ = writeln!(
        out,
        "# HELP iii_gateway_control_connected Whether the control connection to the engine is up."
    );
    let _ = writeln!(out, "# TYPE iii_gateway_control_connected gauge");
    let _ = writeln!(out, "iii_gateway_control_connected {connected}");
    out
}

#[cfg(test)]
mod tests {
    use super::render;
    use crate::status::{Status, bump};

    #[test]
    fn every_counter_has_help_type_and_value() {
        let status = Status::default();
        bump(&status.denied);
        let text = render(&status);
        assert!(
            text.contains("# TYPE iii_gateway_denied_total counter\niii_gateway_denied_total 1\n")
        );
        assert!(text.contains("iii_gateway_control_connected 0\n"));
        assert_eq!(text.lines().filter(|l| l.starts_with("# TYPE")).count(), 10);
    }
}
