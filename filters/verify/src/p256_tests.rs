//! Tests for [`super`]: the field and scalar arithmetic against a big-integer reference
//! (`num-bigint-dig`, through the `rsa` dev-dependency) on random and edge values, the point
//! operations and the comb linear combination against the `p256` crate, the key checks, and
//! whole ECDSA verifications against `p256` (jwt-simple's backend) on many random keys and
//! messages — valid signatures, high `s`, and every kind of corrupted or out-of-range
//! signature, which both must judge alike.

use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::elliptic_curve::point::AffineCoordinates;
use p256::elliptic_curve::sec1::FromSec1Point;
use p256::elliptic_curve::{Group, PrimeField};
use p256::{AffinePoint, FieldBytes, ProjectivePoint, Scalar};
use rsa::BigUint;

use super::*;
use crate::test_rng::Rng;

/// P-256 test data from the shared generator.
trait P256Data {
    fn bytes32(&mut self) -> [u8; 32];
    fn limbs(&mut self) -> Limbs;
}

impl P256Data for Rng {
    fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for b in out.iter_mut() {
            *b = self.next() as u8;
        }
        out
    }

    /// Random limbs, sometimes with runs of all-ones or all-zero limbs (carry paths).
    fn limbs(&mut self) -> Limbs {
        let mut out = [0u32; 8];
        for l in out.iter_mut() {
            *l = match self.below(6) {
                0 => 0xFFFF_FFFF,
                1 => 0,
                _ => self.next() as u32,
            };
        }
        out
    }
}

fn big(l: &[u32]) -> BigUint {
    let mut bytes = Vec::new();
    for limb in l.iter().rev() {
        bytes.extend_from_slice(&limb.to_be_bytes());
    }
    BigUint::from_bytes_be(&bytes)
}

fn limbs_of(x: &BigUint) -> Limbs {
    let raw = x.to_bytes_be();
    assert!(raw.len() <= 32);
    let mut bytes = [0u8; 32];
    bytes[32 - raw.len()..].copy_from_slice(&raw);
    from_be(&bytes)
}

fn p() -> BigUint {
    big(&P)
}

fn n() -> BigUint {
    big(&N)
}

/// Edge values of the field (all below p).
fn field_edges() -> Vec<BigUint> {
    let p = p();
    let one = BigUint::from(1u32);
    let mut v = vec![
        BigUint::from(0u32),
        one.clone(),
        BigUint::from(2u32),
        BigUint::from(3u32),
        &p - 1u32,
        &p - 2u32,
        &p - 3u32,
        one.clone() << 255,
        (one.clone() << 256) - &p,
        (one.clone() << 224) - 1u32,
        one.clone() << 224,
        one.clone() << 192,
        (one.clone() << 96) - 1u32,
        one.clone() << 96,
        big(&GX),
        big(&GY),
    ];
    v.push((&p >> 1) + 1u32);
    v
}

fn random_field(rng: &mut Rng) -> BigUint {
    big(&rng.limbs()) % p()
}

#[test]
fn field_arithmetic_matches_big_integers() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let p = p();
    let mut values = field_edges();
    for _ in 0..400 {
        values.push(random_field(&mut rng));
    }
    for (i, a) in values.iter().enumerate() {
        let fa = Fe(limbs_of(a));
        assert_eq!(big(&fa.square().0), (a * a) % &p, "square {a}");
        assert_eq!(big(&fa.double().0), (a << 1) % &p, "double {a}");
        if *a != BigUint::from(0u32) {
            let inv = fa.invert();
            assert_eq!(big(&inv.0), a.modpow(&(&p - 2u32), &p), "invert {a}");
            assert_eq!(fa.mul(&inv), Fe::ONE);
        }
        // Pairs: every value with a few others, edges with each other.
        let partners: Vec<&BigUint> = if i < 17 {
            values.iter().take(17).collect()
        } else {
            (0..4).map(|_| &values[rng.below(values.len())]).collect()
        };
        for b in partners {
            let fb = Fe(limbs_of(b));
            assert_eq!(big(&fa.mul(&fb).0), (a * b) % &p, "{a} * {b}");
            assert_eq!(big(&fa.add(&fb).0), (a + b) % &p, "{a} + {b}");
            assert_eq!(big(&fa.sub(&fb).0), (a + &p - b) % &p, "{a} - {b}");
        }
    }
}

