//! secret-mask masking throughput through the harness (target: ≥ 50 MB/s, default rules).
//!
//! The shipped policy (`policies/secret-mask.json`: the default rules and the upstream key) in
//! the real `tollgate_secret_mask.wasm`, and three answers:
//!
//! - `sse_text_4k_chunks`: a streamed Messages answer (~960 KB of SSE): a text block of prose,
//!   markdown and code in deltas of 4–60 bytes (as the API streams a few tokens at a time), a
//!   secret of one of eight default shapes every ~1.5 KiB of text — each split across deltas —
//!   and a `tool_use` block whose `input_json_delta` fragments carry a key; events are laid out
//!   as the API sends them (`{"type":"content_block_delta","index":0,"delta":{…}}`). The bytes are cut
//!   into network chunks of 1–7 KiB at arbitrary offsets (events and secrets split across
//!   chunks), as TCP coalesces events sent back to back. Throughput is bytes of SSE.
//! - `sse_text_per_event`: the same answer, one network chunk per event (a live stream: the
//!   per-chunk cost dominates).
//! - `json_answer`: the same text as a non-streamed Message JSON (~210 KB) in 16 KiB chunks.
//!
//! Each is also run through an empty gateway (`*_harness_only`): the harness's own cost, so
//! the filter's share is the difference. Before measuring, every answer is checked once: the
//! client's text is exactly the expected masked text (no secret, every other byte kept).

// Bench code is test code: a broken setup must stop the run loudly.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Value};
use tollgate_harness::{FilterSpec, Gateway, Host, Outcome, Request, Upstream};

const POLICY: &str = include_str!("../../policies/secret-mask.json");
/// The upstream key (key-inject's), exposed to the VM as the shipped policy expects.
const UPSTREAM_KEY: &str = "sk-ant-api03-Hq3ZtV8xN1mK5pR9wL2cJ6fB0yD4gS7aT3eU8iO1nM5kX9vZ2bQ6hW0jF4rY8lP3sC7dG1tA5uE9oI2mN6xK0zV4wB8qLAA";

/// One secret of each default shape (and the upstream key), with the rule that masks it.
const SECRETS: &[(&str, &str)] = &[
    ("aws_access_key_id", "AKIAZ2MQ4JXLS7RT5WHB"),
    (
        "github_token",
        "ghp_Q7zK2mX9pL4vT8nB3cY6wH1jF5dG0sRaEuIo",
    ),
    (
        "anthropic_api_key",
        "sk-ant-api03-Zx8Kq2Lm5Np9Rt3Vw7Yb1Cd4Fg6Hj0Ks2Mn5Pq8St1Uv4Wx7Yz0Ab3De6Gh9Jk2Lm5No8Pq1Rs4Tu7Vw0Xy3Za6Bc9DeAA",
    ),
    ("slack_token", "xoxb-2048613975-4096275183-Qm7Zr2Kx9Vb4Nt6Lp3Hc8Wd"),
    ("stripe_key", "sk_live_51Hq8ZtV2xN7mK4pR9wL3cJ6f"),
    ("google_api_key", "AIzaSyD4mK9pQ2xV7nB3cL8wJ5fH1tR6gZ0sYeU"),
    (
        "jwt",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MTcwMDAwMDAwMH0.Xq3Zt8Vn1Mk5Pr9Wl2Cj6Fb0Yd4Gs7AT3eU8iO1nM5",
    ),
    (
        "openai_api_key",
        "sk-proj-Tq7Kx2Lm9Np4Rv8Wz3Yc6Fb1Hd5Jg0Ks2Mn7Pq4St9Uv",
    ),
    ("upstream_api_key", UPSTREAM_KEY),
];

/// Prose of the kind an assistant streams: markdown, code, paths, near-misses of the
/// secret prefixes (`task-`, `ask-`, `eyJ`, `AKIA` in docs), some non-ASCII.
const PARAGRAPHS: &[&str] = &[
    "To rotate the credentials, first list the keys attached to the role, then create a new one \
     before you delete the old one — otherwise the running tasks lose access mid-deploy. ",
    "Here is the updated `deploy.sh`:\n\n```bash\n#!/usr/bin/env bash\nset -euo pipefail\n\
     aws sts get-caller-identity --query Account --output text\nkubectl rollout status \
     deploy/api -n prod --timeout=120s\n```\n\n",
    "The task-runner reads its settings from `config/settings.toml`; ask-mode prompts for \
     confirmation. Keys in the AWS docs (AKIA… followed by EXAMPLE) are placeholders. ",
    "Résumé of the failure: the JWT (`eyJ…`) in the `Authorization` header had expired, so the \
     gateway answered 401 → the client retried 3× and gave up. ",
    "1. Check the logs: `journalctl -u api --since \"10 min ago\"`\n2. Compare the config hash\n\
     3. Re-run the migration with `--dry-run` first\n\n",
    "```python\ndef handler(event, context):\n    body = json.loads(event[\"body\"])\n    \
     return {\"statusCode\": 200, \"body\": json.dumps({\"ok\": True})}\n```\n",
    "In short: the cache hit rate dropped from 94 % to 61 % after the schema change, because \
     the key now includes the tenant id; warming it takes about 20 minutes. ",
];

