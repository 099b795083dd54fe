//! The secret-mask policy (plugin configuration) and its compiled, immutable form.
//!
//! ```json
//! {
//!   "default_rules": true,
//!   "disable_rules": ["jwt"],
//!   "rules": [
//!     {"id": "upstream_api_key", "env": "ANTHROPIC_API_KEY"},
//!     {"id": "canary", "literal": "tollgate-canary-7f3a"},
//!     {"id": "internal_token", "regex": "itk_[a-z0-9]{32}", "min_entropy": 3.0}
//!   ],
//!   "allow": ["AKIAIOSFODNN7EXAMPLE"],
//!   "replacement": "[REDACTED:{rule}]",
//!   "keep_prefix": 0
//! }
//! ```
//!
//! `env` rules read the variable with `std::env::var` at configure time (Envoy exposes it to
//! the VM through `vm_config.environment_variables.host_env_keys`); a missing or empty variable
//! is a configuration error unless `"optional": true`.

use std::collections::HashSet;
use std::rc::Rc;

use serde::Deserialize;
use tollgate_common::config::{parse_json, ConfigError};

use crate::matcher::{Replacement, RuleSet};
use crate::rules::{default_rules, valid_id, Pattern, Rule, RuleSpec};

fn yes() -> bool {
    true
}
fn default_replacement() -> String {
    "[REDACTED:{rule}]".to_string()
}
fn default_max_event() -> usize {
    1 << 20
}
fn default_max_body() -> usize {
    8 << 20
}

/// The policy as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Use the built-in credential rules.
    #[serde(default = "yes")]
    pub default_rules: bool,
    /// Built-in rule ids to leave out.
    #[serde(default)]
    pub disable_rules: Vec<String>,
    /// Literal, environment and regex rules, tried before the built-in ones.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Exact texts that are never masked (documentation keys and the like).
    #[serde(default)]
    pub allow: Vec<String>,
    /// The replacement; `{rule}` is the rule id.
    #[serde(default = "default_replacement")]
    pub replacement: String,
    /// Keep up to this many leading bytes of each secret (capped at a quarter of it).
    #[serde(default)]
    pub keep_prefix: usize,
    /// Largest SSE event accepted; a larger one fails the stream closed.
    #[serde(default = "default_max_event")]
    pub max_event_bytes: usize,
    /// Largest non-streaming body buffered for masking; a larger one fails closed.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Force `accept-encoding: identity` upstream so that responses arrive readable.
    #[serde(default = "yes")]
    pub force_identity_encoding: bool,
    /// Masking of request bodies (prompts) before they leave; off by default.
    #[serde(default)]
    pub request: RequestPolicy,
}

/// Request-side masking: the same rules over every string of the JSON request body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestPolicy {
    #[serde(default)]
    pub enabled: bool,
    /// Only for callers in one of these groups (`tollgate.groups`, set by jwt-auth); empty means
    /// every caller. A caller without identity is masked (the safe side).
    #[serde(default)]
    pub groups: Vec<String>,
}

/// Whether request masking applies to a caller with `groups` (`None`: no identity known).
pub fn request_masking_applies(policy: &RequestPolicy, groups: Option<&[String]>) -> bool {
    if !policy.enabled {
        return false;
    }
    if policy.groups.is_empty() {
        return true;
    }
    match groups {
        Some(groups) => groups.iter().any(|g| policy.groups.contains(g)),
        None => true,
    }
}

/// One custom rule: exactly one of `regex`, `literal`, `env`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub id: String,
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub literal: Option<String>,
    /// Name of an environment variable whose value is the literal.
    #[serde(default)]
    pub env: Option<String>,
    /// With `env`: a missing variable is not an error (the rule is left out).
    #[serde(default)]
    pub optional: bool,
    /// Longest match (needed when the regex is unbounded).
    #[serde(default)]
    pub max_len: Option<usize>,
    #[serde(default)]
    pub min_entropy: Option<f64>,
    #[serde(default)]
    pub entropy_skip: usize,
    #[serde(default)]
    pub allow: Vec<String>,
}

/// The compiled policy shared by every stream.
#[derive(Debug)]
pub struct Compiled {
    pub rules: Rc<RuleSet>,
    pub max_event_bytes: usize,
    pub max_body_bytes: usize,
    pub force_identity_encoding: bool,
    pub request: RequestPolicy,
}

impl Compiled {
    /// Rule ids, by rule index (for metrics).
    pub fn rule_ids(&self) -> Vec<String> {
        self.rules.rules().iter().map(|r| r.id.clone()).collect()
    }
}

/// Parses and compiles a policy; `env` looks up environment variables.
pub fn load(raw: &[u8], env: &dyn Fn(&str) -> Option<String>) -> Result<Compiled, ConfigError> {
    let policy: Policy = parse_json(raw)?;
    compile(&policy, env)
}

