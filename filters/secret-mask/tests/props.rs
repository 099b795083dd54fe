//! Property tests of the masking pipeline (seeded, reproducible; no external crate):
//!
//! - every default secret shape, at every split position of the text, is masked exactly: the
//!   output equals the text with the secret replaced, and no piece of the secret leaks;
//! - the same through whole SSE streams: random deltas, random network chunkings (mid-line,
//!   mid-CRLF, mid-UTF-8), pings in between, text / thinking / tool_use blocks;
//! - streaming equals one-shot masking equals a brute-force reference, on random text dense
//!   with near-misses, for random chunkings; the hold-back stays within the window bound.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::rc::Rc;

use serde_json::{json, Value};
use tollgate_secret_mask::config::load;
use tollgate_secret_mask::matcher::{RuleSet, Stats, TextMasker};
use tollgate_secret_mask::rewrite::SseRewriter;
use tollgate_secret_mask::rules::Eval;

/// xorshift64*: small, seeded, good enough to pick split points.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn string(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n).map(|_| *self.pick(alphabet) as char).collect()
    }
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const URLSAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
const B32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// One random instance of each default secret shape, with the rule id that must mask it.
fn secrets(rng: &mut Rng) -> Vec<(&'static str, String)> {
    let pem_body: Vec<String> = (0..5).map(|_| rng.string(B64, 64)).collect();
    vec![
        (
            "anthropic_api_key",
            format!("sk-ant-api03-{}AA", rng.string(URLSAFE, 93)),
        ),
        (
            "anthropic_api_key",
            format!("sk-ant-admin01-{}AA", rng.string(URLSAFE, 93)),
        ),
        (
            "openai_api_key",
            format!(
                "sk-proj-{}T3BlbkFJ{}",
                rng.string(URLSAFE, 74),
                rng.string(URLSAFE, 74)
            ),
        ),
        ("openai_api_key", format!("sk-{}", rng.string(ALNUM, 48))),
        ("aws_access_key_id", format!("AKIA{}", rng.string(B32, 16))),
        ("aws_access_key_id", format!("ASIA{}", rng.string(B32, 16))),
        ("github_token", format!("ghp_{}", rng.string(ALNUM, 36))),
        ("github_token", format!("gho_{}", rng.string(ALNUM, 36))),
        (
            "github_token",
            format!(
                "github_pat_{}",
                rng.string(
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_",
                    82
                )
            ),
        ),
        (
            "slack_token",
            format!(
                "xoxb-{}-{}-{}",
                rng.string(b"0123456789", 12),
                rng.string(b"0123456789", 13),
                rng.string(ALNUM, 24)
            ),
        ),
        (
            "stripe_key",
            format!("sk_live_{}", {
                let n = 24 + rng.below(75);
                rng.string(ALNUM, n)
            }),
        ),
        ("stripe_key", format!("rk_live_{}", rng.string(ALNUM, 24))),
        ("google_api_key", format!("AIza{}", rng.string(URLSAFE, 35))),
        (
            "private_key",
            format!(
                "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----",
                pem_body.join("\n")
            ),
        ),
        (
            "private_key",
            format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----",
                pem_body[..2].join("\n")
            ),
        ),
        (
            "jwt",
            format!(
                "eyJ{}.eyJ{}.{}",
                {
                    let n = 20 + rng.below(20);
                    rng.string(URLSAFE, n)
                },
                {
                    let n = 30 + rng.below(60);
                    rng.string(URLSAFE, n)
                },
                rng.string(URLSAFE, 43)
            ),
        ),
    ]
}

