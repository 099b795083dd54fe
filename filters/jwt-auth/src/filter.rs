//! The proxy-wasm glue: a root context that owns the compiled policy, the token cache, the
//! remote key state and the metrics (shared with its HTTP contexts through an `Rc`), and an
//! HTTP context that runs [`decide`] on the request headers.
//!
//! Requests that need keys still being fetched return `Pause` and are registered as waiters;
//! when the fetch completes (in whichever context dispatched it) every waiter of that provider
//! is decided again under `set_effective_context` and resumed or answered. Fetches start on
//! the root's tick (at start, TTL refreshes) or on demand from a waiting request. While a
//! request waits, its body and trailers are held too (with Envoy's
//! `allow_on_headers_stop_iteration` they arrive while the headers wait; continuing them would
//! release the headers unverified).
//!
//! Headers, properties and bodies go through `tollgate_common::host`, the byte-safe seam: a
//! token header with bytes that are not visible ASCII is a malformed token (401), any other
//! header value is carried as bytes, never a trap.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};
use tollgate_common::config::plugin_configuration;
use tollgate_common::error::ErrorKind;
use tollgate_common::host::{self, Buffer, Map};
use tollgate_common::identity::{encode_groups, GROUPS, ISSUER, SUBJECT};
use tollgate_common::reply::send_error;

use crate::cache::TokenCache;
use crate::claims::{identity, Identity};
use crate::config::{load, Config};
use crate::extractor::extract;
use crate::matcher::{requirement_for, Requirement};
use crate::remote::{Completion, FetchRequest, KeyStatus, RemoteJwks};
use crate::verifier::{check_claims, check_signature, decode, Reject};

const METRIC_PREFIX: &str = "tollgate_jwt_auth_";
const SHARED_KEY_PREFIX: &str = "tollgate.jwt_auth.jwks.";
/// Filter state for the access log: `allowed`, `anonymous` or `denied:<reason>`.
const VERDICT: &str = "tollgate.jwt_auth.verdict";
const WWW_AUTHENTICATE_401: &str = "Bearer realm=\"tollgate\", error=\"invalid_token\"";
const WWW_AUTHENTICATE_403: &str = "Bearer realm=\"tollgate\", error=\"insufficient_scope\"";

fn now_secs() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// Counter ids, defined once per configuration. A metric the host refuses is skipped.
#[derive(Default)]
struct Metrics {
    ids: HashMap<&'static str, u32>,
}

impl Metrics {
    fn define() -> Metrics {
        let mut m = Metrics::default();
        let mut names: Vec<&'static str> = vec![
            "allowed",
            "allowed_anonymous",
            "jwks_fetch_ok",
            "jwks_fetch_failed",
            "cache_hit",
            "cache_miss",
        ];
        names.extend(Reject::ALL.iter().map(|r| r.reason()));
        for name in names {
            let full = if Reject::ALL.iter().any(|r| r.reason() == name) {
                format!("{METRIC_PREFIX}denied_{name}")
            } else {
                format!("{METRIC_PREFIX}{name}")
            };
            if let Ok(id) = hostcalls::define_metric(MetricType::Counter, &full) {
                m.ids.insert(name, id);
            }
        }
        m
    }

    fn inc(&self, name: &str) {
        if let Some(id) = self.ids.get(name) {
            let _ = hostcalls::increment_metric(*id, 1);
        }
    }
}

/// A verified token as cached: which provider, what it says, and the `tollgate.groups` filter
/// state already encoded (a cache hit only copies bytes out).
#[derive(Debug)]
struct Cached {
    provider: usize,
    identity: Identity,
    groups_property: Vec<u8>,
}

impl Cached {
    fn new(provider: usize, identity: Identity) -> Rc<Cached> {
        let groups_property = encode_groups(&identity.groups);
        Rc::new(Cached {
            provider,
            identity,
            groups_property,
        })
    }
}

/// State shared by the root context and its HTTP contexts (same VM, same thread).
struct Shared {
    config: Rc<Config>,
    cache: TokenCache<Rc<Cached>>,
    remotes: Vec<Option<RemoteJwks>>,
    /// Paused streams: (context id, provider index).
    waiters: Vec<(u32, usize)>,
    /// Outstanding fetches: callout token → provider index.
    fetches: HashMap<u32, usize>,
    metrics: Metrics,
    /// Continues a woken stream that is now allowed (see [`JwtAuthRoot::on_allowed`]).
    resume: Option<Resume>,
}

/// Continues the stream of a context id once it is allowed after waiting for keys. The
/// standalone filter resumes the stream in Envoy; a bundle runs its next stages first.
pub type Resume = Rc<dyn Fn(u32)>;

