//! ES256 signature verification (ECDSA over NIST P-256 with SHA-256): our own, built for wasm32.
//!
//! Why not the `p256` crate (through jwt-simple): its verification is a generic wNAF linear
//! combination `u1·G + u2·Q` over crypto-bigint field arithmetic, with 256 doublings per
//! signature and no table for the key; inside Envoy's V8 one ES256 verification cost about
//! 0.5 ms, and costs ≈ 60 µs with this module (docs/jwt-auth.md, Performance). Here:
//!
//! - **Field** (mod p = 2²⁵⁶ − 2²²⁴ + 2¹⁹² + 2⁹⁶ − 1): eight 32-bit limbs (a 32×32→64-bit
//!   product is one native `i64.mul` in wasm; no `u128` anywhere), schoolbook multiplication
//!   (36 products for a square), and the NIST fast (Solinas) reduction: the 512-bit product's
//!   32-bit words are added and subtracted into eight signed 64-bit sums (FIPS 186-4 D.2.3),
//!   carried, and the small overflow folded back with 2²⁵⁶ ≡ 2²²⁴ − 2¹⁹² − 2⁹⁶ + 1. Elements
//!   are always fully reduced. Multiplication and squaring stay out of line: inlining them
//!   into the point formulas added 140 KB of wasm for no measurable gain in V8.
//! - **Points**: Jacobian coordinates with `a = −3` doubling (3M + 5S) and mixed
//!   Jacobian + affine addition (7M + 4S), both handling every special case (infinity, P + P,
//!   P − P): variable time, since everything verified is public.
//! - **`u1·G + u2·Q`** by fixed-base combs: for each base, [`COMBS`] tables of all 2⁸ sums of
//!   eight of its multiples `2^(m·SPACING)·P`, affine (batch inversion). G's tables are built
//!   once per VM, lazily ([`OnceLock`]); a key's are built when the key is loaded and live in
//!   the key (keys serve many tokens). One verification is then [`SPACING`] − 1 doublings and
//!   at most 64 mixed additions, instead of 256 doublings and ~100 additions.
//! - **Scalars** (mod n): `s⁻¹` by the binary extended Euclidean algorithm, `u1`, `u2` by
//!   Montgomery multiplication.
//! - **Final check without an inversion**: `R.x ≡ r (mod n)` means `X = r·Z²` or, when
//!   `r + n < p`, `X = (r + n)·Z²`; `R = ∞` is refused.
//!
//! The rules are those of the `p256` crate (the reference of the differential tests in
//! `src/p256_tests.rs`): a signature is exactly 64 bytes `r ‖ s`, big-endian; `r` and `s` must
//! be in `[1, n − 1]`; high `s` is accepted (p256 does not normalise `s` on verification, and
//! neither does RFC 7518); the digest is the SHA-256 of the JWS signing input, read as a
//! big-endian integer and reduced mod n. A key is an affine point with coordinates below p on
//! the curve (never the identity, which has no affine form); every such point has order n
//! (cofactor 1).

use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};

/// 256-bit numbers: eight 32-bit limbs, least significant first.
type Limbs = [u32; 8];

/// The field prime p = 2²⁵⁶ − 2²²⁴ + 2¹⁹² + 2⁹⁶ − 1.
const P: Limbs = [
    0xFFFF_FFFF,
    0xFFFF_FFFF,
    0xFFFF_FFFF,
    0x0000_0000,
    0x0000_0000,
    0x0000_0000,
    0x0000_0001,
    0xFFFF_FFFF,
];
/// The group order n.
const N: Limbs = [
    0xFC63_2551,
    0xF3B9_CAC2,
    0xA717_9E84,
    0xBCE6_FAAD,
    0xFFFF_FFFF,
    0xFFFF_FFFF,
    0x0000_0000,
    0xFFFF_FFFF,
];
/// `−n⁻¹ mod 2³²` (Montgomery multiplication mod n).
const N0_INV: u32 = 0xEE00_BC4F;
/// `2⁵¹² mod n`: Montgomery multiplication by it leaves Montgomery form.
const N_R2: Limbs = [
    0xBE79_EEA2,
    0x8324_4C95,
    0x49BD_6FA6,
    0x4699_799C,
    0x2B6B_EC59,
    0x2845_B239,
    0xF3D9_5620,
    0x66E1_2D94,
];
/// The curve's `b` (y² = x³ − 3x + b).
const B: Limbs = [
    0x27D2_604B,
    0x3BCE_3C3E,
    0xCC53_B0F6,
    0x651D_06B0,
    0x7698_86BC,
    0xB3EB_BD55,
    0xAA3A_93E7,
    0x5AC6_35D8,
];
/// The generator's coordinates.
const GX: Limbs = [
    0xD898_C296,
    0xF4A1_3945,
    0x2DEB_33A0,
    0x7703_7D81,
    0x63A4_40F2,
    0xF8BC_E6E5,
    0xE12C_4247,
    0x6B17_D1F2,
];
const GY: Limbs = [
    0x37BF_51F5,
    0xCBB6_4068,
    0x6B31_5ECE,
    0x2BCE_3357,
    0x7C0F_9E16,
    0x8EE7_EB4A,
    0xFE1A_7F9B,
    0x4FE3_42E2,
];

