//! The OCI image of one `.wasm` filter, built in memory, byte for byte reproducible.
//!
//! Format: the Wasm image specification's *compat* variant, the one the Istio and Envoy Gateway
//! image fetchers (Istio `pkg/wasm/imagefetcher.go`) accept without conditions:
//!
//! - an OCI image manifest (`application/vnd.oci.image.manifest.v1+json`) with
//! - an OCI image config (`application/vnd.oci.image.config.v1+json`, `rootfs.diff_ids` set so
//!   every image library can map the layer) and
//! - exactly one layer, `application/vnd.oci.image.layer.v1.tar+gzip`, a tar holding exactly one
//!   regular file, `plugin.wasm`;
//! - manifest annotations `module.wasm.image/variant: compat` and the `org.opencontainers.image.*`
//!   ones given by the caller (title, version, revision, source — never a timestamp).
//!
//! Formats the fetchers reject, and which this module therefore never builds: the single raw
//! `application/vnd.wasm.content.layer.v1+wasm` layer that `wasm-to-oci` and oci-client's own
//! example push, the CNCF `application/wasm` layer, an artifact with an empty config.
//!
//! Reproducible: the tar entry has mtime 0, uid/gid 0, empty owner names, mode 0644; the gzip
//! header has mtime 0, no file name and OS byte 255 ("unknown"); the JSON documents are serialized
//! from structs (fixed field order) and sorted maps. The same `.wasm` and annotations give the
//! same bytes, hence the same digests — on any machine with the same `flate2` backend (the
//! workspace pins it; a golden test below notices if the compressed bytes ever change).

use std::collections::BTreeMap;
use std::io::{Read, Write};

use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// The manifest media type.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The config media type.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// The layer media type (compat variant).
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The one file in the layer; the fetchers look it up by base name.
pub const PLUGIN_FILE: &str = "plugin.wasm";
/// The annotation naming the Wasm image variant.
pub const VARIANT_ANNOTATION: &str = "module.wasm.image/variant";

/// `org.opencontainers.image.title`
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
/// `org.opencontainers.image.version`
pub const ANNOTATION_VERSION: &str = "org.opencontainers.image.version";
/// `org.opencontainers.image.revision`
pub const ANNOTATION_REVISION: &str = "org.opencontainers.image.revision";
/// `org.opencontainers.image.source`
pub const ANNOTATION_SOURCE: &str = "org.opencontainers.image.source";

/// Tar entry mode of `plugin.wasm`.
const FILE_MODE: u32 = 0o644;
/// gzip OS byte: 255 = unknown (the same on every build host).
const GZIP_OS_UNKNOWN: u8 = 255;

/// Why an image could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("not a WebAssembly module (no `\\0asm` header)")]
    NotWasm,
    #[error("writing the layer: {0}")]
    Io(#[from] std::io::Error),
    #[error("serializing {what}: {source}")]
    Json {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("the layer holds {0}, expected exactly one regular file `plugin.wasm`")]
    LayerContent(String),
}

/// What the image says about itself (manifest annotations). Only `title` is required; none of
/// them comes from the clock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Annotations {
    /// The artifact name (`jwt-auth`, `bundle`…).
    pub title: String,
    /// The release version (`0.1.0`).
    pub version: Option<String>,
    /// The source revision (git commit).
    pub revision: Option<String>,
    /// The source repository URL.
    pub source: Option<String>,
}

impl Annotations {
    /// The manifest's annotation map (sorted), including the compat variant marker.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        out.insert(VARIANT_ANNOTATION.to_string(), "compat".to_string());
        out.insert(ANNOTATION_TITLE.to_string(), self.title.clone());
        for (key, value) in [
            (ANNOTATION_VERSION, &self.version),
            (ANNOTATION_REVISION, &self.revision),
            (ANNOTATION_SOURCE, &self.source),
        ] {
            if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
                out.insert(key.to_string(), v.clone());
            }
        }
        out
    }
}

/// One content-addressed blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    pub media_type: &'static str,
    pub bytes: Vec<u8>,
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
}

impl Blob {
    fn new(media_type: &'static str, bytes: Vec<u8>) -> Self {
        let digest = sha256_digest(&bytes);
        Self {
            media_type,
            bytes,
            digest,
        }
    }

    fn descriptor(&self) -> Descriptor<'_> {
        Descriptor {
            media_type: self.media_type,
            digest: &self.digest,
            size: self.bytes.len() as u64,
        }
    }
}

/// A complete image: push the layer and config blobs, then the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WasmImage {
    pub layer: Blob,
    pub config: Blob,
    pub manifest: Blob,
    /// `sha256:<hex>` of the `.wasm` itself (not an OCI digest; for the lock file).
    pub wasm_digest: String,
    pub wasm_size: u64,
}

