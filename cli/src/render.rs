//! `tollgate render --target istio|envoy-gateway`: the Kubernetes resources that load the
//! packaged filters into a mesh, pinned by digest, configured from `policies/`.
//!
//! - **Istio**: one `WasmPlugin` per filter (or one for the bundle): `url` pinned by digest and
//!   `sha256` (the manifest digest), `phase: AUTHN` with priorities that keep the request order
//!   of [`crate::artifacts::STAGES`], `failStrategy: FAIL_CLOSE`, `pluginConfig` from the policy,
//!   `vmConfig.env` with `valueFrom: HOST` for the variables the policy names (the upstream key).
//!   Plus, for prompt-guard, secret-mask and the bundle, an `EnvoyFilter` that gives them Envoy's
//!   `allow_on_headers_stop_iteration: true`, which `WasmPlugin` cannot express
//!   (istio/istio discussion 60126): istiod only *adds* ECDS resources from an `EnvoyFilter`, it
//!   never merges into a `WasmPlugin`'s, so the patch replaces the plugin's filter entry in place
//!   (same position in the chain) by one that points at an added ECDS resource holding the full
//!   Wasm configuration with the flag, the same image (by digest) and the same policy. The
//!   istio-agent pulls `oci://` code of any ECDS Wasm resource the same way.
//! - **Envoy Gateway**: one `EnvoyExtensionPolicy` whose `wasm[]` lists the filters in request
//!   order (Envoy Gateway keeps list order), `code.type: Image` with the digest-pinned URL and
//!   `sha256`, `failOpen: false`, `config` from the policy, `env.hostKeys`.
//!
//! The output is deterministic (object keys sorted), so committed examples can be checked for
//! being current.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::artifacts::{self, BUNDLE, BUNDLE_PRIORITY, FILTERS, HOLDS_HEADERS, ISTIO_PHASE};
use crate::lock::{Lock, LockError, LockedImage};

/// Where the manifests go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// Istio: `WasmPlugin` (+ `EnvoyFilter` for header holding).
    Istio,
    /// Envoy Gateway: `EnvoyExtensionPolicy`.
    EnvoyGateway,
}

/// `tollgate render` arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// The mesh flavour to render for.
    #[arg(long, value_enum)]
    pub target: Target,
    /// The lock file `tollgate package --lock` wrote.
    #[arg(long, value_name = "FILE")]
    pub lock: Option<PathBuf>,
    /// An image by digest, overriding the lock file (repeatable):
    /// NAME=oci://REGISTRY/REPO@sha256:<hex>.
    #[arg(long = "image", value_name = "NAME=REF")]
    pub images: Vec<String>,
    /// One plugin running the bundle instead of one per filter.
    #[arg(long)]
    pub bundle: bool,
    /// The policy directory (`<dir>/<filter>.json`).
    #[arg(long, default_value = "policies")]
    pub policies: PathBuf,
    /// The namespace of the resources (default: istio-ingress for Istio, default for Envoy
    /// Gateway).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Istio: the workload selector label, KEY=VALUE (repeatable).
    #[arg(
        long = "selector",
        value_name = "KEY=VALUE",
        default_value = "istio=ingressgateway"
    )]
    pub selector: Vec<String>,
    /// Envoy Gateway: the Gateway the policy attaches to.
    #[arg(long, default_value = "eg")]
    pub gateway: String,
    /// The pull secret for a private registry (Istio `imagePullSecret`, Envoy Gateway
    /// `pullSecretRef`).
    #[arg(long)]
    pub pull_secret: Option<String>,
    /// Write here instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("`{0}` is not NAME=REF")]
    ImageFlag(String),
    #[error("unknown artifact `{0}` in --image")]
    UnknownArtifact(String),
    #[error("no image for {0}: pass --lock FILE (from `tollgate package --lock`) or --image {0}=oci://…@sha256:…")]
    MissingImage(String),
    #[error("reading the policy {path}: {source}")]
    ReadPolicy {
        path: String,
        source: std::io::Error,
    },
    #[error("the policy {path} is not a JSON object: {reason}")]
    BadPolicy { path: String, reason: String },
    #[error("`{0}` is not KEY=VALUE")]
    Selector(String),
    #[error("serializing YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// Labels on every rendered resource.
const PART_OF: &str = "tollgate";
/// The Wasm HTTP filter's type URL.
const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
/// The RBAC filter's type URL: when the istio-agent cannot fetch a fail-closed module it
/// answers the ECDS request with a deny-all RBAC filter instead, so the entry accepts both (as
/// istiod's own `WasmPlugin` entries do).
const RBAC_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";

