//! Native cost of the verifiers alone: one ES256 verification (SHA-256 included), loading one
//! P-256 key (its comb tables), and one RS256 / PS256 verification with a 2048-bit key. Inside
//! Envoy's V8 the figures are several times higher (docs/jwt-auth.md, Performance); whole-token
//! figures are jwt-auth's bench (`cargo bench -p tollgate-jwt-auth --bench verify`).
//!
//! `cargo bench -p tollgate-verify --bench verify`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use rsa::rand_core::OsRng;
use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use tollgate_verify::p256::P256PublicKey;
use tollgate_verify::rsa::{Hash, Padding, RsaPublicKey};

const MSG: &[u8] = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZ2VudCIsImlzcyI6Imh0dHBzOi8vaWRwLmJlbmNoIn0";

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify");

    let sk = p256::ecdsa::SigningKey::from_bytes(&[7u8; 32].into()).unwrap();
    let point = sk.verifying_key().to_sec1_point(false);
    let key = P256PublicKey::from_sec1_uncompressed(point.as_bytes()).unwrap();
    let sig: p256::ecdsa::Signature = p256::ecdsa::signature::Signer::sign(&sk, MSG);
    let sig = sig.to_bytes();
    assert!(key.verify(MSG, &sig));
    group.bench_function("ES256/verify", |b| b.iter(|| key.verify(MSG, &sig)));
    group.bench_function("ES256/key-load", |b| {
        b.iter(|| P256PublicKey::from_sec1_uncompressed(point.as_bytes()).is_ok())
    });

    let sk = rsa::RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
    let key = RsaPublicKey::new(&sk.n().to_bytes_be(), &sk.e().to_bytes_be()).unwrap();
    let rs = rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha256>::new(sk.clone())
        .sign(MSG)
        .to_vec();
    let ps = rsa::pss::BlindedSigningKey::<rsa::sha2::Sha256>::new(sk)
        .sign_with_rng(&mut OsRng, MSG)
        .to_vec();
    assert!(key.verify(Hash::Sha256, Padding::Pkcs1v15, MSG, &rs));
    assert!(key.verify(Hash::Sha256, Padding::Pss, MSG, &ps));
    group.bench_function("RS256/verify", |b| {
        b.iter(|| key.verify(Hash::Sha256, Padding::Pkcs1v15, MSG, &rs))
    });
    group.bench_function("PS256/verify", |b| {
        b.iter(|| key.verify(Hash::Sha256, Padding::Pss, MSG, &ps))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
