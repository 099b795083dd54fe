//! Sending an Anthropic-shaped error as a proxy-wasm local reply.

use proxy_wasm::hostcalls;

use crate::error::{error_body, ErrorKind};

/// Sends `kind` with `message` as the local reply, with `content-type: application/json` and
/// any `extra_headers` (e.g. `WWW-Authenticate`). A host error is logged: there is nothing more
/// a filter can do, and the caller must still stop the stream.
pub fn send_error(kind: ErrorKind, message: &str, extra_headers: &[(&str, &str)]) {
    let body = error_body(kind, message);
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(extra_headers.len() + 1);
    headers.push(("content-type", "application/json"));
    headers.extend_from_slice(extra_headers);
    if let Err(status) = hostcalls::send_http_response(kind.status(), headers, Some(&body)) {
        log::error!("tollgate: cannot send local reply: {status:?}");
    }
}
