//! `tollgate package`: an OCI image per filter and for the bundle from the `.wasm` files of
//! `make wasm`, optionally pushed, with a lock file of their digests.
//!
//! Every artifact is printed on stdout, one line each: `oci://REGISTRY/PREFIX/NAME@sha256:…`
//! (or `NAME sha256:…` when no repository is named). Progress goes to stderr.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::artifacts::{self, ARTIFACTS};
use crate::image::{self, Annotations, ImageError, WasmImage};
use crate::layout::{self, LayoutError};
use crate::lock::{Lock, LockError, LockedImage};
use crate::registry::{Auth, Registry, RegistryError};

/// `tollgate package` arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// Where `make wasm` put the `.wasm` files.
    #[arg(
        long,
        env = "TOLLGATE_WASM_DIR",
        default_value = "target/wasm32-wasip1/release"
    )]
    pub wasm_dir: PathBuf,
    /// Package only these artifacts (repeatable): jwt-auth, prompt-guard, key-inject,
    /// secret-mask, bundle. Default: all five.
    #[arg(long = "only", value_name = "NAME")]
    pub only: Vec<String>,
    /// Push to REGISTRY/PREFIX: each artifact becomes REGISTRY/PREFIX/NAME.
    #[arg(long, value_name = "REGISTRY/PREFIX", conflicts_with = "repository")]
    pub push: Option<String>,
    /// Name the images REGISTRY/PREFIX/NAME without pushing (digests for the lock file only).
    #[arg(long, value_name = "REGISTRY/PREFIX")]
    pub repository: Option<String>,
    /// The tag pushed next to the digest (default: the version).
    #[arg(long)]
    pub tag: Option<String>,
    /// `org.opencontainers.image.version` (default: the crate version).
    #[arg(long = "version", value_name = "VERSION", env = "TOLLGATE_VERSION", default_value = env!("CARGO_PKG_VERSION"))]
    pub artifact_version: String,
    /// `org.opencontainers.image.revision` (default: `git rev-parse HEAD` when in a git checkout).
    #[arg(long, env = "TOLLGATE_REVISION")]
    pub revision: Option<String>,
    /// `org.opencontainers.image.source`.
    #[arg(long, env = "TOLLGATE_SOURCE", default_value = env!("CARGO_PKG_REPOSITORY"))]
    pub source: String,
    /// Registry user name for basic auth (the password comes from `--password-stdin` or
    /// `TOLLGATE_REGISTRY_PASSWORD`).
    #[arg(long, env = "TOLLGATE_REGISTRY_USERNAME")]
    pub username: Option<String>,
    /// Read the basic-auth password from stdin.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
    /// Read a bearer token from stdin (instead of basic auth; also `TOLLGATE_REGISTRY_TOKEN`).
    #[arg(long, conflicts_with_all = ["username", "password_stdin"])]
    pub token_stdin: bool,
    /// Plain HTTP instead of HTTPS (for a registry on loopback).
    #[arg(long)]
    pub insecure: bool,
    /// Write the digests to this lock file (what `tollgate render --lock` reads).
    #[arg(long, value_name = "FILE")]
    pub lock: Option<PathBuf>,
    /// Also write the images into this OCI image layout directory (one manifest per artifact,
    /// named after it), for pushing with other tools: `skopeo copy --preserve-digests oci:DIR:NAME …`.
    #[arg(long, value_name = "DIR")]
    pub oci_layout: Option<PathBuf>,
}

