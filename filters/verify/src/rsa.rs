//! RSA signature verification for RS256/384/512 and PS256: our own public-key operation,
//! built for wasm32.
//!
//! Why not the `rsa` crate (through jwt-simple): its `num-bigint-dig` arithmetic uses 64-bit
//! digits, and on wasm32 every 64×64→128-bit product is a library call; its generic `modpow`
//! allocates per step. Inside Envoy's V8 that made one RS256 verification cost about 1 ms.
//! Here the modulus is held in 32-bit limbs (a 32×32→64-bit product is one native `i64.mul`
//! in wasm), multiplication is Montgomery's (CIOS, one merged pass per limb), and the
//! exponentiation is square-and-multiply over the public exponent (65537: 16 squarings and
//! one multiplication). Verification uses only public data — the key, the token and its
//! signature — so nothing here needs to run in constant time.
//!
//! The padding checks are the standard ones (RFC 8017): PKCS#1 v1.5 by building the one
//! valid encoded message (`00 01 FF…FF 00 DigestInfo hash`) and comparing all of it, never by
//! parsing the signature's ASN.1; PSS by EMSA-PSS-VERIFY with MGF1 on the same hash and a salt
//! exactly as long as the hash (RFC 7518 §3.5). Keys are checked once, when loaded: modulus
//! 2048–4096 bits and odd, public exponent odd and in `3..2^32`. A signature must be exactly
//! as long as the modulus and, as a number, smaller than it.

use sha2::{Digest, Sha256, Sha384, Sha512};

/// Smallest modulus accepted, in bits.
pub const MIN_MODULUS_BITS: usize = 2048;
/// Largest modulus accepted, in bits (jwt-simple's bound as well).
pub const MAX_MODULUS_BITS: usize = 4096;

/// Why a public key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RsaKeyError {
    #[error("RSA modulus shorter than {MIN_MODULUS_BITS} bits")]
    TooSmall,
    #[error("RSA modulus longer than {MAX_MODULUS_BITS} bits")]
    TooLarge,
    #[error("RSA modulus is even")]
    EvenModulus,
    #[error("RSA public exponent must be odd and between 3 and 2^32-1")]
    BadExponent,
}

/// The hash of a signature scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }

    /// Digest of the concatenation of `parts`.
    pub fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            Hash::Sha256 => run::<Sha256>(parts),
            Hash::Sha384 => run::<Sha384>(parts),
            Hash::Sha512 => run::<Sha512>(parts),
        }
    }

    /// The DER `DigestInfo` prefix (RFC 8017 §9.2, note 1): the hash follows it.
    fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            Hash::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            Hash::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            Hash::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }
}

/// The padding of a signature scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// RSASSA-PKCS1-v1_5 (RS256/384/512).
    Pkcs1v15,
    /// RSASSA-PSS with MGF1 on the same hash and a salt as long as the hash (PS256).
    Pss,
}

/// A checked RSA public key, with its Montgomery constants precomputed.
#[derive(Clone, PartialEq, Eq)]
pub struct RsaPublicKey {
    /// The modulus, least significant 32-bit limb first.
    n: Vec<u32>,
    /// `-n⁻¹ mod 2³²`.
    n0_inv: u32,
    /// `R² mod n`, with `R = 2^(32·limbs)`: multiplying by it enters Montgomery form.
    rr: Vec<u32>,
    e: u32,
    /// Bit length of the modulus.
    bits: usize,
    /// Byte length of the modulus (`k` in RFC 8017).
    size: usize,
}

impl std::fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RsaPublicKey({} bits, e={})", self.bits, self.e)
    }
}

fn strip_zeros(x: &[u8]) -> &[u8] {
    let first = x.iter().position(|&b| b != 0).unwrap_or(x.len());
    &x[first..]
}

/// Big-endian bytes (no longer than `4 * limbs`) into `limbs` little-endian limbs.
fn limbs_from_be(bytes: &[u8], limbs: usize) -> Vec<u32> {
    let mut out = vec![0u32; limbs];
    for (i, &b) in bytes.iter().rev().enumerate() {
        if let Some(limb) = out.get_mut(i / 4) {
            *limb |= u32::from(b) << (8 * (i % 4));
        }
    }
    out
}

/// Little-endian limbs into exactly `len` big-endian bytes (high bytes beyond `len` dropped:
/// callers only pass values below a modulus of `len` bytes).
fn be_from_limbs(limbs: &[u32], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    for (i, byte) in out.iter_mut().rev().enumerate() {
        if let Some(limb) = limbs.get(i / 4) {
            *byte = (limb >> (8 * (i % 4))) as u8;
        }
    }
    out
}

