//! A real Envoy for a test: renders the gateway config into a scratch directory, starts Envoy as
//! a child process (hot restart disabled, so parallel tests share nothing), waits for `/ready`,
//! reads back the ports it bound, and kills it by pid on drop, printing its log if the test
//! panicked.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::http::{self, Request, Response, StreamingResponse};
use crate::paths;
use crate::process::{self, ChildGuard, ScratchDir, READY_TIMEOUT};
use crate::render::GatewayConfig;

/// `envoy --mode validate -c FILE` with the given environment; `Ok(output)` when Envoy accepts
/// the file, `Err` with Envoy's output otherwise.
pub fn validate(config: &Path, env: &[(&str, &str)]) -> Result<String> {
    let out = Command::new(paths::envoy_bin())
        .args([
            "--mode",
            "validate",
            "--disable-hot-restart",
            "-l",
            "warning",
            "-c",
        ])
        .arg(config)
        .envs(env.iter().copied())
        .output()
        .context("running envoy --mode validate")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(anyhow!(
            "envoy rejected {} ({}):\n{text}",
            config.display(),
            out.status
        ))
    }
}

/// Renders `cfg` to a scratch file and validates it.
pub fn validate_config(cfg: &GatewayConfig, env: &[(&str, &str)]) -> Result<String> {
    let dir = ScratchDir::new("validate")?;
    let path = dir.join("envoy.yaml");
    cfg.render_to(&path)?;
    validate(&path, env)
}

/// How to start Envoy.
#[derive(Clone, Debug)]
pub struct EnvoyOptions {
    /// Environment variables of the Envoy process (what `host_env_keys` exposes).
    pub env: Vec<(String, String)>,
    /// Worker threads (`--concurrency`); 1 keeps a 2-core machine usable.
    pub concurrency: u32,
    /// Envoy's log level (`-l`).
    pub log_level: String,
    /// `--component-log-level`, e.g. `wasm:debug`.
    pub component_log_level: Option<String>,
}

impl Default for EnvoyOptions {
    fn default() -> Self {
        Self {
            env: Vec::new(),
            concurrency: 1,
            log_level: "info".into(),
            component_log_level: Some("wasm:debug".into()),
        }
    }
}

impl EnvoyOptions {
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }
}

/// A running Envoy.
pub struct Envoy {
    // field order: the child dies before its scratch directory is removed
    child: ChildGuard,
    dir: ScratchDir,
    config: PathBuf,
    access_log: PathBuf,
    admin: SocketAddr,
    listener: SocketAddr,
}

impl Envoy {
    /// Starts Envoy with `cfg` and default options. Use [`GatewayConfig::ephemeral`] in tests.
    /// The access log goes to a file in the scratch directory (see [`Envoy::access_log`]),
    /// whatever `cfg.access_log` says.
    pub fn start(cfg: &GatewayConfig) -> Result<Self> {
        Self::start_with(cfg, &EnvoyOptions::default())
    }

