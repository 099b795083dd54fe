//! The official `anthropic` Python SDK against a gateway: runs `tests/python/sdk_check.py` with
//! the venv's python and returns its per-case report. Expectations are JSON (see the script's
//! docstring); the script exits non-zero when any case misses its expectation.
//!
//! ```no_run
//! use serde_json::json;
//! use tollgate_tests::sdk::{SdkAuth, SdkRun};
//! let report = SdkRun::new("http://127.0.0.1:10000", SdkAuth::AuthToken("jwt".into()))
//!     .case(json!({"name": "stream", "stream": true, "expect": {"ok": true}}))
//!     .case(json!({"name": "denied", "prompt": "x",
//!                  "expect": {"error": "PermissionDeniedError", "status": 403}}))
//!     .run()
//!     .unwrap();
//! report.assert_all_ok();
//! ```

use std::process::Command;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::paths;

/// How the SDK authenticates (what the SDKs send: `x-api-key` or `Authorization: Bearer`).
#[derive(Clone, Debug)]
pub enum SdkAuth {
    ApiKey(String),
    AuthToken(String),
}

/// A batch of SDK cases against one base URL.
#[derive(Clone, Debug)]
pub struct SdkRun {
    base_url: String,
    auth: SdkAuth,
    cases: Vec<Value>,
}

/// What the script reported.
#[derive(Clone, Debug)]
pub struct SdkReport {
    /// The script's exit code (0: every case met its expectation).
    pub code: Option<i32>,
    /// One JSON object per case: `name`, `ok`, `detail`, and `text` on success.
    pub cases: Vec<Value>,
    pub stdout: String,
    pub stderr: String,
}

impl SdkReport {
    pub fn all_ok(&self) -> bool {
        self.code == Some(0) && self.cases.iter().all(|c| c["ok"] == true)
    }

    /// # Panics
    /// When any case missed its expectation, with the script's output.
    pub fn assert_all_ok(&self) {
        assert!(
            self.all_ok(),
            "anthropic SDK check failed (exit {:?}):\n{}\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
    }

    /// The report line of the case named `name`.
    pub fn case(&self, name: &str) -> Option<&Value> {
        self.cases.iter().find(|c| c["name"] == name)
    }
}

impl SdkRun {
    pub fn new(base_url: &str, auth: SdkAuth) -> Self {
        Self {
            base_url: base_url.to_string(),
            auth,
            cases: Vec::new(),
        }
    }

    pub fn case(mut self, case: Value) -> Self {
        self.cases.push(case);
        self
    }

    /// Runs the script (the caller's `ANTHROPIC_*` variables are removed from its environment,
    /// so a developer's real key never leaks into a test).
    pub fn run(&self) -> Result<SdkReport> {
        let script = paths::repo_file("tests/python/sdk_check.py");
        let mut cmd = Command::new(paths::python_bin());
        cmd.arg(&script)
            .args(["--base-url", &self.base_url])
            .arg("--cases")
            .arg(Value::Array(self.cases.clone()).to_string());
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ANTHROPIC_") {
                cmd.env_remove(k);
            }
        }
        match &self.auth {
            SdkAuth::ApiKey(k) => cmd.args(["--api-key", k]),
            SdkAuth::AuthToken(t) => cmd.args(["--auth-token", t]),
        };
        let out = cmd
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let cases = stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect();
        Ok(SdkReport {
            code: out.status.code(),
            cases,
            stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}
