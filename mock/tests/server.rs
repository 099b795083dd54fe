//! End-to-end tests of the mock server over real TCP connections: endpoints, authentication,
//! validation, recording, scripts (chunk boundaries, delays, gzip, errors, mid-stream error
//! events, disconnects) and the control API.

// Helpers outside #[test] fns fail tests by panicking, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod client;

use std::io::Read;
use std::time::{Duration, Instant};

use client::{parse_sse, post_json, request, Client};
use serde_json::{json, Value};
use tollgate_mock::api::{FAKE_ANTHROPIC_KEY, FAKE_AWS_KEY_ID};
use tollgate_mock::{
    chunked, chunked_by_size, sse_events, Block, MockConfig, MockServer, RecordedRequest, Reply,
    Script, SSE_CONTENT_TYPE,
};

const MSG: &str = r#"{"model":"claude-test-1","max_tokens":256,"messages":[{"role":"user","content":"hello mock"}]}"#;
const MSG_STREAM: &str = r#"{"model":"claude-test-1","max_tokens":256,"stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"stream please"}]}]}"#;

fn server() -> MockServer {
    MockServer::start(MockConfig::default()).expect("start mock")
}

fn with_key(key: &str) -> MockServer {
    MockServer::start(MockConfig {
        api_key: Some(key.to_string()),
        ..MockConfig::default()
    })
    .expect("start mock")
}

fn assert_error(resp: &client::Response, status: u16, error_type: &str) {
    assert_eq!(resp.status, status, "body: {}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let v = resp.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], error_type);
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert_eq!(
        v["request_id"].as_str(),
        resp.header("request-id"),
        "request_id in body equals the request-id header"
    );
}

/// Checks the documented event order and returns the concatenated text_delta text.
fn check_sequence(events: &[(String, Value)]) -> String {
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"), "{names:?}");
    assert_eq!(names.last(), Some(&"message_stop"), "{names:?}");
    assert_eq!(names[names.len() - 2], "message_delta");
    let mut text = String::new();
    let mut open: Option<u64> = None;
    let mut next_index = 0;
    for (name, data) in events {
        match name.as_str() {
            "content_block_start" => {
                assert!(open.is_none(), "block started inside a block");
                assert_eq!(data["index"], next_index);
                open = data["index"].as_u64();
            }
            "content_block_delta" => {
                assert_eq!(data["index"].as_u64(), open, "delta outside its block");
                if data["delta"]["type"] == "text_delta" {
                    text.push_str(data["delta"]["text"].as_str().expect("text"));
                }
            }
            "content_block_stop" => {
                assert_eq!(data["index"].as_u64(), open);
                open = None;
                next_index += 1;
            }
            "message_start" => {
                let m = &data["message"];
                assert_eq!(m["type"], "message");
                assert_eq!(m["role"], "assistant");
                assert!(m["id"].as_str().is_some_and(|id| id.starts_with("msg_")));
                assert_eq!(m["content"], json!([]));
                assert!(m["stop_reason"].is_null());
                assert!(m["usage"]["input_tokens"].is_u64());
            }
            "message_delta" => {
                assert!(data["delta"]["stop_reason"].is_string());
                assert!(data["usage"]["output_tokens"].is_u64());
            }
            "ping" | "message_stop" => {}
            other => panic!("unexpected event {other}"),
        }
    }
    assert!(open.is_none());
    text
}

#[test]
fn non_streaming_message_echoes_prompt() {
    let mock = server();
    let resp = post_json(mock.addr(), "/v1/messages", &[], MSG);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert!(resp.header("content-length").is_some());
    assert!(resp
        .header("request-id")
        .is_some_and(|id| id.starts_with("req_")));
    let v = resp.json();
    assert!(v["id"].as_str().is_some_and(|id| id.starts_with("msg_")));
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-test-1");
    assert_eq!(v["content"][0]["type"], "text");
    assert_eq!(v["content"][0]["text"], "You said: hello mock");
    assert_eq!(v["stop_reason"], "end_turn");
    assert!(v["stop_sequence"].is_null());
    assert!(v["usage"]["input_tokens"].as_u64().is_some_and(|n| n >= 1));
    assert!(v["usage"]["output_tokens"].as_u64().is_some_and(|n| n >= 1));
    // Ids differ between requests.
    let again = post_json(mock.addr(), "/v1/messages", &[], MSG).json();
    assert_ne!(again["id"], v["id"]);
}

#[test]
fn streaming_message_has_documented_sequence() {
    let mock = server();
    let resp = post_json(mock.addr(), "/v1/messages?beta=true", &[], MSG_STREAM);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some(SSE_CONTENT_TYPE));
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    assert!(resp.complete);
    let events = resp.sse();
    assert_eq!(events[1].0, "ping");
    assert_eq!(events[0].1["message"]["model"], "claude-test-1");
    let text = check_sequence(&events);
    assert_eq!(text, "You said: stream please");
    // Default delta size 16 splits the text; one network chunk per event.
    let deltas = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .count();
    assert_eq!(deltas, text.len().div_ceil(16));
    assert_eq!(resp.chunks.len(), events.len());
    let (_, md) = &events[events.len() - 2];
    assert_eq!(md["delta"]["stop_reason"], "end_turn");
}

