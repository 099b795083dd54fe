//! secret-mask through the harness: the very `.wasm` Envoy loads. Asserted: what the upstream
//! receives (accept-encoding), what the client receives (masked text reassembled from SSE
//! deltas, JSON bodies, fail-closed replies), metrics and filter state.

use std::sync::OnceLock;

use serde_json::{json, Value};
use tollgate_harness::{FilterSpec, Gateway, HarnessError, Host, Outcome, Request, Upstream};

const AWS: &str = "AKIAZ2MQ4JXLS7RT5WHB";
const GITHUB: &str = "ghp_Q7zK2mX9pL4vT8nB3cY6wH1jF5dG0sRaEuIo";
/// What key-inject would inject; exposed to secret-mask's VM as ANTHROPIC_API_KEY.
const UPSTREAM_KEY: &str = "sk-ant-api03-Hq3ZtV8xN1mK5pR9wL2cJ6fB0yD4gS7aT3eU8iO1nM5kX9vZ2bQ6hW0jF4rY8lP3sC7dG1tA5uE9oI2mN6xK0zV4wB8qLAA";

fn sm_policy() -> &'static str {
    include_str!("../../../policies/secret-mask.json")
}

fn spec(config: &str) -> FilterSpec {
    FilterSpec::new(tollgate_tests::wasm_path("secret-mask"))
        .name("secret-mask")
        .config(config.to_string())
        .env("ANTHROPIC_API_KEY", UPSTREAM_KEY)
}

/// One host (engine and compiled module) for every test of this module.
fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| Host::new().expect("host"))
}

fn gateway_with(config: &str) -> Gateway {
    Gateway::builder(host())
        .filter(spec(config))
        .build()
        .unwrap_or_else(|e| panic!("secret-mask must configure: {e}"))
}

fn gateway() -> Gateway {
    gateway_with(sm_policy())
}

fn messages_request() -> Request {
    Request::post("/v1/messages")
        .header("content-type", "application/json")
        .header("accept-encoding", "gzip, deflate, br, zstd")
        .body(r#"{"model":"claude","max_tokens":10,"stream":true,"messages":[]}"#)
}

fn event(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

fn text_delta(index: u64, text: &str) -> String {
    event(
        "content_block_delta",
        &json!({"type":"content_block_delta","index":index,"delta":{"type":"text_delta","text":text}}),
    )
}

/// A complete streaming answer whose single text block is `deltas`.
fn stream(deltas: &[&str], end: bool) -> String {
    let mut s = event(
        "message_start",
        &json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude","usage":{"input_tokens":3,"output_tokens":1}}}),
    );
    s += &event(
        "content_block_start",
        &json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
    );
    s += &event("ping", &json!({"type":"ping"}));
    for d in deltas {
        s += &text_delta(0, d);
    }
    if end {
        s += &event(
            "content_block_stop",
            &json!({"type":"content_block_stop","index":0}),
        );
        s += &event(
            "message_delta",
            &json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":5}}),
        );
        s += &event("message_stop", &json!({"type":"message_stop"}));
    }
    s
}

fn sse_upstream(chunks: Vec<Vec<u8>>) -> Upstream {
    Upstream::new(200)
        .header("content-type", "text/event-stream; charset=utf-8")
        .chunks(chunks)
}

/// (event name, data) of every event the client received.
fn client_events(out: &Outcome) -> Vec<(String, Value)> {
    let text = out.client.text().replace("\r\n", "\n");
    text.split("\n\n")
        .filter_map(|block| {
            let mut name = "message".to_string();
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = v.to_string();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push(v);
                }
            }
            (!data.is_empty()).then(|| {
                let v = serde_json::from_str(&data.join("\n")).expect("client data is JSON");
                (name, v)
            })
        })
        .collect()
}

/// The block-0 text the SDK's streaming helper would reconstruct.
fn client_text(out: &Outcome) -> String {
    client_events(out)
        .iter()
        .filter(|(n, v)| n == "content_block_delta" && v["index"] == 0)
        .map(|(_, v)| v["delta"]["text"].as_str().expect("text delta").to_string())
        .collect()
}

fn chunked(bytes: &[u8], sizes: &[usize]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < bytes.len() {
        let n = sizes[i % sizes.len()].max(1);
        let end = (at + n).min(bytes.len());
        out.push(bytes[at..end].to_vec());
        at = end;
        i += 1;
    }
    out
}

