//! jwt-auth end to end: a real Envoy (V8) loading `tollgate_jwt_auth.wasm`, keys fetched through
//! the `idp` cluster from the real OIDC test issuer (`scripts/idp.mjs`, oauth2-mock-server):
//! discovery + JWKS, key rotation, the IdP down at start and mid-run, concurrent first
//! requests while keys load, and the Anthropic Python SDK with `auth_token=<jwt>`.

use std::time::{Duration, Instant};

use serde_json::json;
use tollgate_tests::http::{messages_body, Request};
use tollgate_tests::sdk::{SdkAuth, SdkRun};
use tollgate_tests::{Envoy, EnvoyOptions, Filter, GatewayConfig, Idp, Upstream};

use super::{mock, MOCK_KEY};

fn policy(idp: &Idp) -> String {
    json!({
        "providers": [{
            "name": "dev",
            "issuer": idp.issuer(),
            "audiences": ["tollgate"],
            "algorithms": ["RS256"],
            "remote_jwks": {"cluster": "idp", "discovery": true, "timeout_ms": 2000,
                            "ttl_s": 600, "min_refetch_interval_s": 1, "grace_s": 600}
        }],
        "rules": [{"exact": "/healthz", "anonymous": true},
                  {"prefix": "/v1/messages", "groups_any": ["agents"]}],
        "forward_token": false
    })
    .to_string()
}

fn start(idp: &Idp, mock: &tollgate_mock::MockServer) -> Envoy {
    let cfg = GatewayConfig::ephemeral(Upstream::Mock(mock.addr().into()))
        .idp(idp.addr())
        .filter(Filter::new("jwt-auth", policy(idp)));
    Envoy::start(&cfg).expect("envoy starts")
}

fn ask(token: &str) -> Request {
    Request::post("/v1/messages")
        .header("anthropic-version", "2023-06-01")
        .header("x-api-key", MOCK_KEY)
        .json(&messages_body("hello", false))
        .bearer(token)
}

