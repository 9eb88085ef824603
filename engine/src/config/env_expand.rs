//! `${NAME}` / `${NAME:default}` expansion on the raw config text, before YAML parsing, as iii
//! does. An unset variable without a default is an error naming it and its line.

use super::error::ConfigError;

/// iii's special default: `${VAR:__III_ENGINE_VERSION__}` falls back to the engine version.
const ENGINE_VERSION_DEFAULT: &str = "__III_ENGINE_VERSION__";

/// Expands every `${…}` in `text`, looking variables up with `lookup`. All unset variables are
/// reported, not just the first.
pub(crate) fn expand(
    text: &str,
    file: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Vec<ConfigError>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = text;
    let mut consumed = 0usize;
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
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        let whole = tail.get(..=end).unwrap_or_default();
        if !is_var_name(name) {
            // Not an expansion iii would make: keep the text as written.
            out.push_str(whole);
        } else {
            match (lookup(name), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(ENGINE_VERSION_DEFAULT)) => out.push_str(env!("CARGO_PKG_VERSION")),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    let offset = consumed + start;
                    let line = text
                        .get(..offset)
                        .map_or(1, |t| t.matches('\n').count() + 1);
                    let col = text
                        .get(..offset)
                        .map_or(1, |t| t.len() - t.rfind('\n').map_or(0, |p| p + 1) + 1);
                    errors.push(
                        ConfigError::new(
                            file,
                            "",
                            format!("environment variable `{name}` is not set and `${{{name}}}` has no default (write `${{{name}:default}}`)"),
                        )
                        .at(Some((line, col))),
                    );
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

fn is_var_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

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
    fn set_variables_and_defaults_expand() {
        let out = expand(
            "port: ${PORT}\nhost: ${HOST:127.0.0.1}\nx: ${EMPTY:d}\ny: ${NOPE:}",
            "f",
            env,
        )
        .unwrap();
        assert_eq!(out, "port: 4000\nhost: 127.0.0.1\nx: \ny: ");
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

    #[test]
    fn text_that_is_not_an_expansion_is_kept() {
        assert_eq!(
            expand("a: ${not a var} ${", "f", env).unwrap(),
            "a: ${not a var} ${"
        );
        assert_eq!(expand("a: $PORT", "f", env).unwrap(), "a: $PORT");
    }
}
