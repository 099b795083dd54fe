//! Key sets: parsing a JWKS ourselves (jwt-simple loads one JWK, not a set) into verification
//! keys that each carry their own, fixed algorithm.
//!
//! Each entry is checked before it is trusted: `kty`/`crv` must fit the algorithm, `use` (if
//! present) must be `sig`, `alg` (if present) must be one we support and the provider allows.
//! A JWK without `alg` is registered once per allowed algorithm of its key type (an RSA key
//! for RS256 and PS256, say) — never across families, so an RSA key can never become an HMAC
//! secret. Symmetric (`oct`) entries are refused: HMAC secrets only come from the environment.
//! Unusable entries are skipped and counted; a set with no usable key is an error.
//!
//! RSA keys are parsed and policy-checked by jwt-simple (`from_jwk`: 2048–4096 bits, e = 65537)
//! and then verified with tollgate's own RSA code ([`tollgate_verify::rsa`], several times
//! faster in wasm than jwt-simple's pure-Rust backend). ES256 keys are parsed and validated by
//! jwt-simple too (strict JWK, point on the curve), checked again and verified by tollgate's
//! own P-256 code ([`tollgate_verify::p256`], with per-key precomputed tables); ES384, EdDSA and HMAC
//! keys verify with jwt-simple.

use std::fmt;

use ct_codecs::{Base64UrlSafeNoPadding, Decoder};
use jwt_simple::prelude::*;
use serde_json::Value;
use tollgate_verify::p256::P256PublicKey;
use tollgate_verify::rsa::{Hash, Padding, RsaPublicKey};

use crate::json::{parse_strict, StrictJsonError};

/// Largest JWKS document accepted, in bytes.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Most entries read from one JWKS.
pub const MAX_JWKS_KEYS: usize = 64;
/// Longest `kid` accepted, in bytes.
pub const MAX_KID_BYTES: usize = 256;

/// The algorithms tollgate verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    HS256,
    RS256,
    RS384,
    RS512,
    PS256,
    ES256,
    ES384,
    EdDSA,
}

impl Alg {
    pub const ALL: [Alg; 8] = [
        Alg::HS256,
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::ES256,
        Alg::ES384,
        Alg::EdDSA,
    ];

    /// The default set: every asymmetric algorithm (HS256 must be enabled explicitly).
    pub const ASYMMETRIC: [Alg; 7] = [
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::ES256,
        Alg::ES384,
        Alg::EdDSA,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Alg::HS256 => "HS256",
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::EdDSA => "EdDSA",
        }
    }

    /// Exact, case-sensitive names (RFC 7518): `rs256` or `None` are not algorithms.
    pub fn from_name(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|alg| alg.name() == name)
    }

    fn kty(self) -> &'static str {
        match self {
            Alg::HS256 => "oct",
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 => "RSA",
            Alg::ES256 | Alg::ES384 => "EC",
            Alg::EdDSA => "OKP",
        }
    }

    fn crv(self) -> Option<&'static str> {
        match self {
            Alg::ES256 => Some("P-256"),
            Alg::ES384 => Some("P-384"),
            Alg::EdDSA => Some("Ed25519"),
            _ => None,
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A verification key bound to exactly one algorithm.
#[derive(Clone)]
pub enum VerifyKey {
    HS256(HS256Key),
    /// RS256, RS384, RS512 or PS256 (the `Alg`, fixed when the key is loaded), verified by
    /// [`tollgate_verify::rsa`].
    Rsa(RsaAlg, RsaPublicKey),
    /// ES256, verified by [`tollgate_verify::p256`] (the key carries its precomputed tables).
    ES256(P256PublicKey),
    ES384(ES384PublicKey),
    EdDSA(Ed25519PublicKey),
}

impl fmt::Debug for VerifyKey {
    // Never print key material (an HMAC secret in particular).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyKey({})", self.alg())
    }
}

impl VerifyKey {
    pub fn alg(&self) -> Alg {
        match self {
            VerifyKey::HS256(_) => Alg::HS256,
            VerifyKey::Rsa(alg, _) => alg.alg(),
            VerifyKey::ES256(_) => Alg::ES256,
            VerifyKey::ES384(_) => Alg::ES384,
            VerifyKey::EdDSA(_) => Alg::EdDSA,
        }
    }

