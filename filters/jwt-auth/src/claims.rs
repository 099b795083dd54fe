//! From verified claims to identity: the subject, the groups (from configurable claims,
//! nested paths such as `realm_access.roles`, a string or an array), the issuer, and the
//! claims forwarded as headers.
//!
//! Claim paths: a name is first looked up as a top-level key (so namespaced claims such as
//! `https://example.com/groups` work), then as a dot-separated path into nested objects.

use serde_json::{Map, Value};

use crate::verifier::Reject;

/// Most groups kept from one token.
pub const MAX_GROUPS: usize = 128;
/// Longest forwarded header value, in bytes.
pub const MAX_FORWARDED_VALUE: usize = 4096;

/// Looks a claim up by name or dotted path.
pub fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    if !path.contains('.') {
        return None;
    }
    let mut parts = path.split('.');
    let mut current = claims.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

/// Which claims carry identity, and which are forwarded.
#[derive(Debug, Clone)]
pub struct ClaimsPolicy {
    pub subject_claim: String,
    pub group_claims: Vec<String>,
    /// (claim path, lowercase header name)
    pub forward: Vec<(String, String)>,
}

impl Default for ClaimsPolicy {
    fn default() -> Self {
        ClaimsPolicy {
            subject_claim: "sub".into(),
            group_claims: vec!["groups".into()],
            forward: Vec::new(),
        }
    }
}

/// What a verified token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub groups: Vec<String>,
    pub issuer: String,
    /// (header, value) pairs to add to the upstream request.
    pub forwarded: Vec<(String, String)>,
    /// `exp` of the token (seconds since the epoch), if any.
    pub exp: Option<u64>,
}

/// Groups from one claim value: an array of strings, or a string of space-separated names
/// (as OAuth `scope` is). Anything else contributes nothing.
fn push_groups(value: &Value, out: &mut Vec<String>) {
    let mut add = |name: &str| {
        if !name.is_empty() && out.len() < MAX_GROUPS && !out.iter().any(|g| g == name) {
            out.push(name.to_owned());
        }
    };
    match value {
        Value::String(s) => s.split_ascii_whitespace().for_each(&mut add),
        Value::Array(items) => items.iter().filter_map(Value::as_str).for_each(add),
        _ => {}
    }
}

fn header_value(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Null => return None,
        other => other.to_string(),
    };
    // A claim can contain anything: never let it split or smuggle a header.
    if text.len() > MAX_FORWARDED_VALUE || text.chars().any(char::is_control) {
        return None;
    }
    Some(text)
}

/// Extracts the identity; a missing or non-string subject is [`Reject::MissingClaim`].
pub fn identity(
    claims: &Map<String, Value>,
    policy: &ClaimsPolicy,
    issuer: &str,
    exp: Option<u64>,
) -> Result<Identity, Reject> {
    let subject = match lookup(claims, &policy.subject_claim) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(Reject::MissingClaim),
    };
    let mut groups = Vec::new();
    for path in &policy.group_claims {
        if let Some(v) = lookup(claims, path) {
            push_groups(v, &mut groups);
        }
    }
    let forwarded = policy
        .forward
        .iter()
        .filter_map(|(claim, header)| {
            lookup(claims, claim)
                .and_then(header_value)
                .map(|v| (header.clone(), v))
        })
        .collect();
    Ok(Identity {
        subject,
        groups,
        issuer: issuer.to_owned(),
        forwarded,
        exp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn lookup_finds_top_level_then_nested() {
        let c = map(json!({"realm_access":{"roles":["a"]},"https://x.io/g":"b","a.b":1}));
        assert_eq!(lookup(&c, "realm_access.roles"), Some(&json!(["a"])));
        assert_eq!(lookup(&c, "https://x.io/g"), Some(&json!("b")));
        assert_eq!(lookup(&c, "a.b"), Some(&json!(1)));
        assert_eq!(lookup(&c, "realm_access.nope"), None);
        assert_eq!(lookup(&c, "realm_access.roles.x"), None);
    }

    #[test]
    fn groups_from_strings_arrays_and_nested_claims() {
        let c = map(json!({
            "sub": "alice",
            "groups": ["agents", "ops", 7, "agents"],
            "scope": "read write",
            "realm_access": {"roles": ["admin"]}
        }));
        let policy = ClaimsPolicy {
            group_claims: vec!["groups".into(), "scope".into(), "realm_access.roles".into()],
            ..ClaimsPolicy::default()
        };
        let id = identity(&c, &policy, "iss", Some(5)).unwrap();
        assert_eq!(id.subject, "alice");
        assert_eq!(id.groups, vec!["agents", "ops", "read", "write", "admin"]);
        assert_eq!(id.issuer, "iss");
        assert_eq!(id.exp, Some(5));
    }

    #[test]
    fn subject_must_be_a_non_empty_string() {
        let policy = ClaimsPolicy::default();
        for c in [
            json!({}),
            json!({"sub": 5}),
            json!({"sub": ""}),
            json!({"sub": ["a"]}),
        ] {
            assert_eq!(
                identity(&map(c), &policy, "i", None),
                Err(Reject::MissingClaim)
            );
        }
        let custom = ClaimsPolicy {
            subject_claim: "client_id".into(),
            ..ClaimsPolicy::default()
        };
        let c = map(json!({"client_id": "svc"}));
        assert_eq!(identity(&c, &custom, "i", None).unwrap().subject, "svc");
    }

    #[test]
    fn forwarded_claims_never_carry_control_characters() {
        let c = map(json!({
            "sub": "a",
            "email": "a@x.io",
            "evil": "x\r\nx-api-key: stolen",
            "n": 3,
            "obj": {"k": "v"}
        }));
        let policy = ClaimsPolicy {
            forward: vec![
                ("email".into(), "x-email".into()),
                ("evil".into(), "x-evil".into()),
                ("n".into(), "x-n".into()),
                ("obj".into(), "x-obj".into()),
                ("absent".into(), "x-absent".into()),
            ],
            ..ClaimsPolicy::default()
        };
        let id = identity(&c, &policy, "i", None).unwrap();
        assert_eq!(
            id.forwarded,
            vec![
                ("x-email".to_string(), "a@x.io".to_string()),
                ("x-n".to_string(), "3".to_string()),
                ("x-obj".to_string(), "{\"k\":\"v\"}".to_string()),
            ]
        );
    }
}
