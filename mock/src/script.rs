//! Scripts: serde-(de)serializable descriptions of one upstream reply, and the pure functions that
//! turn them into exact bytes.
//!
//! A [`Reply`] describes what Claude answers (text, thinking and tool_use blocks, stop reason,
//! usage, delta sizes, an optional mid-stream `error` event). [`sse_events`] serializes it into the
//! exact `text/event-stream` bytes the Messages API streams; [`message_json`] into the
//! non-streaming Message JSON. A [`Script`] wraps a body (a reply, raw JSON, raw bytes or an
//! Anthropic error) with a status, headers, gzip, network chunking, delays and an abrupt
//! disconnect; [`Script::render`] gives the status, headers and network chunks the server sends,
//! so harness tests can describe an upstream with exactly the same bytes as the real mock.

use std::borrow::Cow;
use std::io::Write;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Model name used by scripted replies that name none.
pub const DEFAULT_MODEL: &str = "claude-sonnet-4-5-20250929";
/// Message id used by scripted replies that name none (deterministic bytes).
pub const DEFAULT_MESSAGE_ID: &str = "msg_01MockReplyDefaultId000";
/// Content type of SSE replies (as the API sends it).
pub const SSE_CONTENT_TYPE: &str = "text/event-stream; charset=utf-8";
/// Signature sent for thinking blocks that name none.
pub const DEFAULT_SIGNATURE: &str = "EqQBCgIYAhIMockSignatureForThinkingBlock==";

/// One content block of a reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Block {
    /// A `text` block; streamed as `text_delta`s.
    Text { text: String },
    /// A `thinking` block; streamed as `thinking_delta`s then one `signature_delta`.
    Thinking {
        thinking: String,
        #[serde(default = "default_signature")]
        signature: String,
    },
    /// A `tool_use` block; its `input` is streamed as `input_json_delta` fragments of its
    /// compact JSON serialization.
    ToolUse {
        #[serde(default)]
        id: Option<String>,
        name: String,
        input: Value,
    },
}

fn default_signature() -> String {
    DEFAULT_SIGNATURE.to_string()
}

impl Block {
    /// A text block.
    pub fn text(text: impl Into<String>) -> Block {
        Block::Text { text: text.into() }
    }
    /// A thinking block with the default signature.
    pub fn thinking(thinking: impl Into<String>) -> Block {
        Block::Thinking {
            thinking: thinking.into(),
            signature: default_signature(),
        }
    }
    /// A tool_use block with an id derived from its position.
    pub fn tool_use(name: impl Into<String>, input: Value) -> Block {
        Block::ToolUse {
            id: None,
            name: name.into(),
            input,
        }
    }
}

/// Token usage reported in `message_start` / `message_delta` / the Message JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// An `error` event inserted into a 200 stream; the stream ends right after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamError {
    /// Number of events sent before the error event (message_start and ping count).
    pub after_events: usize,
    /// Anthropic error type, e.g. `overloaded_error`.
    #[serde(default = "default_overloaded")]
    pub error_type: String,
    #[serde(default = "default_overloaded_message")]
    pub message: String,
}

fn default_overloaded() -> String {
    "overloaded_error".to_string()
}
fn default_overloaded_message() -> String {
    "Overloaded".to_string()
}

/// What Claude answers: a Message, independent of how it is framed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    /// Message id; [`DEFAULT_MESSAGE_ID`] when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Model; [`DEFAULT_MODEL`] when absent.
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub content: Vec<Block>,
    /// `end_turn` when absent (`tool_use` if the reply has a tool_use block).
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// Estimated from the content when absent (input 10, output ≈ bytes / 4 + 1).
    #[serde(default)]
    pub usage: Option<Usage>,
    /// Maximum bytes per delta (text, thinking, partial_json); 0 = one delta per block.
    /// Cuts fall on UTF-8 character boundaries (a delta holds at least one character).
    #[serde(default)]
    pub delta_size: usize,
    /// Send a `ping` event right after `message_start` (as the API does).
    #[serde(default = "default_true")]
    pub ping: bool,
    /// Insert an `error` event after this many events and end the stream.
    #[serde(default)]
    pub error: Option<StreamError>,
}

fn default_true() -> bool {
    true
}

