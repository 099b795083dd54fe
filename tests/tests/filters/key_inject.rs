//! key-inject through the harness: the very `.wasm` Envoy loads, run with a scripted upstream.
//! What is asserted is what the upstream and the client receive, the metrics and the logs.

use std::sync::OnceLock;

use tollgate_harness::{FilterSpec, Gateway, HarnessError, Host, Outcome, Request, Upstream};

const KEY: &str = "sk-ant-harness-default-0123456789";
const TEAM_KEY: &str = "sk-ant-harness-team-a-9876543210";
const SVC_KEY: &str = "sk-ant-harness-svc-1-5555555555";
const CLIENT_KEY: &str = "sk-ant-client-must-not-pass";

/// One host per test process: modules are compiled once and shared by every test here.
fn host() -> Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| Host::new().expect("harness host"))
        .clone()
}

fn wasm() -> std::path::PathBuf {
    tollgate_tests::wasm_path("key-inject")
}

fn spec(config: &str) -> FilterSpec {
    FilterSpec::new(wasm())
        .name("key-inject")
        .config(config)
        .env("KI_DEFAULT_KEY", KEY)
        .env("KI_TEAM_A_KEY", TEAM_KEY)
        .env("KI_SVC_KEY", SVC_KEY)
}

fn gateway(config: &str) -> Gateway {
    let host = host();
    Gateway::builder(&host)
        .filter(spec(config))
        .build()
        .unwrap_or_else(|e| panic!("key-inject must configure: {e}"))
}

/// Default key for everyone, authority `localhost` (the harness's default) allowed.
const DEFAULT_POLICY: &str = r#"{
  "keys": {"default": {"env": "KI_DEFAULT_KEY"}},
  "default_key": "default",
  "strip_headers": ["X-Goog-Api-Key"],
  "strip_cookies": true,
  "allowed_upstreams": ["localhost"]
}"#;

