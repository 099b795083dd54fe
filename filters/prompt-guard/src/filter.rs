//! The proxy-wasm glue: the root context compiles the policy once; each HTTP context buffers a
//! guarded request's body and turns [`Policy::evaluate`]'s verdict into a local reply, a
//! rewritten body, filter state and metrics.
//!
//! Stream handling:
//! - `on_http_request_headers`: unguarded paths pass untouched. For a guarded path, a request
//!   without a body is refused (POST) or passed (other methods); a compressed body, a non-JSON
//!   content type or a declared `content-length` over the limit are refused at once. When the
//!   policy may clamp `max_tokens`, `content-length` is removed here. The headers are held
//!   (`Pause`): nothing of a guarded request, not even its headers, reaches the upstream before
//!   the verdict. This needs Envoy's `allow_on_headers_stop_iteration: true` on the filter
//!   (Envoy ≥ 1.35), which lets body callbacks run while the headers wait.
//! - `on_http_request_body`: returns `Pause` (StopIterationAndBuffer) until end of stream; a
//!   pass then continues headers and body together; the cumulative `body_size` is checked
//!   against `max_body_bytes` on every chunk (413). At end of stream the whole body is read and
//!   evaluated with the caller's groups (`tollgate.groups`, written by jwt-auth).
//! - Trailers on a guarded request are refused (the body could not be checked first).
//!
//! Filter state for access logs: `tollgate.prompt_guard.verdict` (`pass`, `flag`, `block`,
//! `reject`), `tollgate.prompt_guard.flags` (comma-separated flag rule ids),
//! `tollgate.prompt_guard.rule` (the blocking rule id).
//!
//! Headers, bodies and properties go through `tollgate_common::host`, the byte-safe seam: header
//! values are read as bytes (a non-UTF-8 value is decoded lossily, never a trap).

use std::collections::HashMap;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MetricType};
use tollgate_common::config::plugin_configuration;
use tollgate_common::error::ErrorKind;
use tollgate_common::hold::RequestHold;
use tollgate_common::host::{self, Buffer, Map};
use tollgate_common::identity::{decode_groups, GROUPS};
use tollgate_common::reply::send_error;

use crate::config::load;
use crate::extract::Api;
use crate::http::{is_identity_encoding, is_json};
use crate::policy::{Policy, Reason, Verdict};

pub const VERDICT: &str = "tollgate.prompt_guard.verdict";
pub const FLAGS: &str = "tollgate.prompt_guard.flags";
pub const RULE: &str = "tollgate.prompt_guard.rule";

/// Counter ids, defined once per configuration.
#[derive(Default)]
struct Metrics {
    checked: Option<u32>,
    passed: Option<u32>,
    blocked: Option<u32>,
    flagged: Option<u32>,
    rejected: Option<u32>,
    clamped: Option<u32>,
    blocked_by: HashMap<String, u32>,
    flagged_by: HashMap<String, u32>,
    rejected_by: HashMap<&'static str, u32>,
}

const REASONS: [Reason; 7] = [
    Reason::TooLarge,
    Reason::Invalid,
    Reason::Model,
    Reason::Stream,
    Reason::TooManyMessages,
    Reason::MaxTokens,
    Reason::NoAllowRule,
];

fn counter(name: &str) -> Option<u32> {
    match hostcalls::define_metric(MetricType::Counter, name) {
        Ok(id) => Some(id),
        Err(status) => {
            log::warn!("prompt-guard: cannot define metric {name}: {status:?}");
            None
        }
    }
}

fn bump(id: Option<u32>) {
    if let Some(id) = id {
        if let Err(status) = hostcalls::increment_metric(id, 1) {
            log::warn!("prompt-guard: cannot increment a metric: {status:?}");
        }
    }
}

impl Metrics {
    fn define(policy: &Policy) -> Self {
        let p = "tollgate_prompt_guard";
        let mut m = Metrics {
            checked: counter(&format!("{p}_checked")),
            passed: counter(&format!("{p}_passed")),
            blocked: counter(&format!("{p}_blocked")),
            flagged: counter(&format!("{p}_flagged")),
            rejected: counter(&format!("{p}_rejected")),
            clamped: counter(&format!("{p}_clamped")),
            ..Metrics::default()
        };
        for id in policy.rule_ids() {
            if let Some(c) = counter(&format!("{p}_blocked.{id}")) {
                m.blocked_by.insert(id.to_string(), c);
            }
            if let Some(c) = counter(&format!("{p}_flagged.{id}")) {
                m.flagged_by.insert(id.to_string(), c);
            }
        }
        for r in REASONS {
            if let Some(c) = counter(&format!("{p}_rejected.{}", r.name())) {
                m.rejected_by.insert(r.name(), c);
            }
        }
        m
    }
}

