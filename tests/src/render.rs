//! The one renderer of `envoy/gateway.yaml.tmpl`, used by the tests, `scripts/up.sh`, the
//! compose stack and the benchmarks (through the `tollgate-render` binary).
//!
//! The template has `{{NAME}}` placeholders. Scalars are written as JSON strings or numbers (valid
//! YAML whatever they contain); the filter chain and the upstream TLS block are whole lines of
//! JSON flow mappings. Every placeholder must be filled and every value used, or rendering fails.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::paths;

/// The template, compiled in (cargo rebuilds when it changes).
pub const TEMPLATE: &str = include_str!("../../envoy/gateway.yaml.tmpl");

/// The CA bundle Envoy uses to verify api.anthropic.com (Debian and the Envoy image).
pub const DEFAULT_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Where the compose stack's Envoy finds the `.wasm` files, relative to its working directory
/// (and to the workspace root, where `--mode validate` checks the same file).
pub const COMPOSE_WASM_DIR: &str = "target/wasm32-wasip1/release";

/// Where `make compose-config` writes the compose stack's Envoy configuration.
pub const COMPOSE_CONFIG: &str = "target/compose/envoy.yaml";

/// A `host:port` pair; the host is an IP address or a DNS name (compose service names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
        }
    }

    fn is_ip(&self) -> bool {
        self.host.parse::<IpAddr>().is_ok()
    }

    /// STATIC for IP literals, STRICT_DNS for names.
    fn discovery(&self) -> &'static str {
        if self.is_ip() {
            "STATIC"
        } else {
            "STRICT_DNS"
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl From<std::net::SocketAddr> for Endpoint {
    fn from(addr: std::net::SocketAddr) -> Self {
        Self::new(addr.ip().to_string(), addr.port())
    }
}

impl FromStr for Endpoint {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| anyhow!("`{s}` is not HOST:PORT"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            bail!("`{s}` has an empty host");
        }
        let port = port
            .parse::<u16>()
            .with_context(|| format!("`{s}` has a bad port"))?;
        Ok(Self::new(host, port))
    }
}

/// Where the router sends requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Upstream {
    /// The mock Claude API (plaintext HTTP/1.1).
    Mock(Endpoint),
    /// `api.anthropic.com:443` over TLS with SNI, verified against `ca_file`.
    Anthropic { ca_file: PathBuf },
}

impl Upstream {
    pub fn anthropic() -> Self {
        Self::Anthropic {
            ca_file: PathBuf::from(DEFAULT_CA_FILE),
        }
    }
}

/// One tollgate filter in the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    /// `jwt-auth`, `prompt-guard`, `key-inject`, `secret-mask` (also the plugin name, root id
    /// and VM id).
    pub name: String,
    /// The `.wasm` path as Envoy will see it.
    pub wasm: PathBuf,
    /// The plugin configuration (JSON text, passed as-is).
    pub config: String,
    /// Environment variables of the Envoy process exposed to the filter (`host_env_keys`).
    pub env_keys: Vec<String>,
}

impl Filter {
    /// A filter from its built artifact with the given configuration; its `host_env_keys` are
    /// the variables the configuration names (see [`env_keys_for`]).
    ///
    /// # Panics
    /// When the artifact is not built (run `make wasm`).
    pub fn new(name: &str, config: impl Into<String>) -> Self {
        let config = config.into();
        Self {
            name: name.to_string(),
            wasm: paths::wasm_path(name),
            env_keys: env_keys_for(name, &config),
            config,
        }
    }

    /// The shipped filter: its artifact and `policies/<name>.json`, if both exist.
    pub fn shipped(name: &str) -> Option<Self> {
        let wasm = paths::try_wasm_path(name)?;
        let config = std::fs::read_to_string(paths::policy_path(name)).ok()?;
        Some(Self {
            name: name.to_string(),
            wasm,
            env_keys: env_keys_for(name, &config),
            config,
        })
    }

