//! Token verification: strict decoding and header pre-checks (no crypto), then key selection
//! by issuer and `kid`, signature verification with the key's own algorithm, and claim checks.
//!
//! [`decode`] is provider-independent: compact form, sizes, base64url, strict JSON (duplicate
//! keys), the forbidden header members (`alg: none` in any spelling, `crit`, `jwk`, `jku`,
//! `x5u`, `x5c`, JWE members) and the types of registered claims. [`verify`] then applies one
//! provider's policy: algorithm allowed, issuer, audience, time (with clock skew), `exp`
//! required, maximum lifetime, required claims, and finally the signature — with a key picked
//! from the provider's own key set whose algorithm equals the token's `alg`; the token's
//! `alg` never turns a key of one type into another (an RSA key is never an HMAC secret).
//! RSA and ES256 signatures are checked by [`tollgate_verify`], the others by jwt-simple.

use std::collections::HashSet;

use ct_codecs::{Base64UrlSafeNoPadding, Decoder};
use jwt_simple::prelude::{Duration, UnixTimeStamp, VerificationOptions};
use serde_json::{Map, Value};

use crate::claims::lookup;
use crate::json::{parse_object, StrictJsonError};
use crate::jwks::{Alg, KeySet, MAX_KID_BYTES};

/// Default largest token accepted, in bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Largest encoded header segment accepted, in bytes.
pub const MAX_HEADER_SEGMENT_BYTES: usize = 1024;
/// Most keys tried for a token without `kid`.
pub const MAX_KEYS_TRIED: usize = 4;

/// Why a request was refused. [`Reject::reason`] names the metric, [`Reject::message`] is
/// what the client reads: neither ever contains the token or part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// No token where one is expected.
    Missing,
    /// More than one token in the request.
    Multiple,
    /// Larger than the configured limits.
    TooLarge,
    /// Not a compact JWS, bad base64url, bad or duplicate-key JSON, wrong claim types.
    Malformed,
    /// `alg` is `none` (any spelling), unknown, or not allowed for the issuer.
    Algorithm,
    /// A header member we refuse: `crit`, `jwk`, `jku`, `x5u`, `x5c`, JWE members, bad `typ`.
    Header,
    /// `iss` missing or not a configured provider.
    Issuer,
    /// No key with this `kid` and algorithm.
    UnknownKey,
    /// The signature does not verify.
    Signature,
    Expired,
    NotYetValid,
    IssuedInFuture,
    /// `exp` missing while required.
    MissingExpiry,
    /// `exp` too far after `iat` (or after now).
    Lifetime,
    Audience,
    /// A required claim is absent.
    MissingClaim,
    /// The issuer's keys could not be fetched.
    KeysUnavailable,
    /// Valid token, but it does not meet the path's requirement (403).
    Forbidden,
}

impl Reject {
    /// The metric suffix: `tollgate_jwt_auth_denied_<reason>`.
    pub fn reason(self) -> &'static str {
        match self {
            Reject::Missing => "missing",
            Reject::Multiple => "multiple",
            Reject::TooLarge => "too_large",
            Reject::Malformed => "malformed",
            Reject::Algorithm => "algorithm",
            Reject::Header => "header",
            Reject::Issuer => "issuer",
            Reject::UnknownKey => "unknown_key",
            Reject::Signature => "signature",
            Reject::Expired => "expired",
            Reject::NotYetValid => "not_yet_valid",
            Reject::IssuedInFuture => "issued_in_future",
            Reject::MissingExpiry => "missing_exp",
            Reject::Lifetime => "lifetime",
            Reject::Audience => "audience",
            Reject::MissingClaim => "missing_claim",
            Reject::KeysUnavailable => "keys_unavailable",
            Reject::Forbidden => "forbidden",
        }
    }

    pub const ALL: [Reject; 18] = [
        Reject::Missing,
        Reject::Multiple,
        Reject::TooLarge,
        Reject::Malformed,
        Reject::Algorithm,
        Reject::Header,
        Reject::Issuer,
        Reject::UnknownKey,
        Reject::Signature,
        Reject::Expired,
        Reject::NotYetValid,
        Reject::IssuedInFuture,
        Reject::MissingExpiry,
        Reject::Lifetime,
        Reject::Audience,
        Reject::MissingClaim,
        Reject::KeysUnavailable,
        Reject::Forbidden,
    ];

    pub fn message(self) -> &'static str {
        match self {
            Reject::Missing => "missing bearer token",
            Reject::Multiple => "more than one token in the request",
            Reject::TooLarge => "token too large",
            Reject::Malformed => "malformed token",
            Reject::Algorithm => "token algorithm not allowed",
            Reject::Header => "token header not allowed",
            Reject::Issuer => "token issuer not trusted",
            Reject::UnknownKey => "no trusted key matches the token",
            Reject::Signature => "invalid token signature",
            Reject::Expired => "token expired",
            Reject::NotYetValid => "token not yet valid",
            Reject::IssuedInFuture => "token issued in the future",
            Reject::MissingExpiry => "token has no expiry",
            Reject::Lifetime => "token lifetime exceeds the allowed maximum",
            Reject::Audience => "token audience not accepted",
            Reject::MissingClaim => "token lacks a required claim",
            Reject::KeysUnavailable => {
                "cannot verify token: the identity provider's signing keys are unavailable"
            }
            Reject::Forbidden => "the token does not grant access to this resource",
        }
    }

    /// 403 for [`Reject::Forbidden`], 401 for everything else.
    pub fn is_forbidden(self) -> bool {
        self == Reject::Forbidden
    }
}

