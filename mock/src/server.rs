//! The HTTP/1.1 server: accept loop, routing, authentication, scripted and default replies, the
//! `/_mock/` control API, and the response body type that sends scripted network chunks with
//! delays and abrupt disconnects.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::time::Sleep;

use crate::api::{self, Invalid};
use crate::script::{error_body, sse_event_list, Rendered, Script, SSE_CONTENT_TYPE};
use crate::{RecordedRequest, Shared};

/// The error a response body yields to make hyper drop the connection mid-body.
#[derive(Debug)]
pub(crate) struct Disconnect;

impl std::fmt::Display for Disconnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("scripted disconnect")
    }
}

impl std::error::Error for Disconnect {}

/// A response body: a whole body (content-length), or network chunks sent one frame each
/// (chunked encoding) with optional delays and an abrupt end.
pub(crate) enum MockBody {
    Full(Option<Bytes>),
    Chunks {
        queue: std::collections::VecDeque<Bytes>,
        delay: Duration,
        sleep: Option<Pin<Box<Sleep>>>,
        disconnect: bool,
        waited: bool,
        /// Sent as a trailers frame after the last chunk (unless disconnecting).
        trailers: Option<hyper::HeaderMap>,
    },
}

/// Time given to hyper to flush the last chunk before a scripted disconnect.
const FLUSH_GRACE: Duration = Duration::from_millis(10);

impl http_body::Body for MockBody {
    type Data = Bytes;
    type Error = Disconnect;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Disconnect>>> {
        match self.get_mut() {
            MockBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            MockBody::Chunks {
                queue,
                delay,
                sleep,
                disconnect,
                waited,
                trailers,
            } => loop {
                if let Some(s) = sleep.as_mut() {
                    if s.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    *sleep = None;
                }
                if let Some(c) = queue.pop_front() {
                    if !queue.is_empty() && !delay.is_zero() {
                        *sleep = Some(Box::pin(tokio::time::sleep(*delay)));
                    }
                    return Poll::Ready(Some(Ok(Frame::data(c))));
                }
                if *disconnect {
                    if !*waited {
                        // Let hyper write out the head and the last chunk first.
                        *waited = true;
                        *sleep = Some(Box::pin(tokio::time::sleep(FLUSH_GRACE)));
                        continue;
                    }
                    *disconnect = false;
                    return Poll::Ready(Some(Err(Disconnect)));
                }
                return Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))));
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            MockBody::Full(b) => b.is_none(),
            MockBody::Chunks {
                queue,
                disconnect,
                trailers,
                ..
            } => queue.is_empty() && !*disconnect && trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MockBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            MockBody::Full(None) => SizeHint::with_exact(0),
            MockBody::Chunks { .. } => SizeHint::default(),
        }
    }
}

/// Accepts connections until `shutdown` fires; each connection is served on its own task.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        eprintln!("tollgate-mock: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let shared = Arc::clone(&shared);
                        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
                    });
                    // No header-read timeout: hyper would also apply it to idle keep-alive
                    // connections and close them after 30 s, racing a proxy's next request.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(None)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    /// Headers whose values are bytes (scripted `raw_headers`).
    raw_headers: Vec<(String, Vec<u8>)>,
    body: MockBody,
    head_delay: Duration,
}

/// Byte-valued fields as a header map; a field the HTTP library refuses is left out.
fn header_map(fields: &[(String, Vec<u8>)]) -> hyper::HeaderMap {
    let mut map = hyper::HeaderMap::new();
    for (k, v) in fields {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_bytes(v),
        ) {
            map.append(k, v);
        }
    }
    map
}

fn json_reply(status: u16, body: Vec<u8>) -> Reply {
    Reply {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        raw_headers: Vec::new(),
        body: MockBody::Full(Some(Bytes::from(body))),
        head_delay: Duration::ZERO,
    }
}

fn error_reply(error_type: &str, message: &str, request_id: &str) -> Reply {
    json_reply(
        crate::script::status_for_error(error_type),
        error_body(error_type, message, Some(request_id)),
    )
}