#[test]
fn authentication_like_the_api() {
    let mock = with_key("sk-test-123");
    let missing = post_json(mock.addr(), "/v1/messages", &[], MSG);
    assert_error(&missing, 401, "authentication_error");
    assert_eq!(
        missing.json()["error"]["message"],
        "x-api-key header is required"
    );
    let wrong = post_json(
        mock.addr(),
        "/v1/messages",
        &[("x-api-key", "sk-test-12")],
        MSG,
    );
    assert_error(&wrong, 401, "authentication_error");
    assert_eq!(wrong.json()["error"]["message"], "invalid x-api-key");
    // Current SDKs send the key as a bearer token: accepted, unless x-api-key says otherwise.
    let bearer = |h: &[(&str, &str)]| post_json(mock.addr(), "/v1/messages", h, MSG).status;
    assert_eq!(bearer(&[("authorization", "Bearer sk-test-123")]), 200);
    assert_eq!(bearer(&[("authorization", "Bearer sk-test-12")]), 401);
    assert_eq!(bearer(&[("authorization", "sk-test-123")]), 401);
    assert_eq!(
        bearer(&[
            ("x-api-key", "wrong"),
            ("authorization", "Bearer sk-test-123")
        ]),
        401
    );
    let strict = MockServer::start(MockConfig {
        api_key: Some("sk-test-123".into()),
        accept_bearer: false,
        ..MockConfig::default()
    })
    .expect("start");
    let r = post_json(
        strict.addr(),
        "/v1/messages",
        &[("authorization", "Bearer sk-test-123")],
        MSG,
    );
    assert_eq!(r.json()["error"]["message"], "x-api-key header is required");
    let ok = post_json(
        mock.addr(),
        "/v1/messages",
        &[("x-api-key", "sk-test-123")],
        MSG,
    );
    assert_eq!(ok.status, 200);
    // Other endpoints too.
    let models = request(mock.addr(), "GET", "/v1/models", &[], b"");
    assert_eq!(models.status, 401);
    let models = request(
        mock.addr(),
        "GET",
        "/v1/models",
        &[("x-api-key", "sk-test-123")],
        b"",
    );
    assert_eq!(models.status, 200);
    let count = post_json(mock.addr(), "/v1/messages/count_tokens", &[], MSG);
    assert_eq!(count.status, 401);
    // A queued script is not consumed by an unauthenticated request.
    mock.push_script(Script::overloaded());
    assert_eq!(post_json(mock.addr(), "/v1/messages", &[], MSG).status, 401);
    assert_eq!(mock.pending_scripts(), 1);
}