/// Sends until the status is `want` (keys load asynchronously after a rotation or outage).
fn eventually(envoy: &Envoy, req: &Request, want: u16, within: Duration) -> u16 {
    let start = Instant::now();
    loop {
        let status = envoy.send(req).expect("request").status;
        if status == want || start.elapsed() > within {
            return status;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn tokens_from_the_real_issuer_pass_and_bad_ones_get_401() {
    let idp = Idp::start().expect("idp");
    let mock = mock();
    let envoy = start(&idp, &mock);
    let token = idp.token(json!({"sub": "alice", "groups": ["agents"]}));
    let resp = envoy.send(&ask(&token)).unwrap();
    assert_eq!(resp.status, 200, "{}\n{}", resp.text(), envoy.log());
    let seen = mock.wait_for_requests(1, Duration::from_secs(10));
    assert!(
        seen[0].header("authorization").is_none(),
        "the JWT reached the upstream"
    );

    // Forged: same claims, signature of another token.
    let other = idp.token(json!({"sub": "mallory", "groups": ["agents"]}));
    let forged = format!(
        "{}.{}",
        token.rsplit_once('.').unwrap().0,
        other.rsplit_once('.').unwrap().1
    );
    let resp = envoy.send(&ask(&forged)).unwrap();
    assert_eq!(resp.status, 401);
    assert_eq!(
        resp.header("www-authenticate"),
        Some("Bearer realm=\"tollgate\", error=\"invalid_token\"")
    );
    assert_eq!(resp.json()["error"]["type"], "authentication_error");
    assert!(!resp.text().contains(&forged));
    // Valid token without the group: 403.
    let outsider = idp.token(json!({"sub": "bob", "groups": ["ops"]}));
    assert_eq!(envoy.send(&ask(&outsider)).unwrap().status, 403);
    // Expired.
    let expired = idp.try_token(json!({"sub": "alice"}), -3600).unwrap();
    assert_eq!(envoy.send(&ask(&expired)).unwrap().status, 401);
    assert_eq!(
        mock.request_count(),
        1,
        "refused requests never reach the upstream"
    );
    // The cached token costs no second verification.
    assert_eq!(envoy.send(&ask(&token)).unwrap().status, 200);
    assert_eq!(envoy.metric("tollgate_jwt_auth_cache_hit"), Some(1));
    assert_eq!(envoy.metric("tollgate_jwt_auth_jwks_fetch_ok"), Some(1));
    // The identity is in filter state, visible in the access log.
    let lines = envoy.wait_access_log(5).unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l["subject"] == "alice" && l["response_code"] == 200),
        "{lines:?}"
    );
}

#[test]
fn the_python_sdk_authenticates_with_the_jwt() {
    // jwt-auth then key-inject (which swaps in the upstream key Envoy holds in its environment):
    // the SDK's `auth_token` is the JWT, the only credential the client has.
    let idp = Idp::start().expect("idp");
    let mock = mock();
    let key_var = "TOLLGATE_JA_E2E_UPSTREAM_KEY";
    let cfg = GatewayConfig::ephemeral(Upstream::Mock(mock.addr().into()))
        .idp(idp.addr())
        .filter(Filter::new("jwt-auth", policy(&idp)))
        .filter(
            Filter::new(
                "key-inject",
                format!(
                    r#"{{"keys":{{"default":{{"env":"{key_var}"}}}},"default_key":"default","allowed_clusters":["upstream"]}}"#
                ),
            )
            .env_keys([key_var]),
        );
    let envoy = Envoy::start_with(&cfg, &EnvoyOptions::default().env(key_var, MOCK_KEY))
        .expect("envoy starts");
    let token = idp.token(json!({"sub": "sdk-agent", "groups": ["agents"]}));
    SdkRun::new(&envoy.url(), SdkAuth::AuthToken(token))
        .case(json!({"name": "create", "stream": false, "expect": {"ok": true}}))
        .case(json!({"name": "stream", "stream": true, "expect": {"ok": true}}))
        .run()
        .unwrap()
        .assert_all_ok();
    SdkRun::new(&envoy.url(), SdkAuth::AuthToken("not-a-jwt".into()))
        .case(
            json!({"name": "bad token", "expect": {"error": "AuthenticationError", "status": 401}}),
        )
        .run()
        .unwrap()
        .assert_all_ok();
    assert_eq!(envoy.metric("tollgate_jwt_auth_denied_malformed"), Some(1));
    assert!(envoy.metric("tollgate_jwt_auth_allowed").unwrap_or(0) >= 2);
}

#[test]
fn key_rotation_new_kid_after_one_refetch_removed_kid_refused() {
    let idp = Idp::start().expect("idp");
    let mock = mock();
    let envoy = start(&idp, &mock);
    let old = idp.token(json!({"sub": "alice"}));
    let old_unused = idp.token(json!({"sub": "carol"}));
    assert_eq!(
        envoy.send(&ask(&old)).unwrap().status,
        200,
        "{}",
        envoy.log()
    );
    std::thread::sleep(Duration::from_millis(1100)); // past min_refetch_interval_s
    idp.rotate(false);
    let new = idp.token(json!({"sub": "alice"}));
    let resp = envoy.send(&ask(&new)).unwrap();
    assert_eq!(resp.status, 200, "{}\n{}", resp.text(), envoy.log());
    assert_eq!(
        envoy.metric("tollgate_jwt_auth_jwks_fetch_ok"),
        Some(2),
        "one refetch"
    );
    // A token signed with the removed key that was never cached is refused.
    std::thread::sleep(Duration::from_millis(1100));
    let resp = envoy.send(&ask(&old_unused)).unwrap();
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_eq!(
        resp.json()["error"]["message"],
        "no trusted key matches the token"
    );
}

#[test]
fn idp_down_at_start_then_back() {
    let mut idp = Idp::start().expect("idp");
    let token = idp.token(json!({"sub": "alice"}));
    idp.stop();
    let mock = mock();
    let envoy = start(&idp, &mock);
    let resp = envoy.send(&ask(&token)).unwrap();
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_eq!(
        resp.json()["error"]["message"],
        "cannot verify token: the identity provider's signing keys are unavailable"
    );
    assert!(
        envoy
            .metric("tollgate_jwt_auth_jwks_fetch_failed")
            .unwrap_or(0)
            >= 1
    );
    idp.restart().expect("idp restarts");
    assert_eq!(
        eventually(&envoy, &ask(&token), 200, Duration::from_secs(20)),
        200,
        "{}",
        envoy.log()
    );
}

#[test]
fn idp_down_mid_run_keeps_the_last_good_keys() {
    let mut idp = Idp::start().expect("idp");
    let mock = mock();
    let envoy = start(&idp, &mock);
    let first = idp.token(json!({"sub": "alice"}));
    let second = idp.token(json!({"sub": "dave"}));
    assert_eq!(
        envoy.send(&ask(&first)).unwrap().status,
        200,
        "{}",
        envoy.log()
    );
    idp.stop();
    // A token never seen before, signed with the known key: verified with the kept keys.
    assert_eq!(
        envoy.send(&ask(&second)).unwrap().status,
        200,
        "{}",
        envoy.log()
    );
}

#[test]
fn concurrent_first_requests_wait_for_the_keys() {
    let idp = Idp::start().expect("idp");
    let mock = mock();
    let envoy = start(&idp, &mock);
    let tokens: Vec<String> = (0..6)
        .map(|i| idp.token(json!({"sub": format!("agent-{i}")})))
        .collect();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = tokens
            .iter()
            .map(|t| {
                let req = ask(t);
                let envoy = &envoy;
                s.spawn(move || envoy.send(&req).map(|r| r.status).unwrap_or(0))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).collect()
    });
    assert!(
        statuses.iter().all(|s| *s == 200),
        "{statuses:?}\n{}",
        envoy.log()
    );
    assert_eq!(envoy.metric("tollgate_jwt_auth_allowed"), Some(6));
}
