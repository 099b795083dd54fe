//! jwt-auth through the harness: the very `.wasm` Envoy loads, with tokens and keys from
//! `filters/jwt-auth/testdata/harness.json` (written by that crate's `gen_harness_fixtures`
//! example) and the harness clock set to the fixtures' instant. Asserted: what the client
//! and the upstream receive, filter state, callouts and metrics.

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Value};
use tollgate_harness::{
    CalloutReply, FilterSpec, Gateway, HarnessError, Host, Outcome, Request, Upstream,
};

const FIXTURES: &str = include_str!("../../../filters/jwt-auth/testdata/harness.json");
const SECRET_ENV: &str = "TOLLGATE_TEST_HS256";

fn fixtures() -> Value {
    serde_json::from_str(FIXTURES).expect("fixtures")
}

fn token(name: &str) -> String {
    fixtures()["tokens"][name]
        .as_str()
        .unwrap_or_else(|| panic!("no fixture token {name}"))
        .to_string()
}

/// The inline-JWKS policy the tests run (HS256 enabled for the hand-crafted attack tokens).
fn policy() -> Value {
    let f = fixtures();
    json!({
        "providers": [{
            "name": "test",
            "issuer": f["issuer"],
            "audiences": ["tollgate"],
            "algorithms": ["RS256", "ES256", "EdDSA", "HS256"],
            "jwks": f["jwks"],
            "hs256_secret_env": SECRET_ENV,
            "hs256_kid": "hs1",
            "max_lifetime_s": 86400,
            "group_claims": ["groups", "realm_access.roles"],
            "forward_claims": [{"claim": "email", "header": "x-tollgate-email"}]
        }],
        "from_headers": [
            {"header": "authorization", "prefix": "Bearer "},
            {"header": "x-api-key"}
        ],
        "rules": [
            {"exact": "/healthz", "anonymous": true},
            {"prefix": "/v1/models"},
            {"prefix": "/v1/messages", "groups_any": ["agents"]}
        ]
    })
}

/// One host per test process: the module is compiled once.
fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| Host::new().expect("host"))
}

fn secret() -> String {
    fixtures()["hs256_secret"]
        .as_str()
        .expect("secret")
        .to_string()
}

fn build(config: &Value, secret: Option<&str>) -> Result<Gateway, HarnessError> {
    let host = host();
    let mut spec = FilterSpec::new(tollgate_tests::wasm_path("jwt-auth"))
        .name("jwt-auth")
        .config(config.to_string());
    if let Some(s) = secret {
        spec = spec.env(SECRET_ENV, s);
    }
    let now = fixtures()["now"].as_u64().expect("now");
    Gateway::builder(host)
        .filter(spec)
        .cluster("idp")
        .start_time(UNIX_EPOCH + Duration::from_secs(now))
        .build()
}

