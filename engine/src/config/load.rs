//! Loading iii's `config.yaml`: env expansion, the `workers:` / `modules:` list of
//! `{name, config}` entries (each `config` parsed by the type its `name` selects, so errors
//! keep their line), then validation into an immutable [`EngineConfig`].

use std::fmt;
use std::path::Path;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::env_expand::expand;
use super::error::{ConfigError, ConfigErrors};
use super::workers::{HttpConfig, RawHttp, RawWorkerManager, WorkerListenerConfig};

/// The config used without `--config`: the trusted listener on 127.0.0.1:49134 and iii-http on
/// 127.0.0.1:3111.
pub const EMBEDDED_DEFAULT: &str = "\
workers:
  - name: iii-worker-manager
    config: { host: 127.0.0.1, port: 49134 }
  - name: iii-http
    config: { host: 127.0.0.1, port: 3111 }
";

/// iii workers this engine knows by name but has not built yet: reported and skipped.
const NOT_BUILT_YET: &[&str] = &[
    "iii-stream",
    "stream",
    "iii-state",
    "state",
    "iii-queue",
    "queue",
    "iii-cron",
    "cron",
    "iii-pubsub",
    "pubsub",
    "iii-observability",
    "observability",
    "configuration",
    "iii-exec",
    "iii-bridge",
    "iii-http-functions",
    "iii-telemetry",
];

/// Names that are always on here and need no entry.
const ALWAYS_ON: &[&str] = &["iii-engine-functions"];

/// iii's old and new names for the same worker; listing both is an error.
const RENAMED: &[(&str, &str)] = &[
    ("iii-http", "http"),
    ("iii-state", "state"),
    ("iii-queue", "queue"),
    ("iii-cron", "cron"),
    ("iii-pubsub", "pubsub"),
];

/// The validated engine configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// The file it came from (or `<embedded default>`).
    pub source: String,
    /// Trusted worker listeners; the first is the main one (`addrs.worker`).
    pub worker_listeners: Vec<WorkerListenerConfig>,
    /// The REST API, when `iii-http` is listed.
    pub http: Option<HttpConfig>,
    /// Operator-facing warnings (workers skipped), logged at boot.
    pub warnings: Vec<String>,
}

/// Reads and validates a config file.
pub fn load_file(path: &Path) -> Result<EngineConfig, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError::new(
            &file,
            "",
            format!("cannot read the config file: {e}"),
        )])
    })?;
    load_str(&text, &file, |name| std::env::var(name).ok())
}

