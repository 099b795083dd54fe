//! The proxy-wasm glue: one root context holding the configured policies' roots, one HTTP
//! context per stream holding their stream states, called in the order Envoy would call the
//! standalone filters.
//!
//! - Request events go to jwt-auth, prompt-guard, key-inject, secret-mask in that order;
//!   response events in the reverse order. The first stage that does not continue ends the
//!   event: it answered locally (every stage answers with `Pause`), buffers the body, or holds
//!   the request headers until it has judged the body ([`RequestHold`]). When a holder
//!   continues on the body, the stages after it see the request headers, then the body — as
//!   Envoy hands a held request to the next filters — so nothing goes upstream before every
//!   stage that can refuse it has decided.
//! - jwt-auth may pause the request headers while signing keys are fetched; body and trailers
//!   wait with them. When jwt-auth allows the stream (its [`Resume`] hook), the later stages'
//!   request headers run (and the body held meanwhile, if a stage holds for it), and the
//!   stream is resumed only if every stage continued.
//! - The policies share the stream's filter state (`tollgate.subject`, `tollgate.groups`, …)
//!   exactly as the standalone filters do, so access logs and metrics are unchanged.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use tollgate_common::config::plugin_configuration;
use tollgate_common::error::ErrorKind;
use tollgate_common::hold::RequestHold;
use tollgate_common::host;
use tollgate_common::reply::send_error;
use tollgate_jwt_auth::filter::{JwtAuthHttp, JwtAuthRoot, Resume};
use tollgate_key_inject::filter::KeyInjectRoot;
use tollgate_prompt_guard::filter::Root as PromptGuardRoot;
use tollgate_secret_mask::filter::Root as SecretMaskRoot;

use crate::config::Sections;

/// A policy's stream state as the bundle drives it.
trait Stage: HttpContext + RequestHold {}
impl<T: HttpContext + RequestHold> Stage for T {}

/// The stages after jwt-auth of one stream, in request order.
struct Later {
    stages: Vec<Box<dyn Stage>>,
    /// How many of `stages` saw the request headers. Only those see later events, as in Envoy,
    /// where a filter the request never reached does not see the (local) response either.
    seen: usize,
    /// The request headers' callback arguments (kept for the stages that see them later).
    headers: (usize, bool),
    /// The body's callback arguments while jwt-auth waited for keys (the body is held).
    held_body: Option<(usize, bool)>,
}

impl Later {
    /// Runs the request headers through the stages that have not seen them, until one stops.
    fn request_headers(&mut self) -> Action {
        let (num_headers, end_of_stream) = self.headers;
        while let Some(stage) = self.stages.get_mut(self.seen) {
            self.seen += 1;
            if stage.on_http_request_headers(num_headers, end_of_stream) != Action::Continue {
                return Action::Pause;
            }
        }
        Action::Continue
    }

    /// True when the last stage that saw the headers paused them to judge the body.
    fn held_for_body(&self) -> bool {
        self.seen
            .checked_sub(1)
            .and_then(|last| self.stages.get(last))
            .is_some_and(|stage| stage.holds_request_headers())
    }

    /// Runs a body event: each stage that saw the headers gets the body in order; when the
    /// last of them continues, the next stages see the headers and then the body.
    fn request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let mut next = 0;
        loop {
            while next < self.seen {
                let Some(stage) = self.stages.get_mut(next) else {
                    return Action::Pause;
                };
                if stage.on_http_request_body(body_size, end_of_stream) != Action::Continue {
                    return Action::Pause;
                }
                next += 1;
            }
            if self.seen == self.stages.len() {
                return Action::Continue;
            }
            if self.request_headers() != Action::Continue && !self.held_for_body() {
                return Action::Pause; // answered at the headers
            }
        }
    }
}

/// Streams whose request headers wait for jwt-auth's keys, by context id.
type Waiting = Rc<RefCell<HashMap<u32, Rc<RefCell<Later>>>>>;