fn gateway_with(config: &Value) -> Gateway {
    let secret = fixtures()["hs256_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    build(config, Some(&secret)).unwrap_or_else(|e| panic!("jwt-auth must configure: {e}"))
}

fn gateway() -> Gateway {
    gateway_with(&policy())
}

fn upstream() -> Upstream {
    Upstream::new(200)
        .header("content-type", "application/json")
        .body(r#"{"ok":true}"#)
}

fn with_bearer(path: &str, token: &str) -> Request {
    Request::post(path)
        .header("authorization", format!("Bearer {token}"))
        .body(r#"{"model":"m"}"#)
}

fn assert_401(out: &Outcome, message: &str) {
    assert_eq!(out.client.status, 401, "{}", out.client.text());
    assert_eq!(
        out.client.header("www-authenticate").as_deref(),
        Some("Bearer realm=\"tollgate\", error=\"invalid_token\"")
    );
    let body = out.client.json();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "authentication_error");
    assert_eq!(body["error"]["message"], message);
    assert!(
        out.upstream.is_none(),
        "a refused request must not reach the upstream"
    );
    assert!(out.failure.is_none(), "{:?}", out.failure);
    assert_eq!(out.property("tollgate.subject"), None);
}

fn assert_allowed(out: &Outcome, subject: &str) {
    assert_eq!(out.client.status, 200, "{}", out.client.text());
    let up = out.upstream.as_ref().expect("reached the upstream");
    assert_eq!(
        up.header("authorization"),
        None,
        "the token is removed before the upstream"
    );
    assert_eq!(out.property("tollgate.subject").as_deref(), Some(subject));
    assert_eq!(
        out.property("tollgate.issuer").as_deref(),
        Some("https://idp.test")
    );
}

#[test]
fn valid_tokens_of_every_algorithm_pass_and_record_identity() {
    let mut gw = gateway();
    for name in ["rs256", "es256", "eddsa", "hs256"] {
        let out = gw.run(with_bearer("/v1/messages", &token(name)), upstream());
        assert_allowed(&out, "alice");
        assert_eq!(
            out.property("tollgate.groups").as_deref(),
            Some("[\"agents\"]"),
            "{name}"
        );
        assert_eq!(
            out.property("tollgate.jwt_auth.verdict").as_deref(),
            Some("allowed")
        );
    }
    assert_eq!(gw.metric("tollgate_jwt_auth_allowed"), Some(4));
    assert_eq!(gw.metric("tollgate_jwt_auth_cache_miss"), Some(4));
}

#[test]
fn every_attack_class_is_refused_with_401() {
    let cases = [
        ("expired", "token expired", "expired"),
        ("not_yet_valid", "token not yet valid", "not_yet_valid"),
        (
            "issued_in_future",
            "token issued in the future",
            "issued_in_future",
        ),
        ("no_exp", "token has no expiry", "missing_exp"),
        (
            "long_lifetime",
            "token lifetime exceeds the allowed maximum",
            "lifetime",
        ),
        ("wrong_issuer", "token issuer not trusted", "issuer"),
        ("wrong_audience", "token audience not accepted", "audience"),
        (
            "audience_array_without_ours",
            "token audience not accepted",
            "audience",
        ),
        ("alg_none", "token algorithm not allowed", "algorithm"),
        (
            "alg_none_signed",
            "token algorithm not allowed",
            "algorithm",
        ),
        (
            "hs256_with_rsa_public_key",
            "no trusted key matches the token",
            "unknown_key",
        ),
        (
            "unknown_kid",
            "no trusted key matches the token",
            "unknown_key",
        ),
        (
            "kid_injection",
            "no trusted key matches the token",
            "unknown_key",
        ),
        (
            "rs256_rotated_rs2",
            "no trusted key matches the token",
            "unknown_key",
        ),
        (
            "rs256_stranger_same_kid",
            "invalid token signature",
            "signature",
        ),
        (
            "truncated_signature",
            "invalid token signature",
            "signature",
        ),
        ("crit", "token header not allowed", "header"),
        ("jku", "token header not allowed", "header"),
        ("x5u", "token header not allowed", "header"),
        ("x5c", "token header not allowed", "header"),
        ("jwk_embedded", "token header not allowed", "header"),
        ("duplicate_claim", "malformed token", "malformed"),
        ("duplicate_header", "malformed token", "malformed"),
        ("non_string_sub", "malformed token", "malformed"),
        ("non_string_iss", "malformed token", "malformed"),
        ("non_numeric_exp", "malformed token", "malformed"),
        ("malformed_base64", "malformed token", "malformed"),
        ("malformed_json", "malformed token", "malformed"),
        ("empty_signature", "malformed token", "malformed"),
        ("two_parts", "malformed token", "malformed"),
        ("oversized", "token too large", "too_large"),
        ("oversized_header", "token too large", "too_large"),
    ];
    let mut gw = gateway();
    let mut expected: std::collections::HashMap<&str, u64> = Default::default();
    for (name, message, reason) in cases {
        let t = token(name);
        let out = gw.run(with_bearer("/v1/models", &t), upstream());
        assert_401(&out, message);
        assert!(
            !out.client.text().contains(&t),
            "{name}: the token is echoed"
        );
        for entry in &out.logs {
            assert!(!entry.message.contains(&t), "{name}: the token is logged");
        }
        assert_eq!(
            out.property("tollgate.jwt_auth.verdict"),
            Some(format!("denied:{reason}")),
            "{name}"
        );
        *expected.entry(reason).or_default() += 1;
    }
    for (reason, n) in expected {
        assert_eq!(
            gw.metric(&format!("tollgate_jwt_auth_denied_{reason}")),
            Some(n),
            "{reason}"
        );
    }
    assert_eq!(gw.metric("tollgate_jwt_auth_allowed"), Some(0));
}

#[test]
fn the_audience_array_containing_ours_passes() {
    let mut gw = gateway();
    let out = gw.run(
        with_bearer("/v1/models", &token("audience_array_with_ours")),
        upstream(),
    );
    assert_allowed(&out, "alice");
}

#[test]
fn missing_token_and_tokens_in_unexpected_places_are_refused() {
    let mut gw = gateway();
    let t = token("rs256");
    assert_401(
        &gw.run(Request::get("/v1/models"), upstream()),
        "missing bearer token",
    );
    let in_query = Request::get(&format!("/v1/models?access_token={t}"));
    assert_401(&gw.run(in_query, upstream()), "missing bearer token");
    let in_cookie = Request::get("/v1/models").header("cookie", format!("token={t}"));
    assert_401(&gw.run(in_cookie, upstream()), "missing bearer token");
    let other_header = Request::get("/v1/models").header("x-auth-token", &t);
    assert_401(&gw.run(other_header, upstream()), "missing bearer token");
    let basic = Request::get("/v1/models").header("authorization", "Basic YTpi");
    assert_401(&gw.run(basic, upstream()), "missing bearer token");
    assert_eq!(gw.metric("tollgate_jwt_auth_denied_missing"), Some(5));
}

#[test]
fn more_than_one_token_is_refused() {
    let mut gw = gateway();
    let t = token("rs256");
    let two = with_bearer("/v1/models", &t).header("x-api-key", &t);
    assert_401(
        &gw.run(two, upstream()),
        "more than one token in the request",
    );
    let repeated = with_bearer("/v1/models", &t).header("authorization", format!("Bearer {t}"));
    assert_401(
        &gw.run(repeated, upstream()),
        "more than one token in the request",
    );
}

#[test]
fn x_api_key_carries_a_token_and_is_removed_before_the_upstream() {
    let mut gw = gateway();
    let out = gw.run(
        Request::get("/v1/models").header("x-api-key", token("es256")),
        upstream(),
    );
    assert_eq!(out.client.status, 200);
    assert_eq!(
        out.upstream.as_ref().and_then(|u| u.header("x-api-key")),
        None
    );
}

#[test]
fn forward_token_keeps_it_for_the_upstream() {
    let mut config = policy();
    config["forward_token"] = json!(true);
    let mut gw = gateway_with(&config);
    let t = token("rs256");
    let out = gw.run(with_bearer("/v1/models", &t), upstream());
    assert_eq!(
        out.upstream
            .as_ref()
            .and_then(|u| u.header("authorization")),
        Some(format!("Bearer {t}"))
    );
}

#[test]
fn a_valid_token_lacking_the_group_gets_403_on_messages_only() {
    let mut gw = gateway();
    let t = token("rs256_bob_no_groups");
    let out = gw.run(with_bearer("/v1/messages", &t), upstream());
    assert_eq!(out.client.status, 403);
    assert_eq!(out.client.json()["error"]["type"], "permission_error");
    assert!(out.upstream.is_none());
    let out = gw.run(with_bearer("/v1/models", &t), upstream());
    assert_allowed(&out, "bob");
    assert_eq!(out.property("tollgate.groups").as_deref(), Some("[]"));
    assert_eq!(gw.metric("tollgate_jwt_auth_denied_forbidden"), Some(1));
    // The query string does not change which rule applies.
    let out = gw.run(with_bearer("/v1/messages?beta=true", &t), upstream());
    assert_eq!(out.client.status, 403);
}

#[test]
fn nested_role_claims_count_as_groups() {
    let mut gw = gateway();
    let out = gw.run(
        with_bearer("/v1/messages", &token("rs256_nested_roles")),
        upstream(),
    );
    assert_allowed(&out, "alice");
    assert_eq!(
        out.property("tollgate.groups").as_deref(),
        Some("[\"agents\",\"ops\"]")
    );
}

#[test]
fn anonymous_paths_need_no_token_but_cannot_be_borrowed() {
    let mut gw = gateway();
    let out = gw.run(Request::get("/healthz"), upstream());
    assert_eq!(out.client.status, 200);
    assert_eq!(
        out.property("tollgate.jwt_auth.verdict").as_deref(),
        Some("anonymous")
    );
    assert_401(
        &gw.run(Request::get("/healthz/../v1/messages"), upstream()),
        "missing bearer token",
    );
    assert_401(
        &gw.run(Request::get("/healthz/x"), upstream()),
        "missing bearer token",
    );
}

#[test]
fn forwarded_claims_replace_client_supplied_copies() {
    let mut gw = gateway();
    let forged = Request::get("/v1/models")
        .header("authorization", format!("Bearer {}", token("rs256_email")))
        .header("x-tollgate-email", "admin@evil.test");
    let out = gw.run(forged, upstream());
    assert_eq!(
        out.upstream
            .as_ref()
            .and_then(|u| u.header("x-tollgate-email"))
            .as_deref(),
        Some("alice@example.test")
    );
    // Without the claim, the client's copy is still removed.
    let forged =
        with_bearer("/v1/models", &token("rs256")).header("x-tollgate-email", "admin@evil.test");
    let out = gw.run(forged, upstream());
    assert_eq!(
        out.upstream
            .as_ref()
            .and_then(|u| u.header("x-tollgate-email")),
        None
    );
}

#[test]
fn a_reused_token_is_served_from_the_cache_until_it_expires() {
    let mut gw = gateway();
    let t = token("rs256");
    for _ in 0..3 {
        assert_allowed(
            &gw.run(with_bearer("/v1/messages", &t), upstream()),
            "alice",
        );
    }
    assert_eq!(gw.metric("tollgate_jwt_auth_cache_miss"), Some(1));
    assert_eq!(gw.metric("tollgate_jwt_auth_cache_hit"), Some(2));
    // The cached identity still meets per-path requirements.
    let bob = token("rs256_bob_no_groups");
    assert_eq!(
        gw.run(with_bearer("/v1/models", &bob), upstream())
            .client
            .status,
        200
    );
    assert_eq!(
        gw.run(with_bearer("/v1/messages", &bob), upstream())
            .client
            .status,
        403
    );
    // Past exp (+ skew) the cache does not answer: the token is verified again and refused.
    gw.advance(Duration::from_secs(3600 + 61));
    assert_401(
        &gw.run(with_bearer("/v1/messages", &t), upstream()),
        "token expired",
    );
}

fn assert_config_error(config: Value, needle: &str) {
    assert_config_error_env(config, needle, Some(&secret()));
}

fn assert_config_error_env(config: Value, needle: &str, secret: Option<&str>) {
    match build(&config, secret) {
        Err(HarnessError::Configure { filter, logs }) => {
            assert_eq!(filter, "jwt-auth");
            assert!(
                logs.iter().any(|l| l.message.contains(needle)),
                "{needle} not in {logs:?}"
            );
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(gw) => panic!("configuration accepted: {config}\n{:?}", gw.logs()),
    }
}

#[test]
fn configuration_errors_are_refused_at_load_with_the_field() {
    assert_config_error(json!({}), "providers: at least one provider is required");
    assert_config_error(
        json!({"providers": [{"issuer": "x"}]}),
        "providers[0]: no keys",
    );
    let mut p = policy();
    p["providers"][0]["algorithms"] = json!(["RS256", "none"]);
    assert_config_error(p, "providers[0].algorithms[1]: unknown algorithm \"none\"");
    // The HS256 secret comes from the environment; without it the policy is refused.
    assert_config_error_env(
        policy(),
        "providers[0].hs256_secret_env: environment variable TOLLGATE_TEST_HS256 is not set",
        None,
    );
    let mut p = policy();
    p["rules"][1] = json!({"prefix": "/v1/models", "providers": ["nope"]});
    assert_config_error(p, "rules[1].providers[0]: no provider named \"nope\"");
    let mut p = policy();
    p["providers"][0]["jwks"] = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]});
    assert_config_error(p, "providers[0].jwks: JWKS has no usable key");
    assert_config_error(
        json!({"providers": [{"issuer": "x", "jwks": {"keys": []}}], "bogus": 1}),
        "unknown field `bogus`",
    );
}

