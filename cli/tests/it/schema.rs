//! A small validator for the Kubernetes structural OpenAPI v3 schemas of the real CRDs
//! (`tests/schemas/*.json`, derived from Istio's and Envoy Gateway's generated CRDs with the
//! descriptions dropped; each file names its source commit in `x-source`).
//!
//! Checked like `kubectl apply --validate=strict` would: unknown fields (unless the schema
//! preserves them), `type`, `required`, `enum`, `pattern`, string lengths, numeric bounds,
//! item counts, `allOf`/`anyOf`/`oneOf`/`not`, `additionalProperties`,
//! `x-kubernetes-int-or-string`, `nullable`. The CEL rules (`x-kubernetes-validations`) are not
//! evaluated here; the few that concern tollgate's manifests are asserted by the tests.

use std::path::PathBuf;

use serde_json::Value;

/// A CRD schema file.
pub struct Crd {
    pub api_version: String,
    pub kind: String,
    schema: Value,
}

/// Loads `tests/schemas/<file>`.
pub fn crd(file: &str) -> Crd {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/schemas")
        .join(file);
    let v: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("schema file")).expect("schema JSON");
    Crd {
        api_version: format!(
            "{}/{}",
            v["group"].as_str().unwrap(),
            v["version"].as_str().unwrap()
        ),
        kind: v["kind"].as_str().unwrap().to_string(),
        schema: v["schema"].clone(),
    }
}

impl Crd {
    /// Every violation of `doc` (empty = valid), as `path: problem`.
    pub fn validate(&self, doc: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        if doc["apiVersion"] != self.api_version.as_str() {
            errors.push(format!(
                "apiVersion: {} is not {}",
                doc["apiVersion"], self.api_version
            ));
        }
        if doc["kind"] != self.kind.as_str() {
            errors.push(format!("kind: {} is not {}", doc["kind"], self.kind));
        }
        if !doc["metadata"]["name"].is_string() {
            errors.push("metadata.name: required".into());
        }
        // apiVersion, kind and metadata are implicit in every CRD schema.
        let mut body = doc.clone();
        if let Some(map) = body.as_object_mut() {
            for implicit in ["apiVersion", "kind", "metadata"] {
                map.remove(implicit);
            }
        }
        check(&self.schema, &body, "", &mut errors);
        errors
    }
}

fn type_ok(ty: &str, v: &Value) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.as_i64().is_some() || v.as_u64().is_some(),
        "number" => v.is_number(),
        _ => false,
    }
}