#[test]
fn body_validation_like_the_api() {
    let mock = server();
    let cases = [
        "{not json",
        "",
        r#"{"max_tokens":10,"messages":[{"role":"user","content":"x"}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
        r#"{"model":"m","max_tokens":10}"#,
        r#"{"model":"m","max_tokens":10,"messages":[]}"#,
        r#"{"model":"m","max_tokens":"ten","messages":[{"role":"user","content":"x"}]}"#,
    ];
    for body in cases {
        let resp = post_json(mock.addr(), "/v1/messages", &[], body);
        assert_error(&resp, 400, "invalid_request_error");
    }
    let resp = post_json(mock.addr(), "/v1/messages", &[], "{}");
    assert_eq!(resp.json()["error"]["message"], "model: Field required");
}

#[test]
fn models_count_tokens_and_unknown_paths() {
    let mock = server();
    let resp = request(mock.addr(), "GET", "/v1/models?limit=20", &[], b"");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let v = resp.json();
    let data = v["data"].as_array().expect("data array");
    assert!(!data.is_empty());
    for m in data {
        assert_eq!(m["type"], "model");
        assert!(m["id"].as_str().is_some_and(|s| s.starts_with("claude-")));
        assert!(m["display_name"].is_string());
        assert!(m["created_at"].as_str().is_some_and(|s| s.ends_with('Z')));
    }
    assert_eq!(v["has_more"], false);
    assert_eq!(v["first_id"], data[0]["id"]);
    assert_eq!(v["last_id"], data[data.len() - 1]["id"]);

    let id = data[0]["id"].as_str().expect("id");
    let one = request(mock.addr(), "GET", &format!("/v1/models/{id}"), &[], b"");
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["id"], id);
    let none = request(mock.addr(), "GET", "/v1/models/claude-nope", &[], b"");
    assert_error(&none, 404, "not_found_error");

    let short = post_json(mock.addr(), "/v1/messages/count_tokens", &[], MSG);
    assert_eq!(short.status, 200);
    let long_body =
        json!({"model": "m", "messages": [{"role": "user", "content": "word ".repeat(400)}]});
    let long = post_json(
        mock.addr(),
        "/v1/messages/count_tokens?beta=true",
        &[],
        &long_body.to_string(),
    );
    let (a, b) = (
        short.json()["input_tokens"].as_u64().expect("n"),
        long.json()["input_tokens"].as_u64().expect("n"),
    );
    assert!(a >= 1 && b > a * 10, "{a} {b}");
    let bad = post_json(
        mock.addr(),
        "/v1/messages/count_tokens",
        &[],
        r#"{"model":"m"}"#,
    );
    assert_error(&bad, 400, "invalid_request_error");

    assert_error(
        &request(mock.addr(), "GET", "/v1/nothing?x=1", &[], b""),
        404,
        "not_found_error",
    );
    assert_error(
        &request(mock.addr(), "GET", "/", &[], b""),
        404,
        "not_found_error",
    );
    let wrong_method = request(mock.addr(), "GET", "/v1/messages", &[], b"");
    assert_eq!(wrong_method.status, 405);
}

#[test]
fn records_every_request_in_order() {
    let mock = server();
    let body = br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"a"}]}"#;
    request(
        mock.addr(),
        "POST",
        "/v1/messages?beta=true",
        &[("X-Api-Key", "k-1"), ("Anthropic-Version", "2023-06-01")],
        body,
    );
    request(mock.addr(), "GET", "/v1/models", &[], b"");
    request(mock.addr(), "GET", "/nope", &[], b"");
    request(mock.addr(), "GET", "/_mock/health", &[], b"");
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 3, "control requests are not recorded");
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, "/v1/messages?beta=true");
    assert_eq!(reqs[0].path_only(), "/v1/messages");
    assert_eq!(reqs[0].header("x-api-key"), Some("k-1"));
    assert_eq!(reqs[0].header("X-API-KEY"), Some("k-1"));
    assert!(reqs[0]
        .headers
        .iter()
        .any(|(k, _)| k == "anthropic-version"));
    assert!(reqs[0]
        .headers
        .iter()
        .all(|(k, _)| *k == k.to_ascii_lowercase()));
    assert_eq!(reqs[0].body, body.to_vec());
    assert_eq!(reqs[0].json().expect("json")["model"], "m");
    assert_eq!(
        (reqs[1].method.as_str(), reqs[1].path.as_str()),
        ("GET", "/v1/models")
    );
    assert_eq!(reqs[2].path, "/nope");
    assert!(reqs[1].json().is_none());
    mock.reset();
    assert!(mock.requests().is_empty());
}

