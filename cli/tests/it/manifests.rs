//! `tollgate render` output against the real CRD schemas, the request order it encodes, and
//! the committed examples under `deploy/` being exactly what the command renders today.

use std::path::PathBuf;

use serde_json::Value;
use tollgate::artifacts::{self, FILTERS};

use crate::schema::{crd, Crd};
use crate::support;

/// The committed example lock file (digests of a real build, image names under
/// registry.example.com).
const DEPLOY_LOCK: &str = "deploy/tollgate.lock.json";

/// (target, bundle, committed file)
const EXAMPLES: [(&str, bool, &str); 4] = [
    ("istio", false, "deploy/istio/filters.yaml"),
    ("istio", true, "deploy/istio/bundle.yaml"),
    ("envoy-gateway", false, "deploy/envoy-gateway/filters.yaml"),
    ("envoy-gateway", true, "deploy/envoy-gateway/bundle.yaml"),
];

fn root() -> PathBuf {
    tollgate_tests::workspace_root()
}

fn render_text(target: &str, bundle: bool, extra: &[&str]) -> String {
    let mut args = vec!["render", "--target", target, "--lock", DEPLOY_LOCK];
    if bundle {
        args.push("--bundle");
    }
    args.extend_from_slice(extra);
    let out = support::tollgate(&args, None, &[]);
    assert!(
        out.status.success(),
        "tollgate {args:?}: {}",
        support::stderr(&out)
    );
    support::stdout(&out)
}

fn docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).expect("YAML document"))
        .collect()
}

fn crds() -> Vec<Crd> {
    vec![
        crd("istio-wasmplugin.json"),
        crd("istio-envoyfilter.json"),
        crd("envoy-gateway-envoyextensionpolicy.json"),
    ]
}

/// Schema violations plus the CEL rules of the CRDs that concern these manifests.
fn violations(crds: &[Crd], doc: &Value) -> Vec<String> {
    let Some(c) = crds.iter().find(|c| doc["kind"] == c.kind.as_str()) else {
        return vec![format!("no CRD for kind {}", doc["kind"])];
    };
    let mut errors = c.validate(doc);
    let spec = &doc["spec"];
    match c.kind.as_str() {
        "WasmPlugin" => {
            let targets = ["selector", "targetRef", "targetRefs"]
                .iter()
                .filter(|k| spec.get(**k).is_some())
                .count();
            if targets > 1 {
                errors.push("only one of targetRefs or selector can be set".into());
            }
            for env in spec["vmConfig"]["env"].as_array().into_iter().flatten() {
                if env["valueFrom"] == "HOST" && env.get("value").is_some() {
                    errors.push("value may only be set when valueFrom is INLINE".into());
                }
            }
            let url = spec["url"].as_str().unwrap_or_default();
            if let Some(sha) = spec["sha256"].as_str() {
                if !url.ends_with(&format!("@sha256:{sha}")) {
                    errors.push(format!("url {url} does not pin sha256 {sha}"));
                }
            }
        }
        "EnvoyExtensionPolicy" => {
            if spec.get("targetRef").is_some() == spec.get("targetRefs").is_some() {
                errors.push("either targetRef or targetRefs must be used".into());
            }
            for r in spec["targetRefs"].as_array().into_iter().flatten() {
                if r["group"] != "gateway.networking.k8s.io" {
                    errors.push("targetRefs[*].group must be gateway.networking.k8s.io".into());
                }
            }
            for w in spec["wasm"].as_array().into_iter().flatten() {
                let code = &w["code"];
                if (code["type"] == "Image") != code.get("image").is_some() {
                    errors.push("If type is Image, image field needs to be set.".into());
                }
                if (code["type"] == "HTTP") != code.get("http").is_some() {
                    errors.push("If type is HTTP, http field needs to be set.".into());
                }
            }
        }
        _ => {}
    }
    errors
}

#[test]
fn rendered_manifests_match_the_crd_schemas() {
    let crds = crds();
    for (target, bundle, _) in EXAMPLES {
        for extra in [
            &[][..],
            &["--pull-secret", "regcred", "--namespace", "gw"][..],
        ] {
            for doc in docs(&render_text(target, bundle, extra)) {
                let errors = violations(&crds, &doc);
                assert!(
                    errors.is_empty(),
                    "{target} bundle={bundle} {extra:?} {}: {errors:#?}",
                    doc["metadata"]["name"]
                );
            }
        }
    }
}

#[test]
fn a_typo_or_a_wrong_enum_fails_validation() {
    let crds = crds();
    let istio = docs(&render_text("istio", false, &[]));
    let eg = docs(&render_text("envoy-gateway", false, &[]));
    let mutations: Vec<(&Value, &str, Value)> = vec![
        (&istio[0], "/spec/failStrategy", Value::from("FAIL_CLOSED")),
        (&istio[0], "/spec/phase", Value::from("AUTHENTICATION")),
        (&istio[0], "/spec/imagePullPolicy", Value::from("Sometimes")),
        (&istio[0], "/spec/sha256", Value::from("sha256:00")),
        (&eg[0], "/spec/wasm/0/code/type", Value::from("OCI")),
        (&eg[0], "/spec/wasm/0/failOpen", Value::from("no")),
    ];
    for (doc, ptr, value) in mutations {
        let mut bad = doc.clone();
        *bad.pointer_mut(ptr)
            .unwrap_or_else(|| panic!("{ptr} in {doc}")) = value;
        assert!(!violations(&crds, &bad).is_empty(), "{ptr} mutation passed");
    }
    // Renamed fields (typos) are unknown fields.
    for (doc, parent, field) in [
        (&istio[0], "/spec", "pluginConfig"),
        (&istio[2], "/spec/vmConfig", "env"),
        (&eg[0], "/spec/wasm/0", "rootID"),
        (&eg[0], "/spec/wasm/0/code/image", "sha256"),
    ] {
        let mut bad = doc.clone();
        let obj = bad
            .pointer_mut(parent)
            .and_then(Value::as_object_mut)
            .unwrap();
        let v = obj.remove(field).unwrap();
        obj.insert(format!("{field}s"), v);
        let errors = violations(&crds, &bad);
        assert!(
            errors.iter().any(|e| e.contains("unknown field")),
            "{parent}/{field}s: {errors:?}"
        );
    }
    // A missing required field.
    let mut bad = eg[0].clone();
    bad.pointer_mut("/spec/wasm/0")
        .and_then(Value::as_object_mut)
        .unwrap()
        .remove("code");
    assert!(violations(&crds, &bad).iter().any(|e| e.contains("`code`")));
}