fn remote_policy(extra: Value) -> Value {
    let mut remote = json!({"cluster": "idp", "path": "/jwks", "timeout_ms": 2000, "ttl_s": 600,
                            "min_refetch_interval_s": 30, "grace_s": 300});
    for (k, v) in extra.as_object().expect("object") {
        remote[k] = v.clone();
        if v.is_null() {
            remote.as_object_mut().expect("object").remove(k);
        }
    }
    json!({
        "providers": [{
            "issuer": "https://idp.test",
            "audiences": ["tollgate"],
            "algorithms": ["RS256", "ES256"],
            "remote_jwks": remote
        }]
    })
}

fn jwks(name: &str) -> Vec<u8> {
    fixtures()[name].to_string().into_bytes()
}

#[test]
fn remote_keys_are_fetched_on_first_use_and_waiting_requests_resume() {
    let mut gw = gateway_with(&remote_policy(json!({})));
    gw.script_callout(
        "idp",
        CalloutReply::ok(200, jwks("jwks")).delay(Duration::from_millis(200)),
    );
    let t = token("rs256");
    let outs = gw.run_concurrently(vec![
        (with_bearer("/v1/models", &t), upstream()),
        (with_bearer("/v1/models", &token("es256")), upstream()),
        (with_bearer("/v1/models", &t), upstream()),
    ]);
    for out in &outs {
        assert_allowed(out, "alice");
    }
    let callouts: Vec<_> = outs.iter().flat_map(|o| o.callouts.iter()).collect();
    assert_eq!(callouts.len(), 1, "one fetch for concurrent first requests");
    assert_eq!(callouts[0].cluster, "idp");
    assert_eq!(
        callouts[0].headers.get_str(":path").as_deref(),
        Some("/jwks")
    );
    assert_eq!(
        callouts[0].headers.get_str(":authority").as_deref(),
        Some("idp.test")
    );
    assert_eq!(gw.metric("tollgate_jwt_auth_jwks_fetch_ok"), Some(1));
    // The fetched JWKS is published for the other workers: fetch time (8 bytes) + document.
    let (shared, _) = gw
        .shared_data("jwt-auth", "tollgate.jwt_auth.jwks.https://idp.test")
        .expect("keys shared with the other workers");
    assert_eq!(&shared[8..], jwks("jwks").as_slice());
    let at = u64::from_be_bytes(shared[..8].try_into().expect("8 bytes"));
    assert_eq!(at, fixtures()["now"].as_u64().expect("now"));
}

