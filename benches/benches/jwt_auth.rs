//! jwt-auth per request through the harness: signature verification per algorithm, uncached
//! and cached (issue 4: "Criterion through the harness: verification per algorithm, cached
//! and uncached").
//!
//! The real `tollgate_jwt_auth.wasm` with one provider whose keys are an inline JWKS (RS256,
//! PS256, ES256, ES384, EdDSA, keys generated at start) plus an HS256 secret taken from the VM
//! environment, as in Envoy. Each iteration is one whole request (`Gateway::run`: headers
//! through jwt-auth, upstream reply, response back) carrying a valid token for the
//! algorithm. Uncached: the same filter with its token cache switched off by configuration
//! (`cache.max_entries: 0`), so every request decodes, checks claims and verifies the
//! signature. Cached: the default cache, the token verified once before measuring, so a
//! request costs the token's hash and a lookup. `harness_baseline_no_filter` is the harness
//! alone; `anonymous_path` is jwt-auth on a path that needs no token.
//!
//! `cargo bench -p tollgate-benches --bench jwt_auth` (needs `make wasm`).

// Bench code is test code: a broken setup must stop the run loudly.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use jwt_simple::prelude::*;
use tollgate_harness::{FilterSpec, Gateway, Host, Request, Upstream};

const ISS: &str = "https://idp.bench.tollgate";
const SECRET_ENV: &str = "BENCH_JWT_HS256_SECRET";
const SECRET: &str = "bench-secret-0123456789abcdef0123456789";

fn claims() -> JWTClaims<NoCustomClaims> {
    Claims::create(Duration::from_hours(2))
        .with_issuer(ISS)
        .with_subject("bench-agent")
        .with_audience("tollgate")
}

/// (algorithm, token, JWK of its key or `None` for HS256).
fn tokens() -> Vec<(&'static str, String, Option<String>)> {
    let rs = RS256KeyPair::generate(2048).unwrap().with_key_id("rs");
    let ps = PS256KeyPair::generate(2048).unwrap().with_key_id("ps");
    let es = ES256KeyPair::generate().with_key_id("es");
    let es384 = ES384KeyPair::generate().with_key_id("es384");
    let ed = Ed25519KeyPair::generate().with_key_id("ed");
    let hs = HS256Key::from_bytes(SECRET.as_bytes()).with_key_id("hs");
    vec![
        (
            "RS256",
            rs.sign(claims()).unwrap(),
            Some(rs.public_key().to_jwk()),
        ),
        (
            "PS256",
            ps.sign(claims()).unwrap(),
            Some(ps.public_key().to_jwk()),
        ),
        (
            "ES256",
            es.sign(claims()).unwrap(),
            Some(es.public_key().to_jwk()),
        ),
        (
            "ES384",
            es384.sign(claims()).unwrap(),
            Some(es384.public_key().to_jwk()),
        ),
        (
            "EdDSA",
            ed.sign(claims()).unwrap(),
            Some(ed.public_key().to_jwk()),
        ),
        ("HS256", hs.authenticate(claims()).unwrap(), None),
    ]
}

fn policy(jwks: &[String], cache_entries: usize) -> String {
    let cache = if cache_entries == 0 {
        r#"{"max_entries":0}"#.to_string()
    } else {
        format!(r#"{{"max_entries":{cache_entries},"max_age_s":300}}"#)
    };
    format!(
        r#"{{
  "providers": [{{
    "name": "bench",
    "issuer": "{ISS}",
    "audiences": ["tollgate"],
    "algorithms": ["RS256", "PS256", "ES256", "ES384", "EdDSA", "HS256"],
    "jwks": {{"keys": [{}]}},
    "hs256_secret_env": "{SECRET_ENV}",
    "hs256_kid": "hs"
  }}],
  "rules": [
    {{"exact": "/healthz", "anonymous": true}},
    {{"prefix": "/v1/messages"}}
  ],
  "cache": {cache}
}}"#,
        jwks.join(",")
    )
}

fn gateway(host: &Host, config: &str) -> Gateway {
    let wasm = tollgate_benches::wasm_path("jwt-auth").unwrap_or_else(|e| panic!("{e}"));
    let spec = FilterSpec::new(wasm)
        .name("jwt-auth")
        .config(config)
        .env(SECRET_ENV, SECRET);
    Gateway::builder(host)
        .filter(spec)
        .build()
        .unwrap_or_else(|e| panic!("jwt-auth does not configure: {e}"))
}

fn request(token: &str) -> Request {
    Request::post("/v1/messages")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
}

fn upstream() -> Upstream {
    Upstream::new(200).header("content-type", "application/json")
}

/// The bench measures the real path: the request must be allowed, with the identity set.
fn check(gw: &mut Gateway, alg: &str, token: &str) {
    let out = gw.run(request(token), upstream());
    assert_eq!(
        out.client.status,
        200,
        "{alg}: {} {:?}",
        out.client.text(),
        out.logs
    );
    assert!(
        out.upstream.is_some(),
        "{alg}: nothing reached the upstream"
    );
    assert_eq!(
        out.property("tollgate.subject").as_deref(),
        Some("bench-agent"),
        "{alg}"
    );
}

fn bench(c: &mut Criterion) {
    // No fuel metering: the filter's code runs as in Envoy (see `Host::unmetered`).
    let host = Host::unmetered().unwrap_or_else(|e| panic!("harness host: {e}"));
    let cases = tokens();
    let jwks: Vec<String> = cases.iter().filter_map(|(_, _, jwk)| jwk.clone()).collect();
    let mut uncached = gateway(&host, &policy(&jwks, 0));
    let mut cached = gateway(&host, &policy(&jwks, 4096));

    let mut group = c.benchmark_group("jwt_auth");
    for (alg, token, _) in &cases {
        check(&mut uncached, alg, token);
        let hits = uncached.metric("tollgate_jwt_auth_cache_hit").unwrap_or(0);
        check(&mut uncached, alg, token);
        assert_eq!(
            uncached.metric("tollgate_jwt_auth_cache_hit").unwrap_or(0),
            hits,
            "{alg}: the uncached gateway must not hit a cache"
        );
        group.bench_function(format!("{alg}/uncached"), |b| {
            b.iter(|| black_box(uncached.run(black_box(request(token)), upstream())))
        });

        check(&mut cached, alg, token);
        let hits = cached.metric("tollgate_jwt_auth_cache_hit").unwrap_or(0);
        check(&mut cached, alg, token);
        assert_eq!(
            cached.metric("tollgate_jwt_auth_cache_hit"),
            Some(hits + 1),
            "{alg}: the second request must be a cache hit"
        );
        group.bench_function(format!("{alg}/cached"), |b| {
            b.iter(|| black_box(cached.run(black_box(request(token)), upstream())))
        });
    }

    let anonymous = || Request::post("/healthz");
    let out = cached.run(anonymous(), upstream());
    assert_eq!(out.client.status, 200, "{:?}", out.logs);
    group.bench_function("anonymous_path", |b| {
        b.iter(|| black_box(cached.run(black_box(anonymous()), upstream())))
    });
    let mut baseline = Gateway::builder(&host)
        .build()
        .unwrap_or_else(|e| panic!("empty gateway: {e}"));
    group.bench_function("harness_baseline_no_filter", |b| {
        b.iter(|| black_box(baseline.run(black_box(request(&cases[0].1)), upstream())))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