/// Inert filler words: near-misses of every rule, multi-byte characters, JSON specials. Each
/// is followed by a separator that no rule continues through.
const WORDS: &[&str] = &[
    "hello",
    "world",
    "sk-",
    "sk-ant-",
    "sk-ant-api03-short",
    "sk-proj-",
    "AKIA",
    "AKIA2345",
    "ASIA",
    "ghp_",
    "ghp_abc123",
    "github_pat_",
    "eyJ",
    "eyJhbGciOiJ.eyJzd",
    "-----BEGIN",
    "-----BEGIN RSA",
    "xoxb-",
    "xoxb-12",
    "AIza",
    "AIzaSy",
    "sk_live_",
    "rk_live_abc",
    "é",
    "日本語",
    "🦀",
    "\"quoted\"",
    "back\\slash",
    "tab\tstop",
    "a-b_c",
    "A3T",
    "ghp",
    "x",
];
const SEPS: &[&str] = &[" ", ", ", ".\n", "\r\n", "! ", " (", ") "];

fn filler(rng: &mut Rng, words: usize) -> String {
    let mut s = String::new();
    for _ in 0..words {
        s.push_str(rng.pick::<&str>(WORDS));
        s.push_str(rng.pick::<&str>(SEPS));
    }
    s
}

thread_local! {
    static DEFAULTS: Rc<RuleSet> = load(b"{}", &|_| None).unwrap().rules;
}

fn defaults() -> Rc<RuleSet> {
    DEFAULTS.with(Rc::clone)
}

/// Parts of a secret that must never appear in output: its random tail, in 12-byte pieces.
fn leak_probes(secret: &str) -> Vec<String> {
    let tail = &secret[secret.len() / 2..];
    let clean: String = tail.chars().filter(|c| *c != '\n').collect();
    clean
        .as_bytes()
        .chunks(12)
        .filter(|c| c.len() >= 8)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect()
}

fn assert_no_leak(out: &str, secret: &str, ctx: &str) {
    for probe in leak_probes(secret) {
        assert!(
            !out.contains(&probe),
            "{ctx}: leaked {probe:?} of {secret:?}"
        );
    }
}

fn stream_text(rules: &Rc<RuleSet>, pieces: &[&str]) -> (String, usize) {
    let mut m = TextMasker::new(Rc::clone(rules));
    let mut st = Stats::default();
    let mut out = String::new();
    let mut max_held = 0;
    for p in pieces {
        out += &m.feed(p, &mut st);
        max_held = max_held.max(m.held_back());
    }
    out += &m.finish(&mut st);
    (out, max_held)
}

fn char_cuts(s: &str) -> Vec<usize> {
    (0..=s.len()).filter(|&i| s.is_char_boundary(i)).collect()
}

#[test]
fn every_shape_at_every_split_position() {
    let rules = defaults();
    let mut cases = 0;
    for seed in 0..4 {
        let mut rng = Rng::new(seed);
        for (id, secret) in secrets(&mut rng) {
            let pre = filler(&mut rng, 3);
            let post = filler(&mut rng, 3);
            let text = format!("{pre} {secret} {post}");
            let expected = format!("{pre} [REDACTED:{id}] {post}");
            for cut in char_cuts(&text) {
                let (out, held) = stream_text(&rules, &[&text[..cut], &text[cut..]]);
                assert_eq!(out, expected, "seed {seed} {id} cut {cut}");
                assert!(held <= rules.max_window() + 4, "held {held}");
                cases += 1;
            }
            // One byte (character) at a time.
            let chars: Vec<String> = text.chars().map(String::from).collect();
            let refs: Vec<&str> = chars.iter().map(String::as_str).collect();
            let (out, _) = stream_text(&rules, &refs);
            assert_eq!(out, expected, "seed {seed} {id} char by char");
            assert_no_leak(&out, &secret, id);
        }
    }
    assert!(cases > 2000, "{cases}");
}

#[test]
fn random_chunkings_of_many_secrets() {
    let rules = defaults();
    for seed in 0..300 {
        let mut rng = Rng::new(1000 + seed);
        let all = secrets(&mut rng);
        let mut text = String::new();
        let mut expected = String::new();
        let mut used = Vec::new();
        for _ in 0..4 {
            let (id, secret) = rng.pick(&all).clone();
            let n = rng.below(4);
            let f = filler(&mut rng, n);
            text += &format!("{f} {secret} ");
            expected += &format!("{f} [REDACTED:{id}] ");
            used.push((id, secret));
        }
        let pieces = random_pieces(&mut rng, &text);
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let (out, _) = stream_text(&rules, &refs);
        assert_eq!(out, expected, "seed {seed}");
        for (id, s) in &used {
            assert_no_leak(&out, s, id);
        }
    }
}