fn upstream() -> Upstream {
    Upstream::new(200)
        .header("content-type", "application/json")
        .body(r#"{"type":"message"}"#)
}

fn no_key_material_logged(out: &Outcome) {
    for entry in &out.logs {
        for secret in [KEY, TEAM_KEY, SVC_KEY, CLIENT_KEY] {
            assert!(
                !entry.message.contains(secret),
                "secret in a log line: {entry:?}"
            );
        }
    }
}

#[test]
fn upstream_receives_only_the_injected_key() {
    let mut gw = gateway(DEFAULT_POLICY);
    let out = gw.run(
        Request::post("/v1/messages")
            .header("x-api-key", CLIENT_KEY)
            .header("x-api-key", "second-client-key")
            .header("authorization", "Bearer client.jwt.token")
            .header("proxy-authorization", "Basic Y2xpZW50")
            .header("x-goog-api-key", "goog-client")
            .header("cookie", "session=abc")
            .header("content-type", "application/json")
            .body(r#"{"model":"m"}"#),
        upstream(),
    );
    assert_eq!(out.failure, None);
    assert_eq!(out.client.status, 200);
    let up = out.upstream.as_ref().expect("request reached the upstream");
    assert_eq!(up.header("x-api-key").as_deref(), Some(KEY));
    assert_eq!(up.headers.get_all("x-api-key").len(), 1, "one key only");
    for gone in [
        "authorization",
        "proxy-authorization",
        "x-goog-api-key",
        "cookie",
    ] {
        assert_eq!(up.header(gone), None, "{gone} must be stripped");
    }
    assert_eq!(
        up.header("anthropic-version").as_deref(),
        Some("2023-06-01")
    );
    assert_eq!(
        up.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(up.body, br#"{"model":"m"}"#);
    assert_eq!(
        out.property("tollgate.key_inject.key").as_deref(),
        Some("default")
    );
    assert_eq!(gw.metric("tollgate_key_inject_injected"), Some(1));
    assert_eq!(gw.metric("tollgate_key_inject_injected_default"), Some(1));
    assert_eq!(gw.metric("tollgate_key_inject_stripped"), Some(1));
    assert_eq!(gw.metric("tollgate_key_inject_denied"), Some(0));
    no_key_material_logged(&out);

    // A request without client credentials gets the key too, and is not counted as stripped.
    let out = gw.run(Request::post("/v1/messages"), upstream());
    assert_eq!(
        out.upstream
            .as_ref()
            .and_then(|u| u.header("x-api-key"))
            .as_deref(),
        Some(KEY)
    );
    assert_eq!(gw.metric("tollgate_key_inject_injected_default"), Some(2));
    assert_eq!(gw.metric("tollgate_key_inject_stripped"), Some(1));
}

#[test]
fn cookies_pass_unless_configured() {
    let mut gw = gateway(
        r#"{"keys":{"default":{"env":"KI_DEFAULT_KEY"}},"default_key":"default","allowed_upstreams":["localhost"]}"#,
    );
    let out = gw.run(
        Request::post("/v1/messages").header("cookie", "a=b"),
        upstream(),
    );
    let up = out.upstream.expect("reached the upstream");
    assert_eq!(up.header("cookie").as_deref(), Some("a=b"));
}

#[test]
fn bearer_scheme_replaces_the_client_authorization() {
    let mut gw = gateway(
        r#"{"keys":{"default":{"env":"KI_DEFAULT_KEY","scheme":"bearer"}},"default_key":"default",
            "anthropic_version":null,"allowed_upstreams":["localhost"]}"#,
    );
    let out = gw.run(
        Request::post("/v1/messages")
            .header("authorization", "Bearer client.jwt.token")
            .header("x-api-key", CLIENT_KEY),
        upstream(),
    );
    let up = out.upstream.expect("reached the upstream");
    assert_eq!(up.header("authorization"), Some(format!("Bearer {KEY}")));
    assert_eq!(up.headers.get_all("authorization").len(), 1);
    assert_eq!(up.header("x-api-key"), None);
    assert_eq!(up.header("anthropic-version"), None, "disabled by null");
}

#[test]
fn a_client_anthropic_version_is_kept() {
    let mut gw = gateway(DEFAULT_POLICY);
    let out = gw.run(
        Request::post("/v1/messages").header("anthropic-version", "2023-01-01"),
        upstream(),
    );
    let up = out.upstream.expect("reached the upstream");
    assert_eq!(
        up.header("anthropic-version").as_deref(),
        Some("2023-01-01")
    );
}

fn configure_error(config: &str, env: &[(&str, &str)]) -> String {
    let host = host();
    let mut spec = FilterSpec::new(wasm()).name("key-inject").config(config);
    for (k, v) in env {
        spec = spec.env(k, v);
    }
    match Gateway::builder(&host).filter(spec).build() {
        Err(HarnessError::Configure { filter, logs }) => {
            assert_eq!(filter, "key-inject");
            let text: Vec<String> = logs.iter().map(|l| l.message.clone()).collect();
            text.join("\n")
        }
        Err(other) => panic!("expected a configuration error, got {other}"),
        Ok(_) => panic!("the configuration must be rejected"),
    }
}

#[test]
fn a_missing_variable_is_a_configuration_error() {
    let logs = configure_error(
        r#"{"keys":{"default":{"env":"KI_NOT_SET"}},"default_key":"default","allowed_upstreams":["localhost"]}"#,
        &[("KI_OTHER", KEY)],
    );
    assert!(logs.contains("keys.default.env"), "{logs}");
    assert!(logs.contains("KI_NOT_SET is not set"), "{logs}");
}

#[test]
fn an_empty_or_dirty_variable_is_a_configuration_error_that_does_not_echo_it() {
    let config = r#"{"keys":{"default":{"env":"KI_BAD"}},"default_key":"default","allowed_upstreams":["localhost"]}"#;
    let logs = configure_error(config, &[("KI_BAD", "")]);
    assert!(logs.contains("KI_BAD is empty"), "{logs}");
    let logs = configure_error(config, &[("KI_BAD", "sk-ant-with-newline\n")]);
    assert!(logs.contains("KI_BAD"), "{logs}");
    assert!(!logs.contains("sk-ant-with-newline"), "{logs}");
}

#[test]
fn policy_errors_name_the_field() {
    let logs = configure_error(
        r#"{"keys":{"default":{"env":"KI_DEFAULT_KEY"}},"default_key":"default","allowed_upstreams":["localhost"],"strip_cookie":true}"#,
        &[("KI_DEFAULT_KEY", KEY)],
    );
    assert!(logs.contains("unknown field `strip_cookie`"), "{logs}");
    let logs = configure_error(
        r#"{"keys":{"default":{"env":"KI_DEFAULT_KEY"}},"select":[{"group":"g","key":"nope"}],"allowed_upstreams":["localhost"]}"#,
        &[("KI_DEFAULT_KEY", KEY)],
    );
    assert!(logs.contains("select[0].key"), "{logs}");
    assert!(!logs.contains(KEY), "{logs}");
}

#[test]
fn without_identity_the_configured_error_is_returned() {
    let mut gw = gateway(
        r#"{"keys":{"default":{"env":"KI_DEFAULT_KEY"}},"default_key":"default",
            "require_identity":true,"allowed_upstreams":["localhost"]}"#,
    );
    let out = gw.run(
        Request::post("/v1/messages").header("authorization", "Bearer unverified"),
        upstream(),
    );
    assert!(out.upstream.is_none(), "nothing may reach the upstream");
    assert_eq!(out.client.status, 401);
    assert!(out
        .client
        .header("www-authenticate")
        .is_some_and(|v| v.starts_with("Bearer")));
    let body = out.client.json();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "authentication_error");
    assert_eq!(gw.metric("tollgate_key_inject_denied_no_identity"), Some(1));
    assert_eq!(gw.metric("tollgate_key_inject_injected"), Some(0));

    let mut gw = gateway(
        r#"{"keys":{"a":{"env":"KI_TEAM_A_KEY"}},"select":[{"group":"team-a","key":"a"}],
            "on_missing_identity":403,"allowed_upstreams":["localhost"]}"#,
    );
    let out = gw.run(Request::post("/v1/messages"), upstream());
    assert!(out.upstream.is_none());
    assert_eq!(out.client.status, 403);
    assert_eq!(out.client.json()["error"]["type"], "permission_error");
    assert_eq!(out.client.header("www-authenticate"), None);
}

