//! A set of function-id wildcards compiled into one matcher (spec §2.2), split by shape so the
//! common shapes never reach a general glob engine.
//!
//! Each pattern is classified once, when the set is built:
//! - no `*`: an exact id, looked up in a hash set;
//! - `lit*`: a prefix, probed in a hash set at each distinct prefix length that exists, after
//!   a byte-mask check of the slice's two ends;
//! - `*lit`: a suffix, probed the same way from the end of the id;
//! - `*lit*`: an infix, found by one unanchored Aho-Corasick automaton over every infix literal;
//! - `*` (or any run of stars): everything;
//! - any other shape (`a*b`, `a*b*c`, …): one globset built from those patterns only.
//!
//! Runs of `*` count as one star. A decision does not allocate. The wildcard syntax (`match()`
//! unwrapping, the globset spelling) and the reference algorithm live in `wildcard.rs`.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use globset::{Candidate, GlobSet, GlobSetBuilder};

use crate::id_set::ByteSet;
use crate::wildcard::compile_glob;

/// The infix literals' total length up to which they are compiled into a DFA: at most 4,097
/// states of at most 256 four-byte transitions (4 MiB); ids use few distinct bytes, so with
/// byte classes it is typically under 1 MiB.
const INFIX_DFA_MAX_BYTES: usize = 4096;