#[test]
fn idp_unreachable_gives_401_with_a_clear_message() {
    let mut gw = gateway_with(&remote_policy(json!({})));
    gw.script_callout("idp", CalloutReply::fail());
    let out = gw.run(with_bearer("/v1/models", &token("rs256")), upstream());
    assert_401(
        &out,
        "cannot verify token: the identity provider's signing keys are unavailable",
    );
    assert_eq!(gw.metric("tollgate_jwt_auth_jwks_fetch_failed"), Some(1));
    // Within the refetch interval no new fetch is made: refused at once.
    let out = gw.run(with_bearer("/v1/models", &token("rs256")), upstream());
    assert_401(
        &out,
        "cannot verify token: the identity provider's signing keys are unavailable",
    );
    assert!(out.callouts.is_empty());
    // After it, the tick retries (the IdP is back): the next request finds the keys.
    gw.script_callout("idp", CalloutReply::ok(200, jwks("jwks")));
    gw.advance(Duration::from_secs(31));
    assert_eq!(gw.metric("tollgate_jwt_auth_jwks_fetch_ok"), Some(1));
    let out = gw.run(with_bearer("/v1/models", &token("rs256")), upstream());
    assert_allowed(&out, "alice");
    assert!(out.callouts.is_empty());
}

#[test]
fn a_fetch_that_times_out_fails_the_waiting_request() {
    let mut gw = gateway_with(&remote_policy(json!({})));
    gw.script_callout("idp", CalloutReply::timeout());
    let out = gw.run(with_bearer("/v1/models", &token("rs256")), upstream());
    assert_401(
        &out,
        "cannot verify token: the identity provider's signing keys are unavailable",
    );
}

