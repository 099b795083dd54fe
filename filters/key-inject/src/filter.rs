//! The proxy-wasm glue: the root context compiles the policy (reading key values from the VM's
//! environment) and defines the metrics; the HTTP context strips client credentials, runs
//! [`decide`](crate::decide::decide) and injects the key or answers with an Anthropic-shaped
//! error. Headers, properties and replies go through `tollgate_common::host`, the byte-safe seam:
//! a header value that is not UTF-8 is carried as bytes, never a trap.
//!
//! Key values never reach a log line or a metric: logs and metrics use key *names*.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MetricType};
use tollgate_common::config::plugin_configuration;
use tollgate_common::error::ErrorKind;
use tollgate_common::hold::RequestHold;
use tollgate_common::host::{self, Map};
use tollgate_common::identity::{decode_groups, GROUPS, SUBJECT};
use tollgate_common::reply::send_error;

use crate::config::Policy;
use crate::decide::{decide, DenyReason, IdentityState};
use crate::select::Identity;

/// Metric names (see `docs/key-inject.md`).
pub const METRIC_INJECTED: &str = "tollgate_key_inject_injected";
pub const METRIC_DENIED: &str = "tollgate_key_inject_denied";
pub const METRIC_STRIPPED: &str = "tollgate_key_inject_stripped";
/// Filter state holding the injected key's name (access logs:
/// `%FILTER_STATE(wasm.tollgate.key_inject.key:PLAIN)%`).
pub const KEY_PROPERTY: &str = "tollgate.key_inject.key";

/// Metric ids; `None` when the host refused to define one (counting is then skipped).
#[derive(Debug, Default)]
struct Metrics {
    injected: Option<u32>,
    /// Per key, in `Policy::keys` order: `tollgate_key_inject_injected_<name>`.
    injected_by_key: Vec<Option<u32>>,
    denied: Option<u32>,
    /// In `DenyReason::ALL` order: `tollgate_key_inject_denied_<reason>`.
    denied_by_reason: Vec<Option<u32>>,
    stripped: Option<u32>,
}

fn define(name: &str) -> Option<u32> {
    match hostcalls::define_metric(MetricType::Counter, name) {
        Ok(id) => Some(id),
        Err(status) => {
            log::warn!("key-inject: cannot define metric {name}: {status:?}");
            None
        }
    }
}

fn bump(id: Option<u32>) {
    if let Some(id) = id {
        if let Err(status) = hostcalls::increment_metric(id, 1) {
            log::warn!("key-inject: cannot increment metric {id}: {status:?}");
        }
    }
}

impl Metrics {
    fn define(policy: &Policy) -> Metrics {
        Metrics {
            injected: define(METRIC_INJECTED),
            injected_by_key: policy
                .keys
                .iter()
                .map(|k| define(&format!("{METRIC_INJECTED}_{}", k.name)))
                .collect(),
            denied: define(METRIC_DENIED),
            denied_by_reason: DenyReason::ALL
                .iter()
                .map(|r| define(&format!("{METRIC_DENIED}_{}", r.label())))
                .collect(),
            stripped: define(METRIC_STRIPPED),
        }
    }
}

/// What every stream shares.
struct Shared {
    policy: Policy,
    metrics: Metrics,
}

/// The root context: configuration and metrics.
#[derive(Default)]
pub struct KeyInjectRoot {
    shared: Option<Rc<Shared>>,
}

impl Context for KeyInjectRoot {}

impl RootContext for KeyInjectRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        plugin_configuration("key-inject").is_some_and(|raw| self.configure(&raw))
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(self.stream()))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

impl KeyInjectRoot {
    /// Compiles the policy from the plugin configuration `raw` (also the bundle's entry point);
    /// false, with the reason logged, when it is invalid.
    pub fn configure(&mut self, raw: &[u8]) -> bool {
        match Policy::from_json(raw) {
            Ok(policy) => {
                let names: Vec<&str> = policy.keys.iter().map(|k| k.name.as_str()).collect();
                log::info!("key-inject: configured keys {names:?}");
                let metrics = Metrics::define(&policy);
                self.shared = Some(Rc::new(Shared { policy, metrics }));
                true
            }
            Err(err) => {
                // ConfigError messages name fields and variables, never values.
                log::error!("key-inject: invalid configuration: {err}");
                false
            }
        }
    }

    /// The state of one new HTTP stream.
    pub fn stream(&self) -> KeyInjectStream {
        KeyInjectStream {
            shared: self.shared.clone(),
        }
    }
}

/// One HTTP stream.
pub struct KeyInjectStream {
    shared: Option<Rc<Shared>>,
}

impl Context for KeyInjectStream {}

impl RequestHold for KeyInjectStream {
    /// key-inject decides on the headers alone: a `Pause` is always an answer.
    fn holds_request_headers(&self) -> bool {
        false
    }
}

/// Reads a property; `Err` for host failures (callers fail closed).
fn property(path: &[&str]) -> Result<Option<Vec<u8>>, ()> {
    host::property(path).map_err(|err| {
        log::warn!("key-inject: cannot read a property: {err}");
    })
}