type SharedRef = Rc<RefCell<Option<Shared>>>;

/// What to do with a request.
enum Decision {
    Allow,
    Wait(usize),
    Denied,
}

fn verdict(value: &str) {
    if let Err(err) = host::set_property(&[VERDICT], value.as_bytes()) {
        log::debug!("tollgate jwt-auth: cannot set {VERDICT}: {err}");
    }
}

fn deny(shared: &Shared, reject: Reject) -> Decision {
    shared.metrics.inc(reject.reason());
    verdict(&format!("denied:{}", reject.reason()));
    log::debug!("tollgate jwt-auth: denied ({})", reject.reason());
    if reject.is_forbidden() {
        send_error(
            ErrorKind::Permission,
            reject.message(),
            &[("www-authenticate", WWW_AUTHENTICATE_403)],
        );
    } else {
        send_error(
            ErrorKind::Authentication,
            reject.message(),
            &[("www-authenticate", WWW_AUTHENTICATE_401)],
        );
    }
    Decision::Denied
}

fn authorize(requirement: &Requirement, c: &Cached) -> Result<(), Reject> {
    match requirement {
        Requirement::Token {
            groups_any,
            providers,
        } => {
            if !providers.is_empty() && !providers.contains(&c.provider) {
                return Err(Reject::Forbidden);
            }
            if !groups_any.is_empty() && !groups_any.iter().any(|g| c.identity.groups.contains(g)) {
                return Err(Reject::Forbidden);
            }
            Ok(())
        }
        Requirement::Deny => Err(Reject::Forbidden),
        Requirement::Anonymous => Ok(()),
    }
}

fn set_header(name: &str, value: Option<&str>) {
    let result = match value {
        Some(v) => host::set_header(Map::RequestHeaders, name, v.as_bytes()),
        None => host::remove_header(Map::RequestHeaders, name),
    };
    if let Err(err) = result {
        log::warn!("tollgate jwt-auth: cannot set header {name}: {err}");
    }
}

fn apply(config: &Config, c: &Cached, token_header: &str) -> Result<(), ()> {
    let id = &c.identity;
    let props: [(&str, &[u8]); 3] = [
        (SUBJECT, id.subject.as_bytes()),
        (GROUPS, &c.groups_property),
        (ISSUER, id.issuer.as_bytes()),
    ];
    for (name, value) in props {
        if let Err(err) = host::set_property(&[name], value) {
            // Identity that cannot be recorded must not pass: later filters rely on it.
            log::error!("tollgate jwt-auth: cannot set {name}: {err}");
            return Err(());
        }
    }
    for (header, value) in &id.forwarded {
        set_header(header, Some(value));
    }
    if !config.forward_token {
        set_header(token_header, None);
    }
    Ok(())
}

fn dispatch(shared: &mut Shared, provider: usize, f: FetchRequest) {
    let headers = vec![
        (":method", "GET"),
        (":path", f.path.as_str()),
        (":authority", f.authority.as_str()),
        ("accept", "application/json"),
    ];
    let timeout = Duration::from_millis(f.timeout_ms);
    match hostcalls::dispatch_http_call(&f.cluster, headers, None, vec![], timeout) {
        Ok(token) => {
            shared.fetches.retain(|_, p| *p != provider);
            shared.fetches.insert(token, provider);
            log::info!(
                "tollgate jwt-auth: fetching {:?} keys document {} from cluster {}",
                f.phase,
                f.path,
                f.cluster
            );
        }
        Err(s) => {
            log::error!(
                "tollgate jwt-auth: cannot fetch keys through cluster {}: {s:?}",
                f.cluster
            );
            shared.metrics.inc("jwks_fetch_failed");
            if let Some(Some(r)) = shared.remotes.get_mut(provider) {
                r.dispatch_failed();
            }
        }
    }
}

fn shared_key(shared: &Shared, provider: usize) -> String {
    let issuer = shared
        .config
        .providers
        .get(provider)
        .map_or("", |p| p.policy.issuer.as_str());
    format!("{SHARED_KEY_PREFIX}{issuer}")
}

/// Adopts keys another worker fetched and published in shared data, if newer.
fn adopt_shared(shared: &mut Shared, provider: usize, now: u64) {
    if !shared.config.share_keys {
        return;
    }
    let key = shared_key(shared, provider);
    let Ok((Some(value), _)) = hostcalls::get_shared_data(&key) else {
        return;
    };
    if value.len() < 8 {
        return;
    }
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&value[..8]);
    let fetched_at = u64::from_be_bytes(ts);
    if let Some(Some(r)) = shared.remotes.get_mut(provider) {
        if r.adopt(&value[8..], fetched_at, now) {
            log::info!("tollgate jwt-auth: adopted keys fetched by another worker");
        }
    }
}

