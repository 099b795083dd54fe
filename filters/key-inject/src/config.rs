//! The key-inject policy: serde structs as written in the plugin configuration, and the compiled,
//! immutable [`Policy`] every stream shares.
//!
//! Keys are named by environment variables, never by value. Compiling reads each variable once
//! (through an injectable lookup so that tests need no process environment); a missing, empty or
//! non-header-safe value is a [`ConfigError`] that names the variable and the field, never the
//! value.

use std::collections::BTreeMap;

use serde::Deserialize;
use tollgate_common::config::{parse_json, ConfigError};

use crate::select::{Rule, Selector};
use crate::upstream::{AllowedHost, UpstreamCheck};

/// Headers that carry client credentials and are always removed before the upstream.
pub const ALWAYS_STRIPPED: [&str; 3] = ["authorization", "x-api-key", "proxy-authorization"];

/// The `anthropic-version` added when the client sent none, unless configured otherwise.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// Longest accepted key name (it becomes part of a metric name).
const MAX_KEY_NAME: usize = 64;

/// The policy as written (JSON).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// Key name → where its value comes from.
    pub keys: BTreeMap<String, RawKey>,
    /// Ordered selection rules; the first match wins.
    #[serde(default)]
    pub select: Vec<RawRule>,
    /// The key for callers no rule matched (and, unless `require_identity`, for anonymous ones).
    #[serde(default)]
    pub default_key: Option<String>,
    /// Deny requests without identity filter state even when `default_key` is set.
    #[serde(default)]
    pub require_identity: bool,
    /// Status for requests without identity that get no key: 401 or 403.
    #[serde(default = "default_missing_status")]
    pub on_missing_identity: u32,
    /// Extra headers to remove (on top of [`ALWAYS_STRIPPED`]).
    #[serde(default)]
    pub strip_headers: Vec<String>,
    /// Remove the `cookie` header too.
    #[serde(default)]
    pub strip_cookies: bool,
    /// Hosts (`host` or `host:port`) the request's `:authority` must name.
    #[serde(default)]
    pub allowed_upstreams: Vec<String>,
    /// Envoy clusters the request's route must point to (`xds.cluster_name`).
    #[serde(default)]
    pub allowed_clusters: Vec<String>,
    /// `anthropic-version` added when the client sent none; `null` adds nothing.
    #[serde(default = "default_version")]
    pub anthropic_version: Option<String>,
}

fn default_missing_status() -> u32 {
    401
}

fn default_version() -> Option<String> {
    Some(DEFAULT_ANTHROPIC_VERSION.to_string())
}

/// One key as written: the environment variable holding it and how it is sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub env: String,
    #[serde(default)]
    pub scheme: Scheme,
}

/// How the upstream expects its credential.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Scheme {
    /// `x-api-key: <key>` (the Claude API).
    #[default]
    #[serde(rename = "x-api-key")]
    XApiKey,
    /// `authorization: Bearer <key>` (other upstreams, gateways).
    #[serde(rename = "bearer")]
    Bearer,
}

/// One selection rule as written: at least one of `group`/`subject`; all given must match.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
    pub key: String,
}

/// A compiled key: its name (for metrics and logs), the header it goes into and the value.
/// `Debug` never prints the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    pub name: String,
    pub env: String,
    pub scheme: Scheme,
    /// The header name the credential goes into.
    pub header: &'static str,
    /// The complete header value (`sk-…` or `Bearer sk-…`).
    pub value: String,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("name", &self.name)
            .field("env", &self.env)
            .field("scheme", &self.scheme)
            .field("value", &"<redacted>")
            .finish()
    }
}

/// What a request without identity that gets no key is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingIdentity {
    /// 401 `authentication_error` with `WWW-Authenticate: Bearer`.
    Unauthenticated,
    /// 403 `permission_error`.
    Forbidden,
}

