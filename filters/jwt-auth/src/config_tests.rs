//! One test per configuration error, each checking the field path and the message.

use super::*;
use jwt_simple::prelude::*;
use serde_json::json;

fn env(name: &str) -> Option<String> {
    match name {
        "GOOD_SECRET" => Some("0123456789abcdef0123456789abcdef".into()),
        "SHORT_SECRET" => Some("short".into()),
        _ => None,
    }
}

fn jwks() -> Value {
    let k = ES256KeyPair::generate().with_key_id("k1");
    let jwk: Value = serde_json::from_str(&k.public_key().to_jwk()).unwrap();
    json!({"keys": [jwk]})
}

fn provider() -> Value {
    json!({"issuer": "https://idp.example", "jwks": jwks()})
}

fn load_value(v: Value) -> Result<Config, ConfigError> {
    load(v.to_string().as_bytes(), &env)
}

/// Loads `base` with `patch` applied at provider 0 and expects an error at `path`.
fn provider_error(patch: Value, path: &str, needle: &str) {
    let mut p = provider();
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            p.as_object_mut().unwrap().remove(k);
        } else {
            p[k] = v.clone();
        }
    }
    let e = load_value(json!({"providers": [p]})).unwrap_err();
    assert_eq!(e.path, path, "{e}");
    assert!(e.message.contains(needle), "{e}");
}

#[test]
fn a_minimal_policy_compiles_with_strict_defaults() {
    let c = load_value(json!({"providers": [provider()]})).unwrap();
    let p = &c.providers[0];
    assert_eq!(p.name, "provider0");
    assert_eq!(p.policy.clock_skew_secs, 60);
    assert!(p.policy.require_exp);
    assert_eq!(p.policy.algorithms, Alg::ASYMMETRIC.to_vec());
    assert_eq!(p.static_keys.len(), 1);
    assert_eq!(c.locations, vec![Location::bearer()]);
    assert!(!c.forward_token);
    assert_eq!(c.unmatched, Requirement::any_token());
    assert_eq!(c.cache_max_entries, 1024);
    assert!(c.provider_for("https://idp.example").is_some());
    assert!(c.provider_for("https://idp.example/").is_none());
    assert!(!c.has_remote());
}

#[test]
fn a_full_policy_compiles() {
    let c = load_value(json!({
        "providers": [
            {"name": "dev", "issuer": "http://127.0.0.1:8082", "algorithms": ["RS256"],
             "audiences": ["tollgate"],
             "remote_jwks": {"cluster": "idp", "discovery": true},
             "group_claims": ["groups", "realm_access.roles"],
             "forward_claims": [{"claim": "email", "header": "x-tollgate-email"}]},
            {"name": "svc", "issuer": "svc", "algorithms": ["HS256"], "hs256_secret_env": "GOOD_SECRET",
             "hs256_kid": "s1", "max_lifetime_s": 3600, "required_claims": ["scope"]}
        ],
        "from_headers": [{"header": "authorization", "prefix": "Bearer "}, {"header": "x-api-key"}],
        "rules": [
            {"exact": "/healthz", "anonymous": true},
            {"prefix": "/v1/messages", "groups_any": ["agents"], "providers": ["dev"]},
            {"prefix": "/admin", "deny": true}
        ],
        "unmatched": "deny",
        "cache": {"max_entries": 10, "max_age_s": 60}
    }))
    .unwrap();
    let remote = c.providers[0].remote.as_ref().unwrap();
    assert_eq!(remote.authority, "127.0.0.1:8082");
    assert_eq!(
        remote.discovery_path.as_deref(),
        Some("/.well-known/openid-configuration")
    );
    assert_eq!(
        c.providers[1].static_keys.keys[0].kid.as_deref(),
        Some("s1")
    );
    assert_eq!(c.owned_headers, vec!["x-tollgate-email"]);
    assert_eq!(c.rules.len(), 3);
    assert_eq!(
        c.rules[1].requirement,
        Requirement::Token {
            groups_any: vec!["agents".into()],
            providers: vec![0]
        }
    );
    assert_eq!(c.unmatched, Requirement::Deny);
    assert!(c.has_remote());
}

