//! What an upgrade request tells the auth step: its headers (lowercase names, last value
//! wins, non-UTF-8 values dropped), its query parameters (form-urlencoded decoded, repeated
//! keys kept in order, settled decision 2) and the client address — the TCP peer, or the
//! `X-Forwarded-For` client when the peer is a trusted proxy or the gateway's own edge.

use std::collections::HashMap;
use std::net::IpAddr;

use http::HeaderMap;
use serde_json::{Value, json};

/// The header the edge sets on requests it hands to an RBAC listener; never shown to the
/// auth function.
pub(crate) const EDGE_SECRET_HEADER: &str = "x-iii-edge-secret";

/// The parts of an upgrade request the auth step reads.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestInfo {
    /// Request headers.
    pub headers: HashMap<String, String>,
    /// Query parameters.
    pub query_params: HashMap<String, Vec<String>>,
    /// The client address.
    pub ip: Option<IpAddr>,
}

impl RequestInfo {
    /// Reads a request's headers and query; `ip` is the resolved client address.
    pub(crate) fn new(headers: &HeaderMap, query: Option<&str>, ip: IpAddr) -> Self {
        Self {
            headers: header_map(headers),
            query_params: query_params(query),
            ip: Some(ip),
        }
    }

    /// The AuthInput JSON: `{headers, query_params, ip_address}` plus `identity` when a
    /// built-in verified the caller.
    pub(crate) fn auth_input(&self, identity: Option<&Value>) -> Value {
        let mut input = json!({
            "headers": self.headers,
            "query_params": self.query_params,
            "ip_address": self.ip.map(|ip| ip.to_string()),
        });
        if let (Some(identity), Some(map)) = (identity, input.as_object_mut()) {
            map.insert("identity".into(), identity.clone());
        }
        input
    }
}

fn header_map(headers: &HeaderMap) -> HashMap<String, String> {
    let mut map = HashMap::with_capacity(headers.len());
    for (name, value) in headers {
        if name.as_str() == EDGE_SECRET_HEADER {
            continue;
        }
        if let Ok(value) = value.to_str() {
            map.insert(name.as_str().to_owned(), value.to_owned());
        }
    }
    map
}

fn query_params(query: Option<&str>) -> HashMap<String, Vec<String>> {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if key.is_empty() {
            continue;
        }
        map.entry(key.into_owned())
            .or_default()
            .push(value.into_owned());
    }
    map
}

/// The client address: `peer`, unless `peer` is trusted (a listed proxy, or the edge with the
/// right secret), in which case the right-most `X-Forwarded-For` entry that is not itself a
/// trusted proxy.
pub(crate) fn client_ip(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted_proxies: &[IpAddr],
    peer_trusted: bool,
) -> IpAddr {
    if !peer_trusted && !trusted_proxies.contains(&peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !trusted_proxies.contains(ip))
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::{RequestInfo, client_ip};
    use http::{HeaderMap, HeaderValue};
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn query_params_are_form_decoded_with_repeats_in_order() {
        let info = RequestInfo::new(
            &HeaderMap::new(),
            Some("a=1&a=2&b=x+y%21&c&=skip&d="),
            ip("127.0.0.1"),
        );
        assert_eq!(info.query_params["a"], ["1", "2"]);
        assert_eq!(info.query_params["b"], ["x y!"]);
        assert_eq!(info.query_params["c"], [""]);
        assert_eq!(info.query_params["d"], [""]);
        assert!(!info.query_params.contains_key(""));
    }

    #[test]
    fn headers_are_lowercase_and_the_edge_secret_is_hidden() {
        let mut headers = HeaderMap::new();
        headers.insert("Authorization", HeaderValue::from_static("Bearer t"));
        headers.insert("x-iii-edge-secret", HeaderValue::from_static("s"));
        headers.insert("x-bin", HeaderValue::from_bytes(b"\xff").unwrap());
        let info = RequestInfo::new(&headers, None, ip("10.0.0.1"));
        assert_eq!(info.headers["authorization"], "Bearer t");
        assert!(!info.headers.contains_key("x-iii-edge-secret"));
        assert!(!info.headers.contains_key("x-bin"));
        let input = info.auth_input(Some(&serde_json::json!({"kind": "jwt"})));
        assert_eq!(input["ip_address"], "10.0.0.1");
        assert_eq!(input["identity"]["kind"], "jwt");
    }

    #[test]
    fn forwarded_for_is_honoured_only_from_trusted_peers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 10.0.0.2"),
        );
        let proxies = [ip("10.0.0.1"), ip("10.0.0.2")];
        assert_eq!(
            client_ip(ip("198.51.100.1"), &headers, &proxies, false),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &headers, &proxies, false),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), &headers, &[], true),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &HeaderMap::new(), &proxies, false),
            ip("10.0.0.1")
        );
    }
}
