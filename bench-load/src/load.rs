//! Load: `oha` runs (closed loop, `c` keep-alive connections, bounded by time or count, JSON
//! output parsed into [`RunResult`]), the feeder that keeps the mock's script queue topped up
//! while a streaming case runs, and a small keep-alive HTTP/1.1 client that measures time to the
//! response head and to the first body byte of streamed answers (oha reports only whole-request
//! latency).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use tollgate_mock::{MockServer, Script};

/// One request shape, as oha and the TTFB client send it.
#[derive(Clone, Debug)]
pub struct Payload {
    /// `4k`, `agent50k`, `stream2k`, `stream64k`.
    pub name: String,
    /// Path and query.
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// The body file (oha `-D`).
    pub body_file: PathBuf,
    pub body: Vec<u8>,
    /// The scripted reply for streaming cases (the feeder queues it per request).
    pub script: Option<Script>,
    /// The text of the streamed answer (what the client reassembles from the deltas).
    pub stream_text: Option<String>,
}

/// Bounds of one oha run.
#[derive(Clone, Copy, Debug)]
pub enum Bound {
    Secs(f64),
    Count(u64),
}

/// What one oha run measured.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub rps: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub requests: u64,
    pub non_200: u64,
    pub errors: u64,
}

impl RunResult {
    pub fn to_json(&self) -> Value {
        json!({
            "rps": round1(self.rps), "p50_us": round1(self.p50_us), "p90_us": round1(self.p90_us),
            "p99_us": round1(self.p99_us), "requests": self.requests, "non_200": self.non_200,
            "errors": self.errors,
        })
    }
}

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The load generator: `oha` (crates.io) or `wrk` (Debian), both closed-loop keep-alive
/// HTTP/1.1 clients.
#[derive(Clone, Debug)]
pub enum LoadGen {
    Oha(PathBuf),
    Wrk(PathBuf),
}

impl LoadGen {
    pub fn describe(&self) -> String {
        match self {
            LoadGen::Oha(p) => oha_version(p),
            LoadGen::Wrk(p) => Command::new(p)
                .arg("-v")
                .output()
                .ok()
                .map(|o| {
                    let s = String::from_utf8_lossy(&o.stdout).to_string()
                        + &String::from_utf8_lossy(&o.stderr);
                    s.lines().next().unwrap_or("wrk").to_string()
                })
                .unwrap_or_else(|| "wrk".into()),
        }
    }

    /// One run; a run where any response is not 200, or any request failed, is an error (the
    /// benchmark must measure what it claims to).
    pub fn run(&self, addr: SocketAddr, p: &Payload, c: usize, bound: Bound) -> Result<RunResult> {
        match self {
            LoadGen::Oha(bin) => oha(bin, addr, p, c, bound),
            LoadGen::Wrk(bin) => match bound {
                Bound::Secs(_) => wrk(bin, addr, p, c, bound),
                // wrk has no request count: whole-second runs until the count is reached
                Bound::Count(n) => {
                    let mut total = 0;
                    let mut secs = 1.0;
                    let mut last = None;
                    while total < n {
                        let r = wrk(bin, addr, p, c, Bound::Secs(secs))?;
                        total += r.requests;
                        secs = ((n - total.min(n)) as f64 / r.rps.max(1.0)).clamp(1.0, 10.0);
                        last = Some(r);
                    }
                    let mut r = last.ok_or_else(|| anyhow!("no wrk run"))?;
                    r.requests = total;
                    Ok(r)
                }
            },
        }
    }
}

fn lua_str(s: &str) -> String {
    format!("[==[{s}]==]")
}