impl WasmImage {
    /// The manifest digest, `sha256:<hex>`: what `@sha256:` URLs and the `sha256` fields pin.
    pub fn digest(&self) -> &str {
        &self.manifest.digest
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor<'a> {
    media_type: &'a str,
    digest: &'a str,
    size: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: Descriptor<'a>,
    layers: [Descriptor<'a>; 1],
    annotations: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct ImageConfig<'a> {
    architecture: &'a str,
    os: &'a str,
    rootfs: RootFs<'a>,
}

#[derive(Serialize)]
struct RootFs<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    diff_ids: [&'a str; 1],
}

/// `sha256:<lowercase hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let sum = Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in sum.iter() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The hex part of a `sha256:<hex>` digest (what Istio's and Envoy Gateway's `sha256` fields
/// take); `None` when `digest` is not a well-formed sha256 digest.
pub fn digest_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(hex)
}

/// Builds the image of `wasm` with these annotations.
pub fn build(wasm: &[u8], annotations: &Annotations) -> Result<WasmImage, ImageError> {
    if !wasm.starts_with(b"\0asm") {
        return Err(ImageError::NotWasm);
    }
    let tar = tar_of(wasm)?;
    let diff_id = sha256_digest(&tar);
    let layer = Blob::new(LAYER_MEDIA_TYPE, gzip(&tar)?);

    let config = ImageConfig {
        architecture: "wasm",
        os: "wasip1",
        rootfs: RootFs {
            kind: "layers",
            diff_ids: [&diff_id],
        },
    };
    let config = Blob::new(
        CONFIG_MEDIA_TYPE,
        serde_json::to_vec(&config).map_err(|source| ImageError::Json {
            what: "the image config",
            source,
        })?,
    );

    let annotations = annotations.to_map();
    let manifest = Manifest {
        schema_version: 2,
        media_type: MANIFEST_MEDIA_TYPE,
        config: config.descriptor(),
        layers: [layer.descriptor()],
        annotations: &annotations,
    };
    let manifest = Blob::new(
        MANIFEST_MEDIA_TYPE,
        serde_json::to_vec(&manifest).map_err(|source| ImageError::Json {
            what: "the manifest",
            source,
        })?,
    );
    Ok(WasmImage {
        layer,
        config,
        manifest,
        wasm_digest: sha256_digest(wasm),
        wasm_size: wasm.len() as u64,
    })
}

/// A tar with one entry, `plugin.wasm`, and fixed metadata.
fn tar_of(wasm: &[u8]) -> Result<Vec<u8>, ImageError> {
    let mut header = tar::Header::new_ustar();
    header.set_path(PLUGIN_FILE)?;
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(wasm.len() as u64);
    header.set_mode(FILE_MODE);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_username("")?;
    header.set_groupname("")?;
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::with_capacity(wasm.len() + 2048));
    builder.mode(tar::HeaderMode::Deterministic);
    builder.append(&header, wasm)?;
    Ok(builder.into_inner()?)
}

/// gzip with a fixed header (mtime 0, no name, OS unknown) at the best compression level.
fn gzip(data: &[u8]) -> Result<Vec<u8>, ImageError> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(GZIP_OS_UNKNOWN)
        .write(Vec::new(), flate2::Compression::best());
    enc.write_all(data)?;
    Ok(enc.finish()?)
}