fn rendered_reply(r: Rendered, delay_ms: u64, head_delay_ms: u64) -> Reply {
    let mut headers = r.headers;
    if !r.trailers.is_empty() {
        // hyper sends only the trailer fields the `trailer` header announces
        let names: Vec<&str> = r.trailers.iter().map(|(k, _)| k.as_str()).collect();
        headers.push(("trailer".into(), names.join(", ")));
    }
    let body = if r.chunked {
        MockBody::Chunks {
            queue: r.chunks.into_iter().map(Bytes::from).collect(),
            delay: Duration::from_millis(delay_ms),
            sleep: None,
            disconnect: r.disconnect,
            waited: false,
            trailers: (!r.trailers.is_empty()).then(|| header_map(&r.trailers)),
        }
    } else {
        MockBody::Full(Some(Bytes::from(r.chunks.concat())))
    };
    Reply {
        status: r.status,
        headers,
        raw_headers: r.raw_headers,
        body,
        head_delay: Duration::from_millis(head_delay_ms),
    }
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<MockBody> {
    let request_id = api::request_id();
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| parts.uri.path().to_string());
    let path_only = parts.uri.path().to_string();
    if !path_only.starts_with("/_mock/") {
        shared.head_arrived();
    }

    let collected = Limited::new(body, shared.config.max_body).collect().await;
    let body = match collected {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            let reply = error_reply(
                "request_too_large",
                "Request exceeds the maximum allowed number of bytes.",
                &request_id,
            );
            return finish(shared, &method, &path_only, reply, &request_id).await;
        }
    };

    if let Some(control) = path_only.strip_prefix("/_mock/") {
        let reply = control_api(shared, &method, control, &body);
        return finish(shared, &method, &path_only, reply, &request_id).await;
    }

    if shared.config.record {
        let headers = parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        shared.record(RecordedRequest {
            method: method.as_str().to_string(),
            path: path.clone(),
            headers,
            body: body.to_vec(),
        });
    }

    let reply = route(
        shared,
        &method,
        &path_only,
        &parts.headers,
        &body,
        &request_id,
    );
    finish(shared, &method, &path_only, reply, &request_id).await
}

/// Checks the API key like the API: `x-api-key: KEY`, or (as current SDKs send a key)
/// `authorization: Bearer KEY` unless `accept_bearer` is off. `None` = allowed.
fn authenticate(shared: &Shared, headers: &hyper::HeaderMap, request_id: &str) -> Option<Reply> {
    let want = shared.config.api_key.as_deref()?;
    let x_api_key = headers.get("x-api-key").map(|v| v.as_bytes());
    let bearer = if shared.config.accept_bearer {
        headers
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
    } else {
        None
    };
    match (x_api_key, bearer) {
        (Some(k), _) if k == want.as_bytes() => None,
        (None, Some(b)) if b == want.as_bytes() => None,
        (None, None) => Some(error_reply(
            "authentication_error",
            "x-api-key header is required",
            request_id,
        )),
        _ => Some(error_reply(
            "authentication_error",
            "invalid x-api-key",
            request_id,
        )),
    }
}

fn invalid(e: Invalid, request_id: &str) -> Reply {
    error_reply("invalid_request_error", &e.0, request_id)
}

fn route(
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &hyper::HeaderMap,
    body: &Bytes,
    request_id: &str,
) -> Reply {
    let path = path.trim_end_matches('/');
    let known = matches!(
        path,
        "/v1/messages" | "/v1/messages/count_tokens" | "/v1/models"
    ) || path.starts_with("/v1/models/");
    if !known {
        return error_reply("not_found_error", "Not Found", request_id);
    }
    let allowed = match path {
        "/v1/messages" | "/v1/messages/count_tokens" => method == Method::POST,
        _ => method == Method::GET,
    };
    if !allowed {
        let mut r = error_reply("invalid_request_error", "Method Not Allowed", request_id);
        r.status = 405;
        return r;
    }
    if let Some(denied) = authenticate(shared, headers, request_id) {
        return denied;
    }
    match path {
        "/v1/messages" => messages(shared, body, request_id),
        "/v1/messages/count_tokens" => match api::count_tokens(body) {
            Ok(n) => json_reply(200, format!("{{\"input_tokens\":{n}}}").into_bytes()),
            Err(e) => invalid(e, request_id),
        },
        "/v1/models" => json_reply(200, api::models_json()),
        _ => {
            let id = path.trim_start_matches("/v1/models/");
            match api::model_json(id) {
                Some(b) => json_reply(200, b),
                None => error_reply("not_found_error", &format!("model: {id}"), request_id),
            }
        }
    }
}