/// wrk with a Lua script: method, body file, headers; `done` prints a JSON line. Time-bounded
/// only (whole seconds).
fn wrk(bin: &Path, addr: SocketAddr, p: &Payload, c: usize, bound: Bound) -> Result<RunResult> {
    let threads = c.clamp(1, 2);
    let mut lua = String::from("wrk.method = \"POST\"\n");
    lua.push_str(&format!(
        "local f = assert(io.open({}, \"rb\"))\nwrk.body = f:read(\"*a\")\nf:close()\n",
        lua_str(&p.body_file.to_string_lossy())
    ));
    for (k, v) in &p.headers {
        lua.push_str(&format!("wrk.headers[ {} ] = {}\n", lua_str(k), lua_str(v)));
    }
    let duration = match bound {
        Bound::Secs(s) => format!("{}s", s.round().max(1.0) as u64),
        Bound::Count(_) => bail!("wrk runs are time-bounded"),
    };
    lua.push_str(concat!(
        "done = function(summary, latency, requests)\n",
        "  local e = summary.errors\n",
        "  io.write(string.format('{\"requests\":%d,\"duration_us\":%d,\"connect\":%d,\"read\":%d,\"write\":%d,\"status\":%d,\"timeout\":%d,\"p50\":%d,\"p90\":%d,\"p99\":%d}\\n',\n",
        "    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,\n",
        "    latency:percentile(50), latency:percentile(90), latency:percentile(99)))\n",
        "end\n"
    ));
    let script = std::env::temp_dir().join(format!(
        "tollgate-bench-wrk-{}-{}.lua",
        std::process::id(),
        p.name
    ));
    std::fs::write(&script, lua)?;
    let out = Command::new(bin)
        .args([
            "-t",
            &threads.to_string(),
            "-c",
            &c.to_string(),
            "-d",
            &duration,
        ])
        .args(["--timeout", "30s", "-s"])
        .arg(&script)
        .arg(format!("http://{addr}{}", p.path))
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    let _ = std::fs::remove_file(&script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wrk failed ({}): {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = stdout
        .lines()
        .find(|l| l.starts_with("{\"requests\""))
        .ok_or_else(|| anyhow!("no result line in wrk's output: {stdout}"))?;
    let v: Value = serde_json::from_str(line).context("wrk result JSON")?;
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    let secs = n("duration_us") as f64 / 1e6;
    let r = RunResult {
        rps: if secs > 0.0 {
            n("requests") as f64 / secs
        } else {
            0.0
        },
        p50_us: n("p50") as f64,
        p90_us: n("p90") as f64,
        p99_us: n("p99") as f64,
        requests: n("requests"),
        non_200: n("status"),
        errors: n("connect") + n("read") + n("write") + n("timeout"),
    };
    if r.non_200 > 0 || r.errors > 0 || r.requests == 0 {
        bail!("{} at c={c} to {addr}: wrk says {line}", p.name);
    }
    Ok(r)
}

/// Runs oha against `addr` and parses its JSON report.
fn oha(oha_bin: &Path, addr: SocketAddr, p: &Payload, c: usize, bound: Bound) -> Result<RunResult> {
    let mut cmd = Command::new(oha_bin);
    cmd.arg("--no-tui")
        .args(["--output-format", "json"])
        .args(["-c", &c.to_string()])
        .args(["-m", "POST"])
        .arg("-D")
        .arg(&p.body_file);
    match bound {
        Bound::Secs(s) => {
            cmd.args(["-z", &format!("{}ms", (s * 1000.0) as u64)])
                .arg("-w");
        }
        Bound::Count(n) => {
            cmd.args(["-n", &n.to_string()]);
        }
    }
    for (k, v) in &p.headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    cmd.arg(format!("http://{addr}{}", p.path));
    let out = cmd
        .output()
        .with_context(|| format!("running {}", oha_bin.display()))?;
    if !out.status.success() {
        bail!(
            "oha failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: Value = serde_json::from_slice(&out.stdout).context("oha JSON")?;
    let pct = |k: &str| v["latencyPercentiles"][k].as_f64().unwrap_or(f64::NAN) * 1e6;
    let mut requests = 0u64;
    let mut non_200 = 0u64;
    for (code, n) in v["statusCodeDistribution"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let n = n.as_u64().unwrap_or(0);
        requests += n;
        if code != "200" {
            non_200 += n;
        }
    }
    let errors: u64 = v["errorDistribution"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, n)| n.as_u64().unwrap_or(0))
        .sum();
    let r = RunResult {
        rps: v["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0),
        p50_us: pct("p50"),
        p90_us: pct("p90"),
        p99_us: pct("p99"),
        requests,
        non_200,
        errors,
    };
    if r.non_200 > 0 || r.errors > 0 || r.requests == 0 {
        bail!(
            "{} at c={c} to {addr}: {} requests, {} not 200 ({}), {} errors ({})",
            p.name,
            r.requests,
            r.non_200,
            v["statusCodeDistribution"],
            r.errors,
            v["errorDistribution"]
        );
    }
    Ok(r)
}

/// `oha --version`.
pub fn oha_version(oha_bin: &Path) -> String {
    Command::new(oha_bin)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Keeps at least `low` copies of `script` queued in the mock while `f` runs, then clears the
/// queue (requests cut off at a deadline leave scripts behind).
pub fn with_feeder<T>(mock: &MockServer, script: Option<&Script>, f: impl FnOnce() -> T) -> T {
    let Some(script) = script else {
        return f();
    };
    const LOW: usize = 192;
    const HIGH: usize = 384;
    let stop = AtomicBool::new(false);
    let fill = || {
        let pending = mock.pending_scripts();
        for _ in pending..HIGH {
            mock.push_script(script.clone());
        }
    };
    fill();
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                if mock.pending_scripts() < LOW {
                    fill();
                }
                std::thread::sleep(Duration::from_micros(500));
            }
        });
        let out = f();
        stop.store(true, Ordering::Relaxed);
        out
    });
    mock.reset();
    out
}