#[test]
fn discovery_keeps_the_issuer_path() {
    let c = load_value(json!({"providers": [
        {"issuer": "https://auth.example/realms/x/", "remote_jwks": {"cluster": "kc", "discovery": true}}
    ]}))
    .unwrap();
    let r = c.providers[0].remote.as_ref().unwrap();
    assert_eq!(
        r.discovery_path.as_deref(),
        Some("/realms/x/.well-known/openid-configuration")
    );
    assert_eq!(r.authority, "auth.example");
}

#[test]
fn serde_errors_name_the_field() {
    let e = load_value(json!({"providers": [{"issuer": "x", "jwks": jwks(), "clock_skew": 5}]}))
        .unwrap_err();
    assert!(e.message.contains("unknown field `clock_skew`"), "{e}");
    let e = load_value(json!({"providers": [{"jwks": jwks()}]})).unwrap_err();
    assert!(e.message.contains("missing field `issuer`"), "{e}");
    let e = load_value(json!({"providers": [{"issuer": 5, "jwks": jwks()}]})).unwrap_err();
    assert_eq!(e.path, "providers[0].issuer");
    let e = load_value(json!({"providers": [provider()], "unmatched": "allow"})).unwrap_err();
    assert_eq!(e.path, "unmatched");
    let e = load(b"{", &env).unwrap_err();
    assert!(!e.message.is_empty());
}

#[test]
fn no_providers() {
    let e = load(b"", &env).unwrap_err();
    assert_eq!(
        (e.path.as_str(), e.message.as_str()),
        ("providers", "at least one provider is required")
    );
}

#[test]
fn provider_field_errors() {
    provider_error(
        json!({"issuer": ""}),
        "providers[0].issuer",
        "must not be empty",
    );
    provider_error(
        json!({"name": ""}),
        "providers[0].name",
        "must not be empty",
    );
    provider_error(
        json!({"algorithms": []}),
        "providers[0].algorithms",
        "must not be empty",
    );
    provider_error(
        json!({"algorithms": ["RS256", "none"]}),
        "providers[0].algorithms[1]",
        "unknown algorithm \"none\"",
    );
    provider_error(
        json!({"algorithms": ["rs256"]}),
        "providers[0].algorithms[0]",
        "unknown algorithm",
    );
    provider_error(
        json!({"algorithms": ["ES256", "HS256"]}),
        "providers[0].algorithms",
        "HS256 needs hs256_secret_env",
    );
    provider_error(json!({"jwks": null}), "providers[0]", "no keys");
    provider_error(
        json!({"jwks": {"keys": []}}),
        "providers[0].jwks",
        "no usable key",
    );
    provider_error(json!({"jwks": [1]}), "providers[0].jwks", "\"keys\" array");
    provider_error(
        json!({"algorithms": ["RS256"]}),
        "providers[0].jwks",
        "no usable key",
    );
    provider_error(
        json!({"remote_jwks": {"cluster": "idp", "path": "/jwks"}}),
        "providers[0].remote_jwks",
        "exclusive",
    );
    provider_error(
        json!({"clock_skew_s": 900}),
        "providers[0].clock_skew_s",
        "at most 300",
    );
    provider_error(
        json!({"max_lifetime_s": 0}),
        "providers[0].max_lifetime_s",
        "positive",
    );
    provider_error(
        json!({"audiences": ["a", ""]}),
        "providers[0].audiences[1]",
        "empty",
    );
    provider_error(
        json!({"required_claims": [""]}),
        "providers[0].required_claims[0]",
        "empty",
    );
    provider_error(
        json!({"subject_claim": ""}),
        "providers[0].subject_claim",
        "empty",
    );
    provider_error(
        json!({"group_claims": [""]}),
        "providers[0].group_claims[0]",
        "empty",
    );
    provider_error(
        json!({"hs256_kid": "x"}),
        "providers[0].hs256_kid",
        "without hs256_secret_env",
    );
}