fn check(schema: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    let at = if path.is_empty() { "<root>" } else { path };
    if v.is_null() && schema["nullable"] == true {
        return;
    }
    if schema["x-kubernetes-int-or-string"] == true {
        if !(v.is_string() || type_ok("integer", v)) {
            errors.push(format!("{at}: {v} is neither an integer nor a string"));
        }
        return;
    }
    if let Some(ty) = schema["type"].as_str() {
        if !type_ok(ty, v) {
            errors.push(format!("{at}: {v} is not of type {ty}"));
            return;
        }
    }
    if let Some(values) = schema["enum"].as_array() {
        if !values.contains(v) {
            errors.push(format!(
                "{at}: {v} is not one of {}",
                Value::Array(values.clone())
            ));
        }
    }
    for sub in schema["allOf"].as_array().into_iter().flatten() {
        check(sub, v, path, errors);
    }
    if let Some(any) = schema["anyOf"].as_array() {
        if !any.iter().any(|s| passes(s, v, path)) {
            errors.push(format!("{at}: matches none of anyOf"));
        }
    }
    if let Some(one) = schema["oneOf"].as_array() {
        let n = one.iter().filter(|s| passes(s, v, path)).count();
        if n != 1 {
            errors.push(format!("{at}: matches {n} of oneOf, expected exactly 1"));
        }
    }
    if schema.get("not").is_some() && passes(&schema["not"], v, path) {
        errors.push(format!("{at}: matches a `not` schema"));
    }
    match v {
        Value::Object(map) => {
            for req in schema["required"].as_array().into_iter().flatten() {
                if let Some(r) = req.as_str() {
                    if !map.contains_key(r) {
                        errors.push(format!("{at}: missing required field `{r}`"));
                    }
                }
            }
            if let Some(max) = schema["maxProperties"].as_u64() {
                if map.len() as u64 > max {
                    errors.push(format!("{at}: more than {max} properties"));
                }
            }
            let props = schema["properties"].as_object();
            let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
            for (k, child) in map {
                let child_path = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if let Some(s) = props.and_then(|p| p.get(k)) {
                    check(s, child, &child_path, errors);
                } else if schema["additionalProperties"].is_object() {
                    check(&schema["additionalProperties"], child, &child_path, errors);
                } else if !preserve
                    && (props.is_some() || schema["type"] == "object")
                    && schema["additionalProperties"] != true
                {
                    errors.push(format!("{child_path}: unknown field"));
                }
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema["maxItems"].as_u64() {
                if items.len() as u64 > max {
                    errors.push(format!("{at}: more than {max} items"));
                }
            }
            if let Some(min) = schema["minItems"].as_u64() {
                if (items.len() as u64) < min {
                    errors.push(format!("{at}: fewer than {min} items"));
                }
            }
            if schema["items"].is_object() {
                for (i, item) in items.iter().enumerate() {
                    check(&schema["items"], item, &format!("{path}[{i}]"), errors);
                }
            }
        }
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(min) = schema["minLength"].as_u64() {
                if len < min {
                    errors.push(format!("{at}: shorter than {min}"));
                }
            }
            if let Some(max) = schema["maxLength"].as_u64() {
                if len > max {
                    errors.push(format!("{at}: longer than {max}"));
                }
            }
            if let Some(p) = schema["pattern"].as_str() {
                match regex::Regex::new(p) {
                    Ok(re) if re.is_match(s) => {}
                    Ok(_) => errors.push(format!("{at}: {s:?} does not match {p}")),
                    Err(e) => errors.push(format!("{at}: schema pattern {p} unusable: {e}")),
                }
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or_default();
            if let Some(min) = schema["minimum"].as_f64() {
                if x < min {
                    errors.push(format!("{at}: {x} below {min}"));
                }
            }
            if let Some(max) = schema["maximum"].as_f64() {
                if x > max {
                    errors.push(format!("{at}: {x} above {max}"));
                }
            }
        }
        _ => {}
    }
}

fn passes(schema: &Value, v: &Value, path: &str) -> bool {
    let mut e = Vec::new();
    check(schema, v, path, &mut e);
    e.is_empty()
}

#[test]
fn the_validator_catches_what_kubectl_would() {
    let wp = crd("istio-wasmplugin.json");
    let good = serde_json::json!({
        "apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
        "metadata": {"name": "x"},
        "spec": {"url": "oci://r/x@sha256:00", "phase": "AUTHN", "failStrategy": "FAIL_CLOSE",
                 "pluginConfig": {"anything": {"goes": [1]}}}
    });
    assert_eq!(wp.validate(&good), Vec::<String>::new());
    let cases = [
        (
            "/spec/phase",
            serde_json::json!("AUTHENTICATION"),
            "not one of",
        ),
        (
            "/spec/failStrategy",
            serde_json::json!("FAIL_CLOSED"),
            "not one of",
        ),
        ("/spec/sha256", serde_json::json!("ABC"), "does not match"),
        (
            "/spec/priority",
            serde_json::json!("high"),
            "not of type integer",
        ),
        (
            "/spec/vmConfig",
            serde_json::json!({"env": [{"valueFrom": "HOST"}]}),
            "missing required field `name`",
        ),
    ];
    for (ptr, value, expect) in cases {
        let mut bad = good.clone();
        let (parent, field) = ptr.rsplit_once('/').unwrap();
        bad.pointer_mut(parent).unwrap()[field] = value;
        let errors = wp.validate(&bad);
        assert!(
            errors.iter().any(|e| e.contains(expect)),
            "{ptr}: {errors:?}"
        );
    }
    let mut typo = good.clone();
    typo["spec"]["pluginConfg"] = serde_json::json!({});
    assert!(wp
        .validate(&typo)
        .iter()
        .any(|e| e.contains("spec.pluginConfg: unknown field")));
    let mut no_url = good.clone();
    no_url["spec"].as_object_mut().unwrap().remove("url");
    assert!(wp.validate(&no_url).iter().any(|e| e.contains("`url`")));
}

/// Makes `Crd` values comparable in failure messages.
impl std::fmt::Debug for Crd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.api_version, self.kind)
    }
}