/// Time to the response head and to the first body byte, and the whole request, per request.
#[derive(Clone, Debug, Default)]
pub struct Ttfb {
    pub head_us: Vec<f64>,
    pub first_byte_us: Vec<f64>,
    pub total_us: Vec<f64>,
}

/// Sends `count` requests per connection over `conns` connections in parallel and times each
/// one. Every response must be 200 with a chunked body. `first_only`: a new connection per
/// request (connect time excluded), read up to the first body chunk, then hang up (for paced
/// streams, whose whole answer takes long); otherwise keep-alive and the whole answer is read.
pub fn ttfb(
    addr: SocketAddr,
    p: &Payload,
    conns: usize,
    count: usize,
    first_only: bool,
) -> Result<Ttfb> {
    let mut head = format!("POST {} HTTP/1.1\r\nhost: {addr}\r\n", p.path);
    for (k, v) in &p.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", p.body.len()));
    let mut wire = head.into_bytes();
    wire.extend_from_slice(&p.body);
    let results: Vec<Result<Ttfb>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..conns)
            .map(|_| s.spawn(|| one_connection(addr, &wire, count, first_only)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("TTFB client thread panicked")))
            })
            .collect()
    });
    let mut all = Ttfb::default();
    for r in results {
        let r = r?;
        all.head_us.extend(r.head_us);
        all.first_byte_us.extend(r.first_byte_us);
        all.total_us.extend(r.total_us);
    }
    Ok(all)
}

fn connect(addr: SocketAddr) -> Result<(TcpStream, BufReader<TcpStream>)> {
    let stream = TcpStream::connect(addr).context("TTFB client connect")?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let writer = stream.try_clone()?;
    Ok((writer, BufReader::with_capacity(64 * 1024, stream)))
}

fn one_connection(addr: SocketAddr, wire: &[u8], count: usize, first_only: bool) -> Result<Ttfb> {
    let (mut writer, mut reader) = connect(addr)?;
    let mut out = Ttfb::default();
    let mut line = String::new();
    for i in 0..count {
        if first_only && i > 0 {
            (writer, reader) = connect(addr)?;
        }
        let t0 = Instant::now();
        writer.write_all(wire)?;
        line.clear();
        reader.read_line(&mut line)?;
        let t_head = t0.elapsed();
        if !line.starts_with("HTTP/1.1 200") {
            bail!("TTFB client: unexpected status line {line:?}");
        }
        let mut chunked = false;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                bail!("connection closed in the response head");
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("transfer-encoding")
                    && v.trim().eq_ignore_ascii_case("chunked")
                {
                    chunked = true;
                }
            }
        }
        if !chunked {
            bail!("TTFB client: expected a chunked (streamed) response");
        }
        let mut first: Option<Duration> = None;
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim_end().split(';').next().unwrap_or(""), 16)
                .with_context(|| format!("bad chunk size line {line:?}"))?;
            if size > 0 && first.is_none() {
                first = Some(t0.elapsed());
            }
            let mut buf = vec![0u8; size + 2];
            reader.read_exact(&mut buf)?;
            if size == 0 || first_only {
                break;
            }
        }
        let total = t0.elapsed();
        out.head_us.push(t_head.as_secs_f64() * 1e6);
        out.first_byte_us
            .push(first.unwrap_or(total).as_secs_f64() * 1e6);
        out.total_us.push(total.as_secs_f64() * 1e6);
    }
    Ok(out)
}

/// The `q` quantile (0..=1) of `v` (nearest rank); NaN when empty.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let idx = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
    s[idx]
}

/// The median of `v`; NaN when empty.
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}