/// `a >= b` for equally long limb vectors.
fn geq(a: &[u32], b: &[u32]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x > y;
        }
    }
    true
}

/// `a -= b` (equally long), returning the borrow.
fn sub_in_place(a: &mut [u32], b: &[u32]) -> bool {
    let mut borrow = 0u64;
    for (x, &y) in a.iter_mut().zip(b) {
        let d = u64::from(*x)
            .wrapping_sub(u64::from(y))
            .wrapping_sub(borrow);
        *x = d as u32;
        borrow = (d >> 63) & 1;
    }
    borrow != 0
}

impl RsaPublicKey {
    /// A key from its big-endian modulus and public exponent (leading zero bytes allowed).
    pub fn new(n: &[u8], e: &[u8]) -> Result<RsaPublicKey, RsaKeyError> {
        let n = strip_zeros(n);
        let bits = match n.first() {
            None => 0,
            Some(&top) => (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
        };
        if bits < MIN_MODULUS_BITS {
            return Err(RsaKeyError::TooSmall);
        }
        if bits > MAX_MODULUS_BITS {
            return Err(RsaKeyError::TooLarge);
        }
        if n.last().is_some_and(|b| b & 1 == 0) {
            return Err(RsaKeyError::EvenModulus);
        }
        let e = strip_zeros(e);
        if e.len() > 4 {
            return Err(RsaKeyError::BadExponent);
        }
        let e = e.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
        if e < 3 || e & 1 == 0 {
            return Err(RsaKeyError::BadExponent);
        }
        let size = n.len();
        let limbs = size.div_ceil(4);
        let n = limbs_from_be(n, limbs);

        // Newton's iteration for n[0]⁻¹ mod 2³²: each step doubles the correct low bits
        // (1 → 2 → 4 → 8 → 16 → 32; n[0] is odd, so 1 is its inverse mod 2).
        let n0 = n.first().copied().unwrap_or(1);
        let mut inv = 1u32;
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(n0.wrapping_mul(inv)));
        }

        // R² mod n by doubling 1 modulo n, 2·32·limbs times (once per key, at load).
        let mut rr = vec![0u32; limbs];
        if let Some(first) = rr.first_mut() {
            *first = 1;
        }
        for _ in 0..2 * 32 * limbs {
            let mut carry = 0u32;
            for limb in rr.iter_mut() {
                let next = *limb >> 31;
                *limb = (*limb << 1) | carry;
                carry = next;
            }
            if carry != 0 || geq(&rr, &n) {
                sub_in_place(&mut rr, &n);
            }
        }
        Ok(RsaPublicKey {
            n,
            n0_inv: inv.wrapping_neg(),
            rr,
            e,
            bits,
            size,
        })
    }

    /// Bit length of the modulus.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// Byte length of the modulus, which every signature must have.
    pub fn size(&self) -> usize {
        self.size
    }

    pub fn exponent(&self) -> u32 {
        self.e
    }

    /// `out = a·b·R⁻¹ mod n` (CIOS Montgomery multiplication, fully reduced). `a` and `b`
    /// are below `n`; `t` is scratch of `limbs + 1`.
    fn mont_mul(&self, a: &[u32], b: &[u32], t: &mut [u32], out: &mut [u32]) {
        let s = self.n.len();
        let n = &self.n[..s];
        let b = &b[..s];
        let t = &mut t[..=s];
        t.fill(0);
        let (n0, b0) = (u64::from(n[0]), u64::from(b[0]));
        for &ai in &a[..s] {
            let ai = u64::from(ai);
            // Limb 0: t0 + ai·b0, and the multiple of n that clears its low word.
            let p = u64::from(t[0]) + ai * b0;
            let m = u64::from((p as u32).wrapping_mul(self.n0_inv));
            let mut c1 = p >> 32;
            let mut c2 = (u64::from(p as u32) + m * n0) >> 32;
            for j in 1..s {
                let p = u64::from(t[j]) + ai * u64::from(b[j]) + c1;
                c1 = p >> 32;
                let q = u64::from(p as u32) + m * u64::from(n[j]) + c2;
                c2 = q >> 32;
                t[j - 1] = q as u32;
            }
            let p = u64::from(t[s]) + c1 + c2;
            t[s - 1] = p as u32;
            t[s] = (p >> 32) as u32;
        }
        // t < 2n: one conditional subtraction.
        out[..s].copy_from_slice(&t[..s]);
        if t[s] != 0 || geq(&out[..s], n) {
            sub_in_place(&mut out[..s], n);
        }
    }

    /// `sig^e mod n` as `size` big-endian bytes, or `None` if the signature is not exactly
    /// `size` bytes long or not below the modulus (RFC 8017 §5.2.2, §8.1.2 step 1).
    pub fn public_op(&self, sig: &[u8]) -> Option<Vec<u8>> {
        if sig.len() != self.size {
            return None;
        }
        let s = self.n.len();
        let x = limbs_from_be(sig, s);
        if geq(&x, &self.n) {
            return None;
        }
        let mut t = vec![0u32; s + 1];
        let mut base = vec![0u32; s];
        self.mont_mul(&x, &self.rr, &mut t, &mut base); // x·R mod n
        let mut acc = base.clone();
        let mut tmp = vec![0u32; s];
        let top = 31 - self.e.leading_zeros();
        for bit in (0..top).rev() {
            self.mont_mul(&acc, &acc, &mut t, &mut tmp);
            std::mem::swap(&mut acc, &mut tmp);
            if (self.e >> bit) & 1 == 1 {
                self.mont_mul(&acc, &base, &mut t, &mut tmp);
                std::mem::swap(&mut acc, &mut tmp);
            }
        }
        let mut one = vec![0u32; s];
        one[0] = 1;
        self.mont_mul(&acc, &one, &mut t, &mut tmp); // leave Montgomery form
        Some(be_from_limbs(&tmp, self.size))
    }

    /// Verifies `sig` over `msg` (the JWS signing input) with `hash` and `padding`.
    pub fn verify(&self, hash: Hash, padding: Padding, msg: &[u8], sig: &[u8]) -> bool {
        let Some(em) = self.public_op(sig) else {
            return false;
        };
        let digest = hash.digest(&[msg]);
        match padding {
            Padding::Pkcs1v15 => pkcs1v15_matches(&em, hash, &digest),
            Padding::Pss => pss_matches(&em, self.bits - 1, hash, &digest),
        }
    }
}

