//! `verify_differential`: tollgate-verify's P-256 and RSA verifiers against RustCrypto's (`p256`,
//! `rsa`: jwt-simple's own backends, the references of the crate's differential tests) on
//! fuzzer-chosen keys, messages and signatures. Both must give the same verdict on every input,
//! and neither may panic. The first byte picks one of four checks:
//!
//! - **P-256 key**: 64 bytes `x ‖ y`; our key loader and p256's must accept and refuse the same
//!   points (coordinates below p, on the curve); when both accept, a fuzzer-chosen digest and
//!   signature are judged by both.
//! - **P-256 signature**: a private scalar (refused scalars end the run) and a digest; p256 signs
//!   (RFC 6979), the fuzzer optionally swaps in the high-s twin, flips bytes, changes the
//!   length or the digest; both judge the result.
//! - **RSA signature**: one of two fixed keys (2048 bits, and 2049 bits, whose PSS encoding is a
//!   byte shorter than the modulus), one of the six schemes (PKCS#1 v1.5 and PSS with
//!   SHA-256/384/512); the `rsa` crate signs the message (PSS salt from a fuzzer seed), the
//!   fuzzer flips bytes of the *encoded message* (recovered with the public operation and
//!   re-signed with the private one, so padding, `DigestInfo`, PSS fields are all reachable)
//!   and may change the signature's length; both judge the result.
//! - **RSA arithmetic**: a fuzzer-chosen odd modulus of 2048–4096 bits (not an RSA modulus),
//!   exponent and signature: when our loader accepts the key (it refuses exactly the even or
//!   too small exponents here), its public operation must equal `num-bigint`'s `modpow`, or be
//!   refused exactly when the signature is not as long as the modulus or not below it.
//!
//! The RSA keys are test keys made for this target (primes below); they sign nothing else.

use std::sync::OnceLock;

use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use rsa::hazmat::{rsa_decrypt, rsa_encrypt};
use rsa::rand_core::{CryptoRng, RngCore};
use rsa::sha2::{Sha256, Sha384, Sha512};
use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer, Verifier};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPrivateKey};
use tollgate_verify::p256::P256PublicKey;
use tollgate_verify::rsa::{Hash, Padding, RsaPublicKey};

/// Reads the fuzzer's bytes front to back; past the end, zeros.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.0.split_at(n.min(self.0.len()));
        self.0 = tail;
        head
    }

    /// Exactly `n` bytes, zero-padded at the end.
    fn padded(&mut self, n: usize) -> Vec<u8> {
        let mut out = self.take(n).to_vec();
        out.resize(n, 0);
        out
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let src = self.take(N);
        out[..src.len()].copy_from_slice(src);
        out
    }

    fn rest(&mut self) -> &'a [u8] {
        self.take(self.0.len())
    }
}

pub fn differential(data: &[u8]) {
    let mut input = Input(data);
    match input.byte() % 4 {
        0 => p256_key(&mut input),
        1 => p256_signature(&mut input),
        2 => rsa_signature(&mut input),
        _ => rsa_public_op(&mut input),
    }
}

// ---------------------------------------------------------------------------------------------
// P-256.

/// The group order n, big-endian.
const N: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
];

/// p256's verdict (the rule of tollgate-verify's own tests).
fn p256_reference(vk: &p256::ecdsa::VerifyingKey, digest: &[u8; 32], sig: &[u8]) -> bool {
    match p256::ecdsa::Signature::from_slice(sig) {
        Ok(sig) => vk.verify_prehash(digest, &sig).is_ok(),
        Err(_) => false,
    }
}