/// A token whose parts decoded and passed the provider-independent checks. Nothing in it is
/// trusted until [`verify`] succeeds.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub alg: Alg,
    pub kid: Option<String>,
    pub claims: Map<String, Value>,
    pub issuer: Option<String>,
    pub exp: Option<u64>,
    pub nbf: Option<u64>,
    pub iat: Option<u64>,
}

/// Header members that would make a verifier fetch or trust key material named by the token.
const FORBIDDEN_HEADER: [&str; 9] = [
    "crit", "jwk", "jku", "x5u", "x5c", "enc", "zip", "b64", "epk",
];

fn b64(segment: &str) -> Result<Vec<u8>, Reject> {
    if segment.is_empty()
        || !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Reject::Malformed);
    }
    Base64UrlSafeNoPadding::decode_to_vec(segment, None).map_err(|_| Reject::Malformed)
}

fn json(raw: &[u8]) -> Result<Map<String, Value>, Reject> {
    parse_object(raw).map_err(|err| match err {
        StrictJsonError::DuplicateKey | StrictJsonError::Malformed => Reject::Malformed,
    })
}

/// A NumericDate: a finite, non-negative JSON number (fractions are truncated).
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, Reject> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(v) = n.as_u64() {
                Ok(Some(v))
            } else {
                match n.as_f64() {
                    Some(f) if f.is_finite() && f >= 0.0 => Ok(Some(f as u64)),
                    _ => Err(Reject::Malformed),
                }
            }
        }
        Some(_) => Err(Reject::Malformed),
    }
}

fn optional_string(map: &Map<String, Value>, name: &str) -> Result<Option<String>, Reject> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Reject::Malformed),
    }
}

/// Decodes and pre-checks a token without any key: cheap rejections first.
pub fn decode(token: &str, max_token_bytes: usize) -> Result<Decoded, Reject> {
    if token.len() > max_token_bytes {
        return Err(Reject::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Reject::Malformed);
    };
    if h.len() > MAX_HEADER_SEGMENT_BYTES {
        return Err(Reject::TooLarge);
    }
    let header = json(&b64(h)?)?;

    let alg = match header.get("alg") {
        Some(Value::String(name)) => {
            if name.trim().eq_ignore_ascii_case("none") {
                return Err(Reject::Algorithm);
            }
            Alg::from_name(name).ok_or(Reject::Algorithm)?
        }
        _ => return Err(Reject::Algorithm),
    };
    if FORBIDDEN_HEADER.iter().any(|m| header.contains_key(*m)) {
        return Err(Reject::Header);
    }
    // An empty or undecodable signature is refused before any key is looked at.
    b64(s)?;
    match header.get("typ") {
        None => {}
        Some(Value::String(typ)) => {
            let typ = typ.to_ascii_uppercase();
            if typ != "JWT" && !typ.ends_with("+JWT") {
                return Err(Reject::Header);
            }
        }
        Some(_) => return Err(Reject::Header),
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) if kid.len() <= MAX_KID_BYTES => Some(kid.clone()),
        Some(Value::String(_)) => return Err(Reject::TooLarge),
        Some(_) => return Err(Reject::Malformed),
    };

    let claims = json(&b64(c)?)?;
    let issuer = optional_string(&claims, "iss")?;
    optional_string(&claims, "sub")?;
    optional_string(&claims, "jti")?;
    optional_string(&claims, "nonce")?;
    match claims.get("aud") {
        None | Some(Value::String(_)) => {}
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
        Some(_) => return Err(Reject::Malformed),
    }
    Ok(Decoded {
        alg,
        kid,
        issuer,
        exp: numeric_date(&claims, "exp")?,
        nbf: numeric_date(&claims, "nbf")?,
        iat: numeric_date(&claims, "iat")?,
        claims,
    })
}

