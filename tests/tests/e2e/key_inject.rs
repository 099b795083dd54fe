//! key-inject end to end: a real Envoy loading `tollgate_key_inject.wasm`, the mock Claude API
//! accepting only the injected key. The key reaches Envoy only through its environment
//! (`host_env_keys`); client credentials never reach the upstream; a missing variable makes Envoy
//! refuse the configuration; refused requests never reach the upstream.

use std::time::Duration;

use serde_json::json;
use tollgate_mock::{MockConfig, MockServer};
use tollgate_tests::envoy::validate_config;
use tollgate_tests::http::{messages_body, Request};
use tollgate_tests::sdk::{SdkAuth, SdkRun};
use tollgate_tests::{paths, Envoy, EnvoyOptions, Filter, GatewayConfig, Idp, Upstream};

use super::{mock_with, MOCK_KEY as UPSTREAM_KEY};

/// Variable names nobody sets by accident (the test process's environment is inherited).
const KEY_VAR: &str = "TOLLGATE_KI_E2E_KEY";
const MISSING_VAR: &str = "TOLLGATE_KI_E2E_NEVER_SET";
const CLIENT_KEY: &str = "sk-ant-client-should-never-pass";

/// The mock Claude API accepting only `x-api-key: UPSTREAM_KEY` (no bearer form).
fn mock() -> MockServer {
    mock_with(MockConfig {
        api_key: Some(UPSTREAM_KEY.to_string()),
        accept_bearer: false,
        ..MockConfig::default()
    })
}