#[test]
fn reduction_matches_big_integers_on_any_512_bit_input() {
    let mut rng = Rng(0xfeed_0000_0000_0001);
    let p = p();
    let mut inputs: Vec<[u32; 16]> = vec![[0; 16], [0xFFFF_FFFF; 16]];
    for k in 0..16 {
        let mut one = [0u32; 16];
        one[k] = 0xFFFF_FFFF;
        inputs.push(one);
        let mut hole = [0xFFFF_FFFF; 16];
        hole[k] = 0;
        inputs.push(hole);
    }
    // (p − 1)², p·(p − 1), and products around p's structure.
    for a in [&p - 1u32, p.clone(), (BigUint::from(1u32) << 256) - 1u32] {
        for b in [&p - 1u32, p.clone(), (BigUint::from(1u32) << 256) - 1u32] {
            let prod = &a * &b;
            let raw = prod.to_bytes_be();
            let mut bytes = [0u8; 64];
            bytes[64 - raw.len()..].copy_from_slice(&raw);
            let mut c = [0u32; 16];
            for (i, limb) in c.iter_mut().enumerate() {
                let o = 60 - 4 * i;
                *limb = u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
            }
            inputs.push(c);
        }
    }
    for _ in 0..3000 {
        let (lo, hi) = (rng.limbs(), rng.limbs());
        let mut c = [0u32; 16];
        c[..8].copy_from_slice(&lo);
        c[8..].copy_from_slice(&hi);
        inputs.push(c);
    }
    for c in &inputs {
        assert_eq!(big(&reduce(c)), big(c) % &p, "reduce {:x?}", c);
    }
}

#[test]
fn wide_products_match_big_integers() {
    let mut rng = Rng(0xabcd_ef01_2345_6789);
    for _ in 0..2000 {
        let (a, b) = (rng.limbs(), rng.limbs());
        assert_eq!(big(&mul_wide(&a, &b)), big(&a) * big(&b));
        assert_eq!(big(&sqr_wide(&a)), big(&a) * big(&a));
    }
    let ones = [0xFFFF_FFFF; 8];
    assert_eq!(big(&sqr_wide(&ones)), big(&ones) * big(&ones));
}

#[test]
fn field_elements_are_read_only_below_p() {
    assert_eq!(Fe::from_bytes(&to_be(&P)), None);
    assert_eq!(Fe::from_bytes(&[0xFF; 32]), None);
    let mut p_minus_1 = P;
    p_minus_1[0] -= 1;
    let fe = Fe::from_bytes(&to_be(&p_minus_1)).unwrap();
    assert_eq!(fe.to_bytes(), to_be(&p_minus_1));
    assert_eq!(Fe::from_bytes(&[0; 32]), Some(Fe::ZERO));
}

#[test]
fn scalar_arithmetic_matches_big_integers() {
    let mut rng = Rng(0x1357_9bdf_0246_8ace);
    let n = n();
    let one = BigUint::from(1u32);
    let mut values = vec![
        one.clone(),
        BigUint::from(2u32),
        &n - 1u32,
        &n - 2u32,
        (&n >> 1) + 1u32,
        one.clone() << 255,
        (one.clone() << 128) + 1u32,
    ];
    for _ in 0..300 {
        let v = big(&rng.limbs()) % &n;
        if v != BigUint::from(0u32) {
            values.push(v);
        }
    }
    for a in &values {
        let la = limbs_of(a);
        let inv = inv_mod_n(&la).unwrap();
        assert_eq!(big(&inv), a.modpow(&(&n - 2u32), &n), "inverse of {a}");
        let b = &values[rng.below(values.len())];
        let lb = limbs_of(b);
        assert_eq!(big(&mul_mod_n(&la, &lb)), (a * b) % &n, "{a} * {b} mod n");
        assert_eq!(big(&sub_mod_n(&la, &lb)), (a + &n - b) % &n);
        assert_eq!(big(&half_mod_n(&la)), (a * ((&n + 1u32) >> 1)) % &n);
    }
    // Zero, n and above have no inverse (and are refused as s).
    assert_eq!(inv_mod_n(&[0; 8]), None);
    assert_eq!(inv_mod_n(&N), None);
    assert_eq!(inv_mod_n(&[0xFFFF_FFFF; 8]), None);
    let mut n_plus_1 = N;
    n_plus_1[0] += 1;
    assert_eq!(inv_mod_n(&n_plus_1), None);
    assert_eq!(big(&N_R2), (one << 512) % &n);
}

