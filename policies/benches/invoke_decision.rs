//! One invoke decision with 10, 1,000 and 10,000 `expose_functions` patterns (a quarter each
//! prefix, suffix, infix wildcards and exact ids) and 100 forbidden ids, for ids that match
//! and two ids that match nothing (one of them close to several patterns). The naive baseline in the same run checks the same
//! forbidden set and then scans the patterns one by one with the spec's reference algorithm.
//!
//! Run: `cargo bench -p policies --bench invoke_decision`
#![allow(
    clippy::panic,
    missing_docs,
    reason = "benchmark harness: a setup failure aborts the run; criterion's macros add undocumented items"
)]

use std::collections::HashSet;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use policies::fuzzing::naive_wildcard_match;
use policies::{AuthResult, FunctionFilter, ListenerConfig, ListenerPolicy, RbacConfig, Session};

const SIZES: [usize; 3] = [10, 1_000, 10_000];
const FORBIDDEN: usize = 100;

fn patterns(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| match i % 4 {
            0 => format!("svc{i}::*"),
            1 => format!("*::op{i}"),
            2 => format!("*::mid{i}::*"),
            _ => format!("app{i}::fn"),
        })
        .collect()
}

/// Ids that hit the last pattern of each kind, and two that hit nothing.
fn ids(count: usize) -> Vec<(&'static str, String)> {
    let last = |kind: usize| (0..count).rev().find(|i| i % 4 == kind).unwrap_or(0);
    vec![
        ("exact", format!("app{}::fn", last(3))),
        ("prefix", format!("svc{}::orders::list", last(0))),
        ("suffix", format!("billing::invoices::op{}", last(1))),
        ("infix", format!("api::mid{}::read", last(2))),
        ("miss", "nothing::matches::this::id".to_owned()),
        // Passes the compiled matcher's byte masks (starts like a prefix, ends like a
        // suffix, holds most of an infix) so its hash probes and the infix scan all run.
        ("near_miss", "svcx::mid::opx1".to_owned()),
    ]
}

struct Naive {
    forbidden: HashSet<String>,
    patterns: Vec<String>,
}

impl Naive {
    fn allows(&self, id: &str) -> bool {
        !self.forbidden.contains(id)
            && self
                .patterns
                .iter()
                .any(|pattern| naive_wildcard_match(pattern, id))
    }
}

fn bench(c: &mut Criterion) {
    let forbidden: Vec<String> = (0..FORBIDDEN).map(|i| format!("blocked{i}::fn")).collect();
    let mut group = c.benchmark_group("invoke_decision");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for size in SIZES {
        let patterns = patterns(size);
        let config = ListenerConfig {
            rbac: Some(RbacConfig {
                expose_functions: patterns.iter().cloned().map(FunctionFilter::Id).collect(),
                ..RbacConfig::default()
            }),
            ..ListenerConfig::default()
        };
        let Ok(policy) = ListenerPolicy::new(config) else {
            panic!("the benchmark policy does not compile");
        };
        let Ok(session) = Session::from_auth_result(AuthResult {
            forbidden_functions: forbidden.clone(),
            ..AuthResult::default()
        }) else {
            panic!("the benchmark session does not build");
        };
        let naive = Naive {
            forbidden: forbidden.iter().cloned().collect(),
            patterns,
        };
        for (kind, id) in ids(size) {
            let expected = !kind.ends_with("miss");
            assert_eq!(
                policy.decide_invoke(&session, &id, None).is_allowed(),
                expected
            );
            assert_eq!(naive.allows(&id), expected);
            group.bench_with_input(
                BenchmarkId::new(format!("compiled/{kind}"), size),
                &id,
                |b, id| {
                    b.iter(|| {
                        policy
                            .decide_invoke(&session, black_box(id), None)
                            .is_allowed()
                    });
                },
            );
            group.bench_with_input(
                BenchmarkId::new(format!("naive/{kind}"), size),
                &id,
                |b, id| {
                    b.iter(|| naive.allows(black_box(id)));
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
