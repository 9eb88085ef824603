//! Function-id wildcards (spec §2.2): `*` is any run of characters (including `::` and the
//! empty string), matching is anchored and case-sensitive, and nothing else is special.
//!
//! This file owns the syntax: the `match("…")` spelling, the globset spelling of a pattern, one
//! compiled wildcard for metadata values, and the spec's reference algorithm. A set of id
//! patterns is compiled by `id_matcher.rs`; which patterns a listener or a session holds is
//! decided by the callers.

use globset::{Candidate, GlobBuilder};

/// Unwraps iii's string spelling `match("pattern")` or `match('pattern')`.
///
/// The string is trimmed first; the pattern is the raw text between the wrappers, with no
/// escape processing. Returns `None` for any other string.
pub(crate) fn unwrap_match(text: &str) -> Option<&str> {
    let trimmed = text.trim();
    let double = trimmed
        .strip_prefix("match(\"")
        .and_then(|rest| rest.strip_suffix("\")"));
    double.or_else(|| {
        trimmed
            .strip_prefix("match('")
            .and_then(|rest| rest.strip_suffix("')"))
    })
}

/// Writes `pattern` in globset syntax: runs of `*` collapse to one `*` (so `**` has no
/// recursive meaning) and every other glob metacharacter is escaped, so it is literal.
fn to_glob(pattern: &str) -> String {
    let mut glob = String::with_capacity(pattern.len() + 8);
    let mut after_star = false;
    for c in pattern.chars() {
        match c {
            '*' if after_star => continue,
            '*' => glob.push('*'),
            '?' | '[' | ']' | '{' | '}' | '\\' => {
                glob.push('\\');
                glob.push(c);
            }
            other => glob.push(other),
        }
        after_star = c == '*';
    }
    // globset matches `*.`-shaped patterns through the candidate's file extension, which it
    // leaves empty for a last path segment of `..`; a class keeps such patterns on the path.
    if pattern.contains('*') && glob.ends_with('.') {
        glob.pop();
        glob.push_str("[.]");
    }
    glob
}

pub(crate) fn compile_glob(pattern: &str) -> Result<globset::Glob, globset::Error> {
    GlobBuilder::new(&to_glob(pattern))
        .literal_separator(false)
        .backslash_escape(true)
        .case_insensitive(false)
        .build()
}

/// One compiled wildcard, for metadata values (spec §2.3).
#[derive(Debug, Clone)]
pub(crate) struct Wildcard {
    matcher: globset::GlobMatcher,
}

impl Wildcard {
    pub(crate) fn new(pattern: &str) -> Result<Self, globset::Error> {
        Ok(Self {
            matcher: compile_glob(pattern)?.compile_matcher(),
        })
    }

    pub(crate) fn is_match(&self, text: &str) -> bool {
        self.matcher
            .is_match_candidate(&Candidate::from_bytes(text.as_bytes()))
    }
}