/// Teeth per comb: each table holds the 2⁸ sums of eight multiples of its base.
pub const TEETH: usize = 8;
/// Combs (tables) per base point.
pub const COMBS: usize = 4;
/// Distance in bits between two teeth of a comb: the doublings of one verification.
pub const SPACING: usize = 256 / (TEETH * COMBS);
const ENTRIES: usize = 1 << TEETH;

// ---------------------------------------------------------------------------------------------
// 256-bit helpers.

#[inline(always)]
fn adc(a: &Limbs, b: &Limbs) -> (Limbs, u32) {
    let mut r = [0u32; 8];
    let mut carry = 0u64;
    for i in 0..8 {
        let t = a[i] as u64 + b[i] as u64 + carry;
        r[i] = t as u32;
        carry = t >> 32;
    }
    (r, carry as u32)
}

#[inline(always)]
fn sbb(a: &Limbs, b: &Limbs) -> (Limbs, u32) {
    let mut r = [0u32; 8];
    let mut borrow = 0u64;
    for i in 0..8 {
        let t = (a[i] as u64).wrapping_sub(b[i] as u64 + borrow);
        r[i] = t as u32;
        borrow = t >> 63;
    }
    (r, borrow as u32)
}

/// `a < b`.
#[inline(always)]
fn lt(a: &Limbs, b: &Limbs) -> bool {
    for i in (0..8).rev() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
    }
    false
}

fn is_zero(a: &Limbs) -> bool {
    a.iter().all(|&l| l == 0)
}

/// Big-endian bytes to limbs.
fn from_be(bytes: &[u8; 32]) -> Limbs {
    let mut r = [0u32; 8];
    for (i, chunk) in bytes.chunks_exact(4).enumerate() {
        let v = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        r[7 - i] = v;
    }
    r
}

fn to_be(a: &Limbs) -> [u8; 32] {
    let mut out = [0u8; 32];
    for i in 0..8 {
        out[4 * i..4 * i + 4].copy_from_slice(&a[7 - i].to_be_bytes());
    }
    out
}

/// The 512-bit product.
#[inline(always)]
fn mul_wide(a: &Limbs, b: &Limbs) -> [u32; 16] {
    let mut c = [0u32; 16];
    for i in 0..8 {
        let ai = a[i] as u64;
        let mut carry = 0u64;
        for j in 0..8 {
            let t = ai * b[j] as u64 + c[i + j] as u64 + carry;
            c[i + j] = t as u32;
            carry = t >> 32;
        }
        c[i + 8] = carry as u32;
    }
    c
}

/// The 512-bit square: the cross products once, doubled, plus the squares.
#[inline(always)]
fn sqr_wide(a: &Limbs) -> [u32; 16] {
    let mut c = [0u32; 16];
    for i in 0..7 {
        let ai = a[i] as u64;
        let mut carry = 0u64;
        for j in i + 1..8 {
            let t = ai * a[j] as u64 + c[i + j] as u64 + carry;
            c[i + j] = t as u32;
            carry = t >> 32;
        }
        c[i + 8] = carry as u32;
    }
    let mut top = 0u32;
    for limb in c.iter_mut() {
        let next = *limb >> 31;
        *limb = (*limb << 1) | top;
        top = next;
    }
    let mut carry = 0u64;
    for i in 0..8 {
        let t = a[i] as u64 * a[i] as u64 + c[2 * i] as u64 + carry;
        c[2 * i] = t as u32;
        let t = c[2 * i + 1] as u64 + (t >> 32);
        c[2 * i + 1] = t as u32;
        carry = t >> 32;
    }
    c
}