/// Reads `tollgate.subject` and `tollgate.groups`; anything unreadable is `Malformed`.
fn read_identity() -> IdentityState {
    let subject = match property(&[SUBJECT]) {
        Err(()) => return IdentityState::Malformed("subject unreadable"),
        Ok(None) => None,
        Ok(Some(raw)) if raw.is_empty() => None,
        Ok(Some(raw)) => match String::from_utf8(raw) {
            Ok(s) => Some(s),
            Err(_) => return IdentityState::Malformed("subject is not UTF-8"),
        },
    };
    let groups = match property(&[GROUPS]) {
        Err(()) => return IdentityState::Malformed("groups unreadable"),
        Ok(None) => None,
        Ok(Some(raw)) => match decode_groups(&raw) {
            Some(g) => Some(g),
            None => return IdentityState::Malformed("groups do not decode"),
        },
    };
    IdentityState::Read(Identity { subject, groups })
}

/// The route's cluster: Envoy's `xds.cluster_name` attribute, resolved before the filter chain
/// runs (Envoy 1.40: readable in the request-headers callback).
fn read_cluster() -> Option<String> {
    match property(&["xds", "cluster_name"]) {
        Ok(Some(raw)) => String::from_utf8(raw).ok().filter(|name| !name.is_empty()),
        _ => None,
    }
}

impl KeyInjectStream {
    fn deny(&self, shared: &Shared, kind: ErrorKind, message: &str, challenge: bool) -> Action {
        let extra: &[(&str, &str)] = if challenge {
            &[("www-authenticate", "Bearer realm=\"tollgate\"")]
        } else {
            &[]
        };
        send_error(kind, message, extra);
        bump(shared.metrics.denied);
        Action::Pause
    }

    fn handle_headers(&self, shared: &Shared) -> Action {
        let policy = &shared.policy;
        let headers = match host::headers(Map::RequestHeaders) {
            Ok(h) => h,
            Err(err) => {
                log::warn!("key-inject: cannot read request headers: {err}");
                return self.deny(
                    shared,
                    ErrorKind::Api,
                    "the gateway cannot read the request",
                    false,
                );
            }
        };

        // 1. Strip every client credential, whatever happens next.
        let mut stripped = false;
        for name in &policy.strip {
            if headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
                if let Err(err) = host::remove_header(Map::RequestHeaders, name) {
                    log::warn!("key-inject: cannot remove header {name}: {err}");
                    return self.deny(
                        shared,
                        ErrorKind::Api,
                        "the gateway cannot rewrite the request",
                        false,
                    );
                }
                stripped = true;
            }
        }
        if stripped {
            bump(shared.metrics.stripped);
        }

        // 2. Decide.
        let authority = headers
            .iter()
            .find(|(k, _)| k == ":authority")
            // An authority that is not UTF-8 names no configured upstream: treated as absent.
            .and_then(|(_, v)| std::str::from_utf8(v).ok());
        let cluster = if policy.upstream.checks_cluster() {
            read_cluster()
        } else {
            None
        };
        let identity = if policy.selector.needs_identity() {
            read_identity()
        } else {
            IdentityState::Read(Identity::default())
        };
        if let IdentityState::Malformed(why) = &identity {
            log::warn!("key-inject: identity filter state rejected: {why}");
        }
        let inject = match decide(policy, authority, cluster.as_deref(), &identity) {
            Ok(inject) => inject,
            Err(deny) => {
                log::debug!("key-inject: denied ({})", deny.reason.label());
                if let Some(i) = DenyReason::ALL.iter().position(|r| *r == deny.reason) {
                    bump(shared.metrics.denied_by_reason.get(i).copied().flatten());
                }
                return self.deny(shared, deny.kind, deny.message, deny.challenge);
            }
        };

        // 3. Inject.
        let Some(key) = policy.keys.get(inject.key) else {
            return self.deny(shared, ErrorKind::Api, "the gateway has no such key", false);
        };
        if let Err(err) = host::set_header(Map::RequestHeaders, key.header, key.value.as_bytes()) {
            log::warn!("key-inject: cannot set the upstream credential: {err}");
            return self.deny(
                shared,
                ErrorKind::Api,
                "the gateway cannot rewrite the request",
                false,
            );
        }
        if let Some(version) = &policy.anthropic_version {
            if !headers.iter().any(|(k, _)| k == "anthropic-version") {
                if let Err(err) =
                    host::set_header(Map::RequestHeaders, "anthropic-version", version.as_bytes())
                {
                    log::warn!("key-inject: cannot set anthropic-version: {err}");
                }
            }
        }
        if let Err(err) = host::set_property(&[KEY_PROPERTY], key.name.as_bytes()) {
            log::warn!("key-inject: cannot record the key name in filter state: {err}");
        }
        log::debug!(
            "key-inject: injected key {} ({:?})",
            key.name,
            inject.reason
        );
        bump(shared.metrics.injected);
        bump(
            shared
                .metrics
                .injected_by_key
                .get(inject.key)
                .copied()
                .flatten(),
        );
        Action::Continue
    }
}

impl HttpContext for KeyInjectStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        match &self.shared {
            Some(shared) => {
                let shared = Rc::clone(shared);
                self.handle_headers(&shared)
            }
            None => {
                // Not configured (on_configure failed): never forward without a decision.
                send_error(
                    ErrorKind::Api,
                    "the key-inject filter is not configured",
                    &[],
                );
                Action::Pause
            }
        }
    }
}
