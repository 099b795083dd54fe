//! Attack-class and algorithm tests for [`super`]: every token is built here with jwt-simple
//! (or, for hand-crafted headers, signed with HMAC so that the attack is the only defect).

use super::*;
use crate::jwks::{hs256_key, parse_jwks, Key, VerifyKey};
use ct_codecs::Encoder;
use jwt_simple::prelude::*;
use serde_json::json;

const ISS: &str = "https://idp.example";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn now() -> u64 {
    Clock::now_since_epoch().as_secs()
}

fn enc(raw: &[u8]) -> String {
    Base64UrlSafeNoPadding::encode_to_string(raw).unwrap()
}

/// A token with exactly this header and claims text, HMAC-signed with `SECRET`.
fn hs_raw(header: &str, claims: &str) -> String {
    let signing_input = format!("{}.{}", enc(header.as_bytes()), enc(claims.as_bytes()));
    let mac = hmac_sha256::HMAC::mac(signing_input.as_bytes(), SECRET);
    format!("{signing_input}.{}", enc(&mac))
}

fn good_claims() -> String {
    let n = now();
    json!({"iss": ISS, "sub": "alice", "aud": "tollgate", "iat": n, "exp": n + 600}).to_string()
}

fn hs_policy() -> (Policy, KeySet) {
    let mut policy = Policy::new(ISS);
    policy.algorithms = vec![Alg::HS256];
    let keys = KeySet {
        keys: vec![hs256_key(SECRET, Some("h1".into()))],
        skipped: 0,
    };
    (policy, keys)
}

fn check(token: &str, policy: &Policy, keys: &KeySet) -> Result<(), Reject> {
    let d = decode(token, policy.max_token_bytes)?;
    verify(token, &d, policy, &[keys], now())
}

fn hs_check(header: &str, claims: &str) -> Result<(), Reject> {
    let (policy, keys) = hs_policy();
    check(&hs_raw(header, claims), &policy, &keys)
}

const H: &str = r#"{"alg":"HS256","typ":"JWT","kid":"h1"}"#;

#[test]
fn the_hmac_baseline_is_accepted() {
    // Every hand-crafted attack below differs from this accepted token in one place only.
    assert_eq!(hs_check(H, &good_claims()), Ok(()));
}

fn claims_for(builder: JWTClaims<NoCustomClaims>) -> JWTClaims<NoCustomClaims> {
    builder.with_issuer(ISS).with_subject("alice")
}

fn jwks_of(jwks: &[String]) -> Vec<u8> {
    format!("{{\"keys\":[{}]}}", jwks.join(",")).into_bytes()
}

#[test]
fn every_supported_algorithm_verifies_with_its_own_key() {
    let claims = || claims_for(Claims::create(Duration::from_mins(5)));
    let rs256 = RS256KeyPair::generate(2048).unwrap().with_key_id("rs256");
    let rs384 = RS384KeyPair::generate(2048).unwrap().with_key_id("rs384");
    let rs512 = RS512KeyPair::generate(2048).unwrap().with_key_id("rs512");
    let ps256 = PS256KeyPair::generate(2048).unwrap().with_key_id("ps256");
    let es256 = ES256KeyPair::generate().with_key_id("es256");
    let es384 = ES384KeyPair::generate().with_key_id("es384");
    let ed = Ed25519KeyPair::generate().with_key_id("ed");
    let tokens = vec![
        rs256.sign(claims()).unwrap(),
        rs384.sign(claims()).unwrap(),
        rs512.sign(claims()).unwrap(),
        ps256.sign(claims()).unwrap(),
        es256.sign(claims()).unwrap(),
        es384.sign(claims()).unwrap(),
        ed.sign(claims()).unwrap(),
    ];
    let keys = parse_jwks(
        &jwks_of(&[
            rs256.public_key().to_jwk(),
            rs384.public_key().to_jwk(),
            rs512.public_key().to_jwk(),
            ps256.public_key().to_jwk(),
            es256.public_key().to_jwk(),
            es384.public_key().to_jwk(),
            ed.public_key().to_jwk(),
        ]),
        &Alg::ASYMMETRIC,
    )
    .unwrap();
    let policy = Policy::new(ISS);
    for token in &tokens {
        assert_eq!(
            check(token, &policy, &keys),
            Ok(()),
            "{:?}",
            decode(token, 8192).map(|d| d.alg)
        );
    }
    // And a key set that lacks the key refuses each of them.
    let other = ES256KeyPair::generate().with_key_id("other");
    let lone = parse_jwks(&jwks_of(&[other.public_key().to_jwk()]), &Alg::ASYMMETRIC).unwrap();
    for token in &tokens {
        assert_eq!(check(token, &policy, &lone), Err(Reject::UnknownKey));
    }
}