/// A deterministic generator (xorshift), so every run streams the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
}

/// The answer's text (about `len` bytes) and the same text as the client must see it.
fn answer_text(len: usize, rng: &mut Rng) -> (String, String) {
    let mut text = String::new();
    let mut masked = String::new();
    let mut next_secret = 0;
    while text.len() < len {
        let mut para = String::new();
        while para.len() < 1500 {
            para.push_str(PARAGRAPHS[rng.range(0, PARAGRAPHS.len() - 1)]);
        }
        text.push_str(&para);
        masked.push_str(&para);
        let (rule, secret) = SECRETS[next_secret % SECRETS.len()];
        next_secret += 1;
        text.push_str(&format!("export TOKEN={secret}\n"));
        masked.push_str(&format!("export TOKEN=[REDACTED:{rule}]\n"));
    }
    (text, masked)
}

fn cut_deltas<'a>(text: &'a str, rng: &mut Rng) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let mut end = (at + rng.range(4, 60)).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push(&text[at..end]);
        at = end;
    }
    out
}

fn event(name: &str, data: &Value) -> Vec<u8> {
    format!("event: {name}\ndata: {data}\n\n").into_bytes()
}

/// A delta event laid out as the API (and the mock) sends it: `type` first, then `index`,
/// then the delta (serde_json's `json!` would sort the keys).
fn delta_event(index: u64, delta_type: &str, field: &str, text: &str) -> Vec<u8> {
    let text = Value::from(text);
    format!(
        "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":{index},\"delta\":{{\"type\":\"{delta_type}\",\"{field}\":{text}}}}}\n\n"
    )
    .into_bytes()
}