fn start_fetch_if_due(shared: &mut Shared, provider: usize, now: u64) {
    if let Some(Some(r)) = shared.remotes.get_mut(provider) {
        if let Some(f) = r.next_fetch(now) {
            dispatch(shared, provider, f);
        }
    }
}

/// Decides the request of the current (effective) context.
fn decide(shared: &mut Shared, now: u64) -> Decision {
    let config = Rc::clone(&shared.config);
    for h in &config.owned_headers {
        set_header(h, None);
    }
    let headers = match host::headers(Map::RequestHeaders) {
        Ok(h) => h,
        Err(err) => {
            log::warn!("tollgate jwt-auth: cannot read the request headers: {err}");
            return deny(shared, Reject::Malformed);
        }
    };
    // Lossy: rules name ASCII paths, and a replaced byte matches none of them.
    let path = headers
        .iter()
        .find(|(k, _)| k == ":path")
        .map_or_else(|| "/".into(), |(_, v)| String::from_utf8_lossy(v));
    let requirement = requirement_for(&config.rules, &config.unmatched, &path);
    match requirement {
        Requirement::Anonymous => {
            shared.metrics.inc("allowed_anonymous");
            verdict("anonymous");
            return Decision::Allow;
        }
        Requirement::Deny => return deny(shared, Reject::Forbidden),
        Requirement::Token { .. } => {}
    }
    let found = match extract(&headers, &config.locations) {
        Ok(Some(f)) => f,
        Ok(None) => return deny(shared, Reject::Missing),
        Err(r) => return deny(shared, r),
    };

    let cached = shared.cache.get(&found.token, now).cloned();
    let cached = match cached {
        Some(c) => {
            shared.metrics.inc("cache_hit");
            c
        }
        None => {
            shared.metrics.inc("cache_miss");
            match verify_fresh(shared, &config, &found.token, now) {
                Ok(c) => c,
                Err(Fresh::Wait(p)) => return Decision::Wait(p),
                Err(Fresh::Reject(r)) => return deny(shared, r),
            }
        }
    };
    if let Err(r) = authorize(requirement, &cached) {
        return deny(shared, r);
    }
    if apply(&config, &cached, &found.header).is_err() {
        send_error(ErrorKind::Api, "cannot record the caller's identity", &[]);
        return Decision::Denied;
    }
    shared.metrics.inc("allowed");
    verdict("allowed");
    Decision::Allow
}

enum Fresh {
    Wait(usize),
    Reject(Reject),
}

fn verify_fresh(
    shared: &mut Shared,
    config: &Config,
    token: &str,
    now: u64,
) -> Result<Rc<Cached>, Fresh> {
    let d = decode(token, config.max_token_bytes).map_err(Fresh::Reject)?;
    let issuer = d.issuer.clone().ok_or(Fresh::Reject(Reject::Issuer))?;
    let (index, provider) = config
        .provider_for(&issuer)
        .ok_or(Fresh::Reject(Reject::Issuer))?;
    check_claims(&d, &provider.policy, now).map_err(Fresh::Reject)?;

    let statics = Rc::clone(&provider.static_keys);
    let mut remote_keys = None;
    if let Some(Some(remote)) = shared.remotes.get_mut(index) {
        match remote.status(now) {
            KeyStatus::Usable(k) => remote_keys = Some(k),
            KeyStatus::Loading => {
                adopt_shared(shared, index, now);
                if let Some(Some(remote)) = shared.remotes.get_mut(index) {
                    if let KeyStatus::Usable(k) = remote.status(now) {
                        remote_keys = Some(k);
                    }
                }
                if remote_keys.is_none() {
                    start_fetch_if_due(shared, index, now);
                    if shared
                        .remotes
                        .get(index)
                        .and_then(|r| r.as_ref())
                        .is_some_and(|r| r.is_fetching())
                    {
                        return Err(Fresh::Wait(index));
                    }
                    if statics.is_empty() {
                        return Err(Fresh::Reject(Reject::KeysUnavailable));
                    }
                }
            }
            KeyStatus::Unavailable => {
                if statics.is_empty() {
                    return Err(Fresh::Reject(Reject::KeysUnavailable));
                }
            }
        }
    }
    let mut sets = vec![statics.as_ref()];
    if let Some(k) = &remote_keys {
        sets.push(k.as_ref());
    }
    match check_signature(token, &d, &provider.policy, &sets, now) {
        Ok(()) => {}
        Err(Reject::UnknownKey) if remote_keys.is_some() => {
            let wait = match shared.remotes.get_mut(index) {
                Some(Some(r)) => r.unknown_kid(now),
                _ => false,
            };
            if wait {
                start_fetch_if_due(shared, index, now);
                if shared
                    .remotes
                    .get(index)
                    .and_then(|r| r.as_ref())
                    .is_some_and(|r| r.is_fetching())
                {
                    return Err(Fresh::Wait(index));
                }
            }
            return Err(Fresh::Reject(Reject::UnknownKey));
        }
        Err(r) => return Err(Fresh::Reject(r)),
    }
    let id = identity(&d.claims, &provider.claims, &issuer, d.exp).map_err(Fresh::Reject)?;
    let cached = Cached::new(index, id);
    shared.cache.insert(token, Rc::clone(&cached), d.exp, now);
    Ok(cached)
}