fn random_pieces(rng: &mut Rng, text: &str) -> Vec<String> {
    let cuts = char_cuts(text);
    let mut points: Vec<usize> = (0..rng.below(12) + 1).map(|_| *rng.pick(&cuts)).collect();
    points.push(0);
    points.push(text.len());
    points.sort_unstable();
    points.dedup();
    points
        .windows(2)
        .map(|w| text[w[0]..w[1]].to_string())
        .collect()
}

/// The reference: every rule at every position on the whole text, union of the ranges.
fn reference(rules: &RuleSet, text: &[u8]) -> Vec<u8> {
    let mut runs: Vec<(usize, usize, usize)> = Vec::new(); // start, end, rule
    for p in 0..text.len() {
        let prev = p.checked_sub(1).map(|i| text[i]);
        let mut best: Option<(usize, usize)> = None;
        for (ri, rule) in rules.rules().iter().enumerate() {
            if let Eval::Match(len) = rule.eval(text, p, prev, true) {
                if best.is_none_or(|(l, _)| len > l) {
                    best = Some((len, ri));
                }
            }
        }
        if let Some((len, ri)) = best {
            match runs.last_mut() {
                Some(run) if p < run.1 => run.1 = run.1.max(p + len),
                _ => runs.push((p, p + len, ri)),
            }
        }
    }
    let mut out = Vec::new();
    let mut at = 0;
    for (s, e, ri) in runs {
        out.extend_from_slice(&text[at..s]);
        out.extend_from_slice(format!("[REDACTED:{}]", rules.rules()[ri].id).as_bytes());
        at = e;
    }
    out.extend_from_slice(&text[at..]);
    out
}

#[test]
fn streaming_equals_one_shot_equals_reference_on_dense_near_misses() {
    let rules = defaults();
    // Fragments that glue into near-misses and real matches without separators.
    let frags: &[&str] = &[
        "sk-",
        "ant-",
        "api03-",
        "AKIA",
        "ASIA",
        "A3T",
        "ghp_",
        "eyJ",
        ".",
        "-----",
        "BEGIN ",
        "PRIVATE KEY",
        "END ",
        "xox",
        "b-",
        "AIza",
        "_live_",
        "Q",
        "7",
        "Z2",
        "é",
        "\n",
        " ",
        "abcDEF123",
        "ABCDEFGH",
        "234567",
        "-",
        "_",
    ];
    fragment_texts_match_the_reference(&rules, frags, 50_000, 60);
}

/// 400 texts glued from random `frags` (up to `max_frags` each), masked one-shot and streamed
/// in random pieces: both must equal the brute-force reference, and the hold-back stays
/// bounded by the rule window.
fn fragment_texts_match_the_reference(
    rules: &Rc<RuleSet>,
    frags: &[&str],
    seed_base: u64,
    max_frags: usize,
) {
    for seed in 0..400 {
        let mut rng = Rng::new(seed_base + seed);
        let mut text = String::new();
        for _ in 0..rng.below(max_frags) + 1 {
            text += *rng.pick(frags);
        }
        let expected = String::from_utf8(reference(rules, text.as_bytes())).unwrap();
        let mut st = Stats::default();
        let one_shot = rules
            .mask_str(&text, &mut st)
            .unwrap_or_else(|| text.clone());
        assert_eq!(one_shot, expected, "seed {seed} one-shot {text:?}");
        let pieces = random_pieces(&mut rng, &text);
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let (out, held) = stream_text(rules, &refs);
        assert_eq!(out, expected, "seed {seed} streamed {pieces:?}");
        assert!(held <= 2 * rules.max_window() + 4);
    }
}