#[test]
fn a_disallowed_authority_gets_no_key() {
    let mut gw = gateway(
        r#"{"keys":{"default":{"env":"KI_DEFAULT_KEY"}},"default_key":"default","allowed_upstreams":["api.anthropic.com"]}"#,
    );
    // The harness's requests are addressed to `localhost`.
    let out = gw.run(
        Request::post("/v1/messages").header("x-api-key", CLIENT_KEY),
        upstream(),
    );
    assert!(out.upstream.is_none());
    assert_eq!(out.client.status, 403);
    assert_eq!(out.client.json()["error"]["type"], "permission_error");
    assert!(!out.client.text().contains(KEY));
    assert_eq!(gw.metric("tollgate_key_inject_denied_upstream"), Some(1));
    no_key_material_logged(&out);
}

#[test]
fn allowed_clusters_fail_closed_when_the_host_has_no_cluster() {
    // The harness, unlike Envoy, exposes no route cluster: the check must refuse, not skip.
    let mut gw = gateway(
        r#"{"keys":{"default":{"env":"KI_DEFAULT_KEY"}},"default_key":"default","allowed_clusters":["upstream"]}"#,
    );
    let out = gw.run(Request::post("/v1/messages"), upstream());
    assert!(out.upstream.is_none());
    assert_eq!(out.client.status, 500);
    assert_eq!(out.client.json()["error"]["type"], "api_error");
}

