//! The route table behind `http` triggers: `api_path` patterns with `:param` segments, keyed
//! `METHOD:path`. Readers take a snapshot without locking; writers copy and swap.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::lock::lock;
use crate::registry::TriggerEntry;

const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Static(String),
    Param(String),
}

/// One route: a binding's method and pattern.
#[derive(Debug)]
pub(crate) struct Route {
    trigger_id: String,
    pub(crate) method: String,
    /// The normalized pattern (`/users/:id`), given to the handler as `path`.
    pub(crate) pattern: String,
    segments: Vec<Segment>,
    pub(crate) function_id: String,
    pub(crate) metadata: Option<Box<RawValue>>,
    /// Called with the request first; a literal `false` skips the handler (422).
    pub(crate) condition_function_id: Option<String>,
    /// This route's own middleware, run after the global ones.
    pub(crate) middleware_function_ids: Vec<String>,
}

impl Route {
    fn key(&self) -> (&str, &str) {
        (&self.method, &self.pattern)
    }

    /// The pattern with parameter names erased: `/a/:x` and `/a/:y` share a shape.
    fn shape(&self) -> impl Iterator<Item = Option<&str>> {
        self.segments.iter().map(|s| match s {
            Segment::Static(s) => Some(s.as_str()),
            Segment::Param(_) => None,
        })
    }

    fn static_count(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| matches!(s, Segment::Static(_)))
            .count()
    }

    /// Matches decoded path segments; returns the path params.
    fn matches(&self, segments: &[String]) -> Option<Vec<(String, String)>> {
        if segments.len() != self.segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (pattern, actual) in self.segments.iter().zip(segments) {
            match pattern {
                Segment::Static(s) if s == actual => {}
                Segment::Static(_) => return None,
                Segment::Param(name) => params.push((name.clone(), actual.clone())),
            }
        }
        Some(params)
    }
}

#[derive(Debug, Deserialize)]
struct HttpTriggerConfig {
    api_path: Option<String>,
    http_method: Option<String>,
    condition_function_id: Option<String>,
    #[serde(default)]
    middleware_function_ids: Vec<String>,
}

/// Splits a path into segments, ignoring empty ones (`//`, trailing `/`).
fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// Percent-decodes one path segment (invalid UTF-8 is replaced, never a panic).
fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// A matched route and its path params.
pub(crate) type RouteMatch = (Arc<Route>, Vec<(String, String)>);

/// Every route, swapped whole on change.
#[derive(Debug, Default)]
pub(crate) struct RouteTable {
    routes: ArcSwap<Vec<Arc<Route>>>,
    write: Mutex<()>,
}

impl RouteTable {
    /// Adds the route of an `http` binding; a binding for the same `METHOD:path` replaces the
    /// old one, and the same shape under other parameter names is refused.
    pub(crate) fn add(&self, binding: &TriggerEntry) -> Result<(), String> {
        let config: HttpTriggerConfig = serde_json::from_str(binding.config.get())
            .map_err(|_| "http trigger config must be an object with api_path".to_owned())?;
        let api_path = config
            .api_path
            .filter(|p| !p.trim().is_empty())
            .ok_or("api_path is required for http triggers")?;
        let method = config
            .http_method
            .as_deref()
            .unwrap_or("GET")
            .trim()
            .to_uppercase();
        if !METHODS.contains(&method.as_str()) {
            return Err(format!(
                "unsupported http_method '{method}' (one of {})",
                METHODS.join(", ")
            ));
        }
        let mut segments = Vec::new();
        for s in split(api_path.trim()) {
            match s.strip_prefix(':') {
                Some("") => {
                    return Err(format!(
                        "api_path '{api_path}' has a parameter without a name"
                    ));
                }
                Some(name) => segments.push(Segment::Param(name.to_owned())),
                None => segments.push(Segment::Static(decode(s))),
            }
        }
        let pattern = format!("/{}", split(api_path.trim()).collect::<Vec<_>>().join("/"));
        let route = Route {
            trigger_id: binding.id.clone(),
            method,
            pattern,
            segments,
            function_id: binding.function_id.clone(),
            metadata: binding.metadata.clone(),
            condition_function_id: config.condition_function_id.filter(|c| !c.is_empty()),
            middleware_function_ids: config.middleware_function_ids,
        };
        let _guard = lock(&self.write);
        let current = self.routes.load();
        let mut next: Vec<Arc<Route>> = Vec::with_capacity(current.len() + 1);
        for existing in current.iter() {
            if existing.key() == route.key() {
                continue; // replaced
            }
            if existing.method == route.method && existing.shape().eq(route.shape()) {
                return Err(format!(
                    "route conflict: {} {} has the same shape as the registered {}",
                    route.method, route.pattern, existing.pattern
                ));
            }
            next.push(existing.clone());
        }
        next.push(Arc::new(route));
        self.routes.store(Arc::new(next));
        Ok(())
    }

