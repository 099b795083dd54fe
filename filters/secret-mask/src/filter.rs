//! The proxy-wasm glue: root context (policy, metrics) and HTTP context (per stream).
//!
//! Request path: `accept-encoding: identity` toward the upstream, so the response is readable;
//! with `request.enabled` (and the caller in `request.groups`, if given), the request body is
//! buffered (bounded) and every string of it masked before it leaves.
//! Response path, decided at the response headers:
//! - a `content-encoding` other than identity → fail closed: a local 500 `api_error`;
//! - `text/event-stream` → each body chunk is rewritten in place by the [`SseRewriter`]; text
//!   that could still become a secret is held in the rewriter, never by pausing the stream;
//! - anything else with a body → buffered (Pause until the end, bounded by `max_body_bytes`)
//!   and masked as a whole.
//!
//! A request whose body is masked holds its headers (`Pause`) until the body is masked, so a
//! refusal (413) never opens an upstream request; this needs Envoy's
//! `allow_on_headers_stop_iteration: true` on the filter.
//!
//! Headers, bodies and properties go through `tollgate_common::host`, the byte-safe seam: a
//! header value that is not UTF-8 is decoded lossily (an unknown `content-encoding` fails
//! closed), and a body that cannot be read fails closed rather than passing unmasked.
//!
//! `content-length` is removed from every response whose body may be rewritten. Once headers
//! are gone a failure can no longer become a local reply: an SSE stream then ends with an SSE
//! `error` event and nothing else; a buffered body is replaced by an error JSON body.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MetricType};
use tollgate_common::config::plugin_configuration;
use tollgate_common::error::{error_body, ErrorKind};
use tollgate_common::hold::RequestHold;
use tollgate_common::host::{self, Buffer, HostError, Map};
use tollgate_common::identity::{decode_groups, GROUPS};
use tollgate_common::reply::send_error;

use crate::config::{load, request_masking_applies, Compiled};
use crate::rewrite::{mask_body, SseRewriter};

/// Metric ids (absent when the host refused to define one).
#[derive(Debug, Default)]
pub struct Metrics {
    masked_by_rule: Vec<Option<u32>>,
    masked_total: Option<u32>,
    streams: Option<u32>,
    bodies: Option<u32>,
    fail_closed: Option<u32>,
    held_back: Option<u32>,
    request_masked: Option<u32>,
}

fn define(kind: MetricType, name: &str) -> Option<u32> {
    match hostcalls::define_metric(kind, name) {
        Ok(id) => Some(id),
        Err(status) => {
            log::warn!("secret-mask: cannot define metric {name}: {status:?}");
            None
        }
    }
}

impl Metrics {
    fn define(rule_ids: &[String]) -> Metrics {
        Metrics {
            masked_by_rule: rule_ids
                .iter()
                .map(|id| {
                    define(
                        MetricType::Counter,
                        &format!("tollgate_secret_mask_masked_{id}"),
                    )
                })
                .collect(),
            masked_total: define(MetricType::Counter, "tollgate_secret_mask_masked"),
            streams: define(MetricType::Counter, "tollgate_secret_mask_streams"),
            bodies: define(MetricType::Counter, "tollgate_secret_mask_bodies"),
            fail_closed: define(MetricType::Counter, "tollgate_secret_mask_fail_closed"),
            held_back: define(
                MetricType::Histogram,
                "tollgate_secret_mask_held_back_bytes",
            ),
            request_masked: define(MetricType::Counter, "tollgate_secret_mask_request_masked"),
        }
    }

    fn inc(id: Option<u32>, by: u64) {
        if let (Some(id), Ok(by)) = (id, i64::try_from(by)) {
            if by > 0 {
                let _ = hostcalls::increment_metric(id, by);
            }
        }
    }

    fn masked(&self, counts: &[u64]) {
        let mut total = 0;
        for (i, &n) in counts.iter().enumerate() {
            if n > 0 {
                Self::inc(self.masked_by_rule.get(i).copied().flatten(), n);
                total += n;
            }
        }
        Self::inc(self.masked_total, total);
    }

    fn held_back(&self, bytes: usize) {
        if let Some(id) = self.held_back {
            let _ = hostcalls::record_metric(id, bytes as u64);
        }
    }
}