/// Why packaging failed.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("unknown artifact `{0}` (expected one of: {list})", list = ARTIFACTS.join(", "))]
    UnknownArtifact(String),
    #[error("{path}: {source} (run `make wasm` first)")]
    ReadWasm {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Image { path: String, source: ImageError },
    #[error("`{0}` does not name a registry: use REGISTRY[:PORT]/PREFIX, e.g. ghcr.io/acme/tollgate or 127.0.0.1:5000/tollgate")]
    NoRegistry(String),
    #[error("a password or token is required on stdin but none was read: {0}")]
    Stdin(String),
    #[error(
        "basic auth needs a password: pass --password-stdin or set TOLLGATE_REGISTRY_PASSWORD"
    )]
    NoPassword,
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(
        "--lock needs image names: pass --push REGISTRY/PREFIX or --repository REGISTRY/PREFIX"
    )]
    LockWithoutRepository,
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// One packaged artifact.
#[derive(Clone, Debug)]
pub struct Packaged {
    pub name: String,
    pub image: WasmImage,
    /// Set when a repository was named (`--push` or `--repository`).
    pub locked: Option<LockedImage>,
}

/// Builds the image of every selected artifact (pure apart from reading the `.wasm` files).
pub fn build_all(
    wasm_dir: &Path,
    names: &[String],
    annotations: &Annotations,
) -> Result<Vec<(String, WasmImage)>, PackageError> {
    let mut out = Vec::new();
    for name in names {
        let path = wasm_dir.join(artifacts::wasm_file_name(name));
        let wasm = std::fs::read(&path).map_err(|source| PackageError::ReadWasm {
            path: path.display().to_string(),
            source,
        })?;
        let mut a = annotations.clone();
        a.title = name.clone();
        let image = image::build(&wasm, &a).map_err(|source| PackageError::Image {
            path: path.display().to_string(),
            source,
        })?;
        out.push((name.clone(), image));
    }
    Ok(out)
}

/// The selected artifact names, validated, in shipping order.
pub fn selected(only: &[String]) -> Result<Vec<String>, PackageError> {
    if let Some(bad) = only.iter().find(|n| !ARTIFACTS.contains(&n.as_str())) {
        return Err(PackageError::UnknownArtifact(bad.clone()));
    }
    Ok(ARTIFACTS
        .iter()
        .filter(|a| only.is_empty() || only.iter().any(|o| o == *a))
        .map(|a| a.to_string())
        .collect())
}

/// `REGISTRY/PREFIX` checked to start with a registry host (a name with a dot or a port, or
/// `localhost`), without trailing slash.
pub fn repository_prefix(prefix: &str) -> Result<String, PackageError> {
    let prefix = prefix.trim_start_matches("oci://").trim_end_matches('/');
    let host = prefix.split('/').next().unwrap_or_default();
    let is_host = host.contains('.') || host.contains(':') || host == "localhost";
    if !is_host || !prefix.contains('/') || prefix.contains('@') {
        return Err(PackageError::NoRegistry(prefix.to_string()));
    }
    Ok(prefix.to_string())
}

/// `git rev-parse HEAD`, when it answers.
fn git_revision() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    let rev = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !rev.is_empty()).then_some(rev)
}

fn read_stdin_secret() -> Result<String, PackageError> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| PackageError::Stdin(e.to_string()))?;
    let s = s.trim_end_matches(['\r', '\n']).to_string();
    if s.is_empty() {
        return Err(PackageError::Stdin("stdin was empty".into()));
    }
    Ok(s)
}

/// The registry credentials from the arguments, stdin and the environment.
fn auth(args: &Args) -> Result<Auth, PackageError> {
    if args.token_stdin {
        return Ok(Auth::Bearer(read_stdin_secret()?));
    }
    if let Some(username) = &args.username {
        let password = if args.password_stdin {
            read_stdin_secret()?
        } else {
            std::env::var("TOLLGATE_REGISTRY_PASSWORD")
                .ok()
                .filter(|p| !p.is_empty())
                .ok_or(PackageError::NoPassword)?
        };
        return Ok(Auth::Basic {
            username: username.clone(),
            password,
        });
    }
    match std::env::var("TOLLGATE_REGISTRY_TOKEN") {
        Ok(token) if !token.is_empty() => Ok(Auth::Bearer(token)),
        _ => Ok(Auth::Anonymous),
    }
}