// ---------------------------------------------------------------------------------------------
// The field mod p.

/// An element of the field, always fully reduced (`< p`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) struct Fe(Limbs);

impl Fe {
    pub(crate) const ZERO: Fe = Fe([0; 8]);
    pub(crate) const ONE: Fe = Fe([1, 0, 0, 0, 0, 0, 0, 0]);

    /// From big-endian bytes; `None` unless the value is below p.
    pub(crate) fn from_bytes(bytes: &[u8; 32]) -> Option<Fe> {
        let v = from_be(bytes);
        lt(&v, &P).then_some(Fe(v))
    }

    pub(crate) fn to_bytes(self) -> [u8; 32] {
        to_be(&self.0)
    }

    pub(crate) fn is_zero(&self) -> bool {
        is_zero(&self.0)
    }

    #[inline]
    pub(crate) fn add(&self, b: &Fe) -> Fe {
        let (s, carry) = adc(&self.0, &b.0);
        if carry != 0 || !lt(&s, &P) {
            Fe(sbb(&s, &P).0)
        } else {
            Fe(s)
        }
    }

    #[inline]
    pub(crate) fn sub(&self, b: &Fe) -> Fe {
        let (d, borrow) = sbb(&self.0, &b.0);
        if borrow != 0 {
            Fe(adc(&d, &P).0)
        } else {
            Fe(d)
        }
    }

    #[inline]
    pub(crate) fn double(&self) -> Fe {
        self.add(self)
    }

    #[inline(never)]
    pub(crate) fn mul(&self, b: &Fe) -> Fe {
        Fe(reduce(&mul_wide(&self.0, &b.0)))
    }

    #[inline(never)]
    pub(crate) fn square(&self) -> Fe {
        Fe(reduce(&sqr_wide(&self.0)))
    }

    /// `self^(p−2)` = `self⁻¹` (Fermat); zero for zero. Only used when building tables.
    pub(crate) fn invert(&self) -> Fe {
        let mut e = P;
        e[0] -= 2;
        let mut acc = Fe::ONE;
        for i in (0..256).rev() {
            acc = acc.square();
            if (e[i / 32] >> (i % 32)) & 1 == 1 {
                acc = acc.mul(self);
            }
        }
        acc
    }
}

/// `c mod p` for any 512-bit `c` (NIST fast reduction for P-256, FIPS 186-4 D.2.3): the
/// result is `T + 2·S1 + 2·S2 + S3 + S4 − D1 − D2 − D3 − D4`, computed word by word in signed
/// 64-bit sums, then carried; the carry out of bit 256 is folded back in.
#[inline(always)]
pub(crate) fn reduce(c: &[u32; 16]) -> Limbs {
    let c: [i64; 16] = c.map(|w| w as i64);
    let w = [
        c[0] + c[8] + c[9] - c[11] - c[12] - c[13] - c[14],
        c[1] + c[9] + c[10] - c[12] - c[13] - c[14] - c[15],
        c[2] + c[10] + c[11] - c[13] - c[14] - c[15],
        c[3] + 2 * (c[11] + c[12]) + c[13] - c[15] - c[8] - c[9],
        c[4] + 2 * (c[12] + c[13]) + c[14] - c[9] - c[10],
        c[5] + 2 * (c[13] + c[14]) + c[15] - c[10] - c[11],
        c[6] + 3 * c[14] + 2 * c[15] + c[13] - c[8] - c[9],
        c[7] + 3 * c[15] + c[8] - c[10] - c[11] - c[12] - c[13],
    ];
    let (mut r, mut k) = carry_words(w);
    // r + k·2²⁵⁶ with |k| ≤ 7; 2²⁵⁶ ≡ 2²²⁴ − 2¹⁹² − 2⁹⁶ + 1 (mod p), i.e. subtract k·p.
    // The first fold leaves a carry of at most ±1 (2²⁵⁶ − p < 2²²⁴), the next one none.
    while k != 0 {
        let mut w = r.map(|x| x as i64);
        w[0] += k;
        w[3] -= k;
        w[6] -= k;
        w[7] += k;
        (r, k) = carry_words(w);
    }
    if lt(&r, &P) {
        r
    } else {
        sbb(&r, &P).0
    }
}