/// The compiled policy, shared (behind an `Rc`) by every stream.
#[derive(Debug)]
pub struct Policy {
    pub keys: Vec<Key>,
    pub selector: Selector,
    pub on_missing_identity: MissingIdentity,
    /// Lowercase header names to remove, credentials first; `cookie` when configured.
    pub strip: Vec<String>,
    pub upstream: UpstreamCheck,
    pub anthropic_version: Option<String>,
}

impl Policy {
    /// Parses and compiles `raw`, reading key values from the process environment.
    pub fn from_json(raw: &[u8]) -> Result<Policy, ConfigError> {
        let parsed: RawPolicy = parse_json(raw)?;
        Policy::try_from(parsed)
    }

    /// Compiles with a custom environment lookup (tests, benches).
    pub fn compile(
        raw: RawPolicy,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Policy, ConfigError> {
        if raw.keys.is_empty() {
            return Err(ConfigError::new("keys", "at least one key is required"));
        }
        let mut keys = Vec::with_capacity(raw.keys.len());
        for (name, key) in &raw.keys {
            keys.push(compile_key(name, key, &env)?);
        }
        let index = |path: String, name: &str| -> Result<usize, ConfigError> {
            keys.iter()
                .position(|k| k.name == name)
                .ok_or_else(|| ConfigError::new(path, format!("unknown key `{name}`")))
        };

        let mut rules = Vec::with_capacity(raw.select.len());
        for (i, rule) in raw.select.iter().enumerate() {
            let path = format!("select[{i}]");
            let group = non_empty(&path, "group", &rule.group)?;
            let subject = non_empty(&path, "subject", &rule.subject)?;
            if group.is_none() && subject.is_none() {
                return Err(ConfigError::new(
                    path,
                    "a rule needs `group`, `subject` or both",
                ));
            }
            let key = index(format!("{path}.key"), &rule.key)?;
            rules.push(Rule {
                group,
                subject,
                key,
            });
        }
        let default = match &raw.default_key {
            Some(name) => Some(index("default_key".to_string(), name)?),
            None => None,
        };
        if rules.is_empty() && default.is_none() {
            return Err(ConfigError::new(
                "default_key",
                "required when `select` is empty (no request could ever get a key)",
            ));
        }
        let on_missing_identity = match raw.on_missing_identity {
            401 => MissingIdentity::Unauthenticated,
            403 => MissingIdentity::Forbidden,
            other => {
                return Err(ConfigError::new(
                    "on_missing_identity",
                    format!("must be 401 or 403, not {other}"),
                ))
            }
        };

        let mut strip: Vec<String> = ALWAYS_STRIPPED.iter().map(|h| h.to_string()).collect();
        for (i, header) in raw.strip_headers.iter().enumerate() {
            let lower = header.to_ascii_lowercase();
            if !is_token(&lower) {
                return Err(ConfigError::new(
                    format!("strip_headers[{i}]"),
                    format!("`{header}` is not a valid header name"),
                ));
            }
            if lower.starts_with(':') || lower == "host" {
                return Err(ConfigError::new(
                    format!("strip_headers[{i}]"),
                    "pseudo-headers and `host` cannot be stripped",
                ));
            }
            if !strip.contains(&lower) {
                strip.push(lower);
            }
        }
        if raw.strip_cookies && !strip.iter().any(|h| h == "cookie") {
            strip.push("cookie".to_string());
        }

        let mut hosts = Vec::with_capacity(raw.allowed_upstreams.len());
        for (i, host) in raw.allowed_upstreams.iter().enumerate() {
            hosts.push(
                AllowedHost::parse(host).map_err(|message| {
                    ConfigError::new(format!("allowed_upstreams[{i}]"), message)
                })?,
            );
        }
        let mut clusters = Vec::with_capacity(raw.allowed_clusters.len());
        for (i, cluster) in raw.allowed_clusters.iter().enumerate() {
            if cluster.is_empty() {
                return Err(ConfigError::new(
                    format!("allowed_clusters[{i}]"),
                    "must not be empty",
                ));
            }
            clusters.push(cluster.clone());
        }
        if hosts.is_empty() && clusters.is_empty() {
            return Err(ConfigError::new(
                "allowed_upstreams",
                "name at least one allowed upstream (or `allowed_clusters`): the key is never sent anywhere unchecked",
            ));
        }

        if let Some(version) = &raw.anthropic_version {
            if version.is_empty() || !is_header_value(version) {
                return Err(ConfigError::new(
                    "anthropic_version",
                    "must be a non-empty header value",
                ));
            }
        }

        Ok(Policy {
            keys,
            selector: Selector::new(rules, default, raw.require_identity),
            on_missing_identity,
            strip,
            upstream: UpstreamCheck::new(hosts, clusters),
            anthropic_version: raw.anthropic_version,
        })
    }
}

impl TryFrom<RawPolicy> for Policy {
    type Error = ConfigError;

