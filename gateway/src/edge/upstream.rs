//! Where each route goes: the engine's surfaces (from `engine.*` URLs, resolved once at
//! start) and RBAC listeners (their loopback edge-handoff address and secret, from
//! [`crate::rbac::RunningRbac::handoff`]).

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::sync::Arc;

use crate::config::{EngineTarget, RouteTarget};
use crate::rbac::EdgeHandoff;

use super::EdgeError;

/// A resolved upstream.
#[derive(Clone)]
pub(crate) struct Upstream {
    /// Where to connect.
    pub(crate) addr: SocketAddr,
    /// Whether to speak TLS to it.
    pub(crate) tls: bool,
    /// SNI (and certificate name) when `tls`.
    pub(crate) sni: String,
    /// `x-iii-edge-secret` for RBAC listener handoffs.
    pub(crate) secret: Option<Arc<str>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .field("handoff", &self.secret.is_some())
            .finish_non_exhaustive()
    }
}

/// Resolves a route's target.
pub(crate) fn resolve(
    target: &RouteTarget,
    engine: &EngineTarget,
    handoff: &dyn Fn(&str) -> Option<EdgeHandoff>,
) -> Result<Upstream, EdgeError> {
    match target {
        RouteTarget::Rest => from_url("engine.rest_url", &engine.rest_url),
        RouteTarget::Stream => from_url("engine.stream_url", &engine.stream_url),
        RouteTarget::Engine => from_url("engine.url", &engine.url),
        RouteTarget::Listener(key) => {
            let handoff = handoff(key).ok_or_else(|| EdgeError::NoHandoff(key.clone()))?;
            Ok(Upstream {
                addr: handoff.addr,
                tls: false,
                sni: String::new(),
                secret: Some(handoff.secret),
            })
        }
    }
}

/// `host:port` of a URL (default port by scheme), for probes and upstreams.
pub(crate) fn host_port(url: &str) -> Option<(String, u16, bool)> {
    let uri: http::Uri = url.parse().ok()?;
    let tls = match uri.scheme_str()? {
        "https" | "wss" => true,
        "http" | "ws" => false,
        _ => return None,
    };
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    Some((host.to_owned(), port, tls))
}

fn from_url(key: &'static str, url: &str) -> Result<Upstream, EdgeError> {
    let bad = |reason: String| EdgeError::Upstream {
        key,
        url: url.to_owned(),
        reason,
    };
    let (host, port, tls) = host_port(url).ok_or_else(|| bad("not a URL with a host".into()))?;
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| bad(e.to_string()))?
        .next()
        .ok_or_else(|| bad("the name resolves to no address".into()))?;
    Ok(Upstream {
        addr,
        tls,
        sni: host,
        secret: None,
    })
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn urls_give_host_port_and_scheme() {
        assert_eq!(
            host_port("ws://127.0.0.1:49134"),
            Some(("127.0.0.1".into(), 49134, false))
        );
        assert_eq!(
            host_port("https://api.example.com"),
            Some(("api.example.com".into(), 443, true))
        );
        assert_eq!(
            host_port("http://[::1]:3111"),
            Some(("::1".into(), 3111, false))
        );
        assert_eq!(host_port("nope"), None);
    }
}