/// One plugin to render: a filter or the bundle.
#[derive(Clone, Debug, PartialEq)]
pub struct Plugin {
    /// `jwt-auth` … or `bundle`.
    pub name: String,
    pub image: LockedImage,
    /// The plugin configuration (the policy; for the bundle, one section per filter).
    pub config: Value,
    /// Envoy environment variables the plugin may read (sorted).
    pub env_keys: Vec<String>,
    /// Istio priority within [`ISTIO_PHASE`].
    pub priority: i32,
}

impl Plugin {
    /// The resource name: `tollgate-<name>`.
    pub fn resource_name(&self) -> String {
        format!("tollgate-{}", self.name)
    }
}

/// The Envoy environment variables a policy names (shared with the test renderer).
pub use tollgate_common::config::env_keys;

/// Reads `<dir>/<name>.json`.
pub fn read_policy(dir: &Path, name: &str) -> Result<Value, RenderError> {
    let path = dir.join(format!("{name}.json"));
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|source| RenderError::ReadPolicy {
        path: shown.clone(),
        source,
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|e| RenderError::BadPolicy {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    if !value.is_object() {
        return Err(RenderError::BadPolicy {
            path: shown,
            reason: "not an object".into(),
        });
    }
    Ok(value)
}

/// The images by artifact name: the lock file's, overridden by `--image` flags.
pub fn images(
    lock: Option<&Path>,
    flags: &[String],
) -> Result<BTreeMap<String, LockedImage>, RenderError> {
    let mut out = match lock {
        Some(path) => Lock::read(path)?.artifacts,
        None => BTreeMap::new(),
    };
    for flag in flags {
        let (name, reference) = flag
            .split_once('=')
            .ok_or_else(|| RenderError::ImageFlag(flag.clone()))?;
        if !artifacts::ARTIFACTS.contains(&name) {
            return Err(RenderError::UnknownArtifact(name.to_string()));
        }
        out.insert(name.to_string(), LockedImage::parse(reference)?);
    }
    Ok(out)
}

/// The plugins to render: the four filters in request order, or the bundle alone.
pub fn plugins(
    images: &BTreeMap<String, LockedImage>,
    policies: &Path,
    bundle: bool,
) -> Result<Vec<Plugin>, RenderError> {
    let image = |name: &str| {
        images
            .get(name)
            .cloned()
            .ok_or_else(|| RenderError::MissingImage(name.to_string()))
    };
    let mut filters = Vec::new();
    for name in FILTERS {
        let config = read_policy(policies, name)?;
        let priority = artifacts::stage(name)
            .map(|s| s.priority)
            .unwrap_or_default();
        filters.push((name, config, priority));
    }
    if bundle {
        let mut sections = Map::new();
        let mut keys = BTreeSet::new();
        for (name, config, _) in &filters {
            keys.extend(env_keys(name, config));
            sections.insert(artifacts::bundle_section(name), config.clone());
        }
        return Ok(vec![Plugin {
            name: BUNDLE.to_string(),
            image: image(BUNDLE)?,
            config: Value::Object(sections),
            env_keys: keys.into_iter().collect(),
            priority: BUNDLE_PRIORITY,
        }]);
    }
    filters
        .into_iter()
        .map(|(name, config, priority)| {
            Ok(Plugin {
                name: name.to_string(),
                image: image(name)?,
                env_keys: env_keys(name, &config),
                config,
                priority,
            })
        })
        .collect()
}

fn metadata(name: &str, namespace: &str) -> Value {
    json!({
        "name": name,
        "namespace": namespace,
        "labels": { "app.kubernetes.io/part-of": PART_OF },
    })
}

/// Istio `WasmPlugin` of one plugin.
pub fn wasm_plugin(
    p: &Plugin,
    namespace: &str,
    selector: &Map<String, Value>,
    pull_secret: Option<&str>,
) -> Value {
    let mut spec = json!({
        "selector": { "matchLabels": selector },
        "url": p.image.url,
        "sha256": p.image.sha256_hex(),
        "imagePullPolicy": "IfNotPresent",
        "pluginName": p.name,
        "phase": ISTIO_PHASE,
        "priority": p.priority,
        "failStrategy": "FAIL_CLOSE",
        "type": "HTTP",
        "pluginConfig": p.config,
    });
    if let Some(secret) = pull_secret {
        spec["imagePullSecret"] = json!(secret);
    }
    if !p.env_keys.is_empty() {
        let env: Vec<Value> = p
            .env_keys
            .iter()
            .map(|k| json!({ "name": k, "valueFrom": "HOST" }))
            .collect();
        spec["vmConfig"] = json!({ "env": env });
    }
    json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": metadata(&p.resource_name(), namespace),
        "spec": spec,
    })
}

