//! Plugin configuration parsing with errors that name the failing field.

use std::fmt;

use serde::de::DeserializeOwned;

use crate::host::{self, Buffer};

/// A configuration error: where (a field path such as `providers[0].issuer`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() || self.path == "." {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// The plugin configuration, read in `on_configure` (the host has it only then); an absent one
/// is empty. `None`, logged under `filter`'s name, when the host refuses it: fail closed.
pub fn plugin_configuration(filter: &str) -> Option<Vec<u8>> {
    match host::body(Buffer::PluginConfiguration, 0, usize::MAX) {
        Ok(raw) => Some(raw),
        Err(err) => {
            log::error!("{filter}: cannot read the plugin configuration: {err}");
            None
        }
    }
}

/// The Envoy environment variables a filter's policy names: every string value of a field called
/// `env` anywhere in it (the policies' convention, e.g. key-inject's `{"env": "ANTHROPIC_API_KEY"}`),
/// plus `ANTHROPIC_API_KEY` for key-inject. Sorted, without duplicates. Renderers expose these to
/// the VM (`host_env_keys`); a listed variable that is unset is simply not exposed.
pub fn env_keys(filter: &str, policy: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    fn walk(v: &Value, out: &mut std::collections::BTreeSet<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("env", Value::String(s)) if !s.is_empty() => {
                            out.insert(s.clone());
                        }
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = std::collections::BTreeSet::new();
    if filter == "key-inject" {
        out.insert("ANTHROPIC_API_KEY".to_string());
    }
    walk(policy, &mut out);
    out.into_iter().collect()
}

/// Parses JSON configuration into `T`, reporting the path of the field that failed.
/// An empty configuration is parsed as `{}` so that all-default policies need no text.
pub fn parse_json<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ConfigError> {
    let raw: &[u8] = if raw.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        raw
    };
    let mut de = serde_json::Deserializer::from_slice(raw);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        ConfigError::new(path, err.into_inner().to_string())
    })?;
    de.end()
        .map_err(|err| ConfigError::new("", format!("trailing data: {err}")))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Policy {
        rules: Vec<Rule>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Rule {
        id: String,
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse_json::<Policy>(br#"{"rules":[{"id":"a"},{"id":7}]}"#).unwrap_err();
        assert_eq!(err.path, "rules[1].id");
        assert!(
            err.to_string().starts_with("rules[1].id: invalid type"),
            "{err}"
        );
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = parse_json::<Policy>(br#"{"rulez":[]}"#).unwrap_err();
        assert!(err.message.contains("unknown field `rulez`"), "{err}");
    }

    #[test]
    fn empty_config_means_defaults() {
        assert!(parse_json::<Policy>(b"").unwrap().rules.is_empty());
        assert!(parse_json::<Policy>(b"  \n").unwrap().rules.is_empty());
    }

    #[test]
    fn trailing_garbage_is_an_error() {
        assert!(parse_json::<Policy>(b"{} x").is_err());
    }
}