/// The root context: owns the compiled policy.
#[derive(Default)]
pub struct Root {
    policy: Option<Rc<Policy>>,
    metrics: Rc<Metrics>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        plugin_configuration("prompt-guard").is_some_and(|raw| self.configure(&raw))
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(self.stream()))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

impl Root {
    /// Compiles the policy from the plugin configuration `raw` (also the bundle's entry point);
    /// false, with the reason logged, when it is invalid.
    pub fn configure(&mut self, raw: &[u8]) -> bool {
        match load(raw) {
            Ok(policy) => {
                log::info!("prompt-guard: policy loaded: {}", policy.summary());
                self.metrics = Rc::new(Metrics::define(&policy));
                self.policy = Some(Rc::new(policy));
                true
            }
            Err(err) => {
                log::error!("prompt-guard: invalid policy: {err}");
                false
            }
        }
    }

    /// The state of one new HTTP stream.
    pub fn stream(&self) -> Guard {
        Guard {
            policy: self.policy.clone(),
            metrics: Rc::clone(&self.metrics),
            api: None,
            replied: false,
        }
    }
}

/// One request's state.
pub struct Guard {
    policy: Option<Rc<Policy>>,
    metrics: Rc<Metrics>,
    /// Set while the request is guarded and its body not yet decided.
    api: Option<Api>,
    /// A local reply was sent: every later callback stops.
    replied: bool,
}

fn header(name: &str) -> Option<String> {
    match host::header(Map::RequestHeaders, name) {
        Ok(v) => v.map(|b| String::from_utf8_lossy(&b).into_owned()),
        Err(err) => {
            log::warn!("prompt-guard: cannot read header {name}: {err}");
            None
        }
    }
}

fn set_state(key: &str, value: &str) {
    if let Err(err) = host::set_property(&[key], value.as_bytes()) {
        log::warn!("prompt-guard: cannot set {key}: {err}");
    }
}

impl Guard {
    /// Refuses the request with an Anthropic-shaped error and records why.
    fn reject(&mut self, kind: ErrorKind, reason: Reason, message: &str) -> Action {
        self.replied = true;
        self.api = None;
        bump(self.metrics.checked);
        bump(self.metrics.rejected);
        bump(self.metrics.rejected_by.get(reason.name()).copied());
        set_state(VERDICT, "reject");
        log::info!("prompt-guard: rejected ({})", reason.name());
        send_error(kind, message, &[]);
        Action::Pause
    }

    fn decide(&mut self, api: Api, policy: &Policy, body_size: usize) -> Action {
        self.api = None;
        let body = match host::body(Buffer::RequestBody, 0, body_size) {
            Ok(b) => b,
            Err(err) => {
                log::error!("prompt-guard: cannot read the request body: {err}");
                return self.reject(ErrorKind::Api, Reason::Invalid, "request body unreadable");
            }
        };
        let groups = match host::property(&[GROUPS]) {
            Ok(None) => Vec::new(),
            Ok(Some(raw)) => match decode_groups(&raw) {
                Some(g) => g,
                None => {
                    log::error!("prompt-guard: {GROUPS} is not a JSON list of strings");
                    return self.reject(
                        ErrorKind::Api,
                        Reason::Invalid,
                        "caller groups unreadable",
                    );
                }
            },
            Err(err) => {
                log::error!("prompt-guard: cannot read {GROUPS}: {err}");
                return self.reject(ErrorKind::Api, Reason::Invalid, "caller groups unreadable");
            }
        };
        match policy.evaluate(api, &body, &groups) {
            Verdict::Pass {
                flags,
                body: new_body,
            } => {
                bump(self.metrics.checked);
                if let Some(new_body) = new_body {
                    if let Err(err) = host::set_body(Buffer::RequestBody, 0, body_size, &new_body) {
                        log::error!("prompt-guard: cannot rewrite the body: {err}");
                        return self.reject(
                            ErrorKind::Api,
                            Reason::MaxTokens,
                            "cannot apply the max_tokens limit",
                        );
                    }
                    bump(self.metrics.clamped);
                }
                if flags.is_empty() {
                    bump(self.metrics.passed);
                    set_state(VERDICT, "pass");
                } else {
                    bump(self.metrics.flagged);
                    for id in &flags {
                        bump(self.metrics.flagged_by.get(id).copied());
                    }
                    let list = flags.join(",");
                    log::info!("prompt-guard: flagged by {list}");
                    set_state(VERDICT, "flag");
                    set_state(FLAGS, &list);
                }
                Action::Continue
            }
            Verdict::Deny(d) if d.reason == Reason::Rule => {
                bump(self.metrics.checked);
                bump(self.metrics.blocked);
                let rule = d.rule.unwrap_or_default();
                bump(self.metrics.blocked_by.get(&rule).copied());
                log::info!("prompt-guard: blocked by rule {rule}");
                self.replied = true;
                set_state(VERDICT, "block");
                set_state(RULE, &rule);
                send_error(d.kind, &d.message, &[]);
                Action::Pause
            }
            Verdict::Deny(d) => self.reject(d.kind, d.reason, &d.message),
        }
    }
}