fn policy(extra: &str) -> String {
    format!(r#"{{"keys":{{"default":{{"env":"{KEY_VAR}"}}}},"default_key":"default"{extra}}}"#)
}

fn gateway(mock: &MockServer, config: String, env_keys: &[&str]) -> GatewayConfig {
    GatewayConfig::ephemeral(Upstream::Mock(mock.addr().into()))
        .filter(Filter::new("key-inject", config).env_keys(env_keys.iter().copied()))
}

fn start(cfg: &GatewayConfig) -> Envoy {
    Envoy::start_with(cfg, &EnvoyOptions::default().env(KEY_VAR, UPSTREAM_KEY))
        .expect("envoy starts")
}

fn messages() -> Request {
    Request::post("/v1/messages").json(&messages_body("hello", false))
}

#[test]
fn the_mock_refuses_client_credentials_directly() {
    // Without the gateway the client's credentials are refused: what makes the next tests
    // meaningful.
    let mock = mock();
    let resp = tollgate_tests::http::send(
        mock.addr(),
        &messages()
            .header("x-api-key", CLIENT_KEY)
            .header("anthropic-version", "2023-06-01"),
    )
    .expect("request");
    assert_eq!(resp.status, 401, "{}", resp.text());
}

#[test]
fn upstream_receives_only_the_injected_key() {
    let mock = mock();
    let cfg = gateway(
        &mock,
        policy(r#","allowed_clusters":["upstream"],"strip_cookies":true"#),
        &[KEY_VAR],
    );
    let envoy = start(&cfg);

    let resp = envoy
        .send(
            &messages()
                .header("x-api-key", CLIENT_KEY)
                .header("authorization", "Bearer client.jwt.token")
                .header("proxy-authorization", "Basic Y2xpZW50OnB3")
                .header("cookie", "session=client"),
        )
        .expect("request");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["type"], "message");

    // No credentials at all: the gateway supplies them.
    let resp = envoy.send(&messages()).expect("request");
    assert_eq!(resp.status, 200, "{}", resp.text());

    let seen = mock.wait_for_requests(2, Duration::from_secs(5));
    assert_eq!(seen.len(), 2);
    for req in &seen {
        assert_eq!(req.header("x-api-key"), Some(UPSTREAM_KEY));
        let all_keys: Vec<_> = req
            .headers
            .iter()
            .filter(|(k, _)| k == "x-api-key")
            .collect();
        assert_eq!(
            all_keys.len(),
            1,
            "exactly one x-api-key: {:?}",
            req.headers
        );
        assert_eq!(req.header("authorization"), None);
        assert_eq!(req.header("proxy-authorization"), None);
        assert_eq!(req.header("cookie"), None);
        assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
        let raw = format!("{:?}", req.headers);
        assert!(
            !raw.contains(CLIENT_KEY) && !raw.contains("client.jwt"),
            "{raw}"
        );
    }

    let stats = envoy.stats().expect("stats");
    assert_eq!(
        stats.get("wasmcustom.tollgate_key_inject_injected_default"),
        Some(&2),
        "{stats:?}"
    );
    assert_eq!(
        stats.get("wasmcustom.tollgate_key_inject_stripped"),
        Some(&1)
    );
    let log = envoy.log();
    assert!(
        !log.contains(UPSTREAM_KEY),
        "the key leaked into Envoy's log"
    );
    let access = envoy.wait_access_log(2).expect("access log");
    assert!(
        access.iter().all(|l| l["key_inject_key"] == "default"),
        "{access:?}"
    );
}

#[test]
fn a_client_anthropic_version_is_kept() {
    let mock = mock();
    let envoy = start(&gateway(
        &mock,
        policy(r#","allowed_clusters":["upstream"]"#),
        &[KEY_VAR],
    ));
    let resp = envoy
        .send(&messages().header("anthropic-version", "2023-01-01"))
        .expect("request");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = mock.wait_for_requests(1, Duration::from_secs(5));
    assert_eq!(seen[0].header("anthropic-version"), Some("2023-01-01"));
}

#[test]
fn a_missing_variable_makes_envoy_refuse_the_configuration() {
    let mock = mock();
    // The policy names a variable Envoy's environment does not have.
    let config = format!(
        r#"{{"keys":{{"default":{{"env":"{MISSING_VAR}"}}}},"default_key":"default","allowed_clusters":["upstream"]}}"#
    );
    let cfg = gateway(&mock, config, &[MISSING_VAR]);
    let err = validate_config(&cfg, &[]).expect_err("envoy --mode validate must fail");
    let text = format!("{err:#}");
    assert!(text.contains(MISSING_VAR), "{text}");
    assert!(text.contains("is not set"), "{text}");
    // The same file with the variable set is valid: the variable was the only problem.
    validate_config(&cfg, &[(MISSING_VAR, "sk-ant-now-set")]).expect("valid with the variable");
    // A starting Envoy refuses it too.
    assert!(Envoy::start_with(&cfg, &EnvoyOptions::default()).is_err());

    // Set in the environment but not exposed through host_env_keys: also refused.
    let cfg = gateway(&mock, policy(r#","allowed_clusters":["upstream"]"#), &[]);
    let err = validate_config(&cfg, &[(KEY_VAR, UPSTREAM_KEY)]).expect_err("not exposed");
    let text = format!("{err:#}");
    assert!(text.contains(KEY_VAR), "{text}");
    assert!(!text.contains(UPSTREAM_KEY), "the value leaked: {text}");
}

#[test]
fn a_route_to_another_cluster_gets_no_key() {
    let mock = mock();
    let envoy = start(&gateway(
        &mock,
        policy(r#","allowed_clusters":["api-anthropic"]"#),
        &[KEY_VAR],
    ));
    let resp = envoy
        .send(&messages().header("x-api-key", CLIENT_KEY))
        .expect("request");
    assert_eq!(resp.status, 500, "{}", resp.text());
    let body = resp.json();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "api_error");
    assert_eq!(mock.request_count(), 0, "nothing reaches the upstream");
    assert_eq!(
        envoy.stat("wasmcustom.tollgate_key_inject_denied_upstream"),
        Some(1)
    );
}

#[test]
fn without_identity_the_configured_error_is_returned() {
    let mock = mock();
    let envoy = start(&gateway(
        &mock,
        policy(r#","require_identity":true,"allowed_clusters":["upstream"]"#),
        &[KEY_VAR],
    ));
    let resp = envoy
        .send(&messages().header("authorization", "Bearer not-verified-by-anyone"))
        .expect("request");
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_eq!(resp.json()["error"]["type"], "authentication_error");
    assert!(resp
        .header("www-authenticate")
        .is_some_and(|v| v.starts_with("Bearer")));
    assert_eq!(mock.request_count(), 0);

    // The same with 403.
    let mock = self::mock();
    let envoy = start(&gateway(
        &mock,
        policy(
            r#","require_identity":true,"on_missing_identity":403,"allowed_clusters":["upstream"]"#,
        ),
        &[KEY_VAR],
    ));
    let resp = envoy.send(&messages()).expect("request");
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(resp.json()["error"]["type"], "permission_error");
    assert_eq!(mock.request_count(), 0);
}

#[test]
fn the_anthropic_sdk_with_a_bearer_token_and_no_api_key_gets_answers() {
    // key-inject alone (no jwt-auth): the SDK's bearer token is stripped and the gateway's key
    // is sent instead; the mock accepts only that key.
    let mock = mock();
    let envoy = start(&gateway(
        &mock,
        policy(r#","allowed_clusters":["upstream"]"#),
        &[KEY_VAR],
    ));
    SdkRun::new(
        &envoy.url(),
        SdkAuth::AuthToken("eyJhbGciOiJSUzI1NiJ9.e30.c2ln".into()),
    )
    .case(json!({"name": "create", "prompt": "Say hello.", "expect": {"ok": true}}))
    .case(json!({"name": "stream", "stream": true, "expect": {"ok": true}}))
    .run()
    .expect("the SDK check runs")
    .assert_all_ok();
    // A client that sends its own (wrong) API key gets answers too: it never reaches the upstream.
    SdkRun::new(&envoy.url(), SdkAuth::ApiKey(CLIENT_KEY.into()))
        .case(json!({"name": "api-key", "expect": {"ok": true}}))
        .run()
        .expect("the SDK check runs")
        .assert_all_ok();
    for req in mock.requests() {
        assert_eq!(req.header("x-api-key"), Some(UPSTREAM_KEY));
        assert_eq!(req.header("authorization"), None);
    }
    assert_eq!(mock.request_count(), 3);
}

#[test]
fn the_anthropic_sdk_sees_the_configured_error_without_identity() {
    let mock = mock();
    let envoy = start(&gateway(
        &mock,
        policy(r#","require_identity":true,"allowed_clusters":["upstream"]"#),
        &[KEY_VAR],
    ));
    SdkRun::new(&envoy.url(), SdkAuth::AuthToken("not-verified".into()))
        .case(json!({"name": "denied", "expect": {
            "error": "AuthenticationError", "status": 401, "error_type": "authentication_error"}}))
        .run()
        .expect("the SDK check runs")
        .assert_all_ok();
    assert_eq!(mock.request_count(), 0);
}

// --- With jwt-auth in front: identity comes from real tokens of the dev IdP.

const TEAM_VAR: &str = "TOLLGATE_KI_E2E_TEAM_KEY";
const TEAM_KEY: &str = "sk-ant-e2e-team-a-key-0000000000";
const BATCH_VAR: &str = "TOLLGATE_KI_E2E_BATCH_KEY";
const BATCH_KEY: &str = "sk-ant-e2e-batch-key-1111111111";

/// The shipped jwt-auth policy, trusting this IdP.
fn jwt_auth(idp: &Idp) -> Filter {
    let text = std::fs::read_to_string(paths::policy_path("jwt-auth")).expect("jwt-auth policy");
    let mut policy: serde_json::Value = serde_json::from_str(&text).expect("policy is JSON");
    policy["providers"][0]["issuer"] = idp.issuer().into();
    Filter::new("jwt-auth", policy.to_string())
}

fn jwt_chain(mock: &MockServer, idp: &Idp) -> Envoy {
    let key_policy = format!(
        r#"{{"keys":{{"default":{{"env":"{KEY_VAR}"}},"team-a":{{"env":"{TEAM_VAR}"}},"batch":{{"env":"{BATCH_VAR}"}}}},
            "select":[{{"subject":"svc-batch","key":"batch"}},{{"group":"team-a","key":"team-a"}}],
            "default_key":"default","require_identity":true,"allowed_clusters":["upstream"]}}"#
    );
    let cfg = GatewayConfig::ephemeral(Upstream::Mock(mock.addr().into()))
        .idp(idp.endpoint())
        .filter(jwt_auth(idp))
        .filter(Filter::new("key-inject", key_policy).env_keys([KEY_VAR, TEAM_VAR, BATCH_VAR]));
    Envoy::start_with(
        &cfg,
        &EnvoyOptions::default()
            .env(KEY_VAR, UPSTREAM_KEY)
            .env(TEAM_VAR, TEAM_KEY)
            .env(BATCH_VAR, BATCH_KEY),
    )
    .expect("envoy starts")
}

#[test]
fn keys_are_selected_by_verified_group_and_subject() {
    let mock = mock();
    let idp = Idp::start().expect("idp starts");
    let envoy = jwt_chain(&mock, &idp);
    let cases = [
        // (claims, key the upstream must receive, key name in the access log)
        (
            json!({"sub": "alice", "groups": ["agents", "team-a"]}),
            TEAM_KEY,
            "team-a",
        ),
        (
            json!({"sub": "svc-batch", "groups": ["agents", "team-a"]}),
            BATCH_KEY,
            "batch",
        ),
        (
            json!({"sub": "bob", "groups": ["agents"]}),
            UPSTREAM_KEY,
            "default",
        ),
    ];
    for (i, (claims, key, _)) in cases.iter().enumerate() {
        let token = idp.token(claims.clone());
        let resp = envoy
            .send(&messages().bearer(&token).header("cookie", "session=client"))
            .expect("request");
        // The mock accepts only the default key: the others prove a different key was sent.
        let expected = if *key == UPSTREAM_KEY { 200 } else { 401 };
        assert_eq!(resp.status, expected, "{claims}: {}", resp.text());
        let seen = mock.wait_for_requests(i + 1, Duration::from_secs(5));
        let last = seen.last().expect("a request reached the mock");
        assert_eq!(last.header("x-api-key"), Some(*key), "{claims}");
        assert_eq!(
            last.header("authorization"),
            None,
            "{claims}: the JWT must not pass"
        );
        let raw = format!("{:?}", last.headers);
        assert!(!raw.contains(&token), "{raw}");
    }
    let log = envoy.wait_access_log(cases.len()).expect("access log");
    let names: Vec<&str> = log
        .iter()
        .map(|l| l["key_inject_key"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, vec!["team-a", "batch", "default"]);
    assert_eq!(
        envoy.stat("wasmcustom.tollgate_key_inject_injected_team-a"),
        Some(1)
    );
    let envoy_log = envoy.log();
    for secret in [UPSTREAM_KEY, TEAM_KEY, BATCH_KEY] {
        assert!(!envoy_log.contains(secret), "a key leaked into Envoy's log");
    }
}

#[test]
fn the_anthropic_sdk_with_a_jwt_and_no_api_key_gets_answers() {
    let mock = mock();
    let idp = Idp::start().expect("idp starts");
    let envoy = jwt_chain(&mock, &idp);
    let token = idp.token(json!({"sub": "dev-agent", "groups": ["agents"]}));
    SdkRun::new(&envoy.url(), SdkAuth::AuthToken(token.clone()))
        .case(json!({"name": "create", "prompt": "Say hello.", "expect": {"ok": true}}))
        .case(json!({"name": "stream", "stream": true, "expect": {"ok": true}}))
        .run()
        .expect("the SDK check runs")
        .assert_all_ok();
    // Without a token jwt-auth refuses before key-inject: the SDK sees AuthenticationError.
    SdkRun::new(&envoy.url(), SdkAuth::ApiKey(CLIENT_KEY.into()))
        .case(json!({"name": "no-jwt", "expect": {"error": "AuthenticationError", "status": 401}}))
        .run()
        .expect("the SDK check runs")
        .assert_all_ok();
    let seen = mock.requests();
    assert_eq!(
        seen.len(),
        2,
        "only the two authenticated calls reach the mock"
    );
    for req in seen {
        assert_eq!(req.header("x-api-key"), Some(UPSTREAM_KEY));
        assert_eq!(req.header("authorization"), None);
    }
}
