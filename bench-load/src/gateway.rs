//! One Envoy under test, started the way the end-to-end tests start it (`tollgate_tests`
//! renders `envoy/gateway.yaml.tmpl`; `--disable-hot-restart`, `--concurrency 1`, listener and
//! admin on port 0 read back from `--admin-address-path` and `/listeners`), but at log level
//! `warning` (no per-request wasm debug logging) and with the access log to `/dev/null`, the
//! same for every variant. The native `jwt_authn` variant is the passthrough config with Envoy's
//! own JWT filter put where the tollgate chain would go (the template is not copied).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use tollgate_tests::http::{self, Request};
use tollgate_tests::process::{ChildGuard, ScratchDir};
use tollgate_tests::{paths, GatewayConfig};

/// The line the renderer writes for an empty chain (replaced for the native JWT variant).
const PASSTHROUGH_LINE: &str = "          # passthrough: no tollgate filters";

/// How long Envoy may take to load its VMs on a loaded machine.
const READY: Duration = Duration::from_secs(180);

/// A running Envoy, killed by pid on drop.
pub struct Gateway {
    // field order: the child dies before its scratch directory is removed
    child: ChildGuard,
    _dir: ScratchDir,
    pub admin: SocketAddr,
    pub listener: SocketAddr,
}

/// Envoy's native JWT filter with the same provider as the tollgate policy: issuer, audience,
/// remote JWKS from the same IdP through the same `idp` cluster; `cache` enables its verified-
/// token cache (`jwt_cache_config`), as tollgate's jwt-auth caches verified tokens.
pub fn native_jwt_filter(issuer: &str, cache: bool) -> String {
    let mut provider = json!({
        "issuer": issuer,
        "audiences": ["tollgate"],
        "remote_jwks": {
            "http_uri": {"uri": format!("{issuer}/jwks"), "cluster": "idp", "timeout": "2s"},
            "cache_duration": "300s",
            "async_fetch": {"fast_listener": false}
        },
        "forward": true
    });
    if cache {
        provider["jwt_cache_config"] = json!({"jwt_cache_size": 4096});
    }
    let filter = json!({
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"dev": provider},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "dev"}}]
        }
    });
    format!("          - {filter}")
}

impl Gateway {
    /// Renders `cfg` (listener/admin on port 0, access log discarded), optionally replacing the
    /// empty chain by `native_filter`, and starts Envoy with `env`.
    pub fn start(
        name: &str,
        cfg: &GatewayConfig,
        native_filter: Option<&str>,
        env: &[(String, String)],
    ) -> Result<Self> {
        let dir = ScratchDir::new(&format!("bench-{name}"))?;
        let mut cfg = cfg.clone();
        cfg.access_log = "/dev/null".into();
        let mut yaml = cfg.render()?;
        if let Some(line) = native_filter {
            if !cfg.filters.is_empty() || !yaml.contains(PASSTHROUGH_LINE) {
                bail!("the native JWT variant needs the passthrough rendering");
            }
            yaml = yaml.replace(PASSTHROUGH_LINE, line);
        }
        let config = dir.join("envoy.yaml");
        std::fs::write(&config, yaml).context("writing the Envoy config")?;
        let admin_file = dir.join("admin.address");
        let mut cmd = Command::new(paths::envoy_bin());
        cmd.arg("-c")
            .arg(&config)
            .arg("--disable-hot-restart")
            .args(["--concurrency", "1"])
            .args(["-l", "warning"])
            .arg("--admin-address-path")
            .arg(&admin_file)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut child = ChildGuard::spawn(&format!("envoy-{name}"), cmd, &dir.join("envoy.log"))?;
        let admin = child.wait_until("listening on its admin port", READY, || {
            std::fs::read_to_string(&admin_file)
                .ok()
                .and_then(|s| s.trim().parse::<SocketAddr>().ok())
        })?;
        child.wait_until("ready (/ready)", READY, || {
            http::send(admin, &Request::get("/ready"))
                .ok()
                .filter(|r| r.status == 200)
        })?;
        let listener = child.wait_until("listening", READY, || listener_address(admin))?;
        Ok(Self {
            child,
            _dir: dir,
            admin,
            listener,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.pid()
    }

    /// Fails with Envoy's log if it exited.
    pub fn check_alive(&mut self) -> Result<()> {
        self.child.check_alive()
    }

    /// Resident set size of the Envoy process, in KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        let pid = self.pid().ok_or_else(|| anyhow!("envoy is not running"))?;
        proc_status_kib(pid, "VmRSS:")
    }

    /// Envoy's `/memory` (allocator figures: allocated, heap_size, …) as numbers.
    pub fn memory(&self) -> Result<Value> {
        let resp = http::send(self.admin, &Request::get("/memory"))?;
        let v: Value = serde_json::from_slice(&resp.body).context("/memory JSON")?;
        let mut out = serde_json::Map::new();
        if let Some(map) = v.as_object() {
            for (k, val) in map {
                let n = val
                    .as_str()
                    .and_then(|s| s.parse::<u64>().ok())
                    .or_else(|| val.as_u64());
                if let Some(n) = n {
                    out.insert(k.clone(), n.into());
                }
            }
        }
        Ok(Value::Object(out))
    }

    /// Counters and gauges whose name contains `needle` (`/stats?format=json&filter=…`).
    pub fn stats_matching(&self, needle: &str) -> Result<Value> {
        let resp = http::send(
            self.admin,
            &Request::get(&format!("/stats?format=json&filter={needle}")),
        )?;
        let v: Value = serde_json::from_slice(&resp.body).context("stats JSON")?;
        let mut out = serde_json::Map::new();
        for s in v["stats"].as_array().into_iter().flatten() {
            if let (Some(name), Some(value)) = (s["name"].as_str(), s["value"].as_u64()) {
                out.insert(name.to_string(), value.into());
            }
        }
        Ok(Value::Object(out))
    }
}

/// A `/proc/<pid>/status` field in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(Path::new(&format!("/proc/{pid}/status")))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow!("no {field} in /proc/{pid}/status"))
}

fn listener_address(admin: SocketAddr) -> Option<SocketAddr> {
    let resp = http::send(admin, &Request::get("/listeners?format=json")).ok()?;
    let v: Value = serde_json::from_slice(&resp.body).ok()?;
    let sa = &v["listener_statuses"][0]["local_address"]["socket_address"];
    match (sa["address"].as_str(), sa["port_value"].as_u64()) {
        (Some(a), Some(p)) if p != 0 => format!("{a}:{p}").parse().ok(),
        _ => None,
    }
}

/// `envoy --version`, e.g. `1.40.0/Clean/RELEASE/BoringSSL`.
pub fn envoy_version() -> String {
    Command::new(paths::envoy_bin())
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .and_then(|s| {
            s.split("version:")
                .nth(1)
                .map(|v| v.trim().split('/').skip(1).collect::<Vec<_>>().join("/"))
        })
        .unwrap_or_else(|| "unknown".into())
}