    pub fn start_with(cfg: &GatewayConfig, opts: &EnvoyOptions) -> Result<Self> {
        let dir = ScratchDir::new("envoy")?;
        let access_log = dir.join("access.log");
        let mut cfg = cfg.clone();
        cfg.access_log = access_log.clone();
        let config = dir.join("envoy.yaml");
        cfg.render_to(&config)?;
        let admin_file = dir.join("admin.address");
        let mut cmd = Command::new(paths::envoy_bin());
        cmd.arg("-c")
            .arg(&config)
            .arg("--disable-hot-restart")
            // the access log is a file: flush it often so tests see entries quickly
            .args(["--file-flush-interval-msec", "100"])
            .args(["--concurrency", &opts.concurrency.to_string()])
            .args(["-l", &opts.log_level])
            .arg("--admin-address-path")
            .arg(&admin_file)
            .envs(opts.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if let Some(c) = &opts.component_log_level {
            cmd.args(["--component-log-level", c]);
        }
        let mut child = ChildGuard::spawn("envoy", cmd, &dir.join("envoy.log"))?;
        let admin = child.wait_until("listening on its admin port", READY_TIMEOUT, || {
            std::fs::read_to_string(&admin_file)
                .ok()
                .and_then(|s| s.trim().parse::<SocketAddr>().ok())
        })?;
        child.wait_until("ready (/ready)", READY_TIMEOUT, || {
            http::send(admin, &Request::get("/ready"))
                .ok()
                .filter(|r| r.status == 200)
        })?;
        let listener = child.wait_until("listening", READY_TIMEOUT, || {
            listener_address(admin).ok().flatten()
        })?;
        Ok(Self {
            child,
            dir,
            config,
            access_log,
            admin,
            listener,
        })
    }

    /// The gateway listener (where clients connect).
    pub fn addr(&self) -> SocketAddr {
        self.listener
    }

    /// `http://127.0.0.1:PORT` of the listener (for SDK base URLs).
    pub fn url(&self) -> String {
        format!("http://{}", self.listener)
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.pid()
    }

    /// The rendered configuration file.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    pub fn scratch_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Sends a request to the listener.
    pub fn send(&self, req: &Request) -> Result<Response> {
        http::send(self.listener, req)
    }

    /// Sends a request to the listener; the body is read on demand.
    pub fn send_streaming(&self, req: &Request) -> Result<StreamingResponse> {
        http::send_streaming(self.listener, req)
    }

    /// A GET on the admin interface.
    pub fn admin_get(&self, path: &str) -> Result<Response> {
        http::send(self.admin, &Request::get(path))
    }

    /// Every counter and gauge (`/stats?format=json`), by name.
    pub fn stats(&self) -> Result<BTreeMap<String, u64>> {
        let resp = self.admin_get("/stats?format=json")?;
        let v: Value = serde_json::from_slice(&resp.body).context("stats JSON")?;
        let mut out = BTreeMap::new();
        for s in v["stats"].as_array().into_iter().flatten() {
            if let (Some(name), Some(value)) = (s["name"].as_str(), s["value"].as_u64()) {
                out.insert(name.to_string(), value);
            }
        }
        Ok(out)
    }

    /// One counter or gauge; `None` when Envoy does not have it (yet).
    pub fn stat(&self, name: &str) -> Option<u64> {
        self.stats().ok()?.get(name).copied()
    }

    /// A proxy-wasm metric by the name the filter defined (`tollgate_jwt_auth_allowed`), as the
    /// harness's `Gateway::metric` reads it. Envoy shows filter-defined metrics as
    /// `wasmcustom.<name>` in `/stats` (and as `<name>` in `/stats/prometheus`).
    pub fn metric(&self, name: &str) -> Option<u64> {
        self.stat(&format!("wasmcustom.{name}"))
    }

    /// Envoy's own log so far.
    pub fn log(&self) -> String {
        self.child.log()
    }

    /// The access log lines so far, parsed (the log is written on stream end; see
    /// [`Envoy::wait_access_log`]).
    pub fn access_log(&self) -> Vec<Value> {
        process::read_lossy(&self.access_log)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The raw access log file content.
    pub fn access_log_raw(&self) -> String {
        process::read_lossy(&self.access_log)
    }

    /// Waits until the access log holds at least `n` entries (flushed every 100 ms), then returns them.
    pub fn wait_access_log(&self, n: usize) -> Result<Vec<Value>> {
        let deadline = std::time::Instant::now() + READY_TIMEOUT;
        loop {
            let lines = self.access_log();
            if lines.len() >= n {
                return Ok(lines);
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "access log has {} entries, expected {n}:\n{}",
                    lines.len(),
                    self.access_log_raw()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Kills Envoy now (the guard would on drop).
    pub fn stop(&mut self) {
        self.child.kill();
    }
}

/// The first listener's bound address from `/listeners?format=json`.
fn listener_address(admin: SocketAddr) -> Result<Option<SocketAddr>> {
    let resp = http::send(admin, &Request::get("/listeners?format=json"))?;
    let v: Value = serde_json::from_slice(&resp.body)?;
    let sa = &v["listener_statuses"][0]["local_address"]["socket_address"];
    match (sa["address"].as_str(), sa["port_value"].as_u64()) {
        (Some(a), Some(p)) if p != 0 => Ok(Some(format!("{a}:{p}").parse()?)),
        _ => Ok(None),
    }
}
