//! Native verification cost per algorithm, uncached (decode + claim checks + signature +
//! identity) and cached (the cache lookup), and the one-time cost of loading an ES256 key
//! (its precomputed tables). Inside Envoy's V8 the uncached figures are several times higher;
//! the cached path is what a reused token costs.
//!
//! `cargo bench -p tollgate-jwt-auth --bench verify`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use jwt_simple::prelude::*;
use tollgate_jwt_auth::cache::TokenCache;
use tollgate_jwt_auth::claims::{identity, ClaimsPolicy, Identity};
use tollgate_jwt_auth::jwks::{hs256_key, parse_jwks, Alg, KeySet};
use tollgate_jwt_auth::verifier::{decode, verify, Policy};

const ISS: &str = "https://idp.bench";

fn claims() -> JWTClaims<NoCustomClaims> {
    Claims::create(Duration::from_hours(1))
        .with_issuer(ISS)
        .with_subject("agent")
}

fn keyset(jwk: String) -> KeySet {
    parse_jwks(format!("{{\"keys\":[{jwk}]}}").as_bytes(), &Alg::ALL).unwrap()
}

fn cases() -> Vec<(&'static str, String, KeySet)> {
    let rs = RS256KeyPair::generate(2048).unwrap().with_key_id("rs");
    let ps = PS256KeyPair::generate(2048).unwrap().with_key_id("ps");
    let es = ES256KeyPair::generate().with_key_id("es");
    let es384 = ES384KeyPair::generate().with_key_id("es384");
    let ed = Ed25519KeyPair::generate().with_key_id("ed");
    let secret = b"0123456789abcdef0123456789abcdef";
    let hs = HS256Key::from_bytes(secret).with_key_id("hs");
    vec![
        (
            "RS256",
            rs.sign(claims()).unwrap(),
            keyset(rs.public_key().to_jwk()),
        ),
        (
            "PS256",
            ps.sign(claims()).unwrap(),
            keyset(ps.public_key().to_jwk()),
        ),
        (
            "ES256",
            es.sign(claims()).unwrap(),
            keyset(es.public_key().to_jwk()),
        ),
        (
            "ES384",
            es384.sign(claims()).unwrap(),
            keyset(es384.public_key().to_jwk()),
        ),
        (
            "EdDSA",
            ed.sign(claims()).unwrap(),
            keyset(ed.public_key().to_jwk()),
        ),
        (
            "HS256",
            hs.authenticate(claims()).unwrap(),
            KeySet {
                keys: vec![hs256_key(secret, Some("hs".into()))],
                skipped: 0,
            },
        ),
    ]
}

fn full(token: &str, policy: &Policy, keys: &KeySet, now: u64) -> Identity {
    let d = decode(token, policy.max_token_bytes).unwrap();
    verify(token, &d, policy, &[keys], now).unwrap();
    identity(&d.claims, &ClaimsPolicy::default(), ISS, d.exp).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut policy = Policy::new(ISS);
    policy.algorithms = Alg::ALL.to_vec();
    let now = Clock::now_since_epoch().as_secs();
    let mut group = c.benchmark_group("jwt-auth");
    for (name, token, keys) in cases() {
        group.bench_function(format!("{name}/uncached"), |b| {
            b.iter(|| full(&token, &policy, &keys, now))
        });
        let mut cache: TokenCache<Identity> = TokenCache::new(1024, 300);
        cache.insert(&token, full(&token, &policy, &keys, now), None, now);
        group.bench_function(format!("{name}/cached"), |b| {
            b.iter(|| cache.get(&token, now).map(|i| i.subject.len()))
        });
    }
    // Loading one ES256 key from its JWK: jwt-simple's parse and checks, then the key's comb
    // tables (tollgate-verify's src/p256.rs); paid once per key and VM, not per token.
    let es = ES256KeyPair::generate().with_key_id("es");
    let jwks = format!("{{\"keys\":[{}]}}", es.public_key().to_jwk());
    group.bench_function("ES256/key-load", |b| {
        b.iter(|| parse_jwks(jwks.as_bytes(), &[Alg::ES256]).unwrap().len())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