/// EMSA-PKCS1-v1_5: `em` must equal `00 01 FF… 00 DigestInfo(hash) digest` byte for byte,
/// with at least 8 bytes of `FF`.
fn pkcs1v15_matches(em: &[u8], hash: Hash, digest: &[u8]) -> bool {
    let prefix = hash.digest_info_prefix();
    let t_len = prefix.len() + digest.len();
    if em.len() < t_len + 11 {
        return false;
    }
    let ps_end = em.len() - t_len - 1;
    em[0] == 0x00
        && em[1] == 0x01
        && em[2..ps_end].iter().all(|&b| b == 0xFF)
        && em[ps_end] == 0x00
        && &em[ps_end + 1..ps_end + 1 + prefix.len()] == prefix
        && &em[ps_end + 1 + prefix.len()..] == digest
}

/// MGF1 (RFC 8017 B.2.1) with `hash`, XORed into `out`.
fn mgf1_xor(hash: Hash, seed: &[u8], out: &mut [u8]) {
    for (counter, chunk) in out.chunks_mut(hash.output_len()).enumerate() {
        let c = (counter as u32).to_be_bytes();
        let mask = hash.digest(&[seed, &c]);
        for (o, m) in chunk.iter_mut().zip(mask) {
            *o ^= m;
        }
    }
}

/// EMSA-PSS-VERIFY (RFC 8017 §9.1.2) with `em_bits = modBits - 1`, MGF1 with the same hash
/// and a salt of exactly the hash length. `em` is the `k`-byte result of the public operation.
fn pss_matches(em: &[u8], em_bits: usize, hash: Hash, digest: &[u8]) -> bool {
    let em_len = em_bits.div_ceil(8);
    // I2OSP(m, emLen): when the modulus has 8·j + 1 bits, emLen = k - 1 and the top byte of
    // the k-byte value must be zero.
    let Some(skip) = em.len().checked_sub(em_len) else {
        return false;
    };
    if em[..skip].iter().any(|&b| b != 0) {
        return false;
    }
    let em = &em[skip..];
    let (h_len, s_len) = (hash.output_len(), hash.output_len());
    if em_len < h_len + s_len + 2 || em.last() != Some(&0xbc) {
        return false;
    }
    let db_len = em_len - h_len - 1;
    let (masked_db, rest) = em.split_at(db_len);
    let h = &rest[..h_len];
    let top_mask = 0xFFu8 >> (8 * em_len - em_bits);
    if masked_db[0] & !top_mask != 0 {
        return false;
    }
    let mut db = masked_db.to_vec();
    mgf1_xor(hash, h, &mut db);
    db[0] &= top_mask;
    let ps_len = em_len - h_len - s_len - 2;
    if db[..ps_len].iter().any(|&b| b != 0) || db[ps_len] != 0x01 {
        return false;
    }
    let salt = &db[db_len - s_len..];
    hash.digest(&[&[0u8; 8], digest, salt]) == h
}

#[cfg(test)]
#[path = "rsa_tests.rs"]
mod tests;
