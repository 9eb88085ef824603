//! Restrictive CORS for the REST routes when `edge.cors` is configured: preflights are answered
//! here (never forwarded), only listed origins are echoed, and the upstream's own
//! `Access-Control-*` headers are replaced. Without `edge.cors` nothing is added or removed.

use http::{HeaderValue, Method, header};
use pingora::http::{RequestHeader, ResponseHeader};

use crate::config::CorsSection;

/// The compiled `edge.cors` section.
#[derive(Debug, Clone)]
pub(crate) struct Cors {
    origins: Vec<String>,
    methods: HeaderValue,
    headers: HeaderValue,
    max_age: HeaderValue,
}

/// What to do with a request, CORS-wise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CorsDecision {
    /// Not a CORS request, or an origin not listed: forward, add nothing.
    Plain,
    /// A listed origin: forward and echo it on the response.
    Allowed(HeaderValue),
    /// A preflight: answer it here with this status (204 allowed, 403 refused).
    Preflight(u16, Option<HeaderValue>),
}

const CORS_RESPONSE_HEADERS: [header::HeaderName; 6] = [
    header::ACCESS_CONTROL_ALLOW_ORIGIN,
    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
    header::ACCESS_CONTROL_ALLOW_METHODS,
    header::ACCESS_CONTROL_ALLOW_HEADERS,
    header::ACCESS_CONTROL_EXPOSE_HEADERS,
    header::ACCESS_CONTROL_MAX_AGE,
];

impl Cors {
    /// Compiles the section; values that are not valid header text are dropped.
    pub(crate) fn new(section: &CorsSection) -> Self {
        let join = |items: &[String]| {
            HeaderValue::from_str(&items.join(", ")).unwrap_or(HeaderValue::from_static(""))
        };
        Self {
            origins: section
                .allowed_origins
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_owned())
                .collect(),
            methods: join(&section.allowed_methods),
            headers: join(&section.allowed_headers),
            max_age: HeaderValue::from(section.max_age_secs),
        }
    }

    /// Classifies a request.
    pub(crate) fn decide(&self, req: &RequestHeader) -> CorsDecision {
        let Some(origin) = req.headers.get(header::ORIGIN) else {
            return CorsDecision::Plain;
        };
        let listed = origin
            .to_str()
            .is_ok_and(|o| self.origins.iter().any(|allowed| allowed == o));
        let preflight = req.method == Method::OPTIONS
            && req
                .headers
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        match (preflight, listed) {
            (true, true) => CorsDecision::Preflight(204, Some(origin.clone())),
            (true, false) => CorsDecision::Preflight(403, None),
            (false, true) => CorsDecision::Allowed(origin.clone()),
            (false, false) => CorsDecision::Plain,
        }
    }

    /// The answer to a preflight.
    pub(crate) fn preflight_response(
        &self,
        status: u16,
        origin: Option<&HeaderValue>,
    ) -> pingora::Result<ResponseHeader> {
        let mut resp = ResponseHeader::build(status, Some(6))?;
        resp.insert_header(header::CONTENT_LENGTH, "0")?;
        resp.insert_header(header::VARY, "Origin")?;
        if let Some(origin) = origin {
            resp.insert_header(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone())?;
            resp.insert_header(header::ACCESS_CONTROL_ALLOW_METHODS, self.methods.clone())?;
            resp.insert_header(header::ACCESS_CONTROL_ALLOW_HEADERS, self.headers.clone())?;
            resp.insert_header(header::ACCESS_CONTROL_MAX_AGE, self.max_age.clone())?;
        }
        Ok(resp)
    }

    /// Replaces the upstream's CORS headers with ours on a forwarded response.
    pub(crate) fn decorate(
        resp: &mut ResponseHeader,
        decision: &CorsDecision,
    ) -> pingora::Result<()> {
        for name in &CORS_RESPONSE_HEADERS {
            resp.remove_header(name);
        }
        if let CorsDecision::Allowed(origin) = decision {
            resp.insert_header(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone())?;
            resp.append_header(header::VARY, "Origin")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors() -> Cors {
        Cors::new(&CorsSection {
            allowed_origins: vec!["https://app.example.com".into()],
            allowed_methods: vec!["GET".into(), "POST".into()],
            allowed_headers: vec!["content-type".into()],
            max_age_secs: 60,
        })
    }

    fn request(method: &str, origin: Option<&str>, preflight: bool) -> RequestHeader {
        let mut req = RequestHeader::build(method, b"/x", None).unwrap();
        if let Some(origin) = origin {
            req.insert_header("origin", origin).unwrap();
        }
        if preflight {
            req.insert_header("access-control-request-method", "POST")
                .unwrap();
        }
        req
    }

    #[test]
    fn only_listed_origins_are_echoed() {
        let cors = cors();
        assert_eq!(
            cors.decide(&request("GET", None, false)),
            CorsDecision::Plain
        );
        assert_eq!(
            cors.decide(&request("GET", Some("https://evil.example"), false)),
            CorsDecision::Plain
        );
        assert!(matches!(
            cors.decide(&request("GET", Some("https://app.example.com"), false)),
            CorsDecision::Allowed(_)
        ));
    }

    #[test]
    fn preflights_are_answered_at_the_edge() {
        let cors = cors();
        let ok = cors.decide(&request("OPTIONS", Some("https://app.example.com"), true));
        let CorsDecision::Preflight(204, Some(origin)) = ok else {
            panic!("{ok:?}")
        };
        let resp = cors.preflight_response(204, Some(&origin)).unwrap();
        assert_eq!(resp.headers["access-control-allow-methods"], "GET, POST");
        assert_eq!(
            cors.decide(&request("OPTIONS", Some("https://evil.example"), true)),
            CorsDecision::Preflight(403, None)
        );
    }

    #[test]
    fn upstream_cors_headers_are_replaced() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("access-control-allow-origin", "*")
            .unwrap();
        Cors::decorate(&mut resp, &CorsDecision::Plain).unwrap();
        assert!(resp.headers.get("access-control-allow-origin").is_none());
    }
}
