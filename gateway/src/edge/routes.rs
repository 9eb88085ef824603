//! Route matching and rewriting, pure: which route a request takes (first match wins; a route
//! may name a host, a path prefix or both), the path once the prefix is stripped, and the
//! forwarded-for value. The proxy phases that call these live in `proxy.rs`.

use std::net::IpAddr;

use crate::config::Route;

/// The request's host without its port (`Host` header, or the URI authority for h2).
pub(crate) fn request_host(raw: &str) -> &str {
    let raw = raw.trim();
    if let Some(rest) = raw.strip_prefix('[') {
        // [v6]:port
        return rest.split(']').next().unwrap_or(rest);
    }
    match raw.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => raw,
    }
}

/// Whether `path` is under `prefix` (a prefix without trailing slash): equal, or followed
/// by `/`.
pub(crate) fn path_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The first route matching `host` and `path`.
pub(crate) fn find<'a>(
    routes: impl IntoIterator<Item = &'a Route>,
    host: Option<&str>,
    path: &str,
) -> Option<usize> {
    let host = host.map(|h| h.trim_end_matches('.'));
    routes.into_iter().position(|route| {
        let host_ok = match (&route.host, host) {
            (None, _) => true,
            (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
            (Some(_), None) => false,
        };
        host_ok
            && route
                .path_prefix
                .as_deref()
                .is_none_or(|prefix| path_matches(prefix, path))
    })
}

/// `path_and_query` with `prefix` taken off the front, so the surface sees its own root:
/// `/api/x?y` → `/x?y`, `/api` → `/`, `/api?y` → `/?y`. Unchanged when it does not start
/// with the prefix.
pub(crate) fn strip_prefix(prefix: &str, path_and_query: &str) -> String {
    match path_and_query.strip_prefix(prefix) {
        Some(rest) if rest.is_empty() || rest.starts_with('?') => format!("/{rest}"),
        Some(rest) if rest.starts_with('/') => rest.to_owned(),
        _ => path_and_query.to_owned(),
    }
}

/// `X-Forwarded-For` for an HTTP surface: the client-sent chain plus the peer when the peer
/// is a trusted proxy, else the peer alone (a client cannot forge its address).
pub(crate) fn forwarded_for_chain(peer: IpAddr, sent: Option<&str>, trusted: bool) -> String {
    match sent.map(str::trim).filter(|s| !s.is_empty()) {
        Some(chain) if trusted => format!("{chain}, {peer}"),
        _ => peer.to_string(),
    }
}

/// `X-Forwarded-For` for an RBAC listener: one address, the client's. Behind a trusted proxy
/// that is the last entry the proxy appended; otherwise the peer itself.
pub(crate) fn forwarded_client(peer: IpAddr, sent: Option<&str>, trusted: bool) -> IpAddr {
    if !trusted {
        return peer;
    }
    sent.and_then(|chain| chain.rsplit(',').next())
        .and_then(|last| last.trim().parse().ok())
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RouteTarget;

    fn route(host: Option<&str>, prefix: Option<&str>, target: RouteTarget) -> Route {
        Route {
            host: host.map(str::to_owned),
            path_prefix: prefix.map(str::to_owned),
            target,
        }
    }

    #[test]
    fn first_match_wins_and_hosts_and_prefixes_mix() {
        let routes = [
            route(Some("api.example.com"), None, RouteTarget::Rest),
            route(None, Some("/api"), RouteTarget::Rest),
            route(
                None,
                Some("/rbac"),
                RouteTarget::Listener("listener:w".into()),
            ),
            route(Some("ws.example.com"), Some("/s"), RouteTarget::Stream),
        ];
        assert_eq!(find(&routes, Some("API.example.com"), "/rbac/x"), Some(0));
        assert_eq!(find(&routes, Some("other"), "/api"), Some(1));
        assert_eq!(find(&routes, None, "/api/v1"), Some(1));
        assert_eq!(find(&routes, Some("x"), "/apiv1"), None);
        assert_eq!(find(&routes, Some("x"), "/rbac/ws/channels/1"), Some(2));
        assert_eq!(find(&routes, Some("ws.example.com"), "/s/"), Some(3));
        assert_eq!(find(&routes, Some("x.example.com"), "/s/"), None);
        assert_eq!(find(&routes, None, "/"), None);
    }

    #[test]
    fn prefixes_are_stripped_to_the_surface_root() {
        assert_eq!(strip_prefix("/api", "/api/x?y=1"), "/x?y=1");
        assert_eq!(strip_prefix("/api", "/api"), "/");
        assert_eq!(strip_prefix("/api", "/api/"), "/");
        assert_eq!(strip_prefix("/api", "/api?y"), "/?y");
        assert_eq!(
            strip_prefix("/rbac", "/rbac/ws/channels/abc"),
            "/ws/channels/abc"
        );
        assert_eq!(strip_prefix("/api", "/other"), "/other");
    }

    #[test]
    fn hosts_lose_their_port() {
        assert_eq!(request_host("example.com:8443"), "example.com");
        assert_eq!(request_host("example.com"), "example.com");
        assert_eq!(request_host("[::1]:8443"), "::1");
        assert_eq!(request_host("127.0.0.1:1"), "127.0.0.1");
    }

    #[test]
    fn client_sent_forwarded_for_counts_only_from_trusted_peers() {
        let peer: IpAddr = "10.0.0.9".parse().unwrap();
        assert_eq!(
            forwarded_for_chain(peer, Some("1.2.3.4"), false),
            "10.0.0.9"
        );
        assert_eq!(
            forwarded_for_chain(peer, Some("1.2.3.4"), true),
            "1.2.3.4, 10.0.0.9"
        );
        assert_eq!(forwarded_for_chain(peer, None, true), "10.0.0.9");
        assert_eq!(forwarded_client(peer, Some("1.2.3.4"), false), peer);
        assert_eq!(
            forwarded_client(peer, Some("9.9.9.9, 1.2.3.4"), true).to_string(),
            "1.2.3.4"
        );
        assert_eq!(forwarded_client(peer, Some("junk"), true), peer);
    }
}
