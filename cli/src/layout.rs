//! Writing built images into an OCI image layout directory (`oci-layout`, `index.json`,
//! `blobs/sha256/…`), for registries that only your own tooling can reach:
//! `tollgate package --oci-layout DIR`, then e.g.
//! `skopeo copy --preserve-digests oci:DIR:jwt-auth docker://registry/…/jwt-auth:TAG`.
//! Each artifact is one manifest in the index, named by `org.opencontainers.image.ref.name`.

use std::path::Path;

use serde::Serialize;

use crate::image::{digest_hex, Blob, WasmImage, MANIFEST_MEDIA_TYPE};

/// Why the layout could not be written.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("serializing index.json: {0}")]
    Json(#[from] serde_json::Error),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index<'a> {
    schema_version: u32,
    manifests: Vec<IndexEntry<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IndexEntry<'a> {
    media_type: &'a str,
    digest: &'a str,
    size: u64,
    annotations: RefName<'a>,
}

#[derive(Serialize)]
struct RefName<'a> {
    #[serde(rename = "org.opencontainers.image.ref.name")]
    name: &'a str,
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| LayoutError::Write {
            path: dir.display().to_string(),
            source,
        })?;
    }
    std::fs::write(path, bytes).map_err(|source| LayoutError::Write {
        path: path.display().to_string(),
        source,
    })
}

fn write_blob(dir: &Path, blob: &Blob) -> Result<(), LayoutError> {
    let hex = digest_hex(&blob.digest).unwrap_or_default();
    write(&dir.join("blobs/sha256").join(hex), &blob.bytes)
}

/// Writes `images` (name, image) as one OCI image layout in `dir` (replacing its index).
pub fn write_layout(dir: &Path, images: &[(String, &WasmImage)]) -> Result<(), LayoutError> {
    write(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let mut manifests = Vec::new();
    for (name, image) in images {
        for blob in [&image.layer, &image.config, &image.manifest] {
            write_blob(dir, blob)?;
        }
        manifests.push(IndexEntry {
            media_type: MANIFEST_MEDIA_TYPE,
            digest: &image.manifest.digest,
            size: image.manifest.bytes.len() as u64,
            annotations: RefName { name },
        });
    }
    let index = serde_json::to_vec(&Index {
        schema_version: 2,
        manifests,
    })?;
    write(&dir.join("index.json"), &index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{build, sha256_digest, Annotations};

    #[test]
    fn layout_holds_every_blob_by_digest_and_names_each_manifest() {
        let dir = std::env::temp_dir().join(format!("tollgate-layout-{}", std::process::id()));
        let img = build(
            b"\0asm\x01\0\0\0",
            &Annotations {
                title: "key-inject".into(),
                ..Annotations::default()
            },
        )
        .unwrap();
        write_layout(&dir, &[("key-inject".to_string(), &img)]).unwrap();
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"][0]["digest"], img.digest());
        assert_eq!(
            index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
            "key-inject"
        );
        for blob in [&img.layer, &img.config, &img.manifest] {
            let path = dir.join("blobs/sha256").join(&blob.digest[7..]);
            assert_eq!(sha256_digest(&std::fs::read(path).unwrap()), blob.digest);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