#[test]
fn requests_ask_the_upstream_for_identity_encoding() {
    let mut gw = gateway();
    let out = gw.run(
        messages_request(),
        Upstream::new(200)
            .header("content-type", "application/json")
            .body("{}"),
    );
    assert_eq!(out.client.status, 200);
    let up = out.upstream.as_ref().expect("reached the upstream");
    assert_eq!(up.header("accept-encoding").as_deref(), Some("identity"));
    assert!(out.failure.is_none(), "{:?}", out.failure);
}

#[test]
fn a_secret_split_across_deltas_and_chunks_never_reaches_the_client() {
    let body = stream(
        &[
            "Your key is AKIAZ2",
            "MQ4JXLS",
            "7RT5WHB and the token ",
            &GITHUB[..10],
            &GITHUB[10..],
            ". Done.",
        ],
        true,
    );
    let expected =
        "Your key is [REDACTED:aws_access_key_id] and the token [REDACTED:github_token]. Done.";
    let mut gw = gateway();
    let mut runs = 0;
    for sizes in [
        vec![usize::MAX],
        vec![1],
        vec![7],
        vec![13, 1, 64],
        vec![100, 3],
        vec![250],
    ] {
        let out = gw.run(
            messages_request(),
            sse_upstream(chunked(body.as_bytes(), &sizes)),
        );
        runs += 1;
        assert_eq!(out.client.status, 200);
        assert!(out.failure.is_none(), "{:?}", out.failure);
        let raw = out.client.text();
        assert!(
            !raw.contains("XLS7RT5WHB") && !raw.contains(&GITHUB[20..]),
            "leak with {sizes:?}: {raw}"
        );
        assert_eq!(client_text(&out), expected, "chunks {sizes:?}");
        assert_eq!(out.client.header("content-length"), None);
        assert_eq!(
            out.property("tollgate.secret_mask.masked").as_deref(),
            Some("2")
        );
        // Every other event arrives, in order.
        let names: Vec<String> = client_events(&out)
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| n != "content_block_delta")
            .collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
    }
    assert_eq!(
        gw.metric("tollgate_secret_mask_masked_aws_access_key_id"),
        Some(runs)
    );
    assert_eq!(
        gw.metric("tollgate_secret_mask_masked_github_token"),
        Some(runs)
    );
    assert_eq!(gw.metric("tollgate_secret_mask_masked"), Some(2 * runs));
    assert_eq!(gw.metric("tollgate_secret_mask_streams"), Some(runs));
    let held = gw
        .histogram("tollgate_secret_mask_held_back_bytes")
        .expect("held-back histogram");
    assert!(!held.is_empty());
    assert!(held.iter().all(|&h| h <= 16 * 1024 + 1024), "{held:?}");
}

#[test]
fn clean_streams_pass_through_byte_for_byte() {
    let body = stream(
        &["Hello", " world, no ", "secrets here (sk- is not one)."],
        true,
    );
    let mut gw = gateway();
    let out = gw.run(
        messages_request(),
        sse_upstream(chunked(body.as_bytes(), &[5, 50])),
    );
    assert_eq!(out.client.status, 200);
    assert_eq!(out.client.text(), body);
    assert_eq!(
        out.property("tollgate.secret_mask.masked").as_deref(),
        Some("0")
    );
    assert_eq!(gw.metric("tollgate_secret_mask_masked").unwrap_or(0), 0);
}

#[test]
fn held_back_text_is_flushed_when_the_stream_ends_without_message_stop() {
    let body = stream(&["partial answer ending in AKIA"], false);
    let mut gw = gateway();
    let out = gw.run(
        messages_request(),
        sse_upstream(chunked(body.as_bytes(), &[9])),
    );
    assert_eq!(client_text(&out), "partial answer ending in AKIA");
}

#[test]
fn an_error_event_mid_stream_passes_after_the_text_before_it() {
    let mut body = stream(&["so far AKIA"], false);
    body += &event(
        "error",
        &json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
    );
    let mut gw = gateway();
    let out = gw.run(
        messages_request(),
        sse_upstream(chunked(body.as_bytes(), &[11])),
    );
    let events = client_events(&out);
    let last = events.last().expect("events");
    assert_eq!(last.0, "error");
    assert_eq!(last.1["error"]["type"], "overloaded_error");
    assert_eq!(client_text(&out), "so far AKIA");
}