impl Default for Reply {
    fn default() -> Self {
        Reply {
            id: None,
            model: None,
            content: Vec::new(),
            stop_reason: None,
            usage: None,
            delta_size: 0,
            ping: true,
            error: None,
        }
    }
}

impl Reply {
    /// A reply holding one text block.
    pub fn text(text: impl Into<String>) -> Reply {
        Reply {
            content: vec![Block::text(text)],
            ..Reply::default()
        }
    }
    /// A reply with these blocks.
    pub fn blocks(content: Vec<Block>) -> Reply {
        Reply {
            content,
            ..Reply::default()
        }
    }
    /// Sets the maximum delta size in bytes.
    pub fn delta_size(mut self, n: usize) -> Reply {
        self.delta_size = n;
        self
    }
    /// Sets the model.
    pub fn model(mut self, model: impl Into<String>) -> Reply {
        self.model = Some(model.into());
        self
    }
    /// Sets the message id.
    pub fn id(mut self, id: impl Into<String>) -> Reply {
        self.id = Some(id.into());
        self
    }
    /// Sets the usage.
    pub fn usage(mut self, input_tokens: u64, output_tokens: u64) -> Reply {
        self.usage = Some(Usage {
            input_tokens,
            output_tokens,
        });
        self
    }
    /// Inserts an `error` event of this type after `after_events` events.
    pub fn error_after(mut self, after_events: usize, error_type: &str, message: &str) -> Reply {
        self.error = Some(StreamError {
            after_events,
            error_type: error_type.to_string(),
            message: message.to_string(),
        });
        self
    }