// ---------------------------------------------------------------------------------------------
// Points against the p256 crate.

fn scalar_of(l: &Limbs) -> Scalar {
    Scalar::from_repr(FieldBytes::from(to_be(l)))
        .into_option()
        .expect("scalar below n")
}

/// A random scalar in [1, n − 1] as limbs.
fn random_scalar(rng: &mut Rng) -> Limbs {
    loop {
        let l = rng.limbs();
        if !is_zero(&l) && lt(&l, &N) {
            return l;
        }
    }
}

fn affine_of(p: &ProjectivePoint) -> Option<Affine> {
    let a = p.to_affine();
    if bool::from(a.is_identity()) {
        return None;
    }
    let x: [u8; 32] = a.x().into();
    let y: [u8; 32] = a.y().into();
    Some(Affine {
        x: Fe::from_bytes(&x).unwrap(),
        y: Fe::from_bytes(&y).unwrap(),
    })
}

fn reference_point(a: &Affine) -> ProjectivePoint {
    let mut sec1 = vec![4u8];
    sec1.extend_from_slice(&a.x.to_bytes());
    sec1.extend_from_slice(&a.y.to_bytes());
    ProjectivePoint::from(AffinePoint::from_sec1_bytes(&sec1).unwrap())
}

#[test]
fn generator_is_p256s() {
    assert_eq!(affine_of(&ProjectivePoint::GENERATOR), Some(Affine::G));
    assert!(Affine::G.is_on_curve());
}

#[test]
fn doubling_and_mixed_addition_match_p256() {
    let mut rng = Rng(0x2468_ace0_1357_9bdf);
    for _ in 0..100 {
        let (k1, k2) = (random_scalar(&mut rng), random_scalar(&mut rng));
        let p1 = ProjectivePoint::GENERATOR * scalar_of(&k1);
        let p2 = ProjectivePoint::GENERATOR * scalar_of(&k2);
        let (a1, a2) = (affine_of(&p1).unwrap(), affine_of(&p2).unwrap());
        // A Jacobian input with Z ≠ 1: a1 after a few steps.
        let j1 = a1.to_jacobian().double().add_affine(&a2);
        let r1 = p1.double() + p2;
        assert_eq!(j1.to_affine(), affine_of(&r1));
        assert_eq!(j1.double().to_affine(), affine_of(&r1.double()));
        assert_eq!(j1.add_affine(&a1).to_affine(), affine_of(&(r1 + p1)));
        // P + P through the addition is a doubling; P + (−P) the identity.
        let r1a = affine_of(&r1).unwrap();
        assert_eq!(j1.add_affine(&r1a).to_affine(), affine_of(&r1.double()));
        let neg = Affine {
            x: r1a.x,
            y: Fe::ZERO.sub(&r1a.y),
        };
        assert!(j1.add_affine(&neg).is_identity());
        assert_eq!(
            Jacobian::IDENTITY.add_affine(&a2).to_affine(),
            Some(a2),
            "identity + Q"
        );
        assert!(Jacobian::IDENTITY.double().is_identity());
    }
}

/// u1·G + u2·Q by our combs and by p256.
fn check_lincomb(u1: &Limbs, u2: &Limbs, q: &Affine, q_comb: &Comb) {
    let ours = lincomb(u1, g_comb().unwrap(), u2, q_comb).unwrap();
    let reference = ProjectivePoint::GENERATOR * scalar_of(u1) + reference_point(q) * scalar_of(u2);
    assert_eq!(
        ours.to_affine(),
        affine_of(&reference),
        "u1 {u1:x?} u2 {u2:x?}"
    );
}

