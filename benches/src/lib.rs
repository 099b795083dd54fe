//! tollgate-benches: criterion benchmarks of tollgate's filters through the harness
//! (`cargo bench -p tollgate-benches`, or `make bench`).
//!
//! Each bench in `benches/` loads the shipped `.wasm` artifact (built by `make wasm`) into a
//! [`tollgate_harness::Gateway`] and measures whole requests through it, the way Envoy would run
//! them. This library holds what the benches share: where the artifacts are.

use std::path::PathBuf;

/// The directory of the `.wasm` artifacts: `$TOLLGATE_WASM_DIR`, else
/// `<workspace>/target/wasm32-wasip1/release`.
pub fn wasm_dir() -> PathBuf {
    match std::env::var_os("TOLLGATE_WASM_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target")
            .join("wasm32-wasip1")
            .join("release"),
    }
}

/// The artifact of a filter crate: `wasm_path("key-inject")` →
/// `<wasm_dir>/tollgate_key_inject.wasm`. `Err` names the command that builds it.
pub fn wasm_path(name: &str) -> Result<PathBuf, String> {
    let file = format!("tollgate_{}.wasm", name.replace('-', "_"));
    let path = wasm_dir().join(&file);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: run `make wasm` (or `cargo build --release --target wasm32-wasip1 -p tollgate-{}`)",
            path.display(),
            name.replace('_', "-")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_names_follow_the_crate_names() {
        let err = wasm_path("no-such-filter").unwrap_err();
        assert!(err.contains("tollgate_no_such_filter.wasm"), "{err}");
        assert!(err.contains("-p tollgate-no-such-filter"), "{err}");
    }
}