#[test]
fn hs256_secret_errors() {
    provider_error(
        json!({"algorithms": ["HS256"], "jwks": null, "hs256_secret_env": "MISSING"}),
        "providers[0].hs256_secret_env",
        "environment variable MISSING is not set",
    );
    provider_error(
        json!({"algorithms": ["HS256"], "jwks": null, "hs256_secret_env": "SHORT_SECRET"}),
        "providers[0].hs256_secret_env",
        "shorter than 32 bytes",
    );
    provider_error(
        json!({"hs256_secret_env": "GOOD_SECRET"}),
        "providers[0].hs256_secret_env",
        "HS256 is not in algorithms",
    );
    // The secret never appears in an error.
    let e = load_value(json!({"providers": [{"issuer": "i", "algorithms": ["HS256"], "hs256_secret_env": "SHORT_SECRET"}]})).unwrap_err();
    assert!(!e.to_string().contains("short\""), "{e}");
}

#[test]
fn forward_claim_errors() {
    provider_error(
        json!({"forward_claims": [{"claim": "email", "header": "X-Email"}]}),
        "providers[0].forward_claims[0].header",
        "not a lowercase header name",
    );
    provider_error(
        json!({"forward_claims": [{"claim": "email", "header": "x-api-key"}]}),
        "providers[0].forward_claims[0].header",
        "cannot carry a claim",
    );
    provider_error(
        json!({"forward_claims": [{"claim": "", "header": "x-e"}]}),
        "providers[0].forward_claims[0].claim",
        "empty",
    );
}

fn remote_error(remote: Value, issuer: &str, path: &str, needle: &str) {
    let e =
        load_value(json!({"providers": [{"issuer": issuer, "remote_jwks": remote}]})).unwrap_err();
    assert_eq!(e.path, path, "{e}");
    assert!(e.message.contains(needle), "{e}");
}

#[test]
fn remote_jwks_errors() {
    let at = "providers[0].remote_jwks";
    remote_error(
        json!({"cluster": " ", "path": "/j"}),
        "https://i",
        &format!("{at}.cluster"),
        "Envoy cluster",
    );
    remote_error(
        json!({"cluster": "c"}),
        "https://i",
        at,
        "one of path or discovery",
    );
    remote_error(
        json!({"cluster": "c", "path": "jwks"}),
        "https://i",
        &format!("{at}.path"),
        "start with '/'",
    );
    remote_error(
        json!({"cluster": "c", "path": "/j", "discovery": true}),
        "https://i",
        &format!("{at}.path"),
        "exclusive",
    );
    remote_error(
        json!({"cluster": "c", "path": "/j"}),
        "urn:idp",
        &format!("{at}.authority"),
        "required",
    );
    remote_error(
        json!({"cluster": "c", "authority": "a", "discovery": true}),
        "urn:idp",
        &format!("{at}.discovery"),
        "http(s) issuer",
    );
    remote_error(
        json!({"cluster": "c", "path": "/j", "timeout_ms": 0}),
        "https://i",
        &format!("{at}.timeout_ms"),
        "between",
    );
    remote_error(
        json!({"cluster": "c", "path": "/j", "ttl_s": 0}),
        "https://i",
        &format!("{at}.ttl_s"),
        "positive",
    );
    remote_error(
        json!({"cluster": "c", "path": "/j", "min_refetch_interval_s": 0}),
        "https://i",
        &format!("{at}.min_refetch_interval_s"),
        "rate-limits",
    );
    let e = load_value(json!({"providers": [{"issuer": "https://i", "algorithms": ["HS256"], "hs256_secret_env": "GOOD_SECRET", "remote_jwks": {"cluster": "c", "path": "/j"}}]})).unwrap_err();
    assert_eq!(e.path, at);
}