#[test]
fn key_rotation_unknown_kid_refetches_once_and_is_rate_limited() {
    let mut gw = gateway_with(&remote_policy(json!({})));
    gw.script_callout("idp", CalloutReply::ok(200, jwks("jwks")));
    assert_allowed(
        &gw.run(with_bearer("/v1/models", &token("rs256")), upstream()),
        "alice",
    );
    // The IdP rotates to rs2: a token with the new kid triggers one refetch and passes.
    gw.advance(Duration::from_secs(40));
    gw.script_callout("idp", CalloutReply::ok(200, jwks("jwks_rotated")));
    let out = gw.run(
        with_bearer("/v1/models", &token("rs256_rotated_rs2")),
        upstream(),
    );
    assert_allowed(&out, "alice");
    assert_eq!(out.callouts.len(), 1);
    // rs1 is gone from the set: a not-yet-cached rs1 token (es256 here, also removed) is refused
    // without another fetch — the refetch interval rate-limits unknown kids.
    for _ in 0..5 {
        let out = gw.run(with_bearer("/v1/models", &token("es256")), upstream());
        assert_401(&out, "no trusted key matches the token");
        assert!(out.callouts.is_empty(), "rate-limited");
    }
    assert_eq!(gw.metric("tollgate_jwt_auth_jwks_fetch_ok"), Some(2));
}

