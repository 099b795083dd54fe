//! The dev identity provider for a test: `scripts/idp.mjs` (oauth2-mock-server, a real OIDC
//! issuer serving discovery and JWKS, RS256 tokens) on an ephemeral port, with key rotation and
//! stop/restart (an IdP outage) under the test's control. Killed by pid on drop.
//!
//! ```no_run
//! use tollgate_tests::Idp;
//! let idp = Idp::start().unwrap();
//! let token = idp.token(serde_json::json!({"sub": "alice", "groups": ["agents"]}));
//! let new_kid = idp.rotate(true);
//! ```

use std::net::SocketAddr;
use std::process::Command;

use anyhow::{anyhow, Context, Result};
use serde_json::{json, Value};

use crate::http::{self, Request};
use crate::paths;
use crate::process::{self, ChildGuard, ScratchDir, READY_TIMEOUT};
use crate::render::Endpoint;

/// The audience every dev token carries unless a test overrides `aud`.
pub const AUDIENCE: &str = "tollgate";

/// A running (or deliberately stopped) dev identity provider.
pub struct Idp {
    child: Option<ChildGuard>,
    dir: ScratchDir,
    addr: SocketAddr,
    issuer: String,
    restarts: u32,
}

impl Idp {
    /// Starts on an ephemeral loopback port; the issuer is `http://127.0.0.1:PORT`.
    pub fn start() -> Result<Self> {
        Self::start_with(None)
    }

    /// Starts with a fixed issuer URL (tokens carry it as `iss`; discovery advertises it).
    pub fn start_with(issuer: Option<&str>) -> Result<Self> {
        let dir = ScratchDir::new("idp")?;
        let (child, addr, issuer) = spawn(&dir, 0, issuer, 0)?;
        Ok(Self {
            child: Some(child),
            dir,
            addr,
            issuer,
            restarts: 0,
        })
    }

    /// Where the IdP listens (use as the `idp` cluster of the gateway).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn endpoint(&self) -> Endpoint {
        self.addr.into()
    }

    /// The issuer URL (`iss` of its tokens).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(ChildGuard::pid)
    }

    fn post(&self, path: &str, body: Value) -> Result<Value> {
        let resp = http::send(self.addr, &Request::post(path).json(&body))
            .with_context(|| format!("IdP {path}"))?;
        if resp.status != 200 {
            return Err(anyhow!("IdP {path}: {} {}", resp.status, resp.text()));
        }
        Ok(resp.json())
    }

    /// A signed token with the defaults (`sub` dev-agent, `aud` tollgate, `groups` [agents],
    /// `iss`, `iat`, `nbf`, `exp` in 1 h) overridden by `claims`; a claim set to `null` is
    /// removed (e.g. `{"exp": null}`).
    ///
    /// # Panics
    /// When the IdP does not answer (it is stopped, or broken: the message says which).
    pub fn token(&self, claims: Value) -> String {
        self.try_token(claims, 3600)
            .unwrap_or_else(|e| panic!("IdP token: {e:#}"))
    }

    /// [`Idp::token`] with a lifetime, as a `Result`.
    pub fn try_token(&self, claims: Value, expires_in_secs: i64) -> Result<String> {
        let v = self.post(
            "/tollgate/token",
            json!({"claims": claims, "expires_in": expires_in_secs}),
        )?;
        v["token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("IdP answered without a token: {v}"))
    }

    /// Generates a new signing key and publishes it; `keep_old` keeps the previous keys in the
    /// JWKS. Returns the new `kid`.
    ///
    /// # Panics
    /// When the IdP does not answer.
    pub fn rotate(&self, keep_old: bool) -> String {
        self.post("/tollgate/rotate", json!({"keep_old": keep_old}))
            .ok()
            .and_then(|v| v["kid"].as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("IdP rotate failed"))
    }

    /// Unpublishes a key (it disappears from the JWKS).
    pub fn remove_key(&self, kid: &str) -> Result<()> {
        self.post("/tollgate/remove", json!({"kid": kid}))
            .map(|_| ())
    }

    /// The kid that signs new tokens.
    pub fn current_kid(&self) -> Result<String> {
        let v = http::send(self.addr, &Request::get("/tollgate/keys"))?.json();
        v["current"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no current kid: {v}"))
    }

    /// The published JWKS document.
    pub fn jwks(&self) -> Result<Value> {
        Ok(http::send(self.addr, &Request::get("/jwks"))?.json())
    }

    /// Stops the IdP (an outage). Its keys are kept for [`Idp::restart`].
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }

    /// Starts it again on the same port with the same keys and issuer.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.restarts += 1;
        let (child, _, _) = spawn(
            &self.dir,
            self.addr.port(),
            Some(&self.issuer),
            self.restarts,
        )?;
        self.child = Some(child);
        Ok(())
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some() && process::port_open(self.addr)
    }

    /// The IdP's output so far.
    pub fn log(&self) -> String {
        self.child.as_ref().map(ChildGuard::log).unwrap_or_default()
    }
}

fn spawn(
    dir: &ScratchDir,
    port: u16,
    issuer: Option<&str>,
    generation: u32,
) -> Result<(ChildGuard, SocketAddr, String)> {
    let log = dir.join(&format!("idp-{generation}.log"));
    let mut cmd = Command::new(paths::node_bin());
    cmd.arg(paths::idp_script())
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--keys")
        .arg(dir.join("keys.json"))
        .current_dir(paths::workspace_root());
    if let Some(iss) = issuer {
        cmd.args(["--issuer", iss]);
    }
    let mut child = ChildGuard::spawn("idp", cmd, &log)?;
    let line = child.wait_until("listening", READY_TIMEOUT, || {
        process::find_line(&log, "tollgate-idp listening on http://")
    })?;
    // "tollgate-idp listening on http://127.0.0.1:PORT issuer=URL kid=KID"
    let mut addr = None;
    let mut iss = None;
    for word in line.split_whitespace() {
        if let Some(a) = word.strip_prefix("http://") {
            addr = a.parse::<SocketAddr>().ok();
        } else if let Some(i) = word.strip_prefix("issuer=") {
            iss = Some(i.to_string());
        }
    }
    let addr = addr.ok_or_else(|| anyhow!("cannot read the IdP address from {line:?}"))?;
    let iss = iss.ok_or_else(|| anyhow!("cannot read the issuer from {line:?}"))?;
    Ok((child, addr, iss))
}
