//! The pingora `ProxyHttp` phases of the edge: pick the route (404 when none), answer CORS
//! preflights, refuse oversized bodies (413), lift the downstream read timeout for WebSocket
//! upgrades, then rewrite the request for its surface (prefix stripped, `X-Forwarded-*` set,
//! the handoff secret added for RBAC listeners). Matching itself is `routes.rs`.

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::header;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};

use super::cors::{Cors, CorsDecision};
use super::routes;
use super::upstream::Upstream;

/// The header carrying an RBAC listener's handoff secret.
pub(crate) const EDGE_SECRET_HEADER: &str = "x-iii-edge-secret";

/// One route, ready to serve.
#[derive(Debug, Clone)]
pub(crate) struct EdgeRoute {
    /// As configured.
    pub(crate) route: crate::config::Route,
    /// Where it goes.
    pub(crate) upstream: Upstream,
    /// Whether CORS applies (REST routes, when `edge.cors` is set).
    pub(crate) cors: bool,
}

/// The edge's proxy logic.
#[derive(Debug)]
pub(crate) struct EdgeProxy {
    pub(crate) routes: Vec<EdgeRoute>,
    pub(crate) cors: Option<Cors>,
    pub(crate) trusted_proxies: Vec<IpAddr>,
    pub(crate) tls: bool,
    pub(crate) max_body_bytes: u64,
    pub(crate) connect_timeout: Duration,
    pub(crate) read_timeout: Duration,
}

/// Per-request state.
#[derive(Debug, Default)]
pub(crate) struct EdgeCtx {
    route: Option<usize>,
    upgrade: bool,
    body_bytes: u64,
    cors: Option<CorsDecision>,
}

impl EdgeProxy {
    fn route(&self, ctx: &EdgeCtx) -> Result<&EdgeRoute> {
        ctx.route
            .and_then(|i| self.routes.get(i))
            .ok_or_else(|| Error::explain(InternalError, "no route chosen"))
    }

    fn peer_ip(session: &Session) -> Option<IpAddr> {
        session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip().to_canonical())
    }
}

#[async_trait]
impl ProxyHttp for EdgeProxy {
    type CTX = EdgeCtx;

    fn new_ctx(&self) -> Self::CTX {
        EdgeCtx::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        let req = session.req_header();
        let host = req
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri.authority().map(http::uri::Authority::as_str))
            .map(routes::request_host);
        let Some(index) = routes::find(self.routes.iter().map(|r| &r.route), host, req.uri.path())
        else {
            session.respond_error(404).await?;
            return Ok(true);
        };
        ctx.route = Some(index);
        let route = self.route(ctx)?;
        ctx.upgrade = session.is_upgrade_req();
        if let (true, Some(cors)) = (route.cors, &self.cors) {
            match cors.decide(session.req_header()) {
                CorsDecision::Preflight(status, origin) => {
                    let resp = cors.preflight_response(status, origin.as_ref())?;
                    session.write_response_header(Box::new(resp), true).await?;
                    return Ok(true);
                }
                decision => ctx.cors = Some(decision),
            }
        }
        if ctx.upgrade {
            // An upgraded WebSocket may idle for as long as both ends like.
            session.set_read_timeout(None);
            return Ok(false);
        }
        let declared = session
            .req_header()
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.max_body_bytes) {
            session.respond_error(413).await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if ctx.upgrade {
            return Ok(());
        }
        if let Some(chunk) = body {
            ctx.body_bytes = ctx.body_bytes.saturating_add(chunk.len() as u64);
            if ctx.body_bytes > self.max_body_bytes {
                return Error::e_explain(
                    HTTPStatus(413),
                    "request body over edge.limits.max_body_bytes",
                );
            }
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        let upstream = &self.route(ctx)?.upstream;
        let mut peer = HttpPeer::new(upstream.addr, upstream.tls, upstream.sni.clone());
        peer.options.connection_timeout = Some(self.connect_timeout);
        if !ctx.upgrade {
            peer.options.read_timeout = Some(self.read_timeout);
        }
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        let route = self.route(ctx)?;
        if let Some(prefix) = &route.route.path_prefix {
            let pq = upstream_request
                .uri
                .path_and_query()
                .map_or("/", http::uri::PathAndQuery::as_str);
            let uri: http::Uri = routes::strip_prefix(prefix, pq)
                .parse()
                .or_err(InvalidHTTPHeader, "rewritten path")?;
            upstream_request.set_uri(uri);
        }
        if !upstream_request.headers.contains_key(header::HOST)
            && let Some(authority) = session.req_header().uri.authority()
        {
            upstream_request.insert_header(header::HOST, authority.as_str())?;
        }
        let peer = Self::peer_ip(session);
        let trusted = peer.is_some_and(|ip| self.trusted_proxies.contains(&ip));
        let sent_for = upstream_request
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Some(peer) = peer {
            let value = if route.upstream.secret.is_some() {
                routes::forwarded_client(peer, sent_for.as_deref(), trusted).to_string()
            } else {
                routes::forwarded_for_chain(peer, sent_for.as_deref(), trusted)
            };
            upstream_request.insert_header("x-forwarded-for", value)?;
        } else {
            upstream_request.remove_header("x-forwarded-for");
        }
        let keep_proto = trusted && upstream_request.headers.contains_key("x-forwarded-proto");
        if !keep_proto {
            let proto = if self.tls { "https" } else { "http" };
            upstream_request.insert_header("x-forwarded-proto", proto)?;
        }
        upstream_request.remove_header(EDGE_SECRET_HEADER);
        if let Some(secret) = &route.upstream.secret {
            upstream_request.insert_header(EDGE_SECRET_HEADER, secret.as_ref())?;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if let Some(decision) = &ctx.cors {
            Cors::decorate(upstream_response, decision)?;
        }
        Ok(())
    }
}