#[test]
fn oidc_discovery_then_jwks_then_ttl_refresh_on_tick() {
    let mut gw = gateway_with(&remote_policy(json!({"path": null, "discovery": true})));
    let doc = json!({"issuer": "https://idp.test", "jwks_uri": "https://idp.test/oauth/keys"});
    gw.script_callout("idp", CalloutReply::ok(200, doc.to_string()));
    gw.script_callout("idp", CalloutReply::ok(200, jwks("jwks")));
    // The first tick fetches the keys before any request.
    gw.advance(Duration::from_secs(2));
    assert_eq!(gw.metric("tollgate_jwt_auth_jwks_fetch_ok"), Some(1));
    let out = gw.run(with_bearer("/v1/models", &token("rs256")), upstream());
    assert_allowed(&out, "alice");
    assert!(out.callouts.is_empty(), "keys were already there");
    // After the TTL a tick refreshes (straight from the JWKS path learned by discovery).
    gw.script_callout("idp", CalloutReply::ok(200, jwks("jwks")));
    gw.advance(Duration::from_secs(601));
    assert_eq!(gw.metric("tollgate_jwt_auth_jwks_fetch_ok"), Some(2));
}

#[test]
fn last_good_keys_survive_an_outage_for_the_grace_period_only() {
    let mut gw = gateway_with(&remote_policy(json!({})));
    gw.script_callout("idp", CalloutReply::ok(200, jwks("jwks")));
    gw.advance(Duration::from_secs(2));
    // Every refresh from now on fails.
    for _ in 0..64 {
        gw.script_callout("idp", CalloutReply::fail());
    }
    gw.advance(Duration::from_secs(700)); // past the TTL, inside TTL + grace
    assert_allowed(
        &gw.run(with_bearer("/v1/models", &token("es256")), upstream()),
        "alice",
    );
    gw.advance(Duration::from_secs(300)); // past TTL + grace: keys dropped
    let out = gw.run(with_bearer("/v1/models", &token("eddsa")), upstream());
    assert_eq!(out.client.status, 401);
    assert!(
        gw.metric("tollgate_jwt_auth_jwks_fetch_failed")
            .unwrap_or(0)
            >= 1
    );
}