#[derive(Default)]
pub struct Root {
    config: Option<Rc<Compiled>>,
    metrics: Rc<Metrics>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        plugin_configuration("secret-mask").is_some_and(|raw| self.configure(&raw))
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(self.stream()))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

impl Root {
    /// Compiles the rules from the plugin configuration `raw` (also the bundle's entry point);
    /// false, with the reason logged, when it is invalid.
    pub fn configure(&mut self, raw: &[u8]) -> bool {
        match load(raw, &|name| std::env::var(name).ok()) {
            Ok(compiled) => {
                self.metrics = Rc::new(Metrics::define(&compiled.rule_ids()));
                log::info!(
                    "secret-mask: configured with {} rules (longest window {} bytes)",
                    compiled.rules.rules().len(),
                    compiled.rules.max_window()
                );
                self.config = Some(Rc::new(compiled));
                true
            }
            Err(err) => {
                log::error!("secret-mask: invalid configuration: {err}");
                false
            }
        }
    }

    /// The state of one new HTTP stream.
    pub fn stream(&self) -> SecretMask {
        SecretMask {
            config: self.config.clone(),
            metrics: Rc::clone(&self.metrics),
            mode: Mode::Undecided,
            masked: 0,
            mask_request: false,
        }
    }
}

enum Mode {
    Undecided,
    /// No body expected, or nothing to do.
    Pass,
    Sse(Box<SseRewriter>),
    Buffer,
    /// Failed closed after the headers went out: swallow the rest.
    Failed,
}

pub struct SecretMask {
    config: Option<Rc<Compiled>>,
    metrics: Rc<Metrics>,
    mode: Mode,
    /// Secrets masked in this response so far.
    masked: u64,
    /// The request body is buffered and masked.
    mask_request: bool,
}

/// Filter state written at the end of a rewritten response: the number of secrets masked, or
/// `fail_closed` (readable in access logs as `%FILTER_STATE(wasm.tollgate.secret_mask.masked:PLAIN)%`).
pub const MASKED_PROPERTY: &str = "tollgate.secret_mask.masked";

impl SecretMask {
    fn record_masked(&mut self, counts: &[u64]) {
        self.metrics.masked(counts);
        self.masked += counts.iter().sum::<u64>();
    }

    fn publish(&self, value: &str) {
        if let Err(err) = host::set_property(&[MASKED_PROPERTY], value.as_bytes()) {
            log::debug!("secret-mask: cannot set {MASKED_PROPERTY}: {err}");
        }
    }

    fn fail_closed_reply(&mut self, message: &str) -> Action {
        self.publish("fail_closed");
        Metrics::inc(self.metrics.fail_closed, 1);
        log::warn!("secret-mask: failing closed: {message}");
        send_error(ErrorKind::Api, message, &[]);
        self.mode = Mode::Failed;
        Action::Pause
    }

    /// Masks a whole buffered response body in place.
    fn mask_buffered(&mut self, body: &[u8]) {
        let Some(rules) = self.config.as_ref().map(|c| Rc::clone(&c.rules)) else {
            return;
        };
        let mut stats = crate::matcher::Stats::default();
        if let Some(masked) = mask_body(&rules, body, &mut stats) {
            set_response_body(body.len(), &masked);
        }
        self.record_masked(&stats.take());
        self.publish(&self.masked.to_string());
    }

    /// Replaces the response body with an error once headers are gone (SSE: an `error` event;
    /// otherwise an error JSON body) and drops whatever else the upstream sends.
    fn fail_body(&mut self, size: usize, sse: bool, message: &str) -> Action {
        Metrics::inc(self.metrics.fail_closed, 1);
        self.publish("fail_closed");
        log::warn!("secret-mask: failing the response closed: {message}");
        let body = error_body(ErrorKind::Api, message);
        if sse {
            let mut event = Vec::new();
            crate::sse::write_event(Some("error"), None, None, &body, &mut event);
            set_response_body(size, &event);
        } else {
            set_response_body(size, &body);
        }
        self.mode = Mode::Failed;
        Action::Continue
    }
}

