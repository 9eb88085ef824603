//! `${NAME}` / `${NAME:default}` expansion on raw config text, before YAML parsing, as iii
//! does (settled decision 13). One implementation for the engine's `config.yaml` and the
//! gateway config a policy test references.
//!
//! Pure: the caller passes the variable lookup (`std::env::var` in the binaries) and the
//! version `${NAME:__III_ENGINE_VERSION__}` falls back to; reading files and naming them in
//! errors is the caller's job.

use thiserror::Error;

/// iii's special default: `${NAME:__III_ENGINE_VERSION__}` falls back to the version string
/// the caller passes.
pub const ENGINE_VERSION_DEFAULT: &str = "__III_ENGINE_VERSION__";

/// A `${NAME}` with no default whose variable is not set.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{line}:{column}: {}", self.problem())]
pub struct UnsetVariable {
    /// The variable's name.
    pub name: String,
    /// 1-based line of the `${`.
    pub line: usize,
    /// 1-based column (in bytes) of the `${`.
    pub column: usize,
}

impl UnsetVariable {
    /// What is wrong, without the position (for callers that print the position themselves).
    #[must_use]
    pub fn problem(&self) -> String {
        let name = &self.name;
        format!(
            "environment variable `{name}` is not set and `${{{name}}}` has no default \
             (write `${{{name}:default}}`)"
        )
    }
}

/// Expands every `${NAME}` / `${NAME:default}` in `text`, looking variables up with `lookup`.
/// A set variable wins over its default; `${NAME:__III_ENGINE_VERSION__}` falls back to
/// `version`. Text that is not an expansion (`${not a name}`, an unclosed `${`, `$NAME`) is
/// kept as written.
///
/// # Errors
/// Every unset variable without a default, with its position.
pub fn expand_env(
    text: &str,
    version: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Vec<UnsetVariable>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = text;
    let mut consumed = 0_usize;
    while let Some(start) = rest.find("${") {
        let (before, tail) = rest.split_at(start);
        out.push_str(before);
        let Some(end) = tail.find('}') else {
            out.push_str(tail);
            rest = "";
            break;
        };
        let inner = tail.get(2..end).unwrap_or_default();
        let (name, default) = match inner.split_once(':') {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        let whole = tail.get(..=end).unwrap_or_default();
        if !is_var_name(name) {
            // Not an expansion iii would make: keep the text as written.
            out.push_str(whole);
        } else {
            match (lookup(name), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(ENGINE_VERSION_DEFAULT)) => out.push_str(version),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    let (line, column) = position(text, consumed + start);
                    errors.push(UnsetVariable {
                        name: name.to_owned(),
                        line,
                        column,
                    });
                }
            }
        }
        let advance = start + end + 1;
        consumed += advance;
        rest = rest.get(advance..).unwrap_or_default();
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// 1-based line and byte column of `offset` in `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |newline| newline + 1) + 1;
    (line, column)
}

fn is_var_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::{UnsetVariable, expand_env};

    fn env(name: &str) -> Option<String> {
        match name {
            "PORT" => Some("4000".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn set_variables_and_defaults_expand() {
        let out = expand_env(
            "port: ${PORT}\nhost: ${HOST:127.0.0.1}\nx: ${EMPTY:d}\ny: ${NOPE:}\nz: ${PORT:1}",
            "9.9.9",
            env,
        )
        .unwrap();
        assert_eq!(out, "port: 4000\nhost: 127.0.0.1\nx: \ny: \nz: 4000");
    }

    #[test]
    fn every_unset_variable_is_named_with_its_line_and_column() {
        let errors = expand_env("a: 1\nb: ${MISSING}\nc: ${ALSO_MISSING}", "1", env).unwrap_err();
        assert_eq!(
            errors,
            [
                UnsetVariable {
                    name: "MISSING".into(),
                    line: 2,
                    column: 4
                },
                UnsetVariable {
                    name: "ALSO_MISSING".into(),
                    line: 3,
                    column: 4
                },
            ]
        );
        assert!(
            errors[0]
                .to_string()
                .starts_with("2:4: environment variable `MISSING` is not set"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn the_engine_version_default_is_the_version_passed_in() {
        assert_eq!(
            expand_env("v: ${V:__III_ENGINE_VERSION__}", "1.2.3", env).unwrap(),
            "v: 1.2.3"
        );
        assert_eq!(
            expand_env("v: ${PORT:__III_ENGINE_VERSION__}", "1.2.3", env).unwrap(),
            "v: 4000"
        );
    }

    #[test]
    fn text_that_is_not_an_expansion_is_kept() {
        assert_eq!(
            expand_env("a: ${not a var} ${", "1", env).unwrap(),
            "a: ${not a var} ${"
        );
        assert_eq!(expand_env("a: $PORT", "1", env).unwrap(), "a: $PORT");
        assert_eq!(expand_env("é: ${PORT}", "1", env).unwrap(), "é: 4000");
    }
}