#[test]
fn comb_linear_combination_matches_p256() {
    let mut rng = Rng(0x0f0f_0f0f_1234_5678);
    for _ in 0..12 {
        let d = random_scalar(&mut rng);
        let q = affine_of(&(ProjectivePoint::GENERATOR * scalar_of(&d))).unwrap();
        let comb = Comb::new(&q).unwrap();
        for _ in 0..20 {
            check_lincomb(
                &random_scalar(&mut rng),
                &random_scalar(&mut rng),
                &q,
                &comb,
            );
        }
        let mut n_minus_1 = N;
        n_minus_1[0] -= 1;
        for (u1, u2) in [
            ([0; 8], random_scalar(&mut rng)),
            (random_scalar(&mut rng), [0; 8]),
            ([1, 0, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0]),
            (n_minus_1, n_minus_1),
            (
                [0xFFFF_FFFF, 0, 0, 0, 0, 0, 0, 0],
                [0, 0, 0, 0, 0, 0, 0, 0x8000_0000],
            ),
        ] {
            check_lincomb(&u1, &u2, &q, &comb);
        }
    }
    // Q = G and u1 = u2: every addition of a G entry is followed by the same Q entry (the
    // doubling case of the addition); Q = −G and u1 = u2: they cancel (the identity case).
    let g_comb_again = Comb::new(&Affine::G).unwrap();
    let minus_g = Affine {
        x: Affine::G.x,
        y: Fe::ZERO.sub(&Affine::G.y),
    };
    let minus_g_comb = Comb::new(&minus_g).unwrap();
    for _ in 0..10 {
        let u = random_scalar(&mut rng);
        check_lincomb(&u, &u, &Affine::G, &g_comb_again);
        let sum = lincomb(&u, g_comb().unwrap(), &u, &minus_g_comb).unwrap();
        assert!(sum.is_identity());
        let v = random_scalar(&mut rng);
        check_lincomb(&u, &v, &minus_g, &minus_g_comb);
    }
}

// ---------------------------------------------------------------------------------------------
// Keys.

#[test]
fn keys_off_the_curve_or_out_of_range_are_refused() {
    let mut rng = Rng(0x7777_0000_1111_2222);
    let (gx, gy) = (to_be(&GX), to_be(&GY));
    assert!(P256PublicKey::from_coordinates(&gx, &gy).is_ok());
    let mut bad_y = gy;
    bad_y[31] ^= 1;
    assert_eq!(
        P256PublicKey::from_coordinates(&gx, &bad_y).unwrap_err(),
        P256KeyError::NotOnCurve
    );
    // (0, 0) stands for the identity in some encodings: not on the curve here.
    assert_eq!(
        P256PublicKey::from_coordinates(&[0; 32], &[0; 32]).unwrap_err(),
        P256KeyError::NotOnCurve
    );
    // G's y plus p does not fit in 32 bytes; x + p does not either; x = p, 2²⁵⁶ − 1 refused.
    assert_eq!(
        P256PublicKey::from_coordinates(&to_be(&P), &gy).unwrap_err(),
        P256KeyError::Coordinate
    );
    assert_eq!(
        P256PublicKey::from_coordinates(&gx, &[0xFF; 32]).unwrap_err(),
        P256KeyError::Coordinate
    );
    // −G is fine; so are random valid keys. Random coordinates are refused like p256 refuses
    // them.
    let neg_gy = Fe::ZERO.sub(&Fe(GY)).to_bytes();
    assert!(P256PublicKey::from_coordinates(&gx, &neg_gy).is_ok());
    for _ in 0..200 {
        let (x, y) = (rng.bytes32(), rng.bytes32());
        let mut sec1 = vec![4u8];
        sec1.extend_from_slice(&x);
        sec1.extend_from_slice(&y);
        let reference = VerifyingKey::from_sec1_bytes(&sec1).is_ok();
        assert_eq!(
            P256PublicKey::from_sec1_uncompressed(&sec1).is_ok(),
            reference
        );
        assert!(!reference);
    }
    // Encodings other than uncompressed SEC1.
    let mut sec1 = vec![4u8];
    sec1.extend_from_slice(&gx);
    sec1.extend_from_slice(&gy);
    assert!(P256PublicKey::from_sec1_uncompressed(&sec1).is_ok());
    assert_eq!(
        P256PublicKey::from_sec1_uncompressed(&sec1[..64]).unwrap_err(),
        P256KeyError::Encoding
    );
    let mut compressed = vec![2u8 | (gy[31] & 1)];
    compressed.extend_from_slice(&gx);
    assert_eq!(
        P256PublicKey::from_sec1_uncompressed(&compressed).unwrap_err(),
        P256KeyError::Encoding
    );
    assert_eq!(
        P256PublicKey::from_sec1_uncompressed(&[0]).unwrap_err(),
        P256KeyError::Encoding
    );
    let mut hybrid = sec1.clone();
    hybrid[0] = 6;
    assert_eq!(
        P256PublicKey::from_sec1_uncompressed(&hybrid).unwrap_err(),
        P256KeyError::Encoding
    );
}