/// Carries signed 64-bit word sums into limbs; returns them and the carry out (signed).
#[inline(always)]
fn carry_words(w: [i64; 8]) -> (Limbs, i64) {
    let mut r = [0u32; 8];
    let mut carry = 0i64;
    for i in 0..8 {
        let t = w[i] + carry;
        r[i] = t as u32;
        carry = t >> 32;
    }
    (r, carry)
}

// ---------------------------------------------------------------------------------------------
// Scalars mod n.

/// `a·b·2⁻²⁵⁶ mod n` (Montgomery, CIOS) for `a, b < n`.
pub(crate) fn mont_mul_n(a: &Limbs, b: &Limbs) -> Limbs {
    let mut t = [0u32; 10];
    for &bi in b {
        let bi = bi as u64;
        let mut carry = 0u64;
        for j in 0..8 {
            let x = t[j] as u64 + a[j] as u64 * bi + carry;
            t[j] = x as u32;
            carry = x >> 32;
        }
        let x = t[8] as u64 + carry;
        t[8] = x as u32;
        t[9] = (x >> 32) as u32;
        let m = t[0].wrapping_mul(N0_INV) as u64;
        let x = t[0] as u64 + m * N[0] as u64;
        let mut carry = x >> 32;
        for j in 1..8 {
            let x = t[j] as u64 + m * N[j] as u64 + carry;
            t[j - 1] = x as u32;
            carry = x >> 32;
        }
        let x = t[8] as u64 + carry;
        t[7] = x as u32;
        t[8] = t[9] + (x >> 32) as u32;
    }
    let r = [t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]];
    if t[8] != 0 || !lt(&r, &N) {
        sbb(&r, &N).0
    } else {
        r
    }
}

/// `a·b mod n` for `a, b < n`.
pub(crate) fn mul_mod_n(a: &Limbs, b: &Limbs) -> Limbs {
    mont_mul_n(&mont_mul_n(a, b), &N_R2)
}

/// `x/2 mod n` for `x < n`.
fn half_mod_n(x: &Limbs) -> Limbs {
    let (v, top) = if x[0] & 1 == 0 { (*x, 0) } else { adc(x, &N) };
    shr1(&v, top)
}

fn shr1(v: &Limbs, top: u32) -> Limbs {
    let mut r = [0u32; 8];
    for i in 0..8 {
        let hi = if i == 7 { top } else { v[i + 1] };
        r[i] = (v[i] >> 1) | (hi << 31);
    }
    r
}

/// `a − b mod n` for `a, b < n`.
fn sub_mod_n(a: &Limbs, b: &Limbs) -> Limbs {
    let (d, borrow) = sbb(a, b);
    if borrow != 0 {
        adc(&d, &N).0
    } else {
        d
    }
}

