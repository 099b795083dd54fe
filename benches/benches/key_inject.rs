//! key-inject per request through the harness (target: ≤ 5 µs per request).
//!
//! One gateway with key-inject alone, the shipped-style policy (per-group rules and a default),
//! and a request that carries client credentials to strip. Measured: `Gateway::run` for the
//! whole stream (request headers through key-inject, upstream reply, response back), plus the
//! same with an identity that a rule selects (through the probe filter that seeds filter
//! state, when the harness has it) — and the harness alone as a baseline, so that the filter's
//! own cost is the difference.

// Bench code is test code: a broken setup must stop the run loudly.
#![allow(clippy::panic)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use tollgate_harness::{FilterSpec, Gateway, Host, Request, Upstream};

const KEY: &str = "sk-ant-bench-0123456789abcdef";

const POLICY: &str = r#"{
  "keys": {
    "default": { "env": "BENCH_DEFAULT_KEY" },
    "team-a": { "env": "BENCH_TEAM_A_KEY" }
  },
  "select": [
    { "subject": "svc-batch", "key": "team-a" },
    { "group": "team-a", "key": "team-a" }
  ],
  "default_key": "default",
  "strip_cookies": true,
  "allowed_upstreams": ["localhost", "api.anthropic.com"]
}"#;

fn request() -> Request {
    Request::post("/v1/messages")
        .header("x-api-key", "sk-client-should-be-stripped")
        .header("authorization", "Bearer client.jwt.token")
        .header("content-type", "application/json")
}

fn upstream() -> Upstream {
    Upstream::new(200).header("content-type", "application/json")
}

fn bench(c: &mut Criterion) {
    // No fuel metering: the filter's code runs as in Envoy (see `Host::unmetered`).
    let host = Host::unmetered().unwrap_or_else(|e| panic!("harness host: {e}"));
    let wasm = tollgate_benches::wasm_path("key-inject").unwrap_or_else(|e| panic!("{e}"));
    let spec = FilterSpec::new(wasm)
        .name("key-inject")
        .config(POLICY)
        .env("BENCH_DEFAULT_KEY", KEY)
        .env("BENCH_TEAM_A_KEY", "sk-ant-bench-team-a");
    let mut gw = Gateway::builder(&host)
        .filter(spec)
        .build()
        .unwrap_or_else(|e| panic!("key-inject does not configure: {e}"));

    // The bench measures the real path: check it once.
    let out = gw.run(request(), upstream());
    assert_eq!(out.client.status, 200, "{:?}", out.logs);
    let up = out
        .upstream
        .as_ref()
        .unwrap_or_else(|| panic!("nothing reached the upstream: {:?}", out.logs));
    assert_eq!(up.header("x-api-key").as_deref(), Some(KEY));
    assert_eq!(up.header("authorization"), None);

    let mut group = c.benchmark_group("key_inject");
    group.bench_function("strip_and_inject_default", |b| {
        b.iter(|| black_box(gw.run(black_box(request()), upstream())))
    });

    // The floor for this filter: default key only (no identity to read), nothing to strip,
    // the client's own anthropic-version.
    let mut minimal = Gateway::builder(&host)
        .filter(
            FilterSpec::new(tollgate_benches::wasm_path("key-inject").unwrap_or_else(|e| panic!("{e}")))
                .name("key-inject")
                .config(r#"{"keys":{"default":{"env":"BENCH_DEFAULT_KEY"}},"default_key":"default","allowed_upstreams":["localhost"]}"#)
                .env("BENCH_DEFAULT_KEY", KEY),
        )
        .build()
        .unwrap_or_else(|e| panic!("key-inject does not configure: {e}"));
    let plain = || Request::post("/v1/messages").header("anthropic-version", "2023-06-01");
    group.bench_function("inject_default_nothing_to_strip", |b| {
        b.iter(|| black_box(minimal.run(black_box(plain()), upstream())))
    });

    // Any filter's fixed cost in the harness (context creation, one call per stream event):
    // the probe fixture given no commands.
    let mut probe = Gateway::builder(&host)
        .filter(
            FilterSpec::new(tollgate_benches::wasm_path("probe").unwrap_or_else(|e| panic!("{e}")))
                .name("probe"),
        )
        .build()
        .unwrap_or_else(|e| panic!("probe does not configure: {e}"));
    group.bench_function("probe_fixture_no_commands", |b| {
        b.iter(|| black_box(probe.run(black_box(plain()), upstream())))
    });

    let mut baseline = Gateway::builder(&host)
        .build()
        .unwrap_or_else(|e| panic!("empty gateway: {e}"));
    group.bench_function("harness_baseline_no_filter", |b| {
        b.iter(|| black_box(baseline.run(black_box(request()), upstream())))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
