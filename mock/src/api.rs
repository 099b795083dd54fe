//! Claude API semantics without I/O: request validation, the default and demo answers, ids,
//! token estimates and the models list.
//!
//! Requests are parsed into a borrowed, lean shape (unknown fields skipped without allocating)
//! so that 50 KB agent requests cost little.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::script::{Block, Reply, Usage};

/// A fake Anthropic API key of the real shape (`sk-ant-api03-` + 93 chars ending `AA`), used by
/// demo mode so masking is visible.
pub const FAKE_ANTHROPIC_KEY: &str = "sk-ant-api03-_uwlWXxdjm2IogKR7PfhIg8Ez9oP0ZV1YgHNMqhQY_CIb27Mxy85v0eqHp2ERuLGQZx3NAcZCf_jCmhQdY7Ez-zFZQHAA";
/// A fake AWS access key id of the real shape (`AKIA` + 16 of `[A-Z2-7]`).
pub const FAKE_AWS_KEY_ID: &str = "AKIAQ3EGUX7FJ2KZ5N4W";
/// A fake AWS secret access key (40 chars) that goes with [`FAKE_AWS_KEY_ID`].
pub const FAKE_AWS_SECRET: &str = "NIcOQTBP6tUWfm0kOqpQyP1OlFdyKhlIB3opX3AK";

/// Models served by `GET /v1/models`: (id, display name, created_at).
pub const MODELS: &[(&str, &str, &str)] = &[
    (
        "claude-sonnet-4-5-20250929",
        "Claude Sonnet 4.5",
        "2025-09-29T00:00:00Z",
    ),
    (
        "claude-haiku-4-5-20251001",
        "Claude Haiku 4.5",
        "2025-10-01T00:00:00Z",
    ),
    (
        "claude-opus-4-1-20250805",
        "Claude Opus 4.1",
        "2025-08-05T00:00:00Z",
    ),
];

static COUNTER: AtomicU64 = AtomicU64::new(1);

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// Per-process seed so ids differ between runs and processes.
fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        splitmix(nanos ^ (u64::from(std::process::id()) << 32))
    })
}

fn random_id(prefix: &str, len: usize) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut s = String::with_capacity(prefix.len() + len);
    s.push_str(prefix);
    let mut state = splitmix(n ^ seed());
    for i in 0..len {
        if i % 10 == 0 && i > 0 {
            state = splitmix(state);
        }
        s.push(ALPHABET[(state % ALPHABET.len() as u64) as usize] as char);
        state /= ALPHABET.len() as u64;
    }
    s
}

/// A fresh request id `req_011C…` (unique within the process).
pub fn request_id() -> String {
    random_id("req_011C", 20)
}

/// A fresh message id `msg_01…` (unique within the process).
pub fn message_id() -> String {
    random_id("msg_01", 22)
}

/// Text of a message's content: a string, or the concatenated `text` of text blocks.
#[derive(Default)]
struct ContentText(String);

