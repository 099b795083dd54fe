//! The remote JWKS state machine for one provider — pure, driven by the glue with the
//! current time, so it is tested natively with a fake clock.
//!
//! - Keys are fetched through an Envoy cluster, first from the issuer's OIDC discovery
//!   document (whose `issuer` must equal ours and whose `jwks_uri` gives the path) when
//!   configured, else from a fixed path.
//! - Fetched keys are fresh for `ttl`; after that a refresh is started. If refreshing fails,
//!   the last good keys stay usable for `grace` more seconds, then are dropped.
//! - An unknown `kid` asks for one refetch; refetches (and retries after a failure) are
//!   rate-limited to one per `min_interval`, so a flood of random kids cannot hammer the IdP.
//! - A fetch that gets no answer within its timeout (plus slack) counts as failed.

use std::rc::Rc;

use crate::json::parse_object;
use crate::jwks::{parse_jwks, Alg, KeySet};

/// Where and how often to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSettings {
    pub cluster: String,
    pub authority: String,
    /// Fixed JWKS path (used when no discovery path is set).
    pub jwks_path: Option<String>,
    /// OIDC discovery document path, e.g. `/.well-known/openid-configuration`.
    pub discovery_path: Option<String>,
    pub timeout_ms: u64,
    pub ttl_secs: u64,
    pub min_interval_secs: u64,
    pub grace_secs: u64,
}

/// Which document a fetch is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Discovery,
    Jwks,
}

/// A fetch the glue must dispatch (`GET path` with `:authority` through `cluster`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub phase: Phase,
    pub timeout_ms: u64,
}

/// Whether requests can be verified now.
#[derive(Debug, Clone)]
pub enum KeyStatus {
    /// Keys to verify with (fresh, or stale within the grace period).
    Usable(Rc<KeySet>),
    /// No usable keys, but a fetch is under way or may start: wait for it.
    Loading,
    /// No usable keys and no fetch allowed yet: refuse (401).
    Unavailable,
}

/// What a completed fetch led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// New keys are installed.
    Keys { count: usize },
    /// Discovery done; the JWKS fetch comes next (call [`RemoteJwks::next_fetch`]).
    Discovered,
    /// The fetch failed (message for the log; never sent to clients).
    Failed(String),
}

#[derive(Debug, Clone)]
struct InFlight {
    phase: Phase,
    started: u64,
}

/// Remote key state for one provider.
#[derive(Debug)]
pub struct RemoteJwks {
    settings: RemoteSettings,
    issuer: String,
    algorithms: Vec<Alg>,
    keys: Option<Rc<KeySet>>,
    fetched_at: u64,
    /// The JWKS path: configured, or learned from discovery.
    jwks_path: Option<String>,
    jwks_authority: String,
    in_flight: Option<InFlight>,
    last_attempt: Option<u64>,
    last_failed: bool,
    refresh_wanted: bool,
    /// Discovery just succeeded: the JWKS fetch may start at once.
    chain_next: bool,
}

/// Splits an `http(s)://authority/path` URL.
fn split_url(url: &str) -> Option<(String, String)> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let slash = rest.find('/')?;
    let (authority, path) = rest.split_at(slash);
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some((authority.to_owned(), path.to_owned()))
}

impl RemoteJwks {
    pub fn new(settings: RemoteSettings, issuer: &str, algorithms: &[Alg]) -> Self {
        RemoteJwks {
            jwks_path: if settings.discovery_path.is_some() {
                None
            } else {
                settings.jwks_path.clone()
            },
            jwks_authority: settings.authority.clone(),
            settings,
            issuer: issuer.to_owned(),
            algorithms: algorithms.to_vec(),
            keys: None,
            fetched_at: 0,
            in_flight: None,
            last_attempt: None,
            last_failed: false,
            refresh_wanted: false,
            chain_next: false,
        }
    }

    pub fn settings(&self) -> &RemoteSettings {
        &self.settings
    }

    /// When the current keys were fetched (0: never).
    pub fn fetched_at(&self) -> u64 {
        self.fetched_at
    }

    fn timeout_secs(&self) -> u64 {
        self.settings.timeout_ms.div_ceil(1000) + 1
    }

    /// Drops an in-flight fetch that outlived its timeout; true if it did.
    fn expire_in_flight(&mut self, now: u64) -> bool {
        match &self.in_flight {
            Some(f) if now >= f.started.saturating_add(self.timeout_secs()) => {
                self.in_flight = None;
                self.last_failed = true;
                true
            }
            _ => false,
        }
    }

    fn usable_keys(&mut self, now: u64) -> Option<Rc<KeySet>> {
        let limit = self
            .fetched_at
            .saturating_add(self.settings.ttl_secs)
            .saturating_add(self.settings.grace_secs);
        if self.keys.is_some() && now >= limit {
            self.keys = None;
        }
        self.keys.clone()
    }

    fn may_attempt(&self, now: u64) -> bool {
        match self.last_attempt {
            None => true,
            Some(t) => now >= t.saturating_add(self.settings.min_interval_secs),
        }
    }