/// Runs the later stages of a stream jwt-auth allowed after waiting, then resumes it in Envoy.
/// Called with the stream as the effective context.
fn continue_allowed(waiting: &Waiting, context_id: u32) {
    let later = waiting
        .try_borrow_mut()
        .ok()
        .and_then(|mut w| w.remove(&context_id));
    let Some(later) = later else {
        // Never resume a stream whose later stages cannot run.
        log::error!("tollgate bundle: no state for allowed stream {context_id}");
        send_error(ErrorKind::Api, "the gateway lost the request's state", &[]);
        return;
    };
    let Ok(mut later) = later.try_borrow_mut() else {
        state_busy(context_id);
        return;
    };
    let mut action = later.request_headers();
    if action != Action::Continue && later.held_for_body() {
        // The body that arrived while jwt-auth waited is buffered: the holder judges it now.
        if let Some((body_size, end_of_stream)) = later.held_body {
            action = later.request_body(body_size, end_of_stream);
        }
    }
    if action == Action::Continue {
        if let Err(err) = host::resume_request() {
            log::warn!("tollgate bundle: cannot resume stream {context_id}: {err}");
        }
    }
}

/// The root context: the configured policies' roots.
pub struct BundleRoot {
    jwt_auth: Option<JwtAuthRoot>,
    prompt_guard: Option<PromptGuardRoot>,
    key_inject: Option<KeyInjectRoot>,
    secret_mask: Option<SecretMaskRoot>,
    context_id: u32,
    waiting: Waiting,
}

impl BundleRoot {
    pub fn new(context_id: u32) -> Self {
        BundleRoot {
            jwt_auth: None,
            prompt_guard: None,
            key_inject: None,
            secret_mask: None,
            context_id,
            waiting: Rc::default(),
        }
    }

    /// Configures every policy of `raw`; false (logged) if the bundle or any section is invalid.
    pub fn configure(&mut self, raw: &[u8]) -> bool {
        let sections = match Sections::parse(raw) {
            Ok(s) => s,
            Err(err) => {
                log::error!("tollgate bundle: invalid configuration: {err}");
                return false;
            }
        };
        // Each policy logs its own precise error; this line says which section it was.
        let invalid = |section: &str| {
            log::error!("tollgate bundle: section `{section}` is invalid (see above)");
            false
        };
        if let Some(raw) = &sections.jwt_auth {
            let mut root = JwtAuthRoot::new(self.context_id);
            let waiting = Rc::clone(&self.waiting);
            let resume: Resume = Rc::new(move |id| continue_allowed(&waiting, id));
            root.on_allowed(resume);
            if !root.configure(raw) {
                return invalid("jwt_auth");
            }
            self.jwt_auth = Some(root);
        }
        if let Some(raw) = &sections.prompt_guard {
            let mut root = PromptGuardRoot::default();
            if !root.configure(raw) {
                return invalid("prompt_guard");
            }
            self.prompt_guard = Some(root);
        }
        if let Some(raw) = &sections.key_inject {
            let mut root = KeyInjectRoot::default();
            if !root.configure(raw) {
                return invalid("key_inject");
            }
            self.key_inject = Some(root);
        }
        if let Some(raw) = &sections.secret_mask {
            let mut root = SecretMaskRoot::default();
            if !root.configure(raw) {
                return invalid("secret_mask");
            }
            self.secret_mask = Some(root);
        }
        log::info!("tollgate bundle: policies {}", sections.names().join(", "));
        true
    }
}

impl Context for BundleRoot {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize) {
        if let Some(root) = &mut self.jwt_auth {
            root.on_http_call_response(token, headers, body, trailers);
        }
    }
}

