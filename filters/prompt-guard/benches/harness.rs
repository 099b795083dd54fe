//! prompt-guard through the harness: the shipped `.wasm` (build it first:
//! `cargo build --release --target wasm32-wasip1 -p tollgate-prompt-guard`) checking a ~64 KB
//! Agent SDK-shaped request against 100 rules, the whole stream (`Gateway::run`: headers, body
//! buffered and checked, upstream reply, response), next to the harness alone with the same
//! request as the baseline. The filter's cost is the difference. The first two rows are the
//! cold case (every text scanned); the `scan_cache_warm` row the warm one (policy `scan_cache`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use tollgate_harness::{artifact, FilterSpec, Gateway, Host, Request, Upstream};

mod common;
use common::{agent_request, hundred_rules, with_scan_cache};

fn request(body: &[u8]) -> Request {
    Request::post("/v1/messages?beta=true")
        .header("content-type", "application/json")
        .header("content-length", body.len().to_string())
        .header("authorization", "Bearer agent-token")
        .body(body.to_vec())
}

fn upstream() -> Upstream {
    Upstream::new(200)
        .header("content-type", "application/json")
        .body("{}")
}

fn bench(c: &mut Criterion) {
    // No fuel metering: the filter's code runs as in Envoy (see `Host::unmetered`).
    let host = Host::unmetered().expect("harness host");
    let body = agent_request(64 * 1024);
    let mut group = c.benchmark_group("prompt_guard_harness");
    // The headline rows are the first-seen (cold) case: `scan_cache` is off, so every request
    // is scanned in full. The `scan_cache_warm` row is the warm case: the policy remembers scan
    // results and every text of the request was seen before (an agent resending its system
    // prompt, tools and earlier turns).
    for (name, scoped, cache) in [
        ("run_64k_100_rules_all_roles", false, false),
        ("run_64k_100_rules_scoped", true, false),
        ("run_64k_100_rules_all_roles_scan_cache_warm", false, true),
    ] {
        let rules = hundred_rules(scoped);
        let rules = if cache {
            with_scan_cache(&rules)
        } else {
            rules
        };
        let spec = FilterSpec::new(artifact("prompt_guard"))
            .name("prompt-guard")
            .config(rules);
        let mut gw = Gateway::builder(&host)
            .filter(spec)
            .build()
            .expect("prompt-guard configures");
        let out = gw.run(request(&body), upstream());
        assert_eq!(out.client.status, 200, "{:?}", out.logs);
        assert_eq!(
            out.upstream.as_ref().map(|u| u.body.len()),
            Some(body.len())
        );
        group.bench_function(name, |b| {
            b.iter(|| black_box(gw.run(black_box(request(&body)), upstream())))
        });
    }
    let mut baseline = Gateway::builder(&host).build().expect("empty gateway");
    group.bench_function("harness_baseline_no_filter", |b| {
        b.iter(|| black_box(baseline.run(black_box(request(&body)), upstream())))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
