//! The policy: serde structs (`deny_unknown_fields`) parsed with field-path errors, then
//! compiled (validated, keys built, secrets read from the environment) into an immutable
//! [`Config`] shared by every stream. Every compile error names its field, e.g.
//! `providers[0].algorithms[1]: unknown algorithm "none"`.

use std::collections::HashSet;
use std::rc::Rc;

use serde::Deserialize;
use serde_json::Value;
use tollgate_common::config::{parse_json, ConfigError};

use crate::claims::ClaimsPolicy;
use crate::extractor::Location;
use crate::jwks::{hs256_key, keyset_from_value, Alg, KeySet};
use crate::matcher::{PathMatch, Requirement, Rule};
use crate::remote::RemoteSettings;
use crate::verifier::{Policy, DEFAULT_MAX_TOKEN_BYTES};

/// Shortest HS256 secret accepted, in bytes (RFC 7518 §3.2: at least the hash size).
pub const MIN_HS256_SECRET_BYTES: usize = 32;
/// Largest clock skew accepted, in seconds.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub providers: Vec<RawProvider>,
    pub from_headers: Option<Vec<RawLocation>>,
    pub forward_token: bool,
    pub rules: Vec<RawRule>,
    pub unmatched: RawUnmatched,
    pub cache: RawCache,
    pub max_token_bytes: usize,
    pub share_keys: bool,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            providers: Vec::new(),
            from_headers: None,
            forward_token: false,
            rules: Vec::new(),
            unmatched: RawUnmatched::Token,
            cache: RawCache::default(),
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            share_keys: true,
        }
    }
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawUnmatched {
    /// Any valid token (the default).
    Token,
    Anonymous,
    Deny,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCache {
    pub max_entries: usize,
    pub max_age_s: u64,
}

impl Default for RawCache {
    fn default() -> Self {
        RawCache {
            max_entries: 1024,
            max_age_s: 300,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocation {
    pub header: String,
    #[serde(default)]
    pub prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForward {
    pub claim: String,
    pub header: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    #[serde(default)]
    pub name: Option<String>,
    pub issuer: String,
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    #[serde(default)]
    pub jwks: Option<Value>,
    #[serde(default)]
    pub remote_jwks: Option<RawRemote>,
    #[serde(default)]
    pub hs256_secret_env: Option<String>,
    #[serde(default)]
    pub hs256_kid: Option<String>,
    #[serde(default = "default_skew")]
    pub clock_skew_s: u64,
    #[serde(default = "yes")]
    pub require_exp: bool,
    #[serde(default)]
    pub max_lifetime_s: Option<u64>,
    #[serde(default)]
    pub required_claims: Vec<String>,
    #[serde(default = "default_subject")]
    pub subject_claim: String,
    #[serde(default = "default_groups")]
    pub group_claims: Vec<String>,
    #[serde(default)]
    pub forward_claims: Vec<RawForward>,
}

fn default_skew() -> u64 {
    60
}
fn yes() -> bool {
    true
}
fn default_subject() -> String {
    "sub".into()
}
fn default_groups() -> Vec<String> {
    vec!["groups".into()]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRemote {
    pub cluster: String,
    /// `:authority` of the fetch; default: the issuer URL's authority.
    #[serde(default)]
    pub authority: Option<String>,
    /// JWKS path, e.g. `/jwks`.
    #[serde(default)]
    pub path: Option<String>,
    /// Fetch the issuer's OIDC discovery document first (`<issuer path>/.well-known/openid-configuration`).
    #[serde(default)]
    pub discovery: bool,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    #[serde(default = "default_ttl")]
    pub ttl_s: u64,
    #[serde(default = "default_interval")]
    pub min_refetch_interval_s: u64,
    #[serde(default = "default_grace")]
    pub grace_s: u64,
}

fn default_timeout() -> u64 {
    5000
}
fn default_ttl() -> u64 {
    600
}
fn default_interval() -> u64 {
    30
}
fn default_grace() -> u64 {
    900
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    #[serde(default)]
    pub exact: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    /// No token needed.
    #[serde(default)]
    pub anonymous: bool,
    /// Always refused (403).
    #[serde(default)]
    pub deny: bool,
    #[serde(default)]
    pub groups_any: Vec<String>,
    /// Provider names whose tokens are accepted here (default: all).
    #[serde(default)]
    pub providers: Vec<String>,
}

/// One compiled provider.
#[derive(Debug)]
pub struct Provider {
    pub name: String,
    pub policy: Policy,
    pub claims: ClaimsPolicy,
    /// Inline JWKS keys and the HS256 key, if any.
    pub static_keys: Rc<KeySet>,
    pub remote: Option<RemoteSettings>,
}

/// The compiled, immutable policy.
#[derive(Debug)]
pub struct Config {
    pub providers: Vec<Provider>,
    pub locations: Vec<Location>,
    pub forward_token: bool,
    pub rules: Vec<Rule>,
    pub unmatched: Requirement,
    pub cache_max_entries: usize,
    pub cache_max_age_secs: u64,
    pub max_token_bytes: usize,
    pub share_keys: bool,
    /// Headers the filter sets (forwarded claims): client-supplied copies are removed.
    pub owned_headers: Vec<String>,
}

impl Config {
    /// The provider for an (unverified) issuer.
    pub fn provider_for(&self, issuer: &str) -> Option<(usize, &Provider)> {
        self.providers
            .iter()
            .enumerate()
            .find(|(_, p)| p.policy.issuer == issuer)
    }

    pub fn has_remote(&self) -> bool {
        self.providers.iter().any(|p| p.remote.is_some())
    }
}

/// Parses and compiles; `env` reads an environment variable (`std::env::var` in the filter).
pub fn load(raw: &[u8], env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let raw: RawConfig = parse_json(raw)?;
    compile(raw, env)
}

fn err(path: impl Into<String>, msg: impl Into<String>) -> ConfigError {
    ConfigError::new(path, msg)
}

/// A lowercase HTTP header name (RFC 9110 token characters), not a pseudo-header.
fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
        })
}

/// Headers a forwarded claim may never overwrite.
const PROTECTED_HEADERS: [&str; 10] = [
    "authorization",
    "x-api-key",
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "cookie",
];

fn split_issuer(issuer: &str) -> Option<(String, String)> {
    let rest = issuer
        .strip_prefix("https://")
        .or_else(|| issuer.strip_prefix("http://"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return None;
    }
    Some((authority.to_owned(), path.trim_end_matches('/').to_owned()))
}

fn compile_remote(r: RawRemote, issuer: &str, at: &str) -> Result<RemoteSettings, ConfigError> {
    if r.cluster.trim().is_empty() {
        return Err(err(format!("{at}.cluster"), "must name an Envoy cluster"));
    }
    let issuer_parts = split_issuer(issuer);
    let authority = match (r.authority, &issuer_parts) {
        (Some(a), _) if !a.trim().is_empty() => a,
        (Some(_), _) => return Err(err(format!("{at}.authority"), "must not be empty")),
        (None, Some((a, _))) => a.clone(),
        (None, None) => {
            return Err(err(
                format!("{at}.authority"),
                "required when the issuer is not an http(s) URL",
            ))
        }
    };
    if let Some(p) = &r.path {
        if !p.starts_with('/') {
            return Err(err(format!("{at}.path"), "must start with '/'"));
        }
    }
    let discovery_path = if r.discovery {
        match &issuer_parts {
            Some((_, path)) => Some(format!("{path}/.well-known/openid-configuration")),
            None => {
                return Err(err(
                    format!("{at}.discovery"),
                    "OIDC discovery needs an http(s) issuer URL",
                ))
            }
        }
    } else {
        None
    };
    if r.path.is_none() && discovery_path.is_none() {
        return Err(err(at, "one of path or discovery is required"));
    }
    if r.path.is_some() && discovery_path.is_some() {
        return Err(err(
            format!("{at}.path"),
            "path and discovery are exclusive",
        ));
    }
    if r.timeout_ms == 0 || r.timeout_ms > 60_000 {
        return Err(err(
            format!("{at}.timeout_ms"),
            "must be between 1 and 60000",
        ));
    }
    if r.ttl_s == 0 {
        return Err(err(format!("{at}.ttl_s"), "must be positive"));
    }
    if r.min_refetch_interval_s == 0 {
        return Err(err(
            format!("{at}.min_refetch_interval_s"),
            "must be positive (it rate-limits fetches to the identity provider)",
        ));
    }
    Ok(RemoteSettings {
        cluster: r.cluster,
        authority,
        jwks_path: r.path,
        discovery_path,
        timeout_ms: r.timeout_ms,
        ttl_secs: r.ttl_s,
        min_interval_secs: r.min_refetch_interval_s,
        grace_secs: r.grace_s,
    })
}

fn compile_provider(
    p: RawProvider,
    i: usize,
    max_token_bytes: usize,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Provider, ConfigError> {
    let at = format!("providers[{i}]");
    let name = p.name.clone().unwrap_or_else(|| format!("provider{i}"));
    if name.is_empty() {
        return Err(err(format!("{at}.name"), "must not be empty"));
    }
    if p.issuer.trim().is_empty() {
        return Err(err(format!("{at}.issuer"), "must not be empty"));
    }
    let algorithms = match &p.algorithms {
        None => Alg::ASYMMETRIC.to_vec(),
        Some(names) => {
            if names.is_empty() {
                return Err(err(format!("{at}.algorithms"), "must not be empty"));
            }
            let mut algs = Vec::new();
            for (k, n) in names.iter().enumerate() {
                let alg = Alg::from_name(n).ok_or_else(|| {
                    let supported: Vec<&str> = Alg::ALL.iter().map(|a| a.name()).collect();
                    err(
                        format!("{at}.algorithms[{k}]"),
                        format!(
                            "unknown algorithm {n:?} (supported: {})",
                            supported.join(", ")
                        ),
                    )
                })?;
                if !algs.contains(&alg) {
                    algs.push(alg);
                }
            }
            algs
        }
    };
    let wants_hs = algorithms.contains(&Alg::HS256);
    if wants_hs && p.hs256_secret_env.is_none() {
        return Err(err(
            format!("{at}.algorithms"),
            "HS256 needs hs256_secret_env (the secret comes from the Envoy environment)",
        ));
    }
    if p.jwks.is_some() && p.remote_jwks.is_some() {
        return Err(err(
            format!("{at}.remote_jwks"),
            "jwks and remote_jwks are exclusive",
        ));
    }
    if p.jwks.is_none() && p.remote_jwks.is_none() && p.hs256_secret_env.is_none() {
        return Err(err(
            at.as_str(),
            "no keys: one of jwks, remote_jwks or hs256_secret_env is required",
        ));
    }
    let asymmetric: Vec<Alg> = algorithms
        .iter()
        .copied()
        .filter(|a| *a != Alg::HS256)
        .collect();
    let mut keys = KeySet::default();
    if let Some(doc) = &p.jwks {
        keys = keyset_from_value(doc, &asymmetric)
            .map_err(|e| err(format!("{at}.jwks"), e.to_string()))?;
    }
    if let Some(var) = &p.hs256_secret_env {
        let field = format!("{at}.hs256_secret_env");
        if !wants_hs {
            return Err(err(field, "set, but HS256 is not in algorithms"));
        }
        let secret = env(var).ok_or_else(|| {
            err(
                field.as_str(),
                format!("environment variable {var} is not set (list it in vm_config.environment_variables.host_env_keys)"),
            )
        })?;
        if secret.len() < MIN_HS256_SECRET_BYTES {
            return Err(err(
                field,
                format!("the secret in {var} is shorter than {MIN_HS256_SECRET_BYTES} bytes"),
            ));
        }
        keys.keys
            .push(hs256_key(secret.as_bytes(), p.hs256_kid.clone()));
    } else if p.hs256_kid.is_some() {
        return Err(err(
            format!("{at}.hs256_kid"),
            "set without hs256_secret_env",
        ));
    }
    let remote = match p.remote_jwks {
        Some(r) => {
            if asymmetric.is_empty() {
                return Err(err(
                    format!("{at}.remote_jwks"),
                    "a remote JWKS needs an asymmetric algorithm in algorithms",
                ));
            }
            Some(compile_remote(r, &p.issuer, &format!("{at}.remote_jwks"))?)
        }
        None => None,
    };
    if p.clock_skew_s > MAX_CLOCK_SKEW_SECS {
        return Err(err(
            format!("{at}.clock_skew_s"),
            format!("at most {MAX_CLOCK_SKEW_SECS} seconds"),
        ));
    }
    if p.max_lifetime_s == Some(0) {
        return Err(err(format!("{at}.max_lifetime_s"), "must be positive"));
    }
    for (k, a) in p.audiences.iter().enumerate() {
        if a.is_empty() {
            return Err(err(format!("{at}.audiences[{k}]"), "must not be empty"));
        }
    }
    for (k, c) in p.required_claims.iter().enumerate() {
        if c.is_empty() {
            return Err(err(
                format!("{at}.required_claims[{k}]"),
                "must not be empty",
            ));
        }
    }
    if p.subject_claim.is_empty() {
        return Err(err(format!("{at}.subject_claim"), "must not be empty"));
    }
    for (k, c) in p.group_claims.iter().enumerate() {
        if c.is_empty() {
            return Err(err(format!("{at}.group_claims[{k}]"), "must not be empty"));
        }
    }
    let mut forward = Vec::new();
    for (k, f) in p.forward_claims.iter().enumerate() {
        let fat = format!("{at}.forward_claims[{k}]");
        if f.claim.is_empty() {
            return Err(err(format!("{fat}.claim"), "must not be empty"));
        }
        if !valid_header_name(&f.header) {
            return Err(err(
                format!("{fat}.header"),
                format!("{:?} is not a lowercase header name", f.header),
            ));
        }
        if PROTECTED_HEADERS.contains(&f.header.as_str()) {
            return Err(err(
                format!("{fat}.header"),
                format!("{:?} cannot carry a claim", f.header),
            ));
        }
        forward.push((f.claim.clone(), f.header.clone()));
    }
    Ok(Provider {
        name,
        policy: Policy {
            issuer: p.issuer,
            audiences: p.audiences,
            algorithms,
            clock_skew_secs: p.clock_skew_s,
            require_exp: p.require_exp,
            max_lifetime_secs: p.max_lifetime_s,
            required_claims: p.required_claims,
            max_token_bytes,
        },
        claims: ClaimsPolicy {
            subject_claim: p.subject_claim,
            group_claims: p.group_claims,
            forward,
        },
        static_keys: Rc::new(keys),
        remote,
    })
}

fn check_rule_path(path: &str, at: &str) -> Result<(), ConfigError> {
    if !path.starts_with('/') {
        return Err(err(at, "must start with '/'"));
    }
    if path.contains(['?', '#']) {
        return Err(err(at, "paths are matched without query or fragment"));
    }
    Ok(())
}

/// Validates and precomputes.
pub fn compile(
    raw: RawConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    if !(256..=64 * 1024).contains(&raw.max_token_bytes) {
        return Err(err("max_token_bytes", "must be between 256 and 65536"));
    }
    if raw.providers.is_empty() {
        return Err(err("providers", "at least one provider is required"));
    }
    let mut providers: Vec<Provider> = Vec::new();
    for (i, p) in raw.providers.into_iter().enumerate() {
        let provider = compile_provider(p, i, raw.max_token_bytes, env)?;
        if let Some(j) = providers
            .iter()
            .position(|q| q.policy.issuer == provider.policy.issuer)
        {
            return Err(err(
                format!("providers[{i}].issuer"),
                format!("duplicate issuer (also providers[{j}])"),
            ));
        }
        if let Some(j) = providers.iter().position(|q| q.name == provider.name) {
            return Err(err(
                format!("providers[{i}].name"),
                format!("duplicate name (also providers[{j}])"),
            ));
        }
        providers.push(provider);
    }

    let locations = match raw.from_headers {
        None => vec![Location::bearer()],
        Some(list) => {
            if list.is_empty() {
                return Err(err("from_headers", "must not be empty"));
            }
            let mut out: Vec<Location> = Vec::new();
            for (k, l) in list.into_iter().enumerate() {
                if !valid_header_name(&l.header) {
                    return Err(err(
                        format!("from_headers[{k}].header"),
                        format!("{:?} is not a lowercase header name", l.header),
                    ));
                }
                if out.iter().any(|o| o.header == l.header) {
                    return Err(err(format!("from_headers[{k}].header"), "listed twice"));
                }
                if l.prefix.as_deref() == Some("") {
                    return Err(err(
                        format!("from_headers[{k}].prefix"),
                        "must not be empty (omit it instead)",
                    ));
                }
                out.push(Location {
                    header: l.header,
                    prefix: l.prefix,
                });
            }
            out
        }
    };

    let mut rules = Vec::new();
    for (k, r) in raw.rules.into_iter().enumerate() {
        let at = format!("rules[{k}]");
        let path = match (r.exact, r.prefix) {
            (Some(e), None) => {
                check_rule_path(&e, &format!("{at}.exact"))?;
                PathMatch::Exact(e)
            }
            (None, Some(p)) => {
                check_rule_path(&p, &format!("{at}.prefix"))?;
                PathMatch::Prefix(p)
            }
            _ => return Err(err(at, "exactly one of exact or prefix is required")),
        };
        let requirement = if r.anonymous || r.deny {
            if r.anonymous && r.deny {
                return Err(err(
                    format!("{at}.deny"),
                    "anonymous and deny are exclusive",
                ));
            }
            if !r.groups_any.is_empty() || !r.providers.is_empty() {
                return Err(err(
                    format!("{at}.groups_any"),
                    "groups_any/providers need a token: not with anonymous or deny",
                ));
            }
            if r.anonymous {
                Requirement::Anonymous
            } else {
                Requirement::Deny
            }
        } else {
            let mut idx = Vec::new();
            for (m, name) in r.providers.iter().enumerate() {
                let i = providers
                    .iter()
                    .position(|p| &p.name == name)
                    .ok_or_else(|| {
                        err(
                            format!("{at}.providers[{m}]"),
                            format!("no provider named {name:?}"),
                        )
                    })?;
                idx.push(i);
            }
            for (m, g) in r.groups_any.iter().enumerate() {
                if g.is_empty() {
                    return Err(err(format!("{at}.groups_any[{m}]"), "must not be empty"));
                }
            }
            Requirement::Token {
                groups_any: r.groups_any,
                providers: idx,
            }
        };
        rules.push(Rule { path, requirement });
    }

    if raw.cache.max_entries > 1_000_000 {
        return Err(err("cache.max_entries", "at most 1000000"));
    }
    if raw.cache.max_age_s == 0 && raw.cache.max_entries > 0 {
        return Err(err(
            "cache.max_age_s",
            "must be positive (set max_entries to 0 to disable the cache)",
        ));
    }

    let mut owned: HashSet<String> = HashSet::new();
    for p in &providers {
        for (_, h) in &p.claims.forward {
            owned.insert(h.clone());
        }
    }
    for l in &locations {
        if owned.contains(&l.header) {
            return Err(err(
                "from_headers",
                format!("{:?} is also a forwarded-claim header", l.header),
            ));
        }
    }
    let mut owned_headers: Vec<String> = owned.into_iter().collect();
    owned_headers.sort();

    Ok(Config {
        providers,
        locations,
        forward_token: raw.forward_token,
        rules,
        unmatched: match raw.unmatched {
            RawUnmatched::Token => Requirement::any_token(),
            RawUnmatched::Anonymous => Requirement::Anonymous,
            RawUnmatched::Deny => Requirement::Deny,
        },
        cache_max_entries: raw.cache.max_entries,
        cache_max_age_secs: raw.cache.max_age_s,
        max_token_bytes: raw.max_token_bytes,
        share_keys: raw.share_keys,
        owned_headers,
    })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