    /// The concatenated text of all text blocks.
    pub fn full_text(&self) -> String {
        self.content
            .iter()
            .filter_map(|b| match b {
                Block::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    fn id_or_default(&self) -> &str {
        self.id.as_deref().unwrap_or(DEFAULT_MESSAGE_ID)
    }
    fn model_or_default(&self) -> &str {
        self.model.as_deref().unwrap_or(DEFAULT_MODEL)
    }
    fn stop_reason_or_default(&self) -> &str {
        match &self.stop_reason {
            Some(s) => s,
            None if self
                .content
                .iter()
                .any(|b| matches!(b, Block::ToolUse { .. })) =>
            {
                "tool_use"
            }
            None => "end_turn",
        }
    }
    /// The usage sent: the given one, or an estimate from the content.
    pub fn usage_or_estimate(&self) -> Usage {
        self.usage.unwrap_or_else(|| {
            let bytes: usize = self
                .content
                .iter()
                .map(|b| match b {
                    Block::Text { text } => text.len(),
                    Block::Thinking { thinking, .. } => thinking.len(),
                    Block::ToolUse { input, .. } => input.to_string().len(),
                })
                .sum();
            Usage {
                input_tokens: 10,
                output_tokens: (bytes / 4 + 1) as u64,
            }
        })
    }
}

fn tool_id(id: &Option<String>, index: usize) -> String {
    match id {
        Some(id) => id.clone(),
        None => format!("toolu_01MockToolUse{index:08}"),
    }
}

// ---- serialization shapes (field order as the API sends them: "type" first) ----

#[derive(Serialize)]
struct UsageOut {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<BlockOut<'a>>,
    stop_reason: Option<&'a str>,
    stop_sequence: Option<&'a str>,
    usage: UsageOut,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockOut<'a> {
    Text {
        text: &'a str,
    },
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    ToolUse {
        id: String,
        name: &'a str,
        input: Cow<'a, Value>,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(clippy::enum_variant_names)] // the names are the wire names
enum DeltaOut<'a> {
    TextDelta { text: &'a str },
    InputJsonDelta { partial_json: &'a str },
    ThinkingDelta { thinking: &'a str },
    SignatureDelta { signature: &'a str },
}

#[derive(Serialize)]
struct MessageDeltaOut<'a> {
    stop_reason: &'a str,
    stop_sequence: Option<&'a str>,
}

#[derive(Serialize)]
struct OutputUsage {
    output_tokens: u64,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event<'a> {
    MessageStart {
        message: MessageOut<'a>,
    },
    Ping,
    ContentBlockStart {
        index: usize,
        content_block: BlockOut<'a>,
    },
    ContentBlockDelta {
        index: usize,
        delta: DeltaOut<'a>,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: MessageDeltaOut<'a>,
        usage: OutputUsage,
    },
    MessageStop,
    Error {
        error: ErrorOut<'a>,
    },
}

impl Event<'_> {
    fn name(&self) -> &'static str {
        match self {
            Event::MessageStart { .. } => "message_start",
            Event::Ping => "ping",
            Event::ContentBlockStart { .. } => "content_block_start",
            Event::ContentBlockDelta { .. } => "content_block_delta",
            Event::ContentBlockStop { .. } => "content_block_stop",
            Event::MessageDelta { .. } => "message_delta",
            Event::MessageStop => "message_stop",
            Event::Error { .. } => "error",
        }
    }
}

#[derive(Serialize)]
struct ErrorBodyOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

fn block_out(block: &Block, index: usize, empty: bool) -> BlockOut<'_> {
    match block {
        Block::Text { text } => BlockOut::Text {
            text: if empty { "" } else { text },
        },
        Block::Thinking {
            thinking,
            signature,
        } => BlockOut::Thinking {
            thinking: if empty { "" } else { thinking },
            signature: if empty { "" } else { signature },
        },
        Block::ToolUse { id, name, input } => BlockOut::ToolUse {
            id: tool_id(id, index),
            name,
            input: if empty {
                Cow::Owned(Value::Object(serde_json::Map::new()))
            } else {
                Cow::Borrowed(input)
            },
        },
    }
}

fn message_out(reply: &Reply, streaming_start: bool) -> MessageOut<'_> {
    let usage = reply.usage_or_estimate();
    MessageOut {
        id: reply.id_or_default(),
        kind: "message",
        role: "assistant",
        model: reply.model_or_default(),
        content: if streaming_start {
            Vec::new()
        } else {
            reply
                .content
                .iter()
                .enumerate()
                .map(|(i, b)| block_out(b, i, false))
                .collect()
        },
        stop_reason: if streaming_start {
            None
        } else {
            Some(reply.stop_reason_or_default())
        },
        stop_sequence: None,
        usage: UsageOut {
            input_tokens: usage.input_tokens,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
            output_tokens: if streaming_start {
                1
            } else {
                usage.output_tokens
            },
        },
    }
}

/// The non-streaming Message JSON for a reply.
pub fn message_json(reply: &Reply) -> Vec<u8> {
    serde_json::to_vec(&message_out(reply, false)).unwrap_or_default()
}

/// Splits `s` into pieces of at most `n` bytes on character boundaries (at least one character
/// per piece); `n == 0` gives `s` whole. An empty `s` gives no piece.
pub fn split_deltas(s: &str, n: usize) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    if n == 0 {
        return vec![s];
    }
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let mut cut = n.min(rest.len());
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        let (head, tail) = rest.split_at(cut);
        out.push(head);
        rest = tail;
    }
    out
}

fn encode(event: &Event<'_>) -> Vec<u8> {
    let mut ev = Vec::with_capacity(96);
    ev.extend_from_slice(b"event: ");
    ev.extend_from_slice(event.name().as_bytes());
    ev.extend_from_slice(b"\ndata: ");
    // Serializing these shapes into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut ev, event);
    ev.extend_from_slice(b"\n\n");
    ev
}

/// The SSE events of a reply, one `Vec<u8>` per event (`event: NAME\ndata: JSON\n\n`), in the
/// API's order: message_start, ping, per block content_block_start / deltas / (signature_delta) /
/// content_block_stop, message_delta, message_stop; cut short by `reply.error`.
pub fn sse_event_list(reply: &Reply) -> Vec<Vec<u8>> {
    let mut ev: Vec<Vec<u8>> = Vec::new();
    ev.push(encode(&Event::MessageStart {
        message: message_out(reply, true),
    }));
    if reply.ping {
        ev.push(encode(&Event::Ping));
    }
    for (index, block) in reply.content.iter().enumerate() {
        ev.push(encode(&Event::ContentBlockStart {
            index,
            content_block: block_out(block, index, true),
        }));
        let mut delta = |d: DeltaOut<'_>| {
            ev.push(encode(&Event::ContentBlockDelta { index, delta: d }));
        };
        match block {
            Block::Text { text } => {
                for piece in split_deltas(text, reply.delta_size) {
                    delta(DeltaOut::TextDelta { text: piece });
                }
            }
            Block::Thinking {
                thinking,
                signature,
            } => {
                for piece in split_deltas(thinking, reply.delta_size) {
                    delta(DeltaOut::ThinkingDelta { thinking: piece });
                }
                delta(DeltaOut::SignatureDelta { signature });
            }
            Block::ToolUse { input, .. } => {
                let json = input.to_string();
                delta(DeltaOut::InputJsonDelta { partial_json: "" });
                for piece in split_deltas(&json, reply.delta_size) {
                    delta(DeltaOut::InputJsonDelta {
                        partial_json: piece,
                    });
                }
            }
        }
        ev.push(encode(&Event::ContentBlockStop { index }));
    }
    let usage = reply.usage_or_estimate();
    ev.push(encode(&Event::MessageDelta {
        delta: MessageDeltaOut {
            stop_reason: reply.stop_reason_or_default(),
            stop_sequence: None,
        },
        usage: OutputUsage {
            output_tokens: usage.output_tokens,
        },
    }));
    ev.push(encode(&Event::MessageStop));
    if let Some(err) = &reply.error {
        ev.truncate(err.after_events);
        ev.push(encode(&Event::Error {
            error: ErrorOut {
                kind: &err.error_type,
                message: &err.message,
            },
        }));
    }
    ev
}