    /// Replaces the environment keys exposed to the filter.
    pub fn env_keys<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.env_keys = keys.into_iter().map(Into::into).collect();
        self
    }

    fn to_envoy(&self, failure: FailurePolicy) -> Value {
        let mut vm_config = json!({
            "vm_id": self.name,
            "runtime": "envoy.wasm.runtime.v8",
            "code": { "local": { "filename": self.wasm.to_string_lossy() } },
        });
        if !self.env_keys.is_empty() {
            vm_config["environment_variables"] = json!({ "host_env_keys": self.env_keys });
        }
        let mut config = json!({
            "name": self.name,
            "root_id": self.name,
            "failure_policy": failure.envoy_name(),
            // prompt-guard pauses in the request headers and decides in the body
            // (Envoy >= 1.35; without it Envoy turns that Pause into StopAllIteration)
            "allow_on_headers_stop_iteration": true,
            "configuration": {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": self.config,
            },
            "vm_config": vm_config,
        });
        if let FailurePolicy::Reload {
            base_interval_ms: Some(ms),
        } = failure
        {
            let interval = format!("{}.{:03}s", ms / 1000, ms % 1000);
            config["reload_config"] = json!({ "backoff": { "base_interval": interval } });
        }
        json!({
            "name": format!("tollgate.{}", self.name.replace('-', "_")),
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": config,
            }
        })
    }
}

/// What Envoy does with a filter whose VM failed (a trap: a panic, an out-of-bounds access):
/// the Wasm filter's `failure_policy`. See docs/troubleshooting.md, "A filter trapped: failure
/// policy", for what each does in Envoy 1.40, measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailurePolicy {
    /// `FAIL_RELOAD` (the default everywhere): requests get 503 while the VM is failed, and the
    /// next request after the reload backoff gets a fresh VM. `base_interval_ms` sets
    /// `reload_config.backoff.base_interval`; `None` keeps Envoy's default (1 s).
    Reload { base_interval_ms: Option<u64> },
    /// `FAIL_CLOSED`: every later request gets 503 until Envoy restarts.
    Closed,
    /// `FAIL_OPEN`: later requests skip the filter — unchecked. Never in a gateway
    /// configuration; only the failure-policy measurement renders it, as its control case.
    Open,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        FailurePolicy::Reload {
            base_interval_ms: None,
        }
    }
}

impl FailurePolicy {
    /// The protobuf enum name.
    pub fn envoy_name(self) -> &'static str {
        match self {
            FailurePolicy::Reload { .. } => "FAIL_RELOAD",
            FailurePolicy::Closed => "FAIL_CLOSED",
            FailurePolicy::Open => "FAIL_OPEN",
        }
    }
}

/// The Envoy environment variables a filter may read ([`tollgate_common::config::env_keys`]) from
/// its configuration text; text that is not JSON names none.
pub fn env_keys_for(name: &str, config: &str) -> Vec<String> {
    let policy = serde_json::from_str(config).unwrap_or(Value::Null);
    tollgate_common::config::env_keys(&name.replace('_', "-"), &policy)
}

/// The product chain as it exists now: every filter of [`paths::FILTERS`] whose artifact and
/// shipped policy both exist, in request order ("until a filter exists, the chain holds what
/// exists").
pub fn shipped_chain() -> Vec<Filter> {
    paths::FILTERS
        .iter()
        .filter_map(|name| Filter::shipped(name))
        .collect()
}

/// `filters` folded into one filter running the bundle module (`tollgate_bundle.wasm`): its
/// configuration has one section per filter (`{"jwt_auth": …, "prompt_guard": …}`), its
/// environment keys are theirs. `None` when the bundle is not built or a configuration is not
/// JSON.
pub fn bundle(filters: &[Filter]) -> Option<Filter> {
    let wasm = paths::try_wasm_path("bundle")?;
    let mut config = serde_json::Map::new();
    let mut env_keys = std::collections::BTreeSet::new();
    for f in filters {
        let section: Value = serde_json::from_str(&f.config).ok()?;
        config.insert(f.name.replace('-', "_"), section);
        env_keys.extend(f.env_keys.iter().cloned());
    }
    Some(Filter {
        name: "bundle".to_string(),
        wasm,
        config: Value::Object(config).to_string(),
        env_keys: env_keys.into_iter().collect(),
    })
}