/// Reads a compat layer back: the `.wasm` bytes when the tar.gz holds exactly one regular file
/// named `plugin.wasm`, an error naming what it holds otherwise.
pub fn read_layer(targz: &[u8]) -> Result<Vec<u8>, ImageError> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(targz));
    let mut found: Vec<String> = Vec::new();
    let mut wasm = None;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let regular = entry.header().entry_type() == tar::EntryType::Regular;
        if regular && path == PLUGIN_FILE && wasm.is_none() {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            wasm = Some(bytes);
        }
        found.push(path);
    }
    match (wasm, found.len()) {
        (Some(bytes), 1) => Ok(bytes),
        _ => Err(ImageError::LayerContent(if found.is_empty() {
            "nothing".to_string()
        } else {
            format!("{found:?}")
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest valid module: magic + version.
    const EMPTY_MODULE: &[u8] = b"\0asm\x01\0\0\0";

    fn annotations() -> Annotations {
        Annotations {
            title: "jwt-auth".into(),
            version: Some("0.1.0".into()),
            revision: Some("0123456789abcdef0123456789abcdef01234567".into()),
            source: Some("https://example.invalid/tollgate".into()),
        }
    }

    #[test]
    fn same_input_same_bytes() {
        let a = build(EMPTY_MODULE, &annotations()).unwrap();
        let b = build(EMPTY_MODULE, &annotations()).unwrap();
        assert_eq!(a, b);
        let mut other = annotations();
        other.revision = Some("ffff".into());
        let c = build(EMPTY_MODULE, &other).unwrap();
        assert_ne!(a.digest(), c.digest());
        assert_eq!(a.layer, c.layer, "annotations live in the manifest only");
    }

    #[test]
    fn golden_digests() {
        // If these change, every published digest changes: a flate2/tar/serde upgrade altered
        // the bytes. Update deliberately (and say so in the release notes).
        let img = build(EMPTY_MODULE, &annotations()).unwrap();
        assert_eq!(
            img.layer.digest,
            "sha256:5f867f5ced35488c9530d0661aec4ece7a83e23877d46827a9d0390e3a2bfe66",
            "layer bytes changed"
        );
        assert_eq!(
            img.digest(),
            "sha256:08ba02869dada351dfd7b69ede9c19993b29545335fb38d4c20168d3e378727d",
            "manifest bytes changed"
        );
    }

    #[test]
    fn layer_is_one_plugin_wasm_with_fixed_metadata() {
        let img = build(EMPTY_MODULE, &annotations()).unwrap();
        assert_eq!(read_layer(&img.layer.bytes).unwrap(), EMPTY_MODULE);
        // gzip header: magic, deflate, no flags, mtime 0, xfl 2 (best), OS 255
        assert_eq!(
            &img.layer.bytes[..10],
            &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 255]
        );
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&img.layer.bytes[..]));
        let entries: Vec<_> = archive.entries().unwrap().map(|e| e.unwrap()).collect();
        assert_eq!(entries.len(), 1);
        let h = entries[0].header();
        assert_eq!(h.mtime().unwrap(), 0);
        assert_eq!(h.uid().unwrap(), 0);
        assert_eq!(h.gid().unwrap(), 0);
        assert_eq!(h.mode().unwrap(), 0o644);
        assert_eq!(h.username().unwrap(), Some(""));
    }

    #[test]
    fn manifest_and_config_reference_each_other() {
        let img = build(EMPTY_MODULE, &annotations()).unwrap();
        let m: serde_json::Value = serde_json::from_slice(&img.manifest.bytes).unwrap();
        assert_eq!(m["schemaVersion"], 2);
        assert_eq!(m["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(m["config"]["mediaType"], CONFIG_MEDIA_TYPE);
        assert_eq!(m["config"]["digest"], img.config.digest.as_str());
        assert_eq!(m["config"]["size"], img.config.bytes.len());
        assert_eq!(m["layers"].as_array().unwrap().len(), 1);
        assert_eq!(m["layers"][0]["mediaType"], LAYER_MEDIA_TYPE);
        assert_eq!(m["layers"][0]["digest"], img.layer.digest.as_str());
        assert_eq!(m["annotations"][VARIANT_ANNOTATION], "compat");
        assert_eq!(m["annotations"][ANNOTATION_TITLE], "jwt-auth");
        assert_eq!(m["annotations"][ANNOTATION_VERSION], "0.1.0");
        assert!(m["annotations"]
            .get("org.opencontainers.image.created")
            .is_none());
        let c: serde_json::Value = serde_json::from_slice(&img.config.bytes).unwrap();
        let tar_digest = {
            let mut tar = Vec::new();
            flate2::read::GzDecoder::new(&img.layer.bytes[..])
                .read_to_end(&mut tar)
                .unwrap();
            sha256_digest(&tar)
        };
        assert_eq!(c["rootfs"]["diff_ids"][0], tar_digest.as_str());
        assert_eq!(img.wasm_digest, sha256_digest(EMPTY_MODULE));
    }

    #[test]
    fn rejects_what_is_not_wasm_and_layers_that_hold_more() {
        assert!(matches!(
            build(b"hello", &annotations()),
            Err(ImageError::NotWasm)
        ));
        let mut b = tar::Builder::new(Vec::new());
        for name in ["plugin.wasm", "extra"] {
            let mut h = tar::Header::new_ustar();
            h.set_size(1);
            h.set_cksum();
            b.append_data(&mut h, name, &b"x"[..]).unwrap();
        }
        let targz = gzip(&b.into_inner().unwrap()).unwrap();
        let err = read_layer(&targz).unwrap_err().to_string();
        assert!(err.contains("extra"), "{err}");
    }

    #[test]
    fn digest_hex_is_strict() {
        let d = sha256_digest(b"x");
        assert_eq!(digest_hex(&d).map(str::len), Some(64));
        assert_eq!(digest_hex("sha256:ABC"), None);
        assert_eq!(digest_hex("md5:00"), None);
    }
}