    /// Removes the route of a binding.
    pub(crate) fn remove(&self, trigger_id: &str) {
        let _guard = lock(&self.write);
        let current = self.routes.load();
        if current.iter().any(|r| r.trigger_id == trigger_id) {
            let next = current
                .iter()
                .filter(|r| r.trigger_id != trigger_id)
                .cloned()
                .collect();
            self.routes.store(Arc::new(next));
        }
    }

    /// Finds the route for a request; the most specific (most static segments) wins. A HEAD
    /// request with no HEAD route is served by the GET route (the server drops the body).
    pub(crate) fn find(&self, method: &str, path: &str) -> Option<RouteMatch> {
        let segments: Vec<String> = split(path).map(decode).collect();
        let routes = self.routes.load();
        let best = |method: &str| {
            routes
                .iter()
                .filter(|r| r.method == method)
                .filter_map(|r| r.matches(&segments).map(|p| (r.clone(), p)))
                .max_by_key(|(r, _)| r.static_count())
        };
        best(method).or_else(|| if method == "HEAD" { best("GET") } else { None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(id: &str, path: &str, method: Option<&str>) -> TriggerEntry {
        let mut config = serde_json::json!({ "api_path": path });
        if let Some(m) = method {
            config["http_method"] = m.into();
        }
        TriggerEntry {
            id: id.into(),
            trigger_type: "http".into(),
            function_id: format!("fn::{id}"),
            config: serde_json::value::to_raw_value(&config).unwrap(),
            metadata: None,
            owner: None,
        }
    }

    #[test]
    fn params_are_extracted_and_paths_normalized() {
        let t = RouteTable::default();
        t.add(&binding("a", "users/:id/", Some("get"))).unwrap();
        let (route, params) = t.find("GET", "/users/42").unwrap();
        assert_eq!(route.pattern, "/users/:id");
        assert_eq!(params, vec![("id".to_owned(), "42".to_owned())]);
        assert!(t.find("POST", "/users/42").is_none());
        assert!(t.find("GET", "/users").is_none());
        let (_, params) = t.find("GET", "/users/a%20b").unwrap();
        assert_eq!(params[0].1, "a b");
    }

    #[test]
    fn static_segments_win_over_params() {
        let t = RouteTable::default();
        t.add(&binding("p", "/users/:id", None)).unwrap();
        t.add(&binding("s", "/users/me", None)).unwrap();
        assert_eq!(t.find("GET", "/users/me").unwrap().0.function_id, "fn::s");
        assert_eq!(t.find("GET", "/users/7").unwrap().0.function_id, "fn::p");
    }

    #[test]
    fn same_key_replaces_and_same_shape_conflicts() {
        let t = RouteTable::default();
        t.add(&binding("a", "/a/:x", None)).unwrap();
        t.add(&binding("b", "/a/:x", None)).unwrap();
        assert_eq!(t.find("GET", "/a/1").unwrap().0.function_id, "fn::b");
        let err = t.add(&binding("c", "/a/:y", None)).unwrap_err();
        assert!(err.contains("conflict"), "{err}");
        t.add(&binding("d", "/a/:y", Some("POST"))).unwrap();
    }

    #[test]
    fn missing_api_path_and_bad_method_are_refused() {
        let t = RouteTable::default();
        assert_eq!(
            t.add(&binding("a", "", None)).unwrap_err(),
            "api_path is required for http triggers"
        );
        assert!(t.add(&binding("a", "/x", Some("BREW"))).is_err());
    }

    #[test]
    fn head_falls_back_to_the_get_route() {
        let t = RouteTable::default();
        t.add(&binding("g", "/x", None)).unwrap();
        assert_eq!(t.find("HEAD", "/x").unwrap().0.function_id, "fn::g");
        assert!(t.find("POST", "/x").is_none());
        t.add(&binding("h", "/x", Some("HEAD"))).unwrap();
        assert_eq!(t.find("HEAD", "/x").unwrap().0.function_id, "fn::h");
    }

    #[test]
    fn removed_routes_stop_matching() {
        let t = RouteTable::default();
        t.add(&binding("a", "/x", None)).unwrap();
        t.remove("a");
        assert!(t.find("GET", "/x").is_none());
    }
}