/// Everything the template needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayConfig {
    pub listen: Endpoint,
    pub admin: Endpoint,
    pub upstream: Upstream,
    pub idp: Endpoint,
    /// In request order; empty = the passthrough gateway.
    pub filters: Vec<Filter>,
    /// Access log destination (`/dev/stdout` or a file).
    pub access_log: PathBuf,
    /// The failure policy of every tollgate filter (default `FAIL_RELOAD`).
    pub failure_policy: FailurePolicy,
}

impl Default for GatewayConfig {
    /// The local stack: listener 127.0.0.1:10000, admin 127.0.0.1:9901, mock at 127.0.0.1:8081,
    /// IdP at 127.0.0.1:8082, access log on stdout, no filters.
    fn default() -> Self {
        Self {
            listen: Endpoint::new("127.0.0.1", 10000),
            admin: Endpoint::new("127.0.0.1", 9901),
            upstream: Upstream::Mock(Endpoint::new("127.0.0.1", 8081)),
            idp: Endpoint::new("127.0.0.1", 8082),
            filters: Vec::new(),
            access_log: PathBuf::from("/dev/stdout"),
            failure_policy: FailurePolicy::default(),
        }
    }
}

impl GatewayConfig {
    /// For tests: listener and admin on port 0 (the kernel picks; [`crate::Envoy`] reads back
    /// the real ports), so runs never collide.
    pub fn ephemeral(upstream: Upstream) -> Self {
        Self {
            listen: Endpoint::new("127.0.0.1", 0),
            admin: Endpoint::new("127.0.0.1", 0),
            upstream,
            ..Self::default()
        }
    }

    /// The compose stack (`docker-compose.yml`): listener and admin on all interfaces of the
    /// container, the mock and the IdP by service name, the shipped chain with `.wasm` paths
    /// relative to the Envoy container's working directory `/tollgate`, where the build output
    /// is mounted at the same relative path (so the very file validated here runs there).
    pub fn compose() -> Self {
        let mut filters = shipped_chain();
        for f in &mut filters {
            if let Some(file) = f.wasm.file_name() {
                f.wasm = Path::new(COMPOSE_WASM_DIR).join(file);
            }
        }
        Self {
            listen: Endpoint::new("0.0.0.0", 10000),
            admin: Endpoint::new("0.0.0.0", 9901),
            upstream: Upstream::Mock(Endpoint::new("mock", 8081)),
            idp: Endpoint::new("idp", 8082),
            filters,
            access_log: PathBuf::from("/dev/stdout"),
            failure_policy: FailurePolicy::default(),
        }
    }