// ---------------------------------------------------------------------------------------------
// Whole SSE streams.

#[derive(Clone, Copy)]
enum BlockKind {
    Text,
    Thinking,
    Tool,
}

struct StreamCase {
    bytes: Vec<u8>,
    /// Per block: the expected text (text/thinking) or expected tool input.
    expected: Vec<Value>,
    secrets: Vec<String>,
}

fn sse(event: &str, data: &Value, crlf: bool) -> String {
    let nl = if crlf { "\r\n" } else { "\n" };
    format!("event: {event}{nl}data: {data}{nl}{nl}")
}

/// A delta event in the API's own layout (`type`, `index`, `delta` in that order: the
/// rewriter's parser-free path), or with serde_json's sorted keys (its JSON paths).
fn delta_sse(
    index: usize,
    delta_type: &str,
    field: &str,
    text: &str,
    api: bool,
    crlf: bool,
) -> String {
    if !api {
        return sse(
            "content_block_delta",
            &json!({"type":"content_block_delta","index":index,"delta":{"type":delta_type, field: text}}),
            crlf,
        );
    }
    let nl = if crlf { "\r\n" } else { "\n" };
    let text = Value::from(text);
    format!(
        "event: content_block_delta{nl}data: {{\"type\":\"content_block_delta\",\"index\":{index},\"delta\":{{\"type\":\"{delta_type}\",\"{field}\":{text}}}}}{nl}{nl}"
    )
}

fn build_stream(rng: &mut Rng) -> StreamCase {
    let crlf = rng.below(3) == 0;
    let all = secrets(rng);
    let mut out = String::new();
    let mut expected = Vec::new();
    let mut used = Vec::new();
    out += &sse(
        "message_start",
        &json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude","usage":{"input_tokens":1,"output_tokens":1}}}),
        crlf,
    );
    let nblocks = rng.below(3) + 1;
    for index in 0..nblocks {
        let kind = *rng.pick(&[BlockKind::Text, BlockKind::Thinking, BlockKind::Tool]);
        let (id, secret) = rng.pick(&all).clone();
        used.push(secret.clone());
        let n = rng.below(3);
        let pre = filler(rng, n);
        let n = rng.below(3);
        let post = filler(rng, n);
        let text = format!("{pre} {secret} {post}");
        let masked = format!("{pre} [REDACTED:{id}] {post}");
        let (start_block, delta_type, field, stream_text, exp) = match kind {
            BlockKind::Text => (
                json!({"type":"text","text":""}),
                "text_delta",
                "text",
                text.clone(),
                Value::String(masked),
            ),
            BlockKind::Thinking => (
                json!({"type":"thinking","thinking":""}),
                "thinking_delta",
                "thinking",
                text.clone(),
                Value::String(masked),
            ),
            BlockKind::Tool => {
                let input = json!({"command": text, "n": 3, "list": ["a", "b\"c"]});
                (
                    json!({"type":"tool_use","id":"toolu_1","name":"bash","input":{}}),
                    "input_json_delta",
                    "partial_json",
                    serde_json::to_string(&input).unwrap(),
                    json!({"command": masked, "n": 3, "list": ["a", "b\"c"]}),
                )
            }
        };
        expected.push(exp);
        out += &sse(
            "content_block_start",
            &json!({"type":"content_block_start","index":index,"content_block":start_block}),
            crlf,
        );
        for piece in random_pieces(rng, &stream_text) {
            let api = rng.below(4) != 0;
            out += &delta_sse(index, delta_type, field, &piece, api, crlf);
            if rng.below(5) == 0 {
                out += &sse("ping", &json!({"type":"ping"}), crlf);
            }
            if rng.below(7) == 0 {
                out += if crlf {
                    ": keepalive\r\n\r\n"
                } else {
                    ": keepalive\n\n"
                };
            }
        }
        if let BlockKind::Thinking = kind {
            out += &sse(
                "content_block_delta",
                &json!({"type":"content_block_delta","index":index,"delta":{"type":"signature_delta","signature":"c2lnbmF0dXJl"}}),
                crlf,
            );
        }
        out += &sse(
            "content_block_stop",
            &json!({"type":"content_block_stop","index":index}),
            crlf,
        );
    }
    out += &sse(
        "message_delta",
        &json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}),
        crlf,
    );
    out += &sse("message_stop", &json!({"type":"message_stop"}), crlf);
    StreamCase {
        bytes: out.into_bytes(),
        expected,
        secrets: used,
    }
}