impl Context for Guard {}

impl RequestHold for Guard {
    fn holds_request_headers(&self) -> bool {
        self.api.is_some() && !self.replied
    }
}

impl HttpContext for Guard {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(policy) = self.policy.clone() else {
            log::error!("prompt-guard: no policy configured");
            return self.reject(
                ErrorKind::Api,
                Reason::Invalid,
                "prompt-guard is not configured",
            );
        };
        let path = header(":path").unwrap_or_default();
        let Some(api) = policy.route(&path) else {
            return Action::Continue;
        };
        if end_of_stream {
            let method = header(":method").unwrap_or_default();
            if method.eq_ignore_ascii_case("POST") {
                return self.reject(
                    ErrorKind::InvalidRequest,
                    Reason::Invalid,
                    "request body is empty",
                );
            }
            return Action::Continue;
        }
        if !is_identity_encoding(header("content-encoding").as_deref()) {
            return self.reject(
                ErrorKind::InvalidRequest,
                Reason::Invalid,
                "compressed request bodies are not accepted",
            );
        }
        if !header("content-type").as_deref().is_some_and(is_json) {
            return self.reject(
                ErrorKind::InvalidRequest,
                Reason::Invalid,
                "content-type must be application/json",
            );
        }
        if let Some(len) = header("content-length") {
            match len.trim().parse::<u64>() {
                Ok(n) if n > policy.max_body_bytes() => {
                    return self.reject(
                        ErrorKind::RequestTooLarge,
                        Reason::TooLarge,
                        &format!("request body exceeds {} bytes", policy.max_body_bytes()),
                    )
                }
                Ok(_) => {}
                Err(_) => {
                    return self.reject(
                        ErrorKind::InvalidRequest,
                        Reason::Invalid,
                        "invalid content-length",
                    )
                }
            }
        }
        if policy.may_rewrite() {
            if let Err(err) = host::remove_header(Map::RequestHeaders, "content-length") {
                log::error!("prompt-guard: cannot remove content-length: {err}");
                return self.reject(
                    ErrorKind::Api,
                    Reason::Invalid,
                    "cannot prepare the request",
                );
            }
        }
        self.api = Some(api);
        // Hold the headers too: a refused prompt must not open an upstream request.
        Action::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.replied {
            return Action::Pause;
        }
        let (Some(api), Some(policy)) = (self.api, self.policy.clone()) else {
            return Action::Continue;
        };
        if body_size as u64 > policy.max_body_bytes() {
            return self.reject(
                ErrorKind::RequestTooLarge,
                Reason::TooLarge,
                &format!("request body exceeds {} bytes", policy.max_body_bytes()),
            );
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.decide(api, &policy, body_size)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.replied {
            return Action::Pause;
        }
        if self.api.is_some() {
            return self.reject(
                ErrorKind::InvalidRequest,
                Reason::Invalid,
                "request trailers are not accepted on guarded paths",
            );
        }
        Action::Continue
    }
}
