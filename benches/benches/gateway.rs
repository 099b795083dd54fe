//! The whole gateway per request through the harness: the four filters chained (four VMs, as
//! Envoy runs four filters) against the bundle (the same four policies in one module), and the
//! harness alone as a baseline.
//!
//! One 4 KB Messages request with a cached RS256 token (the jwt-auth fixtures' inline keys and
//! token, the harness clock at the fixtures' instant), the shipped prompt-guard, key-inject and
//! secret-mask policies, and a 500-byte JSON answer with one AWS key to mask. The difference
//! between the two gateways is what the bundle saves in wasm work and host calls; Envoy's own
//! per-filter cost comes on top (docs/bundle.md has the figures inside Envoy). Then each policy
//! alone, as its own filter and as the bundle's only section.

// Bench code is test code: a broken setup must stop the run loudly.
#![allow(clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};
use tollgate_harness::{FilterSpec, Gateway, GatewayBuilder, Host, Request, Upstream};

const FIXTURES: &str = include_str!("../../filters/jwt-auth/testdata/harness.json");
const UPSTREAM_KEY: &str = "sk-ant-bench-upstream-0123456789abcdef";
const AWS: &str = "AKIAZ2MQ4JXLS7RT5WHB";

fn policy(name: &str) -> Value {
    let path = format!("{}/../policies/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The four configurations, in chain order.
fn sections(f: &Value) -> [(&'static str, Value); 4] {
    let jwt = json!({
        "providers": [{"issuer": f["issuer"], "audiences": ["tollgate"], "algorithms": ["RS256"],
                       "jwks": f["jwks"], "group_claims": ["groups"]}],
        "rules": [{"prefix": "/v1/messages", "groups_any": ["agents"]}]
    });
    [
        ("jwt-auth", jwt),
        ("prompt-guard", policy("prompt-guard")),
        ("key-inject", policy("key-inject")),
        ("secret-mask", policy("secret-mask")),
    ]
}

fn spec(name: &str, config: String) -> FilterSpec {
    let wasm = tollgate_benches::wasm_path(name).unwrap_or_else(|e| panic!("{e}"));
    FilterSpec::new(wasm)
        .name(name)
        .config(config)
        .env("ANTHROPIC_API_KEY", UPSTREAM_KEY)
}

fn builder(host: &Host, f: &Value) -> GatewayBuilder {
    let now = f["now"].as_u64().unwrap_or_else(|| panic!("fixtures: now"));
    Gateway::builder(host)
        .route_cluster("upstream")
        .start_time(UNIX_EPOCH + Duration::from_secs(now))
}

fn request(token: &str) -> Request {
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 256,
                      "messages": [{"role": "user", "content": "x".repeat(3900)}]});
    Request::post("/v1/messages")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .body(body.to_string())
}

fn upstream() -> Upstream {
    let body = json!({"type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                      "content": [{"type": "text", "text": format!("You said: {}, and {AWS}.", "x".repeat(300))}],
                      "stop_reason": "end_turn"});
    Upstream::new(200)
        .header("content-type", "application/json")
        .body(body.to_string())
}

fn bench(c: &mut Criterion) {
    let f: Value = serde_json::from_str(FIXTURES).unwrap_or_else(|e| panic!("fixtures: {e}"));
    let token = f["tokens"]["rs256"]
        .as_str()
        .unwrap_or_else(|| panic!("fixtures: token"))
        .to_string();
    // No fuel metering: the filters' code runs as in Envoy (see `Host::unmetered`).
    let host = Host::unmetered().unwrap_or_else(|e| panic!("harness host: {e}"));

    let mut chain = builder(&host, &f);
    let mut bundle_config = json!({});
    for (name, config) in sections(&f) {
        chain = chain.filter(spec(name, config.to_string()));
        bundle_config[name.replace('-', "_")] = config;
    }
    let mut chain = chain
        .build()
        .unwrap_or_else(|e| panic!("chain does not configure: {e}"));
    let mut bundle = builder(&host, &f)
        .filter(spec("bundle", bundle_config.to_string()))
        .build()
        .unwrap_or_else(|e| panic!("bundle does not configure: {e}"));
    let mut bare = builder(&host, &f)
        .build()
        .unwrap_or_else(|e| panic!("harness: {e}"));

    // The benches measure the real path: check it once per gateway (this also caches the token).
    for (name, gw) in [("chain", &mut chain), ("bundle", &mut bundle)] {
        let out = gw.run(request(&token), upstream());
        assert_eq!(out.client.status, 200, "{name}: {:?}", out.logs);
        assert!(
            !out.client.text().contains(AWS),
            "{name}: the key was not masked"
        );
        let up = out
            .upstream
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: nothing reached the upstream"));
        assert_eq!(up.header("x-api-key").as_deref(), Some(UPSTREAM_KEY));
    }

    let mut group = c.benchmark_group("gateway_4k");
    group.bench_function("four_filters", |b| {
        b.iter(|| black_box(chain.run(black_box(request(&token)), upstream())))
    });
    group.bench_function("bundle", |b| {
        b.iter(|| black_box(bundle.run(black_box(request(&token)), upstream())))
    });
    group.bench_function("harness_alone", |b| {
        b.iter(|| black_box(bare.run(black_box(request(&token)), upstream())))
    });
    // Each policy alone, as its own filter and as the bundle's only section: the bundle's glue
    // must cost nothing measurable in wasm.
    for (name, config) in sections(&f) {
        let mut alone = builder(&host, &f)
            .filter(spec(name, config.to_string()))
            .build()
            .unwrap_or_else(|e| panic!("{name} does not configure: {e}"));
        let section = json!({ name.replace('-', "_"): config });
        let mut in_bundle = builder(&host, &f)
            .filter(spec("bundle", section.to_string()))
            .build()
            .unwrap_or_else(|e| panic!("bundle with {name} does not configure: {e}"));
        let (a, b) = (
            alone.run(request(&token), upstream()),
            in_bundle.run(request(&token), upstream()),
        );
        assert_eq!(a.client.status, b.client.status, "{name}");
        assert_eq!(a.client.body, b.client.body, "{name}");
        group.bench_function(format!("{name}_alone"), |b| {
            b.iter(|| black_box(alone.run(black_box(request(&token)), upstream())))
        });
        group.bench_function(format!("{name}_in_bundle"), |b| {
            b.iter(|| black_box(in_bundle.run(black_box(request(&token)), upstream())))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