/// One provider's verification policy (compiled from the configuration).
#[derive(Debug, Clone)]
pub struct Policy {
    pub issuer: String,
    /// Accepted audiences; empty means `aud` is not checked.
    pub audiences: Vec<String>,
    pub algorithms: Vec<Alg>,
    pub clock_skew_secs: u64,
    pub require_exp: bool,
    pub max_lifetime_secs: Option<u64>,
    /// Claim paths that must be present and non-null.
    pub required_claims: Vec<String>,
    pub max_token_bytes: usize,
}

impl Policy {
    /// A strict default policy for `issuer` (tests and examples).
    pub fn new(issuer: &str) -> Policy {
        Policy {
            issuer: issuer.to_owned(),
            audiences: Vec::new(),
            algorithms: Alg::ASYMMETRIC.to_vec(),
            clock_skew_secs: 60,
            require_exp: true,
            max_lifetime_secs: None,
            required_claims: Vec::new(),
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
        }
    }
}

/// Checks everything that needs no key. Run before the signature so that cheap rejections
/// cost no crypto; the verdict is only trusted together with a good signature.
pub fn check_claims(d: &Decoded, policy: &Policy, now: u64) -> Result<(), Reject> {
    if !policy.algorithms.contains(&d.alg) {
        return Err(Reject::Algorithm);
    }
    if d.issuer.as_deref() != Some(policy.issuer.as_str()) {
        return Err(Reject::Issuer);
    }
    let skew = policy.clock_skew_secs;
    match d.exp {
        Some(exp) if exp.saturating_add(skew) < now => return Err(Reject::Expired),
        None if policy.require_exp => return Err(Reject::MissingExpiry),
        _ => {}
    }
    if let Some(nbf) = d.nbf {
        if nbf > now.saturating_add(skew) {
            return Err(Reject::NotYetValid);
        }
    }
    if let Some(iat) = d.iat {
        if iat > now.saturating_add(skew) {
            return Err(Reject::IssuedInFuture);
        }
    }
    if let Some(max) = policy.max_lifetime_secs {
        let exp = d.exp.ok_or(Reject::MissingExpiry)?;
        let start = d.iat.or(d.nbf).unwrap_or(now);
        if exp.saturating_sub(start) > max {
            return Err(Reject::Lifetime);
        }
    }
    if !policy.audiences.is_empty() {
        let ok = match d.claims.get("aud") {
            Some(Value::String(a)) => policy.audiences.iter().any(|x| x == a),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .any(|a| policy.audiences.iter().any(|x| x == a)),
            _ => false,
        };
        if !ok {
            return Err(Reject::Audience);
        }
    }
    for path in &policy.required_claims {
        match lookup(&d.claims, path) {
            None | Some(Value::Null) => return Err(Reject::MissingClaim),
            Some(_) => {}
        }
    }
    Ok(())
}

fn options(policy: &Policy, now: u64) -> VerificationOptions {
    VerificationOptions {
        allowed_issuers: Some(HashSet::from([policy.issuer.clone()])),
        allowed_audiences: if policy.audiences.is_empty() {
            None
        } else {
            Some(policy.audiences.iter().cloned().collect())
        },
        time_tolerance: Some(Duration::from_secs(policy.clock_skew_secs)),
        max_token_length: Some(policy.max_token_bytes),
        max_header_length: Some(MAX_HEADER_SEGMENT_BYTES),
        artificial_time: Some(UnixTimeStamp::from_secs(now)),
        ..VerificationOptions::default()
    }
}

/// Verifies the signature with a key of the provider whose algorithm is the token's and
/// whose `kid` matches (or, without `kid`, the first few keys of that algorithm). The claims
/// are checked again first (cheap, no crypto): a signature verdict never stands without them.
pub fn check_signature(
    token: &str,
    d: &Decoded,
    policy: &Policy,
    keys: &[&KeySet],
    now: u64,
) -> Result<(), Reject> {
    check_claims(d, policy, now)?;
    let mut tried = 0;
    let candidates = keys
        .iter()
        .flat_map(|set| set.candidates(d.alg, d.kid.as_deref()))
        .take(MAX_KEYS_TRIED);
    for key in candidates {
        tried += 1;
        if key.key.verify(token, d.alg, options(policy, now)).is_ok() {
            return Ok(());
        }
    }
    if tried == 0 {
        Err(Reject::UnknownKey)
    } else {
        Err(Reject::Signature)
    }
}

/// The whole verification for one provider: claims first (cheap), then the signature.
pub fn verify(
    token: &str,
    d: &Decoded,
    policy: &Policy,
    keys: &[&KeySet],
    now: u64,
) -> Result<(), Reject> {
    check_signature(token, d, policy, keys, now)
}

#[cfg(test)]
#[path = "verifier_tests.rs"]
mod tests;