/// A response header as text (lossy: a non-UTF-8 value cannot equal the values we accept).
fn response_header(name: &str) -> Option<String> {
    match host::header(Map::ResponseHeaders, name) {
        Ok(v) => v.map(|b| String::from_utf8_lossy(&b).into_owned()),
        Err(err) => {
            log::warn!("secret-mask: cannot read response header {name}: {err}");
            None
        }
    }
}

fn set_request_header(name: &str, value: &[u8]) -> Result<(), HostError> {
    host::set_header(Map::RequestHeaders, name, value)
}

fn remove_header(map: Map, name: &str) -> Result<(), HostError> {
    host::remove_header(map, name)
}

impl Context for SecretMask {}

impl RequestHold for SecretMask {
    fn holds_request_headers(&self) -> bool {
        self.mask_request
    }
}

impl HttpContext for SecretMask {
    fn on_http_request_headers(&mut self, _n: usize, eos: bool) -> Action {
        let Some(cfg) = self.config.clone() else {
            send_error(ErrorKind::Api, "secret-mask is not configured", &[]);
            return Action::Pause;
        };
        if cfg.force_identity_encoding {
            if let Err(err) = set_request_header("accept-encoding", b"identity") {
                log::warn!("secret-mask: cannot set accept-encoding: {err}");
            }
        }
        if !eos && cfg.request.enabled {
            let groups = host::property(&[GROUPS])
                .ok()
                .flatten()
                .and_then(|raw| decode_groups(&raw));
            if request_masking_applies(&cfg.request, groups.as_deref()) {
                self.mask_request = true;
                if let Err(err) = remove_header(Map::RequestHeaders, "content-length") {
                    log::warn!("secret-mask: cannot remove content-length: {err}");
                    send_error(ErrorKind::Api, "cannot prepare the request", &[]);
                    return Action::Pause;
                }
                // Held until the body is masked: a refused body never opens an upstream request.
                return Action::Pause;
            }
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, size: usize, eos: bool) -> Action {
        if !self.mask_request {
            return Action::Continue;
        }
        let Some(cfg) = self.config.clone() else {
            return Action::Continue;
        };
        if size > cfg.max_body_bytes {
            Metrics::inc(self.metrics.fail_closed, 1);
            send_error(
                ErrorKind::RequestTooLarge,
                "the request body is too large to be inspected for secrets",
                &[],
            );
            self.mask_request = false;
            return Action::Pause;
        }
        if !eos {
            return Action::Pause;
        }
        let body = match host::body(Buffer::RequestBody, 0, size) {
            Ok(body) => body,
            Err(err) => {
                log::error!("secret-mask: cannot read the request body: {err}");
                send_error(ErrorKind::Api, "the request body is unreadable", &[]);
                self.mask_request = false;
                return Action::Pause;
            }
        };
        let mut stats = crate::matcher::Stats::default();
        if let Some(masked) = mask_body(&cfg.rules, &body, &mut stats) {
            if let Err(err) = host::set_body(Buffer::RequestBody, 0, size, &masked) {
                log::error!("secret-mask: cannot rewrite the request body: {err}");
                send_error(ErrorKind::Api, "cannot mask the request body", &[]);
                self.mask_request = false;
                return Action::Pause;
            }
        }
        Metrics::inc(self.metrics.request_masked, stats.total());
        Action::Continue
    }

    fn on_http_request_trailers(&mut self, _n: usize) -> Action {
        if self.mask_request {
            // The buffered body would pass unmasked with the trailers: refuse instead.
            self.mask_request = false;
            send_error(
                ErrorKind::InvalidRequest,
                "request trailers are not accepted when request bodies are masked",
                &[],
            );
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, eos: bool) -> Action {
        let Some(cfg) = self.config.clone() else {
            return self.fail_closed_reply("secret-mask is not configured");
        };
        if let Some(enc) = response_header("content-encoding") {
            let enc = enc.trim().to_ascii_lowercase();
            if !enc.is_empty() && enc != "identity" {
                return self.fail_closed_reply(
                    "the upstream response is compressed and cannot be inspected for secrets",
                );
            }
        }
        if eos {
            self.mode = Mode::Pass;
            return Action::Continue;
        }
        let content_type = response_header("content-type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        if content_type.trim_start().starts_with("text/event-stream") {
            Metrics::inc(self.metrics.streams, 1);
            self.mode = Mode::Sse(Box::new(SseRewriter::new(
                Rc::clone(&cfg.rules),
                cfg.max_event_bytes,
            )));
        } else {
            let declared =
                response_header("content-length").and_then(|v| v.trim().parse::<usize>().ok());
            if declared.is_some_and(|n| n > cfg.max_body_bytes) {
                return self.fail_closed_reply(
                    "the upstream response is too large to be inspected for secrets",
                );
            }
            Metrics::inc(self.metrics.bodies, 1);
            self.mode = Mode::Buffer;
        }
        if let Err(err) = remove_header(Map::ResponseHeaders, "content-length") {
            return self.fail_closed_reply(&format!("cannot prepare the response: {err}"));
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _n: usize) -> Action {
        match &mut self.mode {
            // The body ends with trailers: the buffered body is masked now, or it would pass
            // unmasked with them.
            Mode::Buffer => {
                let body = match host::body(Buffer::ResponseBody, 0, usize::MAX) {
                    Ok(body) => body,
                    Err(err) => {
                        let message = format!("secret-mask: {err}");
                        return self.fail_body(usize::MAX, false, &message);
                    }
                };
                self.mask_buffered(&body);
                Action::Continue
            }
            // Text held back as a possible secret prefix cannot be appended once trailers
            // arrive: it is dropped (never released unmasked).
            Mode::Sse(rw) => {
                let mut out = Vec::new();
                rw.finish(&mut out);
                if !out.is_empty() {
                    log::warn!(
                        "secret-mask: {} bytes held at the end of a stream with trailers were dropped",
                        out.len()
                    );
                }
                let counts = rw.stats_mut().take();
                self.record_masked(&counts);
                self.publish(&self.masked.to_string());
                Action::Continue
            }
            Mode::Undecided | Mode::Pass | Mode::Failed => Action::Continue,
        }
    }

    fn on_http_response_body(&mut self, size: usize, eos: bool) -> Action {
        let max_body = self.config.as_ref().map_or(0, |c| c.max_body_bytes);
        match &mut self.mode {
            Mode::Undecided | Mode::Pass => Action::Continue,
            Mode::Failed => {
                if size > 0 {
                    set_response_body(size, &[]);
                }
                Action::Continue
            }
            Mode::Sse(rw) => {
                let chunk = match host::body(Buffer::ResponseBody, 0, size) {
                    Ok(chunk) => chunk,
                    Err(err) => {
                        return self.fail_body(size, true, &format!("secret-mask: {err}"));
                    }
                };
                let mut out = Vec::with_capacity(chunk.len() + 64);
                let fed = rw.feed(&chunk, &mut out);
                if let Err(err) = fed {
                    return self.fail_body(size, true, &format!("secret-mask: {err}"));
                }
                if eos {
                    rw.finish(&mut out);
                }
                let counts = rw.stats_mut().take();
                let held = rw.held_back_text();
                self.metrics.held_back(held);
                self.record_masked(&counts);
                if out.as_slice() != chunk.as_slice() {
                    set_response_body(size, &out);
                }
                if eos {
                    self.publish(&self.masked.to_string());
                }
                Action::Continue
            }
            Mode::Buffer => {
                if !eos {
                    if size > max_body {
                        return self.fail_body(
                            size,
                            false,
                            "the upstream response is too large to be inspected for secrets",
                        );
                    }
                    return Action::Pause;
                }
                let body = match host::body(Buffer::ResponseBody, 0, size) {
                    Ok(body) => body,
                    Err(err) => return self.fail_body(size, false, &format!("secret-mask: {err}")),
                };
                self.mask_buffered(&body);
                Action::Continue
            }
        }
    }
}

/// Replaces the current response body chunk (a host error is logged: nothing more to do).
fn set_response_body(size: usize, bytes: &[u8]) {
    if let Err(err) = host::set_body(Buffer::ResponseBody, 0, size, bytes) {
        log::error!("secret-mask: cannot replace the response body: {err}");
    }
}

// The entry point of the standalone filter; off when linked into the one-module bundle.
#[cfg(all(target_arch = "wasm32", feature = "plugin"))]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::<Root>::default() });
}}