    /// Checks the signature of `token`, whose header names `header_alg`, with this key's
    /// algorithm: a token naming another algorithm never verifies. jwt-simple keys also apply
    /// jwt-simple's own claim checks under `options`; RSA and ES256 keys check the signature
    /// only (the verifier checks the claims itself, before any key is used).
    pub fn verify(
        &self,
        token: &str,
        header_alg: Alg,
        options: VerificationOptions,
    ) -> Result<(), jwt_simple::Error> {
        if header_alg != self.alg() {
            return Err(jwt_simple::Error::msg("algorithm mismatch"));
        }
        let options = Some(options);
        match self {
            VerifyKey::HS256(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
            VerifyKey::Rsa(alg, key) => {
                let (hash, padding) = alg.scheme();
                check_signature(token, |input, signature| {
                    key.verify(hash, padding, input, signature)
                })
            }
            VerifyKey::ES256(key) => {
                check_signature(token, |input, signature| key.verify(input, signature))
            }
            VerifyKey::ES384(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
            VerifyKey::EdDSA(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
        }
    }

    /// Builds a key for `alg` from one JWK (as JSON text), with jwt-simple's strict checks.
    fn from_jwk(alg: Alg, jwk: &str) -> Result<VerifyKey, jwt_simple::Error> {
        Ok(match alg {
            Alg::RS256 => rsa_key(
                RsaAlg::RS256,
                RS256PublicKey::from_jwk(jwk)?.to_components(),
            )?,
            Alg::RS384 => rsa_key(
                RsaAlg::RS384,
                RS384PublicKey::from_jwk(jwk)?.to_components(),
            )?,
            Alg::RS512 => rsa_key(
                RsaAlg::RS512,
                RS512PublicKey::from_jwk(jwk)?.to_components(),
            )?,
            Alg::PS256 => rsa_key(
                RsaAlg::PS256,
                PS256PublicKey::from_jwk(jwk)?.to_components(),
            )?,
            Alg::ES256 => es256_key(jwk)?,
            Alg::ES384 => VerifyKey::ES384(ES384PublicKey::from_jwk(jwk)?),
            Alg::EdDSA => VerifyKey::EdDSA(Ed25519PublicKey::from_jwk(jwk)?),
            Alg::HS256 => {
                return Err(jwt_simple::Error::msg(
                    "symmetric keys are not read from a JWKS",
                ))
            }
        })
    }
}

/// Splits a compact JWS into signing input and (base64url-decoded) signature and asks `verify`.
fn check_signature(
    token: &str,
    verify: impl FnOnce(&[u8], &[u8]) -> bool,
) -> Result<(), jwt_simple::Error> {
    let (input, signature) = token
        .rsplit_once('.')
        .ok_or_else(|| jwt_simple::Error::msg("not a compact JWS"))?;
    let signature = Base64UrlSafeNoPadding::decode_to_vec(signature, None)
        .map_err(|_| jwt_simple::Error::msg("bad signature encoding"))?;
    if verify(input.as_bytes(), &signature) {
        Ok(())
    } else {
        Err(jwt_simple::Error::msg("invalid signature"))
    }
}

/// The DER `SubjectPublicKeyInfo` prefix of an uncompressed P-256 key (id-ecPublicKey,
/// prime256v1, a 66-byte BIT STRING): the SEC1 point `04 ‖ x ‖ y` follows it.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// An ES256 key: the JWK parsed and validated by jwt-simple (strict members, a point on the
/// curve), its point taken from the key's DER form and checked again by
/// [`P256PublicKey::from_sec1_uncompressed`], which also builds its tables.
fn es256_key(jwk: &str) -> Result<VerifyKey, jwt_simple::Error> {
    let der = ES256PublicKey::from_jwk(jwk)?.to_der()?;
    let point = der
        .strip_prefix(&P256_SPKI_PREFIX[..])
        .ok_or_else(|| jwt_simple::Error::msg("unexpected P-256 key encoding"))?;
    let key = P256PublicKey::from_sec1_uncompressed(point).map_err(jwt_simple::Error::new)?;
    Ok(VerifyKey::ES256(key))
}

/// The RSA algorithms (a [`VerifyKey::Rsa`] holds exactly one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaAlg {
    RS256,
    RS384,
    RS512,
    PS256,
}

impl RsaAlg {
    pub fn alg(self) -> Alg {
        match self {
            RsaAlg::RS256 => Alg::RS256,
            RsaAlg::RS384 => Alg::RS384,
            RsaAlg::RS512 => Alg::RS512,
            RsaAlg::PS256 => Alg::PS256,
        }
    }

    pub fn scheme(self) -> (Hash, Padding) {
        match self {
            RsaAlg::RS256 => (Hash::Sha256, Padding::Pkcs1v15),
            RsaAlg::RS384 => (Hash::Sha384, Padding::Pkcs1v15),
            RsaAlg::RS512 => (Hash::Sha512, Padding::Pkcs1v15),
            RsaAlg::PS256 => (Hash::Sha256, Padding::Pss),
        }
    }
}

/// An RSA verification key from the components jwt-simple validated, re-checked by
/// [`RsaPublicKey::new`] (odd modulus of 2048–4096 bits, sane exponent).
fn rsa_key(alg: RsaAlg, c: RSAPublicKeyComponents) -> Result<VerifyKey, jwt_simple::Error> {
    let key = RsaPublicKey::new(&c.n, &c.e).map_err(jwt_simple::Error::new)?;
    Ok(VerifyKey::Rsa(alg, key))
}

/// One key with its identifier.
#[derive(Debug, Clone)]
pub struct Key {
    pub kid: Option<String>,
    pub key: VerifyKey,
}

/// The keys of one provider.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    pub keys: Vec<Key>,
    /// Entries skipped as unusable (for logs; never an error on its own).
    pub skipped: usize,
}

impl KeySet {
    /// The candidate keys for a token: same algorithm, and same `kid` when the token has one.
    pub fn candidates<'a>(
        &'a self,
        alg: Alg,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Key> {
        self.keys.iter().filter(move |k| {
            k.key.alg() == alg
                && match kid {
                    Some(kid) => k.kid.as_deref() == Some(kid),
                    None => true,
                }
        })
    }