pub fn compile(
    policy: &Policy,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Compiled, ConfigError> {
    let mut specs: Vec<(String, RuleSpec)> = Vec::new();
    let mut ids = HashSet::new();
    for (i, rc) in policy.rules.iter().enumerate() {
        let path = format!("rules[{i}]");
        if !valid_id(&rc.id) {
            return Err(ConfigError::new(
                format!("{path}.id"),
                "must be 1 to 64 characters of [a-z0-9_]",
            ));
        }
        if !ids.insert(rc.id.clone()) {
            return Err(ConfigError::new(format!("{path}.id"), "duplicate rule id"));
        }
        let pattern = match (&rc.regex, &rc.literal, &rc.env) {
            (Some(r), None, None) => Pattern::Regex(r.clone()),
            (None, Some(l), None) => Pattern::Literal(l.clone()),
            (None, None, Some(name)) => match env(name).map(|v| v.trim().to_string()) {
                Some(v) if !v.is_empty() => Pattern::Literal(v),
                _ if rc.optional => {
                    log::warn!(
                        "secret-mask: {path}: environment variable {name} is not set; rule {} left out",
                        rc.id
                    );
                    continue;
                }
                _ => {
                    return Err(ConfigError::new(
                        format!("{path}.env"),
                        format!(
                            "environment variable {name} is not set in the VM (add it to host_env_keys) or is empty"
                        ),
                    ))
                }
            },
            _ => {
                return Err(ConfigError::new(
                    path,
                    "exactly one of regex, literal, env is required",
                ))
            }
        };
        if let Some(e) = rc.min_entropy {
            if !(0.0..=8.0).contains(&e) {
                return Err(ConfigError::new(
                    format!("{path}.min_entropy"),
                    "must be between 0 and 8 bits",
                ));
            }
        }
        let mut allow = rc.allow.clone();
        allow.extend(policy.allow.iter().cloned());
        specs.push((
            path,
            RuleSpec {
                id: rc.id.clone(),
                pattern,
                max_len: rc.max_len,
                min_entropy: rc.min_entropy,
                entropy_skip: rc.entropy_skip,
                allow,
                allow_substrings: Vec::new(),
            },
        ));
    }
    let defaults = default_rules();
    for (i, id) in policy.disable_rules.iter().enumerate() {
        if !defaults.iter().any(|d| &d.id == id) {
            return Err(ConfigError::new(
                format!("disable_rules[{i}]"),
                format!("unknown built-in rule {id:?}"),
            ));
        }
    }
    if policy.default_rules {
        for mut spec in defaults {
            if policy.disable_rules.contains(&spec.id) {
                continue;
            }
            if !ids.insert(spec.id.clone()) {
                return Err(ConfigError::new(
                    "rules",
                    format!("rule id {:?} is a built-in rule's id", spec.id),
                ));
            }
            spec.allow.extend(policy.allow.iter().cloned());
            specs.push(("default_rules".to_string(), spec));
        }
    }
    if specs.is_empty() {
        return Err(ConfigError::new(
            "rules",
            "no rules: nothing would be masked",
        ));
    }
    let mut rules = Vec::with_capacity(specs.len());
    for (path, spec) in &specs {
        let rule = Rule::compile(spec).map_err(|e| {
            let field = match spec.pattern {
                Pattern::Regex(_) if path.starts_with("rules[") => format!("{path}.regex"),
                Pattern::Literal(_) if path.starts_with("rules[") => path.clone(),
                _ => path.clone(),
            };
            ConfigError::new(field, format!("{}: {e}", spec.id))
        })?;
        rules.push(rule);
    }
    if policy.max_event_bytes < 1024 {
        return Err(ConfigError::new("max_event_bytes", "must be at least 1024"));
    }
    if policy.max_body_bytes < 1024 {
        return Err(ConfigError::new("max_body_bytes", "must be at least 1024"));
    }
    if policy.keep_prefix > 16 {
        return Err(ConfigError::new("keep_prefix", "must be at most 16"));
    }
    if policy.replacement.matches("{rule}").count() > 1 {
        return Err(ConfigError::new(
            "replacement",
            "at most one {rule} placeholder",
        ));
    }
    let replacement = Replacement::from_template(&policy.replacement, policy.keep_prefix);
    Ok(Compiled {
        rules: Rc::new(RuleSet::new(rules, replacement)),
        max_event_bytes: policy.max_event_bytes,
        max_body_bytes: policy.max_body_bytes,
        force_identity_encoding: policy.force_identity_encoding,
        request: policy.request.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::Stats;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn empty_policy_means_default_rules() {
        let c = load(b"", &no_env).unwrap();
        assert!(c.rule_ids().contains(&"anthropic_api_key".to_string()));
        assert_eq!(c.max_event_bytes, 1 << 20);
        assert!(c.force_identity_encoding);
    }

    #[test]
    fn env_rule_masks_the_upstream_key_first() {
        let key = format!("sk-ant-api03-{}AA", "Zx9_".repeat(23) + "q");
        let k2 = key.clone();
        let env = move |name: &str| (name == "ANTHROPIC_API_KEY").then(|| format!("{k2}\n"));
        let c = load(
            br#"{"rules":[{"id":"upstream_api_key","env":"ANTHROPIC_API_KEY"}]}"#,
            &env,
        )
        .unwrap();
        let mut st = Stats::default();
        let out = c.rules.mask_str(&format!("echo {key}!"), &mut st).unwrap();
        assert_eq!(out, "echo [REDACTED:upstream_api_key]!");
    }

    #[test]
    fn missing_env_is_an_error_unless_optional() {
        let err = load(br#"{"rules":[{"id":"k","env":"NOPE"}]}"#, &no_env).unwrap_err();
        assert_eq!(err.path, "rules[0].env");
        assert!(load(
            br#"{"rules":[{"id":"k","env":"NOPE","optional":true}]}"#,
            &no_env
        )
        .is_ok());
    }

    #[test]
    fn errors_name_the_field() {
        let cases: &[(&[u8], &str)] = &[
            (br#"{"rules":[{"id":"x","regex":"a+"}]}"#, "rules[0].regex"),
            (br#"{"rules":[{"id":"x","regex":"("}]}"#, "rules[0].regex"),
            (
                br#"{"rules":[{"id":"X","literal":"abcdefghij"}]}"#,
                "rules[0].id",
            ),
            (br#"{"rules":[{"id":"x"}]}"#, "rules[0]"),
            (br#"{"rules":[{"id":"x","literal":"abc"}]}"#, "rules[0]"),
            (br#"{"disable_rules":["nope"]}"#, "disable_rules[0]"),
            (
                br#"{"rules":[{"id":"x","literal":"abcdefghij","bogus":1}]}"#,
                "rules[0].bogus",
            ),
            (br#"{"default_rules":false}"#, "rules"),
            (br#"{"keep_prefix":99}"#, "keep_prefix"),
            (
                br#"{"rules":[{"id":"jwt","literal":"abcdefghij"}]}"#,
                "rules",
            ),
        ];
        for (raw, path) in cases {
            let err = load(raw, &no_env).unwrap_err();
            assert_eq!(&err.path, path, "{}: {err}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn shipped_policy_compiles() {
        let raw = include_bytes!("../../../policies/secret-mask.json");
        let body = "Qm7_xR2pL9-vT4kW8nZ3cY6bH1jF5dG0sA";
        let key = format!("sk-ant-api03-{}{}{}AA", body, body, &body[..25]);
        let k2 = key.clone();
        let c = load(raw, &move |n: &str| {
            (n == "ANTHROPIC_API_KEY").then(|| k2.clone())
        })
        .unwrap();
        assert_eq!(c.rule_ids()[0], "upstream_api_key");
        let mut st = Stats::default();
        assert_eq!(
            c.rules.mask_str(&key, &mut st).unwrap(),
            "[REDACTED:upstream_api_key]"
        );
        // Without the variable the rule is left out and the built-in rules still apply.
        let c = load(raw, &no_env).unwrap();
        assert_eq!(c.rule_ids()[0], "anthropic_api_key");
        assert_eq!(
            c.rules.mask_str(&key, &mut st).unwrap(),
            "[REDACTED:anthropic_api_key]"
        );
    }

    #[test]
    fn request_masking_scope() {
        let off = RequestPolicy::default();
        assert!(!request_masking_applies(&off, None));
        let all = RequestPolicy {
            enabled: true,
            groups: vec![],
        };
        assert!(request_masking_applies(&all, Some(&["x".to_string()])));
        let some = RequestPolicy {
            enabled: true,
            groups: vec!["contractors".to_string()],
        };
        assert!(request_masking_applies(
            &some,
            Some(&["contractors".to_string()])
        ));
        assert!(!request_masking_applies(
            &some,
            Some(&["staff".to_string()])
        ));
        assert!(request_masking_applies(&some, None), "no identity: mask");
        let c = load(br#"{"request":{"enabled":true,"groups":["a"]}}"#, &no_env).unwrap();
        assert!(c.request.enabled);
        let err = load(br#"{"request":{"enable":true}}"#, &no_env).unwrap_err();
        assert_eq!(err.path, "request.enable");
    }

    #[test]
    fn allow_list_and_disabled_rules() {
        let c = load(
            br#"{"disable_rules":["jwt"],"allow":["AKIAZ2MQ4JXLS7RT5WHB"]}"#,
            &no_env,
        )
        .unwrap();
        assert!(!c.rule_ids().contains(&"jwt".to_string()));
        let mut st = Stats::default();
        assert!(c.rules.mask_str("AKIAZ2MQ4JXLS7RT5WHB", &mut st).is_none());
        assert!(c.rules.mask_str("AKIAZ2MQ4JXLS7RT5WHC", &mut st).is_some());
    }
}