/// The exact SSE bytes of a reply (all events of [`sse_event_list`] concatenated).
pub fn sse_events(reply: &Reply) -> Vec<u8> {
    sse_event_list(reply).concat()
}

/// Cuts `bytes` at the given absolute byte offsets: `[10, 25]` gives `[0..10], [10..25], [25..]`.
/// Offsets that are 0, not increasing, or at/after the end are ignored; never yields an empty
/// chunk (an empty input gives no chunk).
pub fn chunked(bytes: &[u8], boundaries: &[usize]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    for &b in boundaries {
        if b > at && b < bytes.len() {
            out.push(bytes[at..b].to_vec());
            at = b;
        }
    }
    if at < bytes.len() {
        out.push(bytes[at..].to_vec());
    }
    out
}

/// Cuts `bytes` into chunks of `size` bytes (the last may be shorter); `size == 0` gives one chunk.
pub fn chunked_by_size(bytes: &[u8], size: usize) -> Vec<Vec<u8>> {
    if bytes.is_empty() {
        return Vec::new();
    }
    if size == 0 {
        return vec![bytes.to_vec()];
    }
    bytes.chunks(size).map(<[u8]>::to_vec).collect()
}

/// Gzip-compresses `bytes`.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

/// An Anthropic error body: `{"type":"error","error":{"type":T,"message":M},"request_id":R}`.
pub fn error_body(error_type: &str, message: &str, request_id: Option<&str>) -> Vec<u8> {
    serde_json::to_vec(&ErrorBodyOut {
        kind: "error",
        error: ErrorOut {
            kind: error_type,
            message,
        },
        request_id,
    })
    .unwrap_or_default()
}

/// A typical API message for an error type (used when a script gives none).
pub fn default_error_message(error_type: &str) -> &'static str {
    match error_type {
        "invalid_request_error" => "Invalid request",
        "authentication_error" => "invalid x-api-key",
        "billing_error" => "Your credit balance is too low to access the Anthropic API.",
        "permission_error" => {
            "Your API key does not have permission to use the specified resource."
        }
        "not_found_error" => "Not Found",
        "request_too_large" => "Request exceeds the maximum allowed number of bytes.",
        "rate_limit_error" => "Number of request tokens has exceeded your per-minute rate limit",
        "overloaded_error" => "Overloaded",
        "timeout_error" => "Request timed out",
        _ => "Internal server error",
    }
}

/// The HTTP status the API uses for an error type (500 for unknown types).
pub fn status_for_error(error_type: &str) -> u16 {
    match error_type {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "api_error" => 500,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    }
}