fn p256_key(input: &mut Input) {
    let x: [u8; 32] = input.array();
    let y: [u8; 32] = input.array();
    let sec1 = [&[4u8][..], &x, &y].concat();
    let ours = P256PublicKey::from_coordinates(&x, &y);
    let reference = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1);
    assert_eq!(
        ours.is_ok(),
        reference.is_ok(),
        "key {sec1:02x?}: ours {ours:?}"
    );
    assert_eq!(
        P256PublicKey::from_sec1_uncompressed(&sec1).is_ok(),
        ours.is_ok()
    );
    if let (Ok(ours), Ok(reference)) = (ours, reference) {
        let digest: [u8; 32] = input.array();
        let sig = input.rest();
        assert_eq!(
            ours.verify_prehashed(&digest, sig),
            p256_reference(&reference, &digest, sig),
            "digest {digest:02x?} sig {sig:02x?}"
        );
    }
}

fn p256_signature(input: &mut Input) {
    let d: [u8; 32] = input.array();
    let Ok(sk) = p256::ecdsa::SigningKey::from_slice(&d) else {
        return;
    };
    let vk = *sk.verifying_key();
    let ours = P256PublicKey::from_sec1_uncompressed(vk.to_sec1_point(false).as_bytes())
        .expect("p256's public key loads");
    let mut digest: [u8; 32] = input.array();
    let sig: p256::ecdsa::Signature = sk.sign_prehash(&digest).expect("p256 signs a digest");
    let mut sig = sig.to_bytes().to_vec();
    let ops = input.byte();
    if ops & 1 != 0 {
        // The high-s twin (r, n − s): valid for both (neither normalises s).
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let v = i16::from(N[i]) - i16::from(sig[32 + i]) - borrow;
            borrow = i16::from(v < 0);
            sig[32 + i] = v.rem_euclid(256) as u8;
        }
    }
    if ops & 2 != 0 {
        digest[usize::from(input.byte()) % 32] ^= input.byte() | 1;
    }
    for _ in 0..(ops >> 4) % 8 {
        let at = usize::from(input.byte()) % sig.len();
        sig[at] ^= input.byte();
    }
    match (ops >> 2) & 3 {
        1 => sig.push(input.byte()),
        2 => {
            sig.pop();
        }
        3 => sig.insert(0, 0),
        _ => {}
    }
    assert_eq!(
        ours.verify_prehashed(&digest, &sig),
        p256_reference(&vk, &digest, &sig),
        "d {d:02x?} digest {digest:02x?} sig {sig:02x?}"
    );
}

// ---------------------------------------------------------------------------------------------
// RSA.

/// p of the 2048-bit key.
const P_2048: &[&str] = &[
    "d8c168cc3ceccba21cfc2824e73c28c1cbd06a2302f885309d6c46fe7e19c3c0bd1554fd93dfd9793f213835",
    "f4fa555f0c0976db445ae3cee2dbc30d08f6482e290829caa7700b7e1895cc63472c712bc0b5ed56cbd291ce",
    "87d4d9a0b05b40f1484a3920391fe1344c5c9ae0100b0bd7b55d652497490485ab1312a858fe543b",
];
/// q of the 2048-bit key.
const Q_2048: &[&str] = &[
    "d267229ec045664a4a8b3d8ebb5024ce42cad88e59e172e52564c59b37a357d97c8a7ea952fbc6666c73c4b1",
    "70353d762f70a9a3640e42519aceab2bb33951295bfcc4cc430ca9ff1b534cdf3a3f6257a855277e60b51cf9",
    "5cafc7c15cd197e08928c0724258d8a97f55e5796c36558d89d6a218ec940767fd7e1494c757e735",
];

/// p of the 2049-bit key.
const P_2049: &[&str] = &[
    "0196f61b48389210f50140ab6b84710a990682198ce6c9e16eecf8d821a3c9079a57cc5a62aeadb84952bdf7",
    "597d37c340abbdf6489f31cc6b76054d2e968a176cb2fef93f259d33cc8c41520af4b485f0207bad5103072c",
    "75e9977b98d956bf3f91b62e40af4a700992e6b9811fac3f2c6ca1d8ec4d604126fc655ea919a1dd7d",
];
/// q of the 2049-bit key.
const Q_2049: &[&str] = &[
    "ec94ed2a88221770be50b269906d6af80352d5f7b12e2fa0ebe2cac6ea95b958a399182b41c991ece4a1c7a6",
    "0742acc449b353727a77210f295360d18983987503d2c8f00aa15629cb3da6196e5152a4d67408e8e1a6ae45",
    "db519785a5e86981e08a94da909ba482992ec3c63a599133ce91902d257dd102558809022d9ee4e9",
];