#[test]
fn scripts_are_fifo_then_default() {
    let mock = server();
    mock.push_script(Script::message(Reply::text("first")));
    mock.push_script(Script::json(201, json!({"custom": true})));
    let a = post_json(mock.addr(), "/v1/messages", &[], MSG).json();
    assert_eq!(a["content"][0]["text"], "first");
    let b = post_json(mock.addr(), "/v1/messages", &[], MSG);
    assert_eq!(b.status, 201);
    assert_eq!(b.json(), json!({"custom": true}));
    let c = post_json(mock.addr(), "/v1/messages", &[], MSG).json();
    assert_eq!(c["content"][0]["text"], "You said: hello mock");
    assert_eq!(mock.pending_scripts(), 0);
    // Scripts only answer /v1/messages.
    mock.push_script(Script::overloaded());
    assert_eq!(
        request(mock.addr(), "GET", "/v1/models", &[], b"").status,
        200
    );
    assert_eq!(post_json(mock.addr(), "/v1/messages", &[], MSG).status, 529);
}

#[test]
fn reply_script_follows_request_stream_flag() {
    let mock = server();
    let reply = Reply::text("same either way").delta_size(5);
    mock.push_script(Script::reply(reply.clone()));
    mock.push_script(Script::reply(reply.clone()));
    let plain = post_json(mock.addr(), "/v1/messages", &[], MSG);
    assert_eq!(plain.json()["content"][0]["text"], "same either way");
    let streamed = post_json(mock.addr(), "/v1/messages", &[], MSG_STREAM);
    assert_eq!(streamed.body, sse_events(&reply));
    assert_eq!(check_sequence(&streamed.sse()), "same either way");
}

#[test]
fn chunk_boundaries_are_exactly_as_scripted() {
    let mock = server();
    let reply = Reply::text("The secret sk-ant-api03-abc is split").delta_size(6);
    let bytes = sse_events(&reply);
    // A chunk with a fraction of an event, one with several events, and a 1-byte chunk.
    let cuts = vec![40, 41, bytes.len() - 30];
    mock.push_script(Script::stream(reply.clone()).boundaries(cuts.clone()));
    let resp = post_json(mock.addr(), "/v1/messages", &[], MSG_STREAM);
    assert_eq!(resp.status, 200);
    assert!(resp.complete);
    assert_eq!(resp.chunks, chunked(&bytes, &cuts));
    assert_eq!(resp.chunks.len(), 4);
    assert_eq!(resp.chunks[1].len(), 1);
    assert_eq!(resp.body, bytes);
    assert_eq!(check_sequence(&resp.sse()), reply.full_text());

    mock.push_script(Script::stream(reply.clone()).chunk_size(7));
    let resp = post_json(mock.addr(), "/v1/messages", &[], MSG_STREAM);
    assert_eq!(resp.chunks, chunked_by_size(&bytes, 7));
    assert!(resp.chunks.iter().rev().skip(1).all(|c| c.len() == 7));

    // Default scripted chunking: one chunk per event.
    mock.push_script(Script::stream(reply.clone()));
    let resp = post_json(mock.addr(), "/v1/messages", &[], MSG_STREAM);
    assert_eq!(resp.chunks, tollgate_mock::sse_event_list(&reply));
}

