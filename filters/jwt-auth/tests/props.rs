//! Property tests (proptest) of jwt-auth's network-facing parsers, fed random bytes and
//! structured adversarial input. Each asserts an invariant besides "never panics":
//!
//! - the extractor: random header lists give a well-formed token or a refusal; a bearer token
//!   round-trips through any scheme case and surrounding whitespace;
//! - compact JWS decoding: random tokens are refused as `Err`; generated tokens decode to their
//!   header and claims, and `alg: none`, forbidden header members, duplicate keys and ill-typed
//!   claims are refused;
//! - strict JSON: values round-trip; a repeated key at any depth (escaped or not) is refused;
//! - verification: the harness's valid tokens verify, and no tampering with their header,
//!   claims or signature (nor splicing parts of two tokens) ever does;
//! - JWKS documents: random bytes and mutated keys never yield an HMAC key, a key for a
//!   disallowed algorithm, or a key whose `use` is not `sig`;
//! - the path matcher: prefix matching is segment-wise, and no alternative spelling of an
//!   exempt path borrows its exemption;
//! - claims: groups and forwarded values stay bounded and clean.
//!
//! The fuzz targets `jwt_token`, `jwks` and `path` (fuzz/, docs/fuzzing.md) run the same
//! families under libFuzzer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ct_codecs::{Base64UrlSafeNoPadding, Decoder, Encoder};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{json, Map, Value};
use tollgate_common::identity::{decode_groups, encode_groups};
use tollgate_jwt_auth::claims::{identity, ClaimsPolicy, MAX_FORWARDED_VALUE, MAX_GROUPS};
use tollgate_jwt_auth::extractor::{extract, Location};
use tollgate_jwt_auth::json::{parse_strict, StrictJsonError};
use tollgate_jwt_auth::jwks::{hs256_key, parse_jwks, Alg, KeySet, MAX_KID_BYTES};
use tollgate_jwt_auth::matcher::{
    is_canonical, requirement_for, strip_query, PathMatch, Requirement, Rule,
};
use tollgate_jwt_auth::verifier::{decode, verify, Policy, Reject, DEFAULT_MAX_TOKEN_BYTES};

const HARNESS: &str = include_str!("../testdata/harness.json");

/// `cases` per property (debug builds stay within seconds), or `PROPTEST_CASES` when set (a
/// longer run, docs/fuzzing.md). Seeds are random per run (`PROPTEST_RNG_SEED` fixes one); a
/// failure prints its minimal input.
fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

fn harness() -> Value {
    serde_json::from_str(HARNESS).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap()
}

fn unb64(s: &str) -> Option<Vec<u8>> {
    Base64UrlSafeNoPadding::decode_to_vec(s, None).ok()
}

struct Fixture {
    now: u64,
    policy: Policy,
    keys: KeySet,
    tokens: Map<String, Value>,
}

fn fixture() -> Fixture {
    let h = harness();
    let mut policy = Policy::new(h["issuer"].as_str().unwrap());
    policy.algorithms = Alg::ALL.to_vec();
    policy.audiences = vec!["tollgate".into()];
    let mut keys = parse_jwks(&serde_json::to_vec(&h["jwks"]).unwrap(), &Alg::ALL).unwrap();
    keys.extend(KeySet {
        keys: vec![hs256_key(
            h["hs256_secret"].as_str().unwrap().as_bytes(),
            Some("hs1".into()),
        )],
        skipped: 0,
    });
    Fixture {
        now: h["now"].as_u64().unwrap(),
        policy,
        keys,
        tokens: h["tokens"].as_object().unwrap().clone(),
    }
}

thread_local! {
    static FIXTURE: std::rc::Rc<Fixture> = std::rc::Rc::new(fixture());
}

fn fx() -> std::rc::Rc<Fixture> {
    FIXTURE.with(std::rc::Rc::clone)
}

fn check(fx: &Fixture, token: &str) -> Result<(), Reject> {
    let d = decode(token, DEFAULT_MAX_TOKEN_BYTES)?;
    verify(token, &d, &fx.policy, &[&fx.keys], fx.now)
}

