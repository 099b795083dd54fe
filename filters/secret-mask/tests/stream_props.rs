//! Property tests (proptest) of secret-mask's network-facing parsers on random and adversarial
//! bytes. `tests/props.rs` covers well-formed streams (every secret shape, every split);
//! this file covers what an upstream, a proxy or an attacker can send instead:
//!
//! - the SSE parser on random bytes (line endings of every kind, split anywhere): events do
//!   not depend on where the network cut the stream, and no byte is lost or invented;
//!   `write_event` round-trips through the parser;
//! - the rewriter on random event soup (canonical, re-ordered and extended deltas, starts,
//!   stops, pings, errors, comments, `id`/`retry`, CR/CRLF framing, garbage lines), fed in
//!   random chunks: a client sees the same events as for the one-shot output (byte-identical
//!   unless a CR was cut from its LF), the output stays UTF-8, and every event whose data was
//!   JSON still carries JSON;
//! - a secret placed in any field of an event (delta text split across deltas, thinking,
//!   `input_json_delta` fragments, a block's initial text, comments, `id`, `event`, an escaped
//!   JSON string, a non-JSON data line, an unterminated last event) never reaches the output;
//! - `mask_body` on random bytes and on JSON with a secret in any string.
//!
//! The fuzz target `sse_stream` (fuzz/, docs/fuzzing.md) runs the same checks under libFuzzer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::rc::Rc;

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{json, Value};
use tollgate_secret_mask::config::load;
use tollgate_secret_mask::matcher::{RuleSet, Stats};
use tollgate_secret_mask::rewrite::{mask_body, SseRewriter};
use tollgate_secret_mask::sse::{write_event, Block, Parser};

thread_local! {
    static DEFAULTS: Rc<RuleSet> = load(b"{}", &|_| None).unwrap().rules;
}

fn defaults() -> Rc<RuleSet> {
    DEFAULTS.with(Rc::clone)
}

/// `cases` per property (debug builds stay within seconds), or `PROPTEST_CASES` when set (a
/// longer run, docs/fuzzing.md). Seeds are random per run (`PROPTEST_RNG_SEED` fixes one); a
/// failure prints its minimal input.
fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

const MAX_EVENT: usize = 1 << 20;

/// `bytes` cut into pieces of the given lengths (cycled; each at least 1).
fn cut<'a>(bytes: &'a [u8], lens: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    for len in lens.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (head, tail) = rest.split_at((*len).clamp(1, rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}

fn parse(pieces: &[&[u8]]) -> (Vec<Block>, Option<Block>) {
    let mut p = Parser::new(MAX_EVENT);
    let mut blocks = Vec::new();
    for piece in pieces {
        p.feed(piece, &mut blocks).unwrap();
    }
    (blocks, p.finish())
}

fn rewrite(pieces: &[&[u8]]) -> Vec<u8> {
    let mut rw = SseRewriter::new(defaults(), MAX_EVENT);
    let mut out = Vec::new();
    for piece in pieces {
        rw.feed(piece, &mut out).unwrap();
    }
    rw.finish(&mut out);
    out
}

fn chunk_lens() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![1usize..4, 1usize..40, 1usize..400], 1..12)
}

// ---------------------------------------------------------------------------------------------
// Strategies: SSE-ish bytes and event soup

/// Bytes dense in what SSE framing and JSON care about.
fn sse_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"data: ".to_vec()),
        Just(b"data:".to_vec()),
        Just(b"event: ".to_vec()),
        Just(b"id: ".to_vec()),
        Just(b"retry: ".to_vec()),
        Just(b":".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n\n".to_vec()),
        Just(
            br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""#
                .to_vec()
        ),
        Just(br#""}}"#.to_vec()),
        Just(b"AKIA".to_vec()),
        Just(b"Z2MQ4JXLS7RT5WHB".to_vec()),
        Just(b"\\u0041".to_vec()),
        prop::collection::vec(any::<u8>(), 1..8),
        "[ -~]{1,8}".prop_map(String::into_bytes),
    ];
    prop::collection::vec(token, 0..64).prop_map(|t| t.concat())
}