    /// Appends a filter (request order).
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filters.push(filter);
        self
    }

    /// Sets the IdP endpoint (the `idp` cluster).
    pub fn idp(mut self, idp: impl Into<Endpoint>) -> Self {
        self.idp = idp.into();
        self
    }

    /// Renders the template.
    pub fn render(&self) -> Result<String> {
        let mut vars: BTreeMap<&str, String> = BTreeMap::new();
        vars.insert("LISTEN_HOST", yaml_str(&self.listen.host));
        vars.insert("LISTEN_PORT", self.listen.port.to_string());
        vars.insert("ADMIN_HOST", yaml_str(&self.admin.host));
        vars.insert("ADMIN_PORT", self.admin.port.to_string());
        vars.insert(
            "ACCESS_LOG_PATH",
            yaml_str(&self.access_log.to_string_lossy()),
        );
        vars.insert("IDP_HOST", yaml_str(&self.idp.host));
        vars.insert("IDP_PORT", self.idp.port.to_string());
        vars.insert("IDP_DISCOVERY", self.idp.discovery().to_string());
        match &self.upstream {
            Upstream::Mock(ep) => {
                vars.insert("UPSTREAM_HOST", yaml_str(&ep.host));
                vars.insert("UPSTREAM_PORT", ep.port.to_string());
                vars.insert("UPSTREAM_AUTHORITY", yaml_str(&ep.to_string()));
                vars.insert("UPSTREAM_DISCOVERY", ep.discovery().to_string());
                vars.insert(
                    "UPSTREAM_TRANSPORT_SOCKET",
                    "    # plaintext: the local mock Claude API".to_string(),
                );
            }
            Upstream::Anthropic { ca_file } => {
                let host = "api.anthropic.com";
                vars.insert("UPSTREAM_HOST", yaml_str(host));
                vars.insert("UPSTREAM_PORT", "443".to_string());
                vars.insert("UPSTREAM_AUTHORITY", yaml_str(host));
                vars.insert("UPSTREAM_DISCOVERY", "LOGICAL_DNS".to_string());
                let tls = json!({
                    "name": "envoy.transport_sockets.tls",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                        "sni": host,
                        "common_tls_context": {
                            "validation_context": {
                                "trusted_ca": { "filename": ca_file.to_string_lossy() },
                                "match_typed_subject_alt_names": [
                                    { "san_type": "DNS", "matcher": { "exact": host } }
                                ]
                            }
                        }
                    }
                });
                vars.insert(
                    "UPSTREAM_TRANSPORT_SOCKET",
                    format!("    transport_socket: {tls}"),
                );
            }
        }
        let filters: Vec<String> = self
            .filters
            .iter()
            .map(|f| format!("          - {}", f.to_envoy(self.failure_policy)))
            .collect();
        vars.insert(
            "HTTP_FILTERS",
            if filters.is_empty() {
                "          # passthrough: no tollgate filters".to_string()
            } else {
                filters.join("\n")
            },
        );
        substitute(TEMPLATE, &vars)
    }

    /// Renders into `path` (creating parent directories).
    pub fn render_to(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, self.render()?).with_context(|| format!("writing {}", path.display()))
    }
}