/// The harness tokens that verify under the fixture policy (one per algorithm).
const VALID: [&str; 4] = ["rs256", "es256", "eddsa", "hs256"];

// ---------------------------------------------------------------------------------------------
// The extractor

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"Bearer ".to_vec()),
        Just(b"bearer".to_vec()),
        Just(b"Basic ".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\t".to_vec()),
        Just(b",".to_vec()),
        Just(b"abc.def.ghi".to_vec()),
        "[A-Za-z0-9._-]{1,12}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 1..6),
    ];
    prop::collection::vec(piece, 0..6).prop_map(|p| p.concat())
}

fn locations() -> Vec<Location> {
    vec![
        Location::bearer(),
        Location {
            header: "x-api-key".into(),
            prefix: None,
        },
    ]
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn extracted_tokens_are_well_formed(
        headers in prop::collection::vec(
            (prop_oneof![Just("authorization"), Just("Authorization"), Just("X-Api-Key"), Just("cookie")], header_value()),
            0..4,
        ),
    ) {
        let headers: Vec<(String, Vec<u8>)> =
            headers.into_iter().map(|(n, v)| (n.to_string(), v)).collect();
        match extract(&headers, &locations()) {
            Ok(Some(found)) => {
                prop_assert!(!found.token.is_empty());
                prop_assert!(found.token.bytes().all(|b| b.is_ascii_graphic() && b != b','));
                // It came from a header at the location it names, and from exactly one.
                let sources: Vec<_> = headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(&found.header))
                    .filter(|(_, v)| String::from_utf8_lossy(v).contains(found.token.as_str()))
                    .collect();
                prop_assert!(!sources.is_empty());
            }
            Ok(None) => {}
            Err(r) => prop_assert!(matches!(r, Reject::Multiple | Reject::Malformed), "{:?}", r),
        }
    }

    #[test]
    fn bearer_tokens_round_trip(
        token in "[A-Za-z0-9._~+/=-]{1,200}",
        scheme in "[Bb][Ee][Aa][Rr][Ee][Rr]",
        lead in "[ \t]{0,3}",
        gap in "[ \t]{0,3}",
        trail in "[ \t]{0,3}",
        api_key in any::<bool>(),
    ) {
        let (name, value) = if api_key {
            ("x-api-key", format!("{lead}{token}{trail}"))
        } else {
            ("Authorization", format!("{lead}{scheme} {gap}{token}{trail}"))
        };
        let headers = vec![(name.to_string(), value.into_bytes())];
        let found = extract(&headers, &locations()).unwrap().unwrap();
        prop_assert_eq!(found.token, token);
        // The same token twice is two tokens.
        let twice = vec![headers[0].clone(), headers[0].clone()];
        prop_assert_eq!(extract(&twice, &locations()), Err(Reject::Multiple));
    }
}

// ---------------------------------------------------------------------------------------------
// Strict JSON

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(Value::from),
        "[ -~é\u{10000}]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// `v` serialized with the first key of the `target`-th non-empty object repeated, spelled
