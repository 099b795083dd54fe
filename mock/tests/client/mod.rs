//! A minimal HTTP/1.1 client over `std::net::TcpStream` for the mock's tests: it sends raw
//! requests and reads responses frame by frame, keeping chunked-encoding frames, their arrival
//! times, and whether the body ended properly (terminal chunk) or the connection dropped.

// Test helper code: failing loudly is the point.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    /// Body bytes as received (not decoded from gzip).
    pub body: Vec<u8>,
    /// The chunked-encoding frames, in order (empty for content-length bodies).
    pub chunks: Vec<Vec<u8>>,
    /// When each chunk arrived, relative to when the head arrived.
    pub chunk_times: Vec<Duration>,
    /// Time from sending the request to the head arriving.
    pub head_time: Duration,
    /// The body was properly terminated (content-length reached or terminal 0-chunk read).
    pub complete: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// Parses an SSE body into (event name, data JSON) pairs, checking the wire format.
    pub fn sse(&self) -> Vec<(String, serde_json::Value)> {
        parse_sse(&self.body)
    }
}

/// Parses `event: NAME\ndata: JSON\n\n` events; panics on anything else.
pub fn parse_sse(body: &[u8]) -> Vec<(String, serde_json::Value)> {
    let text = std::str::from_utf8(body).expect("SSE body is UTF-8");
    assert!(
        text.is_empty() || text.ends_with("\n\n"),
        "SSE body does not end with a blank line: {text:?}"
    );
    let mut out = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.is_empty()) {
        let mut lines = block.lines();
        let name = lines
            .next()
            .and_then(|l| l.strip_prefix("event: "))
            .unwrap_or_else(|| panic!("event without name: {block:?}"))
            .to_string();
        let data = lines
            .next()
            .and_then(|l| l.strip_prefix("data: "))
            .unwrap_or_else(|| panic!("event without data: {block:?}"));
        assert!(lines.next().is_none(), "extra lines in {block:?}");
        let json: serde_json::Value =
            serde_json::from_str(data).unwrap_or_else(|e| panic!("bad data {data:?}: {e}"));
        assert_eq!(
            json["type"],
            name.as_str(),
            "data type differs from event name"
        );
        out.push((name, json));
    }
    out
}

pub struct Client {
    stream: BufReader<TcpStream>,
    addr: SocketAddr,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).expect("connect to mock");
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        Client {
            stream: BufReader::new(s),
            addr,
        }
    }

    /// Sends a request (adds host and content-length) and reads the response.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {}\r\n", self.addr);
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            req.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let started = Instant::now();
        let s = self.stream.get_mut();
        s.write_all(req.as_bytes()).expect("write head");
        s.write_all(body).expect("write body");
        self.read_response(started, method == "HEAD")
    }

    fn read_line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.stream.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_string()),
        }
    }

    fn read_response(&mut self, started: Instant, head_only: bool) -> Response {
        let status_line = self.read_line().expect("status line");
        let head_time = started.elapsed();
        let head_at = Instant::now();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(
            parts.next(),
            Some("HTTP/1.1"),
            "status line {status_line:?}"
        );
        let status: u16 = parts.next().and_then(|s| s.parse().ok()).expect("status");
        let reason = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let line = self.read_line().expect("header line");
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').expect("header colon");
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let mut resp = Response {
            status,
            reason,
            headers,
            body: Vec::new(),
            chunks: Vec::new(),
            chunk_times: Vec::new(),
            head_time,
            complete: false,
        };
        if head_only {
            resp.complete = true;
            return resp;
        }
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        if chunked {
            while let Some(size_line) = self.read_line() {
                let size = usize::from_str_radix(size_line.split(';').next().unwrap_or(""), 16)
                    .unwrap_or_else(|_| panic!("bad chunk size line {size_line:?}"));
                if size == 0 {
                    let trailer_end = self.read_line();
                    resp.complete = trailer_end.as_deref() == Some("");
                    break;
                }
                let mut data = vec![0; size];
                if self.stream.read_exact(&mut data).is_err() {
                    break;
                }
                let mut crlf = [0u8; 2];
                if self.stream.read_exact(&mut crlf).is_err() || &crlf != b"\r\n" {
                    break;
                }
                resp.chunk_times.push(head_at.elapsed());
                resp.body.extend_from_slice(&data);
                resp.chunks.push(data);
            }
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len.parse().expect("content-length");
            let mut data = vec![0; len];
            resp.complete = self.stream.read_exact(&mut data).is_ok();
            resp.body = data;
        } else {
            let _ = self.stream.read_to_end(&mut resp.body);
            resp.complete = true;
        }
        resp
    }

    /// Whether the server closed the connection (reads EOF or an error within `wait`).
    pub fn is_closed(&mut self, wait: Duration) -> bool {
        self.stream.get_ref().set_read_timeout(Some(wait)).ok();
        let mut b = [0u8; 1];
        let closed = match self.stream.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        self.stream
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok();
        closed
    }
}

/// One request on a fresh connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    Client::connect(addr).send(method, path, headers, body)
}

/// `POST /v1/messages` with a JSON body on a fresh connection.
pub fn post_json(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
    let mut h = vec![("content-type", "application/json")];
    h.extend_from_slice(headers);
    request(addr, "POST", path, &h, body.as_bytes())
}