/// Handles a completed keys fetch and decides every stream waiting for that provider.
/// `current` is the context the callback runs in (restored afterwards).
fn on_fetch_response(shared_ref: &SharedRef, current: u32, token: u32, body_size: usize) {
    let now = now_secs();
    let mut guard = shared_ref.borrow_mut();
    let Some(shared) = guard.as_mut() else {
        return;
    };
    let Some(provider) = shared.fetches.remove(&token) else {
        return;
    };
    let status = host::header(Map::CallResponseHeaders, ":status")
        .ok()
        .flatten()
        .and_then(|s| std::str::from_utf8(&s).ok()?.parse::<u32>().ok())
        .unwrap_or(0);
    let body = if body_size > 0 {
        host::body(Buffer::CallResponseBody, 0, body_size).unwrap_or_default()
    } else {
        Vec::new()
    };
    let completion = match shared.remotes.get_mut(provider) {
        Some(Some(r)) => r.complete(now, status, &body),
        _ => return,
    };
    match completion {
        Completion::Discovered => {
            log::info!("tollgate jwt-auth: OIDC discovery done");
            start_fetch_if_due(shared, provider, now);
            if shared.fetches.values().any(|p| *p == provider) {
                return;
            }
        }
        Completion::Keys { count } => {
            shared.metrics.inc("jwks_fetch_ok");
            log::info!("tollgate jwt-auth: loaded {count} signing keys");
            if shared.config.share_keys {
                let mut value = now.to_be_bytes().to_vec();
                value.extend_from_slice(&body);
                let key = shared_key(shared, provider);
                let _ = hostcalls::set_shared_data(&key, Some(&value), None);
            }
        }
        Completion::Failed(msg) => {
            shared.metrics.inc("jwks_fetch_failed");
            log::error!("tollgate jwt-auth: fetching signing keys failed: {msg}");
        }
    }
    wake_waiters(shared, provider, now);
    let _ = hostcalls::set_effective_context(current);
}

/// Decides again every stream waiting for `provider`.
fn wake_waiters(shared: &mut Shared, provider: usize, now: u64) {
    let waiting: Vec<u32> = shared
        .waiters
        .iter()
        .filter(|(_, p)| *p == provider)
        .map(|(id, _)| *id)
        .collect();
    shared.waiters.retain(|(_, p)| *p != provider);
    for id in waiting {
        if hostcalls::set_effective_context(id).is_err() {
            continue; // the stream is gone
        }
        match decide(shared, now) {
            Decision::Allow => match &shared.resume {
                Some(resume) => resume(id),
                None => {
                    if let Err(err) = host::resume_request() {
                        log::warn!("tollgate jwt-auth: cannot resume stream {id}: {err}");
                    }
                }
            },
            Decision::Wait(p) => shared.waiters.push((id, p)),
            Decision::Denied => {}
        }
    }
}

pub struct JwtAuthRoot {
    context_id: u32,
    shared: SharedRef,
    resume: Option<Resume>,
}

impl JwtAuthRoot {
    pub fn new(context_id: u32) -> Self {
        JwtAuthRoot {
            context_id,
            shared: Rc::new(RefCell::new(None)),
            resume: None,
        }
    }

    /// Streams that waited for keys and are then allowed are handed to `resume` instead of
    /// being resumed in Envoy (set before [`configure`](Self::configure)).
    pub fn on_allowed(&mut self, resume: Resume) {
        self.resume = Some(resume);
    }

