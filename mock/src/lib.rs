//! tollgate-mock: a mock Claude Messages API server (HTTP/1.1 on tokio + hyper) for tollgate's
//! tests, benchmarks and demo stack.
//!
//! - [`MockServer`] runs the server on its own thread and tokio runtime; dropping it stops it.
//! - Without a script, `POST /v1/messages` answers like the API (Message JSON, or the real SSE
//!   event sequence with `"stream": true`), echoing the prompt (or, in demo mode, answering it
//!   and showing fake credentials when asked for keys). `GET /v1/models`,
//!   `POST /v1/messages/count_tokens`, API-key authentication and body validation behave like
//!   the API; unknown paths give 404 `not_found_error`.
//! - Tests queue [`Script`]s (FIFO) to control the next `/v1/messages` reply byte for byte:
//!   blocks, delta sizes, network chunk boundaries, delays, gzip, error statuses, a mid-stream
//!   `error` event, an abrupt disconnect. The pure functions in [`script`] ([`sse_events`],
//!   [`chunked`], [`Script::render`]) give the same bytes to harness tests.
//! - Every request is recorded ([`MockServer::requests`]); a control API under `/_mock/` does the
//!   same for other processes (see README.md).

pub mod api;
pub mod script;
mod server;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use script::{
    chunked, chunked_by_size, default_error_message, error_body, gzip, message_json, split_deltas,
    sse_event_list, sse_events, status_for_error, Block, Chunking, Rendered, Reply, Script,
    ScriptBody, StreamError, Usage, DEFAULT_MESSAGE_ID, DEFAULT_MODEL, SSE_CONTENT_TYPE,
};

/// Configuration of a mock server.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// When set, API requests must carry `x-api-key` equal to it (else 401).
    pub api_key: Option<String>,
    /// Also accept the key as `authorization: Bearer KEY` (what current Anthropic SDKs send
    /// for an API key). An `x-api-key` header, when present, is what counts.
    pub accept_bearer: bool,
    /// Demo mode: sensible answers, fake credentials when asked for keys.
    pub demo: bool,
    /// Runtime worker threads: 0 or 1 = a current-thread runtime on the server thread.
    pub workers: usize,
    /// Record requests (disable for long benchmarks to keep memory flat).
    pub record: bool,
    /// Keep at most this many recorded requests (the most recent); `None` = all.
    pub record_limit: Option<usize>,
    /// Log one line per request (method, path without query, status) to stderr.
    pub log: bool,
    /// Largest accepted request body; larger gives 413 `request_too_large`.
    pub max_body: usize,
    /// Text delta size of unscripted streaming replies (0 = one delta).
    pub delta_size: usize,
    /// Delay between the events of unscripted streaming replies, in milliseconds (makes a demo
    /// visibly stream; 0 = none).
    pub stream_delay_ms: u64,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            api_key: None,
            accept_bearer: true,
            demo: false,
            workers: 1,
            record: true,
            record_limit: None,
            log: false,
            max_body: 32 * 1024 * 1024,
            delta_size: 16,
            stream_delay_ms: 0,
        }
    }
}

/// One request the server received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    /// Path with its query string.
    pub path: String,
    /// Headers in received order, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body; serialized as a string when UTF-8, else as an array of bytes.
    #[serde(with = "body_serde")]
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
    /// The path without its query string.
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }
}