// --- Selection by identity. jwt-auth writes `tollgate.subject` / `tollgate.groups`; here the
// harness's probe filter, chained first, writes them (`x-probe: set-property:NAME=VALUE`), so
// the selection is tested without tokens. The jwt-auth chain is covered end to end.

/// Per-group and per-subject keys, with a default; a subject rule first.
const SELECT_POLICY: &str = r#"{
  "keys": {
    "default": {"env": "KI_DEFAULT_KEY"},
    "team-a": {"env": "KI_TEAM_A_KEY"},
    "svc": {"env": "KI_SVC_KEY", "scheme": "bearer"}
  },
  "select": [
    {"subject": "svc-1", "key": "svc"},
    {"group": "team-a", "key": "team-a"}
  ],
  "default_key": "default",
  "allowed_upstreams": ["localhost"]
}"#;

fn chained(config: &str) -> Gateway {
    let host = host();
    let probe = FilterSpec::new(tollgate_tests::wasm_path("probe")).name("probe");
    Gateway::builder(&host)
        .filter(probe)
        .filter(spec(config))
        .build()
        .unwrap_or_else(|e| panic!("probe + key-inject must configure: {e}"))
}

/// A request whose identity filter state the probe sets before key-inject runs.
fn as_caller(subject: Option<&str>, groups: Option<&str>) -> Request {
    let mut commands = Vec::new();
    if let Some(s) = subject {
        commands.push(format!("set-property:tollgate.subject={s}"));
    }
    if let Some(g) = groups {
        commands.push(format!("set-property:tollgate.groups={g}"));
    }
    Request::post("/v1/messages")
        .header("x-probe", commands.join(";"))
        .header("x-api-key", CLIENT_KEY)
        .header("authorization", "Bearer client.jwt.token")
}

fn injected(out: &Outcome) -> (Option<String>, Option<String>) {
    let up = out.upstream.as_ref().unwrap_or_else(|| {
        panic!(
            "nothing reached the upstream: {:?} {:?}",
            out.client, out.logs
        )
    });
    (up.header("x-api-key"), up.header("authorization"))
}