/// The name of the filter entry istiod generates for a `WasmPlugin`: `<namespace>.<name>`.
pub fn istio_filter_name(p: &Plugin, namespace: &str) -> String {
    format!("{namespace}.{}", p.resource_name())
}

/// The ECDS resource the header-holding patch adds.
pub fn hold_headers_resource(p: &Plugin, namespace: &str) -> String {
    format!("{}.hold-headers", istio_filter_name(p, namespace))
}

/// The Envoy Wasm filter configuration (proto JSON) of a plugin, code fetched from its image
/// by the istio-agent: what the header-holding `EnvoyFilter` adds over ECDS.
pub fn envoy_wasm_config(p: &Plugin, namespace: &str) -> Value {
    let mut vm = json!({
        "runtime": "envoy.wasm.runtime.v8",
        "code": { "remote": {
            "http_uri": { "uri": p.image.url, "cluster": "_", "timeout": "30s" },
            "sha256": p.image.sha256_hex(),
        }},
    });
    if !p.env_keys.is_empty() {
        vm["environment_variables"] = json!({ "host_env_keys": p.env_keys });
    }
    json!({
        "@type": WASM_TYPE,
        "config": {
            "name": istio_filter_name(p, namespace),
            "root_id": p.name,
            "vm_config": vm,
            "configuration": {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": canonical_json(&p.config),
            },
            // Plain Envoy PluginConfig (≥ 1.35 for the flag): the shipped failure policy.
            "failure_policy": "FAIL_RELOAD",
            "allow_on_headers_stop_iteration": true,
        }
    })
}

/// Istio `EnvoyFilter` that gives `p` Envoy's `allow_on_headers_stop_iteration: true`.
pub fn hold_headers_filter(p: &Plugin, namespace: &str, selector: &Map<String, Value>) -> Value {
    let resource = hold_headers_resource(p, namespace);
    json!({
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": metadata(&format!("{}-hold-headers", p.resource_name()), namespace),
        "spec": {
            "workloadSelector": { "labels": selector },
            "configPatches": [
                {
                    "applyTo": "EXTENSION_CONFIG",
                    "patch": {
                        "operation": "ADD",
                        "value": { "name": resource, "typed_config": envoy_wasm_config(p, namespace) },
                    },
                },
                {
                    "applyTo": "HTTP_FILTER",
                    "match": {
                        // Wherever istiod put the WasmPlugin entry (gateway or sidecar): the
                        // entry exists exactly where the WasmPlugin applies.
                        "context": "ANY",
                        "listener": { "filterChain": { "filter": {
                            "name": "envoy.filters.network.http_connection_manager",
                            "subFilter": { "name": istio_filter_name(p, namespace) },
                        }}},
                    },
                    "patch": {
                        "operation": "REPLACE",
                        "value": {
                            "name": resource,
                            "config_discovery": {
                                "config_source": { "ads": {}, "initial_fetch_timeout": "0s" },
                                "type_urls": [WASM_TYPE, RBAC_TYPE],
                            },
                        },
                    },
                },
            ],
        },
    })
}