#[test]
fn alg_none_is_refused_in_any_spelling() {
    for alg in ["none", "None", "NONE", "nOnE", " none"] {
        let header = format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"h1"}}"#);
        // Unsigned as the attack would be, and also with a valid MAC: both refused.
        let unsigned = format!(
            "{}.{}.",
            enc(header.as_bytes()),
            enc(good_claims().as_bytes())
        );
        let (policy, keys) = hs_policy();
        assert!(check(&unsigned, &policy, &keys).is_err(), "{alg}");
        assert_eq!(
            hs_check(&header, &good_claims()),
            Err(Reject::Algorithm),
            "{alg}"
        );
    }
}

#[test]
fn missing_or_non_string_alg_is_refused() {
    assert_eq!(
        hs_check(r#"{"typ":"JWT"}"#, &good_claims()),
        Err(Reject::Algorithm)
    );
    assert_eq!(
        hs_check(r#"{"alg":256}"#, &good_claims()),
        Err(Reject::Algorithm)
    );
    assert_eq!(
        hs_check(r#"{"alg":"hs256"}"#, &good_claims()),
        Err(Reject::Algorithm)
    );
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let rsa = RS256KeyPair::generate(2048).unwrap().with_key_id("r1");
    let public_pem = rsa.public_key().to_pem().unwrap();
    let public_der = rsa.public_key().to_der().unwrap();
    let mut keys = parse_jwks(&jwks_of(&[rsa.public_key().to_jwk()]), &Alg::ASYMMETRIC).unwrap();
    for secret in [public_pem.as_bytes(), public_der.as_slice()] {
        let forged = HS256Key::from_bytes(secret).with_key_id("r1");
        let token = forged
            .authenticate(claims_for(Claims::create(Duration::from_mins(5))))
            .unwrap();
        // Only asymmetric algorithms allowed: the algorithm itself is refused.
        assert_eq!(
            check(&token, &Policy::new(ISS), &keys),
            Err(Reject::Algorithm)
        );
        // HS256 allowed (with an unrelated secret): the RSA key never serves as an HMAC key.
        let mut policy = Policy::new(ISS);
        policy.algorithms.push(Alg::HS256);
        keys.keys.push(hs256_key(SECRET, None));
        assert_eq!(check(&token, &policy, &keys), Err(Reject::UnknownKey));
        keys.keys.pop();
    }
}

#[test]
fn the_key_is_used_with_its_own_algorithm_only() {
    // The same RSA key published for RS256; a PS256 token signed by it is refused.
    let rs = RS256KeyPair::generate(2048).unwrap().with_key_id("k");
    let der = rs.to_der().unwrap();
    let ps = PS256KeyPair::from_der(&der).unwrap().with_key_id("k");
    let keys = parse_jwks(&jwks_of(&[rs.public_key().to_jwk()]), &Alg::ASYMMETRIC).unwrap();
    let policy = Policy::new(ISS);
    let good = rs
        .sign(claims_for(Claims::create(Duration::from_mins(5))))
        .unwrap();
    let cross = ps
        .sign(claims_for(Claims::create(Duration::from_mins(5))))
        .unwrap();
    assert_eq!(check(&good, &policy, &keys), Ok(()));
    assert_eq!(check(&cross, &policy, &keys), Err(Reject::UnknownKey));
}

#[test]
fn null_truncated_and_foreign_signatures_are_refused() {
    let token = hs_raw(H, &good_claims());
    let (policy, keys) = hs_policy();
    let (signing_input, sig) = token.rsplit_once('.').unwrap();
    let empty = format!("{signing_input}.");
    assert_eq!(check(&empty, &policy, &keys), Err(Reject::Malformed));
    let chopped = format!("{signing_input}.{}", &sig[..sig.len() - 4]);
    assert!(check(&chopped, &policy, &keys).is_err());
    let raw_sig = Base64UrlSafeNoPadding::decode_to_vec(sig, None).unwrap();
    let truncated = format!("{signing_input}.{}", enc(&raw_sig[..16]));
    assert_eq!(check(&truncated, &policy, &keys), Err(Reject::Signature));
    let zeros = format!("{signing_input}.{}", enc(&[0u8; 32]));
    assert_eq!(check(&zeros, &policy, &keys), Err(Reject::Signature));
    let other_key = KeySet {
        keys: vec![hs256_key(
            b"another secret of 32 bytes......",
            Some("h1".into()),
        )],
        skipped: 0,
    };
    assert_eq!(check(&token, &policy, &other_key), Err(Reject::Signature));
}

#[test]
fn a_signature_by_another_key_with_the_same_kid_is_refused() {
    let real = ES256KeyPair::generate().with_key_id("k1");
    let attacker = ES256KeyPair::generate().with_key_id("k1");
    let keys = parse_jwks(&jwks_of(&[real.public_key().to_jwk()]), &Alg::ASYMMETRIC).unwrap();
    let token = attacker
        .sign(claims_for(Claims::create(Duration::from_mins(5))))
        .unwrap();
    assert_eq!(
        check(&token, &Policy::new(ISS), &keys),
        Err(Reject::Signature)
    );
}

#[test]
fn wrong_and_injected_key_ids_find_no_key() {
    for kid in [
        "h2",
        "../../../../dev/null",
        "' OR '1'='1' --",
        "h1\u{0000}",
        "/etc/passwd",
        "",
    ] {
        let header = json!({"alg":"HS256","typ":"JWT","kid": kid}).to_string();
        assert_eq!(
            hs_check(&header, &good_claims()),
            Err(Reject::UnknownKey),
            "{kid:?}"
        );
    }
    let long_kid = json!({"alg":"HS256","kid": "k".repeat(300)}).to_string();
    assert_eq!(hs_check(&long_kid, &good_claims()), Err(Reject::TooLarge));
    assert_eq!(
        hs_check(r#"{"alg":"HS256","kid":7}"#, &good_claims()),
        Err(Reject::Malformed)
    );
}

#[test]
fn a_token_without_kid_is_tried_against_keys_of_its_algorithm() {
    assert_eq!(hs_check(r#"{"alg":"HS256"}"#, &good_claims()), Ok(()));
}

#[test]
fn time_claims_are_enforced_with_the_configured_skew() {
    let n = now();
    let c = |exp: Option<u64>, nbf: Option<u64>, iat: Option<u64>| {
        let mut m = json!({"iss": ISS, "sub": "a"});
        if let Some(v) = exp {
            m["exp"] = v.into();
        }
        if let Some(v) = nbf {
            m["nbf"] = v.into();
        }
        if let Some(v) = iat {
            m["iat"] = v.into();
        }
        m.to_string()
    };
    assert_eq!(
        hs_check(H, &c(Some(n - 3600), None, None)),
        Err(Reject::Expired)
    );
    assert_eq!(
        hs_check(H, &c(Some(n - 120), None, None)),
        Err(Reject::Expired)
    );
    assert_eq!(
        hs_check(H, &c(Some(n - 30), None, None)),
        Ok(()),
        "within 60 s skew"
    );
    assert_eq!(
        hs_check(H, &c(Some(n + 600), Some(n + 3600), None)),
        Err(Reject::NotYetValid)
    );
    assert_eq!(
        hs_check(H, &c(Some(n + 600), Some(n + 30), None)),
        Ok(()),
        "within skew"
    );
    assert_eq!(
        hs_check(H, &c(Some(n + 600), None, Some(n + 3600))),
        Err(Reject::IssuedInFuture)
    );
    assert_eq!(
        hs_check(H, &c(None, None, Some(n))),
        Err(Reject::MissingExpiry)
    );
    // Fractional NumericDates are numbers too.
    let frac = json!({"iss": ISS, "sub": "a", "exp": (n + 600) as f64 + 0.5}).to_string();
    assert_eq!(hs_check(H, &frac), Ok(()));
}

#[test]
fn a_smaller_skew_is_honoured_and_exp_can_be_optional() {
    let (mut policy, keys) = hs_policy();
    policy.clock_skew_secs = 0;
    let n = now();
    let t = hs_raw(
        H,
        &json!({"iss": ISS, "sub": "a", "exp": n - 5}).to_string(),
    );
    assert_eq!(check(&t, &policy, &keys), Err(Reject::Expired));
    policy.require_exp = false;
    let t = hs_raw(H, &json!({"iss": ISS, "sub": "a"}).to_string());
    assert_eq!(check(&t, &policy, &keys), Ok(()));
}

#[test]
fn lifetime_beyond_the_maximum_is_refused() {
    let (mut policy, keys) = hs_policy();
    policy.max_lifetime_secs = Some(3600);
    let n = now();
    let ok = hs_raw(
        H,
        &json!({"iss": ISS, "sub": "a", "iat": n, "exp": n + 3600}).to_string(),
    );
    assert_eq!(check(&ok, &policy, &keys), Ok(()));
    let long = hs_raw(
        H,
        &json!({"iss": ISS, "sub": "a", "iat": n, "exp": n + 3601}).to_string(),
    );
    assert_eq!(check(&long, &policy, &keys), Err(Reject::Lifetime));
    let no_iat = hs_raw(
        H,
        &json!({"iss": ISS, "sub": "a", "exp": n + 86400}).to_string(),
    );
    assert_eq!(check(&no_iat, &policy, &keys), Err(Reject::Lifetime));
}

#[test]
fn wrong_issuer_or_audience_is_refused() {
    let n = now();
    let with = |iss: Value, aud: Value| {
        json!({"iss": iss, "sub": "a", "aud": aud, "exp": n + 600}).to_string()
    };
    let (mut policy, keys) = hs_policy();
    policy.audiences = vec!["tollgate".into()];
    let t = |claims: String| check(&hs_raw(H, &claims), &policy, &keys);
    assert_eq!(t(with(json!(ISS), json!("tollgate"))), Ok(()));
    assert_eq!(t(with(json!(ISS), json!(["other", "tollgate"]))), Ok(()));
    assert_eq!(
        t(with(json!("https://evil.example"), json!("tollgate"))),
        Err(Reject::Issuer)
    );
    assert_eq!(
        t(with(json!(ISS.to_string() + "/"), json!("tollgate"))),
        Err(Reject::Issuer)
    );
    assert_eq!(t(with(json!(ISS), json!("other"))), Err(Reject::Audience));
    assert_eq!(
        t(with(json!(ISS), json!(["other", "more"]))),
        Err(Reject::Audience)
    );
    assert_eq!(t(with(json!(ISS), json!([]))), Err(Reject::Audience));
    let no_aud = json!({"iss": ISS, "sub": "a", "exp": n + 600}).to_string();
    assert_eq!(t(no_aud), Err(Reject::Audience));
    let no_iss = json!({"sub": "a", "aud": "tollgate", "exp": n + 600}).to_string();
    assert_eq!(t(no_iss), Err(Reject::Issuer));
}

#[test]
fn required_claims_must_be_present() {
    let (mut policy, keys) = hs_policy();
    policy.required_claims = vec!["email".into(), "realm_access.roles".into()];
    let n = now();
    let full = json!({"iss": ISS, "sub": "a", "exp": n + 60, "email": "a@x",
                      "realm_access": {"roles": ["r"]}});
    assert_eq!(check(&hs_raw(H, &full.to_string()), &policy, &keys), Ok(()));
    let mut partial = full.clone();
    partial["realm_access"] = json!({});
    assert_eq!(
        check(&hs_raw(H, &partial.to_string()), &policy, &keys),
        Err(Reject::MissingClaim)
    );
    let mut null = full;
    null["email"] = Value::Null;
    assert_eq!(
        check(&hs_raw(H, &null.to_string()), &policy, &keys),
        Err(Reject::MissingClaim)
    );
}

#[test]
fn unknown_crit_is_refused() {
    for header in [
        r#"{"alg":"HS256","kid":"h1","crit":["exp"],"exp":1}"#,
        r#"{"alg":"HS256","kid":"h1","crit":["b64"],"b64":false}"#,
        r#"{"alg":"HS256","kid":"h1","crit":[]}"#,
        r#"{"alg":"HS256","kid":"h1","crit":"x"}"#,
    ] {
        assert_eq!(
            hs_check(header, &good_claims()),
            Err(Reject::Header),
            "{header}"
        );
    }
}

#[test]
fn embedded_or_remote_key_headers_are_refused() {
    let attacker = ES256KeyPair::generate();
    let jwk = attacker.public_key().to_jwk();
    for header in [
        format!(r#"{{"alg":"HS256","kid":"h1","jwk":{jwk}}}"#),
        r#"{"alg":"HS256","kid":"h1","jku":"https://evil.example/jwks"}"#.to_string(),
        r#"{"alg":"HS256","kid":"h1","x5u":"https://evil.example/cert"}"#.to_string(),
        r#"{"alg":"HS256","kid":"h1","x5c":["MIIB"]}"#.to_string(),
        r#"{"alg":"HS256","kid":"h1","enc":"A128GCM"}"#.to_string(),
        r#"{"alg":"HS256","kid":"h1","zip":"DEF"}"#.to_string(),
    ] {
        assert_eq!(
            hs_check(&header, &good_claims()),
            Err(Reject::Header),
            "{header}"
        );
    }
}

#[test]
fn unexpected_typ_is_refused() {
    assert_eq!(
        hs_check(r#"{"alg":"HS256","typ":"at+jwt"}"#, &good_claims()),
        Ok(())
    );
    assert_eq!(
        hs_check(r#"{"alg":"HS256","typ":"JWE"}"#, &good_claims()),
        Err(Reject::Header)
    );
    assert_eq!(
        hs_check(r#"{"alg":"HS256","typ":1}"#, &good_claims()),
        Err(Reject::Header)
    );
}

#[test]
fn malformed_base64_in_any_part_is_refused() {
    let token = hs_raw(H, &good_claims());
    let parts: Vec<&str> = token.split('.').collect();
    let (policy, keys) = hs_policy();
    for i in 0..3 {
        for bad in ["!!!!", "a+b/", "YQ==", "A", "ab cd"] {
            let mut p: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
            p[i] = bad.to_string();
            let t = p.join(".");
            let r = check(&t, &policy, &keys);
            assert!(
                matches!(r, Err(Reject::Malformed | Reject::Signature)),
                "part {i} {bad}: {r:?}"
            );
            if i < 2 {
                assert_eq!(r, Err(Reject::Malformed), "part {i} {bad}");
            }
        }
    }
    // Wrong number of parts.
    for t in ["", "a", "a.b", "a.b.c.d", &format!("{token}.")] {
        assert_eq!(check(t, &policy, &keys), Err(Reject::Malformed), "{t}");
    }
}

#[test]
fn malformed_json_in_header_or_claims_is_refused() {
    assert_eq!(
        hs_check("{\"alg\":\"HS256\"", &good_claims()),
        Err(Reject::Malformed)
    );
    assert_eq!(
        hs_check("[\"HS256\"]", &good_claims()),
        Err(Reject::Malformed)
    );
    assert_eq!(hs_check(H, "{\"iss\":"), Err(Reject::Malformed));
    assert_eq!(hs_check(H, "\"alice\""), Err(Reject::Malformed));
    assert_eq!(
        hs_check(H, &(good_claims() + " {}")),
        Err(Reject::Malformed)
    );
}

#[test]
fn registered_claims_must_have_their_types() {
    let n = now();
    let base = json!({"iss": ISS, "sub": "a", "exp": n + 600});
    let cases = [
        ("iss", json!(["https://idp.example"])),
        ("iss", json!(1)),
        ("sub", json!(42)),
        ("sub", json!({"id": "a"})),
        ("exp", json!("9999999999")),
        ("exp", json!(-5)),
        ("exp", json!(null)),
        ("nbf", json!("0")),
        ("iat", json!(true)),
        ("aud", json!(7)),
        ("aud", json!(["tollgate", 7])),
        ("jti", json!(1)),
    ];
    for (name, value) in cases {
        let mut c = base.clone();
        c[name] = value.clone();
        assert_eq!(
            hs_check(H, &c.to_string()),
            Err(Reject::Malformed),
            "{name}={value}"
        );
    }
}

#[test]
fn duplicate_keys_in_header_or_claims_are_refused() {
    let n = now();
    // The duplicate hides a second alg / a second subject: whichever a parser keeps, refuse.
    assert_eq!(
        hs_check(r#"{"alg":"HS256","kid":"h1","alg":"none"}"#, &good_claims()),
        Err(Reject::Malformed)
    );
    let dup_sub = format!(
        r#"{{"iss":"{ISS}","sub":"alice","exp":{},"sub":"admin"}}"#,
        n + 600
    );
    assert_eq!(hs_check(H, &dup_sub), Err(Reject::Malformed));
    let nested = format!(
        r#"{{"iss":"{ISS}","sub":"a","exp":{},"realm_access":{{"roles":["x"],"roles":["admin"]}}}}"#,
        n + 600
    );
    assert_eq!(hs_check(H, &nested), Err(Reject::Malformed));
}

#[test]
fn oversized_tokens_and_headers_are_refused() {
    let big_claim = json!({"iss": ISS, "sub": "a", "exp": now() + 600, "pad": "x".repeat(9000)});
    assert_eq!(hs_check(H, &big_claim.to_string()), Err(Reject::TooLarge));
    let big_header = json!({"alg": "HS256", "kid": "h1", "pad": "x".repeat(800)}).to_string();
    assert_eq!(hs_check(&big_header, &good_claims()), Err(Reject::TooLarge));
    // A larger configured limit accepts the large claim set.
    let (mut policy, keys) = hs_policy();
    policy.max_token_bytes = 64 * 1024;
    assert_eq!(
        check(&hs_raw(H, &big_claim.to_string()), &policy, &keys),
        Ok(())
    );
}

#[test]
fn messages_never_echo_anything_from_the_token() {
    for r in Reject::ALL {
        let m = r.message();
        assert!(!m.contains("eyJ"), "{m}");
        assert!(!r.reason().is_empty());
    }
    assert!(Reject::Forbidden.is_forbidden());
    assert!(!Reject::Signature.is_forbidden());
}

#[test]
fn a_key_whose_algorithm_differs_never_verifies() {
    // Belt and braces on the enum: a VerifyKey::ES256 refuses an RS256 token outright.
    let rs = RS256KeyPair::generate(2048).unwrap();
    let es = ES256KeyPair::generate();
    let token = rs
        .sign(claims_for(Claims::create(Duration::from_mins(5))))
        .unwrap();
    let es_set = parse_jwks(&jwks_of(&[es.public_key().to_jwk()]), &[Alg::ES256]).unwrap();
    let key = Key {
        kid: None,
        key: es_set.keys[0].key.clone(),
    };
    assert!(matches!(key.key, VerifyKey::ES256(_)));
    assert!(key
        .key
        .verify(&token, Alg::RS256, VerificationOptions::default())
        .is_err());
    // Nor does an RSA key verify a token whose header names another RSA algorithm.
    let jwk = rs.public_key().to_jwk();
    let set = parse_jwks(&jwks_of(&[jwk]), &[Alg::RS256, Alg::PS256]).unwrap();
    for k in &set.keys {
        let header_alg = if k.key.alg() == Alg::RS256 {
            Alg::PS256
        } else {
            Alg::RS256
        };
        let opts = VerificationOptions::default();
        assert!(k.key.verify(&token, header_alg, opts).is_err());
    }
    let rs256 = set.candidates(Alg::RS256, None).next().unwrap();
    assert!(rs256
        .key
        .verify(&token, Alg::RS256, VerificationOptions::default())
        .is_ok());
}

/// The token's segments with the signature segment replaced.
fn with_signature(token: &str, signature: &str) -> String {
    let (input, _) = token.rsplit_once('.').unwrap();
    format!("{input}.{signature}")
}

#[test]
fn rsa_tokens_are_judged_like_jwt_simple_valid_and_corrupted() {
    // Our RSA code against jwt-simple's (the rsa crate) on whole tokens: every verdict equal.
    let rs = RS256KeyPair::generate(2048).unwrap();
    let der = rs.to_der().unwrap();
    let rs384 = RS384KeyPair::from_der(&der).unwrap().with_key_id("rs384");
    let rs512 = RS512KeyPair::from_der(&der).unwrap().with_key_id("rs512");
    let ps256 = PS256KeyPair::from_der(&der).unwrap().with_key_id("ps256");
    let rs = rs.with_key_id("rs256");
    let claims = || claims_for(Claims::create(Duration::from_mins(5)));
    type Reference = Box<dyn Fn(&str) -> bool>;
    let (p1, p2, p3, p4) = (
        rs.public_key(),
        rs384.public_key(),
        rs512.public_key(),
        ps256.public_key(),
    );
    let cases: Vec<(String, Reference)> = vec![
        (
            rs.sign(claims()).unwrap(),
            Box::new(move |t| p1.verify_token::<NoCustomClaims>(t, None).is_ok()),
        ),
        (
            rs384.sign(claims()).unwrap(),
            Box::new(move |t| p2.verify_token::<NoCustomClaims>(t, None).is_ok()),
        ),
        (
            rs512.sign(claims()).unwrap(),
            Box::new(move |t| p3.verify_token::<NoCustomClaims>(t, None).is_ok()),
        ),
        (
            ps256.sign(claims()).unwrap(),
            Box::new(move |t| p4.verify_token::<NoCustomClaims>(t, None).is_ok()),
        ),
    ];
    let raw = jwks_of(&[
        rs.public_key().to_jwk(),
        rs384.public_key().to_jwk(),
        rs512.public_key().to_jwk(),
        ps256.public_key().to_jwk(),
    ]);
    let keys = parse_jwks(&raw, &Alg::ASYMMETRIC).unwrap();
    let policy = Policy::new(ISS);
    let signatures: Vec<String> = cases
        .iter()
        .map(|(t, _)| t.rsplit_once('.').unwrap().1.to_string())
        .collect();
    for (i, (token, reference)) in cases.iter().enumerate() {
        assert!(reference(token));
        assert_eq!(check(token, &policy, &keys), Ok(()), "case {i}");
        let sig = &signatures[i];
        let raw_sig = Base64UrlSafeNoPadding::decode_to_vec(sig, None).unwrap();
        let mut variants = vec![
            with_signature(token, &sig[..sig.len() - 1]),
            with_signature(token, &sig[4..]),
            with_signature(token, &format!("AAAA{sig}")),
            with_signature(token, &enc(&[0u8; 256])),
            with_signature(token, &enc(&[0xFFu8; 256])),
            with_signature(token, &enc(&[&[0u8][..], &raw_sig].concat())),
        ];
        for bit in [0, 7, 8 * 128 + 3, 8 * 255 + 7] {
            let mut s = raw_sig.clone();
            s[bit / 8] ^= 1 << (bit % 8);
            variants.push(with_signature(token, &enc(&s)));
        }
        // Another algorithm's valid signature over another token, and this signature moved
        // onto another token's header and claims.
        for (j, other) in signatures.iter().enumerate() {
            if j != i {
                variants.push(with_signature(token, other));
                variants.push(with_signature(&cases[j].0, sig));
            }
        }
        // A claims segment changed after signing.
        let parts: Vec<&str> = token.split('.').collect();
        let tampered = claims_for(Claims::create(Duration::from_mins(6)));
        let tampered = enc(serde_json::to_string(&tampered).unwrap().as_bytes());
        variants.push(format!("{}.{tampered}.{}", parts[0], parts[2]));
        for (n, bad) in variants.iter().enumerate() {
            let ours = check(bad, &policy, &keys);
            assert!(ours.is_err(), "case {i} variant {n} accepted");
            assert!(!reference(bad), "case {i} variant {n}: jwt-simple accepts");
        }
    }
}

#[test]
fn es256_tokens_are_judged_like_jwt_simple_valid_and_corrupted() {
    // Our P-256 code (tollgate-verify's src/p256.rs) against jwt-simple's (the p256 crate) on whole tokens:
    // every verdict equal, high-s twins accepted by both.
    use rsa::BigUint;
    let n = BigUint::parse_bytes(
        b"FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551",
        16,
    )
    .unwrap();
    let be32 = |x: &BigUint| {
        let raw = x.to_bytes_be();
        let mut out = vec![0u8; 32 - raw.len()];
        out.extend_from_slice(&raw);
        out
    };
    let pairs: Vec<ES256KeyPair> = (0..8)
        .map(|i| ES256KeyPair::generate().with_key_id(&format!("es{i}")))
        .collect();
    let keys = parse_jwks(
        &jwks_of(
            &pairs
                .iter()
                .map(|p| p.public_key().to_jwk())
                .collect::<Vec<_>>(),
        ),
        &Alg::ASYMMETRIC,
    )
    .unwrap();
    let policy = Policy::new(ISS);
    let tokens: Vec<String> = pairs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.sign(claims_for(Claims::create(Duration::from_mins(
                5 + i as u64,
            ))))
            .unwrap()
        })
        .collect();
    let mut rng = 0x5eed_e256_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for (i, token) in tokens.iter().enumerate() {
        let public = pairs[i].public_key();
        let reference = |t: &str| public.verify_token::<NoCustomClaims>(t, None).is_ok();
        assert!(reference(token));
        assert_eq!(check(token, &policy, &keys), Ok(()), "token {i}");
        let sig = token.rsplit_once('.').unwrap().1;
        let raw = Base64UrlSafeNoPadding::decode_to_vec(sig, None).unwrap();
        assert_eq!(raw.len(), 64);
        let (r, s) = (
            BigUint::from_bytes_be(&raw[..32]),
            BigUint::from_bytes_be(&raw[32..]),
        );
        // The high-s twin (n − s) is a valid signature for both.
        let high = [be32(&r), be32(&(&n - &s))].concat();
        let twin = with_signature(token, &enc(&high));
        assert!(reference(&twin), "jwt-simple refuses n - s");
        assert_eq!(check(&twin, &policy, &keys), Ok(()), "n - s refused");
        let mut variants = vec![
            with_signature(token, &sig[..sig.len() - 1]),
            with_signature(token, &sig[4..]),
            with_signature(token, &format!("AAAA{sig}")),
            with_signature(token, &enc(&[0u8; 64])),
            with_signature(token, &enc(&[0xFFu8; 64])),
            with_signature(token, &enc(&raw[..32])),
            with_signature(token, &enc(&[&[0u8][..], &raw].concat())),
            with_signature(token, &enc(&[&raw[..], &[0u8][..]].concat())),
            with_signature(
                token,
                &enc(&[raw[32..].to_vec(), raw[..32].to_vec()].concat()),
            ),
            with_signature(token, ""),
        ];
        let zero = BigUint::from(0u32);
        for bad in [&zero, &n, &(&n + 1u32)] {
            let b = be32(bad);
            variants.push(with_signature(token, &enc(&[b.clone(), be32(&s)].concat())));
            variants.push(with_signature(token, &enc(&[be32(&r), b].concat())));
        }
        // r + n and s + n (same residues, out of range) where they fit in 32 bytes.
        for (a, b) in [(&r + &n, s.clone()), (r.clone(), &s + &n)] {
            if a.bits() <= 256 && b.bits() <= 256 {
                variants.push(with_signature(token, &enc(&[be32(&a), be32(&b)].concat())));
            }
        }
        for _ in 0..12 {
            let bit = (next() % 512) as usize;
            let mut flipped = raw.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            variants.push(with_signature(token, &enc(&flipped)));
        }
        for (j, other) in tokens.iter().enumerate() {
            if j != i {
                let other_sig = other.rsplit_once('.').unwrap().1;
                variants.push(with_signature(token, other_sig));
                variants.push(with_signature(other, sig));
            }
        }
        // A claims segment changed after signing.
        let parts: Vec<&str> = token.split('.').collect();
        let tampered = claims_for(Claims::create(Duration::from_mins(60)));
        let tampered = enc(serde_json::to_string(&tampered).unwrap().as_bytes());
        variants.push(format!("{}.{tampered}.{}", parts[0], parts[2]));
        for (v, bad) in variants.iter().enumerate() {
            assert!(
                check(bad, &policy, &keys).is_err(),
                "token {i} variant {v} accepted"
            );
            assert!(!reference(bad), "token {i} variant {v}: jwt-simple accepts");
        }
    }
}