/// Runs `tollgate package`: builds, pushes when asked, prints one line per artifact, writes the
/// lock file when asked.
pub fn run(args: &Args) -> Result<Vec<Packaged>, PackageError> {
    let names = selected(&args.only)?;
    let revision = args
        .revision
        .clone()
        .filter(|r| !r.is_empty())
        .or_else(git_revision);
    let annotations = Annotations {
        title: String::new(),
        version: Some(args.artifact_version.clone()),
        revision: revision.clone(),
        source: Some(args.source.clone()),
    };
    let built = build_all(&args.wasm_dir, &names, &annotations)?;
    if let Some(dir) = &args.oci_layout {
        let images: Vec<(String, &WasmImage)> = built
            .iter()
            .map(|(name, image)| (name.clone(), image))
            .collect();
        layout::write_layout(dir, &images)?;
        eprintln!("tollgate: wrote the OCI image layout {}", dir.display());
    }
    let prefix = match args.push.as_ref().or(args.repository.as_ref()) {
        Some(p) => Some(repository_prefix(p)?),
        None => None,
    };
    if args.lock.is_some() && prefix.is_none() {
        return Err(PackageError::LockWithoutRepository);
    }

    let mut packaged = Vec::new();
    if let (Some(prefix), Some(_)) = (&prefix, &args.push) {
        let registry = Registry::new(auth(args)?, args.insecure);
        let tag = args
            .tag
            .clone()
            .unwrap_or_else(|| args.artifact_version.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(PackageError::Runtime)?;
        for (name, image) in built {
            let repository = format!("{prefix}/{name}");
            eprintln!("tollgate: pushing {repository}:{tag}");
            let digest = runtime.block_on(registry.push(&repository, &tag, &image))?;
            packaged.push(packaged_entry(name, image, &repository, &digest)?);
        }
    } else {
        for (name, image) in built {
            let locked = match &prefix {
                Some(prefix) => Some(locked(&image, &format!("{prefix}/{name}"), image.digest())?),
                None => None,
            };
            packaged.push(Packaged {
                name,
                image,
                locked,
            });
        }
    }

    for p in &packaged {
        match &p.locked {
            Some(l) => println!("{}", l.url),
            None => println!("{} {}", p.name, p.image.digest()),
        }
    }
    if let Some(path) = &args.lock {
        let mut lock = Lock::new(revision);
        for p in &packaged {
            if let Some(l) = &p.locked {
                lock.artifacts.insert(p.name.clone(), l.clone());
            }
        }
        lock.write(path)?;
        eprintln!("tollgate: wrote {}", path.display());
    }
    Ok(packaged)
}

fn locked(image: &WasmImage, repository: &str, digest: &str) -> Result<LockedImage, LockError> {
    let mut l = LockedImage::new(repository, digest)?;
    l.wasm_sha256 = Some(image.wasm_digest.clone());
    l.wasm_size = Some(image.wasm_size);
    Ok(l)
}

fn packaged_entry(
    name: String,
    image: WasmImage,
    repository: &str,
    digest: &str,
) -> Result<Packaged, PackageError> {
    let l = locked(&image, repository, digest)?;
    Ok(Packaged {
        name,
        image,
        locked: Some(l),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_keeps_the_shipping_order() {
        assert_eq!(selected(&[]).unwrap(), ARTIFACTS);
        assert_eq!(
            selected(&["bundle".into(), "jwt-auth".into()]).unwrap(),
            ["jwt-auth", "bundle"]
        );
        assert!(matches!(
            selected(&["audit".into()]),
            Err(PackageError::UnknownArtifact(_))
        ));
    }

    #[test]
    fn prefixes_must_name_a_registry() {
        assert_eq!(
            repository_prefix("oci://127.0.0.1:5000/tollgate/").unwrap(),
            "127.0.0.1:5000/tollgate"
        );
        assert_eq!(
            repository_prefix("ghcr.io/acme/tg").unwrap(),
            "ghcr.io/acme/tg"
        );
        assert!(repository_prefix("localhost/x").is_ok());
        for bad in ["tollgate/x", "ghcr.io", "reg.io/x@sha256:00"] {
            assert!(repository_prefix(bad).is_err(), "{bad}");
        }
    }
}