#[test]
fn delays_between_chunks_and_before_head() {
    let mock = server();
    mock.push_script(
        Script::stream(Reply::text("slow"))
            .boundaries(vec![50, 100])
            .delay_ms(150),
    );
    let resp = post_json(mock.addr(), "/v1/messages", &[], MSG_STREAM);
    assert_eq!(resp.chunks.len(), 3);
    let t = &resp.chunk_times;
    assert!(t[1] - t[0] >= Duration::from_millis(120), "{t:?}");
    assert!(t[2] - t[1] >= Duration::from_millis(120), "{t:?}");
    assert!(resp.complete);

    mock.push_script(Script::message(Reply::text("late")).head_delay_ms(200));
    let resp = post_json(mock.addr(), "/v1/messages", &[], MSG);
    assert!(
        resp.head_time >= Duration::from_millis(180),
        "{:?}",
        resp.head_time
    );
    assert_eq!(resp.json()["content"][0]["text"], "late");
}

#[test]
fn gzip_encoded_replies() {
    let mock = server();
    let reply = Reply::text("compressed answer ".repeat(20)).delta_size(10);
    mock.push_script(Script::stream(reply.clone()).gzip().chunk_size(64));
    let resp = post_json(
        mock.addr(),
        "/v1/messages",
        &[("accept-encoding", "gzip")],
        MSG_STREAM,
    );
    assert_eq!(resp.header("content-encoding"), Some("gzip"));
    assert!(resp.chunks.len() > 1);
    assert!(resp.chunks.iter().rev().skip(1).all(|c| c.len() == 64));
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&resp.body[..])
        .read_to_end(&mut plain)
        .expect("valid gzip");
    assert_eq!(plain, sse_events(&reply));
    assert!(resp.body.len() < plain.len());

    mock.push_script(Script::message(Reply::text("json gz")).gzip());
    let resp = post_json(mock.addr(), "/v1/messages", &[], MSG);
    assert_eq!(resp.header("content-encoding"), Some("gzip"));
    assert!(resp.header("content-length").is_some());
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&resp.body[..])
        .read_to_end(&mut plain)
        .expect("valid gzip");
    let v: Value = serde_json::from_slice(&plain).expect("json");
    assert_eq!(v["content"][0]["text"], "json gz");
}

#[test]
fn upstream_error_statuses() {
    let mock = server();
    mock.push_script(Script::rate_limited());
    mock.push_script(Script::overloaded());
    mock.push_script(Script::error("api_error", "boom").status(503));
    let r = post_json(mock.addr(), "/v1/messages", &[], MSG);
    assert_error(&r, 429, "rate_limit_error");
    assert_eq!(r.header("retry-after"), Some("1"));
    let r = post_json(mock.addr(), "/v1/messages", &[], MSG_STREAM);
    assert_error(&r, 529, "overloaded_error");
    assert_eq!(r.reason, "Overloaded");
    let r = post_json(mock.addr(), "/v1/messages", &[], MSG);
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"]["message"], "boom");
}

#[test]
fn error_event_mid_stream() {
    let mock = server();
    let reply = Reply::text("partial answer").delta_size(4).error_after(
        4,
        "overloaded_error",
        "Overloaded",
    );
    mock.push_script(Script::stream(reply));
    let resp = post_json(mock.addr(), "/v1/messages", &[], MSG_STREAM);
    assert_eq!(resp.status, 200);
    assert!(resp.complete, "the body itself ends properly");
    let events = resp.sse();
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "error"
        ]
    );
    let err = &events[4].1;
    assert_eq!(err["error"]["type"], "overloaded_error");
    assert_eq!(err["error"]["message"], "Overloaded");
    assert!(!names.contains(&"message_stop"));
}

#[test]
fn abrupt_disconnect_after_n_bytes() {
    let mock = server();
    let reply = Reply::text("this stream will be cut short").delta_size(5);
    let full = sse_events(&reply);
    mock.push_script(Script::stream(reply).chunk_size(50).disconnect_after(120));
    let mut c = Client::connect(mock.addr());
    let resp = c.send(
        "POST",
        "/v1/messages",
        &[("content-type", "application/json")],
        MSG_STREAM.as_bytes(),
    );
    assert_eq!(resp.status, 200);
    assert!(!resp.complete, "no terminal chunk");
    assert_eq!(resp.body, full[..120].to_vec());
    assert_eq!(
        resp.chunks.iter().map(Vec::len).collect::<Vec<_>>(),
        [50, 50, 20]
    );
    assert!(c.is_closed(Duration::from_secs(2)));

    // Disconnect right after the head.
    mock.push_script(Script::stream(Reply::text("x")).disconnect_after(0));
    let resp = post_json(mock.addr(), "/v1/messages", &[], MSG_STREAM);
    assert_eq!(resp.status, 200);
    assert!(resp.body.is_empty() && !resp.complete);

    // The server keeps serving.
    assert_eq!(post_json(mock.addr(), "/v1/messages", &[], MSG).status, 200);
}

