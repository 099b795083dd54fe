//! `tollgate-probe`: a test fixture filter that exercises every hostcall the harness provides.
//!
//! The client drives it with `x-probe` request headers: `;`-separated commands, each `name` or
//! `name:argument` (see [`Command`]). The probe reports what it saw through outcomes a test can
//! read: request headers the upstream receives (`x-probe-*`), response headers, filter state,
//! metrics, shared data and logs. The plugin configuration (JSON) sets root behaviour:
//! `{"tick_ms": N, "fail_configure": true, "queue": "name", "cluster": "name"}`; the VM
//! configuration `fail` makes `on_vm_start` refuse.
//!
//! It panics and loops on purpose when told to: it is a fixture, not a filter to ship.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The probe calls the SDK's own (panicking) hostcall helpers on purpose: the harness must
// reproduce what they do, traps included. Shipped filters go through `tollgate_common::host`.
#![allow(clippy::disallowed_methods)]
// The contexts are only constructed by the wasm entry point.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType, Status};

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(ProbeRoot { context_id, ..ProbeRoot::default() })
    });
}}

/// Parses `name:arg; name2` into commands.
pub fn parse_commands(raw: &str) -> Vec<Command> {
    raw.split(';')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| match c.split_once(':') {
            Some((name, arg)) => Command {
                name: name.trim().to_string(),
                arg: arg.trim().to_string(),
            },
            None => Command {
                name: c.to_string(),
                arg: String::new(),
            },
        })
        .collect()
}

/// One probe command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub name: String,
    pub arg: String,
}

impl Command {
    /// Splits `k=v` arguments.
    fn kv(&self) -> (&str, &str) {
        self.arg.split_once('=').unwrap_or((self.arg.as_str(), ""))
    }
}

#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct ProbeConfig {
    tick_ms: u64,
    fail_configure: bool,
    queue: Option<String>,
    cluster: Option<String>,
}

#[derive(Default)]
struct ProbeRoot {
    context_id: u32,
    config: Rc<ProbeConfig>,
    queue_id: Option<u32>,
    /// HTTP contexts waiting for the next tick to resume.
    waiting: Rc<RefCell<Vec<u32>>>,
    ticks: u32,
}

impl Context for ProbeRoot {
    fn on_http_call_response(
        &mut self,
        _token: u32,
        _headers: usize,
        body: usize,
        _trailers: usize,
    ) {
        let status = self
            .get_http_call_response_header(":status")
            .unwrap_or_default();
        self.set_shared_data(
            "root_callout",
            Some(format!("{status}:{body}").as_bytes()),
            None,
        )
        .unwrap();
    }
}

impl RootContext for ProbeRoot {
    fn on_vm_start(&mut self, _size: usize) -> bool {
        let config = self.get_vm_configuration().unwrap_or_default();
        config != b"fail"
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        let raw = self.get_plugin_configuration().unwrap_or_default();
        let config: ProbeConfig = if raw.is_empty() {
            ProbeConfig::default()
        } else {
            match serde_json::from_slice(&raw) {
                Ok(c) => c,
                Err(e) => {
                    log::error!("probe: bad configuration: {e}");
                    return false;
                }
            }
        };
        if config.fail_configure {
            log::error!("probe: told to refuse its configuration");
            return false;
        }
        if config.tick_ms > 0 {
            self.set_tick_period(Duration::from_millis(config.tick_ms));
        }
        if let Some(queue) = &config.queue {
            self.queue_id = Some(hostcalls::register_shared_queue(queue).unwrap());
        }
        if let Some(cluster) = &config.cluster {
            // A callout from the root context at configure time (JWKS-style prefetch).
            let _ = self.dispatch_http_call(
                cluster,
                vec![
                    (":method", "GET"),
                    (":path", "/root"),
                    (":authority", "idp"),
                ],
                None,
                vec![],
                Duration::from_secs(5),
            );
        }
        self.config = Rc::new(config);
        true
    }