#[test]
fn tool_use_input_is_masked_on_the_unescaped_json() {
    let frag = |f: &str| {
        event(
            "content_block_delta",
            &json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":f}}),
        )
    };
    let mut body = event(
        "content_block_start",
        &json!({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"bash","input":{}}}),
    );
    body += &frag(r#"{"command": "curl -H \"x-api-key: sk-ant-api03-Hq3ZtV8xN1mK"#);
    body += &frag(&format!(r#"{}\"\n", "#, &UPSTREAM_KEY[25..]));
    body += &frag(r#""timeout": 5}"#);
    body += &event(
        "content_block_stop",
        &json!({"type":"content_block_stop","index":1}),
    );
    body += &event("message_stop", &json!({"type":"message_stop"}));
    let mut gw = gateway();
    let out = gw.run(
        messages_request(),
        sse_upstream(chunked(body.as_bytes(), &[17])),
    );
    let raw = out.client.text();
    assert!(!raw.contains(&UPSTREAM_KEY[30..60]), "{raw}");
    let json: String = client_events(&out)
        .iter()
        .filter_map(|(_, v)| {
            v.pointer("/delta/partial_json")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .collect();
    let input: Value = serde_json::from_str(&json).expect("tool input is valid JSON");
    assert_eq!(
        input["command"],
        "curl -H \"x-api-key: [REDACTED:upstream_api_key]\"\n"
    );
    assert_eq!(input["timeout"], 5);
    assert_eq!(
        gw.metric("tollgate_secret_mask_masked_upstream_api_key"),
        Some(1)
    );
}

#[test]
fn json_bodies_are_masked_in_text_thinking_and_tool_input() {
    let message = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
        "content": [
            {"type": "thinking", "thinking": format!("the key {AWS} was in the file"), "signature": "c2ln"},
            {"type": "text", "text": format!("Here: {GITHUB}")},
            {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"env": {"TOKEN": GITHUB}, "args": ["--key", AWS]}}
        ],
        "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 2}
    });
    let body = message.to_string();
    let mut gw = gateway();
    let out = gw.run(
        Request::post("/v1/messages").body("{}"),
        Upstream::new(200)
            .header("content-type", "application/json")
            .header("content-length", body.len().to_string())
            .chunks(chunked(body.as_bytes(), &[100])),
    );
    assert_eq!(out.client.status, 200);
    assert_eq!(out.client.header("content-length"), None);
    let raw = out.client.text();
    assert!(!raw.contains(AWS) && !raw.contains(GITHUB), "{raw}");
    let v = out.client.json();
    assert_eq!(
        v["content"][0]["thinking"],
        "the key [REDACTED:aws_access_key_id] was in the file"
    );
    assert_eq!(v["content"][0]["signature"], "c2ln");
    assert_eq!(v["content"][1]["text"], "Here: [REDACTED:github_token]");
    assert_eq!(
        v["content"][2]["input"]["env"]["TOKEN"],
        "[REDACTED:github_token]"
    );
    assert_eq!(
        v["content"][2]["input"]["args"][1],
        "[REDACTED:aws_access_key_id]"
    );
    assert_eq!(v["usage"]["output_tokens"], 2);
    assert_eq!(
        out.property("tollgate.secret_mask.masked").as_deref(),
        Some("4")
    );
    assert_eq!(gw.metric("tollgate_secret_mask_bodies"), Some(1));
}

#[test]
fn an_upstream_error_echoing_the_upstream_key_is_masked() {
    let body = json!({"type":"error","error":{"type":"authentication_error","message":format!("invalid x-api-key {UPSTREAM_KEY}")}}).to_string();
    let mut gw = gateway();
    let out = gw.run(
        Request::post("/v1/messages").body("{}"),
        Upstream::new(401)
            .header("content-type", "application/json")
            .body(body),
    );
    assert_eq!(out.client.status, 401);
    assert!(!out.client.text().contains(&UPSTREAM_KEY[20..]));
    assert_eq!(
        out.client.json()["error"]["message"],
        "invalid x-api-key [REDACTED:upstream_api_key]"
    );
}

#[test]
fn compressed_responses_fail_closed() {
    let mut gw = gateway();
    let out = gw.run(
        messages_request(),
        sse_upstream(vec![b"\x1f\x8b\x08\x00 gzip bytes".to_vec()])
            .header("content-encoding", "gzip"),
    );
    assert_eq!(out.client.status, 500);
    assert_eq!(out.client.json()["error"]["type"], "api_error");
    assert!(!out.client.text().contains("gzip bytes"));
    assert_eq!(gw.metric("tollgate_secret_mask_fail_closed"), Some(1));
    assert_eq!(
        out.property("tollgate.secret_mask.masked").as_deref(),
        Some("fail_closed")
    );
}

#[test]
fn an_oversized_event_ends_the_stream_with_an_error_event() {
    let config = json!({"max_event_bytes": 2048}).to_string();
    let big = format!("{} {AWS}", "x".repeat(4000));
    let mut body = stream(&["before "], false);
    body += &text_delta(0, &big);
    body += &text_delta(0, "after");
    let mut gw = gateway_with(&config);
    let out = gw.run(
        messages_request(),
        sse_upstream(chunked(body.as_bytes(), &[512])),
    );
    let raw = out.client.text();
    assert!(
        !raw.contains(AWS) && !raw.contains("xxxxxxxxxxxxxxxx") && !raw.contains("after"),
        "{raw}"
    );
    let events = client_events(&out);
    let last = events.last().expect("events");
    assert_eq!(last.0, "error");
    assert_eq!(last.1["error"]["type"], "api_error");
    assert_eq!(gw.metric("tollgate_secret_mask_fail_closed"), Some(1));
}

#[test]
fn bad_policies_are_rejected_at_configure_with_the_field() {
    for (config, needle) in [
        (
            r#"{"rules":[{"id":"t","regex":"tok_[a-z]+"}]}"#,
            "rules[0].regex",
        ),
        (
            r#"{"rules":[{"id":"k","env":"NOT_SET_ANYWHERE"}]}"#,
            "rules[0].env",
        ),
        (r#"{"replacment":"x"}"#, "replacment"),
    ] {
        let err = Gateway::builder(host())
            .filter(spec(config))
            .build()
            .err()
            .unwrap_or_else(|| panic!("{config} must be rejected"));
        match err {
            HarnessError::Configure { logs, .. } => {
                assert!(
                    logs.iter().any(|l| l.message.contains(needle)),
                    "{config}: {logs:?}"
                )
            }
            other => panic!("{config}: {other}"),
        }
    }
}

#[test]
fn custom_rules_and_keep_prefix() {
    let config = json!({
        "rules": [{"id": "canary", "literal": "tollgate-canary-7f3a9"}],
        "keep_prefix": 4,
        "replacement": "<{rule}>"
    })
    .to_string();
    let body = stream(&["a tollgate-can", "ary-7f3a9 b"], true);
    let mut gw = gateway_with(&config);
    let out = gw.run(messages_request(), sse_upstream(vec![body.into_bytes()]));
    assert_eq!(client_text(&out), "a toll<canary> b");
}

#[test]
fn request_masking_is_off_by_default_and_masks_prompts_when_on() {
    let prompt = json!({"model":"claude","max_tokens":10,"messages":[{"role":"user","content":format!("deploy with {AWS} please")}]}).to_string();
    let request = || {
        Request::post("/v1/messages")
            .header("content-type", "application/json")
            .header("content-length", prompt.len().to_string())
            .chunks(chunked(prompt.as_bytes(), &[40]))
    };
    let answer = || {
        Upstream::new(200)
            .header("content-type", "application/json")
            .body("{}")
    };

    let mut gw = gateway();
    let out = gw.run(request(), answer());
    let up = out.upstream.as_ref().expect("reached the upstream");
    assert_eq!(
        up.body,
        prompt.as_bytes(),
        "off by default: the prompt is untouched"
    );

    // On, scoped to a group: a caller without identity is masked (the safe side).
    let mut gw = gateway_with(r#"{"request":{"enabled":true,"groups":["contractors"]}}"#);
    let out = gw.run(request(), answer());
    let up = out.upstream.as_ref().expect("reached the upstream");
    assert_eq!(up.header("content-length"), None);
    let sent = up.json().expect("JSON body upstream");
    assert_eq!(
        sent["messages"][0]["content"],
        "deploy with [REDACTED:aws_access_key_id] please"
    );
    assert!(!String::from_utf8_lossy(&up.body).contains(AWS));
    assert_eq!(gw.metric("tollgate_secret_mask_request_masked"), Some(1));
}