#[test]
fn tool_use_and_thinking_stream_through_server() {
    let mock = server();
    let input = json!({"command": "cat \"/etc/hosts\"\nls", "n": 3});
    let reply = Reply::blocks(vec![
        Block::thinking("Let me think about it."),
        Block::text("I'll run it."),
        Block::tool_use("bash", input.clone()),
    ])
    .delta_size(5);
    mock.push_script(Script::stream(reply).chunk_size(33));
    let resp = post_json(mock.addr(), "/v1/messages", &[], MSG_STREAM);
    let events = resp.sse();
    assert_eq!(check_sequence(&events), "I'll run it.");
    let mut partial = String::new();
    let mut thinking = String::new();
    let mut signature = false;
    for (_, d) in &events {
        match d["delta"]["type"].as_str() {
            Some("input_json_delta") => {
                partial.push_str(d["delta"]["partial_json"].as_str().expect("s"))
            }
            Some("thinking_delta") => {
                thinking.push_str(d["delta"]["thinking"].as_str().expect("s"))
            }
            Some("signature_delta") => signature = true,
            _ => {}
        }
    }
    assert_eq!(thinking, "Let me think about it.");
    assert!(signature);
    assert_eq!(
        serde_json::from_str::<Value>(&partial).expect("json"),
        input
    );
    let start = events
        .iter()
        .find(|(n, d)| n == "content_block_start" && d["content_block"]["type"] == "tool_use")
        .expect("tool_use start");
    assert_eq!(start.1["content_block"]["name"], "bash");
    assert_eq!(start.1["content_block"]["input"], json!({}));
    let md = &events[events.len() - 2].1;
    assert_eq!(md["delta"]["stop_reason"], "tool_use");
}

#[test]
fn demo_mode_answers_and_shows_fake_credentials() {
    let mock = MockServer::start(MockConfig {
        demo: true,
        ..MockConfig::default()
    })
    .expect("start");
    let ask = |prompt: &str, stream: bool| {
        let body = json!({"model": "m", "max_tokens": 1024, "stream": stream,
            "messages": [{"role": "user", "content": prompt}]});
        post_json(mock.addr(), "/v1/messages", &[], &body.to_string())
    };
    let r = ask("What is the capital of France?", false).json();
    let text = r["content"][0]["text"].as_str().expect("text").to_string();
    assert!(!text.contains("sk-ant-"));
    assert!(text.contains("capital of France"));
    let r = ask("Print the production API key please", false).json();
    let text = r["content"][0]["text"].as_str().expect("text").to_string();
    assert!(text.contains(FAKE_ANTHROPIC_KEY) && text.contains(FAKE_AWS_KEY_ID));
    // Streamed, the key is split across deltas and still reassembles.
    let events = ask("show me the aws credentials", true).sse();
    let streamed = check_sequence(&events);
    assert!(streamed.contains(FAKE_ANTHROPIC_KEY));
    let split = events
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .all(|t| !t.contains(FAKE_ANTHROPIC_KEY));
    assert!(split, "the key spans several deltas");
}

#[test]
fn keep_alive_connection_serves_several_requests() {
    let mock = server();
    let mut c = Client::connect(mock.addr());
    for i in 0..3 {
        let body = json!({"model": "m", "max_tokens": 50, "stream": i == 1,
            "messages": [{"role": "user", "content": format!("n{i}")}]});
        let resp = c.send(
            "POST",
            "/v1/messages",
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        );
        assert_eq!(resp.status, 200);
        assert!(resp.complete);
        let text = if i == 1 {
            check_sequence(&resp.sse())
        } else {
            resp.json()["content"][0]["text"]
                .as_str()
                .expect("t")
                .to_string()
        };
        assert_eq!(text, format!("You said: n{i}"));
    }
    assert_eq!(mock.request_count(), 3);
}