/// A YAML scalar that is a JSON string: quoted and escaped, so nothing in it is YAML syntax.
fn yaml_str(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// Replaces every `{{NAME}}`; unknown or unused names are errors.
fn substitute(template: &str, vars: &BTreeMap<&str, String>) -> Result<String> {
    let mut out = String::with_capacity(template.len() + 4096);
    let mut used = std::collections::BTreeSet::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| anyhow!("unterminated placeholder in the template"))?;
        let name = &after[..end];
        let value = vars
            .get(name)
            .ok_or_else(|| anyhow!("the template uses an unknown placeholder {{{{{name}}}}}"))?;
        out.push_str(value);
        used.insert(name.to_string());
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    if let Some(unused) = vars.keys().find(|k| !used.contains(**k)) {
        bail!("the template does not use {{{{{unused}}}}}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe_filter(config: &str) -> Filter {
        Filter {
            name: "key-inject".into(),
            wasm: PathBuf::from("/x/tollgate_key_inject.wasm"),
            config: config.into(),
            env_keys: vec!["ANTHROPIC_API_KEY".into()],
        }
    }

    #[test]
    fn endpoint_parses_and_prints() {
        let ep: Endpoint = "127.0.0.1:8081".parse().unwrap();
        assert_eq!(ep, Endpoint::new("127.0.0.1", 8081));
        assert_eq!(
            "mock:8081".parse::<Endpoint>().unwrap().discovery(),
            "STRICT_DNS"
        );
        assert_eq!(ep.discovery(), "STATIC");
        assert_eq!(
            "[::1]:9".parse::<Endpoint>().unwrap().to_string(),
            "[::1]:9"
        );
        assert!("nohost".parse::<Endpoint>().is_err());
        assert!(":80".parse::<Endpoint>().is_err());
        assert!("h:99999".parse::<Endpoint>().is_err());
    }

    #[test]
    fn every_placeholder_is_filled() {
        for upstream in [
            Upstream::Mock(Endpoint::new("mock", 8081)),
            Upstream::anthropic(),
        ] {
            let cfg = GatewayConfig {
                upstream,
                ..GatewayConfig::default()
            }
            .filter(probe_filter("{}"));
            let out = cfg.render().unwrap();
            assert!(!out.contains("{{"), "{out}");
            assert!(out.contains(r#""failure_policy":"FAIL_RELOAD""#));
            assert!(out.contains(r#""allow_on_headers_stop_iteration":true"#));
            assert!(!out.contains("reload_config"));
            assert!(out.contains("envoy.wasm.runtime.v8"));
        }
    }

    #[test]
    fn failure_policy_and_reload_backoff_are_rendered() {
        let render = |failure_policy| {
            GatewayConfig {
                failure_policy,
                ..GatewayConfig::default()
            }
            .filter(probe_filter("{}"))
            .render()
            .unwrap()
        };
        let out = render(FailurePolicy::Reload {
            base_interval_ms: Some(100),
        });
        assert!(out.contains(r#""failure_policy":"FAIL_RELOAD""#), "{out}");
        assert!(
            out.contains(r#""reload_config":{"backoff":{"base_interval":"0.100s"}}"#),
            "{out}"
        );
        assert!(render(FailurePolicy::Closed).contains(r#""failure_policy":"FAIL_CLOSED""#));
    }

    #[test]
    fn plugin_config_is_escaped_not_interpreted() {
        let nasty = "{\"a\": \"line\\nbreak }} {{X}} : # \\\"q\\\"\"}";
        let out = GatewayConfig::default()
            .filter(probe_filter(nasty))
            .render()
            .unwrap();
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with("- {") && l.contains("tollgate.key_inject"))
            .unwrap();
        let v: Value = serde_json::from_str(line.trim_start().trim_start_matches("- ")).unwrap();
        assert_eq!(
            v["typed_config"]["config"]["configuration"]["value"],
            Value::String(nasty.into())
        );
        assert_eq!(
            v["typed_config"]["config"]["vm_config"]["environment_variables"]["host_env_keys"],
            json!(["ANTHROPIC_API_KEY"])
        );
    }

    #[test]
    fn env_keys_come_from_the_policy() {
        let cfg = r#"{"keys":{"a":{"env":"TEAM_A_KEY"},"b":{"env":"B"}},"rules":[{"env":"B"}],"x":{"env":1}}"#;
        assert_eq!(env_keys_for("secret-mask", cfg), ["B", "TEAM_A_KEY"]);
        assert_eq!(
            env_keys_for("key-inject", cfg),
            ["ANTHROPIC_API_KEY", "B", "TEAM_A_KEY"]
        );
        assert!(env_keys_for("prompt-guard", "not json").is_empty());
    }

    #[test]
    fn chain_keeps_request_order() {
        let mut a = probe_filter("{}");
        a.name = "jwt-auth".into();
        let b = probe_filter("{}");
        let out = GatewayConfig::default()
            .filter(a)
            .filter(b)
            .render()
            .unwrap();
        let ja = out.find(r#""name":"tollgate.jwt_auth""#).unwrap();
        let ki = out.find(r#""name":"tollgate.key_inject""#).unwrap();
        let router = out.find("envoy.filters.http.router").unwrap();
        assert!(ja < ki && ki < router);
    }

    #[test]
    fn substitute_rejects_unknown_and_unused() {
        let mut vars = BTreeMap::new();
        vars.insert("A", "1".to_string());
        assert_eq!(substitute("x{{A}}y", &vars).unwrap(), "x1y");
        assert!(substitute("{{B}}", &vars).is_err());
        assert!(substitute("nothing", &vars).is_err());
        assert!(substitute("{{A", &vars).is_err());
    }
}