/// The spec's reference algorithm, one pattern at a time: split on `*`; the first piece is a
/// prefix, the last a suffix, the middle pieces appear in order without overlapping.
///
/// Used as the oracle in tests and fuzzing and as the naive baseline in the benchmark; the
/// decision path uses [`crate::id_matcher::IdMatcher`].
pub(crate) fn naive_match(pattern: &str, id: &str) -> bool {
    let mut pieces = pattern.split('*');
    let first = pieces.next().unwrap_or_default();
    let Some(mut rest) = id.strip_prefix(first) else {
        return false;
    };
    let middle: Vec<&str> = pieces.collect();
    let Some((last, middle)) = middle.split_last() else {
        // No `*` at all: exact equality.
        return rest.is_empty();
    };
    for piece in middle {
        match rest.find(piece) {
            Some(at) => {
                rest = rest.get(at + piece.len()..).unwrap_or_default();
            }
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::{naive_match, unwrap_match};
    use crate::id_matcher::IdMatcher;
    use proptest::prelude::*;

    fn matches(pattern: &str, id: &str) -> bool {
        IdMatcher::new([pattern]).unwrap().is_match(id)
    }

    #[test]
    fn wildcard_table_from_the_spec_holds_for_globset_and_the_reference() {
        let table: &[(&str, &[&str], &[&str])] = &[
            (
                "api::*",
                &["api::x", "api::a::b", "api::"],
                &["api", "API::x", "xapi::y"],
            ),
            (
                "*::public",
                &["a::public", "x::y::public"],
                &["a::public2", "a::private"],
            ),
            (
                "api::*::read",
                &["api::users::read", "api::a::b::read"],
                &["api::users::write"],
            ),
            ("*public*", &["public", "mypublicfn"], &["private"]),
            (
                "hello::world",
                &["hello::world"],
                &["hello::worldx", "hello::worl"],
            ),
            ("*", &["", "anything", "a::b::c", "a/b", "line\nbreak"], &[]),
            ("a**b", &["ab", "axxb", "a::b"], &["a", "ba"]),
            ("", &[""], &["a"]),
            // Every other glob metacharacter is literal.
            ("a?c", &["a?c"], &["abc"]),
            ("[ab]", &["[ab]"], &["a", "b"]),
            ("{a,b}", &["{a,b}"], &["a", "b"]),
            ("a\\*", &["a\\", "a\\x"], &["ax"]),
            ("x\\y", &["x\\y"], &["xy", "x/y"]),
            ("*.rs", &["a.rs", "a/.rs", "a::b.rs"], &["a.rsx"]),
            ("*/x", &["a/x", "/x"], &["x"]),
            ("*.", &["a.", "..", "a/..", "/.."], &["a"]),
            ("*..", &["..", "a/..", "x..."], &["."]),
            ("..", &[".."], &["a/.."]),
            ("caf\u{e9}::*", &["caf\u{e9}::menu"], &["cafe::menu"]),
        ];
        for (pattern, allowed, denied) in table {
            for id in *allowed {
                assert!(matches(pattern, id), "{pattern} should match {id:?}");
                assert!(
                    naive_match(pattern, id),
                    "reference: {pattern} should match {id:?}"
                );
            }
            for id in *denied {
                assert!(!matches(pattern, id), "{pattern} should not match {id:?}");
                assert!(
                    !naive_match(pattern, id),
                    "reference: {pattern} should not match {id:?}"
                );
            }
        }
    }

    #[test]
    fn match_wrappers_unwrap_without_escape_processing() {
        assert_eq!(unwrap_match("match(\"api::*\")"), Some("api::*"));
        assert_eq!(unwrap_match("  match('api::*')  "), Some("api::*"));
        assert_eq!(unwrap_match("match(\"a\\\"b\")"), Some("a\\\"b"));
        assert_eq!(unwrap_match("match(\"\")"), Some(""));
        assert_eq!(unwrap_match("match(\")"), None);
        assert_eq!(unwrap_match("api::*"), None);
        assert_eq!(unwrap_match("match(\"api::*')"), None);
    }

    #[test]
    fn an_empty_matcher_matches_nothing() {
        assert!(!IdMatcher::empty().is_match(""));
        assert!(!IdMatcher::new([]).unwrap().is_match("x"));
    }

    fn pattern_strategy() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a:*?\\[\\]{}\\\\/.b\n]{0,8}").unwrap()
    }

    fn id_strategy() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a:*?\\[\\]{}\\\\/.b\n]{0,10}").unwrap()
    }

    proptest! {
        #[test]
        fn globset_and_the_compiled_matcher_agree_with_the_reference_algorithm(
            pattern in pattern_strategy(),
            id in id_strategy(),
        ) {
            let expected = naive_match(&pattern, &id);
            prop_assert_eq!(matches(&pattern, &id), expected, "pattern {:?} id {:?}", pattern, id);
            // The globset spelling alone (metadata wildcards, and the composite's fallback).
            let glob = super::Wildcard::new(&pattern).unwrap();
            prop_assert_eq!(glob.is_match(&id), expected, "globset: pattern {:?} id {:?}", pattern, id);
        }

        #[test]
        fn a_set_matches_exactly_when_one_of_its_patterns_does(
            patterns in proptest::collection::vec(pattern_strategy(), 0..6),
            id in id_strategy(),
        ) {
            let set = IdMatcher::new(patterns.iter().map(String::as_str)).unwrap();
            let expected = patterns.iter().any(|p| naive_match(p, &id));
            prop_assert_eq!(set.is_match(&id), expected);
        }
    }
}
