//! Child processes that cannot outlive a test: a per-test scratch directory and a guard that
//! kills its child by pid on drop (also while a test panics) and shows the child's log then.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

/// How long a process may take to become ready. Generous: the machine is small and shared.
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// A scratch directory under the system temp dir, removed on drop unless the thread panics
/// (then it is kept and its path printed, for the logs inside).
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    pub fn new(prefix: &str) -> Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "tollgate-{prefix}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("tollgate: kept {} for inspection", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Pids of children that are running, killed at process exit if their guard never dropped
/// (a guard kept in a `static`, or leaked): a test binary leaves no process behind.
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static AT_EXIT: Once = Once::new();

extern "C" {
    fn atexit(callback: extern "C" fn()) -> i32;
    fn kill(pid: i32, sig: i32) -> i32;
}

extern "C" fn kill_live_children() {
    let pids = match LIVE.lock() {
        Ok(mut live) => std::mem::take(&mut *live),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    };
    for pid in pids {
        if let Ok(pid) = i32::try_from(pid) {
            // SAFETY: kill(2) with a pid we spawned and SIGKILL (9); no memory is involved.
            unsafe {
                kill(pid, 9);
            }
        }
    }
}

fn register(pid: u32) {
    AT_EXIT.call_once(|| {
        // SAFETY: registers a plain extern "C" function without captured state.
        unsafe {
            atexit(kill_live_children);
        }
    });
    if let Ok(mut live) = LIVE.lock() {
        live.push(pid);
    }
}

fn unregister(pid: u32) {
    if let Ok(mut live) = LIVE.lock() {
        live.retain(|p| *p != pid);
    }
}

/// A child process killed (SIGKILL) and reaped on drop (and killed at process exit if the
/// guard is never dropped). Its stdout and stderr go to `log`.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl ChildGuard {
    /// Spawns `cmd` with stdin closed and stdout+stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Self> {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        register(child.id());
        Ok(Self {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    /// The child's pid (while it runs or until it is reaped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The exit status if the child has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Everything the child wrote so far.
    pub fn log(&self) -> String {
        read_lossy(&self.log)
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Kills (SIGKILL) and reaps the child. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            unregister(child.id());
        }
    }

    /// Fails with the log when the child has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.exited() {
            bail!(
                "{} exited early ({status}); its log ({}):\n{}",
                self.name,
                self.log.display(),
                tail(&without_banner(&self.log()), 120)
            );
        }
        Ok(())
    }

    /// Waits until `ready()` returns `Some`, failing if the child exits or time runs out.
    pub fn wait_until<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut() -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = ready() {
                return Ok(v);
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                bail!(
                    "{} not {what} after {timeout:?}; its log ({}):\n{}",
                    self.name,
                    self.log.display(),
                    tail(&without_banner(&self.log()), 120)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            eprintln!(
                "---- {} log ({}) ----\n{}\n---- end of {} log ----",
                self.name,
                self.log.display(),
                tail(&without_banner(&self.log()), 150),
                self.name
            );
        }
        self.kill();
    }
}

/// A file as text, invalid UTF-8 replaced; empty if unreadable.
pub fn read_lossy(path: &Path) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = fs::File::open(path) {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// `text` without Envoy's start-up banner (the extension and header-map listings), which
/// would push the useful lines out of a failing test's output.
pub fn without_banner(text: &str) -> String {
    text.lines()
        .filter(|l| {
            !l.contains("[source/server/server.cc:4") && !l.contains("[source/server/server.cc:5")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The first line of `path` that contains `needle`, if any yet.
pub fn find_line(path: &Path, needle: &str) -> Option<String> {
    let file = fs::File::open(path).ok()?;
    BufReader::new(file)
        .lines()
        .map_while(|l| l.ok())
        .find(|l| l.contains(needle))
}

/// True when something accepts TCP connections on `addr`.
pub fn port_open(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// True while a process with this pid exists (zombies included).
pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// A free loopback port (bound then released: a small race remains; prefer port 0 where the
/// server can report its port, as Envoy and the IdP do here).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