/// The SSE events of the answer, and the tool input the client must see.
fn sse_events(text: &str, rng: &mut Rng) -> (Vec<Vec<u8>>, Value) {
    let mut events = vec![
        event(
            "message_start",
            &json!({"type":"message_start","message":{"id":"msg_01Bench","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":1200,"output_tokens":1}}}),
        ),
        event(
            "content_block_start",
            &json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        ),
        event("ping", &json!({"type":"ping"})),
    ];
    for d in cut_deltas(text, rng) {
        events.push(delta_event(0, "text_delta", "text", d));
    }
    events.push(event(
        "content_block_stop",
        &json!({"type":"content_block_stop","index":0}),
    ));
    let input = json!({"command": format!("aws configure set aws_access_key_id {}\necho \"done\"", SECRETS[0].1), "timeout": 30});
    let expected_input = json!({"command": "aws configure set aws_access_key_id [REDACTED:aws_access_key_id]\necho \"done\"", "timeout": 30});
    events.push(event(
        "content_block_start",
        &json!({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01Bench","name":"bash","input":{}}}),
    ));
    let compact = input.to_string();
    for frag in cut_deltas(&compact, rng) {
        events.push(delta_event(1, "input_json_delta", "partial_json", frag));
    }
    events.push(event(
        "content_block_stop",
        &json!({"type":"content_block_stop","index":1}),
    ));
    events.push(event(
        "message_delta",
        &json!({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":60000}}),
    ));
    events.push(event("message_stop", &json!({"type":"message_stop"})));
    (events, expected_input)
}

/// Cuts `bytes` into chunks of 1–7 KiB at arbitrary offsets.
fn network_chunks(bytes: &[u8], rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let end = (at + rng.range(1024, 7 * 1024)).min(bytes.len());
        out.push(bytes[at..end].to_vec());
        at = end;
    }
    out
}

/// The text of every delta of block `index` (`field` of the delta), concatenated.
fn reassemble(body: &[u8], index: u64, field: &str) -> String {
    let body = String::from_utf8_lossy(body);
    let mut out = String::new();
    for block in body.split("\n\n") {
        for line in block.lines() {
            let Some(data) = line.strip_prefix("data: ") else {
                continue;
            };
            let v: Value = serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"));
            if v["type"] == "content_block_delta" && v["index"] == index {
                if let Some(t) = v["delta"][field].as_str() {
                    out.push_str(t);
                }
            }
        }
    }
    out
}

fn request(stream: bool) -> Request {
    Request::post("/v1/messages")
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .body(format!(
            r#"{{"model":"claude-sonnet-4-5","max_tokens":64000,"stream":{stream},"messages":[{{"role":"user","content":"fix the deploy"}}]}}"#
        ))
}

fn check_sse(out: &Outcome, masked_text: &str, expected_input: &Value) {
    assert_eq!(out.client.status, 200, "{:?}", out.logs);
    assert!(out.failure.is_none(), "{:?}", out.failure);
    assert_eq!(reassemble(&out.client.body, 0, "text"), masked_text);
    let input: Value = serde_json::from_str(&reassemble(&out.client.body, 1, "partial_json"))
        .unwrap_or_else(|e| panic!("tool input: {e}"));
    assert_eq!(&input, expected_input);
    let body = String::from_utf8_lossy(&out.client.body);
    for (_, secret) in SECRETS {
        assert!(!body.contains(&secret[8..]), "leaked {secret}");
    }
}

fn bench(c: &mut Criterion) {
    // No fuel metering: the filter's code runs as in Envoy (see `Host::unmetered`).
    let host = Host::unmetered().unwrap_or_else(|e| panic!("harness host: {e}"));
    let wasm = tollgate_benches::wasm_path("secret-mask").unwrap_or_else(|e| panic!("{e}"));
    let spec = FilterSpec::new(wasm)
        .name("secret-mask")
        .config(POLICY)
        .env("ANTHROPIC_API_KEY", UPSTREAM_KEY);
    let mut gw = Gateway::builder(&host)
        .filter(spec)
        .buffer_limit(16 << 20)
        .build()
        .unwrap_or_else(|e| panic!("secret-mask does not configure: {e}"));
    let mut baseline = Gateway::builder(&host)
        .buffer_limit(16 << 20)
        .build()
        .unwrap_or_else(|e| panic!("empty gateway: {e}"));

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (text, masked_text) = answer_text(200 * 1024, &mut rng);
    let (events, expected_input) = sse_events(&text, &mut rng);
    let sse: Vec<u8> = events.concat();
    let chunks = network_chunks(&sse, &mut rng);
    let secrets_in_stream = text.matches("export TOKEN=").count() as u64 + 1;

    // The bench measures the real path: check it once (and the hold-back bound).
    let out = gw.run(request(true), Upstream::sse(chunks.clone()));
    check_sse(&out, &masked_text, &expected_input);
    assert_eq!(
        gw.metric("tollgate_secret_mask_masked"),
        Some(secrets_in_stream)
    );
    let held = gw
        .histogram("tollgate_secret_mask_held_back_bytes")
        .unwrap_or_default();
    let max_held = held.iter().copied().max().unwrap_or(0);
    assert!(max_held <= 16 * 1024, "held back {max_held} bytes");
    let mut sorted = held.clone();
    sorted.sort_unstable();
    let pct = |p: usize| sorted.get((sorted.len() * p / 100).min(sorted.len().saturating_sub(1)));
    eprintln!(
        "secret_mask: SSE {} bytes in {} chunks, {} events; {} secrets masked; held back after each chunk: p50 {:?} p99 {:?} max {} bytes",
        sse.len(),
        chunks.len(),
        events.len(),
        secrets_in_stream,
        pct(50),
        pct(99),
        max_held
    );
    let out = gw.run(request(true), Upstream::sse(events.clone()));
    check_sse(&out, &masked_text, &expected_input);

    let message = json!({
        "id": "msg_01Bench", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [
            {"type": "text", "text": text},
            {"type": "tool_use", "id": "toolu_01Bench", "name": "bash", "input": {"command": format!("aws configure set aws_access_key_id {}", SECRETS[0].1)}}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 1200, "output_tokens": 60000}
    })
    .to_string()
    .into_bytes();
    let json_chunks: Vec<Vec<u8>> = message.chunks(16 * 1024).map(<[u8]>::to_vec).collect();
    let json_upstream = || {
        Upstream::new(200)
            .header("content-type", "application/json")
            .chunks(json_chunks.clone())
    };
    let out = gw.run(request(false), json_upstream());
    assert_eq!(out.client.status, 200, "{:?}", out.logs);
    let v = out.client.json();
    assert_eq!(v["content"][0]["text"], masked_text.as_str());
    assert_eq!(
        v["content"][1]["input"]["command"],
        "aws configure set aws_access_key_id [REDACTED:aws_access_key_id]"
    );

    let mut g = c.benchmark_group("secret_mask");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(sse.len() as u64));
    g.bench_function("sse_text_4k_chunks", |b| {
        b.iter(|| black_box(gw.run(request(true), Upstream::sse(black_box(chunks.clone())))))
    });
    g.bench_function("sse_text_4k_chunks_harness_only", |b| {
        b.iter(|| black_box(baseline.run(request(true), Upstream::sse(black_box(chunks.clone())))))
    });
    g.bench_function("sse_text_per_event", |b| {
        b.iter(|| black_box(gw.run(request(true), Upstream::sse(black_box(events.clone())))))
    });
    g.bench_function("sse_text_per_event_harness_only", |b| {
        b.iter(|| black_box(baseline.run(request(true), Upstream::sse(black_box(events.clone())))))
    });
    g.throughput(Throughput::Bytes(message.len() as u64));
    g.bench_function("json_answer", |b| {
        b.iter(|| black_box(gw.run(request(false), json_upstream())))
    });
    g.bench_function("json_answer_harness_only", |b| {
        b.iter(|| black_box(baseline.run(request(false), json_upstream())))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