/// Every other configuration error of the compile step, each with its field path, through the
/// real `.wasm` (the unit tests in `filters/jwt-auth/src/config_tests.rs` cover the same set).
#[test]
fn every_configuration_error_names_its_field() {
    let f = fixtures();
    let jwks = f["jwks"].clone();
    let prov = |patch: Value| {
        let mut p = json!({"issuer": "https://idp.test", "jwks": jwks.clone()});
        for (k, v) in patch.as_object().expect("object") {
            if v.is_null() {
                p.as_object_mut().expect("object").remove(k);
            } else {
                p[k] = v.clone();
            }
        }
        json!({"providers": [p]})
    };
    let with = |extra: Value| {
        let mut c = json!({"providers": [{"issuer": "https://idp.test", "jwks": jwks.clone()}]});
        for (k, v) in extra.as_object().expect("object") {
            c[k] = v.clone();
        }
        c
    };
    let remote =
        |r: Value| json!({"providers": [{"issuer": "https://idp.test", "remote_jwks": r}]});
    let cases = vec![
        (
            prov(json!({"issuer": ""})),
            "providers[0].issuer: must not be empty",
        ),
        (
            prov(json!({"name": ""})),
            "providers[0].name: must not be empty",
        ),
        (
            prov(json!({"algorithms": []})),
            "providers[0].algorithms: must not be empty",
        ),
        (
            prov(json!({"algorithms": ["ES256", "HS256"]})),
            "providers[0].algorithms: HS256 needs hs256_secret_env",
        ),
        (
            prov(json!({"jwks": {"keys": []}})),
            "providers[0].jwks: JWKS has no usable key",
        ),
        (
            prov(json!({"remote_jwks": {"cluster": "idp", "path": "/jwks"}})),
            "providers[0].remote_jwks: jwks and remote_jwks are exclusive",
        ),
        (
            prov(json!({"clock_skew_s": 900})),
            "providers[0].clock_skew_s: at most 300 seconds",
        ),
        (
            prov(json!({"max_lifetime_s": 0})),
            "providers[0].max_lifetime_s: must be positive",
        ),
        (
            prov(json!({"audiences": [""]})),
            "providers[0].audiences[0]: must not be empty",
        ),
        (
            prov(json!({"required_claims": [""]})),
            "providers[0].required_claims[0]: must not be empty",
        ),
        (
            prov(json!({"subject_claim": ""})),
            "providers[0].subject_claim: must not be empty",
        ),
        (
            prov(json!({"group_claims": [""]})),
            "providers[0].group_claims[0]: must not be empty",
        ),
        (
            prov(json!({"hs256_kid": "k"})),
            "providers[0].hs256_kid: set without hs256_secret_env",
        ),
        (
            prov(json!({"hs256_secret_env": SECRET_ENV})),
            "providers[0].hs256_secret_env: set, but HS256 is not in algorithms",
        ),
        (
            prov(json!({"forward_claims": [{"claim": "e", "header": "X-E"}]})),
            "providers[0].forward_claims[0].header: \"X-E\" is not a lowercase header name",
        ),
        (
            prov(json!({"forward_claims": [{"claim": "e", "header": "authorization"}]})),
            "providers[0].forward_claims[0].header: \"authorization\" cannot carry a claim",
        ),
        (
            prov(json!({"forward_claims": [{"claim": "", "header": "x-e"}]})),
            "providers[0].forward_claims[0].claim: must not be empty",
        ),
        (
            remote(json!({"cluster": ""  , "path": "/j"})),
            "providers[0].remote_jwks.cluster: must name an Envoy cluster",
        ),
        (
            remote(json!({"cluster": "idp"})),
            "providers[0].remote_jwks: one of path or discovery is required",
        ),
        (
            remote(json!({"cluster": "idp", "path": "jwks"})),
            "providers[0].remote_jwks.path: must start with '/'",
        ),
        (
            remote(json!({"cluster": "idp", "path": "/j", "discovery": true})),
            "providers[0].remote_jwks.path: path and discovery are exclusive",
        ),
        (
            remote(json!({"cluster": "idp", "path": "/j", "timeout_ms": 0})),
            "providers[0].remote_jwks.timeout_ms: must be between 1 and 60000",
        ),
        (
            remote(json!({"cluster": "idp", "path": "/j", "ttl_s": 0})),
            "providers[0].remote_jwks.ttl_s: must be positive",
        ),
        (
            remote(json!({"cluster": "idp", "path": "/j", "min_refetch_interval_s": 0})),
            "providers[0].remote_jwks.min_refetch_interval_s: must be positive",
        ),
        (
            json!({"providers": [{"issuer": "urn:x", "remote_jwks": {"cluster": "idp", "path": "/j"}}]}),
            "providers[0].remote_jwks.authority: required when the issuer is not an http(s) URL",
        ),
        (
            with(json!({"max_token_bytes": 10})),
            "max_token_bytes: must be between 256 and 65536",
        ),
        (
            with(json!({"from_headers": []})),
            "from_headers: must not be empty",
        ),
        (
            with(json!({"from_headers": [{"header": "Authorization"}]})),
            "from_headers[0].header: \"Authorization\" is not a lowercase header name",
        ),
        (
            with(json!({"from_headers": [{"header": "x-a"}, {"header": "x-a"}]})),
            "from_headers[1].header: listed twice",
        ),
        (
            with(json!({"cache": {"max_entries": 2000000}})),
            "cache.max_entries: at most 1000000",
        ),
        (
            with(json!({"cache": {"max_age_s": 0}})),
            "cache.max_age_s: must be positive",
        ),
        (
            with(json!({"rules": [{"anonymous": true}]})),
            "rules[0]: exactly one of exact or prefix is required",
        ),
        (
            with(json!({"rules": [{"exact": "a"}]})),
            "rules[0].exact: must start with '/'",
        ),
        (
            with(json!({"rules": [{"prefix": "/a?b"}]})),
            "rules[0].prefix: paths are matched without query or fragment",
        ),
        (
            with(json!({"rules": [{"exact": "/a", "anonymous": true, "deny": true}]})),
            "rules[0].deny: anonymous and deny are exclusive",
        ),
        (
            with(json!({"rules": [{"exact": "/a", "anonymous": true, "groups_any": ["g"]}]})),
            "rules[0].groups_any: groups_any/providers need a token",
        ),
        (
            with(json!({"rules": [{"exact": "/a", "groups_any": [""]}]})),
            "rules[0].groups_any[0]: must not be empty",
        ),
        (
            with(json!({"unmatched": "allow"})),
            "unmatched: unknown variant `allow`",
        ),
        (
            json!({"providers": [{"issuer": "a", "jwks": f["jwks"]}, {"issuer": "a", "jwks": f["jwks"]}]}),
            "providers[1].issuer: duplicate issuer (also providers[0])",
        ),
    ];
    for (config, needle) in cases {
        assert_config_error_env(config, needle, Some(&secret()));
    }
}