/// Envoy Gateway `EnvoyExtensionPolicy` running `plugins` in list (request) order.
pub fn extension_policy(
    plugins: &[Plugin],
    namespace: &str,
    gateway: &str,
    pull_secret: Option<&str>,
) -> Value {
    let wasm: Vec<Value> = plugins
        .iter()
        .map(|p| {
            let mut image = json!({ "url": p.image.reference(), "sha256": p.image.sha256_hex() });
            if let Some(secret) = pull_secret {
                image["pullSecretRef"] = json!({ "name": secret });
            }
            let mut w = json!({
                "name": p.resource_name(),
                "rootID": p.name,
                "code": { "type": "Image", "image": image },
                "config": p.config,
                "failOpen": false,
            });
            if !p.env_keys.is_empty() {
                w["env"] = json!({ "hostKeys": p.env_keys });
            }
            w
        })
        .collect();
    let name = if plugins.len() == 1 && plugins[0].name == BUNDLE {
        "tollgate-bundle"
    } else {
        "tollgate"
    };
    json!({
        "apiVersion": "gateway.envoyproxy.io/v1alpha1",
        "kind": "EnvoyExtensionPolicy",
        "metadata": metadata(name, namespace),
        "spec": {
            "targetRefs": [{ "group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway }],
            "wasm": wasm,
        },
    })
}

fn selector_map(selector: &[String]) -> Result<Map<String, Value>, RenderError> {
    let mut out = Map::new();
    for s in selector {
        let (k, v) = s
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| RenderError::Selector(s.clone()))?;
        out.insert(k.to_string(), json!(v));
    }
    Ok(out)
}

/// Every resource for `args`, as JSON values in apply order.
pub fn resources(args: &Args) -> Result<Vec<Value>, RenderError> {
    let images = images(args.lock.as_deref(), &args.images)?;
    let plugins = plugins(&images, &args.policies, args.bundle)?;
    let pull_secret = args.pull_secret.as_deref();
    Ok(match args.target {
        Target::Istio => {
            let namespace = args.namespace.as_deref().unwrap_or("istio-ingress");
            let selector = selector_map(&args.selector)?;
            let mut docs: Vec<Value> = plugins
                .iter()
                .map(|p| wasm_plugin(p, namespace, &selector, pull_secret))
                .collect();
            docs.extend(
                plugins
                    .iter()
                    .filter(|p| HOLDS_HEADERS.contains(&p.name.as_str()))
                    .map(|p| hold_headers_filter(p, namespace, &selector)),
            );
            docs
        }
        Target::EnvoyGateway => {
            let namespace = args.namespace.as_deref().unwrap_or("default");
            vec![extension_policy(
                &plugins,
                namespace,
                &args.gateway,
                pull_secret,
            )]
        }
    })
}

/// Compact JSON with every object's keys sorted, whatever map type `serde_json` was built with
/// (its `preserve_order` feature would otherwise change the text, and the committed examples).
pub fn canonical_json(v: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    if let Some(child) = map.get(k) {
                        write(child, out);
                    }
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    out
}

/// JSON → YAML with every mapping's keys sorted (the output never depends on how a map type
/// happens to iterate).
fn to_yaml(v: &Value) -> serde_yaml::Value {
    match v {
        Value::Null => serde_yaml::Value::Null,
        Value::Bool(b) => serde_yaml::Value::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                serde_yaml::Value::Number(i.into())
            } else if let Some(u) = n.as_u64() {
                serde_yaml::Value::Number(u.into())
            } else {
                serde_yaml::Value::Number(n.as_f64().unwrap_or_default().into())
            }
        }
        Value::String(s) => serde_yaml::Value::String(s.clone()),
        Value::Array(items) => serde_yaml::Value::Sequence(items.iter().map(to_yaml).collect()),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = serde_yaml::Mapping::new();
            for k in keys {
                if let Some(v) = map.get(k) {
                    out.insert(serde_yaml::Value::String(k.clone()), to_yaml(v));
                }
            }
            serde_yaml::Value::Mapping(out)
        }
    }
}

/// The resources as one multi-document YAML text with a header saying where it comes from.
pub fn to_yaml_text(args: &Args, docs: &[Value]) -> Result<String, RenderError> {
    let target = match args.target {
        Target::Istio => "istio",
        Target::EnvoyGateway => "envoy-gateway",
    };
    let mut out = format!(
        "# Generated by `tollgate render --target {target}{}` from the digests of `tollgate package`\n\
         # and the policies; do not edit by hand, re-render (docs/deploy.md).\n",
        if args.bundle { " --bundle" } else { "" }
    );
    for doc in docs {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&to_yaml(doc))?);
    }
    Ok(out)
}

