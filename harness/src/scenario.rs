//! The outcome API: what a test describes (the client's request, the upstream's answer,
//! callout answers) and what it reads back (what the upstream and the client received,
//! callouts, logs, filter state). Plain data, so one scenario can also be replayed through a
//! real Envoy and compared.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::headers::HeaderMap;

/// The client's request: pseudo-headers, headers, body chunks (each delivered as one body
/// callback) and optional trailers.
#[derive(Debug, Clone)]
pub struct Request {
    pub headers: HeaderMap,
    pub chunks: Vec<Vec<u8>>,
    pub trailers: Option<HeaderMap>,
}

impl Request {
    /// A request with `:method`, `:path`, `:authority` (`localhost`) and `:scheme` (`http`).
    pub fn new(method: &str, path: &str) -> Self {
        let mut headers = HeaderMap::new();
        headers.add(":method", method.as_bytes());
        headers.add(":path", path.as_bytes());
        headers.add(":authority", b"localhost");
        headers.add(":scheme", b"http");
        Request {
            headers,
            chunks: Vec::new(),
            trailers: None,
        }
    }

    pub fn get(path: &str) -> Self {
        Request::new("GET", path)
    }

    pub fn post(path: &str) -> Self {
        Request::new("POST", path)
    }

    /// Adds a header (a second call with the same name adds a second value).
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        if name.starts_with(':') {
            self.headers.replace(name, value.as_ref());
        } else {
            self.headers.add(name, value.as_ref());
        }
        self
    }

    /// The whole body as one chunk.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.chunks = vec![body.into()];
        self
    }

    /// The body as these network chunks, each its own body callback.
    pub fn chunks(mut self, chunks: Vec<Vec<u8>>) -> Self {
        self.chunks = chunks;
        self
    }

    pub fn trailer(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.trailers
            .get_or_insert_with(HeaderMap::new)
            .add(name, value.as_ref());
        self
    }
}

/// The upstream's answer to a request that reaches it.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub headers: HeaderMap,
    pub chunks: Vec<Vec<u8>>,
    pub trailers: Option<HeaderMap>,
}

impl Upstream {
    pub fn new(status: u32) -> Self {
        let mut headers = HeaderMap::new();
        headers.add(":status", status.to_string().as_bytes());
        Upstream {
            headers,
            chunks: Vec::new(),
            trailers: None,
        }
    }

    /// A JSON body with `content-type: application/json`.
    pub fn json(status: u32, body: &serde_json::Value) -> Self {
        Upstream::new(status)
            .header("content-type", "application/json")
            .body(body.to_string())
    }

    /// An SSE stream (`content-type: text/event-stream`) cut into these network chunks.
    pub fn sse(chunks: Vec<Vec<u8>>) -> Self {
        Upstream::new(200)
            .header("content-type", "text/event-stream")
            .chunks(chunks)
    }

    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers.add(name, value.as_ref());
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.chunks = vec![body.into()];
        self
    }

    pub fn chunks(mut self, chunks: Vec<Vec<u8>>) -> Self {
        self.chunks = chunks;
        self
    }

    pub fn trailer(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.trailers
            .get_or_insert_with(HeaderMap::new)
            .add(name, value.as_ref());
        self
    }
}

/// How a `dispatch_http_call` is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalloutReply {
    /// A response (headers include `:status`), delivered `delay` after the call.
    Response {
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        delay: Duration,
    },
    /// A failure (connection refused, reset): `on_http_call_response(token, 0, 0, 0)`.
    Fail,
    /// No answer: the call fails when its own timeout elapses on the controlled clock.
    Timeout,
}

impl CalloutReply {
    pub fn ok(status: u32, body: impl Into<Vec<u8>>) -> Self {
        CalloutReply::Response {
            headers: vec![(":status".to_string(), status.to_string())],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    pub fn fail() -> Self {
        CalloutReply::Fail
    }

    pub fn timeout() -> Self {
        CalloutReply::Timeout
    }

    /// Adds a response header (no effect on failures).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let CalloutReply::Response { headers, .. } = &mut self {
            headers.push((name.to_ascii_lowercase(), value.to_string()));
        }
        self
    }

    /// Delivers the response this long after the call (on the controlled clock).
    pub fn delay(mut self, by: Duration) -> Self {
        if let CalloutReply::Response { delay, .. } = &mut self {
            *delay = by;
        }
        self
    }
}

/// A callout a filter made.
#[derive(Debug, Clone)]
pub struct Callout {
    pub filter: String,
    pub cluster: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum LogLevel {
    #[default]
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Critical,
}

impl LogLevel {
    pub(crate) fn from_abi(level: i32) -> Option<LogLevel> {
        Some(match level {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Critical,
            _ => return None,
        })
    }
}

/// A log line a filter wrote (proxy_log, or stdout/stderr through WASI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub filter: String,
    pub level: LogLevel,
    pub message: String,
}

/// What the upstream received.
#[derive(Debug, Clone, Default)]
pub struct UpstreamRequest {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: Option<HeaderMap>,
    /// The request ended normally. `false` when a filter stopped it after its headers left
    /// (Envoy then resets the upstream request).
    pub complete: bool,
}

impl UpstreamRequest {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get_str(name)
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// What the client received.
#[derive(Debug, Clone, Default)]
pub struct ClientResponse {
    pub status: u32,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// Each body chunk as it was emitted downstream.
    pub chunks: Vec<Vec<u8>>,
    pub trailers: Option<HeaderMap>,
    /// The response was generated by the gateway (a filter's local reply, a buffer limit, a
    /// failed filter), not by the upstream.
    pub local_reply: bool,
    /// The stream was reset after the response had started (the client saw a truncated body).
    pub reset: bool,
}

impl ClientResponse {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get_str(name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (`Value::Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Everything observable about one stream.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub client: ClientResponse,
    /// What reached the upstream; `None` when nothing did.
    pub upstream: Option<UpstreamRequest>,
    /// Callouts made while this stream ran (by any filter, including root contexts).
    pub callouts: Vec<Callout>,
    /// Filter state at the end of the stream.
    pub filter_state: BTreeMap<String, Vec<u8>>,
    /// Log lines written while this stream ran.
    pub logs: Vec<LogEntry>,
    /// A filter trapped (panic, fuel or memory exhausted): the stream failed closed.
    pub failure: Option<String>,
}

impl Outcome {
    /// A filter-state value as text (`set_property(["tollgate.subject"], …)`).
    pub fn property(&self, name: &str) -> Option<String> {
        self.filter_state
            .get(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Log lines at `level` or above whose message contains `needle`.
    pub fn logged(&self, level: LogLevel, needle: &str) -> bool {
        self.logs
            .iter()
            .any(|l| l.level >= level && l.message.contains(needle))
    }
}