/// The body of a scripted reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScriptBody {
    /// The reply as the request asked: SSE if its `"stream"` was true, else Message JSON.
    Reply { reply: Reply },
    /// Always the SSE stream of the reply (`text/event-stream`).
    Stream { reply: Reply },
    /// Always the Message JSON of the reply (`application/json`).
    Message { reply: Reply },
    /// This JSON value as the body (`application/json`).
    Json { json: Value },
    /// These bytes (given as a UTF-8 string) with this content type.
    Raw {
        body: String,
        #[serde(default = "default_raw_type")]
        content_type: String,
    },
    /// An Anthropic error body; the status defaults to the API's status for the type.
    Error {
        error_type: String,
        #[serde(default)]
        message: Option<String>,
    },
}

fn default_raw_type() -> String {
    "text/plain".to_string()
}

/// How the (possibly gzipped) body is cut into network chunks (HTTP/1.1 chunked frames).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Chunking {
    /// SSE bodies: one chunk per event; other bodies (and gzipped ones): one chunk.
    #[default]
    Events,
    /// One chunk holding the whole body.
    Whole,
    /// Chunks of this many bytes.
    Size(usize),
    /// Cuts at these absolute byte offsets (see [`chunked`]).
    Boundaries(Vec<usize>),
}

/// One scripted reply to a `POST /v1/messages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// Status; default 200, or the error type's status for `Error` bodies.
    #[serde(default)]
    pub status: Option<u16>,
    /// Extra response headers (a `content-type` here replaces the default one).
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    pub body: ScriptBody,
    #[serde(default)]
    pub chunking: Chunking,
    /// Delay before the response head is sent, in milliseconds.
    #[serde(default)]
    pub head_delay_ms: u64,
    /// Delay between consecutive body chunks, in milliseconds.
    #[serde(default)]
    pub delay_ms: u64,
    /// Gzip the body and send `content-encoding: gzip`.
    #[serde(default)]
    pub gzip: bool,
    /// Close the connection after this many body bytes (after gzip) without finishing the body.
    #[serde(default)]
    pub disconnect_after: Option<usize>,
    /// Extra response headers whose values are bytes, not text (`[["x-note",[99,97,102,233]]]`):
    /// obs-text (0x80–0xff) and tab go on the wire as they are; other control bytes are
    /// refused by the HTTP library and the header is left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub raw_headers: Vec<(String, Vec<u8>)>,
    /// Trailers after the body, values as bytes like `raw_headers`; the body is then sent
    /// chunked, with a `trailer` header naming them. Over HTTP/1.1 they are sent only when the
    /// request carried `te: trailers`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trailers: Vec<(String, Vec<u8>)>,
}

/// A script rendered to what goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub status: u16,
    /// Response headers (lowercase names) including `content-type` and, if gzipped,
    /// `content-encoding`; `request-id` and framing headers are added by the server.
    pub headers: Vec<(String, String)>,
    /// Body chunks; when `disconnect_after` is set, already truncated to that many bytes.
    pub chunks: Vec<Vec<u8>>,
    /// Whether the body must be sent with chunked transfer-encoding (else content-length).
    pub chunked: bool,
    /// Whether the connection is closed abruptly after the chunks.
    pub disconnect: bool,
    /// The script's `raw_headers` (lowercase names), sent after `headers`.
    pub raw_headers: Vec<(String, Vec<u8>)>,
    /// The script's `trailers` (lowercase names), sent after the last chunk.
    pub trailers: Vec<(String, Vec<u8>)>,
}

