//! A minimal blocking HTTP/1.1 client for end-to-end tests: exact control of what is sent
//! (duplicate headers, odd bodies), raw access to what comes back (no decompression, no
//! redirects, no status-as-error), and streaming reads chunk by chunk for SSE.
//!
//! [`send`] uses one connection per request (`connection: close`); a [`Connection`] sends
//! many requests over one keep-alive connection (fast loops of many small requests). Header
//! values, the request target and trailers can be raw bytes (non-UTF-8, control bytes), to test
//! what a proxy does with them; response header lines are read as bytes and shown lossily.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

/// How long a read may block before the test fails instead of hanging.
pub const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// A request to send.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub method: String,
    /// Path and query, e.g. `/v1/messages?beta=true`.
    pub path: String,
    /// Sent in order, duplicates kept. `host`, `content-length` and `connection` are added
    /// unless present.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send the body with `transfer-encoding: chunked`, in these pieces.
    pub chunks: Option<Vec<Vec<u8>>>,
    /// Headers whose values are raw bytes, sent after `headers`.
    pub raw_headers: Vec<(String, Vec<u8>)>,
    /// The request target as raw bytes, sent instead of `path` when set.
    pub raw_path: Option<Vec<u8>>,
    /// Trailers (values as raw bytes) after the last chunk; only with `chunks`.
    pub trailers: Vec<(String, Vec<u8>)>,
}

impl Request {
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.to_string(),
            path: path.to_string(),
            ..Self::default()
        }
    }
    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }
    pub fn post(path: &str) -> Self {
        Self::new("POST", path)
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
    /// A JSON body with `content-type: application/json`.
    pub fn json(self, body: &Value) -> Self {
        self.header("content-type", "application/json")
            .body(body.to_string())
    }
    /// Sends the body chunked, in these pieces.
    pub fn chunks(mut self, chunks: Vec<Vec<u8>>) -> Self {
        self.chunks = Some(chunks);
        self
    }
    /// `authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }
    /// A header whose value is these bytes, as they are (e.g. `caf\xe9`).
    pub fn header_bytes(mut self, name: &str, value: &[u8]) -> Self {
        self.raw_headers.push((name.to_string(), value.to_vec()));
        self
    }
    /// Sends this request target (path and query) byte for byte instead of `path`.
    pub fn path_bytes(mut self, target: &[u8]) -> Self {
        self.raw_path = Some(target.to_vec());
        self
    }
    /// A trailer after the chunked body (set `chunks`), value as bytes.
    pub fn trailer(mut self, name: &str, value: &[u8]) -> Self {
        self.trailers.push((name.to_string(), value.to_vec()));
        self
    }

    fn has(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
            || self
                .raw_headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    fn encode(&self, addr: SocketAddr, keep_alive: bool) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        match &self.raw_path {
            Some(target) => out.extend_from_slice(target),
            None => out.extend_from_slice(self.path.as_bytes()),
        }
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let mut head = String::new();
        if !self.has("host") {
            head.push_str(&format!("host: {addr}\r\n"));
        }
        for (n, v) in &self.headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        out.extend_from_slice(head.as_bytes());
        for (n, v) in &self.raw_headers {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        let mut head = String::new();
        if self.chunks.is_some() {
            if !self.has("transfer-encoding") {
                head.push_str("transfer-encoding: chunked\r\n");
            }
        } else if !self.has("content-length") && (!self.body.is_empty() || self.method == "POST") {
            head.push_str(&format!("content-length: {}\r\n", self.body.len()));
        }
        if !self.has("connection") && !keep_alive {
            head.push_str("connection: close\r\n");
        }
        head.push_str("\r\n");
        out.extend_from_slice(head.as_bytes());
        match &self.chunks {
            Some(chunks) => {
                for c in chunks.iter().filter(|c| !c.is_empty()) {
                    out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                    out.extend_from_slice(c);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n");
                for (n, v) in &self.trailers {
                    out.extend_from_slice(n.as_bytes());
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(v);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"\r\n");
            }
            None => out.extend_from_slice(&self.body),
        }
        out
    }
}

/// A complete response.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body as it arrived: HTTP chunks for chunked responses, otherwise socket reads.
    pub chunks: Vec<Vec<u8>>,
}

impl Response {
    /// The first value of a header (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
    /// Every value of a header.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The body as JSON.
    ///
    /// # Panics
    /// When the body is not JSON (the message shows it).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }
    /// The body as server-sent events.
    pub fn sse(&self) -> Vec<SseEvent> {
        parse_sse(&self.body)
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

enum Framing {
    Chunked,
    Length(usize),
    UntilClose,
}

/// A response whose headers are read and whose body is read on demand.
pub struct StreamingResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    reader: BufReader<TcpStream>,
    framing: Framing,
    done: bool,
}

impl StreamingResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The next piece of the body (an HTTP chunk, or whatever one read returned), or `None` at
    /// the end.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        match self.framing {
            Framing::Chunked => {
                let line = read_line_lossy(&mut self.reader)?;
                let size_text = line.trim().split(';').next().unwrap_or("");
                let size = usize::from_str_radix(size_text, 16)
                    .with_context(|| format!("bad chunk size line {line:?}"))?;
                if size == 0 {
                    // trailers until the empty line
                    loop {
                        let t = read_line_lossy(&mut self.reader)?;
                        if t.is_empty() || t == "\r\n" || t == "\n" {
                            break;
                        }
                    }
                    self.done = true;
                    return Ok(None);
                }
                let mut buf = vec![0; size];
                self.reader.read_exact(&mut buf)?;
                let mut crlf = [0u8; 2];
                self.reader.read_exact(&mut crlf)?;
                Ok(Some(buf))
            }
            Framing::Length(ref mut left) => {
                if *left == 0 {
                    self.done = true;
                    return Ok(None);
                }
                let mut buf = vec![0; (*left).min(64 * 1024)];
                let n = self.reader.read(&mut buf)?;
                if n == 0 {
                    bail!("connection closed with {left} body bytes missing");
                }
                *left -= n;
                buf.truncate(n);
                Ok(Some(buf))
            }
            Framing::UntilClose => {
                let mut buf = vec![0; 64 * 1024];
                let n = self.reader.read(&mut buf)?;
                if n == 0 {
                    self.done = true;
                    return Ok(None);
                }
                buf.truncate(n);
                Ok(Some(buf))
            }
        }
    }

    /// Reads the rest of the body.
    pub fn finish(self) -> Result<Response> {
        self.finish_reader().map(|(resp, _, _)| resp)
    }

    /// Reads the rest of the body; also gives back the connection and whether it can carry
    /// another request.
    fn finish_reader(mut self) -> Result<(Response, BufReader<TcpStream>, bool)> {
        let mut chunks = Vec::new();
        while let Some(c) = self.next_chunk()? {
            chunks.push(c);
        }
        let reusable = !matches!(self.framing, Framing::UntilClose)
            && !header(&self.headers, "connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let resp = Response {
            status: self.status,
            headers: self.headers,
            body: chunks.concat(),
            chunks,
        };
        Ok((resp, self.reader, reusable))
    }
}

