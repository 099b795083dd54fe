//! The bundle's configuration: one optional section per policy, each in the format of the
//! standalone filter's configuration (`docs/<filter>.md`), e.g.
//!
//! ```json
//! {"jwt_auth": {...}, "prompt_guard": {...}, "key_inject": {...}, "secret_mask": {...}}
//! ```
//!
//! A missing (or `null`) section turns that policy off; at least one must be present.

use serde::Deserialize;
use serde_json::Value;
use tollgate_common::config::{parse_json, ConfigError};

/// The policies in request order: section name and the standalone filter's name.
pub const STAGES: [(&str, &str); 4] = [
    ("jwt_auth", "jwt-auth"),
    ("prompt_guard", "prompt-guard"),
    ("key_inject", "key-inject"),
    ("secret_mask", "secret-mask"),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    jwt_auth: Option<Value>,
    #[serde(default)]
    prompt_guard: Option<Value>,
    #[serde(default)]
    key_inject: Option<Value>,
    #[serde(default)]
    secret_mask: Option<Value>,
}

/// Each present section as the configuration text its policy parses.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sections {
    pub jwt_auth: Option<Vec<u8>>,
    pub prompt_guard: Option<Vec<u8>>,
    pub key_inject: Option<Vec<u8>>,
    pub secret_mask: Option<Vec<u8>>,
}

fn section(name: &str, value: Option<Value>) -> Result<Option<Vec<u8>>, ConfigError> {
    match value {
        None => Ok(None),
        Some(v @ Value::Object(_)) => serde_json::to_vec(&v)
            .map(Some)
            .map_err(|e| ConfigError::new(name, e.to_string())),
        Some(_) => Err(ConfigError::new(name, "must be an object")),
    }
}

impl Sections {
    /// Splits the plugin configuration into its sections (field-path errors).
    pub fn parse(raw: &[u8]) -> Result<Sections, ConfigError> {
        let raw: Raw = parse_json(raw)?;
        let sections = Sections {
            jwt_auth: section("jwt_auth", raw.jwt_auth)?,
            prompt_guard: section("prompt_guard", raw.prompt_guard)?,
            key_inject: section("key_inject", raw.key_inject)?,
            secret_mask: section("secret_mask", raw.secret_mask)?,
        };
        if sections.names().is_empty() {
            let names: Vec<&str> = STAGES.iter().map(|(s, _)| *s).collect();
            return Err(ConfigError::new(
                "",
                format!(
                    "no policy configured: give at least one of {}",
                    names.join(", ")
                ),
            ));
        }
        Ok(sections)
    }

    /// The sections present, in request order.
    pub fn names(&self) -> Vec<&'static str> {
        let present = [
            self.jwt_auth.is_some(),
            self.prompt_guard.is_some(),
            self.key_inject.is_some(),
            self.secret_mask.is_some(),
        ];
        STAGES
            .iter()
            .zip(present)
            .filter(|(_, on)| *on)
            .map(|((name, _), _)| *name)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_passed_on_as_their_own_json() {
        let s = Sections::parse(
            br#"{"key_inject": {"keys": [{"name": "k", "env": "K"}]}, "secret_mask": {}}"#,
        )
        .unwrap();
        assert_eq!(s.jwt_auth, None);
        assert_eq!(s.prompt_guard, None);
        let ki: Value = serde_json::from_slice(s.key_inject.as_deref().unwrap()).unwrap();
        assert_eq!(ki["keys"][0]["env"], "K");
        assert_eq!(s.secret_mask.as_deref(), Some(&b"{}"[..]));
        assert_eq!(s.names(), ["key_inject", "secret_mask"]);
    }

    #[test]
    fn null_turns_a_policy_off() {
        let s = Sections::parse(br#"{"jwt_auth": null, "secret_mask": {}}"#).unwrap();
        assert_eq!(s.names(), ["secret_mask"]);
    }

    #[test]
    fn errors_name_the_field() {
        let err = Sections::parse(br#"{"jwt": {}}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `jwt`"), "{err}");
        let err = Sections::parse(br#"{"prompt_guard": []}"#).unwrap_err();
        assert_eq!(err.to_string(), "prompt_guard: must be an object");
        let err = Sections::parse(br#"{"secret_mask": "x"}"#).unwrap_err();
        assert_eq!(err.path, "secret_mask");
    }

    #[test]
    fn at_least_one_policy() {
        for raw in [&b""[..], b"{}", br#"{"jwt_auth": null}"#] {
            let err = Sections::parse(raw).unwrap_err();
            assert!(err.to_string().starts_with("no policy configured"), "{err}");
        }
        assert!(Sections::parse(b"[1]").is_err());
        assert!(Sections::parse(b"{} x").is_err());
    }
}