// ---------------------------------------------------------------------------------------------
// ECDSA against p256.

struct Pair {
    sk: SigningKey,
    vk: VerifyingKey,
    ours: P256PublicKey,
}

fn pair(d: &Limbs) -> Pair {
    let sk = SigningKey::from_bytes(&FieldBytes::from(to_be(d))).unwrap();
    let vk = *sk.verifying_key();
    let ours = P256PublicKey::from_sec1_uncompressed(vk.to_sec1_point(false).as_bytes()).unwrap();
    Pair { sk, vk, ours }
}

fn reference_verdict(vk: &VerifyingKey, digest: &[u8; 32], sig: &[u8]) -> bool {
    match Signature::from_slice(sig) {
        Ok(sig) => vk.verify_prehash(digest, &sig).is_ok(),
        Err(_) => false,
    }
}

/// Our verdict and p256's on one (digest, signature), which must agree; returns it.
fn judge(pair: &Pair, digest: &[u8; 32], sig: &[u8]) -> bool {
    let ours = pair.ours.verify_prehashed(digest, sig);
    let reference = reference_verdict(&pair.vk, digest, sig);
    assert_eq!(ours, reference, "digest {digest:x?} sig {sig:x?}");
    ours
}

fn with_r(sig: &[u8; 64], r: &Limbs) -> [u8; 64] {
    let mut out = *sig;
    out[..32].copy_from_slice(&to_be(r));
    out
}

fn with_s(sig: &[u8; 64], s: &Limbs) -> [u8; 64] {
    let mut out = *sig;
    out[32..].copy_from_slice(&to_be(s));
    out
}