/// The shape of one pattern, with runs of `*` collapsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape<'p> {
    /// No `*`: the whole id.
    Exact(&'p str),
    /// `lit*` with a non-empty literal.
    Prefix(&'p str),
    /// `*lit` with a non-empty literal.
    Suffix(&'p str),
    /// `*lit*` with a non-empty literal.
    Infix(&'p str),
    /// Only stars.
    Everything,
    /// Anything else: left to globset.
    Other,
}

impl<'p> Shape<'p> {
    pub(crate) fn of(pattern: &'p str) -> Self {
        let mut pieces = pattern.split('*');
        let first = pieces.next().unwrap_or_default();
        let Some(last) = pieces.next_back() else {
            return Self::Exact(pattern);
        };
        // Empty middle pieces come from runs of `*` and carry no meaning.
        let mut middle = pieces.filter(|piece| !piece.is_empty());
        match (
            first.is_empty(),
            middle.next(),
            middle.next(),
            last.is_empty(),
        ) {
            (true, None, _, true) => Self::Everything,
            (false, None, _, true) => Self::Prefix(first),
            (true, None, _, false) => Self::Suffix(last),
            (true, Some(infix), None, true) => Self::Infix(infix),
            _ => Self::Other,
        }
    }
}

/// A set of wildcard patterns compiled into one matcher.
#[derive(Debug, Clone, Default)]
pub(crate) struct IdMatcher {
    everything: bool,
    exact: ByteSet,
    prefixes: AnchoredLiterals,
    suffixes: AnchoredLiterals,
    infixes: Option<AhoCorasick>,
    others: Option<GlobSet>,
}

/// Literals anchored at one end of the id (the *outer* end; the other end of a literal is its
/// *inner* end), with the distinct literal lengths in ascending order: a probe hashes one slice
/// of the id per distinct length that fits in it. Two byte masks skip most probes that cannot
/// hit: the id's byte at the outer end must start some literal, and the byte where a literal of
/// that length would end must end one of that length.
#[derive(Debug, Clone, Default)]
struct AnchoredLiterals {
    literals: ByteSet,
    outer: ByteMask,
    lengths: Vec<(usize, ByteMask)>,
}

/// A set of bytes.
#[derive(Debug, Clone, Copy, Default)]
struct ByteMask([u64; 4]);

impl ByteMask {
    fn insert(&mut self, byte: u8) {
        if let Some(word) = self.0.get_mut(usize::from(byte >> 6)) {
            *word |= 1 << (byte & 63);
        }
    }

    fn contains(&self, byte: u8) -> bool {
        self.0
            .get(usize::from(byte >> 6))
            .is_some_and(|word| word >> (byte & 63) & 1 == 1)
    }
}

/// Which end of the id the literals are anchored at.
#[derive(Debug, Clone, Copy)]
enum End {
    Start,
    Finish,
}

/// Why a pattern set did not compile.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IdMatcherError {
    /// One pattern (by its position in the input) did not compile.
    #[error("pattern {index}: {source}")]
    Pattern {
        index: usize,
        source: globset::Error,
    },
    /// The patterns compiled one by one, but not as a set.
    #[error(transparent)]
    Glob(#[from] globset::Error),
    #[error("infix automaton: {0}")]
    Infix(#[from] aho_corasick::BuildError),
}

impl IdMatcherError {
    /// The position (in the input) of the pattern at fault, when one pattern is.
    pub(crate) const fn pattern_index(&self) -> Option<usize> {
        match self {
            Self::Pattern { index, .. } => Some(*index),
            Self::Glob(_) | Self::Infix(_) => None,
        }
    }
}

impl IdMatcher {
    /// Compiles every pattern into one matcher.
    pub(crate) fn new<'p>(
        patterns: impl IntoIterator<Item = &'p str>,
    ) -> Result<Self, IdMatcherError> {
        let mut matcher = Self::default();
        let mut infixes = Vec::new();
        let mut others = GlobSetBuilder::new();
        let mut has_others = false;
        for (index, pattern) in patterns.into_iter().enumerate() {
            match Shape::of(pattern) {
                Shape::Exact(id) => {
                    matcher.exact.insert(id.as_bytes().into());
                }
                Shape::Prefix(literal) => matcher.prefixes.insert(literal, End::Start),
                Shape::Suffix(literal) => matcher.suffixes.insert(literal, End::Finish),
                Shape::Infix(literal) => infixes.push(literal),
                Shape::Everything => matcher.everything = true,
                Shape::Other => {
                    let glob = compile_glob(pattern)
                        .map_err(|source| IdMatcherError::Pattern { index, source })?;
                    others.add(glob);
                    has_others = true;
                }
            }
        }
        if !infixes.is_empty() {
            // A DFA costs one table lookup per byte, but one row per state (a state per literal
            // byte at most) and one column per byte class; past a bound, aho-corasick's own
            // choice (a contiguous NFA) keeps memory linear at ~10 ns more per decision. The
            // default prefilter (a memchr for rare or first bytes) measured faster on misses.
            let total: usize = infixes.iter().map(|literal| literal.len()).sum();
            let kind = (total <= INFIX_DFA_MAX_BYTES).then_some(AhoCorasickKind::DFA);
            matcher.infixes = Some(
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::Standard)
                    .kind(kind)
                    .build(infixes)?,
            );
        }
        if has_others {
            matcher.others = Some(others.build()?);
        }
        Ok(matcher)
    }

    /// A matcher that matches nothing.
    pub(crate) fn empty() -> Self {
        Self::default()
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.everything
            && self.exact.is_empty()
            && self.prefixes.is_empty()
            && self.suffixes.is_empty()
            && self.infixes.is_none()
            && self.others.is_none()
    }

    /// Whether any pattern matches the whole id.
    pub(crate) fn is_match(&self, id: &str) -> bool {
        let id = id.as_bytes();
        self.everything
            || self.exact.contains(id)
            || self.prefixes.any_prefix_of(id)
            || self.suffixes.any_suffix_of(id)
            || self
                .infixes
                .as_ref()
                .is_some_and(|infixes| infixes.is_match(id))
            || self
                .others
                .as_ref()
                .is_some_and(|others| others.is_match_candidate(&Candidate::from_bytes(id)))
    }
}

impl AnchoredLiterals {
    /// Adds a non-empty literal anchored at `end`.
    fn insert(&mut self, literal: &str, end: End) {
        let bytes = literal.as_bytes();
        let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
            return;
        };
        let (outer, inner) = match end {
            End::Start => (first, last),
            End::Finish => (last, first),
        };
        if !self.literals.insert(bytes.into()) {
            return;
        }
        self.outer.insert(outer);
        let length = bytes.len();
        let at = match self.lengths.binary_search_by_key(&length, |&(l, _)| l) {
            Ok(at) => at,
            Err(at) => {
                self.lengths.insert(at, (length, ByteMask::default()));
                at
            }
        };
        if let Some((_, mask)) = self.lengths.get_mut(at) {
            mask.insert(inner);
        }
    }

    fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    /// Whether some literal is a prefix of the id.
    fn any_prefix_of(&self, id: &[u8]) -> bool {
        if !id.first().is_some_and(|&byte| self.outer.contains(byte)) {
            return false;
        }
        self.lengths
            .iter()
            .map_while(|(length, inner)| Some((id.get(..*length)?, inner)))
            .any(|(head, inner)| {
                head.last().is_some_and(|&byte| inner.contains(byte))
                    && self.literals.contains(head)
            })
    }

    /// Whether some literal is a suffix of the id.
    fn any_suffix_of(&self, id: &[u8]) -> bool {
        if !id.last().is_some_and(|&byte| self.outer.contains(byte)) {
            return false;
        }
        self.lengths
            .iter()
            .map_while(|(length, inner)| Some((id.get(id.len().checked_sub(*length)?..)?, inner)))
            .any(|(tail, inner)| {
                tail.first().is_some_and(|&byte| inner.contains(byte))
                    && self.literals.contains(tail)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::{IdMatcher, Shape};
    use crate::wildcard::naive_match;
    use proptest::prelude::*;

    #[test]
    fn patterns_are_classified_by_shape_with_star_runs_collapsed() {
        let table = [
            ("", Shape::Exact("")),
            ("a::b", Shape::Exact("a::b")),
            ("a?[b]", Shape::Exact("a?[b]")),
            ("api::*", Shape::Prefix("api::")),
            ("api::**", Shape::Prefix("api::")),
            ("*::op", Shape::Suffix("::op")),
            ("***::op", Shape::Suffix("::op")),
            ("*::mid::*", Shape::Infix("::mid::")),
            ("**mid***", Shape::Infix("mid")),
            ("*", Shape::Everything),
            ("***", Shape::Everything),
            ("a*b", Shape::Other),
            ("a**b", Shape::Other),
            ("*a*b*", Shape::Other),
            ("a*b*", Shape::Other),
            ("*a*b", Shape::Other),
        ];
        for (pattern, shape) in table {
            assert_eq!(Shape::of(pattern), shape, "{pattern:?}");
        }
    }

    #[test]
    fn each_shape_matches_through_its_own_strategy() {
        let m = IdMatcher::new(["x::y", "svc::*", "*::op", "*::mid::*", "a*b*c"]).unwrap();
        for id in [
            "x::y",
            "svc::",
            "svc::a::b",
            "::op",
            "a::b::op",
            "::mid::",
            "a::mid::b",
            "abc",
            "a::b::c",
        ] {
            assert!(m.is_match(id), "{id:?}");
        }
        for id in ["x::yz", "svc:", "a::op2", "::mi::", "acb", "", "caf\u{e9}"] {
            assert!(!m.is_match(id), "{id:?}");
        }
        assert!(!m.is_empty());
    }

    #[test]
    fn byte_probes_agree_with_character_matching() {
        // UTF-8 is self-synchronising: a literal's bytes can only match the id's bytes at
        // character boundaries, so probing bytes is the same as comparing characters.
        let m = IdMatcher::new(["caf\u{e9}*", "*\u{e9}::x"]).unwrap();
        assert!(m.is_match("caf\u{e9}::menu"));
        assert!(m.is_match("a\u{e9}::x"));
        assert!(!m.is_match("cafe\u{301}::menu"));
        assert!(!m.is_match("ae\u{301}::x"));
        assert!(!m.is_match("caf"));
        let m = IdMatcher::new(["*\u{301}*"]).unwrap();
        assert!(m.is_match("e\u{301}"));
        assert!(!m.is_match("\u{e9}"));
    }

    #[test]
    fn a_large_infix_set_past_the_dfa_bound_matches_the_same() {
        let patterns: Vec<String> = (0..1000).map(|i| format!("*::mid{i}::*")).collect();
        let total: usize = patterns.iter().map(|p| p.len() - 2).sum();
        assert!(total > super::INFIX_DFA_MAX_BYTES);
        let m = IdMatcher::new(patterns.iter().map(String::as_str)).unwrap();
        for id in [
            "a::mid999::b",
            "::mid0::",
            "x::mid1000::y",
            "mid5",
            "a::mid12:b",
        ] {
            let expected = patterns.iter().any(|p| naive_match(p, id));
            assert_eq!(m.is_match(id), expected, "{id:?}");
        }
    }

    #[test]
    fn everything_matches_the_empty_id_and_an_empty_set_nothing() {
        assert!(IdMatcher::new(["**"]).unwrap().is_match(""));
        assert!(IdMatcher::new([""]).unwrap().is_match(""));
        assert!(IdMatcher::empty().is_empty());
        assert!(!IdMatcher::empty().is_match(""));
    }

    /// Literal text: `::`, a lone `:`, ASCII letters, every glob metacharacter but `*`, a
    /// newline, a precomposed `é` and a combining accent (so `e\u{301}` and `\u{e9}` meet).
    fn literal() -> impl Strategy<Value = String> {
        proptest::string::string_regex("(a|b|e|::|:|\u{e9}|\u{301}|[?\\[\\]{}\\\\/.\n]){0,4}")
            .unwrap()
    }

    /// One or two stars, so runs of `*` are covered.
    fn star() -> impl Strategy<Value = String> {
        prop_oneof![Just("*".to_owned()), Just("**".to_owned())]
    }

    /// Patterns of every shape the matcher tells apart, plus free-form ones.
    fn pattern() -> impl Strategy<Value = String> {
        prop_oneof![
            literal(),
            (literal(), star()).prop_map(|(l, s)| format!("{l}{s}")),
            (star(), literal()).prop_map(|(s, l)| format!("{s}{l}")),
            (star(), literal(), star()).prop_map(|(a, l, b)| format!("{a}{l}{b}")),
            (literal(), star(), literal()).prop_map(|(a, s, b)| format!("{a}{s}{b}")),
            (literal(), star(), literal(), star(), literal())
                .prop_map(|(a, s, b, t, c)| format!("{a}{s}{b}{t}{c}")),
            star(),
        ]
    }

    /// Random ids over the same alphabet, or one of the patterns with its stars filled in,
    /// so that matches are frequent.
    fn patterns_and_id() -> impl Strategy<Value = (Vec<String>, String)> {
        (
            proptest::collection::vec(pattern(), 0..12),
            literal(),
            any::<prop::sample::Index>(),
            any::<bool>(),
        )
            .prop_map(|(patterns, text, index, from_pattern)| {
                let id = match patterns.get(index.index(patterns.len().max(1))) {
                    Some(pattern) if from_pattern => pattern.replace('*', &text),
                    _ => text,
                };
                (patterns, id)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn the_composite_matcher_agrees_with_the_reference_algorithm(
            (patterns, id) in patterns_and_id(),
        ) {
            let matcher = IdMatcher::new(patterns.iter().map(String::as_str)).unwrap();
            let expected = patterns.iter().any(|pattern| naive_match(pattern, &id));
            prop_assert_eq!(matcher.is_match(&id), expected, "patterns {:?} id {:?}", patterns, id);
            prop_assert_eq!(matcher.is_empty(), patterns.is_empty());
        }
    }
}