impl Rendered {
    /// All body bytes concatenated.
    pub fn body(&self) -> Vec<u8> {
        self.chunks.concat()
    }
    /// The value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Script {
    /// A script with this body and defaults for everything else.
    pub fn new(body: ScriptBody) -> Script {
        Script {
            status: None,
            headers: Vec::new(),
            body,
            chunking: Chunking::Events,
            head_delay_ms: 0,
            delay_ms: 0,
            gzip: false,
            disconnect_after: None,
            raw_headers: Vec::new(),
            trailers: Vec::new(),
        }
    }
    /// Answer with the reply, streamed or not as the request asks.
    pub fn reply(reply: Reply) -> Script {
        Script::new(ScriptBody::Reply { reply })
    }
    /// Always stream the reply as SSE.
    pub fn stream(reply: Reply) -> Script {
        Script::new(ScriptBody::Stream { reply })
    }
    /// Always answer with the Message JSON of the reply.
    pub fn message(reply: Reply) -> Script {
        Script::new(ScriptBody::Message { reply })
    }
    /// Answer with this JSON value.
    pub fn json(status: u16, json: Value) -> Script {
        Script::new(ScriptBody::Json { json }).status(status)
    }
    /// An Anthropic error (status from the type unless set).
    pub fn error(error_type: &str, message: &str) -> Script {
        Script::new(ScriptBody::Error {
            error_type: error_type.to_string(),
            message: Some(message.to_string()),
        })
    }
    /// 429 `rate_limit_error` with `retry-after: 1`.
    pub fn rate_limited() -> Script {
        Script::error(
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
        )
        .header("retry-after", "1")
    }
    /// 529 `overloaded_error`.
    pub fn overloaded() -> Script {
        Script::error("overloaded_error", "Overloaded")
    }
    /// Sets the status.
    pub fn status(mut self, status: u16) -> Script {
        self.status = Some(status);
        self
    }
    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Script {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
    /// Sets the chunking.
    pub fn chunking(mut self, chunking: Chunking) -> Script {
        self.chunking = chunking;
        self
    }
    /// Chunks of `n` bytes.
    pub fn chunk_size(self, n: usize) -> Script {
        self.chunking(Chunking::Size(n))
    }
    /// Cuts at these absolute offsets.
    pub fn boundaries(self, cuts: Vec<usize>) -> Script {
        self.chunking(Chunking::Boundaries(cuts))
    }
    /// Delay between chunks.
    pub fn delay_ms(mut self, ms: u64) -> Script {
        self.delay_ms = ms;
        self
    }
    /// Delay before the response head.
    pub fn head_delay_ms(mut self, ms: u64) -> Script {
        self.head_delay_ms = ms;
        self
    }
    /// Gzip the body.
    pub fn gzip(mut self) -> Script {
        self.gzip = true;
        self
    }
    /// Disconnect after `n` body bytes.
    pub fn disconnect_after(mut self, n: usize) -> Script {
        self.disconnect_after = Some(n);
        self
    }
    /// Adds a response header whose value is these bytes (e.g. non-UTF-8 `caf\xe9`).
    pub fn raw_header(mut self, name: &str, value: &[u8]) -> Script {
        self.raw_headers.push((name.to_string(), value.to_vec()));
        self
    }
    /// Adds a trailer (sent after a chunked body) whose value is these bytes.
    pub fn trailer(mut self, name: &str, value: &[u8]) -> Script {
        self.trailers.push((name.to_string(), value.to_vec()));
        self
    }

    /// Renders the script for a request that did (`request_stream`) or did not ask to stream.
    /// `request_id` goes into error bodies.
    pub fn render_for(&self, request_stream: bool, request_id: Option<&str>) -> Rendered {
        let is_sse = matches!(
            (&self.body, request_stream),
            (ScriptBody::Stream { .. }, _) | (ScriptBody::Reply { .. }, true)
        );
        let (default_status, content_type, events): (u16, String, Vec<Vec<u8>>) = match &self.body {
            ScriptBody::Reply { reply } if request_stream => {
                (200, SSE_CONTENT_TYPE.into(), sse_event_list(reply))
            }
            ScriptBody::Stream { reply } => (200, SSE_CONTENT_TYPE.into(), sse_event_list(reply)),
            ScriptBody::Reply { reply } | ScriptBody::Message { reply } => {
                (200, "application/json".into(), vec![message_json(reply)])
            }
            ScriptBody::Json { json } => (
                200,
                "application/json".into(),
                vec![serde_json::to_vec(json).unwrap_or_default()],
            ),
            ScriptBody::Raw { body, content_type } => {
                (200, content_type.clone(), vec![body.as_bytes().to_vec()])
            }
            ScriptBody::Error {
                error_type,
                message,
            } => {
                let msg = message
                    .as_deref()
                    .unwrap_or_else(|| default_error_message(error_type));
                (
                    status_for_error(error_type),
                    "application/json".into(),
                    vec![error_body(error_type, msg, request_id)],
                )
            }
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        let has_ct = self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        if !has_ct {
            headers.push(("content-type".into(), content_type));
        }
        if is_sse {
            headers.push(("cache-control".into(), "no-cache".into()));
        }
        if self.gzip {
            headers.push(("content-encoding".into(), "gzip".into()));
        }
        headers.extend(
            self.headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone())),
        );
        let (mut chunks, explicit) = if self.gzip {
            let body = gzip(&events.concat());
            match &self.chunking {
                Chunking::Events | Chunking::Whole => (chunked_by_size(&body, 0), false),
                Chunking::Size(n) => (chunked_by_size(&body, *n), true),
                Chunking::Boundaries(b) => (chunked(&body, b), true),
            }
        } else {
            match &self.chunking {
                Chunking::Events => {
                    let evs: Vec<Vec<u8>> = events.into_iter().filter(|e| !e.is_empty()).collect();
                    (evs, false)
                }
                Chunking::Whole => (chunked_by_size(&events.concat(), 0), false),
                Chunking::Size(n) => (chunked_by_size(&events.concat(), *n), true),
                Chunking::Boundaries(b) => (chunked(&events.concat(), b), true),
            }
        };
        if let Some(limit) = self.disconnect_after {
            let mut left = limit;
            let mut kept = Vec::new();
            for mut c in chunks {
                if left == 0 {
                    break;
                }
                if c.len() > left {
                    c.truncate(left);
                }
                left -= c.len();
                kept.push(c);
            }
            chunks = kept;
        }
        let chunked = is_sse
            || explicit
            || self.delay_ms > 0
            || self.disconnect_after.is_some()
            || !self.trailers.is_empty();
        let lowercase = |fields: &[(String, Vec<u8>)]| -> Vec<(String, Vec<u8>)> {
            fields
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect()
        };
        Rendered {
            status: self.status.unwrap_or(default_status),
            headers,
            chunks,
            chunked,
            disconnect: self.disconnect_after.is_some(),
            raw_headers: lowercase(&self.raw_headers),
            trailers: lowercase(&self.trailers),
        }
    }