    /// Whether any key carries this `kid` (whatever its algorithm).
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Adds keys from another set (e.g. the environment's HMAC secret next to a JWKS).
    pub fn extend(&mut self, other: KeySet) {
        self.keys.extend(other.keys);
        self.skipped += other.skipped;
    }
}

/// Why a JWKS was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("JWKS is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("JWKS is not valid JSON: {0}")]
    Json(StrictJsonError),
    #[error("JWKS must be an object with a \"keys\" array")]
    Shape,
    #[error("JWKS has more than {MAX_JWKS_KEYS} keys")]
    TooManyKeys,
    #[error("JWKS has no usable key for the allowed algorithms ({skipped} skipped)")]
    NoUsableKey { skipped: usize },
}

/// Parses a JWKS document, keeping keys usable with `allowed` algorithms.
pub fn parse_jwks(raw: &[u8], allowed: &[Alg]) -> Result<KeySet, JwksError> {
    if raw.len() > MAX_JWKS_BYTES {
        return Err(JwksError::TooLarge);
    }
    let value = parse_strict(raw).map_err(JwksError::Json)?;
    keyset_from_value(&value, allowed)
}

/// Like [`parse_jwks`] for an already parsed (inline) document.
pub fn keyset_from_value(value: &Value, allowed: &[Alg]) -> Result<KeySet, JwksError> {
    let entries = value
        .as_object()
        .and_then(|o| o.get("keys"))
        .and_then(Value::as_array)
        .ok_or(JwksError::Shape)?;
    if entries.len() > MAX_JWKS_KEYS {
        return Err(JwksError::TooManyKeys);
    }
    let mut set = KeySet::default();
    for entry in entries {
        match keys_from_jwk(entry, allowed) {
            Some(keys) if !keys.is_empty() => set.keys.extend(keys),
            _ => set.skipped += 1,
        }
    }
    if set.keys.is_empty() {
        return Err(JwksError::NoUsableKey {
            skipped: set.skipped,
        });
    }
    Ok(set)
}

/// The keys one JWK yields (one per algorithm it may serve), or `None` if unusable.
fn keys_from_jwk(entry: &Value, allowed: &[Alg]) -> Option<Vec<Key>> {
    let obj = entry.as_object()?;
    let kty = obj.get("kty")?.as_str()?;
    if let Some(key_use) = obj.get("use") {
        if key_use.as_str()? != "sig" {
            return None;
        }
    }
    let kid = match obj.get("kid") {
        None => None,
        Some(Value::String(kid)) if kid.len() <= MAX_KID_BYTES => Some(kid.clone()),
        Some(_) => return None,
    };
    let crv = obj.get("crv").and_then(Value::as_str);
    let algs: Vec<Alg> = match obj.get("alg") {
        Some(alg) => {
            let alg = Alg::from_name(alg.as_str()?)?;
            if !allowed.contains(&alg) {
                return None;
            }
            vec![alg]
        }
        None => allowed
            .iter()
            .copied()
            .filter(|a| a.kty() == kty && (a.crv().is_none() || a.crv() == crv))
            .collect(),
    };
    let text = serde_json::to_string(entry).ok()?;
    let mut keys = Vec::with_capacity(algs.len());
    for alg in algs {
        if alg.kty() != kty || alg == Alg::HS256 {
            return None;
        }
        let key = VerifyKey::from_jwk(alg, &text).ok()?;
        keys.push(Key {
            kid: kid.clone(),
            key,
        });
    }
    Some(keys)
}

/// An HS256 key from a shared secret (taken from the environment by the caller).
pub fn hs256_key(secret: &[u8], kid: Option<String>) -> Key {
    Key {
        kid,
        key: VerifyKey::HS256(HS256Key::from_bytes(secret)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwks(entries: &[String]) -> Vec<u8> {
        format!("{{\"keys\":[{}]}}", entries.join(",")).into_bytes()
    }

    #[test]
    fn keys_are_picked_by_kid_and_algorithm() {
        let rsa = RS256KeyPair::generate(2048).unwrap().with_key_id("r1");
        let ec = ES256KeyPair::generate().with_key_id("e1");
        let ed = Ed25519KeyPair::generate().with_key_id("d1");
        let raw = jwks(&[
            rsa.public_key().to_jwk(),
            ec.public_key().to_jwk(),
            ed.public_key().to_jwk(),
        ]);
        let set = parse_jwks(&raw, &Alg::ASYMMETRIC).unwrap();
        assert_eq!(set.len(), 3);
        assert_eq!(set.candidates(Alg::RS256, Some("r1")).count(), 1);
        assert_eq!(set.candidates(Alg::ES256, Some("r1")).count(), 0);
        assert_eq!(set.candidates(Alg::EdDSA, None).count(), 1);
        assert!(set.has_kid("e1"));
        assert!(!set.has_kid("nope"));
    }

    #[test]
    fn disallowed_algorithms_and_enc_keys_are_skipped() {
        let rsa = RS256KeyPair::generate(2048).unwrap().with_key_id("r1");
        let ec = ES256KeyPair::generate().with_key_id("e1");
        let mut enc: serde_json::Map<String, Value> =
            serde_json::from_str(&ec.public_key().to_jwk()).unwrap();
        enc.insert("use".into(), "enc".into());
        enc.insert("kid".into(), "e2".into());
        let raw = jwks(&[
            rsa.public_key().to_jwk(),
            ec.public_key().to_jwk(),
            serde_json::to_string(&enc).unwrap(),
        ]);
        let set = parse_jwks(&raw, &[Alg::ES256]).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.skipped, 2);
        assert!(!set.has_kid("e2"));
        assert_eq!(
            parse_jwks(&raw, &[Alg::EdDSA]).unwrap_err(),
            JwksError::NoUsableKey { skipped: 3 }
        );
    }

    #[test]
    fn jwk_without_alg_serves_each_allowed_algorithm_of_its_type_only() {
        let rsa = RS256KeyPair::generate(2048).unwrap().with_key_id("r1");
        let mut jwk: serde_json::Map<String, Value> =
            serde_json::from_str(&rsa.public_key().to_jwk()).unwrap();
        jwk.remove("alg");
        let raw = jwks(&[serde_json::to_string(&jwk).unwrap()]);
        let set = parse_jwks(&raw, &[Alg::RS256, Alg::PS256, Alg::ES256, Alg::HS256]).unwrap();
        let algs: Vec<Alg> = set.keys.iter().map(|k| k.key.alg()).collect();
        assert_eq!(algs, vec![Alg::RS256, Alg::PS256]);
    }

    #[test]
    fn oct_keys_are_never_read_from_a_jwks() {
        let raw = br#"{"keys":[{"kty":"oct","k":"c2VjcmV0","alg":"HS256","kid":"h"}]}"#;
        assert!(matches!(
            parse_jwks(raw, &Alg::ALL),
            Err(JwksError::NoUsableKey { skipped: 1 })
        ));
    }

    #[test]
    fn alg_that_contradicts_kty_is_skipped() {
        let ec = ES256KeyPair::generate().with_key_id("e1");
        let mut jwk: serde_json::Map<String, Value> =
            serde_json::from_str(&ec.public_key().to_jwk()).unwrap();
        jwk.insert("alg".into(), "RS256".into());
        let raw = jwks(&[serde_json::to_string(&jwk).unwrap()]);
        assert!(parse_jwks(&raw, &Alg::ASYMMETRIC).is_err());
    }

    #[test]
    fn malformed_documents_are_refused() {
        assert_eq!(parse_jwks(b"[]", &Alg::ALL).unwrap_err(), JwksError::Shape);
        assert_eq!(
            parse_jwks(br#"{"keys":{}}"#, &Alg::ALL).unwrap_err(),
            JwksError::Shape
        );
        assert!(matches!(
            parse_jwks(br#"{"keys":[],"keys":[]}"#, &Alg::ALL).unwrap_err(),
            JwksError::Json(StrictJsonError::DuplicateKey)
        ));
        assert_eq!(
            parse_jwks(&vec![b' '; MAX_JWKS_BYTES + 1], &Alg::ALL).unwrap_err(),
            JwksError::TooLarge
        );
        let many = jwks(&vec!["{}".to_string(); MAX_JWKS_KEYS + 1]);
        assert_eq!(
            parse_jwks(&many, &Alg::ALL).unwrap_err(),
            JwksError::TooManyKeys
        );
    }

    #[test]
    fn es256_keys_carry_the_jwk_point_and_points_off_the_curve_are_skipped() {
        let ec = ES256KeyPair::generate().with_key_id("e1");
        let jwk: serde_json::Map<String, Value> =
            serde_json::from_str(&ec.public_key().to_jwk()).unwrap();
        let set = parse_jwks(
            &jwks(&[serde_json::to_string(&jwk).unwrap()]),
            &[Alg::ES256],
        );
        let VerifyKey::ES256(key) = &set.unwrap().keys[0].key else {
            panic!("not an ES256 key");
        };
        let (x, y) = key.coordinates();
        let b64 = |v: &Value| Base64UrlSafeNoPadding::decode_to_vec(v.as_str().unwrap(), None);
        assert_eq!(x.to_vec(), b64(&jwk["x"]).unwrap());
        assert_eq!(y.to_vec(), b64(&jwk["y"]).unwrap());
        // y changed by one bit: not on the curve; the identity has no JWK form, and (0, 0) is
        // not on the curve either.
        let mut y_bad = y;
        y_bad[31] ^= 1;
        use ct_codecs::Encoder;
        let enc = |b: &[u8]| ct_codecs::Base64UrlSafeNoPadding::encode_to_string(b).unwrap();
        for (x, y) in [(x, y_bad), ([0; 32], [0; 32])] {
            let mut bad = jwk.clone();
            bad.insert("x".into(), enc(&x).into());
            bad.insert("y".into(), enc(&y).into());
            let raw = jwks(&[serde_json::to_string(&bad).unwrap()]);
            assert_eq!(
                parse_jwks(&raw, &[Alg::ES256]).unwrap_err(),
                JwksError::NoUsableKey { skipped: 1 }
            );
        }
    }

    #[test]
    fn algorithm_names_are_exact() {
        assert_eq!(Alg::from_name("RS256"), Some(Alg::RS256));
        assert_eq!(Alg::from_name("rs256"), None);
        assert_eq!(Alg::from_name("none"), None);
        assert_eq!(Alg::from_name("ES256K"), None);
    }
}