#[test]
fn signatures_are_judged_like_p256_valid_and_corrupted() {
    let mut rng = Rng(0xec25_6000_0000_0001);
    let mut keys: Vec<Pair> = (0..16).map(|_| pair(&random_scalar(&mut rng))).collect();
    // Extreme keys: d = 1 (Q = G), d = n − 1 (Q = −G), d = 2.
    let mut n_minus_1 = N;
    n_minus_1[0] -= 1;
    keys.push(pair(&[1, 0, 0, 0, 0, 0, 0, 0]));
    keys.push(pair(&n_minus_1));
    keys.push(pair(&[2, 0, 0, 0, 0, 0, 0, 0]));
    let (mut accepted, mut refused) = (0, 0);
    for k in 0..keys.len() {
        for m in 0..6 {
            let message = format!("eyJhbGciOiJFUzI1NiJ9.message-{k}-{m}-{}", rng.next());
            let digest: [u8; 32] = Sha256::digest(message.as_bytes()).into();
            let sig: Signature = keys[k].sk.sign_prehash(&digest).unwrap();
            let sig: [u8; 64] = sig.to_bytes().into();
            assert!(judge(&keys[k], &digest, &sig), "valid signature refused");
            assert!(keys[k].ours.verify(message.as_bytes(), &sig));
            accepted += 1;
            let (r, s) = (
                from_be(sig[..32].try_into().unwrap()),
                from_be(sig[32..].try_into().unwrap()),
            );
            // High s: n − s verifies too (p256 does not normalise s on verification).
            let high = with_s(&sig, &sub_mod_n(&[0; 8], &s));
            assert!(judge(&keys[k], &digest, &high), "n − s refused");
            accepted += 1;
            let mut variants: Vec<Vec<u8>> = Vec::new();
            for _ in 0..8 {
                let mut v = sig;
                let bit = rng.below(512);
                v[bit / 8] ^= 1 << (bit % 8);
                variants.push(v.to_vec());
            }
            let one = [1, 0, 0, 0, 0, 0, 0, 0];
            let (r_plus_n, _) = adc(&r, &N);
            let (s_plus_n, s_carry) = adc(&s, &N);
            for bad_r in [[0; 8], N, one, n_minus_1, [0xFFFF_FFFF; 8], r_plus_n, s] {
                variants.push(with_r(&sig, &bad_r).to_vec());
            }
            for bad_s in [[0; 8], N, one, n_minus_1, [0xFFFF_FFFF; 8], r] {
                variants.push(with_s(&sig, &bad_s).to_vec());
            }
            if s_carry == 0 {
                variants.push(with_s(&sig, &s_plus_n).to_vec());
            }
            variants.push(sig[..63].to_vec());
            variants.push([&sig[..], &[0]].concat());
            variants.push([&[0], &sig[..]].concat());
            variants.push(Vec::new());
            variants.push(vec![0; 64]);
            // Another key's valid signature over the same digest.
            let other = &keys[(k + 1) % keys.len()];
            let foreign: Signature = other.sk.sign_prehash(&digest).unwrap();
            variants.push(foreign.to_bytes().to_vec());
            // None of these is a valid signature: both must refuse every one.
            for v in &variants {
                assert!(!judge(&keys[k], &digest, v), "variant accepted: {v:x?}");
                refused += 1;
            }
            // The same signature over another message.
            let mut other_digest = digest;
            other_digest[rng.below(32)] ^= 1 << rng.below(8);
            assert!(!judge(&keys[k], &other_digest, &sig));
        }
    }
    assert_eq!(accepted, 2 * keys.len() * 6);
    assert!(refused >= 25 * keys.len() * 6);
}

#[test]
fn digests_at_or_above_n_are_reduced_like_p256() {
    let mut rng = Rng(0xd16e_57ab_0000_0001);
    let key = pair(&random_scalar(&mut rng));
    let mut n_plus_5 = N;
    n_plus_5[0] += 5;
    for digest in [[0xFF; 32], to_be(&N), to_be(&n_plus_5), [0; 32]] {
        let sig: Signature = key.sk.sign_prehash(&digest).unwrap();
        let sig: [u8; 64] = sig.to_bytes().into();
        assert!(judge(&key, &digest, &sig));
        let mut flipped = digest;
        flipped[31] ^= 2;
        assert!(!judge(&key, &flipped, &sig));
    }
}