/// with a `\u` escape when `escaped` (keys compare after unescaping).
fn with_duplicate(v: &Value, target: usize, escaped: bool) -> Option<String> {
    fn go(
        v: &Value,
        target: usize,
        escaped: bool,
        seen: &mut usize,
        done: &mut bool,
        out: &mut String,
    ) {
        match v {
            Value::Object(m) => {
                let dup = !m.is_empty() && *seen == target;
                if !m.is_empty() {
                    *seen += 1;
                }
                out.push('{');
                for (i, (k, val)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(k).unwrap());
                    out.push(':');
                    go(val, target, escaped, seen, done, out);
                }
                if dup {
                    let (k, val) = m.iter().next().unwrap();
                    let key = if escaped {
                        k.chars()
                            .map(|c| format!("\\u{:04x}", c as u32))
                            .collect::<String>()
                    } else {
                        k.clone()
                    };
                    out.push_str(&format!(",\"{key}\":{val}"));
                    *done = true;
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, val) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    go(val, target, escaped, seen, done, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let (mut out, mut seen, mut done) = (String::new(), 0, false);
    go(v, target, escaped, &mut seen, &mut done, &mut out);
    done.then_some(out)
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn strict_json_round_trips(v in json_value()) {
        // Read as serde_json reads the same text (its default float parsing may differ from the
        // generated value in the last bit, so the comparison is with serde_json, not with `v`).
        for text in [v.to_string(), serde_json::to_string_pretty(&v).unwrap()] {
            let want: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(parse_strict(text.as_bytes()), Ok(want));
        }
    }

    #[test]
    fn strict_json_refuses_any_repeated_key(v in json_value(), target in 0usize..16, escaped in any::<bool>()) {
        let Some(text) = with_duplicate(&v, target, escaped) else {
            return Ok(());
        };
        prop_assert_eq!(parse_strict(text.as_bytes()), Err(StrictJsonError::DuplicateKey), "{}", text);
    }

    #[test]
    fn strict_json_on_random_bytes_is_ok_or_err(raw in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(v) = parse_strict(&raw) {
            // What it accepts, serde_json reads the same way.
            prop_assert_eq!(serde_json::from_slice::<Value>(&raw).unwrap(), v);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Compact JWS decoding

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_-]{0,40}",
        "[A-Za-z0-9_+/=. -]{0,20}",
        json_value().prop_map(|v| b64(v.to_string().as_bytes())),
    ]
}

fn claims() -> impl Strategy<Value = Value> {
    let date = prop_oneof![
        4 => (1_700_000_000u64..1_900_000_000).prop_map(Value::from),
        1 => (-1e12f64..1e12).prop_map(Value::from),
        1 => Just(Value::from("1800000000")),
        1 => Just(Value::Null),
    ];
    (
        prop::option::of(prop_oneof![Just(json!("https://idp.test")), Just(json!(7))]),
        prop::option::of(prop_oneof![Just(json!("alice")), Just(json!(["alice"]))]),
        prop::option::of(prop_oneof![
            Just(json!("tollgate")),
            Just(json!(["x", "tollgate"])),
            Just(json!(["x", 1]))
        ]),
        prop::option::of(date.clone()),
        prop::option::of(date),
        prop::option::of(json_value()),
    )
        .prop_map(|(iss, sub, aud, exp, nbf, extra)| {
            let mut m = Map::new();
            for (k, v) in [
                ("iss", iss),
                ("sub", sub),
                ("aud", aud),
                ("exp", exp),
                ("nbf", nbf),
                ("extra", extra),
            ] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            Value::Object(m)
        })
}

fn header() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just(json!("RS256")),
            Just(json!("ES256")),
            Just(json!("EdDSA")),
            Just(json!("HS256")),
            Just(json!("none")),
            Just(json!("NONE")),
            Just(json!(" none ")),
            Just(json!("rs256")),
            Just(json!("HS512")),
            Just(json!(null)),
            Just(json!(["RS256"])),
        ],
        prop::option::of(prop_oneof![
            Just(json!("JWT")),
            Just(json!("at+jwt")),
            Just(json!("JOSE")),
            Just(json!(1))
        ]),
        prop::option::of(prop_oneof![
            Just(json!("rs1")),
            Just(json!("k".repeat(300))),
            Just(json!(5))
        ]),
        prop::option::of(prop_oneof![
            Just("jku"),
            Just("jwk"),
            Just("x5u"),
            Just("x5c"),
            Just("crit"),
            Just("b64"),
            Just("cty")
        ]),
    )
        .prop_map(|(alg, typ, kid, member)| {
            let mut m = Map::new();
            m.insert("alg".into(), alg);
            if let Some(t) = typ {
                m.insert("typ".into(), t);
            }
            if let Some(k) = kid {
                m.insert("kid".into(), k);
            }
            if let Some(name) = member {
                m.insert(name.into(), json!("https://attacker.test/keys"));
            }
            Value::Object(m)
        })
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn random_tokens_are_refused_not_panicked_on(
        parts in prop::collection::vec(segment(), 0..5),
        raw in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let fx = fx();
        let token = parts.join(".");
        if let Ok(d) = decode(&token, DEFAULT_MAX_TOKEN_BYTES) {
            prop_assert_eq!(token.split('.').count(), 3);
            prop_assert!(d.kid.as_ref().is_none_or(|k| k.len() <= MAX_KID_BYTES));
        }
        // Without a real signature nothing verifies.
        prop_assert!(check(&fx, &token).is_err());
        prop_assert!(check(&fx, &String::from_utf8_lossy(&raw)).is_err());
    }

    #[test]
    fn generated_tokens_decode_to_what_they_say(
        header in header(),
        claims in claims(),
        sig in "[A-Za-z0-9_-]{0,8}",
        max in prop_oneof![Just(DEFAULT_MAX_TOKEN_BYTES), 0usize..200],
    ) {
        let token = format!("{}.{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()), sig);
        let alg = header["alg"].as_str();
        let result = decode(&token, max);
        if token.len() > max {
            prop_assert_eq!(result.err(), Some(Reject::TooLarge));
            return Ok(());
        }
        // Refusals the header alone decides, in the verifier's order.
        if alg.is_none_or(|a| Alg::from_name(a).is_none()) {
            prop_assert_eq!(result.err(), Some(Reject::Algorithm));
            return Ok(());
        }
        let forbidden = ["jku", "jwk", "x5u", "x5c", "crit", "b64"];
        if forbidden.iter().any(|m| header.get(m).is_some()) {
            prop_assert_eq!(result.err(), Some(Reject::Header));
            return Ok(());
        }
        if sig.is_empty() || unb64(&sig).is_none() {
            prop_assert_eq!(result.err(), Some(Reject::Malformed));
            return Ok(());
        }
        match &header.get("typ") {
            Some(Value::String(t)) if t.eq_ignore_ascii_case("jwt") || t.to_ascii_uppercase().ends_with("+JWT") => {}
            None => {}
            _ => {
                prop_assert_eq!(result.err(), Some(Reject::Header));
                return Ok(());
            }
        }
        match &header.get("kid") {
            Some(Value::String(k)) if k.len() > MAX_KID_BYTES => {
                prop_assert_eq!(result.err(), Some(Reject::TooLarge));
                return Ok(());
            }
            Some(Value::String(_)) | None => {}
            _ => {
                prop_assert_eq!(result.err(), Some(Reject::Malformed));
                return Ok(());
            }
        }
        // Claims: strings where strings belong, NumericDates non-negative numbers.
        let date_ok = |v: Option<&Value>| match v {
            None => true,
            Some(Value::Number(n)) => n.as_u64().is_some() || n.as_f64().is_some_and(|f| f >= 0.0),
            _ => false,
        };
        let claims_ok = claims.get("iss").is_none_or(Value::is_string)
            && claims.get("sub").is_none_or(Value::is_string)
            && claims.get("aud").is_none_or(|a| a.is_string() || a.as_array().is_some_and(|xs| xs.iter().all(Value::is_string)))
            && date_ok(claims.get("exp"))
            && date_ok(claims.get("nbf"));
        match result {
            Ok(d) => {
                prop_assert!(claims_ok, "accepted {}", claims);
                prop_assert_eq!(Some(d.alg.name()), alg);
                prop_assert_eq!(d.kid.as_deref(), header.get("kid").and_then(Value::as_str));
                prop_assert_eq!(d.issuer.as_deref(), claims.get("iss").and_then(Value::as_str));
                // (As serde_json reads the text: its float parsing may differ in the last bit.)
                let read: Value = serde_json::from_str(&claims.to_string()).unwrap();
                prop_assert_eq!(&Value::Object(d.claims.clone()), &read);
                let date = |v: Option<&Value>| v.and_then(|v| v.as_u64().or(v.as_f64().map(|f| f as u64)));
                prop_assert_eq!(d.exp, date(claims.get("exp")));
                prop_assert_eq!(d.nbf, date(claims.get("nbf")));
            }
            Err(r) => {
                prop_assert!(!claims_ok, "refused {} with {:?}", claims, r);
                prop_assert_eq!(r, Reject::Malformed);
            }
        }
    }

    #[test]
    fn duplicate_header_or_claim_keys_are_refused(
        claims in claims(),
        target in 0usize..4,
        escaped in any::<bool>(),
        in_header in any::<bool>(),
    ) {
        let header = json!({"alg": "RS256", "kid": "rs1", "typ": "JWT"});
        let (h, c) = if in_header {
            (with_duplicate(&header, 0, escaped).unwrap(), claims.to_string())
        } else {
            let Some(c) = with_duplicate(&claims, target, escaped) else {
                return Ok(());
            };
            (header.to_string(), c)
        };
        let token = format!("{}.{}.c2ln", b64(h.as_bytes()), b64(c.as_bytes()));
        let r = decode(&token, DEFAULT_MAX_TOKEN_BYTES);
        prop_assert!(matches!(r, Err(Reject::Malformed)), "{:?}", r.map(|d| d.claims));
    }
}

// ---------------------------------------------------------------------------------------------
// Verification: no tampering verifies

const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

#[test]
fn the_harness_tokens_verify_under_the_fixture_policy() {
    let fx = fx();
    for name in VALID {
        let token = fx.tokens[name].as_str().unwrap();
        assert_eq!(check(&fx, token), Ok(()), "{name}");
    }
    for name in [
        "hs256_with_rsa_public_key",
        "rs256_stranger_same_kid",
        "alg_none_signed",
        "truncated_signature",
    ] {
        let token = fx.tokens[name].as_str().unwrap();
        assert!(check(&fx, token).is_err(), "{name}");
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn tampered_tokens_never_verify(
        which in 0usize..VALID.len(),
        other in 0usize..VALID.len(),
        part in 0usize..3,
        at in any::<prop::sample::Index>(),
        with in any::<prop::sample::Index>(),
        how in 0u8..5,
    ) {
        let fx = fx();
        let token = fx.tokens[VALID[which]].as_str().unwrap().to_string();
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        match how {
            // One character of one part replaced by another base64url character.
            0 => {
                let seg = parts[part].as_bytes().to_vec();
                let i = at.index(seg.len());
                let mut c = B64URL[with.index(B64URL.len())];
                if c == seg[i] {
                    c = if c == b'A' { b'B' } else { b'A' };
                }
                let mut new = seg.clone();
                new[i] = c;
                let new = String::from_utf8(new).unwrap();
                // A signature spelled differently but decoding to the same bytes is the same
                // signature (the unused bits of its last character).
                prop_assume!(part != 2 || unb64(&new) != unb64(&parts[2]));
                parts[part] = new;
            }
            // A part cut short.
            1 => {
                let n = parts[part].len();
                parts[part].truncate(at.index(n));
            }
            // A part from another token (splicing).
            2 => {
                prop_assume!(other != which);
                let donor: Vec<&str> = fx.tokens[VALID[other]].as_str().unwrap().split('.').collect();
                parts[part] = donor[part].to_string();
            }
            // The claims re-encoded with one claim changed, the signature kept.
            3 => {
                let mut claims: Value = serde_json::from_slice(&unb64(&parts[1]).unwrap()).unwrap();
                claims["sub"] = json!("mallory");
                parts[1] = b64(claims.to_string().as_bytes());
            }
            // The header's alg switched to another algorithm the policy allows.
            _ => {
                let mut header: Value = serde_json::from_slice(&unb64(&parts[0]).unwrap()).unwrap();
                let algs = ["RS256", "ES256", "EdDSA", "HS256", "PS256", "RS512"];
                let alg = algs[with.index(algs.len())];
                prop_assume!(header["alg"] != alg);
                header["alg"] = json!(alg);
                parts[0] = b64(header.to_string().as_bytes());
            }
        }
        let tampered = parts.join(".");
        // (Two harness tokens share their claims: splicing those changes nothing.)
        prop_assume!(tampered != token);
        prop_assert!(check(&fx, &tampered).is_err(), "{} -> {}", token, tampered);
    }
}

// ---------------------------------------------------------------------------------------------
// JWKS documents

fn jwk_variant() -> impl Strategy<Value = Value> {
    let h = harness();
    let keys: Vec<Value> = h["jwks"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .chain(h["jwks_rotated"]["keys"].as_array().unwrap())
        .cloned()
        .collect();
    (
        prop::sample::select(keys),
        prop::option::of(prop_oneof![
            Just(json!("RS256")),
            Just(json!("PS256")),
            Just(json!("ES256")),
            Just(json!("ES384")),
            Just(json!("EdDSA")),
            Just(json!("HS256")),
            Just(json!("none")),
            Just(json!(1)),
        ]),
        prop::option::of(prop_oneof![
            Just(json!("sig")),
            Just(json!("enc")),
            Just(json!(null))
        ]),
        prop::option::of(prop_oneof![
            Just(json!("RSA")),
            Just(json!("EC")),
            Just(json!("OKP")),
            Just(json!("oct"))
        ]),
        prop::option::of(prop_oneof![
            Just(json!("k".repeat(257))),
            Just(json!(["x"])),
            Just(json!("other"))
        ]),
        any::<bool>(),
    )
        .prop_map(|(mut key, alg, key_use, kty, kid, drop_alg)| {
            if let Some(a) = alg {
                key["alg"] = a;
            }
            if drop_alg {
                key.as_object_mut().unwrap().remove("alg");
            }
            if let Some(u) = key_use {
                key["use"] = u;
            }
            if let Some(k) = kty {
                key["kty"] = k;
            }
            if let Some(k) = kid {
                key["kid"] = k;
            }
            key
        })
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn jwks_from_random_bytes_is_ok_or_err(raw in prop::collection::vec(any::<u8>(), 0..128)) {
        if let Ok(set) = parse_jwks(&raw, &Alg::ALL) {
            prop_assert!(!set.is_empty());
        }
    }

    #[test]
    fn mutated_jwks_never_yield_unsafe_keys(
        entries in prop::collection::vec(jwk_variant(), 1..4),
        asymmetric_only in any::<bool>(),
    ) {
        let allowed: &[Alg] = if asymmetric_only { &Alg::ASYMMETRIC } else { &Alg::ALL };
        let doc = json!({"keys": entries});
        let Ok(set) = parse_jwks(doc.to_string().as_bytes(), allowed) else {
            return Ok(());
        };
        for key in &set.keys {
            let alg = key.key.alg();
            prop_assert_ne!(alg, Alg::HS256, "an HMAC key from a JWKS");
            prop_assert!(allowed.contains(&alg));
            prop_assert!(key.kid.as_ref().is_none_or(|k| k.len() <= MAX_KID_BYTES));
            // Every kept key came from an entry that is for signing and names no other alg.
            let source = entries.iter().any(|e| {
                e.get("use").is_none_or(|u| u == "sig")
                    && e.get("alg").is_none_or(|a| a == alg.name())
                    && e.get("kid").and_then(Value::as_str) == key.kid.as_deref()
            });
            prop_assert!(source, "{:?} from {}", key, doc);
        }
        prop_assert_eq!(set.len() + set.skipped >= entries.len(), true);
    }
}

// ---------------------------------------------------------------------------------------------
// The path matcher

fn rules() -> Vec<Rule> {
    vec![
        Rule {
            path: PathMatch::Exact("/healthz".into()),
            requirement: Requirement::Anonymous,
        },
        Rule {
            path: PathMatch::Prefix("/public".into()),
            requirement: Requirement::Anonymous,
        },
        Rule {
            path: PathMatch::Prefix("/admin/".into()),
            requirement: Requirement::Deny,
        },
    ]
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn prefix_matching_is_segment_wise(
        prefix in "(/[a-z]{1,3}){1,3}/?",
        path in "[/a-z.?#%]{0,16}",
        glue in prop_oneof![Just(""), Just("/"), Just("x"), Just("?q")],
    ) {
        for candidate in [path.clone(), format!("{prefix}{glue}{path}")] {
            let got = PathMatch::Prefix(prefix.clone()).matches(&candidate);
            let want = if prefix.ends_with('/') {
                candidate.starts_with(&prefix)
            } else {
                candidate == prefix || candidate.starts_with(&format!("{prefix}/"))
            };
            prop_assert_eq!(got, want, "{} vs {}", prefix, candidate);
            prop_assert_eq!(PathMatch::Exact(prefix.clone()).matches(&candidate), candidate == prefix);
        }
    }

    #[test]
    fn only_canonical_spellings_of_exempt_paths_are_exempt(
        raw in "[/\\\\.%;?#a-z0-9]{0,32}",
        exempt in prop_oneof![Just("/healthz"), Just("/public"), Just("/public/a")],
        noise in prop_oneof![Just("//"), Just("/./"), Just("/../"), Just("/x/../"), Just("\\"), Just("%2f"), Just("/%2e%2e/")],
        at in any::<prop::sample::Index>(),
    ) {
        let d = Requirement::any_token();
        let r = rules();
        // Random paths: exempt only if canonical and under an exempt rule.
        let stripped = strip_query(&raw);
        prop_assert!(raw.starts_with(stripped) && !stripped.contains(['?', '#']));
        if requirement_for(&r, &d, &raw) == &Requirement::Anonymous {
            prop_assert!(is_canonical(stripped));
            prop_assert!(stripped == "/healthz" || stripped == "/public" || stripped.starts_with("/public/"));
        }
        // An exempt path with a non-canonical spelling spliced in is not exempt.
        let i = at.index(exempt.len() + 1);
        let spelled = format!("{}{}{}/v1/messages", &exempt[..i], noise, &exempt[i..]);
        prop_assert_ne!(requirement_for(&r, &d, &spelled), &Requirement::Anonymous, "{}", spelled);
    }
}

// ---------------------------------------------------------------------------------------------
// Claims to identity

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn identities_are_bounded_and_clean(
        claims in prop::collection::btree_map(
            prop_oneof![Just("sub".to_string()), Just("groups".to_string()), Just("scope".to_string()), Just("email".to_string()), Just("realm_access".to_string()), "[a-z.]{1,6}"],
            prop_oneof![
                json_value(),
                prop::collection::vec("[a-z \t\n\u{0}\u{7f}]{0,6}", 0..200).prop_map(|v| json!(v)),
                "[a-z \t\n\r]{0,5000}".prop_map(Value::from),
            ],
            0..6,
        ),
    ) {
        let claims: Map<String, Value> = claims.into_iter().collect();
        let policy = ClaimsPolicy {
            subject_claim: "sub".into(),
            group_claims: vec!["groups".into(), "scope".into(), "realm_access.roles".into()],
            forward: vec![("email".into(), "x-email".into()), ("realm_access".into(), "x-realm".into())],
        };
        match identity(&claims, &policy, "iss", None) {
            Ok(id) => {
                prop_assert_eq!(Some(id.subject.as_str()), claims.get("sub").and_then(Value::as_str));
                prop_assert!(!id.subject.is_empty());
                prop_assert!(id.groups.len() <= MAX_GROUPS);
                for (i, g) in id.groups.iter().enumerate() {
                    prop_assert!(!g.is_empty() && !id.groups[..i].contains(g));
                }
                // Filter state carries them unambiguously, whatever they contain.
                prop_assert_eq!(decode_groups(&encode_groups(&id.groups)), Some(id.groups.clone()));
                for (_, v) in &id.forwarded {
                    prop_assert!(v.len() <= MAX_FORWARDED_VALUE);
                    prop_assert!(!v.chars().any(char::is_control));
                }
            }
            Err(r) => {
                prop_assert_eq!(r, Reject::MissingClaim);
                prop_assert!(claims.get("sub").and_then(Value::as_str).is_none_or(str::is_empty));
            }
        }
    }
}