/// An independent, minimal SSE reader: (event name, data) per event.
fn read_events(bytes: &[u8]) -> Vec<(String, Value)> {
    let text = String::from_utf8(bytes.to_vec()).expect("output is UTF-8");
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut events = Vec::new();
    for block in text.split("\n\n") {
        let mut name = "message".to_string();
        let mut data: Vec<&str> = Vec::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = v.trim_start().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        if !data.is_empty() {
            let v: Value = serde_json::from_str(&data.join("\n")).expect("data is JSON");
            events.push((name, v));
        }
    }
    events
}

fn chunk_bytes(rng: &mut Rng, bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let n = match rng.below(4) {
            0 => 1,
            1 => rng.below(8) + 1,
            2 => rng.below(64) + 1,
            _ => rng.below(700) + 1,
        };
        let end = (at + n).min(bytes.len());
        out.push(bytes[at..end].to_vec());
        at = end;
    }
    out
}

fn rewrite(chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut rw = SseRewriter::new(defaults(), 1 << 20);
    let mut out = Vec::new();
    for c in chunks {
        rw.feed(c, &mut out).unwrap();
        assert!(rw.held_back() <= 64 * 1024, "held {}", rw.held_back());
    }
    rw.finish(&mut out);
    out
}

#[test]
fn sse_streams_with_random_deltas_and_chunkings() {
    for seed in 0..400 {
        let mut rng = Rng::new(7_000 + seed);
        let case = build_stream(&mut rng);
        let chunks = chunk_bytes(&mut rng, &case.bytes);
        let out = rewrite(&chunks);
        let out_str = String::from_utf8(out.clone()).unwrap();
        for s in &case.secrets {
            assert_no_leak(&out_str, s, &format!("seed {seed}"));
            // Also JSON-escaped (PEM newlines inside strings).
            assert_no_leak(
                &out_str.replace("\\n", "\n"),
                s,
                &format!("seed {seed} unescaped"),
            );
        }
        let events = read_events(&out);
        // Non-delta events keep their order.
        let skeleton = |evs: &[(String, Value)]| -> Vec<String> {
            evs.iter()
                .filter(|(n, _)| n != "content_block_delta")
                .map(|(n, v)| format!("{n}:{}", v["index"]))
                .collect()
        };
        let input_events = read_events(&case.bytes);
        assert_eq!(skeleton(&events), skeleton(&input_events), "seed {seed}");
        // Reassemble each block the way an SDK does.
        for (index, exp) in case.expected.iter().enumerate() {
            let mut text = String::new();
            let mut json = String::new();
            let mut stopped = false;
            for (name, v) in &events {
                if v["index"] != index {
                    continue;
                }
                if name == "content_block_stop" {
                    stopped = true;
                }
                if name != "content_block_delta" {
                    continue;
                }
                assert!(!stopped, "seed {seed}: delta after stop");
                let d = &v["delta"];
                match d["type"].as_str().unwrap() {
                    "text_delta" => text += d["text"].as_str().unwrap(),
                    "thinking_delta" => text += d["thinking"].as_str().unwrap(),
                    "input_json_delta" => json += d["partial_json"].as_str().unwrap(),
                    "signature_delta" => {}
                    other => panic!("unexpected delta {other}"),
                }
            }
            if json.is_empty() {
                assert_eq!(&Value::String(text), exp, "seed {seed} block {index}");
            } else {
                let got: Value = serde_json::from_str(&json).unwrap();
                assert_eq!(&got, exp, "seed {seed} block {index}");
            }
        }
    }
}