impl<'de> Deserialize<'de> for ContentText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ContentText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of content blocks")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ContentText, E> {
                Ok(ContentText(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ContentText, A::Error> {
                let mut out = String::new();
                while let Some(block) = seq.next_element::<InBlock>()? {
                    if block.kind.as_deref() == Some("text") {
                        if let Some(t) = block.text {
                            if !out.is_empty() {
                                out.push('\n');
                            }
                            out.push_str(&t);
                        }
                    }
                }
                Ok(ContentText(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct InBlock<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct InMessage<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    content: ContentText,
}

/// Skips any JSON value, counting the bytes of the strings in it (for token estimates).
struct StrBytes(usize);

impl<'de> Deserialize<'de> for StrBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrBytes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StrBytes, E> {
                Ok(StrBytes(v.len()))
            }
            fn visit_bool<E>(self, _: bool) -> Result<StrBytes, E> {
                Ok(StrBytes(0))
            }
            fn visit_i64<E>(self, _: i64) -> Result<StrBytes, E> {
                Ok(StrBytes(1))
            }
            fn visit_u64<E>(self, _: u64) -> Result<StrBytes, E> {
                Ok(StrBytes(1))
            }
            fn visit_f64<E>(self, _: f64) -> Result<StrBytes, E> {
                Ok(StrBytes(1))
            }
            fn visit_unit<E>(self) -> Result<StrBytes, E> {
                Ok(StrBytes(0))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrBytes, A::Error> {
                let mut n = 0;
                while let Some(StrBytes(k)) = seq.next_element()? {
                    n += k;
                }
                Ok(StrBytes(n))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrBytes, A::Error> {
                let mut n = 0;
                while let Some(IgnoredAny) = map.next_key()? {
                    let StrBytes(k) = map.next_value()?;
                    n += k;
                }
                Ok(StrBytes(n))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct RawRequest<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(borrow, default)]
    messages: Option<Vec<InMessage<'a>>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    system: Option<StrBytes>,
    #[serde(default)]
    tools: Option<StrBytes>,
}

/// The parts of a `POST /v1/messages` body the mock uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagesRequest {
    pub model: String,
    pub max_tokens: u64,
    pub stream: bool,
    /// Text of the last user message.
    pub prompt: String,
    /// Estimated input tokens (string bytes / 4, at least 1).
    pub input_tokens: u64,
}

/// Why a request body was refused (an `invalid_request_error` message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

fn parse_raw(body: &[u8]) -> Result<RawRequest<'_>, Invalid> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Invalid("request body is empty".into()));
    }
    serde_json::from_slice::<RawRequest>(body).map_err(|e| {
        if e.is_data() {
            Invalid(format!("invalid request body: {e}"))
        } else {
            Invalid(format!(
                "There was an error parsing the body of your request: {e}"
            ))
        }
    })
}

fn estimate(raw: &RawRequest<'_>) -> u64 {
    let mut bytes = raw.system.as_ref().map_or(0, |s| s.0) + raw.tools.as_ref().map_or(0, |s| s.0);
    if let Some(msgs) = &raw.messages {
        bytes += msgs.iter().map(|m| m.content.0.len()).sum::<usize>();
    }
    (bytes / 4).max(1) as u64
}

/// Validates and parses a Messages request like the API: a JSON object with `model`,
/// `max_tokens` (≥ 1) and a non-empty `messages` array of `user`/`assistant` turns.
pub fn parse_messages(body: &[u8]) -> Result<MessagesRequest, Invalid> {
    let raw = parse_raw(body)?;
    let model = match &raw.model {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => return Err(Invalid("model: Field required".into())),
    };
    let max_tokens = match raw.max_tokens {
        Some(n) if n >= 1 => n,
        Some(_) => {
            return Err(Invalid(
                "max_tokens: must be greater than or equal to 1".into(),
            ))
        }
        None => return Err(Invalid("max_tokens: Field required".into())),
    };
    let messages = match &raw.messages {
        Some(m) if !m.is_empty() => m,
        Some(_) => return Err(Invalid("messages: at least one message is required".into())),
        None => return Err(Invalid("messages: Field required".into())),
    };
    for (i, m) in messages.iter().enumerate() {
        if m.role != "user" && m.role != "assistant" {
            return Err(Invalid(format!(
                "messages.{i}.role: Input should be 'user' or 'assistant'"
            )));
        }
    }
    let prompt = messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| m.content.0.clone())
        .unwrap_or_default();
    Ok(MessagesRequest {
        model,
        max_tokens,
        stream: raw.stream.unwrap_or(false),
        prompt,
        input_tokens: estimate(&raw),
    })
}

/// Validates a count_tokens request (`model`, `messages`) and returns the estimated tokens.
pub fn count_tokens(body: &[u8]) -> Result<u64, Invalid> {
    let raw = parse_raw(body)?;
    if raw.model.as_deref().is_none_or(str::is_empty) {
        return Err(Invalid("model: Field required".into()));
    }
    match &raw.messages {
        Some(m) if !m.is_empty() => Ok(estimate(&raw)),
        Some(_) => Err(Invalid("messages: at least one message is required".into())),
        None => Err(Invalid("messages: Field required".into())),
    }
}

/// Whether a request body asks to stream (`"stream": true`), without validating it.
pub fn wants_stream(body: &[u8]) -> bool {
    parse_raw(body).ok().and_then(|r| r.stream).unwrap_or(false)
}

fn excerpt(s: &str, max: usize) -> &str {
    let s = s.trim();
    if s.len() <= max {
        return s;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

/// The default (non-demo) answer text: echoes the prompt.
pub fn echo_text(prompt: &str) -> String {
    let p = excerpt(prompt, 200);
    if p.is_empty() {
        "You said nothing.".to_string()
    } else {
        format!("You said: {p}")
    }
}

fn has_any(haystack: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| haystack.contains(n))
}

/// The demo-mode answer text: a short, sensible, deterministic answer; when the prompt asks for
/// a key, secret, token, password or credential it includes fake credentials of real shapes.
pub fn demo_text(prompt: &str) -> String {
    let lower = prompt.to_lowercase();
    let p = excerpt(prompt, 120);
    if has_any(
        &lower,
        &[
            "key",
            "secret",
            "credential",
            "password",
            "token",
            "aws",
            "api_key",
        ],
    ) {
        return format!(
            "Here are the credentials from the deployment config you asked about:\n\n\
             ANTHROPIC_API_KEY={FAKE_ANTHROPIC_KEY}\n\
             AWS_ACCESS_KEY_ID={FAKE_AWS_KEY_ID}\n\
             AWS_SECRET_ACCESS_KEY={FAKE_AWS_SECRET}\n\n\
             Keep them in a secret manager and rotate any that were committed."
        );
    }
    if has_any(&lower, &["hello", "hi ", "hey", "good morning"]) || lower.trim() == "hi" {
        return "Hello! I'm the tollgate demo upstream, standing in for Claude. Ask me anything \
                — try asking for an API key to see the gateway mask secrets."
            .to_string();
    }
    if has_any(&lower, &["code", "function", "rust", "python", "script"]) {
        return "Here is a small example:\n\n```python\ndef greet(name: str) -> str:\n    \
                return f\"Hello, {name}!\"\n\nprint(greet(\"tollgate\"))\n```\n\nIt defines a \
                function and calls it once."
            .to_string();
    }
    if has_any(&lower, &["weather"]) {
        return "I can't see live weather from here, but a tool call to a weather service \
                would answer that. In the demo, imagine a mild, clear day at 18 °C."
            .to_string();
    }
    if p.is_empty() {
        return "I didn't get a question. What would you like to know?".to_string();
    }
    if p.ends_with('?') {
        return format!(
            "Good question. You asked: \"{p}\" — I'm the tollgate demo upstream, so I can't \
             look that up, but the request reached me through the gateway intact."
        );
    }
    format!(
        "Understood: \"{p}\". This answer comes from tollgate's demo upstream; the request and \
         this reply both passed through the gateway's filters."
    )
}

/// The reply the mock gives a request when no script is queued.
pub fn default_reply(req: &MessagesRequest, demo: bool, delta_size: usize) -> Reply {
    let text = if demo {
        demo_text(&req.prompt)
    } else {
        echo_text(&req.prompt)
    };
    let output_tokens = (text.len() / 4 + 1) as u64;
    let mut output = output_tokens;
    if output > req.max_tokens {
        output = req.max_tokens;
    }
    let (text, stop) = if output_tokens > req.max_tokens {
        // Cut the text as the API would at max_tokens (≈ 4 bytes a token).
        let cut = excerpt(&text, (req.max_tokens as usize).saturating_mul(4)).to_string();
        (cut, "max_tokens")
    } else {
        (text, "end_turn")
    };
    Reply {
        id: Some(message_id()),
        model: Some(req.model.clone()),
        content: vec![Block::Text { text }],
        stop_reason: Some(stop.to_string()),
        usage: Some(Usage {
            input_tokens: req.input_tokens,
            output_tokens: output,
        }),
        delta_size,
        ping: true,
        error: None,
    }
}

/// `GET /v1/models` body.
pub fn models_json() -> Vec<u8> {
    let data: Vec<serde_json::Value> = MODELS.iter().map(model_value).collect();
    let v = serde_json::json!({
        "data": data,
        "has_more": false,
        "first_id": MODELS.first().map(|m| m.0),
        "last_id": MODELS.last().map(|m| m.0),
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

fn model_value(m: &(&str, &str, &str)) -> serde_json::Value {
    serde_json::json!({"type": "model", "id": m.0, "display_name": m.1, "created_at": m.2})
}

/// `GET /v1/models/{id}` body, if the model is known.
pub fn model_json(id: &str) -> Option<Vec<u8>> {
    MODELS
        .iter()
        .find(|m| m.0 == id)
        .and_then(|m| serde_json::to_vec(&model_value(m)).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_credentials_have_real_shapes() {
        let rest = FAKE_ANTHROPIC_KEY.trim_start_matches("sk-ant-api03-");
        assert_eq!(rest.len(), 93);
        assert!(rest.ends_with("AA"));
        assert!(rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        let aws = FAKE_AWS_KEY_ID.trim_start_matches("AKIA");
        assert_eq!(aws.len(), 16);
        assert!(aws
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
        assert_eq!(FAKE_AWS_SECRET.len(), 40);
    }

    #[test]
    fn parse_valid_request() {
        let body = br#"{"model":"m1","max_tokens":100,"stream":true,"system":[{"type":"text","text":"be brief"}],
            "tools":[{"name":"t","input_schema":{"type":"object"}}],
            "messages":[{"role":"user","content":"first"},{"role":"assistant","content":"ok"},
            {"role":"user","content":[{"type":"text","text":"hello"},{"type":"image","source":{}},{"type":"text","text":"world"}]}]}"#;
        let r = parse_messages(body).unwrap_or_else(|e| MessagesRequest {
            model: e.0,
            max_tokens: 0,
            stream: false,
            prompt: String::new(),
            input_tokens: 0,
        });
        assert_eq!(r.model, "m1");
        assert_eq!(r.max_tokens, 100);
        assert!(r.stream);
        assert_eq!(r.prompt, "hello\nworld");
        assert!(r.input_tokens >= 1);
    }

    #[test]
    fn parse_invalid_requests() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty"),
            (b"{not json", "parsing"),
            (
                br#"{"max_tokens":1,"messages":[{"role":"user","content":"x"}]}"#,
                "model: Field required",
            ),
            (
                br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
                "max_tokens: Field required",
            ),
            (
                br#"{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}"#,
                "max_tokens",
            ),
            (
                br#"{"model":"m","max_tokens":1}"#,
                "messages: Field required",
            ),
            (
                br#"{"model":"m","max_tokens":1,"messages":[]}"#,
                "at least one",
            ),
            (
                br#"{"model":"m","max_tokens":1,"messages":[{"role":"system","content":"x"}]}"#,
                "role",
            ),
            (
                br#"{"model":5,"max_tokens":1,"messages":[{"role":"user","content":"x"}]}"#,
                "invalid",
            ),
            (br#"[1,2]"#, "invalid"),
        ];
        for (body, want) in cases {
            match parse_messages(body) {
                Ok(_) => panic!("accepted {:?}", String::from_utf8_lossy(body)),
                Err(Invalid(msg)) => assert!(msg.contains(want), "{msg} lacks {want}"),
            }
        }
    }

    #[test]
    fn echo_and_demo() {
        assert_eq!(echo_text("  ping  "), "You said: ping");
        assert_eq!(echo_text(""), "You said nothing.");
        assert_eq!(echo_text(&"é".repeat(300)).len(), "You said: ".len() + 200);
        let d = demo_text("Please give me the API key for prod");
        assert!(d.contains(FAKE_ANTHROPIC_KEY) && d.contains(FAKE_AWS_KEY_ID));
        assert!(!demo_text("What is the capital of France?").contains("sk-ant"));
        assert_eq!(demo_text("hi x"), demo_text("hi x"));
    }

    #[test]
    fn default_reply_respects_max_tokens() {
        let req = MessagesRequest {
            model: "m".into(),
            max_tokens: 2,
            stream: false,
            prompt: "a fairly long prompt that will exceed two tokens".into(),
            input_tokens: 5,
        };
        let r = default_reply(&req, false, 0);
        assert_eq!(r.stop_reason.as_deref(), Some("max_tokens"));
        assert_eq!(r.full_text().len(), 8);
        assert_eq!(r.model.as_deref(), Some("m"));
    }

    #[test]
    fn ids_are_unique_and_shaped() {
        let a = message_id();
        let b = message_id();
        assert_ne!(a, b);
        assert!(a.starts_with("msg_01") && a.len() == 28);
        assert!(request_id().starts_with("req_"));
    }
}