struct Key {
    sk: RsaPrivateKey,
    ours: RsaPublicKey,
}

fn key(p: &[&str], q: &[&str]) -> Key {
    let big = |h: &[&str]| BigUint::parse_bytes(h.concat().as_bytes(), 16).expect("hex prime");
    let sk = RsaPrivateKey::from_p_q(big(p), big(q), BigUint::from(65537u32)).expect("test key");
    let ours = RsaPublicKey::new(&sk.n().to_bytes_be(), &sk.e().to_bytes_be()).expect("loads");
    Key { sk, ours }
}

fn keys() -> &'static [Key; 2] {
    static KEYS: OnceLock<[Key; 2]> = OnceLock::new();
    KEYS.get_or_init(|| [key(P_2048, Q_2048), key(P_2049, Q_2049)])
}

const SCHEMES: [(Hash, Padding); 6] = [
    (Hash::Sha256, Padding::Pkcs1v15),
    (Hash::Sha384, Padding::Pkcs1v15),
    (Hash::Sha512, Padding::Pkcs1v15),
    (Hash::Sha256, Padding::Pss),
    (Hash::Sha384, Padding::Pss),
    (Hash::Sha512, Padding::Pss),
];

/// The PSS salt, from a fuzzer seed (xorshift64*).
struct SaltRng(u64);

impl RngCore for SaltRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            *b = self.next_u64() as u8;
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for SaltRng {}

fn rsa_sign(sk: &RsaPrivateKey, scheme: (Hash, Padding), msg: &[u8], seed: u64) -> Vec<u8> {
    let sk = sk.clone();
    let mut rng = SaltRng(seed | 1);
    match scheme {
        (Hash::Sha256, Padding::Pkcs1v15) => rsa::pkcs1v15::SigningKey::<Sha256>::new(sk)
            .sign(msg)
            .to_vec(),
        (Hash::Sha384, Padding::Pkcs1v15) => rsa::pkcs1v15::SigningKey::<Sha384>::new(sk)
            .sign(msg)
            .to_vec(),
        (Hash::Sha512, Padding::Pkcs1v15) => rsa::pkcs1v15::SigningKey::<Sha512>::new(sk)
            .sign(msg)
            .to_vec(),
        (Hash::Sha256, Padding::Pss) => rsa::pss::SigningKey::<Sha256>::new(sk)
            .sign_with_rng(&mut rng, msg)
            .to_vec(),
        (Hash::Sha384, Padding::Pss) => rsa::pss::SigningKey::<Sha384>::new(sk)
            .sign_with_rng(&mut rng, msg)
            .to_vec(),
        (Hash::Sha512, Padding::Pss) => rsa::pss::SigningKey::<Sha512>::new(sk)
            .sign_with_rng(&mut rng, msg)
            .to_vec(),
    }
}

/// The `rsa` crate's verdict for the scheme (PSS: salt as long as the hash).
fn rsa_reference(sk: &RsaPrivateKey, scheme: (Hash, Padding), msg: &[u8], sig: &[u8]) -> bool {
    let pk = sk.to_public_key();
    match scheme.1 {
        Padding::Pkcs1v15 => {
            let Ok(sig) = rsa::pkcs1v15::Signature::try_from(sig) else {
                return false;
            };
            match scheme.0 {
                Hash::Sha256 => rsa::pkcs1v15::VerifyingKey::<Sha256>::new(pk).verify(msg, &sig),
                Hash::Sha384 => rsa::pkcs1v15::VerifyingKey::<Sha384>::new(pk).verify(msg, &sig),
                Hash::Sha512 => rsa::pkcs1v15::VerifyingKey::<Sha512>::new(pk).verify(msg, &sig),
            }
            .is_ok()
        }
        Padding::Pss => {
            let Ok(sig) = rsa::pss::Signature::try_from(sig) else {
                return false;
            };
            match scheme.0 {
                Hash::Sha256 => rsa::pss::VerifyingKey::<Sha256>::new(pk).verify(msg, &sig),
                Hash::Sha384 => rsa::pss::VerifyingKey::<Sha384>::new(pk).verify(msg, &sig),
                Hash::Sha512 => rsa::pss::VerifyingKey::<Sha512>::new(pk).verify(msg, &sig),
            }
            .is_ok()
        }
    }
}