#[test]
fn a_group_rule_selects_its_key() {
    let mut gw = chained(SELECT_POLICY);
    let out = gw.run(
        as_caller(Some("alice"), Some(r#"["dev","team-a"]"#)),
        upstream(),
    );
    assert_eq!(injected(&out), (Some(TEAM_KEY.to_string()), None));
    assert_eq!(
        out.property("tollgate.key_inject.key").as_deref(),
        Some("team-a")
    );
    assert_eq!(gw.metric("tollgate_key_inject_injected_team-a"), Some(1));
    assert_eq!(gw.metric("tollgate_key_inject_injected_default"), Some(0));
    no_key_material_logged(&out);
}

#[test]
fn a_subject_rule_selects_its_key_before_group_rules() {
    let mut gw = chained(SELECT_POLICY);
    // svc-1 is also in team-a: the first rule (subject) wins; its scheme is bearer.
    let out = gw.run(as_caller(Some("svc-1"), Some(r#"["team-a"]"#)), upstream());
    assert_eq!(injected(&out), (None, Some(format!("Bearer {SVC_KEY}"))));
    assert_eq!(gw.metric("tollgate_key_inject_injected_svc"), Some(1));
    no_key_material_logged(&out);
}

#[test]
fn an_unmatched_identity_gets_the_default_only_when_configured() {
    let mut gw = chained(SELECT_POLICY);
    let out = gw.run(as_caller(Some("bob"), Some(r#"["other"]"#)), upstream());
    assert_eq!(injected(&out), (Some(KEY.to_string()), None));

    // Matching is exact: `Team-A` is not `team-a`.
    let out = gw.run(as_caller(Some("bob"), Some(r#"["Team-A"]"#)), upstream());
    assert_eq!(injected(&out), (Some(KEY.to_string()), None));

    let mut gw = chained(
        r#"{"keys":{"team-a":{"env":"KI_TEAM_A_KEY"}},"select":[{"group":"team-a","key":"team-a"}],
            "allowed_upstreams":["localhost"]}"#,
    );
    let out = gw.run(as_caller(Some("bob"), Some(r#"["other"]"#)), upstream());
    assert!(out.upstream.is_none(), "no silent fallback to any key");
    assert_eq!(out.client.status, 403);
    assert_eq!(out.client.json()["error"]["type"], "permission_error");
    assert_eq!(
        gw.metric("tollgate_key_inject_denied_no_matching_key"),
        Some(1)
    );
    // Without any identity: 401 (the default on_missing_identity).
    let out = gw.run(as_caller(None, None), upstream());
    assert!(out.upstream.is_none());
    assert_eq!(out.client.status, 401);
    assert_eq!(gw.metric("tollgate_key_inject_denied_no_identity"), Some(1));
}

#[test]
fn malformed_identity_state_fails_closed_instead_of_using_the_default() {
    let mut gw = chained(SELECT_POLICY);
    for groups in ["team-a", r#"{"team-a":1}"#, r#"[1,2]"#] {
        let out = gw.run(as_caller(Some("alice"), Some(groups)), upstream());
        assert!(
            out.upstream.is_none(),
            "{groups}: must not reach the upstream"
        );
        assert_eq!(out.client.status, 500, "{groups}");
        assert_eq!(out.client.json()["error"]["type"], "api_error");
    }
    assert_eq!(
        gw.metric("tollgate_key_inject_denied_bad_identity"),
        Some(3)
    );
    assert_eq!(gw.metric("tollgate_key_inject_injected"), Some(0));
}

#[test]
fn require_identity_accepts_identified_callers_and_refuses_anonymous_ones() {
    let mut gw = chained(
        r#"{"keys":{"default":{"env":"KI_DEFAULT_KEY"}},"default_key":"default",
            "require_identity":true,"on_missing_identity":403,"allowed_upstreams":["localhost"]}"#,
    );
    let out = gw.run(as_caller(Some("alice"), None), upstream());
    assert_eq!(injected(&out), (Some(KEY.to_string()), None));
    let out = gw.run(as_caller(None, Some("[]")), upstream());
    assert_eq!(
        injected(&out),
        (Some(KEY.to_string()), None),
        "groups alone are an identity"
    );
    let out = gw.run(as_caller(None, None), upstream());
    assert!(out.upstream.is_none());
    assert_eq!(out.client.status, 403);
}

#[test]
fn allowed_clusters_check_the_route_cluster() {
    let config = r#"{"keys":{"default":{"env":"KI_DEFAULT_KEY"}},"default_key":"default","allowed_clusters":["upstream"]}"#;
    let build = |cluster: &str| {
        Gateway::builder(&host())
            .route_cluster(cluster)
            .filter(spec(config))
            .build()
            .unwrap_or_else(|e| panic!("key-inject must configure: {e}"))
    };
    let out = build("upstream").run(
        Request::post("/v1/messages").header("x-api-key", CLIENT_KEY),
        upstream(),
    );
    assert_eq!(injected(&out), (Some(KEY.to_string()), None));

    let mut gw = build("idp");
    let out = gw.run(
        Request::post("/v1/messages").header("x-api-key", CLIENT_KEY),
        upstream(),
    );
    assert!(
        out.upstream.is_none(),
        "a route to another cluster gets no key"
    );
    assert_eq!(out.client.status, 500);
    assert_eq!(out.client.json()["error"]["type"], "api_error");
    assert_eq!(gw.metric("tollgate_key_inject_denied_upstream"), Some(1));
}
