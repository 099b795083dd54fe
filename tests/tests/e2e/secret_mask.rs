//! secret-mask end to end: a real Envoy loading `tollgate_secret_mask.wasm` in front of the mock
//! Claude API, which streams answers containing secrets cut across deltas and network chunks.
//! Asserted: the bytes the client receives never contain a secret, the text reassembled from
//! the SSE deltas (by hand and by the official Python SDK's streaming helper) is the masked
//! text, compressed answers fail closed, and Envoy's stats show the filter's metrics.

use std::time::Duration;

use serde_json::json;
use tollgate_mock::{Block, MockServer, Reply, Script};
use tollgate_tests::http::{messages_body, parse_sse, sse_text, Request};
use tollgate_tests::sdk::{SdkAuth, SdkRun};
use tollgate_tests::{Envoy, EnvoyOptions, Filter, GatewayConfig, Upstream};

use super::{mock, MOCK_KEY};

/// The variable through which Envoy hands the upstream key to secret-mask's VM.
const KEY_VAR: &str = "TOLLGATE_SM_E2E_KEY";
const AWS: &str = "AKIAZ2MQ4JXLS7RT5WHB";
const GITHUB: &str = "ghp_Q7zK2mX9pL4vT8nB3cY6wH1jF5dG0sRaEuIo";

fn policy() -> String {
    json!({"rules": [{"id": "upstream_api_key", "env": KEY_VAR}]}).to_string()
}

fn start(mock: &MockServer) -> Envoy {
    let cfg = GatewayConfig::ephemeral(Upstream::Mock(mock.addr().into()))
        .filter(Filter::new("secret-mask", policy()));
    Envoy::start_with(&cfg, &EnvoyOptions::default().env(KEY_VAR, MOCK_KEY)).expect("envoy starts")
}

fn messages(stream: bool) -> Request {
    Request::post("/v1/messages")
        .header("x-api-key", MOCK_KEY)
        .header("anthropic-version", "2023-06-01")
        .header("accept-encoding", "gzip, br")
        .json(&messages_body("show me the config", stream))
}

/// An answer leaking three secrets; the mock key is not Anthropic-shaped, so only the `env`
/// rule can catch it.
fn leaky_text() -> String {
    format!("aws={AWS}\ngithub: {GITHUB} and the gateway key {MOCK_KEY}, done.")
}

fn masked_text() -> String {
    "aws=[REDACTED:aws_access_key_id]\ngithub: [REDACTED:github_token] and the gateway key [REDACTED:upstream_api_key], done."
        .to_string()
}

fn assert_no_secret(raw: &str) {
    for secret in [AWS, GITHUB, MOCK_KEY] {
        let tail = &secret[secret.len() / 2..];
        assert!(!raw.contains(tail), "{secret} leaked: {raw}");
    }
}

#[test]
fn streamed_secrets_split_across_deltas_and_chunks_are_masked() {
    let mock = mock();
    let envoy = start(&mock);
    for (delta, chunk) in [(3, 7), (5, 1), (11, 64), (40, 13)] {
        let reply = Reply::blocks(vec![Block::text(leaky_text())]).delta_size(delta);
        mock.push_script(Script::stream(reply).chunk_size(chunk).delay_ms(1));
        let mut stream = envoy.send_streaming(&messages(true)).expect("request");
        assert_eq!(stream.status, 200);
        assert_eq!(stream.header("content-length"), None);
        let mut pieces = Vec::new();
        while let Some(piece) = stream.next_chunk().expect("chunk") {
            pieces.push(piece);
        }
        let body = pieces.concat();
        let raw = String::from_utf8_lossy(&body);
        assert_no_secret(&raw);
        let events = parse_sse(&body);
        assert_eq!(
            events.first().map(|e| e.event.as_str()),
            Some("message_start")
        );
        assert_eq!(
            events.last().map(|e| e.event.as_str()),
            Some("message_stop")
        );
        assert_eq!(
            sse_text(&events),
            masked_text(),
            "delta {delta} chunk {chunk}"
        );
    }
    // The upstream was asked for an uncompressed answer.
    let seen = mock.wait_for_requests(4, Duration::from_secs(30));
    assert!(seen
        .iter()
        .all(|r| r.header("accept-encoding") == Some("identity")));
    assert_eq!(envoy.metric("tollgate_secret_mask_streams"), Some(4));
    assert_eq!(
        envoy.metric("tollgate_secret_mask_masked_upstream_api_key"),
        Some(4)
    );
    assert_eq!(envoy.metric("tollgate_secret_mask_masked"), Some(12));
}

#[test]
fn the_python_sdk_reconstructs_the_masked_text() {
    let mock = mock();
    let envoy = start(&mock);
    mock.push_script(
        Script::stream(
            Reply::blocks(vec![
                Block::thinking(format!("found {AWS}")),
                Block::text(leaky_text()),
            ])
            .delta_size(4),
        )
        .chunk_size(9),
    );
    mock.push_script(Script::message(Reply::text(leaky_text())));
    let report = SdkRun::new(&envoy.url(), SdkAuth::ApiKey(MOCK_KEY.to_string()))
        .case(json!({"name": "stream", "stream": true, "expect": {"ok": true, "text_equals": masked_text()}}))
        .case(json!({"name": "create", "stream": false, "expect": {"ok": true, "text_equals": masked_text()}}))
        .run()
        .expect("sdk runs");
    report.assert_all_ok();
    assert_no_secret(&report.stdout);
}

#[test]
fn compressed_answers_fail_closed_with_an_api_error() {
    let mock = mock();
    let envoy = start(&mock);
    mock.push_script(Script::message(Reply::text(leaky_text())).gzip());
    let resp = envoy.send(&messages(false)).expect("request");
    assert_eq!(resp.status, 500, "{}", resp.text());
    assert_eq!(resp.json()["error"]["type"], "api_error");
    assert_eq!(envoy.metric("tollgate_secret_mask_fail_closed"), Some(1));
}
