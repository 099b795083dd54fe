//! prompt-guard natively: a ~64 KB request shaped like the Claude Agent SDK's (system prompt as
//! blocks, a dozen tools, tool use and results, multi-turn) against 100 rules (the shipped
//! default policy plus 80 generated literal and regex rules). Also the stages on their own.
//! Run `cargo bench -p tollgate-prompt-guard` (regex) or add
//! `--no-default-features --features lite` (regex-lite) to compare engines. With
//! `PROMPT_GUARD_BENCH_DUMP=DIR` it first writes the request and the two policies to `DIR`
//! (`request-64k.json`, `policy-100-all-roles.json`, `policy-100-scoped.json`) for
//! `tollgate eval … --repeat N` under `perf`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

mod common;
use common::{agent_request, hundred_rules, with_scan_cache};
use tollgate_prompt_guard::config::load;
use tollgate_prompt_guard::extract::{extract, Api};
use tollgate_prompt_guard::normalize::normalize;
use tollgate_prompt_guard::policy::Verdict;

fn bench(c: &mut Criterion) {
    let body = agent_request(64 * 1024);
    if let Some(dir) = std::env::var_os("PROMPT_GUARD_BENCH_DUMP") {
        let dir = std::path::Path::new(&dir);
        std::fs::write(dir.join("request-64k.json"), &body).unwrap();
        std::fs::write(dir.join("policy-100-all-roles.json"), hundred_rules(false)).unwrap();
        std::fs::write(dir.join("policy-100-scoped.json"), hundred_rules(true)).unwrap();
    }
    let mut g = c.benchmark_group("prompt_guard");
    g.throughput(Throughput::Bytes(body.len() as u64));
    // The headline rows are the first-seen (cold) case: `scan_cache` is off. The last row is
    // the warm case (`scan_cache` on, every text already seen).
    for (name, scoped, cache) in [
        ("evaluate_64k_100_rules_all_roles", false, false),
        ("evaluate_64k_100_rules_scoped", true, false),
        (
            "evaluate_64k_100_rules_all_roles_scan_cache_warm",
            false,
            true,
        ),
    ] {
        let rules = hundred_rules(scoped);
        let rules = if cache {
            with_scan_cache(&rules)
        } else {
            rules
        };
        let policy = load(rules.as_bytes()).unwrap();
        assert!(matches!(
            policy.evaluate(Api::Messages, &body, &[]),
            Verdict::Pass { .. }
        ));
        g.bench_function(name, |b| {
            b.iter(|| policy.evaluate(Api::Messages, black_box(&body), &[]))
        });
    }
    g.bench_function("extract_64k", |b| {
        b.iter(|| extract(Api::Messages, black_box(&body)).unwrap())
    });
    let text = extract(Api::Messages, &body)
        .unwrap()
        .segments
        .iter()
        .map(|s| s.text.clone())
        .collect::<Vec<_>>()
        .join("\n");
    g.bench_function("normalize_64k", |b| {
        b.iter(|| normalize(black_box(&text), true))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