#[test]
fn duplicate_providers() {
    let e = load_value(json!({"providers": [provider(), provider()]})).unwrap_err();
    assert_eq!(e.path, "providers[1].issuer");
    assert!(e.message.contains("duplicate issuer"), "{e}");
    let mut other = provider();
    other["issuer"] = "https://other".into();
    other["name"] = "provider0".into();
    let e = load_value(json!({"providers": [provider(), other]})).unwrap_err();
    assert_eq!(e.path, "providers[1].name");
}

fn top_error(patch: Value, path: &str, needle: &str) {
    let mut c = json!({"providers": [provider()]});
    for (k, v) in patch.as_object().unwrap() {
        c[k] = v.clone();
    }
    let e = load_value(c).unwrap_err();
    assert_eq!(e.path, path, "{e}");
    assert!(e.message.contains(needle), "{e}");
}

#[test]
fn top_level_errors() {
    top_error(json!({"max_token_bytes": 10}), "max_token_bytes", "between");
    top_error(
        json!({"from_headers": []}),
        "from_headers",
        "must not be empty",
    );
    top_error(
        json!({"from_headers": [{"header": "Authorization"}]}),
        "from_headers[0].header",
        "lowercase",
    );
    top_error(
        json!({"from_headers": [{"header": "x-a"}, {"header": "x-a"}]}),
        "from_headers[1].header",
        "twice",
    );
    top_error(
        json!({"from_headers": [{"header": "x-a", "prefix": ""}]}),
        "from_headers[0].prefix",
        "empty",
    );
    top_error(
        json!({"cache": {"max_entries": 2000000}}),
        "cache.max_entries",
        "at most",
    );
    top_error(
        json!({"cache": {"max_age_s": 0}}),
        "cache.max_age_s",
        "positive",
    );
}

#[test]
fn rule_errors() {
    top_error(
        json!({"rules": [{"anonymous": true}]}),
        "rules[0]",
        "exactly one of exact or prefix",
    );
    top_error(
        json!({"rules": [{"exact": "/a", "prefix": "/b"}]}),
        "rules[0]",
        "exactly one",
    );
    top_error(
        json!({"rules": [{"exact": "a"}]}),
        "rules[0].exact",
        "start with '/'",
    );
    top_error(
        json!({"rules": [{"prefix": "/a?x"}]}),
        "rules[0].prefix",
        "without query",
    );
    top_error(
        json!({"rules": [{"exact": "/a", "anonymous": true, "deny": true}]}),
        "rules[0].deny",
        "exclusive",
    );
    top_error(
        json!({"rules": [{"exact": "/a", "anonymous": true, "groups_any": ["g"]}]}),
        "rules[0].groups_any",
        "need a token",
    );
    top_error(
        json!({"rules": [{"exact": "/a", "providers": ["nope"]}]}),
        "rules[0].providers[0]",
        "no provider named \"nope\"",
    );
    top_error(
        json!({"rules": [{"exact": "/a", "groups_any": [""]}]}),
        "rules[0].groups_any[0]",
        "empty",
    );
}

#[test]
fn the_shipped_dev_policy_compiles() {
    let raw = include_bytes!("../../../policies/jwt-auth.json");
    let c = load(raw, &env).unwrap();
    let p = &c.providers[0];
    assert_eq!(p.policy.issuer, "http://127.0.0.1:8082");
    assert_eq!(p.policy.audiences, vec!["tollgate"]);
    let r = p.remote.as_ref().unwrap();
    assert_eq!(
        (r.cluster.as_str(), r.authority.as_str()),
        ("idp", "127.0.0.1:8082")
    );
    assert_eq!(
        r.discovery_path.as_deref(),
        Some("/.well-known/openid-configuration")
    );
    assert_eq!(c.locations.len(), 2);
    assert_eq!(c.rules[0].requirement, Requirement::Anonymous);
}