    fn wants_fetch(&mut self, now: u64) -> bool {
        let stale = now >= self.fetched_at.saturating_add(self.settings.ttl_secs);
        self.usable_keys(now).is_none() || stale || self.refresh_wanted
    }

    /// The key status for a request arriving at `now`.
    pub fn status(&mut self, now: u64) -> KeyStatus {
        self.expire_in_flight(now);
        if let Some(keys) = self.usable_keys(now) {
            return KeyStatus::Usable(keys);
        }
        if self.in_flight.is_some() || self.chain_next || self.may_attempt(now) {
            KeyStatus::Loading
        } else {
            KeyStatus::Unavailable
        }
    }

    /// The fetch to start now, if any; it is then recorded as in flight.
    pub fn next_fetch(&mut self, now: u64) -> Option<FetchRequest> {
        self.expire_in_flight(now);
        if self.in_flight.is_some() || !self.wants_fetch(now) {
            return None;
        }
        // Right after discovery the JWKS fetch follows at once; otherwise rate-limit.
        if !self.chain_next && !self.may_attempt(now) {
            return None;
        }
        self.chain_next = false;
        let (phase, path, authority) = match (&self.jwks_path, &self.settings.discovery_path) {
            (Some(p), _) => (Phase::Jwks, p.clone(), self.jwks_authority.clone()),
            (None, Some(d)) => (Phase::Discovery, d.clone(), self.settings.authority.clone()),
            (None, None) => return None,
        };
        self.in_flight = Some(InFlight {
            phase,
            started: now,
        });
        self.last_attempt = Some(now);
        Some(FetchRequest {
            cluster: self.settings.cluster.clone(),
            authority,
            path,
            phase,
            timeout_ms: self.settings.timeout_ms,
        })
    }

    /// Whether a fetch is under way.
    pub fn is_fetching(&self) -> bool {
        self.in_flight.is_some()
    }

    /// A token named a `kid` we do not have: true if a refetch is under way or was
    /// scheduled (the request should wait), false if rate-limited (refuse it).
    pub fn unknown_kid(&mut self, now: u64) -> bool {
        self.expire_in_flight(now);
        if self.in_flight.is_some() {
            return true;
        }
        if self.may_attempt(now) {
            self.refresh_wanted = true;
            return true;
        }
        false
    }

    /// The dispatch itself failed (unknown cluster, …).
    pub fn dispatch_failed(&mut self) {
        self.in_flight = None;
        self.last_failed = true;
    }

    /// Installs keys fetched elsewhere (another worker, via shared data) if they are newer.
    pub fn adopt(&mut self, body: &[u8], fetched_at: u64, now: u64) -> bool {
        if fetched_at <= self.fetched_at || now >= fetched_at.saturating_add(self.settings.ttl_secs)
        {
            return false;
        }
        match parse_jwks(body, &self.algorithms) {
            Ok(set) => {
                self.keys = Some(Rc::new(set));
                self.fetched_at = fetched_at;
                self.refresh_wanted = false;
                self.last_failed = false;
                true
            }
            Err(_) => false,
        }
    }

    /// A fetch answered: `status` 0 means no answer (connection failure, timeout).
    pub fn complete(&mut self, now: u64, status: u32, body: &[u8]) -> Completion {
        let Some(flight) = self.in_flight.take() else {
            return Completion::Failed("unexpected JWKS response (no fetch in flight)".into());
        };
        let result = if !(200..300).contains(&status) {
            Err(if status == 0 {
                "identity provider unreachable".to_string()
            } else {
                format!("identity provider answered HTTP {status}")
            })
        } else {
            match flight.phase {
                Phase::Discovery => self.read_discovery(body).map(|()| Completion::Discovered),
                Phase::Jwks => match parse_jwks(body, &self.algorithms) {
                    Ok(set) => {
                        let count = set.len();
                        self.keys = Some(Rc::new(set));
                        self.fetched_at = now;
                        self.refresh_wanted = false;
                        Ok(Completion::Keys { count })
                    }
                    Err(e) => Err(format!("bad JWKS: {e}")),
                },
            }
        };
        match result {
            Ok(c) => {
                self.last_failed = false;
                c
            }
            Err(msg) => {
                self.last_failed = true;
                // Do not retry an unknown kid forever: the refetch happened.
                self.refresh_wanted = false;
                Completion::Failed(msg)
            }
        }
    }

    fn read_discovery(&mut self, body: &[u8]) -> Result<(), String> {
        let doc = parse_object(body).map_err(|e| format!("bad discovery document: {e}"))?;
        if doc.get("issuer").and_then(|v| v.as_str()) != Some(self.issuer.as_str()) {
            return Err("discovery document names another issuer".into());
        }
        let uri = doc
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .ok_or("discovery document has no jwks_uri")?;
        let (authority, path) = split_url(uri).ok_or("discovery jwks_uri is not an http(s) URL")?;
        self.jwks_authority = authority;
        self.jwks_path = Some(path);
        self.chain_next = true;
        Ok(())
    }
}

#[cfg(test)]
#[path = "remote_tests.rs"]
mod tests;