mod body_serde {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(body: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(body) {
            Ok(text) => s.serialize_str(text),
            Err(_) => body.serialize(s),
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        Bytes(Vec<u8>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Ok(match Either::deserialize(d)? {
            Either::Text(t) => t.into_bytes(),
            Either::Bytes(b) => b,
        })
    }
}

/// State shared by the server tasks and the [`MockServer`] handle. Locks are held only for a
/// push or pop, never across an await.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: MockConfig,
    requests: Mutex<VecDeque<RecordedRequest>>,
    scripts: Mutex<VecDeque<Script>>,
    /// Requests whose head arrived (counted before the body is read; not `/_mock/`).
    heads: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the data inconsistent (push/pop/clear).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(crate) fn new(config: MockConfig) -> Shared {
        Shared {
            config,
            requests: Mutex::new(VecDeque::new()),
            scripts: Mutex::new(VecDeque::new()),
            heads: AtomicUsize::new(0),
        }
    }
    pub(crate) fn record(&self, r: RecordedRequest) {
        let mut q = lock(&self.requests);
        if let Some(limit) = self.config.record_limit {
            if limit == 0 {
                return;
            }
            while q.len() >= limit {
                q.pop_front();
            }
        }
        q.push_back(r);
    }
    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).iter().cloned().collect()
    }
    pub(crate) fn request_count(&self) -> usize {
        lock(&self.requests).len()
    }
    pub(crate) fn push_script(&self, s: Script) {
        lock(&self.scripts).push_back(s);
    }
    pub(crate) fn pop_script(&self) -> Option<Script> {
        lock(&self.scripts).pop_front()
    }
    pub(crate) fn pending_scripts(&self) -> usize {
        lock(&self.scripts).len()
    }
    pub(crate) fn head_arrived(&self) {
        self.heads.fetch_add(1, Ordering::SeqCst);
    }
    pub(crate) fn heads_seen(&self) -> usize {
        self.heads.load(Ordering::SeqCst)
    }
    pub(crate) fn reset(&self) {
        lock(&self.requests).clear();
        lock(&self.scripts).clear();
        self.heads.store(0, Ordering::SeqCst);
    }
}

/// A running mock server. It runs on its own thread with its own tokio runtime; dropping the
/// handle stops accepting, closes open connections and joins the thread.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MockServer {
    /// Starts a server on `127.0.0.1` with an ephemeral port.
    pub fn start(config: MockConfig) -> std::io::Result<MockServer> {
        MockServer::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config)
    }

    /// Starts a server on `addr`; returns once the socket is bound and listening.
    pub fn start_on(addr: SocketAddr, config: MockConfig) -> std::io::Result<MockServer> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = if config.workers <= 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(config.workers)
                .thread_name("tollgate-mock-worker")
                .enable_all()
                .build()?
        };
        let shared = Arc::new(Shared::new(config));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("tollgate-mock-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => server::serve(l, task_shared, rx).await,
                        Err(e) => eprintln!("tollgate-mock: cannot register listener: {e}"),
                    }
                });
                runtime.shutdown_timeout(Duration::from_millis(500));
            })?;
        Ok(MockServer {
            addr,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` (no trailing slash), e.g. for `ANTHROPIC_BASE_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far (except `/_mock/` control requests), in order (the most
    /// recent `record_limit` ones if a limit is set).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// Number of requests received so far (cheaper than `requests().len()`).
    pub fn request_count(&self) -> usize {
        self.shared.request_count()
    }

    /// Requests whose head (request line and headers) arrived so far, counted before their body
    /// is read, so a request the proxy abandons mid-body counts too (not `/_mock/` requests,
    /// not limited by `record`/`record_limit`). "Never reached the upstream" means this did
    /// not grow.
    pub fn heads_seen(&self) -> usize {
        self.shared.heads_seen()
    }

    /// Waits until at least `n` requests were received or `timeout` passed; returns the
    /// requests received by then.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let deadline = Instant::now() + timeout;
        while self.shared.request_count() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        self.requests()
    }

    /// Queues a script: the next `POST /v1/messages` that passes authentication gets this reply
    /// (FIFO).
    pub fn push_script(&self, script: Script) {
        self.shared.push_script(script);
    }

    /// Scripts queued and not yet used.
    pub fn pending_scripts(&self) -> usize {
        self.shared.pending_scripts()
    }

    /// Forgets recorded requests and queued scripts, and zeroes [`MockServer::heads_seen`].
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &MockConfig {
        &self.shared.config
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