    fn on_tick(&mut self) {
        self.ticks += 1;
        let id = hostcalls::define_metric(MetricType::Counter, "probe_ticks").unwrap();
        hostcalls::increment_metric(id, 1).unwrap();
        for ctx in self.waiting.borrow_mut().drain(..) {
            hostcalls::set_effective_context(ctx).unwrap();
            hostcalls::resume_http_request().unwrap();
        }
        let _ = self.context_id;
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        while let Ok(Some(item)) = hostcalls::dequeue_shared_queue(queue_id) {
            let id = hostcalls::define_metric(MetricType::Counter, "probe_queue_items").unwrap();
            hostcalls::increment_metric(id, 1).unwrap();
            self.set_shared_data("queue_last", Some(&item), None)
                .unwrap();
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(ProbeHttp {
            context_id,
            commands: Vec::new(),
            waiting: self.waiting.clone(),
            body_sizes: Vec::new(),
            body_calls: Vec::new(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct ProbeHttp {
    context_id: u32,
    commands: Vec<Command>,
    waiting: Rc<RefCell<Vec<u32>>>,
    body_sizes: Vec<usize>,
    /// `size/end` of every request body callback.
    body_calls: Vec<String>,
}

impl ProbeHttp {
    fn has(&self, name: &str) -> bool {
        self.commands.iter().any(|c| c.name == name)
    }

    fn arg(&self, name: &str) -> Option<String> {
        self.commands
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.arg.clone())
    }

    fn panic_in(&self, phase: &str) {
        if self.arg("panic").as_deref() == Some(phase) {
            panic!("probe: told to panic in {phase}");
        }
    }

    fn counter(name: &str, by: i64) {
        let id = hostcalls::define_metric(MetricType::Counter, name).unwrap();
        hostcalls::increment_metric(id, by).unwrap();
    }

    /// Commands that act at request headers and report through request headers.
    fn run_request_commands(&mut self) -> Action {
        let mut action = Action::Continue;
        for command in self.commands.clone() {
            let (k, v) = command.kv();
            match command.name.as_str() {
                "add" => self.add_http_request_header(k, v),
                "replace" => self.set_http_request_header(k, Some(v)),
                "remove" => self.set_http_request_header(k, None),
                "set-pairs" => self.set_http_request_headers(vec![
                    (":method", "POST"),
                    (":path", "/replaced"),
                    (":authority", "x"),
                    (k, v),
                ]),
                "echo-headers" => {
                    let names: Vec<String> = self
                        .get_http_request_headers()
                        .into_iter()
                        .map(|(k, _)| k)
                        .collect();
                    self.add_http_request_header("x-probe-names", &names.join(","));
                }
                "get" => {
                    let value = match self.get_http_request_header(k) {
                        Some(v) => format!("some:{v}"),
                        None => "none".to_string(),
                    };
                    self.add_http_request_header(&format!("x-probe-get-{k}"), &value);
                }
                "set-property" => self.set_property(vec![k], Some(v.as_bytes())),
                "get-property" => {
                    let path: Vec<&str> = command.arg.split('/').collect();
                    let value = match self.get_property(path) {
                        Some(v) if v.len() == 8 && command.arg == "response/code" => {
                            i64::from_le_bytes(v.try_into().unwrap()).to_string()
                        }
                        Some(v) => String::from_utf8_lossy(&v).into_owned(),
                        None => "none".to_string(),
                    };
                    let name = command.arg.replace(['/', '.'], "-");
                    self.add_http_request_header(&format!("x-probe-prop-{name}"), &value);
                }
                "shared-set" => self.set_shared_data(k, Some(v.as_bytes()), None).unwrap(),
                "shared-cas" => {
                    let (value, cas) = v.split_once('@').unwrap();
                    let result =
                        self.set_shared_data(k, Some(value.as_bytes()), Some(cas.parse().unwrap()));
                    let text = match result {
                        Ok(()) => "ok",
                        Err(Status::CasMismatch) => "mismatch",
                        Err(_) => "error",
                    };
                    self.add_http_request_header(&format!("x-probe-cas-{k}"), text);
                }
                "shared-get" => {
                    let text = match self.get_shared_data(k) {
                        (Some(v), Some(cas)) => format!("{}@{cas}", String::from_utf8_lossy(&v)),
                        _ => "none".to_string(),
                    };
                    self.add_http_request_header(&format!("x-probe-shared-{k}"), &text);
                }
                "enqueue" => {
                    let result = match hostcalls::resolve_shared_queue(k, "probe") {
                        Ok(Some(id)) => {
                            match hostcalls::enqueue_shared_queue(id, Some(v.as_bytes())) {
                                Ok(()) => "ok",
                                Err(_) => "error",
                            }
                        }
                        _ => "unresolved",
                    };
                    self.add_http_request_header("x-probe-enqueue", result);
                }
                "dequeue-missing" => {
                    let text = match hostcalls::dequeue_shared_queue(9999) {
                        Err(Status::NotFound) => "not-found",
                        _ => "other",
                    };
                    self.add_http_request_header("x-probe-dequeue", text);
                }
                "count" => Self::counter(&command.arg, 1),
                "gauge" => {
                    let id = hostcalls::define_metric(MetricType::Gauge, k).unwrap();
                    hostcalls::record_metric(id, v.parse().unwrap()).unwrap();
                    hostcalls::increment_metric(id, -1).unwrap();
                    let now = hostcalls::get_metric(id).unwrap();
                    self.add_http_request_header("x-probe-gauge", &now.to_string());
                }
                "histogram" => {
                    let id = hostcalls::define_metric(MetricType::Histogram, k).unwrap();
                    hostcalls::record_metric(id, v.parse().unwrap()).unwrap();
                    let text = match hostcalls::increment_metric(id, 1) {
                        Err(Status::BadArgument) => "bad-argument",
                        _ => "other",
                    };
                    self.add_http_request_header("x-probe-histogram-increment", text);
                }
                "counter-decrement" => {
                    let id = hostcalls::define_metric(MetricType::Counter, k).unwrap();
                    let text = match hostcalls::increment_metric(id, -1) {
                        Err(Status::BadArgument) => "bad-argument",
                        _ => "other",
                    };
                    self.add_http_request_header("x-probe-counter-decrement", text);
                }
                "log" => {
                    let level = match k {
                        "trace" => LogLevel::Trace,
                        "debug" => LogLevel::Debug,
                        "info" => LogLevel::Info,
                        "warn" => LogLevel::Warn,
                        "error" => LogLevel::Error,
                        _ => LogLevel::Critical,
                    };
                    hostcalls::log(level, v).unwrap();
                }
                "print" => println!("{}", command.arg),
                "time" => {
                    let now = self.get_current_time().duration_since(UNIX_EPOCH).unwrap();
                    let wasi_now = std::time::SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap();
                    self.add_http_request_header("x-probe-time", &now.as_secs().to_string());
                    self.add_http_request_header(
                        "x-probe-wasi-time",
                        &wasi_now.as_secs().to_string(),
                    );
                }
                "env" => {
                    let value = std::env::var(&command.arg).unwrap_or_else(|_| "unset".to_string());
                    self.add_http_request_header(
                        &format!("x-probe-env-{}", command.arg.to_ascii_lowercase()),
                        &value,
                    );
                }
                "random" => {
                    // std's HashMap seeds itself through WASI random_get.
                    let seeded = std::collections::hash_map::RandomState::new();
                    let _ = std::hint::black_box(seeded);
                    self.add_http_request_header("x-probe-random", "ok");
                }
                "callout" => {
                    let result = self.dispatch_http_call(
                        k,
                        vec![
                            (":method", "GET"),
                            (":path", "/keys"),
                            (":authority", "idp"),
                        ],
                        Some(b"ping"),
                        vec![],
                        Duration::from_millis(v.parse().unwrap_or(1000)),
                    );
                    match result {
                        Ok(_) => action = Action::Pause,
                        Err(Status::BadArgument) => {
                            self.add_http_request_header("x-probe-callout", "bad-argument")
                        }
                        Err(_) => self.add_http_request_header("x-probe-callout", "error"),
                    }
                }
                "callout-no-path" => {
                    let text = match self.dispatch_http_call(
                        k,
                        vec![(":method", "GET"), (":authority", "idp")],
                        None,
                        vec![],
                        Duration::from_secs(1),
                    ) {
                        Err(Status::BadArgument) => "bad-argument",
                        _ => "other",
                    };
                    self.add_http_request_header("x-probe-callout", text);
                }
                "pause" => action = Action::Pause,
                "resume-on-tick" => {
                    self.waiting.borrow_mut().push(self.context_id);
                    action = Action::Pause;
                }
                "reply" => {
                    self.send_http_response(
                        k.parse().unwrap(),
                        vec![
                            ("x-probe-reply", "yes"),
                            ("content-type", "application/json"),
                        ],
                        Some(v.as_bytes()),
                    );
                    return Action::Pause;
                }
                "reply-plain" => {
                    self.send_http_response(k.parse().unwrap(), vec![], Some(v.as_bytes()));
                    return Action::Pause;
                }
                "close" => {
                    hostcalls::reset_http_request().unwrap();
                    return Action::Pause;
                }
                "loop" => {
                    let mut n: u64 = 0;
                    loop {
                        n = std::hint::black_box(n.wrapping_add(1));
                    }
                }
                "alloc-mb" => {
                    let mb: usize = command.arg.parse().unwrap();
                    let big = vec![7u8; mb << 20];
                    self.add_http_request_header("x-probe-alloc", &big.len().to_string());
                }
                _ => {}
            }
        }
        action
    }
}

impl Context for ProbeHttp {
    fn on_http_call_response(
        &mut self,
        _token: u32,
        headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        if headers == 0 {
            if self.has("reply-on-callout-failure") {
                self.send_http_response(503, vec![("x-probe-reply", "callout-failed")], None);
                return;
            }
            self.add_http_request_header("x-probe-callout", "failed");
        } else {
            let status = self
                .get_http_call_response_header(":status")
                .unwrap_or_default();
            let body = self
                .get_http_call_response_body(0, body_size)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            self.add_http_request_header("x-probe-callout", &format!("{status}:{body}"));
        }
        self.resume_http_request();
    }
}

impl HttpContext for ProbeHttp {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        self.commands = self
            .get_http_request_header("x-probe")
            .map(|raw| parse_commands(&raw))
            .unwrap_or_default();
        self.panic_in("request-headers");
        Self::counter("probe_requests", 1);
        self.run_request_commands()
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.panic_in("request-body");
        self.body_sizes.push(body_size);
        self.body_calls
            .push(format!("{body_size}/{}", u8::from(end_of_stream)));
        let sizes: Vec<String> = self.body_sizes.iter().map(ToString::to_string).collect();
        self.set_property(
            vec!["probe.request_body_sizes"],
            Some(sizes.join(",").as_bytes()),
        );
        if self.has("buffer-request") && !end_of_stream {
            return Action::Pause;
        }
        if self.has("upper-request") {
            if let Some(body) = self.get_http_request_body(0, body_size) {
                self.set_http_request_body(0, body_size, &body.to_ascii_uppercase());
            }
        }
        if self.has("append-request") {
            self.set_http_request_body(body_size, 0, b"+appended");
        }
        if self.has("bad-offset-request") {
            // Envoy only replaces from 0 or appends: a write in the middle is refused, and the
            // SDK panics on that status, which fails the stream.
            self.set_http_request_body(1, 1, b"x");
        }
        if let Some(status) = self.arg("reply-on-body") {
            if end_of_stream {
                self.send_http_response(status.parse().unwrap(), vec![], Some(b"blocked at body"));
                return Action::Pause;
            }
        }
        Action::Continue
    }

    fn on_http_request_trailers(&mut self, trailers: usize) -> Action {
        self.set_property(
            vec!["probe.request_trailers"],
            Some(trailers.to_string().as_bytes()),
        );
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        self.panic_in("response-headers");
        let status = self.get_http_response_header(":status").unwrap_or_default();
        self.set_property(vec!["probe.seen_status"], Some(status.as_bytes()));
        for command in self.commands.clone() {
            let (k, v) = command.kv();
            match command.name.as_str() {
                "resp-add" => self.add_http_response_header(k, v),
                "resp-replace" => self.set_http_response_header(k, Some(v)),
                "resp-remove" => self.set_http_response_header(k, None),
                _ => {}
            }
        }
        if self.has("upper-response") || self.has("buffer-response") || self.has("mark-response") {
            self.set_http_response_header("content-length", None);
        }
        if self.has("report") {
            let total = self.body_sizes.last().copied().unwrap_or(0);
            self.add_http_response_header("x-probe-body-total", &total.to_string());
            self.add_http_response_header("x-probe-body-calls", &self.body_calls.join(","));
        }
        if let Some(status) = self.arg("reply-on-response") {
            self.send_http_response(status.parse().unwrap(), vec![], Some(b"replaced"));
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.panic_in("response-body");
        if self.has("mark-response") {
            let marker = format!("[{body_size}/{}]", u8::from(end_of_stream));
            self.set_http_response_body(body_size, 0, marker.as_bytes());
        }
        if self.has("buffer-response") && !end_of_stream {
            return Action::Pause;
        }
        if self.has("upper-response") || self.has("buffer-response") {
            if let Some(body) = self.get_http_response_body(0, body_size) {
                self.set_http_response_body(0, body_size, &body.to_ascii_uppercase());
            }
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, trailers: usize) -> Action {
        self.set_property(
            vec!["probe.response_trailers"],
            Some(trailers.to_string().as_bytes()),
        );
        Action::Continue
    }

    fn on_log(&mut self) {
        Self::counter("probe_streams_logged", 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        let c = parse_commands("add:x=1; pause ;callout:idp=500");
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].kv(), ("x", "1"));
        assert_eq!(c[1].name, "pause");
        assert_eq!(c[2].kv(), ("idp", "500"));
    }
}