    /// Compiles with key values from the process environment (in Envoy: the variables listed in
    /// `vm_config.environment_variables.host_env_keys`, seen through WASI).
    fn try_from(raw: RawPolicy) -> Result<Policy, ConfigError> {
        Policy::compile(raw, |name| std::env::var(name).ok())
    }
}

fn compile_key(
    name: &str,
    key: &RawKey,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Key, ConfigError> {
    let path = format!("keys.{name}");
    if name.is_empty()
        || name.len() > MAX_KEY_NAME
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ConfigError::new(
            path,
            format!("key names are 1-{MAX_KEY_NAME} characters of [A-Za-z0-9_-]"),
        ));
    }
    if key.env.is_empty() || !key.env.bytes().all(|b| b.is_ascii_graphic() && b != b'=') {
        return Err(ConfigError::new(
            format!("{path}.env"),
            "must be an environment variable name",
        ));
    }
    let value = match env(&key.env) {
        None => {
            return Err(ConfigError::new(
                format!("{path}.env"),
                format!(
                    "environment variable {} is not set (Envoy: list it in vm_config.environment_variables.host_env_keys)",
                    key.env
                ),
            ))
        }
        Some(v) if v.is_empty() => {
            return Err(ConfigError::new(
                format!("{path}.env"),
                format!("environment variable {} is empty", key.env),
            ))
        }
        Some(v) => v,
    };
    // Printable ASCII without spaces: an API key never has whitespace; a trailing newline from
    // `$(cat file)` is a mistake worth a clear error rather than a silent trim.
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::new(
            format!("{path}.env"),
            format!(
                "environment variable {} holds whitespace or non-printable characters",
                key.env
            ),
        ));
    }
    let (header, value) = match key.scheme {
        Scheme::XApiKey => ("x-api-key", value),
        Scheme::Bearer => ("authorization", format!("Bearer {value}")),
    };
    Ok(Key {
        name: name.to_string(),
        env: key.env.clone(),
        scheme: key.scheme,
        header,
        value,
    })
}

fn non_empty(path: &str, field: &str, v: &Option<String>) -> Result<Option<String>, ConfigError> {
    match v {
        Some(s) if s.is_empty() => Err(ConfigError::new(
            format!("{path}.{field}"),
            "must not be empty",
        )),
        other => Ok(other.clone()),
    }
}