#[test]
fn istio_keeps_the_request_order_and_holds_headers_for_prompt_guard() {
    let docs = docs(&render_text("istio", false, &[]));
    let plugins: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "WasmPlugin").collect();
    let names: Vec<&str> = plugins
        .iter()
        .map(|d| d["spec"]["pluginName"].as_str().unwrap())
        .collect();
    assert_eq!(names, FILTERS);
    let priorities: Vec<i64> = plugins
        .iter()
        .map(|d| d["spec"]["priority"].as_i64().unwrap())
        .collect();
    assert!(priorities.windows(2).all(|w| w[0] > w[1]), "{priorities:?}");
    for p in &plugins {
        assert_eq!(p["spec"]["phase"], "AUTHN");
        assert_eq!(p["spec"]["failStrategy"], "FAIL_CLOSE");
        let name = p["spec"]["pluginName"].as_str().unwrap();
        let policy: Value = serde_json::from_slice(
            &std::fs::read(root().join(format!("policies/{name}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(
            p["spec"]["pluginConfig"], policy,
            "{name}: pluginConfig is the policy"
        );
    }
    let key_inject = plugins[2];
    assert!(key_inject["spec"]["vmConfig"]["env"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!({"name": "ANTHROPIC_API_KEY", "valueFrom": "HOST"})));

    // Reserved slots: audit before jwt-auth; approval and limits between prompt-guard and
    // key-inject; secret-mask after audit on the request path (it sees the response first).
    let prio = |n: &str| artifacts::stage(n).unwrap().priority;
    assert!(prio("audit") > prio("jwt-auth"));
    assert!(prio("prompt-guard") > prio("approval") && prio("limits") > prio("key-inject"));
    assert!(prio("audit") > prio("secret-mask"));

    let filters: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "EnvoyFilter").collect();
    let held: Vec<&str> = filters
        .iter()
        .map(|f| f["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        held,
        [
            "tollgate-prompt-guard-hold-headers",
            "tollgate-secret-mask-hold-headers"
        ],
        "the filters that hold request headers for the body"
    );
    let patches = filters[0]["spec"]["configPatches"].as_array().unwrap();
    let wasm = &patches[0]["patch"]["value"]["typed_config"]["config"];
    assert_eq!(wasm["allow_on_headers_stop_iteration"], true);
    assert_eq!(wasm["failure_policy"], "FAIL_RELOAD");
    let prompt_guard = plugins[1];
    assert_eq!(
        wasm["vm_config"]["code"]["remote"]["http_uri"]["uri"],
        prompt_guard["spec"]["url"]
    );
    assert_eq!(
        wasm["vm_config"]["code"]["remote"]["sha256"],
        prompt_guard["spec"]["sha256"]
    );
    let config: Value =
        serde_json::from_str(wasm["configuration"]["value"].as_str().unwrap()).unwrap();
    assert_eq!(config, prompt_guard["spec"]["pluginConfig"]);
    assert_eq!(
        patches[1]["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"],
        "istio-ingress.tollgate-prompt-guard"
    );
    assert_eq!(patches[1]["patch"]["operation"], "REPLACE");

    let bundle = self::docs(&render_text("istio", true, &[]));
    let kinds: Vec<&str> = bundle.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["WasmPlugin", "EnvoyFilter"]);
    let sections: Vec<&String> = bundle[0]["spec"]["pluginConfig"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(sections.len(), 4, "{sections:?}");
}

#[test]
fn envoy_gateway_lists_the_filters_in_request_order_fail_closed() {
    let docs = docs(&render_text("envoy-gateway", false, &[]));
    assert_eq!(docs.len(), 1);
    let wasm = docs[0]["spec"]["wasm"].as_array().unwrap();
    let names: Vec<&str> = wasm.iter().map(|w| w["rootID"].as_str().unwrap()).collect();
    assert_eq!(names, FILTERS);
    for w in wasm {
        assert_eq!(w["failOpen"], false);
        assert_eq!(w["code"]["type"], "Image");
    }
    assert!(wasm[2]["env"]["hostKeys"]
        .as_array()
        .unwrap()
        .contains(&Value::from("ANTHROPIC_API_KEY")));
}

#[test]
fn committed_examples_are_current() {
    let update = std::env::var("TOLLGATE_UPDATE_DEPLOY").as_deref() == Ok("1");
    let mut stale = Vec::new();
    for (target, bundle, file) in EXAMPLES {
        let expected = render_text(target, bundle, &[]);
        let path = root().join(file);
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &expected).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != expected {
            stale.push(format!(
                "{file}: re-render with `cargo run -q -p tollgate -- render --target {target}{} --lock {DEPLOY_LOCK} -o {file}`",
                if bundle { " --bundle" } else { "" }
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "the deploy examples are stale (policies or the renderer changed); or run this test with TOLLGATE_UPDATE_DEPLOY=1:\n{}",
        stale.join("\n")
    );
}
