//! Writes `testdata/harness.json`: keys, a JWKS and named tokens (valid ones and one per attack
//! class) for the harness tests in `tests/tests/filters/jwt_auth.rs`, all relative to a fixed
//! instant `now` that the tests set as the harness clock. Regenerate with
//! `cargo run -p tollgate-jwt-auth --example gen_harness_fixtures`.
//!
//! Hand-crafted headers are HMAC-signed (HS256, secret `HS_SECRET`) so that the attack is the
//! only defect of the token.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ct_codecs::{Base64UrlSafeNoPadding, Encoder};
use jwt_simple::prelude::*;
use serde_json::{json, Map, Value};

const NOW: u64 = 1_800_000_000;
const ISS: &str = "https://idp.test";
const HS_SECRET: &str = "tollgate-harness-hs256-secret-0123456789";

fn enc(raw: &[u8]) -> String {
    Base64UrlSafeNoPadding::encode_to_string(raw).unwrap()
}

fn hs_raw(header: &str, claims: &str) -> String {
    let input = format!("{}.{}", enc(header.as_bytes()), enc(claims.as_bytes()));
    let mac = hmac_sha256::HMAC::mac(input.as_bytes(), HS_SECRET.as_bytes());
    format!("{input}.{}", enc(&mac))
}

fn claims(extra: Value) -> JWTClaims<Map<String, Value>> {
    let mut custom = Map::new();
    custom.insert("groups".into(), json!(["agents"]));
    for (k, v) in extra.as_object().unwrap() {
        custom.insert(k.clone(), v.clone());
    }
    let mut c = Claims::with_custom_claims(custom, Duration::from_secs(3600))
        .with_issuer(ISS)
        .with_subject("alice")
        .with_audience("tollgate");
    c.issued_at = Some(UnixTimeStamp::from_secs(NOW));
    c.invalid_before = Some(UnixTimeStamp::from_secs(NOW));
    c.expires_at = Some(UnixTimeStamp::from_secs(NOW + 3600));
    c
}

fn base_claims() -> Value {
    json!({"iss": ISS, "sub": "alice", "aud": "tollgate", "groups": ["agents"], "iat": NOW, "exp": NOW + 3600})
}

fn with(patch: Value) -> String {
    let mut c = base_claims();
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c.to_string()
}

const H: &str = r#"{"alg":"HS256","typ":"JWT","kid":"hs1"}"#;

