//! The engine, the linker with every import, and the compiled-module cache shared by all
//! gateways of a test process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use wasmtime::{Config, Engine, InstancePre, Linker, Module};

use crate::error::HarnessError;
use crate::vm::VmState;

/// A compiled module and the file version it came from (modified time, length).
type CachedModule = (Option<SystemTime>, u64, InstancePre<VmState>);

/// Compiles and caches proxy-wasm modules. Cheap to clone; share one per test process.
#[derive(Clone)]
pub struct Host {
    inner: Arc<HostInner>,
}

struct HostInner {
    engine: Engine,
    /// Whether guest code is compiled with fuel metering (see [`Host::unmetered`]).
    metered: bool,
    linker: Linker<VmState>,
    cache: Mutex<HashMap<PathBuf, CachedModule>>,
}

impl Host {
    /// The host for tests: fuel bounds every callback, so a looping filter fails its stream
    /// with a clear error instead of hanging the test.
    pub fn new() -> Result<Host, HarnessError> {
        Host::with_metering(true)
    }

    /// The host for benchmarks: no fuel metering, so guest code runs as Envoy's runtimes run
    /// it (metering adds a counter update to every basic block of the filter). A looping filter
    /// hangs here; `FilterSpec::fuel` is ignored.
    pub fn unmetered() -> Result<Host, HarnessError> {
        Host::with_metering(false)
    }

    fn with_metering(metered: bool) -> Result<Host, HarnessError> {
        let mut config = Config::new();
        config.consume_fuel(metered);
        let engine = Engine::new(&config).map_err(|e| HarnessError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        crate::abi::link(&mut linker).map_err(|e| HarnessError::Engine(e.to_string()))?;
        Ok(Host {
            inner: Arc::new(HostInner {
                engine,
                metered,
                linker,
                cache: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub(crate) fn metered(&self) -> bool {
        self.inner.metered
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The module at `path`, compiled once per file version and linked against every import.
    pub(crate) fn load(&self, path: &Path) -> Result<InstancePre<VmState>, HarnessError> {
        let load_error = |message: String| HarnessError::Load {
            path: path.to_path_buf(),
            message,
        };
        let meta = std::fs::metadata(path)
            .map_err(|e| load_error(format!("{e} (build the filters first: `make wasm`)")))?;
        let stamp = (meta.modified().ok(), meta.len());
        let mut cache = self
            .inner
            .cache
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some((modified, len, pre)) = cache.get(path) {
            if (*modified, *len) == stamp {
                return Ok(pre.clone());
            }
        }
        let module = Module::from_file(&self.inner.engine, path)
            .map_err(|e| load_error(format!("{e:#}")))?;
        let pre = self
            .inner
            .linker
            .instantiate_pre(&module)
            .map_err(|e| load_error(format!("{e:#}")))?;
        cache.insert(path.to_path_buf(), (stamp.0, stamp.1, pre.clone()));
        Ok(pre)
    }
}

/// Where the filters' `.wasm` artifacts are: `$TOLLGATE_WASM_DIR`, else the workspace's
/// `target/wasm32-wasip1/release` (where `make wasm` puts them).
pub fn wasm_dir() -> PathBuf {
    match std::env::var_os("TOLLGATE_WASM_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target/wasm32-wasip1/release"),
    }
}

/// The artifact of a filter crate: `artifact("jwt_auth")` is `tollgate_jwt_auth.wasm`.
pub fn artifact(name: &str) -> PathBuf {
    wasm_dir().join(format!("tollgate_{}.wasm", name.replace('-', "_")))
}