#[test]
fn request_too_large_and_no_record() {
    let mock = MockServer::start(MockConfig {
        max_body: 1000,
        record: false,
        ..MockConfig::default()
    })
    .expect("start");
    let big = format!(
        r#"{{"model":"m","max_tokens":5,"messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(2000)
    );
    let r = post_json(mock.addr(), "/v1/messages", &[], &big);
    assert_error(&r, 413, "request_too_large");
    assert_eq!(post_json(mock.addr(), "/v1/messages", &[], MSG).status, 200);
    assert!(mock.requests().is_empty());
}

#[test]
fn control_api_over_http() {
    let mock = server();
    let scripts = json!([
        {"body": {"type": "message", "reply": {"content": [{"type": "text", "text": "from control"}]}}},
        {"status": 418, "headers": [["x-custom", "yes"]],
         "body": {"type": "raw", "body": "teapot", "content_type": "text/plain"}},
    ]);
    let r = post_json(mock.addr(), "/_mock/script", &[], &scripts.to_string());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["queued"], 2);
    let bad = post_json(
        mock.addr(),
        "/_mock/script",
        &[],
        r#"{"body":{"type":"nope"}}"#,
    );
    assert_eq!(bad.status, 400);
    assert_eq!(mock.pending_scripts(), 2);

    let a = post_json(mock.addr(), "/v1/messages", &[], MSG);
    assert_eq!(a.json()["content"][0]["text"], "from control");
    let b = post_json(mock.addr(), "/v1/messages", &[], MSG);
    assert_eq!(b.status, 418);
    assert_eq!(b.header("x-custom"), Some("yes"));
    assert_eq!(b.header("content-type"), Some("text/plain"));
    assert_eq!(b.text(), "teapot");

    let list = request(mock.addr(), "GET", "/_mock/requests", &[], b"");
    let reqs: Vec<RecordedRequest> = serde_json::from_slice(&list.body).expect("requests");
    assert_eq!(reqs, mock.requests());
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].body, MSG.as_bytes());

    mock.push_script(Script::overloaded());
    let r = request(mock.addr(), "POST", "/_mock/reset", &[], b"");
    assert_eq!(r.status, 200);
    assert!(mock.requests().is_empty());
    assert_eq!(mock.pending_scripts(), 0);
    assert_eq!(
        request(mock.addr(), "GET", "/_mock/nope", &[], b"").status,
        404
    );
}

#[test]
fn drop_stops_the_server() {
    let mock = server();
    let addr = mock.addr();
    // An idle keep-alive connection must not keep the server alive.
    let mut idle = Client::connect(addr);
    assert_eq!(idle.send("GET", "/v1/models", &[], b"").status, 200);
    let started = Instant::now();
    drop(mock);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(std::net::TcpStream::connect(addr).is_err());
    assert!(idle.is_closed(Duration::from_secs(2)));
}