/// Text with pieces of secrets, JSON-significant characters and non-ASCII.
fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-z ]{1,6}",
        Just("AKIA".to_string()),
        Just("Z2MQ4JXLS7RT5WHX".to_string()),
        Just("sk-ant-api03-".to_string()),
        Just("ghp_".to_string()),
        "[A-Za-z0-9]{1,12}",
        "[\"\\\\\n\r\t/]{1,3}",
        "[é😀\u{2028}\u{0}]{1,2}",
    ];
    prop::collection::vec(piece, 0..6).prop_map(|p| p.concat())
}

fn delta_data(index: u64, kind: &str, field: &str, text: &str, layout: u8) -> String {
    let t = serde_json::to_string(text).unwrap();
    match layout % 3 {
        // The API's exact compact layout (the rewriter's fastest path).
        0 => format!(
            r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"{kind}","{field}":{t}}}}}"#
        ),
        // Other key order and spacing (the serde fast path).
        1 => format!(
            r#"{{ "index": {index}, "delta": {{ "{field}": {t}, "type": "{kind}" }}, "type": "content_block_delta" }}"#
        ),
        // An extra field (the general path).
        _ => format!(
            r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"{kind}","{field}":{t}}},"extra":[1,"x"]}}"#
        ),
    }
}

/// One event: a delta of any kind, a start or stop, a ping, an error, a comment, garbage.
fn event() -> impl Strategy<Value = String> {
    let data = prop_oneof![
        (0u64..3, text(), any::<u8>()).prop_map(|(i, t, l)| delta_data(i, "text_delta", "text", &t, l)),
        (0u64..3, text(), any::<u8>()).prop_map(|(i, t, l)| delta_data(i, "thinking_delta", "thinking", &t, l)),
        (0u64..3, text(), any::<u8>()).prop_map(|(i, t, l)| delta_data(i, "input_json_delta", "partial_json", &t, l)),
        (0u64..3, text()).prop_map(|(i, t)| json!({"type":"content_block_start","index":i,"content_block":{"type":"text","text":t}}).to_string()),
        (0u64..3).prop_map(|i| json!({"type":"content_block_start","index":i,"content_block":{"type":"tool_use","id":"toolu_1","name":"bash","input":{}}}).to_string()),
        (0u64..3).prop_map(|i| json!({"type":"content_block_stop","index":i}).to_string()),
        (0u64..3).prop_map(|i| json!({"type":"content_block_delta","index":i,"delta":{"type":"signature_delta","signature":"c2ln"}}).to_string()),
        Just(json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":5}}).to_string()),
        Just(r#"{"type":"ping"}"#.to_string()),
        text().prop_map(|t| json!({"type":"error","error":{"type":"overloaded_error","message":t}}).to_string()),
        text(),
    ];
    (
        data,
        prop::option::of(prop_oneof![
            Just("content_block_delta"),
            Just("ping"),
            Just("message_delta")
        ]),
        prop::option::of("[a-z0-9]{1,6}"),
        prop::option::of("[a-z ]{0,10}"),
        0u8..3,
    )
        .prop_map(|(data, name, id, comment, ending)| {
            let mut e = String::new();
            if let Some(c) = comment {
                e.push_str(&format!(":{c}\n"));
            }
            if let Some(n) = name {
                e.push_str(&format!("event: {n}\n"));
            }
            if let Some(i) = id {
                e.push_str(&format!("id: {i}\n"));
            }
            for line in data.split('\n') {
                e.push_str(&format!("data: {line}\n"));
            }
            e.push('\n');
            match ending {
                1 => e.replace('\n', "\r\n"),
                2 => e.replace('\n', "\r"),
                _ => e,
            }
        })
}

fn soup() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(event(), 0..12)
}

type Fields = (
    Option<String>,
    Option<Vec<u8>>,
    Option<String>,
    Option<String>,
);

/// What a client acts on: each block's fields (blocks with none dispatch nothing).
fn fields(blocks: &[Block]) -> Vec<Fields> {
    blocks
        .iter()
        .map(|b| {
            (
                b.event.clone(),
                b.data.clone(),
                b.id.clone(),
                b.retry.clone(),
            )
        })
        .filter(|f| f != &(None, None, None, None))
        .collect()
}

fn concat(blocks: &[Block], rest: &Option<Block>) -> Vec<u8> {
    let mut raw: Vec<u8> = blocks.iter().flat_map(|b| b.raw.clone()).collect();
    if let Some(rest) = rest {
        raw.extend_from_slice(&rest.raw);
    }
    raw
}

/// What a client of the rewritten stream sees: its events and an unterminated tail.
fn client_view(out: &[u8]) -> (Vec<Fields>, Option<Vec<u8>>) {
    let (blocks, rest) = parse(&[out]);
    (fields(&blocks), rest.map(|b| b.raw))
}

// ---------------------------------------------------------------------------------------------
// The SSE parser

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn parser_blocks_do_not_depend_on_chunking_and_lose_no_byte(
        bytes in sse_bytes(),
        lens in chunk_lens(),
    ) {
        let (whole, whole_rest) = parse(&[&bytes]);
        let (pieces, pieces_rest) = parse(&cut(&bytes, &lens));
        // Same events; a CR and LF split across chunks may move the LF into the next block's
        // raw bytes (the concatenation never changes).
        prop_assert_eq!(fields(&whole), fields(&pieces));
        prop_assert_eq!(concat(&whole, &whole_rest), bytes.clone());
        prop_assert_eq!(concat(&pieces, &pieces_rest), bytes);
        for b in &whole {
            prop_assert!(matches!(b.raw.last(), Some(b'\n' | b'\r')), "{:?}", b);
        }
    }

    #[test]
    fn parser_refuses_oversized_events_and_never_panics(
        bytes in sse_bytes(),
        lens in chunk_lens(),
        max in 0usize..64,
    ) {
        let mut p = Parser::new(max);
        let mut blocks = Vec::new();
        for piece in cut(&bytes, &lens) {
            if p.feed(piece, &mut blocks).is_err() {
                break;
            }
        }
        // A block handed out is within the bound, give or take its blank line (CRLF) and an LF
        // carried over from a CR that ended the previous chunk.
        for b in &blocks {
            prop_assert!(b.raw.len() <= max + 3, "{} > {}", b.raw.len(), max);
        }
    }

    #[test]
    fn write_event_round_trips(
        event in prop::option::of("[ -~]{0,12}"),
        id in prop::option::of("[ -~]{0,12}"),
        retry in prop::option::of("[0-9]{1,5}"),
        data in prop::collection::vec(any::<u8>(), 0..64),
        lens in chunk_lens(),
    ) {
        let mut out = Vec::new();
        write_event(event.as_deref(), id.as_deref(), retry.as_deref(), &data, &mut out);
        let (blocks, rest) = parse(&cut(&out, &lens));
        prop_assert_eq!(rest, None);
        prop_assert_eq!(blocks.len(), 1);
        let b = &blocks[0];
        // Line endings inside data come back as LF (CRLF, CR and LF all end a data line).
        let mut want = Vec::new();
        let mut i = 0;
        while i < data.len() {
            match (data[i], data.get(i + 1)) {
                (b'\r', Some(b'\n')) => { want.push(b'\n'); i += 2; }
                (b'\r', _) => { want.push(b'\n'); i += 1; }
                (b, _) => { want.push(b); i += 1; }
            }
        }
        prop_assert_eq!(b.data.as_deref(), Some(&want[..]));
        prop_assert_eq!(b.event.as_deref(), event.as_deref());
        prop_assert_eq!(b.id.as_deref(), id.as_deref());
        prop_assert_eq!(b.retry.as_deref(), retry.as_deref());
    }
}