/// Validates config text; `file` names it in errors, `env` looks variables up.
pub fn load_str(
    text: &str,
    file: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<EngineConfig, ConfigErrors> {
    let expanded = expand(text, file, env).map_err(ConfigErrors)?;
    let raw: RawConfig =
        yaml_serde::from_str(&expanded).map_err(|e| ConfigErrors(vec![yaml_error(file, &e)]))?;
    raw.validate(file).map_err(ConfigErrors)
}

fn yaml_error(file: &str, e: &yaml_serde::Error) -> ConfigError {
    let position = e.location().map(|l| (l.line(), l.column()));
    let mut problem = e.to_string();
    if let Some((line, col)) = position {
        let suffix = format!(" at line {line} column {col}");
        if let Some(stripped) = problem.strip_suffix(&suffix) {
            problem = stripped.to_owned();
        }
    }
    ConfigError::new(file, "", problem).at(position)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    workers: Option<Vec<RawEntry>>,
    modules: Option<Vec<RawEntry>>,
    #[serde(rename = "registration_namespace_grace_ms")]
    _registration_namespace_grace_ms: Option<u64>,
}

impl RawConfig {
    fn validate(self, file: &str) -> Result<EngineConfig, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let (key, entries) = match (self.workers, self.modules) {
            (Some(_), Some(_)) => {
                return Err(vec![ConfigError::new(
                    file,
                    "modules",
                    "`workers` and `modules` (its older name) are both set; keep one list",
                )]);
            }
            (Some(w), None) => ("workers", w),
            (None, Some(m)) => ("modules", m),
            (None, None) => ("workers", Vec::new()),
        };
        let mut config = EngineConfig {
            source: file.to_owned(),
            worker_listeners: Vec::new(),
            http: None,
            warnings: Vec::new(),
        };
        for (old, new) in RENAMED {
            if entries.iter().any(|e| e.name == *old) && entries.iter().any(|e| e.name == *new) {
                errors.push(ConfigError::new(
                    file,
                    key,
                    format!("`{old}` and `{new}` are the same worker under its old and new names; list it once"),
                ));
            }
        }
        let mut worker_managers = 0_usize;
        for (i, entry) in entries.into_iter().enumerate() {
            let path = |k: &str| {
                if k.is_empty() {
                    format!("{key}[{i}]")
                } else {
                    format!("{key}[{i}].config.{k}")
                }
            };
            match entry.config {
                EntryConfig::WorkerManager(raw) => {
                    let first = worker_managers == 0;
                    worker_managers += 1;
                    match raw.validate(first) {
                        Ok(l) => config.worker_listeners.push(l),
                        Err(problems) => errors.extend(problems.into_iter().map(|(k, p)| ConfigError::new(file, path(&k), p))),
                    }
                }
                EntryConfig::Http(raw) => match raw.validate() {
                    Ok(_) if config.http.is_some() => {
                        errors.push(ConfigError::new(file, path(""), "iii-http is listed more than once"));
                    }
                    Ok(h) => config.http = Some(h),
                    Err(problems) => errors.extend(problems.into_iter().map(|(k, p)| ConfigError::new(file, path(k), p))),
                },
                EntryConfig::NotBuiltYet => config.warnings.push(format!(
                    "{file}: {}: worker `{}` is not built into this engine yet; skipped",
                    path(""),
                    entry.name
                )),
                EntryConfig::AlwaysOn => {}
                EntryConfig::Unknown if entry.image.is_some() => config.warnings.push(format!(
                    "{file}: {}: `{}` is an engine-managed (image) worker, which this engine does not run; skipped",
                    path(""),
                    entry.name
                )),
                EntryConfig::Unknown => errors.push(ConfigError::new(
                    file,
                    format!("{}.name", path("")),
                    format!("unknown worker `{}` (known: iii-worker-manager, iii-http, {})", entry.name, NOT_BUILT_YET.join(", ")),
                )),
            }
        }
        if config.worker_listeners.is_empty() && errors.is_empty() {
            // iii-worker-manager is mandatory: without an entry, the trusted listener runs on its default.
            config
                .worker_listeners
                .push(WorkerListenerConfig::trusted_default());
        }
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }
}

/// One `{name, config?, image?}` entry.
#[derive(Debug)]
struct RawEntry {
    name: String,
    config: EntryConfig,
    image: Option<String>,
}

#[derive(Debug)]
enum EntryConfig {
    WorkerManager(RawWorkerManager),
    Http(RawHttp),
    NotBuiltYet,
    AlwaysOn,
    Unknown,
}

impl EntryConfig {
    fn empty_for(name: &str) -> Self {
        match name {
            "iii-worker-manager" => Self::WorkerManager(RawWorkerManager::default()),
            "iii-http" | "http" => Self::Http(RawHttp::default()),
            n if NOT_BUILT_YET.contains(&n) => Self::NotBuiltYet,
            n if ALWAYS_ON.contains(&n) => Self::AlwaysOn,
            _ => Self::Unknown,
        }
    }
}

