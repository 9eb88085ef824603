//! Config problems with the key path and, when the YAML parser knows it, the line and column
//! (STYLE §5): `line:col: key.path: problem`. The caller puts the file name in front.
//!
//! Which keys exist is the config types' business; this module only locates and prints.

use std::fmt;

use serde::de::DeserializeOwned;
use thiserror::Error;

/// One problem in a config document.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ConfigError {
    location: Option<(usize, usize)>,
    path: String,
    problem: String,
}

impl ConfigError {
    /// A problem at `path` (dotted keys, empty for the root), with no position.
    pub fn new(path: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            location: None,
            path: path.into(),
            problem: problem.into(),
        }
    }

    /// Puts a parent key path in front (`listeners[0]` + `rbac.x` → `listeners[0].rbac.x`).
    #[must_use]
    pub fn under(mut self, parent: &str) -> Self {
        self.path = match (parent.is_empty(), self.path.is_empty()) {
            (true, _) => self.path,
            (false, true) => parent.to_owned(),
            (false, false) => format!("{parent}.{}", self.path),
        };
        self
    }

    /// Names what the problem is about in front of it (`case 'x': unknown field …`).
    #[must_use]
    pub(crate) fn about(mut self, subject: &str) -> Self {
        self.problem = format!("{subject}: {}", self.problem);
        self
    }

    /// `(line, column)`, 1-based, when the parser reported a position.
    #[must_use]
    pub const fn location(&self) -> Option<(usize, usize)> {
        self.location
    }

    /// The dotted key path (`listeners[0].rbac.expose_functions[2]`); empty for the root.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong.
    #[must_use]
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((line, column)) = self.location {
            write!(f, "{line}:{column}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.problem)
    }
}

/// Deserializes a YAML document, reporting the key path and position of the first problem.
///
/// # Errors
/// The first problem, with its key path and, when known, its line and column.
pub fn from_yaml<T: DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    let deserializer = yaml_serde::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = key_path(error.path());
        let inner = error.into_inner();
        let location = inner.location().map(|at| (at.line(), at.column()));
        let mut problem = inner.to_string();
        if let Some((line, column)) = location {
            // yaml_serde appends the position to its message; we print it in front instead.
            let suffix = format!(" at line {line} column {column}");
            if let Some(stripped) = problem.strip_suffix(&suffix) {
                problem = stripped.to_owned();
            }
        }
        // yaml_serde may also put (part of) the key path in front of its message; we print
        // the full path ourselves.
        if let Some((head, rest)) = problem.split_once(": ")
            && is_path_prefix(head, &path)
        {
            problem = rest.to_owned();
        }
        ConfigError {
            location,
            path,
            problem,
        }
    })
}

/// Whether `head` is `path` or one of its parents (`cases[2]` of `cases[2].bogus`).
fn is_path_prefix(head: &str, path: &str) -> bool {
    !head.is_empty()
        && path
            .strip_prefix(head)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

/// Deserializes an already parsed JSON value (for example a listener block inlined in a
/// policy test), reporting the key path of the first problem.
pub(crate) fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value)
        .map_err(|error| ConfigError::new(key_path(error.path()), error.into_inner().to_string()))
}

/// The dotted key path, empty for the document root (which serde_path_to_error prints `.`).
fn key_path(path: &serde_path_to_error::Path) -> String {
    match path.to_string() {
        root if root == "." => String::new(),
        path => path,
    }
}

#[cfg(test)]
mod tests {
    use super::{ConfigError, from_yaml};
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[allow(dead_code)]
        inner: Vec<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)]
        port: u16,
    }

    #[test]
    fn errors_name_the_line_column_and_key_path() {
        let error = from_yaml::<Outer>("inner:\n  - port: 1\n  - port: nope\n").unwrap_err();
        assert_eq!(error.path(), "inner[1].port");
        assert_eq!(error.location().map(|(line, _)| line), Some(3));
        let text = error.to_string();
        assert!(text.starts_with("3:"), "{text}");
        assert!(text.contains("inner[1].port: invalid type"), "{text}");
        assert!(!text.contains(" at line "), "{text}");
    }

    #[test]
    fn the_key_path_is_printed_once() {
        let error = from_yaml::<Outer>("inner:\n  - port: [1]\n").unwrap_err();
        assert_eq!(error.path(), "inner[0].port");
        let text = error.to_string();
        assert_eq!(text.matches("inner[0]").count(), 1, "{text}");
        let error = from_yaml::<Outer>("inner:\n  - { port: 1, bogus: 2 }\n").unwrap_err();
        let text = error.to_string();
        assert_eq!(text.matches("inner[0]").count(), 1, "{text}");
        assert!(text.contains("unknown field `bogus`"), "{text}");
    }

    #[test]
    fn a_parent_path_goes_in_front() {
        let error = ConfigError::new("rbac.x", "bad").under("listeners[0]");
        assert_eq!(error.to_string(), "listeners[0].rbac.x: bad");
        assert_eq!(ConfigError::new("", "bad").under("a").path(), "a");
    }
}
