//! What the registry, manifest and Envoy tests share: finding (or loudly skipping without) the
//! Debian tools, a registry child process on a free loopback port killed by pid on drop,
//! running the `tollgate` binary, and pulling images back with `skopeo`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use tollgate::lock::Lock;
use tollgate_tests::http::{self, Request};
use tollgate_tests::process::{free_port, ChildGuard, ScratchDir, READY_TIMEOUT};

/// The registry binary of Debian's `docker-registry` package (`TOLLGATE_REGISTRY_BIN` overrides).
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A basic-auth user for the htpasswd registry, and the bcrypt hash of its password
/// (`tollgate-test-password`, cost 4), so no htpasswd tool is needed.
pub const TEST_USER: &str = "tollgate-ci";
pub const TEST_PASSWORD: &str = "tollgate-test-password";
const TEST_HTPASSWD: &str = "$2b$04$riB1Intx3G0dmLTxJU4xVOdIWGtDficHf5fG5iUxN3Spzox2PZf4C";

/// A fixed revision for reproducible annotations in tests.
pub const REVISION: &str = "0123456789abcdef0123456789abcdef01234567";

/// Says loudly that a test is skipped because `what` is missing — on the terminal, past the
/// test harness's output capture — or fails it when `CI=true`.
pub fn skip_or_fail(what: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} is missing and CI=true: run `make debs` as root (apt-get install docker-registry skopeo)");
    }
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED: {what} is missing; `sudo make debs` installs docker-registry and skopeo (with CI=true this fails) ***\n"
    );
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// The registry binary and skopeo, or `None` after [`skip_or_fail`].
pub fn tools() -> Option<(PathBuf, PathBuf)> {
    let registry = std::env::var_os("TOLLGATE_REGISTRY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(REGISTRY_BIN));
    let skopeo = which("skopeo");
    match (registry.is_file(), skopeo) {
        (true, Some(skopeo)) => Some((registry, skopeo)),
        (false, _) => {
            skip_or_fail(&format!("the OCI registry ({})", registry.display()));
            None
        }
        (true, None) => {
            skip_or_fail("skopeo");
            None
        }
    }
}

/// How the test registry authenticates clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistryAuth {
    None,
    /// htpasswd (basic) with [`TEST_USER`] / [`TEST_PASSWORD`].
    Basic,
    /// distribution's "silly" access controller: any `Authorization` header is accepted, none
    /// gets a Bearer challenge (enough to tell a bearer token was sent).
    Bearer,
}

/// A CNCF distribution registry on a free loopback port, storage in a scratch directory,
/// killed by pid when dropped.
pub struct RegistryServer {
    // field order: the child dies before its scratch directory is removed
    child: ChildGuard,
    _dir: ScratchDir,
    pub port: u16,
}

impl RegistryServer {
    pub fn start(bin: &Path, auth: RegistryAuth) -> Self {
        let dir = ScratchDir::new("registry").expect("scratch dir");
        let port = free_port().expect("a free port");
        let auth_block = match auth {
            RegistryAuth::None => String::new(),
            RegistryAuth::Basic => {
                let path = dir.join("htpasswd");
                std::fs::write(&path, format!("{TEST_USER}:{TEST_HTPASSWD}\n")).expect("htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: tollgate-test\n    path: {}\n",
                    path.display()
                )
            }
            RegistryAuth::Bearer => {
                "auth:\n  silly:\n    realm: http://127.0.0.1:9/token\n    service: tollgate-test\n"
                    .to_string()
            }
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: tollgate-test-secret\n{auth_block}",
            dir.join("data").display()
        );
        let config_path = dir.join("config.yml");
        std::fs::write(&config_path, config).expect("registry config");
        let mut cmd = Command::new(bin);
        cmd.arg("serve").arg(&config_path);
        let mut child = ChildGuard::spawn("docker-registry", cmd, &dir.join("registry.log"))
            .expect("registry starts");
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        child
            .wait_until("answering /v2/", READY_TIMEOUT, || {
                http::send(addr, &Request::get("/v2/"))
                    .ok()
                    .filter(|r| r.status == 200 || r.status == 401)
            })
            .expect("the registry answers");
        Self {
            child,
            _dir: dir,
            port,
        }
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        self.child.log()
    }
}

