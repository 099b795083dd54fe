//! Sending an Anthropic-shaped error as a proxy-wasm local reply.

use crate::error::{error_body, ErrorKind};
use crate::host;

/// Sends `kind` with `message` as the local reply, with `content-type: application/json` and
/// any `extra_headers` (e.g. `WWW-Authenticate`). A host error is logged: there is nothing more
/// a filter can do, and the caller must still stop the stream.
pub fn send_error(kind: ErrorKind, message: &str, extra_headers: &[(&str, &str)]) {
    let body = error_body(kind, message);
    let mut headers: Vec<(&str, &[u8])> = Vec::with_capacity(extra_headers.len() + 1);
    headers.push(("content-type", b"application/json"));
    headers.extend(extra_headers.iter().map(|(k, v)| (*k, v.as_bytes())));
    if let Err(err) = host::send_response(kind.status(), &headers, &body) {
        log::error!("tollgate: cannot send local reply: {err}");
    }
}