/// `a⁻¹ mod n` by the binary extended Euclidean algorithm (variable time) for `a` in
/// `[1, n − 1]`; `None` otherwise.
pub(crate) fn inv_mod_n(a: &Limbs) -> Option<Limbs> {
    if is_zero(a) || !lt(a, &N) {
        return None;
    }
    const ONE: Limbs = [1, 0, 0, 0, 0, 0, 0, 0];
    // Invariants: x1·a ≡ u and x2·a ≡ v (mod n); gcd(u, v) = 1 since n is prime.
    let (mut u, mut v) = (*a, N);
    let (mut x1, mut x2) = (ONE, [0u32; 8]);
    // Each round halves u or v at least once: ≤ 512 rounds; the bound only guards the loop.
    for _ in 0..1024 {
        if u == ONE {
            return Some(x1);
        }
        if v == ONE {
            return Some(x2);
        }
        if is_zero(&u) || is_zero(&v) {
            return None;
        }
        while u[0] & 1 == 0 {
            u = shr1(&u, 0);
            x1 = half_mod_n(&x1);
        }
        while v[0] & 1 == 0 {
            v = shr1(&v, 0);
            x2 = half_mod_n(&x2);
        }
        if lt(&u, &v) {
            v = sbb(&v, &u).0;
            x2 = sub_mod_n(&x2, &x1);
        } else {
            u = sbb(&u, &v).0;
            x1 = sub_mod_n(&x1, &x2);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Points.

/// An affine point (never the identity).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) struct Affine {
    pub(crate) x: Fe,
    pub(crate) y: Fe,
}

/// A point in Jacobian coordinates `(X/Z², Y/Z³)`; `Z = 0` is the identity.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Jacobian {
    pub(crate) x: Fe,
    pub(crate) y: Fe,
    pub(crate) z: Fe,
}

impl Affine {
    /// The generator G.
    pub(crate) const G: Affine = Affine {
        x: Fe(GX),
        y: Fe(GY),
    };

    /// Whether `y² = x³ − 3x + b`.
    pub(crate) fn is_on_curve(&self) -> bool {
        let x3 = self.x.square().mul(&self.x);
        let three_x = self.x.double().add(&self.x);
        self.y.square() == x3.sub(&three_x).add(&Fe(B))
    }

    pub(crate) fn to_jacobian(self) -> Jacobian {
        Jacobian {
            x: self.x,
            y: self.y,
            z: Fe::ONE,
        }
    }
}

impl Jacobian {
    pub(crate) const IDENTITY: Jacobian = Jacobian {
        x: Fe::ONE,
        y: Fe::ONE,
        z: Fe::ZERO,
    };

    pub(crate) fn is_identity(&self) -> bool {
        self.z.is_zero()
    }

    /// `2·self` (dbl-2001-b, a = −3: 3M + 5S).
    #[inline]
    pub(crate) fn double(&self) -> Jacobian {
        if self.is_identity() || self.y.is_zero() {
            return Jacobian::IDENTITY;
        }
        let delta = self.z.square();
        let gamma = self.y.square();
        let beta = self.x.mul(&gamma);
        let t = self.x.sub(&delta).mul(&self.x.add(&delta));
        let alpha = t.double().add(&t);
        let beta4 = beta.double().double();
        let x3 = alpha.square().sub(&beta4.double());
        let z3 = self.y.add(&self.z).square().sub(&gamma).sub(&delta);
        let gamma2_8 = gamma.square().double().double().double();
        let y3 = alpha.mul(&beta4.sub(&x3)).sub(&gamma2_8);
        Jacobian {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// `self + q` (madd-2007-bl: 7M + 4S), with the identity, `P + P` and `P − P` handled.
    #[inline]
    pub(crate) fn add_affine(&self, q: &Affine) -> Jacobian {
        if self.is_identity() {
            return q.to_jacobian();
        }
        let z1z1 = self.z.square();
        let u2 = q.x.mul(&z1z1);
        let s2 = q.y.mul(&self.z).mul(&z1z1);
        let h = u2.sub(&self.x);
        let s_diff = s2.sub(&self.y);
        if h.is_zero() {
            return if s_diff.is_zero() {
                self.double()
            } else {
                Jacobian::IDENTITY
            };
        }
        let hh = h.square();
        let i = hh.double().double();
        let j = h.mul(&i);
        let r = s_diff.double();
        let v = self.x.mul(&i);
        let x3 = r.square().sub(&j).sub(&v.double());
        let y3 = r.mul(&v.sub(&x3)).sub(&self.y.mul(&j).double());
        let z3 = self.z.add(&h).square().sub(&z1z1).sub(&hh);
        Jacobian {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// The affine form; `None` for the identity (one inversion; tests only).
    #[cfg(test)]
    pub(crate) fn to_affine(self) -> Option<Affine> {
        if self.is_identity() {
            return None;
        }
        let zi = self.z.invert();
        let zi2 = zi.square();
        Some(Affine {
            x: self.x.mul(&zi2),
            y: self.y.mul(&zi2).mul(&zi),
        })
    }
}

/// Affine forms of many points with one inversion (Montgomery's trick); `None` if any is the
/// identity.
fn batch_to_affine(points: &[Jacobian]) -> Option<Vec<Affine>> {
    let mut prefix = Vec::with_capacity(points.len());
    let mut acc = Fe::ONE;
    for p in points {
        if p.is_identity() {
            return None;
        }
        prefix.push(acc);
        acc = acc.mul(&p.z);
    }
    let mut inv = acc.invert();
    let mut out = vec![Affine::default(); points.len()];
    for i in (0..points.len()).rev() {
        let p = points.get(i)?;
        let zi = inv.mul(prefix.get(i)?);
        inv = inv.mul(&p.z);
        let zi2 = zi.square();
        *out.get_mut(i)? = Affine {
            x: p.x.mul(&zi2),
            y: p.y.mul(&zi2).mul(&zi),
        };
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Fixed-base combs.

/// The comb tables of one base point P: table `c`, entry `d` (an 8-bit mask) is
/// `Σ_{i: bit i of d} 2^((c·TEETH + i)·SPACING)·P` (entry 0, the identity, is never read).
pub(crate) struct Comb {
    tables: Vec<[Affine; ENTRIES]>,
}

impl Comb {
    /// Builds the tables of `base` (on the curve, so of order n: no sum in a table is the
    /// identity; `None` if one were).
    pub(crate) fn new(base: &Affine) -> Option<Comb> {
        // The TEETH·COMBS multiples 2^(m·SPACING)·base.
        let mut multiples = Vec::with_capacity(TEETH * COMBS);
        let mut p = base.to_jacobian();
        for m in 0..TEETH * COMBS {
            if m > 0 {
                for _ in 0..SPACING {
                    p = p.double();
                }
            }
            multiples.push(p);
        }
        let multiples = batch_to_affine(&multiples)?;
        let mut tables = vec![[Affine::default(); ENTRIES]; COMBS];
        // Entries [2^i, 2^(i+1)) of each table are its entries [0, 2^i) plus its tooth i:
        // level by level, each level (of all tables at once) normalised with one inversion.
        for i in 0..TEETH {
            let half = 1usize << i;
            let mut level = Vec::with_capacity(COMBS * half);
            for (c, table) in tables.iter().enumerate() {
                let tooth = *multiples.get(c * TEETH + i)?;
                level.push(tooth.to_jacobian());
                for d in 1..half {
                    level.push(table.get(d)?.to_jacobian().add_affine(&tooth));
                }
            }
            let level = batch_to_affine(&level)?;
            for (table, entries) in tables.iter_mut().zip(level.chunks_exact(half)) {
                table.get_mut(half..2 * half)?.copy_from_slice(entries);
            }
        }
        Some(Comb { tables })
    }

    #[inline(always)]
    fn entry(&self, comb: usize, d: u8) -> Option<&Affine> {
        self.tables.get(comb).map(|t| &t[d as usize])
    }
}

/// The comb digit of `k` for table `comb` at column `j`: bit `i` is bit
/// `(comb·TEETH + i)·SPACING + j` of `k`.
#[inline(always)]
fn digit(k: &Limbs, comb: usize, j: usize) -> u8 {
    let mut d = 0u8;
    for i in 0..TEETH {
        let bit = (comb * TEETH + i) * SPACING + j;
        d |= (((k[bit / 32] >> (bit % 32)) & 1) as u8) << i;
    }
    d
}

/// `u1·G + u2·Q` with both bases' combs (`u1`, `u2` any 256-bit numbers).
pub(crate) fn lincomb(u1: &Limbs, g: &Comb, u2: &Limbs, q: &Comb) -> Option<Jacobian> {
    let mut acc = Jacobian::IDENTITY;
    for j in (0..SPACING).rev() {
        acc = acc.double();
        for c in 0..COMBS {
            let d = digit(u1, c, j);
            if d != 0 {
                acc = acc.add_affine(g.entry(c, d)?);
            }
            let d = digit(u2, c, j);
            if d != 0 {
                acc = acc.add_affine(q.entry(c, d)?);
            }
        }
    }
    Some(acc)
}

/// G's combs, built once per VM on first use.
pub(crate) fn g_comb() -> Option<&'static Comb> {
    static G_COMB: OnceLock<Option<Comb>> = OnceLock::new();
    G_COMB.get_or_init(|| Comb::new(&Affine::G)).as_ref()
}

// ---------------------------------------------------------------------------------------------
// Keys and verification.

/// Why a P-256 public key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum P256KeyError {
    #[error("P-256 point is not 65 bytes in uncompressed SEC1 form")]
    Encoding,
    #[error("P-256 coordinate is not below the field prime")]
    Coordinate,
    #[error("P-256 point is not on the curve")]
    NotOnCurve,
    #[error("P-256 precomputation failed")]
    Table,
}

/// A checked P-256 public key with its comb tables (shared between clones).
#[derive(Clone)]
pub struct P256PublicKey {
    point: Affine,
    comb: Arc<Comb>,
}

impl std::fmt::Debug for P256PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("P256PublicKey")
    }
}

impl P256PublicKey {
    /// From affine coordinates (big-endian): each below p, the point on the curve. Builds the
    /// key's combs (and G's, once per VM), so that no request pays for them.
    pub fn from_coordinates(x: &[u8; 32], y: &[u8; 32]) -> Result<Self, P256KeyError> {
        let x = Fe::from_bytes(x).ok_or(P256KeyError::Coordinate)?;
        let y = Fe::from_bytes(y).ok_or(P256KeyError::Coordinate)?;
        let point = Affine { x, y };
        if !point.is_on_curve() {
            return Err(P256KeyError::NotOnCurve);
        }
        g_comb().ok_or(P256KeyError::Table)?;
        let comb = Comb::new(&point).ok_or(P256KeyError::Table)?;
        Ok(P256PublicKey {
            point,
            comb: Arc::new(comb),
        })
    }

    /// From an uncompressed SEC1 point (`04 ‖ x ‖ y`).
    pub fn from_sec1_uncompressed(bytes: &[u8]) -> Result<Self, P256KeyError> {
        match bytes {
            [0x04, rest @ ..] if rest.len() == 64 => {
                let (x, y) = rest.split_at(32);
                let x: &[u8; 32] = x.try_into().map_err(|_| P256KeyError::Encoding)?;
                let y: &[u8; 32] = y.try_into().map_err(|_| P256KeyError::Encoding)?;
                Self::from_coordinates(x, y)
            }
            _ => Err(P256KeyError::Encoding),
        }
    }

    /// The affine coordinates (big-endian).
    pub fn coordinates(&self) -> ([u8; 32], [u8; 32]) {
        (self.point.x.to_bytes(), self.point.y.to_bytes())
    }

    /// Verifies an ES256 signature (`r ‖ s`, 64 bytes) over `message` (hashed with SHA-256).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(message).into();
        self.verify_prehashed(&digest, signature)
    }

    /// Verifies a signature over a SHA-256 digest.
    pub fn verify_prehashed(&self, digest: &[u8; 32], signature: &[u8]) -> bool {
        let Ok(signature) = <&[u8; 64]>::try_from(signature) else {
            return false;
        };
        let (r_bytes, s_bytes) = signature.split_at(32);
        let (Ok(r_bytes), Ok(s_bytes)) = (
            <&[u8; 32]>::try_from(r_bytes),
            <&[u8; 32]>::try_from(s_bytes),
        ) else {
            return false;
        };
        let (r, s) = (from_be(r_bytes), from_be(s_bytes));
        if is_zero(&r) || !lt(&r, &N) {
            return false;
        }
        // `s` is checked by the inversion (`None` outside [1, n − 1]).
        let Some(w) = inv_mod_n(&s) else {
            return false;
        };
        let mut z = from_be(digest);
        if !lt(&z, &N) {
            z = sbb(&z, &N).0;
        }
        let u1 = mul_mod_n(&z, &w);
        let u2 = mul_mod_n(&r, &w);
        let Some(g) = g_comb() else {
            return false;
        };
        let Some(point) = lincomb(&u1, g, &u2, &self.comb) else {
            return false;
        };
        if point.is_identity() {
            return false;
        }
        // R.x mod n == r, with R.x = X/Z² < p: X == r·Z², or X == (r + n)·Z² if r + n < p.
        let zz = point.z.square();
        if point.x == Fe(r).mul(&zz) {
            return true;
        }
        let (r_plus_n, carry) = adc(&r, &N);
        carry == 0 && lt(&r_plus_n, &P) && point.x == Fe(r_plus_n).mul(&zz)
    }
}

#[cfg(test)]
#[path = "p256_tests.rs"]
mod tests;
