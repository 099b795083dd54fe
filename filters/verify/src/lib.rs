//! tollgate-verify: the signature verifiers behind jwt-auth's RS256/384/512, PS256 and ES256,
//! written for speed inside Envoy's wasm VM (V8) and nothing else. Pure Rust, no proxy-wasm:
//! it builds and tests natively and for `wasm32-wasip1`.
//!
//! - [`p256`]: ECDSA over NIST P-256 with SHA-256 (ES256). [`p256::P256PublicKey`] is loaded
//!   once from affine coordinates or an uncompressed SEC1 point (checked: coordinates below p,
//!   point on the curve) and carries its precomputed comb tables;
//!   [`verify`](p256::P256PublicKey::verify) takes the message,
//!   [`verify_prehashed`](p256::P256PublicKey::verify_prehashed) a SHA-256 digest; a signature
//!   is exactly 64 bytes `r ‖ s` (IEEE P1363 / JWS form, never DER).
//! - [`rsa`]: RSASSA-PKCS1-v1_5 with SHA-256/384/512 and RSASSA-PSS with SHA-256, MGF1-SHA-256
//!   and a 32-byte salt. [`rsa::RsaPublicKey::new`] takes the big-endian modulus and exponent
//!   (2048–4096-bit odd modulus, odd exponent in `3..2³²`);
//!   [`verify`](rsa::RsaPublicKey::verify) takes a [`rsa::Hash`], a [`rsa::Padding`], the
//!   message and a signature exactly as long as the modulus.
//!
//! Verification is a `bool`: every malformed or out-of-range input is `false`, never a panic.
//! Only public data goes in (keys, messages, signatures), so nothing runs in constant time.
//!
//! Measured in Envoy's V8 (docs/jwt-auth.md, Performance): ES256 ≈ 530 → 60 µs against the
//! `p256` crate, RS256 ≈ 1 ms → 80–130 µs against the `rsa` crate (both through jwt-simple).
//!
//! Tested by differential tests against those crates (`src/*_tests.rs`: the arithmetic, the
//! padding checks and whole verifications on valid and corrupted signatures), by every
//! applicable Wycheproof vector (`tests/wycheproof.rs`) and by the `verify_differential`
//! cargo-fuzz target (`fuzz/`). See README.md.

pub mod p256;
pub mod rsa;

#[cfg(test)]
mod test_rng;