/// One line (up to and including `\n`) as text, invalid UTF-8 replaced; empty at the end.
fn read_line_lossy(reader: &mut BufReader<TcpStream>) -> Result<String> {
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    Ok(String::from_utf8_lossy(&line).into_owned())
}

fn connect(addr: SocketAddr) -> Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Sends `req` to `addr` and returns once the response headers have arrived.
pub fn send_streaming(addr: SocketAddr, req: &Request) -> Result<StreamingResponse> {
    let mut stream = connect(addr)?;
    stream.write_all(&req.encode(addr, false))?;
    read_response(BufReader::new(stream), req, addr)
}

/// Reads a response head from `reader` (the request `req` was sent on it).
fn read_response(
    mut reader: BufReader<TcpStream>,
    req: &Request,
    addr: SocketAddr,
) -> Result<StreamingResponse> {
    let status_line = read_line_lossy(&mut reader)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| anyhow!("bad status line {status_line:?} from {addr}"))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line_lossy(&mut reader)?;
        if line.is_empty() {
            bail!("connection closed in the response headers");
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (n, v) = line
            .split_once(':')
            .ok_or_else(|| anyhow!("bad header line {line:?}"))?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let no_body = req.method == "HEAD" || status == 204 || status == 304 || status < 200;
    let framing = if no_body {
        Framing::Length(0)
    } else if header(&headers, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        Framing::Chunked
    } else if let Some(len) = header(&headers, "content-length") {
        Framing::Length(len.parse().context("bad content-length")?)
    } else {
        Framing::UntilClose
    };
    Ok(StreamingResponse {
        status,
        headers,
        reader,
        framing,
        done: false,
    })
}

/// Sends `req` to `addr` and reads the whole response.
pub fn send(addr: SocketAddr, req: &Request) -> Result<Response> {
    send_streaming(addr, req)?.finish()
}

/// A keep-alive connection to one address: requests go one after another on the same socket
/// (no `connection: close` is added), and a new socket is opened when the server closed the
/// last one (`connection: close`, a body framed by the close, an error). A request whose
/// connection turns out to be closed before any response byte is sent again once on a new one.
pub struct Connection {
    addr: SocketAddr,
    reader: Option<BufReader<TcpStream>>,
    /// Sockets opened so far.
    pub connects: usize,
}

