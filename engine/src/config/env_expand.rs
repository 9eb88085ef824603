//! `${NAME}` / `${NAME:default}` expansion on the raw config text, before YAML parsing, as iii
//! does: `policies::expand_env` with this engine's version and its errors as engine
//! [`ConfigError`]s naming the file, the variable and its line.

use super::error::ConfigError;

/// Expands every `${…}` in `text`, looking variables up with `lookup`. All unset variables are
/// reported, not just the first.
pub(crate) fn expand(
    text: &str,
    file: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Vec<ConfigError>> {
    policies::expand_env(text, env!("CARGO_PKG_VERSION"), lookup).map_err(|unset| {
        unset
            .iter()
            .map(|variable| {
                ConfigError::new(file, "", variable.problem())
                    .at(Some((variable.line, variable.column)))
            })
            .collect()
    })
}

// The expansion rules are tested in `policies`; these check what this wrapper adds: errors
// as engine config errors with file and position, and this engine's version.
#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PORT" => Some("4000".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn unset_variable_without_default_names_it_and_its_line() {
        let errs = expand("a: 1\nb: ${MISSING}\nc: ${ALSO_MISSING}", "cfg.yaml", env).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].position, Some((2, 4)));
        assert!(errs[0].problem.contains("MISSING"));
        assert!(
            errs[0]
                .to_string()
                .starts_with("cfg.yaml:2:4: environment variable `MISSING`")
        );
        assert_eq!(errs[1].position, Some((3, 4)));
    }

    #[test]
    fn engine_version_default_is_special() {
        let out = expand("v: ${V:__III_ENGINE_VERSION__}", "f", env).unwrap();
        assert_eq!(out, format!("v: {}", env!("CARGO_PKG_VERSION")));
    }
}