/// Parses `config` with the type `name` selects, straight from the YAML stream.
struct ConfigSeed<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for ConfigSeed<'_> {
    type Value = EntryConfig;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<EntryConfig, D::Error> {
        Ok(match EntryConfig::empty_for(self.0) {
            EntryConfig::WorkerManager(_) => {
                EntryConfig::WorkerManager(Option::deserialize(d)?.unwrap_or_default())
            }
            EntryConfig::Http(_) => EntryConfig::Http(Option::deserialize(d)?.unwrap_or_default()),
            other => {
                IgnoredAny::deserialize(d)?;
                other
            }
        })
    }
}

impl<'de> Deserialize<'de> for RawEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EntryVisitor)
    }
}

struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = RawEntry;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a worker entry `{name, config}`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEntry, A::Error> {
        let mut name: Option<String> = None;
        let mut config: Option<EntryConfig> = None;
        // `config` before `name` (unusual) is kept as a value and typed once the name is known.
        let mut early_config: Option<yaml_serde::Value> = None;
        let mut image = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "name" => name = Some(map.next_value()?),
                "config" => match &name {
                    Some(n) => config = Some(map.next_value_seed(ConfigSeed(n))?),
                    None => early_config = Some(map.next_value()?),
                },
                "image" => image = Some(map.next_value()?),
                other => {
                    return Err(de::Error::unknown_field(
                        other,
                        &["name", "config", "image"],
                    ));
                }
            }
        }
        let name = name.ok_or_else(|| de::Error::missing_field("name"))?;
        let config = match (config, early_config) {
            (Some(c), _) => c,
            (None, Some(value)) => ConfigSeed(&name)
                .deserialize(value)
                .map_err(de::Error::custom)?,
            (None, None) => EntryConfig::empty_for(&name),
        };
        Ok(RawEntry {
            name,
            config,
            image,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn load(text: &str) -> Result<EngineConfig, ConfigErrors> {
        load_str(text, "config.yaml", |n| {
            (n == "HTTP_PORT").then(|| "4111".to_owned())
        })
    }

    #[test]
    fn embedded_default_runs_the_trusted_listener_and_rest_api_on_loopback() {
        let c = load(EMBEDDED_DEFAULT).unwrap();
        assert_eq!(
            c.worker_listeners,
            vec![WorkerListenerConfig::trusted_default()]
        );
        assert_eq!(c.worker_listeners[0].port, 49134);
        let http = c.http.unwrap();
        assert_eq!((http.host.as_str(), http.port), ("127.0.0.1", 3111));
        assert_eq!(http.default_timeout, Duration::from_secs(30));
        assert_eq!(http.concurrency_request_limit, 1024);
    }

    #[test]
    fn env_variables_expand_before_parsing() {
        let c = load("workers:\n  - name: iii-http\n    config:\n      port: ${HTTP_PORT}\n      host: ${HOST:127.0.0.2}\n").unwrap();
        let http = c.http.unwrap();
        assert_eq!((http.host.as_str(), http.port), ("127.0.0.2", 4111));
    }

    #[test]
    fn hosts_default_to_loopback_and_ports_may_be_zero() {
        let c = load("workers:\n  - name: iii-worker-manager\n    config: { port: 0 }\n  - name: http\n    config: { port: 0 }\n").unwrap();
        assert_eq!(c.worker_listeners[0].host, "127.0.0.1");
        assert_eq!(c.worker_listeners[0].port, 0);
        assert_eq!(c.http.unwrap().host, "127.0.0.1");
    }

    #[test]
    fn modules_is_accepted_as_the_older_name_of_workers() {
        let c = load("modules:\n  - name: iii-http\n").unwrap();
        assert!(c.http.is_some());
        let err = load("modules: []\nworkers: []\n").unwrap_err();
        assert!(err.to_string().contains("keep one list"), "{err}");
    }

    #[test]
    fn missing_worker_manager_gets_the_mandatory_default() {
        let c = load("workers: []\n").unwrap();
        assert_eq!(
            c.worker_listeners,
            vec![WorkerListenerConfig::trusted_default()]
        );
        assert!(c.http.is_none());
    }

    #[test]
    fn several_worker_managers_start_several_listeners_first_is_main() {
        let c = load("workers:\n  - name: iii-worker-manager\n    config: { port: 1 }\n  - name: iii-worker-manager\n    config: { port: 2 }\n").unwrap();
        assert_eq!(
            c.worker_listeners
                .iter()
                .map(|l| l.port)
                .collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    #[test]
    fn unknown_key_error_names_file_line_and_key_path() {
        let err = load("workers:\n  - name: iii-http\n    config:\n      port: 1\n      prot: 2\n")
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("config.yaml:5:7: workers[0].config: unknown field `prot`"),
            "{msg}"
        );
    }

    #[test]
    fn bad_value_error_names_line_and_key_path() {
        let err = load("workers:\n  - name: iii-worker-manager\n    config:\n      port: 70000\n")
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("config.yaml:4:13: workers[0].config.port: invalid value"),
            "{msg}"
        );
    }

    #[test]
    fn unset_variable_error_names_it_and_its_line() {
        let err =
            load("workers:\n  - name: iii-http\n    config: { port: ${NOPE} }\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("config.yaml:3:21: environment variable `NOPE`"),
            "{err}"
        );
    }

    #[test]
    fn unknown_top_level_key_is_an_error() {
        let err = load("workerz: []\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `workerz`"), "{err}");
    }

    const TRUSTED: &str = "workers:\n  - name: iii-worker-manager\n    config: { port: 0 }\n";

    #[test]
    fn a_further_entry_with_rbac_becomes_an_rbac_listener() {
        let c = load(&format!(
            "{TRUSTED}  - name: iii-worker-manager\n    config:\n      port: 49135\n      middleware_function_id: app::mw\n      rbac:\n        auth_function_id: app::auth\n        expose_functions: ['match(\"api::*\")', {{ metadata: {{ public: true }} }}]\n"
        ))
        .unwrap();
        assert!(c.worker_listeners[0].rbac.is_none(), "the first is trusted");
        let policy = c.worker_listeners[1].rbac.as_ref().unwrap().policy();
        assert_eq!(policy.auth_function_id(), Some("app::auth"));
        assert!(policy.needs_metadata());
        let config = policy.config();
        assert_eq!(config.middleware_function_id.as_deref(), Some("app::mw"));
        assert_eq!(config.auth_timeout_ms, 5_000);
        assert_eq!(config.limits.max_message_bytes, 16 << 20);
        assert!(config.allow_self_invoke);
        assert_eq!(c.worker_listeners[1].port, 49135);
    }

    #[test]
    fn middleware_alone_gates_a_listener_and_our_keys_are_accepted() {
        let c = load(&format!(
            "{TRUSTED}  - name: iii-worker-manager\n    config: {{ port: 0, middleware_function_id: app::mw, auth_timeout_ms: 250, allow_self_invoke: false, limits: {{ max_message_bytes: 1024 }} }}\n"
        ))
        .unwrap();
        let config = c.worker_listeners[1]
            .rbac
            .as_ref()
            .unwrap()
            .policy()
            .config()
            .clone();
        assert!(config.rbac.is_none());
        assert_eq!(config.auth_timeout_ms, 250);
        assert!(!config.allow_self_invoke);
        assert_eq!(config.limits.max_message_bytes, 1024);
    }

    #[test]
    fn the_first_entry_stays_trusted_and_refuses_rbac() {
        let err = load("workers:\n  - name: iii-worker-manager\n    config:\n      port: 49135\n      rbac: { auth_function_id: a::auth }\n").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("config.yaml: workers[0].config.rbac: the first iii-worker-manager entry is the trusted listener"),
            "{msg}"
        );
    }

    #[test]
    fn rbac_listener_problems_name_their_key_paths() {
        for (block, want) in [
            ("rbac:", "workers[1].config: rbac is empty"),
            (
                "rbac: { expose_functions: [api] }",
                "workers[1].config.rbac.expose_functions",
            ),
            ("rbac: { bogus: 1 }", "unknown field `bogus`"),
            (
                "rbac: { auth_function_id: ' ' }",
                "workers[1].config.rbac.auth_function_id: must not be empty",
            ),
            (
                "rbac: {}\n      limits: { max_message_bytes: 99999999999 }",
                "workers[1].config.limits.max_message_bytes: must be at most",
            ),
            (
                "rbac: {}\n      auth_timeout_ms: 0",
                "workers[1].config.auth_timeout_ms: must be greater than 0",
            ),
            (
                "rbac: {}\n      limits: { max_connections: 1 }",
                "unknown field `max_connections`",
            ),
            (
                "auth_timeout_ms: 10",
                "workers[1].config.auth_timeout_ms: applies to RBAC listeners only",
            ),
        ] {
            let err = load(&format!(
                "{TRUSTED}  - name: iii-worker-manager\n    config:\n      port: 0\n      {block}\n"
            ))
            .unwrap_err();
            assert!(err.to_string().contains(want), "{block}: {err}");
        }
    }

    #[test]
    fn workers_not_built_yet_are_reported_and_skipped() {
        let c = load("workers:\n  - name: iii-state\n    config: { adapter: { name: kv } }\n  - name: iii-cron\n").unwrap();
        assert_eq!(c.warnings.len(), 2);
        assert!(c.warnings[0].contains("`iii-state` is not built into this engine yet; skipped"));
        assert!(c.warnings[0].contains("workers[0]"));
    }

    #[test]
    fn unknown_worker_names_are_errors_and_image_workers_are_skipped() {
        let err = load("workers:\n  - name: my-thing\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("workers[0].name: unknown worker `my-thing`"),
            "{err}"
        );
        let c = load("workers:\n  - name: my-thing\n    image: ghcr.io/x/y:1\n").unwrap();
        assert_eq!(c.warnings.len(), 1);
    }

    #[test]
    fn old_and_new_names_together_are_an_error() {
        let err = load("workers:\n  - name: iii-http\n  - name: http\n").unwrap_err();
        assert!(err.to_string().contains("list it once"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = load("workers:\n  - name: iii-http\n    config: { default_timeout: 0, concurrency_request_limit: 0 }\n  - name: nope\n").unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
    }

    #[test]
    fn cors_origins_and_methods_are_checked() {
        let err = load("workers:\n  - name: iii-http\n    config: { cors: { allowed_origins: [\"app.example.com\"], allowed_methods: [\"GE T\"] } }\n").unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
        assert!(
            err.0[0]
                .to_string()
                .contains("workers[0].config.cors.allowed_origins"),
            "{err}"
        );
        let c = load("workers:\n  - name: iii-http\n    config: { cors: { allowed_origins: [\"https://app.example.com\", \"*\"], allowed_methods: [get] } }\n").unwrap();
        assert!(c.http.unwrap().cors.is_some());
    }

    #[test]
    fn timeouts_and_limits_out_of_range_are_errors() {
        let err = load("workers:\n  - name: iii-worker-manager\n    config: { handshake_timeout_ms: 0 }\n  - name: iii-http\n    config: { default_timeout: 18446744073709551615, concurrency_request_limit: 18446744073709551615 }\n").unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
        assert!(
            err.to_string()
                .contains("workers[0].config.handshake_timeout_ms: must be greater than 0"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("workers[1].config.default_timeout: must be at most"),
            "{err}"
        );
    }

    #[test]
    fn config_before_name_is_still_typed() {
        let err = load("workers:\n  - config: { bogus: 1 }\n    name: iii-http\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `bogus`"), "{err}");
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let err = load("workers:\n  - name: [\n").unwrap_err();
        assert!(err.0[0].position.is_some(), "{err}");
    }
}