/// Runs the `tollgate` binary with `args` (stdin from `stdin`), never inheriting registry
/// credentials from the test's environment.
pub fn tollgate(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    cmd.args(args)
        .current_dir(tollgate_tests::workspace_root())
        .env_remove("TOLLGATE_REGISTRY_USERNAME")
        .env_remove("TOLLGATE_REGISTRY_PASSWORD")
        .env_remove("TOLLGATE_REGISTRY_TOKEN")
        .env_remove("TOLLGATE_REVISION")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("tollgate runs");
    if let Some(mut pipe) = child.stdin.take() {
        if let Some(text) = stdin {
            pipe.write_all(text.as_bytes()).expect("stdin");
        }
    }
    child.wait_with_output().expect("tollgate finishes")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A copy of every `.wasm` artifact in `dir`: the tests package and compare this snapshot,
/// never the build directory that a concurrent `make wasm` may be rewriting.
pub fn snapshot_wasm(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir");
    for name in tollgate::artifacts::ARTIFACTS {
        let file = tollgate::artifacts::wasm_file_name(name);
        let from = tollgate_tests::wasm_dir().join(&file);
        std::fs::copy(&from, dir.join(&file))
            .unwrap_or_else(|e| panic!("{}: {e} (run `make wasm`)", from.display()));
    }
    dir.to_path_buf()
}

/// `tollgate package --push` of every artifact in `wasm_dir` to `registry`, writing `lock` —
/// the lock read back, and the URLs printed.
pub fn package_push(
    registry: &RegistryServer,
    wasm_dir: &Path,
    lock: &Path,
) -> (Lock, Vec<String>) {
    let prefix = format!("{}/tollgate", registry.host());
    let lock_arg = lock.display().to_string();
    let wasm_arg = wasm_dir.display().to_string();
    let out = tollgate(
        &[
            "package",
            "--wasm-dir",
            &wasm_arg,
            "--push",
            &prefix,
            "--insecure",
            "--revision",
            REVISION,
            "--lock",
            &lock_arg,
        ],
        None,
        &[],
    );
    assert!(
        out.status.success(),
        "tollgate package failed:\n{}\nregistry log:\n{}",
        stderr(&out),
        registry.log()
    );
    let lock = Lock::read(lock).expect("the lock file");
    let urls = stdout(&out).lines().map(str::to_string).collect();
    (lock, urls)
}

/// What skopeo pulled for one image.
pub struct Pulled {
    /// The manifest digest skopeo recorded (`index.json`).
    pub digest: String,
    pub manifest: Value,
    /// The raw layer blob (tar+gzip).
    pub layer: Vec<u8>,
    /// Where the layer was unpacked (by GNU tar).
    pub unpacked: PathBuf,
    /// `tar -tvz --numeric-owner` of the layer.
    pub listing: String,
}

/// `skopeo copy docker://REF oci:DIR`, then the layer unpacked with the system's `tar`.
pub fn skopeo_pull(skopeo: &Path, reference: &str, dir: &Path) -> Pulled {
    let layout = dir.join("layout");
    std::fs::create_dir_all(dir).expect("mkdir");
    let out = Command::new(skopeo)
        .args(["copy", "--src-tls-verify=false", "--quiet"])
        .arg(format!("docker://{reference}"))
        .arg(format!("oci:{}:pulled", layout.display()))
        .output()
        .expect("skopeo runs");
    assert!(
        out.status.success(),
        "skopeo copy {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json"))
            .expect("index.json is JSON");
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .expect("a manifest")
        .to_string();
    let blob = |d: &str| {
        std::fs::read(
            layout
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .expect("blob present")
    };
    let manifest: Value = serde_json::from_slice(&blob(&digest)).expect("manifest JSON");
    let layer_digest = manifest["layers"][0]["digest"]
        .as_str()
        .expect("a layer")
        .to_string();
    let layer = blob(&layer_digest);
    let layer_path = dir.join("layer.tar.gz");
    std::fs::write(&layer_path, &layer).expect("write layer");
    let unpacked = dir.join("unpacked");
    std::fs::create_dir_all(&unpacked).expect("mkdir");
    let untar = Command::new("tar")
        .arg("-xzf")
        .arg(&layer_path)
        .arg("-C")
        .arg(&unpacked)
        .output()
        .expect("tar runs");
    assert!(
        untar.status.success(),
        "{}",
        String::from_utf8_lossy(&untar.stderr)
    );
    let list = Command::new("tar")
        .args(["-tvz", "--numeric-owner", "-f"])
        .arg(&layer_path)
        .env("TZ", "UTC")
        .output()
        .expect("tar runs");
    Pulled {
        digest,
        manifest,
        layer,
        unpacked,
        listing: String::from_utf8_lossy(&list.stdout).into_owned(),
    }
}

/// `skopeo inspect --raw`: the manifest bytes as the registry serves them.
pub fn skopeo_raw_manifest(
    skopeo: &Path,
    reference: &str,
    creds: Option<&str>,
) -> Result<Vec<u8>, String> {
    let mut cmd = Command::new(skopeo);
    cmd.args(["inspect", "--raw", "--tls-verify=false"]);
    if let Some(c) = creds {
        cmd.args(["--creds", c]);
    }
    let out = cmd
        .arg(format!("docker://{reference}"))
        .output()
        .expect("skopeo runs");
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Every pushed artifact pulled back into `dir/<name>/`.
pub fn pull_all(skopeo: &Path, lock: &Lock, dir: &Path) -> BTreeMap<String, Pulled> {
    lock.artifacts
        .iter()
        .map(|(name, image)| {
            let d = dir.join(name);
            (name.clone(), skopeo_pull(skopeo, &image.reference(), &d))
        })
        .collect()
}