fn main() {
    let rs1 = RS256KeyPair::generate(2048).unwrap().with_key_id("rs1");
    let rs2 = RS256KeyPair::generate(2048).unwrap().with_key_id("rs2");
    let es1 = ES256KeyPair::generate().with_key_id("es1");
    let ed1 = Ed25519KeyPair::generate().with_key_id("ed1");
    let stranger = RS256KeyPair::generate(2048).unwrap().with_key_id("rs1");
    let jwk = |s: String| -> Value { serde_json::from_str(&s).unwrap() };
    let jwks = json!({"keys": [jwk(rs1.public_key().to_jwk()), jwk(es1.public_key().to_jwk()), jwk(ed1.public_key().to_jwk())]});
    let jwks_rotated = json!({"keys": [jwk(rs2.public_key().to_jwk())]});

    let mut t = Map::new();
    let mut put = |name: &str, token: String| {
        t.insert(name.into(), Value::String(token));
    };
    put("rs256", rs1.sign(claims(json!({}))).unwrap());
    put("es256", es1.sign(claims(json!({}))).unwrap());
    put("eddsa", ed1.sign(claims(json!({}))).unwrap());
    put("hs256", hs_raw(H, &base_claims().to_string()));
    put(
        "rs256_bob_no_groups",
        rs1.sign(claims(json!({"groups": []})).with_subject("bob"))
            .unwrap(),
    );
    put(
        "rs256_nested_roles",
        rs1.sign(claims(
            json!({"groups": null, "realm_access": {"roles": ["agents", "ops"]}}),
        ))
        .unwrap(),
    );
    put(
        "rs256_email",
        rs1.sign(claims(json!({"email": "alice@example.test"})))
            .unwrap(),
    );
    put("rs256_rotated_rs2", rs2.sign(claims(json!({}))).unwrap());
    put(
        "rs256_stranger_same_kid",
        stranger.sign(claims(json!({}))).unwrap(),
    );
    put(
        "expired",
        hs_raw(H, &with(json!({"iat": NOW - 7200, "exp": NOW - 3600}))),
    );
    put(
        "not_yet_valid",
        hs_raw(H, &with(json!({"nbf": NOW + 3600, "exp": NOW + 7200}))),
    );
    put(
        "issued_in_future",
        hs_raw(H, &with(json!({"iat": NOW + 3600, "exp": NOW + 7200}))),
    );
    put("no_exp", hs_raw(H, &with(json!({"exp": null}))));
    put(
        "long_lifetime",
        hs_raw(H, &with(json!({"exp": NOW + 30 * 86400}))),
    );
    put(
        "wrong_issuer",
        hs_raw(H, &with(json!({"iss": "https://evil.test"}))),
    );
    put(
        "wrong_audience",
        hs_raw(H, &with(json!({"aud": "someone-else"}))),
    );
    put(
        "audience_array_without_ours",
        hs_raw(H, &with(json!({"aud": ["a", "b"]}))),
    );
    put(
        "audience_array_with_ours",
        hs_raw(H, &with(json!({"aud": ["a", "tollgate"]}))),
    );
    put("missing_email", hs_raw(H, &with(json!({}))));
    let none_claims = enc(base_claims().to_string().as_bytes());
    put(
        "alg_none",
        format!("{}.{none_claims}.", enc(br#"{"alg":"none","typ":"JWT"}"#)),
    );
    put(
        "alg_none_signed",
        hs_raw(r#"{"alg":"nOnE","kid":"hs1"}"#, &base_claims().to_string()),
    );
    let pem = rs1.public_key().to_pem().unwrap();
    let forged = HS256Key::from_bytes(pem.as_bytes()).with_key_id("rs1");
    put(
        "hs256_with_rsa_public_key",
        forged.authenticate(claims(json!({}))).unwrap(),
    );
    put(
        "unknown_kid",
        hs_raw(
            r#"{"alg":"HS256","kid":"nope"}"#,
            &base_claims().to_string(),
        ),
    );
    put(
        "kid_injection",
        hs_raw(
            r#"{"alg":"HS256","kid":"../../../dev/null' OR '1'='1"}"#,
            &base_claims().to_string(),
        ),
    );
    put(
        "crit",
        hs_raw(
            r#"{"alg":"HS256","kid":"hs1","crit":["exp"],"exp":1}"#,
            &base_claims().to_string(),
        ),
    );
    put(
        "jku",
        hs_raw(
            r#"{"alg":"HS256","kid":"hs1","jku":"https://evil.test/jwks"}"#,
            &base_claims().to_string(),
        ),
    );
    put(
        "x5u",
        hs_raw(
            r#"{"alg":"HS256","kid":"hs1","x5u":"https://evil.test/c"}"#,
            &base_claims().to_string(),
        ),
    );
    put(
        "x5c",
        hs_raw(
            r#"{"alg":"HS256","kid":"hs1","x5c":["MIIB"]}"#,
            &base_claims().to_string(),
        ),
    );
    let embedded = format!(
        r#"{{"alg":"HS256","kid":"hs1","jwk":{}}}"#,
        es1.public_key().to_jwk()
    );
    put(
        "jwk_embedded",
        hs_raw(&embedded, &base_claims().to_string()),
    );
    put(
        "duplicate_claim",
        hs_raw(
            H,
            &format!(
                r#"{{"iss":"{ISS}","sub":"alice","aud":"tollgate","exp":{},"sub":"admin"}}"#,
                NOW + 3600
            ),
        ),
    );
    put(
        "duplicate_header",
        hs_raw(
            r#"{"alg":"HS256","kid":"hs1","alg":"none"}"#,
            &base_claims().to_string(),
        ),
    );
    put("non_string_sub", hs_raw(H, &with(json!({"sub": 42}))));
    put("non_string_iss", hs_raw(H, &with(json!({"iss": [ISS]}))));
    put(
        "non_numeric_exp",
        hs_raw(H, &with(json!({"exp": "2100000000"}))),
    );
    let good = hs_raw(H, &base_claims().to_string());
    let parts: Vec<&str> = good.split('.').collect();
    put(
        "malformed_base64",
        format!("{}.{}!.{}", parts[0], parts[1], parts[2]),
    );
    put("malformed_json", hs_raw(H, "{\"iss\":"));
    put("empty_signature", format!("{}.{}.", parts[0], parts[1]));
    put(
        "truncated_signature",
        format!("{}.{}.{}", parts[0], parts[1], &parts[2][..20]),
    );
    put(
        "oversized",
        hs_raw(H, &with(json!({"pad": "x".repeat(9000)}))),
    );
    put(
        "oversized_header",
        hs_raw(
            &format!(
                r#"{{"alg":"HS256","kid":"hs1","pad":"{}"}}"#,
                "x".repeat(900)
            ),
            &base_claims().to_string(),
        ),
    );
    put("two_parts", format!("{}.{}", parts[0], parts[1]));

    let out = json!({
        "now": NOW,
        "issuer": ISS,
        "hs256_secret": HS_SECRET,
        "jwks": jwks,
        "jwks_rotated": jwks_rotated,
        "tokens": t,
    });
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/harness.json");
    std::fs::write(path, serde_json::to_string_pretty(&out).unwrap() + "\n").unwrap();
    println!("wrote {path}");
}