/// `x` as exactly `len` big-endian bytes (`x` below 2^(8·len)).
fn be(x: &BigUint, len: usize) -> Vec<u8> {
    let raw = x.to_bytes_be();
    let mut out = vec![0u8; len.saturating_sub(raw.len())];
    out.extend_from_slice(&raw);
    out
}

fn rsa_signature(input: &mut Input) {
    let pick = input.byte();
    let key = &keys()[usize::from(pick & 1)];
    let scheme = SCHEMES[usize::from(pick >> 1) % SCHEMES.len()];
    let ops = input.byte();
    let flips: Vec<(usize, u8)> = (0..ops % 8)
        .map(|_| {
            let at = u16::from_be_bytes(input.array());
            (usize::from(at), input.byte())
        })
        .collect();
    let seed = u64::from_be_bytes(input.array());
    let msg = input.rest();
    let mut sig = rsa_sign(&key.sk, scheme, msg, seed);
    let k = key.sk.size();
    if !flips.is_empty() {
        let pk = key.sk.to_public_key();
        let em = rsa_encrypt(&pk, &BigUint::from_bytes_be(&sig)).expect("public operation");
        let mut em = be(&em, k);
        for (at, x) in flips {
            em[at % k] ^= x;
        }
        let m = BigUint::from_bytes_be(&em);
        sig = if &m < key.sk.n() {
            let s = rsa_decrypt::<SaltRng>(None, &key.sk, &m).expect("private operation");
            be(&s, k)
        } else {
            // Not below the modulus: the encoded message itself as a signature (refused).
            em
        };
    }
    match (ops >> 3) & 3 {
        1 => sig.insert(0, 0),
        2 => {
            sig.pop();
        }
        3 => sig.push(input.byte()),
        _ => {}
    }
    assert_eq!(
        key.ours.verify(scheme.0, scheme.1, msg, &sig),
        rsa_reference(&key.sk, scheme, msg, &sig),
        "{} bits {scheme:?} msg {msg:02x?} sig {sig:02x?}",
        key.ours.bits()
    );
}

fn rsa_public_op(input: &mut Input) {
    let len = 256 + usize::from(input.byte()) % 257;
    let mut n = input.padded(len);
    n[0] |= 0x80;
    n[len - 1] |= 1;
    let e: [u8; 4] = input.array();
    let sig = input.rest();
    let e_value = u32::from_be_bytes(e);
    let ours = match RsaPublicKey::new(&n, &e) {
        Ok(key) => key,
        Err(err) => {
            assert!(e_value < 3 || e_value % 2 == 0, "key refused: {err:?}");
            return;
        }
    };
    assert!(
        e_value >= 3 && e_value % 2 == 1,
        "exponent {e_value} accepted"
    );
    assert_eq!((ours.size(), ours.bits()), (len, 8 * len));
    let (big_n, big_s) = (BigUint::from_bytes_be(&n), BigUint::from_bytes_be(sig));
    let want = (sig.len() == len && big_s < big_n)
        .then(|| be(&big_s.modpow(&BigUint::from(e_value), &big_n), len));
    assert_eq!(
        ours.public_op(sig),
        want,
        "n {n:02x?} e {e_value} sig {sig:02x?}"
    );
}