fn messages(shared: &Shared, body: &Bytes, request_id: &str) -> Reply {
    if let Some(script) = shared.pop_script() {
        let stream = api::wants_stream(body);
        let (delay, head_delay) = (script.delay_ms, script.head_delay_ms);
        return rendered_reply(
            script.render_for(stream, Some(request_id)),
            delay,
            head_delay,
        );
    }
    let req = match api::parse_messages(body) {
        Ok(r) => r,
        Err(e) => return invalid(e, request_id),
    };
    let reply = api::default_reply(&req, shared.config.demo, shared.config.delta_size);
    if req.stream {
        // One network chunk per event, like the API's flushes.
        let events = sse_event_list(&reply);
        Reply {
            status: 200,
            headers: vec![
                ("content-type".into(), SSE_CONTENT_TYPE.into()),
                ("cache-control".into(), "no-cache".into()),
            ],
            raw_headers: Vec::new(),
            body: MockBody::Chunks {
                queue: events.into_iter().map(Bytes::from).collect(),
                delay: Duration::from_millis(shared.config.stream_delay_ms),
                sleep: None,
                disconnect: false,
                waited: false,
                trailers: None,
            },
            head_delay: Duration::ZERO,
        }
    } else {
        json_reply(200, crate::script::message_json(&reply))
    }
}

fn control_api(shared: &Shared, method: &Method, path: &str, body: &Bytes) -> Reply {
    let ok = |v: serde_json::Value| json_reply(200, serde_json::to_vec(&v).unwrap_or_default());
    let bad = |msg: String| {
        json_reply(
            400,
            serde_json::to_vec(&serde_json::json!({"error": msg})).unwrap_or_default(),
        )
    };
    match (method, path.trim_end_matches('/')) {
        (&Method::POST, "script") => {
            // One Script object or an array of them.
            let scripts = match serde_json::from_slice::<serde_json::Value>(body) {
                Ok(serde_json::Value::Array(items)) => items
                    .into_iter()
                    .map(serde_json::from_value::<Script>)
                    .collect::<Result<Vec<_>, _>>(),
                Ok(v) => serde_json::from_value::<Script>(v).map(|s| vec![s]),
                Err(e) => return bad(format!("invalid JSON: {e}")),
            };
            match scripts {
                Ok(list) => {
                    let n = list.len();
                    for s in list {
                        shared.push_script(s);
                    }
                    ok(serde_json::json!({"queued": n, "pending": shared.pending_scripts()}))
                }
                Err(e) => bad(format!("invalid script: {e}")),
            }
        }
        (&Method::GET, "requests") => json_reply(
            200,
            serde_json::to_vec(&shared.requests()).unwrap_or_default(),
        ),
        (&Method::POST, "reset") => {
            shared.reset();
            ok(serde_json::json!({"ok": true}))
        }
        (&Method::GET, "health") => ok(serde_json::json!({"ok": true})),
        _ => json_reply(
            404,
            serde_json::to_vec(&serde_json::json!({"error": "unknown control endpoint"}))
                .unwrap_or_default(),
        ),
    }
}

async fn finish(
    shared: &Shared,
    method: &Method,
    path_only: &str,
    reply: Reply,
    request_id: &str,
) -> Response<MockBody> {
    if !reply.head_delay.is_zero() {
        tokio::time::sleep(reply.head_delay).await;
    }
    if shared.config.log {
        eprintln!("tollgate-mock: {method} {path_only} {}", reply.status);
    }
    let mut resp = Response::new(reply.body);
    *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    if reply.status == 529 {
        resp.extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(b"Overloaded"));
    }
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("request-id", v);
    }
    for (k, v) in reply.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            if k == hyper::header::CONTENT_TYPE {
                h.insert(k, v);
            } else {
                h.append(k, v);
            }
        }
    }
    for (k, v) in header_map(&reply.raw_headers) {
        if let Some(k) = k {
            h.append(k, v);
        }
    }
    resp
}