/// RFC 9110 token characters (header names).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_header_value(s: &str) -> bool {
    s.bytes()
        .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn env(name: &str) -> Option<String> {
        match name {
            "A_KEY" => Some("sk-ant-a".to_string()),
            "B_KEY" => Some("sk-ant-b".to_string()),
            "EMPTY" => Some(String::new()),
            "NEWLINE" => Some("sk-ant-x\n".to_string()),
            _ => None,
        }
    }

    fn compile(json: &str) -> Result<Policy, ConfigError> {
        Policy::compile(parse_json(json.as_bytes())?, env)
    }

    const BASE: &str = r#""allowed_upstreams":["api.anthropic.com"]"#;

    #[test]
    fn minimal_policy_compiles_with_defaults() {
        let p = compile(&format!(
            r#"{{"keys":{{"default":{{"env":"A_KEY"}}}},"default_key":"default",{BASE}}}"#
        ))
        .unwrap();
        assert_eq!(p.keys.len(), 1);
        assert_eq!(p.keys[0].header, "x-api-key");
        assert_eq!(p.keys[0].value, "sk-ant-a");
        assert_eq!(p.on_missing_identity, MissingIdentity::Unauthenticated);
        assert_eq!(
            p.strip,
            vec!["authorization", "x-api-key", "proxy-authorization"]
        );
        assert_eq!(p.anthropic_version.as_deref(), Some("2023-06-01"));
    }

    #[test]
    fn bearer_scheme_goes_into_authorization() {
        let p = compile(&format!(
            r#"{{"keys":{{"b":{{"env":"B_KEY","scheme":"bearer"}}}},"default_key":"b",{BASE}}}"#
        ))
        .unwrap();
        assert_eq!(p.keys[0].header, "authorization");
        assert_eq!(p.keys[0].value, "Bearer sk-ant-b");
    }

    #[test]
    fn missing_variable_names_the_variable_and_field() {
        let err = compile(&format!(
            r#"{{"keys":{{"team-a":{{"env":"NOPE_KEY"}}}},"default_key":"team-a",{BASE}}}"#
        ))
        .unwrap_err();
        assert_eq!(err.path, "keys.team-a.env");
        assert!(err.message.contains("NOPE_KEY"), "{err}");
        assert!(err.message.contains("not set"), "{err}");
    }

    #[test]
    fn empty_or_dirty_values_are_rejected_without_echoing_them() {
        for var in ["EMPTY", "NEWLINE"] {
            let err = compile(&format!(
                r#"{{"keys":{{"k":{{"env":"{var}"}}}},"default_key":"k",{BASE}}}"#
            ))
            .unwrap_err();
            assert!(err.message.contains(var), "{err}");
            assert!(!err.to_string().contains("sk-ant"), "{err}");
        }
    }

    #[test]
    fn debug_output_redacts_values() {
        let p = compile(&format!(
            r#"{{"keys":{{"k":{{"env":"A_KEY"}}}},"default_key":"k",{BASE}}}"#
        ))
        .unwrap();
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("sk-ant-a"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
    }

    #[test]
    fn rules_must_reference_known_keys() {
        let err = compile(&format!(
            r#"{{"keys":{{"k":{{"env":"A_KEY"}}}},"select":[{{"group":"g","key":"k"}},{{"subject":"s","key":"zz"}}],{BASE}}}"#
        ))
        .unwrap_err();
        assert_eq!(err.path, "select[1].key");
        let err = compile(&format!(
            r#"{{"keys":{{"k":{{"env":"A_KEY"}}}},"default_key":"zz",{BASE}}}"#
        ))
        .unwrap_err();
        assert_eq!(err.path, "default_key");
    }

    #[test]
    fn rules_need_a_matcher() {
        let err = compile(&format!(
            r#"{{"keys":{{"k":{{"env":"A_KEY"}}}},"select":[{{"key":"k"}}],{BASE}}}"#
        ))
        .unwrap_err();
        assert_eq!(err.path, "select[0]");
        let err = compile(&format!(
            r#"{{"keys":{{"k":{{"env":"A_KEY"}}}},"select":[{{"group":"","key":"k"}}],{BASE}}}"#
        ))
        .unwrap_err();
        assert_eq!(err.path, "select[0].group");
    }

    #[test]
    fn a_policy_must_be_able_to_inject_somewhere() {
        let err = compile(r#"{"keys":{"k":{"env":"A_KEY"}},"default_key":"k"}"#).unwrap_err();
        assert_eq!(err.path, "allowed_upstreams");
        let err = compile(&format!(r#"{{"keys":{{"k":{{"env":"A_KEY"}}}},{BASE}}}"#)).unwrap_err();
        assert_eq!(err.path, "default_key");
        let err = compile(&format!(r#"{{"keys":{{}},{BASE}}}"#)).unwrap_err();
        assert_eq!(err.path, "keys");
    }

    #[test]
    fn field_errors_are_precise() {
        let err = compile(&format!(
            r#"{{"keys":{{"k":{{"env":"A_KEY","scheme":"basic"}}}},"default_key":"k",{BASE}}}"#
        ))
        .unwrap_err();
        assert_eq!(err.path, "keys.k.scheme");
        let err = compile(&format!(
            r#"{{"keys":{{"k":{{"env":"A_KEY"}}}},"default_key":"k","on_missing_identity":500,{BASE}}}"#
        ))
        .unwrap_err();
        assert_eq!(err.path, "on_missing_identity");
        let err = compile(&format!(
            r#"{{"keys":{{"k":{{"env":"A_KEY"}}}},"default_key":"k","strip_header":[],{BASE}}}"#
        ))
        .unwrap_err();
        assert!(err.message.contains("unknown field"), "{err}");
        let err = compile(&format!(
            r#"{{"keys":{{"bad name":{{"env":"A_KEY"}}}},"default_key":"bad name",{BASE}}}"#
        ))
        .unwrap_err();
        assert_eq!(err.path, "keys.bad name");
        let err = compile(&format!(
            r#"{{"keys":{{"k":{{"env":"A_KEY"}}}},"default_key":"k","strip_headers":["ok","bad header"],{BASE}}}"#
        ))
        .unwrap_err();
        assert_eq!(err.path, "strip_headers[1]");
        let err = compile(
            r#"{"keys":{"k":{"env":"A_KEY"}},"default_key":"k","allowed_upstreams":["a.com","http://b.com"]}"#,
        )
        .unwrap_err();
        assert_eq!(err.path, "allowed_upstreams[1]");
    }

    #[test]
    fn strip_list_is_lowercase_deduplicated_and_has_cookies_on_request() {
        let p = compile(&format!(
            r#"{{"keys":{{"k":{{"env":"A_KEY"}}}},"default_key":"k","strip_headers":["X-Goog-Api-Key","Authorization"],"strip_cookies":true,{BASE}}}"#
        ))
        .unwrap();
        assert_eq!(
            p.strip,
            vec![
                "authorization",
                "x-api-key",
                "proxy-authorization",
                "x-goog-api-key",
                "cookie"
            ]
        );
    }

    #[test]
    fn version_can_be_disabled() {
        let p = compile(&format!(
            r#"{{"keys":{{"k":{{"env":"A_KEY"}}}},"default_key":"k","anthropic_version":null,{BASE}}}"#
        ))
        .unwrap();
        assert_eq!(p.anthropic_version, None);
    }

    #[test]
    fn shipped_policies_parse() {
        // The shipped policies name variables; supply any value for each.
        for (name, text) in [
            (
                "key-inject.json",
                include_str!("../../../policies/key-inject.json"),
            ),
            (
                "key-inject-groups.json",
                include_str!("../../../policies/key-inject-groups.json"),
            ),
        ] {
            let raw: RawPolicy =
                parse_json(text.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
            Policy::compile(raw, |_| Some("sk-test".to_string()))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn duplicate_key_sets_are_distinct() {
        let p = compile(&format!(
            r#"{{"keys":{{"a":{{"env":"A_KEY"}},"b":{{"env":"B_KEY"}}}},"default_key":"a",{BASE}}}"#
        ))
        .unwrap();
        let names: HashSet<&str> = p.keys.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names.len(), 2);
    }
}