impl RootContext for BundleRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        plugin_configuration("tollgate bundle").is_some_and(|raw| self.configure(&raw))
    }

    fn on_tick(&mut self) {
        if let Some(root) = &mut self.jwt_auth {
            root.on_tick();
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let mut stages: Vec<Box<dyn Stage>> = Vec::with_capacity(3);
        if let Some(root) = &self.prompt_guard {
            stages.push(Box::new(root.stream()));
        }
        if let Some(root) = &self.key_inject {
            stages.push(Box::new(root.stream()));
        }
        if let Some(root) = &self.secret_mask {
            stages.push(Box::new(root.stream()));
        }
        Some(Box::new(BundleStream {
            context_id,
            jwt_auth: self.jwt_auth.as_ref().map(|root| root.stream(context_id)),
            later: Rc::new(RefCell::new(Later {
                stages,
                seen: 0,
                headers: (0, false),
                held_body: None,
            })),
            waiting: Rc::clone(&self.waiting),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One HTTP stream. jwt-auth's state stays outside `later`: a keys fetch answered to this
/// stream may allow other waiting streams (or this one), which borrows their `later`.
pub struct BundleStream {
    context_id: u32,
    jwt_auth: Option<JwtAuthHttp>,
    later: Rc<RefCell<Later>>,
    waiting: Waiting,
}

/// Runs `event` on `stages` until one does not continue; that one's action, else `Continue`.
fn until_stopped<'a>(
    stages: impl Iterator<Item = &'a mut dyn HttpContext>,
    mut event: impl FnMut(&mut dyn HttpContext) -> Action,
) -> Action {
    stages
        .map(&mut event)
        .find(|action| *action != Action::Continue)
        .unwrap_or(Action::Continue)
}

/// A stream whose state is already borrowed: cannot happen in one thread's event order, but
/// if it did the request must not pass unchecked.
fn state_busy(context_id: u32) -> Action {
    log::error!("tollgate bundle: the state of stream {context_id} is busy");
    send_error(ErrorKind::Api, "the gateway lost the request's state", &[]);
    Action::Pause
}

impl BundleStream {
    /// Runs `event` on every stage, in request order or (`reverse`) response order, until one
    /// does not continue.
    fn each(&mut self, reverse: bool, event: impl FnMut(&mut dyn HttpContext) -> Action) -> Action {
        let Ok(mut later) = self.later.try_borrow_mut() else {
            return state_busy(self.context_id);
        };
        let jwt = self.jwt_auth.iter_mut().map(|s| s as &mut dyn HttpContext);
        let seen = later.seen;
        let rest = later
            .stages
            .iter_mut()
            .take(seen)
            .map(|s| s.as_mut() as &mut dyn HttpContext);
        if reverse {
            until_stopped(rest.rev().chain(jwt), event)
        } else {
            until_stopped(jwt.chain(rest), event)
        }
    }
}

impl Context for BundleStream {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize) {
        if let Some(jwt) = &mut self.jwt_auth {
            jwt.on_http_call_response(token, headers, body, trailers);
        }
    }

    fn on_done(&mut self) -> bool {
        if let Some(jwt) = &mut self.jwt_auth {
            jwt.on_done();
        }
        if let Ok(mut later) = self.later.try_borrow_mut() {
            let seen = later.seen;
            for stage in later.stages.iter_mut().take(seen) {
                stage.on_done();
            }
        }
        if let Ok(mut waiting) = self.waiting.try_borrow_mut() {
            waiting.remove(&self.context_id);
        }
        true
    }
}

impl HttpContext for BundleStream {
    fn on_http_request_headers(&mut self, num_headers: usize, end_of_stream: bool) -> Action {
        let Ok(mut later) = self.later.try_borrow_mut() else {
            return state_busy(self.context_id);
        };
        later.headers = (num_headers, end_of_stream);
        if let Some(jwt) = &mut self.jwt_auth {
            if jwt.on_http_request_headers(num_headers, end_of_stream) != Action::Continue {
                if jwt.is_waiting() {
                    // The later stages run when jwt-auth allows the stream (continue_allowed).
                    let Ok(mut waiting) = self.waiting.try_borrow_mut() else {
                        return state_busy(self.context_id);
                    };
                    waiting.insert(self.context_id, Rc::clone(&self.later));
                }
                return Action::Pause;
            }
        }
        later.request_headers()
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Ok(mut later) = self.later.try_borrow_mut() else {
            return state_busy(self.context_id);
        };
        if let Some(jwt) = &mut self.jwt_auth {
            if jwt.on_http_request_body(body_size, end_of_stream) != Action::Continue {
                // Waiting for keys: the body is buffered until jwt-auth decides.
                later.held_body = Some((body_size, end_of_stream));
                return Action::Pause;
            }
        }
        later.request_body(body_size, end_of_stream)
    }

    fn on_http_request_trailers(&mut self, num_trailers: usize) -> Action {
        self.each(false, |s| s.on_http_request_trailers(num_trailers))
    }

    fn on_http_response_headers(&mut self, num_headers: usize, end_of_stream: bool) -> Action {
        self.each(true, |s| {
            s.on_http_response_headers(num_headers, end_of_stream)
        })
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.each(true, |s| s.on_http_response_body(body_size, end_of_stream))
    }

    fn on_http_response_trailers(&mut self, num_trailers: usize) -> Action {
        self.each(true, |s| s.on_http_response_trailers(num_trailers))
    }

    fn on_log(&mut self) {
        self.each(false, |s| {
            s.on_log();
            Action::Continue
        });
    }
}