    /// Renders the script as for a request that asked to stream (`Reply` bodies become SSE).
    pub fn render(&self) -> Rendered {
        self.render_for(true, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_deltas_respects_char_boundaries() {
        assert_eq!(split_deltas("abcdef", 4), vec!["abcd", "ef"]);
        assert_eq!(split_deltas("abc", 0), vec!["abc"]);
        assert!(split_deltas("", 3).is_empty());
        // "é" is 2 bytes: a cut at 1 moves to 2.
        assert_eq!(split_deltas("éa", 1), vec!["é", "a"]);
        let s = "héllo wörld ✓";
        assert_eq!(split_deltas(s, 3).concat(), s);
    }

    #[test]
    fn chunked_cuts_at_offsets() {
        let b = b"0123456789";
        assert_eq!(
            chunked(b, &[3, 7]),
            vec![b"012".to_vec(), b"3456".to_vec(), b"789".to_vec()]
        );
        assert_eq!(chunked(b, &[0, 3, 3, 2, 10, 20]).len(), 2);
        assert_eq!(chunked_by_size(b, 4).len(), 3);
        assert_eq!(chunked_by_size(b, 4)[2], b"89".to_vec());
        assert!(chunked(b"", &[1]).is_empty());
    }

    #[test]
    fn sse_sequence_and_shapes() {
        let reply = Reply::blocks(vec![
            Block::thinking("hmm"),
            Block::text("Hello there"),
            Block::tool_use("get_weather", serde_json::json!({"city": "Paris \"FR\""})),
        ])
        .delta_size(4);
        let evs = sse_event_list(&reply);
        let names: Vec<String> = evs
            .iter()
            .map(|e| {
                let s = String::from_utf8_lossy(e);
                s.lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("event: ")
                    .to_string()
            })
            .collect();
        assert_eq!(names[0], "message_start");
        assert_eq!(names[1], "ping");
        assert_eq!(names[names.len() - 2], "message_delta");
        assert_eq!(names[names.len() - 1], "message_stop");
        // Each event's data type equals its name.
        for e in &evs {
            let s = String::from_utf8_lossy(e).to_string();
            let mut lines = s.lines();
            let name = lines.next().unwrap_or("").trim_start_matches("event: ");
            let data: Value =
                serde_json::from_str(lines.next().unwrap_or("").trim_start_matches("data: "))
                    .unwrap_or(Value::Null);
            assert_eq!(data["type"], name);
            assert!(s.ends_with("\n\n"));
        }
        let all = String::from_utf8_lossy(&sse_events(&reply)).to_string();
        assert!(all.contains(r#""stop_reason":"tool_use""#));
        assert!(all.contains(r#""type":"signature_delta""#));
        assert!(all.contains(r#""partial_json":"""#));
        // Reassembled partial_json parses back to the input.
        let mut partial = String::new();
        for e in &evs {
            let s = String::from_utf8_lossy(e).to_string();
            let data = s.lines().nth(1).unwrap_or("").trim_start_matches("data: ");
            let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
            if v["delta"]["type"] == "input_json_delta" {
                partial.push_str(v["delta"]["partial_json"].as_str().unwrap_or(""));
            }
        }
        let input: Value = serde_json::from_str(&partial).unwrap_or(Value::Null);
        assert_eq!(input["city"], "Paris \"FR\"");
    }

    #[test]
    fn error_event_cuts_stream() {
        let reply =
            Reply::text("abcdefgh")
                .delta_size(2)
                .error_after(4, "overloaded_error", "Overloaded");
        let evs = sse_event_list(&reply);
        assert_eq!(evs.len(), 5);
        let last = String::from_utf8_lossy(&evs[4]).to_string();
        assert_eq!(
            last,
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
        );
    }

    #[test]
    fn message_json_shape() {
        let v: Value =
            serde_json::from_slice(&message_json(&Reply::text("hi"))).unwrap_or_default();
        assert_eq!(v["type"], "message");
        assert_eq!(v["role"], "assistant");
        assert_eq!(v["id"], DEFAULT_MESSAGE_ID);
        assert_eq!(v["content"][0]["text"], "hi");
        assert_eq!(v["stop_reason"], "end_turn");
        assert_eq!(v["usage"]["output_tokens"], 1);
    }

    #[test]
    fn render_script_variants() {
        let r = Script::stream(Reply::text("hello")).chunk_size(7).render();
        assert!(r.chunked);
        assert!(r
            .chunks
            .iter()
            .take(r.chunks.len() - 1)
            .all(|c| c.len() == 7));
        assert_eq!(r.body(), sse_events(&Reply::text("hello")));
        assert_eq!(r.header("content-type"), Some(SSE_CONTENT_TYPE));

        let r = Script::rate_limited().render();
        assert_eq!(r.status, 429);
        assert_eq!(r.header("retry-after"), Some("1"));
        assert!(!r.chunked);

        let r = Script::reply(Reply::text("x")).render_for(false, None);
        assert_eq!(r.header("content-type"), Some("application/json"));

        let r = Script::stream(Reply::text("hello"))
            .disconnect_after(30)
            .render();
        assert_eq!(r.body().len(), 30);
        assert!(r.disconnect);

        let r = Script::stream(Reply::text("hello")).gzip().render();
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert_eq!(r.chunks.len(), 1);
        let mut d = flate2::read::GzDecoder::new(&r.chunks[0][..]);
        let mut out = Vec::new();
        let _ = std::io::Read::read_to_end(&mut d, &mut out);
        assert_eq!(out, sse_events(&Reply::text("hello")));
    }

    #[test]
    fn script_serde_roundtrip() {
        let json = r#"{"status":200,"body":{"type":"stream","reply":{"content":[{"type":"text","text":"hi"}],"delta_size":1}},"chunking":{"boundaries":[5,9]},"delay_ms":3,"gzip":false}"#;
        let s: Script = serde_json::from_str(json).unwrap_or_else(|_| Script::overloaded());
        assert_eq!(s.chunking, Chunking::Boundaries(vec![5, 9]));
        let back: Script = serde_json::from_str(&serde_json::to_string(&s).unwrap_or_default())
            .unwrap_or_else(|_| Script::overloaded());
        assert_eq!(back, s);
        assert!(
            serde_json::from_str::<Script>(r#"{"body":{"type":"json","json":1},"bogus":1}"#)
                .is_err()
        );
    }
}