#[test]
fn multi_threaded_runtime_serves_concurrent_clients() {
    let mock = MockServer::start(MockConfig {
        workers: 2,
        ..MockConfig::default()
    })
    .expect("start");
    let addr = mock.addr();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                for j in 0..10 {
                    let body = json!({"model": "m", "max_tokens": 50, "stream": j % 2 == 0,
                        "messages": [{"role": "user", "content": format!("{i}-{j}")}]});
                    let r = c.send("POST", "/v1/messages", &[], body.to_string().as_bytes());
                    assert_eq!(r.status, 200);
                    if j % 2 == 0 {
                        assert_eq!(check_sequence(&r.sse()), format!("You said: {i}-{j}"));
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread");
    }
    assert_eq!(mock.request_count(), 80);
}

#[test]
fn rendered_script_matches_wire() {
    // The pure rendering harness tests use gives exactly what the server sends.
    let mock = server();
    let script = Script::stream(Reply::text("harness parity").delta_size(3))
        .boundaries(vec![10, 200, 201])
        .header("x-upstream", "mock");
    let rendered = script.render();
    mock.push_script(script);
    let resp = post_json(mock.addr(), "/v1/messages", &[], MSG_STREAM);
    assert_eq!(resp.status, rendered.status);
    assert_eq!(resp.chunks, rendered.chunks);
    for (k, v) in &rendered.headers {
        assert_eq!(resp.header(k), Some(v.as_str()), "{k}");
    }
    let _ = parse_sse(&rendered.body());
}

#[test]
fn record_limit_keeps_most_recent() {
    let mock = MockServer::start(MockConfig {
        record_limit: Some(2),
        ..MockConfig::default()
    })
    .expect("start");
    for p in ["/v1/models?a=1", "/v1/models?a=2", "/v1/models?a=3"] {
        assert_eq!(request(mock.addr(), "GET", p, &[], b"").status, 200);
    }
    let paths: Vec<String> = mock.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/v1/models?a=2", "/v1/models?a=3"]);
}

#[test]
fn stream_delay_paces_unscripted_streams() {
    let mock = MockServer::start(MockConfig {
        stream_delay_ms: 40,
        delta_size: 0,
        ..MockConfig::default()
    })
    .expect("start");
    let resp = post_json(mock.addr(), "/v1/messages", &[], MSG_STREAM);
    assert_eq!(check_sequence(&resp.sse()), "You said: stream please");
    let t = &resp.chunk_times;
    assert_eq!(t.len(), 7);
    let span = t[t.len() - 1] - t[0];
    assert!(span >= Duration::from_millis(6 * 35), "{t:?}");
}

/// Reads from `stream` until `needle` has arrived (or 5 s passed); returns what arrived.
fn read_until(stream: &mut std::net::TcpStream, needle: &[u8]) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !out.windows(needle.len()).any(|w| w == needle) {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => continue,
        }
    }
    out
}

#[test]
fn raw_header_bytes_and_trailers_go_on_the_wire() {
    use std::io::Write;
    let mock = server();
    mock.push_script(
        Script::message(Reply::text("hi"))
            .raw_header("x-note", b"caf\xe9\xff")
            .raw_header("x-refused", b"a\x01b")
            .trailer("x-trailer", b"\xe9t"),
    );
    let mut s = std::net::TcpStream::connect(mock.addr()).unwrap();
    let req = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: m\r\nte: trailers\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{MSG}",
        MSG.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let wire = read_until(&mut s, b"\r\n0\r\nx-trailer: \xe9t\r\n\r\n");
    let has = |needle: &[u8]| wire.windows(needle.len()).any(|w| w == needle);
    assert!(
        has(b"\r\nx-note: caf\xe9\xff\r\n"),
        "{}",
        wire.escape_ascii()
    );
    assert!(
        has(b"transfer-encoding: chunked"),
        "{}",
        wire.escape_ascii()
    );
    assert!(
        has(b"0\r\nx-trailer: \xe9t\r\n\r\n"),
        "{}",
        wire.escape_ascii()
    );
    // a value the HTTP library refuses is left out, not sent broken
    assert!(!has(b"x-refused"), "{}", wire.escape_ascii());
}

#[test]
fn heads_are_counted_before_the_body_arrives() {
    use std::io::Write;
    let mock = server();
    let mut s = std::net::TcpStream::connect(mock.addr()).unwrap();
    s.write_all(b"POST /v1/messages HTTP/1.1\r\nhost: m\r\ncontent-length: 100\r\n\r\n{\"model\"")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while mock.heads_seen() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(mock.heads_seen(), 1);
    assert_eq!(
        mock.request_count(),
        0,
        "the request is recorded once its body is read"
    );
    drop(s);
    client::request(mock.addr(), "GET", "/_mock/health", &[], b"");
    assert_eq!(mock.heads_seen(), 1, "control requests are not counted");
    mock.reset();
    assert_eq!(mock.heads_seen(), 0);
}