#[test]
fn clean_streams_are_byte_identical_under_any_chunking() {
    for seed in 0..100 {
        let mut rng = Rng::new(90_000 + seed);
        // A stream without secrets: fillers only.
        let mut s = String::new();
        for i in 0..5 {
            let v = json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text": filler(&mut rng, 4)}});
            s += &sse("content_block_delta", &v, i % 2 == 0);
        }
        s += &sse(
            "content_block_stop",
            &json!({"type":"content_block_stop","index":0}),
            false,
        );
        let chunks = chunk_bytes(&mut rng, s.as_bytes());
        let out = rewrite(&chunks);
        // Text may be regrouped between deltas (held-back near-misses), but not changed.
        let text = |b: &[u8]| -> String {
            read_events(b)
                .iter()
                .filter_map(|(_, v)| {
                    v.pointer("/delta/text")
                        .and_then(Value::as_str)
                        .map(String::from)
                })
                .collect()
        };
        assert_eq!(text(&out), text(s.as_bytes()), "seed {seed}");
    }
}

// ---------------------------------------------------------------------------------------------
// The literal-prefix prefilter.

/// Custom rules with literal prefixes of every kind (a literal, case-insensitive variants,
/// alternations, a prefix after `\b`) and without any (a class first: the matcher falls back
/// to the DFA at every first byte), next to the defaults.
fn custom_rules() -> Rc<RuleSet> {
    let policy = json!({
        "rules": [
            {"id": "canary", "literal": "CANARY-7f3a9c"},
            {"id": "ci_token", "regex": "(?i)tok_[a-z0-9]{6}"},
            {"id": "alt", "regex": "(?:pk|qk)-[0-9]{4}|zz[A-Z]{3}"},
            {"id": "bounded", "regex": "(?-u:\\b)sec[0-9]{3}"},
            {"id": "hex", "regex": "[a-f][0-9]{5}"}
        ]
    });
    load(policy.to_string().as_bytes(), &|_| None)
        .unwrap()
        .rules
}

#[test]
fn prefilter_never_changes_the_outcome_for_custom_rules() {
    let rules = custom_rules();
    let frags: &[&str] = &[
        "CANARY-", "7f3a9c", "CAN", "tok_", "TOK_", "ToK_", "a1b2c3", "pk-", "qk-", "1234", "zz",
        "ABC", "sec", "123", "x", "a", "b12345", "f", "0", " ", "é", "sk-", "AKIA", "Z2MQ4JXL",
        "S7RT5WHB", "-", "_",
    ];
    fragment_texts_match_the_reference(&rules, frags, 120_000, 50);
}

#[test]
fn every_prefix_of_every_shape_is_held_back_until_decided() {
    // A secret cut after any byte, with nothing after it yet: nothing from its first byte on
    // may be released (the prefilter must treat a partial literal at the end as "maybe").
    let rules = defaults();
    for seed in 0..4 {
        let mut rng = Rng::new(300 + seed);
        for (id, secret) in secrets(&mut rng) {
            for cut in 1..=secret.len() {
                if !secret.is_char_boundary(cut) {
                    continue;
                }
                let mut m = TextMasker::new(Rc::clone(&rules));
                let mut st = Stats::default();
                let released = m.feed(&format!("pre {}", &secret[..cut]), &mut st);
                let expected = format!("pre [REDACTED:{id}] post");
                // Either nothing of the secret yet, or (a footer-terminated PEM block, decided
                // at its last byte) its replacement.
                assert!(
                    expected.starts_with(&released)
                        && (released.len() <= 4
                            || released.starts_with(&format!("pre [REDACTED:{id}]"))),
                    "{id} cut {cut}: released {released:?}"
                );
                let rest =
                    m.feed(&format!("{} post", &secret[cut..]), &mut st) + &m.finish(&mut st);
                assert_eq!(format!("{released}{rest}"), expected, "{id} cut {cut}");
            }
        }
    }
}