impl Connection {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            reader: None,
            connects: 0,
        }
    }

    /// Sends `req` and reads the whole response.
    pub fn send(&mut self, req: &Request) -> Result<Response> {
        let wire = req.encode(self.addr, true);
        let reused = self.reader.is_some();
        match self.try_send(req, &wire) {
            Err(e) if reused && e.downcast_ref::<StaleConnection>().is_some() => {
                self.try_send(req, &wire)
            }
            other => other,
        }
    }

    fn try_send(&mut self, req: &Request, wire: &[u8]) -> Result<Response> {
        let mut reader = match self.reader.take() {
            Some(r) => r,
            None => {
                self.connects += 1;
                BufReader::new(connect(self.addr)?)
            }
        };
        if reader.get_mut().write_all(wire).is_err() {
            bail!(StaleConnection);
        }
        if reader.fill_buf().map(|b| b.is_empty()).unwrap_or(true) {
            bail!(StaleConnection);
        }
        let (resp, reader, reusable) = read_response(reader, req, self.addr)?.finish_reader()?;
        if reusable {
            self.reader = Some(reader);
        }
        Ok(resp)
    }
}

/// The server closed a kept-alive connection before answering.
#[derive(Debug)]
struct StaleConnection;

impl std::fmt::Display for StaleConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the connection was closed before a response")
    }
}

impl std::error::Error for StaleConnection {}

/// One server-sent event.
#[derive(Clone, Debug, PartialEq)]
pub struct SseEvent {
    /// The `event:` field (empty when absent).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

impl SseEvent {
    /// `data` as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

/// Parses an SSE body (LF or CRLF lines; comments skipped).
pub fn parse_sse(body: &[u8]) -> Vec<SseEvent> {
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n");
    let mut events = Vec::new();
    let (mut event, mut data, mut any) = (String::new(), Vec::<String>::new(), false);
    for line in text.split('\n') {
        if line.is_empty() {
            if any {
                events.push(SseEvent {
                    event: std::mem::take(&mut event),
                    data: std::mem::take(&mut data).join("\n"),
                });
                any = false;
            }
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => {
                event = value.to_string();
                any = true;
            }
            "data" => {
                data.push(value.to_string());
                any = true;
            }
            _ => {}
        }
    }
    if any {
        events.push(SseEvent {
            event,
            data: data.join("\n"),
        });
    }
    events
}

/// The text a Messages stream spells out: the concatenated `text_delta`s.
pub fn sse_text(events: &[SseEvent]) -> String {
    events
        .iter()
        .map(SseEvent::json)
        .filter(|v| v["type"] == "content_block_delta" && v["delta"]["type"] == "text_delta")
        .filter_map(|v| v["delta"]["text"].as_str().map(str::to_string))
        .collect()
}

/// A minimal Messages request body.
pub fn messages_body(prompt: &str, stream: bool) -> Value {
    serde_json::json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "stream": stream,
        "messages": [{"role": "user", "content": prompt}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_parsing_handles_crlf_comments_and_multiline_data() {
        let body =
            b": comment\r\nevent: a\r\ndata: {\"x\":1}\r\n\r\nevent: b\ndata: l1\ndata: l2\n\n";
        let ev = parse_sse(body);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].event, "a");
        assert_eq!(ev[0].json()["x"], 1);
        assert_eq!(ev[1].data, "l1\nl2");
    }

    #[test]
    fn request_encoding_adds_framing() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let text = String::from_utf8(Request::post("/p").body("abc").encode(addr, false)).unwrap();
        assert!(text.contains("content-length: 3\r\n"));
        assert!(text.ends_with("\r\n\r\nabc"));
        let text = String::from_utf8(
            Request::post("/p")
                .chunks(vec![b"ab".to_vec(), b"c".to_vec()])
                .encode(addr, false),
        )
        .unwrap();
        assert!(text.ends_with("2\r\nab\r\n1\r\nc\r\n0\r\n\r\n"), "{text}");
    }

    #[test]
    fn raw_bytes_go_on_the_wire_as_they_are() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let wire = Request::post("/ignored")
            .path_bytes(b"/p?q=\xff")
            .header_bytes("x-note", b"caf\xe9\x01")
            .chunks(vec![b"ab".to_vec()])
            .trailer("x-t", b"\xe9")
            .encode(addr, true);
        assert!(wire.starts_with(b"POST /p?q=\xff HTTP/1.1\r\n"));
        let needle = b"x-note: caf\xe9\x01\r\n";
        assert!(wire.windows(needle.len()).any(|w| w == needle));
        assert!(wire.ends_with(b"2\r\nab\r\n0\r\nx-t: \xe9\r\n\r\n"));
        assert!(!wire.windows(10).any(|w| w == b"connection"));
    }
}