/// A key and signature whose R has `x ≥ n`, so that `r = x − n`: the `(r + n)·Z²` branch.
/// Built without knowing any discrete logarithm: pick R with such an x, random s and digest,
/// and solve `s·R = z·G + r·Q` for `Q`.
#[test]
fn the_r_plus_n_case_is_accepted_like_p256() {
    let mut rng = Rng(0x0a11_ce00_0000_0001);
    let mut found = 0;
    let mut x = N;
    while found < 4 {
        x = adc(&x, &[1 + rng.below(1000) as u32, 0, 0, 0, 0, 0, 0, 0]).0;
        let mut compressed = vec![2u8];
        compressed.extend_from_slice(&to_be(&x));
        let Some(r_point) = AffinePoint::from_sec1_bytes(&compressed).ok() else {
            continue;
        };
        found += 1;
        let r = sbb(&x, &N).0;
        let s = random_scalar(&mut rng);
        let digest = rng.bytes32();
        let z = {
            let v = from_be(&digest);
            if lt(&v, &N) {
                v
            } else {
                sbb(&v, &N).0
            }
        };
        let (rs, ss, zs) = (scalar_of(&r), scalar_of(&s), scalar_of(&z));
        let q = (ProjectivePoint::from(r_point) * ss - ProjectivePoint::GENERATOR * zs)
            * rs.invert().unwrap();
        let q = q.to_affine();
        let vk = VerifyingKey::from_affine(q).unwrap();
        let ours =
            P256PublicKey::from_sec1_uncompressed(vk.to_sec1_point(false).as_bytes()).unwrap();
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&to_be(&r));
        sig[32..].copy_from_slice(&to_be(&s));
        assert!(ours.verify_prehashed(&digest, &sig), "r + n case refused");
        assert!(reference_verdict(&vk, &digest, &sig));
        // x itself as r is ≥ n: refused by both.
        let mut big_r = sig;
        big_r[..32].copy_from_slice(&to_be(&x));
        assert!(!ours.verify_prehashed(&digest, &big_r));
        assert!(!reference_verdict(&vk, &digest, &big_r));
    }
}

#[test]
fn the_comb_shape_covers_256_bits() {
    assert_eq!(TEETH * COMBS * SPACING, 256);
    assert_eq!(g_comb().unwrap().tables.len(), COMBS);
}

/// A timing probe, not run by default: the cost of a field multiplication and squaring, `s⁻¹`,
/// one verification, one key load (its tables) and p256's verification, best of 7, in whatever
/// runtime runs the test binary — natively, or in V8 by building the tests for
/// `wasm32-wasip1` and running them under Node's WASI (docs/jwt-auth.md, Performance).
/// `cargo test -p tollgate-verify --release --lib -- --ignored timing_probe --nocapture`
#[test]
#[ignore]
fn timing_probe() {
    use std::time::{Duration, Instant};
    fn best(f: &mut dyn FnMut() -> Duration) -> Duration {
        (0..7).map(|_| f()).min().unwrap()
    }
    let mut rng = Rng(42);
    let a = Fe(limbs_of(&random_field(&mut rng)));
    let b = Fe(limbs_of(&random_field(&mut rng)));
    let iters = 200_000;
    let mut x = a;
    let m = best(&mut || {
        let t = Instant::now();
        for _ in 0..iters {
            x = x.mul(&b);
        }
        t.elapsed() / iters
    });
    let q = best(&mut || {
        let t = Instant::now();
        for _ in 0..iters {
            x = x.square();
        }
        t.elapsed() / iters
    });
    let s = random_scalar(&mut rng);
    let mut acc = 0u32;
    let inv = best(&mut || {
        let t = Instant::now();
        for _ in 0..2000 {
            acc ^= inv_mod_n(&s).unwrap()[0];
        }
        t.elapsed() / 2000
    });
    let key = pair(&random_scalar(&mut rng));
    let digest = rng.bytes32();
    let sig: Signature = key.sk.sign_prehash(&digest).unwrap();
    let sig: [u8; 64] = sig.to_bytes().into();
    let v = best(&mut || {
        let t = Instant::now();
        for _ in 0..300 {
            assert!(key.ours.verify_prehashed(&digest, &sig));
        }
        t.elapsed() / 300
    });
    let (kx, ky) = key.ours.coordinates();
    let kl = best(&mut || {
        let t = Instant::now();
        for _ in 0..5 {
            P256PublicKey::from_coordinates(&kx, &ky).unwrap();
        }
        t.elapsed() / 5
    });
    let r = best(&mut || {
        let t = Instant::now();
        for _ in 0..20 {
            assert!(key
                .vk
                .verify_prehash(&digest, &Signature::from_slice(&sig).unwrap())
                .is_ok());
        }
        t.elapsed() / 20
    });
    eprintln!(
        "mul {m:?} sqr {q:?} inv_n {inv:?} verify {v:?} key-load {kl:?} p256-verify {r:?} ({} {acc})",
        x.0[0]
    );
}