/// Runs `tollgate render`: writes the YAML to `--output` or returns it for stdout.
pub fn run(args: &Args) -> Result<String, RenderError> {
    let docs = resources(args)?;
    let text = to_yaml_text(args, &docs)?;
    if let Some(path) = &args.output {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| RenderError::Write {
                path: dir.display().to_string(),
                source,
            })?;
        }
        std::fs::write(path, &text).map_err(|source| RenderError::Write {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn plugin(name: &str) -> Plugin {
        Plugin {
            name: name.into(),
            image: LockedImage::new(&format!("reg.example/t/{name}"), D).unwrap(),
            config: json!({"keys": {"default": {"env": "ANTHROPIC_API_KEY"}}, "n": 300}),
            env_keys: vec!["ANTHROPIC_API_KEY".into()],
            priority: 500,
        }
    }

    #[test]
    fn env_keys_come_from_the_policy() {
        let p = json!({"keys":{"a":{"env":"TEAM_A_KEY"},"b":{"env":"B"}},"rules":[{"env":"B"}],"x":{"env":1}});
        assert_eq!(env_keys("secret-mask", &p), ["B", "TEAM_A_KEY"]);
        assert_eq!(
            env_keys("key-inject", &p),
            ["ANTHROPIC_API_KEY", "B", "TEAM_A_KEY"]
        );
    }

    #[test]
    fn wasm_plugin_pins_digest_and_fails_closed() {
        let sel = selector_map(&["istio=ingressgateway".into()]).unwrap();
        let w = wasm_plugin(&plugin("key-inject"), "ns", &sel, Some("regcred"));
        assert_eq!(
            w["spec"]["url"],
            format!("oci://reg.example/t/key-inject@{D}")
        );
        assert_eq!(w["spec"]["sha256"], &D[7..]);
        assert_eq!(w["spec"]["failStrategy"], "FAIL_CLOSE");
        assert_eq!(w["spec"]["imagePullSecret"], "regcred");
        assert_eq!(
            w["spec"]["vmConfig"]["env"],
            json!([{"name": "ANTHROPIC_API_KEY", "valueFrom": "HOST"}])
        );
        assert_eq!(w["spec"]["pluginConfig"]["n"], 300);
    }

    #[test]
    fn hold_headers_replaces_the_plugin_entry_with_the_flagged_config() {
        let sel = selector_map(&["istio=ingressgateway".into()]).unwrap();
        let f = hold_headers_filter(&plugin("prompt-guard"), "ns", &sel);
        let patches = f["spec"]["configPatches"].as_array().unwrap();
        let added = &patches[0]["patch"]["value"];
        assert_eq!(added["name"], "ns.tollgate-prompt-guard.hold-headers");
        let cfg = &added["typed_config"]["config"];
        assert_eq!(cfg["allow_on_headers_stop_iteration"], true);
        assert_eq!(cfg["failure_policy"], "FAIL_RELOAD");
        assert_eq!(cfg["vm_config"]["code"]["remote"]["sha256"], &D[7..]);
        let policy: Value =
            serde_json::from_str(cfg["configuration"]["value"].as_str().unwrap()).unwrap();
        assert_eq!(policy["n"], 300);
        let sub = &patches[1]["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"];
        assert_eq!(sub, "ns.tollgate-prompt-guard");
        assert_eq!(patches[1]["patch"]["operation"], "REPLACE");
        assert_eq!(patches[1]["patch"]["value"]["name"], added["name"]);
    }

    #[test]
    fn extension_policy_lists_plugins_in_order() {
        let ps = [plugin("jwt-auth"), plugin("key-inject")];
        let e = extension_policy(&ps, "default", "eg", None);
        let wasm = e["spec"]["wasm"].as_array().unwrap();
        assert_eq!(wasm[0]["name"], "tollgate-jwt-auth");
        assert_eq!(
            wasm[1]["code"]["image"]["url"],
            format!("reg.example/t/key-inject@{D}")
        );
        assert_eq!(wasm[1]["failOpen"], false);
        assert_eq!(wasm[1]["env"]["hostKeys"], json!(["ANTHROPIC_API_KEY"]));
    }

    #[test]
    fn yaml_keys_are_sorted_and_numbers_stay_integers() {
        let y =
            serde_yaml::to_string(&to_yaml(&json!({"b": 1, "a": {"d": 4096, "c": 1.5}}))).unwrap();
        assert_eq!(y, "a:\n  c: 1.5\n  d: 4096\nb: 1\n");
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = json!({"b": [{"z": 1, "a": "x\"y"}], "a": null});
        assert_eq!(canonical_json(&v), r#"{"a":null,"b":[{"a":"x\"y","z":1}]}"#);
        let back: Value = serde_json::from_str(&canonical_json(&v)).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn bad_flags_are_named() {
        assert!(matches!(
            images(None, &["x".into()]),
            Err(RenderError::ImageFlag(_))
        ));
        assert!(matches!(
            images(None, &[format!("audit=reg/x@{D}")]),
            Err(RenderError::UnknownArtifact(_))
        ));
        assert!(images(None, &["jwt-auth=reg/x:latest".into()]).is_err());
        assert!(matches!(
            selector_map(&["=x".into()]),
            Err(RenderError::Selector(_))
        ));
    }
}