    /// Compiles the policy from the plugin configuration `raw` (also the bundle's entry point);
    /// false, with the reason logged, when it is invalid.
    pub fn configure(&mut self, raw: &[u8]) -> bool {
        let env = |name: &str| std::env::var(name).ok();
        let config = match load(raw, &env) {
            Ok(c) => Rc::new(c),
            Err(e) => {
                let _ = hostcalls::log(
                    LogLevel::Error,
                    &format!("tollgate jwt-auth: invalid configuration: {e}"),
                );
                return false;
            }
        };
        let remotes = config
            .providers
            .iter()
            .map(|p| {
                p.remote
                    .clone()
                    .map(|s| RemoteJwks::new(s, &p.policy.issuer, &p.policy.algorithms))
            })
            .collect();
        if config.has_remote() {
            // Envoy cannot dispatch reliably from on_configure: the first tick fetches.
            let _ = hostcalls::set_tick_period(Duration::from_secs(1));
        }
        *self.shared.borrow_mut() = Some(Shared {
            cache: TokenCache::new(config.cache_max_entries, config.cache_max_age_secs),
            config,
            remotes,
            waiters: Vec::new(),
            fetches: HashMap::new(),
            metrics: Metrics::define(),
            resume: self.resume.clone(),
        });
        true
    }

    /// The state of the HTTP stream `context_id`.
    pub fn stream(&self, context_id: u32) -> JwtAuthHttp {
        JwtAuthHttp {
            context_id,
            shared: Rc::clone(&self.shared),
            waiting: false,
        }
    }
}

impl Context for JwtAuthRoot {
    fn on_http_call_response(&mut self, token_id: u32, _: usize, body_size: usize, _: usize) {
        on_fetch_response(&self.shared, self.context_id, token_id, body_size);
    }
}

impl RootContext for JwtAuthRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        plugin_configuration("tollgate jwt-auth").is_some_and(|raw| self.configure(&raw))
    }

    fn on_tick(&mut self) {
        let now = now_secs();
        let mut guard = self.shared.borrow_mut();
        let Some(shared) = guard.as_mut() else {
            return;
        };
        for i in 0..shared.remotes.len() {
            if shared.remotes[i].is_none() {
                continue;
            }
            adopt_shared(shared, i, now);
            start_fetch_if_due(shared, i, now);
            // A fetch whose answer never came (its stream went away, a timeout): the waiters
            // of a provider with no fetch in flight are decided again (401 or a new fetch).
            let fetching = shared.remotes[i].as_ref().is_some_and(|r| r.is_fetching());
            if !fetching && shared.waiters.iter().any(|(_, p)| *p == i) {
                wake_waiters(shared, i, now);
                let _ = hostcalls::set_effective_context(self.context_id);
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(self.stream(context_id)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

pub struct JwtAuthHttp {
    context_id: u32,
    shared: SharedRef,
    /// Paused for keys being fetched (not answered): decided again when they arrive.
    waiting: bool,
}

impl JwtAuthHttp {
    /// True when the request headers paused the stream to wait for keys rather than to answer.
    pub fn is_waiting(&self) -> bool {
        self.waiting
    }

    /// True while the stream is still registered as waiting for keys (not yet decided).
    fn still_waiting(&self) -> bool {
        self.waiting
            && self.shared.try_borrow().map_or(true, |guard| {
                guard
                    .as_ref()
                    .is_some_and(|s| s.waiters.iter().any(|(id, _)| *id == self.context_id))
            })
    }

    /// Body and trailers wait with the headers: continuing them would release the headers.
    fn hold_while_waiting(&self) -> Action {
        if self.still_waiting() {
            Action::Pause
        } else {
            Action::Continue
        }
    }
}

impl Context for JwtAuthHttp {
    fn on_http_call_response(&mut self, token_id: u32, _: usize, body_size: usize, _: usize) {
        on_fetch_response(&self.shared, self.context_id, token_id, body_size);
    }

    fn on_done(&mut self) -> bool {
        if let Ok(mut guard) = self.shared.try_borrow_mut() {
            if let Some(shared) = guard.as_mut() {
                shared.waiters.retain(|(id, _)| *id != self.context_id);
            }
        }
        true
    }
}

impl HttpContext for JwtAuthHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let now = now_secs();
        let mut guard = self.shared.borrow_mut();
        let Some(shared) = guard.as_mut() else {
            // Not configured: fail closed.
            send_error(ErrorKind::Api, "authentication is not configured", &[]);
            return Action::Pause;
        };
        match decide(shared, now) {
            Decision::Allow => Action::Continue,
            Decision::Wait(p) => {
                shared.waiters.push((self.context_id, p));
                self.waiting = true;
                Action::Pause
            }
            Decision::Denied => Action::Pause,
        }
    }

    fn on_http_request_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        self.hold_while_waiting()
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        self.hold_while_waiting()
    }
}
