//! The lock file: which image (by digest) each artifact was packaged as. `tollgate package
//! --lock FILE` writes it; `tollgate render --lock FILE` reads it, so the manifests pin exactly
//! what was pushed.
//!
//! ```json
//! {
//!   "version": 1,
//!   "revision": "…git commit…",
//!   "artifacts": {
//!     "jwt-auth": {
//!       "repository": "registry.example.com/tollgate/jwt-auth",
//!       "digest": "sha256:…",
//!       "url": "oci://registry.example.com/tollgate/jwt-auth@sha256:…",
//!       "wasm_sha256": "sha256:…", "wasm_size": 967036
//!     }
//!   }
//! }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::image::digest_hex;

/// The format version written and accepted.
pub const LOCK_VERSION: u32 = 1;

/// Why a lock file or an image reference could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a tollgate lock file: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path}: lock file version {found}, this tollgate reads version {LOCK_VERSION}")]
    Version { path: String, found: u32 },
    #[error(
        "`{0}` is not an image pinned by digest (expected [oci://]REGISTRY/REPO@sha256:<64 hex>)"
    )]
    NotPinned(String),
}

/// One packaged artifact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedImage {
    /// `REGISTRY/PREFIX/NAME`, without tag or digest.
    pub repository: String,
    /// The manifest digest, `sha256:<hex>`.
    pub digest: String,
    /// `oci://REPOSITORY@DIGEST`.
    pub url: String,
    /// The `.wasm` file's own digest (for checking a pulled module; not an OCI digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm_size: Option<u64>,
}

impl LockedImage {
    /// An image from its repository and manifest digest.
    pub fn new(repository: &str, digest: &str) -> Result<Self, LockError> {
        let repository = repository.trim_start_matches("oci://").to_string();
        if digest_hex(digest).is_none() || repository.is_empty() || repository.contains('@') {
            return Err(LockError::NotPinned(format!("{repository}@{digest}")));
        }
        Ok(Self {
            url: format!("oci://{repository}@{digest}"),
            repository,
            digest: digest.to_string(),
            wasm_sha256: None,
            wasm_size: None,
        })
    }

    /// Parses `[oci://]REGISTRY/REPO@sha256:<hex>`.
    pub fn parse(reference: &str) -> Result<Self, LockError> {
        let bare = reference.trim_start_matches("oci://");
        let (repository, digest) = bare
            .split_once('@')
            .ok_or_else(|| LockError::NotPinned(reference.to_string()))?;
        Self::new(repository, digest).map_err(|_| LockError::NotPinned(reference.to_string()))
    }

    /// The image reference without scheme: `REPOSITORY@DIGEST` (Envoy Gateway's `image.url`).
    pub fn reference(&self) -> String {
        format!("{}@{}", self.repository, self.digest)
    }

    /// The digest's hex (the `sha256` fields of WasmPlugin and EnvoyExtensionPolicy).
    pub fn sha256_hex(&self) -> &str {
        digest_hex(&self.digest).unwrap_or_default()
    }
}

/// The whole lock file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub version: u32,
    /// The source revision the artifacts were built from, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// By artifact name (`jwt-auth`, …, `bundle`).
    pub artifacts: BTreeMap<String, LockedImage>,
}

impl Lock {
    pub fn new(revision: Option<String>) -> Self {
        Self {
            version: LOCK_VERSION,
            revision,
            artifacts: BTreeMap::new(),
        }
    }

    /// Reads and checks a lock file.
    pub fn read(path: &Path) -> Result<Self, LockError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| LockError::Read {
            path: name.clone(),
            source,
        })?;
        let lock: Lock = serde_json::from_str(&text).map_err(|source| LockError::Parse {
            path: name.clone(),
            source,
        })?;
        if lock.version != LOCK_VERSION {
            return Err(LockError::Version {
                path: name,
                found: lock.version,
            });
        }
        for image in lock.artifacts.values() {
            let checked = LockedImage::new(&image.repository, &image.digest)
                .map_err(|_| LockError::NotPinned(image.url.clone()))?;
            if checked.url != image.url {
                return Err(LockError::NotPinned(image.url.clone()));
            }
        }
        Ok(lock)
    }

    /// The lock as written to disk: pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    pub fn write(&self, path: &Path) -> Result<(), LockError> {
        let io = |source| LockError::Write {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        std::fs::write(path, self.to_json()).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn references_parse_only_when_pinned() {
        let img = LockedImage::parse(&format!("oci://reg.example:5000/t/jwt-auth@{D}")).unwrap();
        assert_eq!(img.repository, "reg.example:5000/t/jwt-auth");
        assert_eq!(img.url, format!("oci://reg.example:5000/t/jwt-auth@{D}"));
        assert_eq!(img.reference(), format!("reg.example:5000/t/jwt-auth@{D}"));
        assert_eq!(img.sha256_hex().len(), 64);
        assert_eq!(
            LockedImage::parse(&format!("reg/x@{D}"))
                .unwrap()
                .repository,
            "reg/x"
        );
        for bad in [
            "reg/x:1.0",
            "reg/x@sha256:abc",
            "@sha256:00",
            "reg/x@md5:00",
        ] {
            assert!(LockedImage::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn round_trips_and_rejects_tampering() {
        let dir = std::env::temp_dir().join(format!("tollgate-lock-{}", std::process::id()));
        let path = dir.join("lock.json");
        let mut lock = Lock::new(Some("abc".into()));
        lock.artifacts.insert(
            "jwt-auth".into(),
            LockedImage::new("reg/t/jwt-auth", D).unwrap(),
        );
        lock.write(&path).unwrap();
        assert_eq!(Lock::read(&path).unwrap(), lock);
        let tampered = lock
            .to_json()
            .replace("oci://reg/t/jwt-auth@", "oci://reg/t/other@");
        std::fs::write(&path, tampered).unwrap();
        assert!(Lock::read(&path).is_err());
        std::fs::write(
            &path,
            lock.to_json().replace("\"version\": 1", "\"version\": 9"),
        )
        .unwrap();
        assert!(matches!(Lock::read(&path), Err(LockError::Version { .. })));
        let _ = std::fs::remove_dir_all(dir);
    }
}
