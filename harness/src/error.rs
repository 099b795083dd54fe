//! The harness's error type.

use std::path::PathBuf;

use crate::scenario::LogEntry;

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("cannot create the wasm engine: {0}")]
    Engine(String),
    #[error("cannot load {path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("cannot start filter `{filter}`: {message}")]
    Instantiate { filter: String, message: String },
    /// `proxy_on_vm_start` returned false.
    #[error("filter `{filter}` refused its VM configuration{}", render(logs))]
    VmStart { filter: String, logs: Vec<LogEntry> },
    /// `proxy_on_configure` returned false: Envoy rejects such a configuration at load time.
    #[error("filter `{filter}` rejected its plugin configuration{}", render(logs))]
    Configure { filter: String, logs: Vec<LogEntry> },
    /// The filter trapped while starting.
    #[error("filter `{filter}` failed while starting: {message}")]
    Trap { filter: String, message: String },
}

impl HarnessError {
    /// The log lines the filter wrote before failing (empty for other errors).
    pub fn logs(&self) -> &[LogEntry] {
        match self {
            HarnessError::VmStart { logs, .. } | HarnessError::Configure { logs, .. } => logs,
            _ => &[],
        }
    }
}

fn render(logs: &[LogEntry]) -> String {
    logs.iter()
        .map(|l| format!("\n  [{:?}] {}", l.level, l.message))
        .collect()
}