// ---------------------------------------------------------------------------------------------
// The rewriter on arbitrary streams

/// Every event's data as the client parses it (None: not JSON).
fn data_of(bytes: &[u8]) -> Vec<Option<Value>> {
    let (blocks, _) = parse(&[bytes]);
    blocks
        .iter()
        .filter_map(|b| b.data.as_ref())
        .map(|d| serde_json::from_slice(d).ok())
        .collect()
}

proptest! {
    #![proptest_config(config(384))]

    #[test]
    fn random_bytes_rewrite_the_same_under_any_chunking(
        bytes in sse_bytes(),
        lens in chunk_lens(),
    ) {
        let whole = rewrite(&[&bytes]);
        let pieces = rewrite(&cut(&bytes, &lens));
        prop_assert_eq!(client_view(&whole), client_view(&pieces));
        if std::str::from_utf8(&bytes).is_ok() {
            prop_assert!(std::str::from_utf8(&whole).is_ok());
        }
    }

    #[test]
    fn event_soup_rewrites_the_same_under_any_chunking_and_stays_json(
        events in soup(),
        lens in chunk_lens(),
    ) {
        let bytes = events.concat().into_bytes();
        let whole = rewrite(&[&bytes]);
        let pieces = rewrite(&cut(&bytes, &lens));
        prop_assert_eq!(client_view(&whole), client_view(&pieces));
        // Bytes too, unless a CR was cut from its LF.
        if !cut(&bytes, &lens).iter().any(|p| p.last() == Some(&b'\r')) {
            prop_assert_eq!(&whole, &pieces);
        }
        let text = String::from_utf8(whole.clone()).unwrap();
        // Events whose data was JSON still carry JSON (deltas may be dropped, flushes added).
        let before = data_of(&bytes).iter().filter(|v| v.is_none()).count();
        let after = data_of(&whole).iter().filter(|v| v.is_none()).count();
        prop_assert!(after <= before, "{} non-JSON events out of {} in: {}", after, before, text);
    }

    #[test]
    fn mask_body_never_panics_and_keeps_json_json(body in sse_bytes()) {
        let mut stats = Stats::default();
        if let Some(out) = mask_body(&defaults(), &body, &mut stats) {
            prop_assert!(stats.total() > 0);
            if serde_json::from_slice::<Value>(&body).is_ok() {
                prop_assert!(serde_json::from_slice::<Value>(&out).is_ok());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets in any field

const SECRET: &str = "AKIAZ2MQ4JXLS7RT5WHB";
/// The part that must never appear: the secret without its well-known prefix.
const TAIL: &str = "Z2MQ4JXLS7RT5WHB";

/// `text` split at the given points into non-empty pieces.
fn split_at_points(text: &str, points: &[prop::sample::Index]) -> Vec<String> {
    let mut cuts: Vec<usize> = points.iter().map(|p| p.index(text.len() + 1)).collect();
    cuts.extend([0, text.len()]);
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2)
        .map(|w| text[w[0]..w[1]].to_string())
        .collect()
}

fn delta_event(index: u64, kind: &str, field: &str, text: &str, layout: u8) -> String {
    format!(
        "event: content_block_delta\ndata: {}\n\n",
        delta_data(index, kind, field, text, layout)
    )
}

/// The events that carry `SECRET` in field `slot`.
fn secret_events(slot: u8, points: &[prop::sample::Index], layout: u8) -> Vec<String> {
    let with = format!("key {SECRET} end");
    let start = |kind: &str| {
        let block = match kind {
            "text" => json!({"type":"text","text":""}),
            "thinking" => json!({"type":"thinking","thinking":""}),
            _ => json!({"type":"tool_use","id":"toolu_9","name":"bash","input":{}}),
        };
        format!(
            "event: content_block_start\ndata: {}\n\n",
            json!({"type":"content_block_start","index":7,"content_block":block})
        )
    };
    let stop = "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":7}\n\n"
        .to_string();
    let plain = delta_data(7, "text_delta", "text", "hello", layout);
    match slot {
        // Delta text split across deltas.
        0 => std::iter::once(start("text"))
            .chain(split_at_points(&with, points).iter().map(|p| delta_event(7, "text_delta", "text", p, layout)))
            .chain([stop])
            .collect(),
        1 => std::iter::once(start("thinking"))
            .chain(split_at_points(&with, points).iter().map(|p| delta_event(7, "thinking_delta", "thinking", p, layout)))
            .chain([stop])
            .collect(),
        // Tool input JSON, cut anywhere (inside the string too).
        2 => {
            let args = json!({"command": format!("export AWS_ACCESS_KEY_ID={SECRET}")}).to_string();
            std::iter::once(start("tool_use"))
                .chain(split_at_points(&args, points).iter().map(|p| delta_event(7, "input_json_delta", "partial_json", p, layout)))
                .chain([stop])
                .collect()
        }
        // A block's initial text.
        3 => vec![format!(
            "event: content_block_start\ndata: {}\n\n",
            json!({"type":"content_block_start","index":7,"content_block":{"type":"text","text":with}})
        ), stop],
        // A comment inside a delta event.
        4 => vec![start("text"), format!(": {with}\nevent: content_block_delta\ndata: {plain}\n\n"), stop],
        // An id on a delta event.
        5 => vec![start("text"), format!("event: content_block_delta\nid: {SECRET}\ndata: {plain}\n\n"), stop],
        // An event name.
        6 => vec![start("text"), format!("event: {SECRET}\ndata: {plain}\n\n"), stop],
        // An escaped JSON string in an error event.
        7 => vec![format!(
            "event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"api_error\",\"message\":\"\\u0041KIA{TAIL}\"}}}}\n\n"
        )],
        // A data line that is not JSON.
        8 => vec![format!("event: ping\ndata: token={SECRET}; more\n\n")],
        // A comment-only block.
        9 => vec![format!(": {with}\n\n")],
        // A ping event with an id and a retry.
        10 => vec![format!("event: ping\nid: {SECRET}\nretry: 1000\ndata: {{\"type\":\"ping\"}}\n\n")],
        // An unterminated last event.
        _ => vec![format!("event: content_block_delta\ndata: {with}")],
    }
}

proptest! {
    #![proptest_config(config(384))]

    #[test]
    fn a_secret_in_any_field_never_reaches_the_client(
        slot in 0u8..12,
        points in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        layout in any::<u8>(),
        before in soup(),
        after in soup(),
        lens in chunk_lens(),
        crlf in any::<bool>(),
    ) {
        let mut events = before;
        events.extend(secret_events(slot, &points, layout));
        // The unterminated event must stay last.
        if slot != 11 {
            events.extend(after);
        }
        let mut bytes = events.concat();
        if crlf {
            bytes = bytes.replace("\r\n", "\n").replace('\r', "\n").replace('\n', "\r\n");
        }
        let out = rewrite(&cut(bytes.as_bytes(), &lens));
        let out = String::from_utf8(out).unwrap();
        prop_assert!(!out.contains(TAIL), "slot {}: leaked in {}", slot, out);
        // Nor after JSON unescaping of the client's view of each event.
        for v in data_of(out.as_bytes()).into_iter().flatten() {
            prop_assert!(!v.to_string().contains(TAIL), "slot {}: leaked in {}", slot, v);
        }
    }

    #[test]
    fn a_secret_in_any_json_string_is_masked_in_bodies(
        doc in prop::collection::vec(("[a-z]{1,6}", text()), 1..6),
        at in any::<prop::sample::Index>(),
        escape in any::<bool>(),
    ) {
        let mut doc: serde_json::Map<String, Value> =
            doc.into_iter().map(|(k, v)| (k, Value::from(v))).collect();
        let keys: Vec<String> = doc.keys().cloned().collect();
        let key = &keys[at.index(keys.len())];
        doc.insert(key.clone(), json!({"content": [{"type": "text", "text": format!("x {SECRET} y")}]}));
        let mut body = serde_json::to_string(&doc).unwrap();
        if escape {
            body = body.replace("AKIA", "\\u0041KIA");
        }
        let mut stats = Stats::default();
        let out = mask_body(&defaults(), body.as_bytes(), &mut stats).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        prop_assert!(!v.to_string().contains(TAIL));
        prop_assert_eq!(v.as_object().unwrap().len(), doc.len());
    }
}
