//! The part of a gateway config file this crate understands: the `listeners:` list. The other
//! top-level keys of the ARCHITECTURE config shape (`engine`, `tls`, `edge`, `admin`,
//! `telemetry`) are accepted and skipped; any other key is an error.
//!
//! Reading the file is the gateway's; it expands `${VAR}` with [`crate::expand_env`] first.

use std::collections::HashMap;

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::config_error::{ConfigError, from_yaml};
use crate::listener_config::ListenerConfig;

/// The listener blocks of a gateway config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a gateway config (a map)")]
pub struct GatewayListeners {
    /// The `listeners:` entries, in file order.
    #[serde(default)]
    pub listeners: Vec<ListenerConfig>,
    #[serde(default, rename = "engine")]
    _engine: Option<IgnoredAny>,
    #[serde(default, rename = "tls")]
    _tls: Option<IgnoredAny>,
    #[serde(default, rename = "edge")]
    _edge: Option<IgnoredAny>,
    #[serde(default, rename = "admin")]
    _admin: Option<IgnoredAny>,
    #[serde(default, rename = "telemetry")]
    _telemetry: Option<IgnoredAny>,
}

impl GatewayListeners {
    /// Parses a gateway config document.
    ///
    /// # Errors
    /// The first problem, with its position and key path; two listeners with the same `name`
    /// are a problem (routes, the ready file and policy tests find listeners by name).
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = from_yaml(text)?;
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (index, listener) in config.listeners.iter().enumerate() {
            if let Some(name) = listener.name.as_deref()
                && let Some(first) = seen.insert(name, index)
            {
                return Err(ConfigError::new(
                    format!("listeners[{index}].name"),
                    format!("duplicate listener name '{name}' (also listeners[{first}])"),
                ));
            }
        }
        Ok(config)
    }

    /// The listener with this `name`, or, for unnamed listeners, this index (`"0"`, `"1"`…).
    #[must_use]
    pub fn listener(&self, name: &str) -> Option<&ListenerConfig> {
        self.listeners
            .iter()
            .find(|listener| listener.name.as_deref() == Some(name))
            .or_else(|| {
                let index: usize = name.parse().ok()?;
                self.listeners
                    .get(index)
                    .filter(|listener| listener.name.is_none())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::GatewayListeners;

    const CONFIG: &str = r#"
engine: { url: ws://127.0.0.1:49134, rest_url: http://127.0.0.1:3111 }
tls: { certificates: [] }
listeners:
  - name: public-workers
    port: 49135
    rbac: { expose_functions: [ 'match("api::*")' ] }
  - port: 49136
edge: { host: 127.0.0.1, port: 8443, routes: [] }
admin: { host: 127.0.0.1, port: 9464 }
telemetry: { log_format: json }
"#;

    #[test]
    fn listeners_are_found_by_name_or_unnamed_index() {
        let config = GatewayListeners::from_yaml(CONFIG).unwrap();
        assert_eq!(config.listeners.len(), 2);
        assert_eq!(
            config.listener("public-workers").map(|l| l.port),
            Some(49135)
        );
        assert_eq!(config.listener("1").map(|l| l.port), Some(49136));
        assert!(config.listener("0").is_none(), "index 0 is named");
        assert!(config.listener("nope").is_none());
    }

    #[test]
    fn duplicate_listener_names_are_an_error() {
        let error = GatewayListeners::from_yaml(
            "listeners:\n  - { name: a, port: 1 }\n  - { name: b, port: 2 }\n  - { name: a, port: 3 }\n",
        )
        .unwrap_err();
        assert_eq!(error.path(), "listeners[2].name");
        assert_eq!(
            error.problem(),
            "duplicate listener name 'a' (also listeners[0])"
        );
        assert!(GatewayListeners::from_yaml("listeners: [{ port: 1 }, { port: 2 }]").is_ok());
    }

    #[test]
    fn other_top_level_keys_are_errors_and_listener_errors_carry_their_path() {
        let error = GatewayListeners::from_yaml("routes: []").unwrap_err();
        assert!(
            error.problem().contains("unknown field `routes`"),
            "{error}"
        );
        let error =
            GatewayListeners::from_yaml("listeners:\n  - { port: 1, rbac: { expose: [] } }\n")
                .unwrap_err();
        assert_eq!(error.path(), "listeners[0].rbac.expose");
    }
}
