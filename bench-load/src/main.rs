//! `tollgate-bench-load`: the whole-gateway load benchmark (`make bench` runs it through
//! `scripts/bench.sh`).
//!
//! It starts the dev IdP (`scripts/idp.mjs`), the mock Claude API (`tollgate-mock`, in-process,
//! one worker, no request log, no auth) and several Envoys with one worker each, all rendered
//! from `envoy/gateway.yaml.tmpl`: the passthrough gateway (no filters), the full tollgate chain
//! (shipped policies; prompt-guard grown to 100 rules), prefixes of the chain (per-filter cost),
//! and Envoy's native `jwt_authn` with the same IdP keys. Then, with `oha` as the load generator
//! (closed loop, keep-alive), it measures every case with the variants interleaved
//! (passthrough, chain, passthrough, chain …) and reports medians: RPS, p50, p99, the ratios
//! chain/passthrough and the added latency. Streaming cases get their time to first byte from
//! this binary's own client. Envoy's memory is sampled after 0, 50k and 100k requests through a
//! fresh chain. Results: `target/bench/results.json` and `BENCHMARKS.md` (see `report`).
//!
//! Settings (environment): `BENCH_QUICK=1` (~3-minute smoke run: 1 repetition, short runs, 10k requests
//! for memory), `BENCH_SECS`, `BENCH_REPS`, `BENCH_MEM_REQUESTS`, `BENCH_MOCK_WORKERS`,
//! `BENCH_OUT` (default `target/bench`), `BENCH_REPORT` (the Markdown file; default
//! `BENCHMARKS.md`, or `$BENCH_OUT/BENCHMARKS.md` in quick mode), `TOLLGATE_OHA` (the oha
//! binary; default `.tollgate/tools/bin/oha`), `TOLLGATE_LOADGEN=oha|wrk` (default: oha if
//! installed, else wrk), `TOLLGATE_WRK`.
//!
//! `tollgate-bench-load --report` re-renders the Markdown from an existing `results.json`.

mod gateway;
mod load;
mod payloads;
mod report;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use tollgate_mock::{MockConfig, MockServer, Reply};
use tollgate_tests::http::{self as thttp, Request};
use tollgate_tests::{paths, Filter, GatewayConfig, Idp, Upstream};

use gateway::Gateway;
use load::{Bound, Payload};

/// Benchmark settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub quick: bool,
    pub secs: f64,
    pub reps: usize,
    pub mem_requests: u64,
    pub mock_workers: usize,
    pub out: PathBuf,
    pub report: PathBuf,
    pub loadgen: load::LoadGen,
    pub concurrencies: Vec<usize>,
    pub ttfb_count_c1: usize,
    pub ttfb_count_c16: usize,
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v.parse().map_err(|_| anyhow!("{name}={v} is not a number")),
        _ => Ok(default),
    }
}

impl Settings {
    fn from_env() -> Result<Self> {
        let root = paths::workspace_root();
        let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let out = std::env::var_os("BENCH_OUT")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/bench"));
        let report = std::env::var_os("BENCH_REPORT")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                if quick {
                    out.join("BENCHMARKS.md")
                } else {
                    root.join("BENCHMARKS.md")
                }
            });
        let oha = std::env::var_os("TOLLGATE_OHA")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".tollgate/tools/bin/oha"));
        let wrk = std::env::var_os("TOLLGATE_WRK")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/wrk"));
        let loadgen = match std::env::var("TOLLGATE_LOADGEN").as_deref() {
            Ok("wrk") => load::LoadGen::Wrk(wrk),
            Ok("oha") => load::LoadGen::Oha(oha),
            Ok("") | Err(_) if oha.is_file() => load::LoadGen::Oha(oha),
            Ok("") | Err(_) if wrk.is_file() => load::LoadGen::Wrk(wrk),
            Ok("") | Err(_) => bail!(
                "no load generator: {} (scripts/bench.sh installs oha) or {}",
                oha.display(),
                wrk.display()
            ),
            Ok(other) => bail!("TOLLGATE_LOADGEN must be oha or wrk, not {other}"),
        };
        Ok(Self {
            quick,
            secs: env_num("BENCH_SECS", if quick { 1.5 } else { 4.0 })?,
            reps: env_num("BENCH_REPS", if quick { 1 } else { 3 })?,
            mem_requests: env_num("BENCH_MEM_REQUESTS", if quick { 10_000 } else { 100_000 })?,
            mock_workers: env_num("BENCH_MOCK_WORKERS", 1)?,
            out,
            report,
            loadgen,
            concurrencies: vec![1, 16, 64],
            ttfb_count_c1: if quick { 60 } else { 300 },
            ttfb_count_c16: if quick { 15 } else { 60 },
        })
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("tollgate-bench-load: {e:#}");
        std::process::exit(1);
    }
}

fn log(msg: &str) {
    eprintln!("[bench {}] {msg}", chrono_now());
}

/// UTC wall-clock time as HH:MM:SS (no date crate needed).
fn chrono_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{:02}:{:02}:{:02}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The variants of the gateway under test.
pub const PASS: &str = "passthrough";
pub const CHAIN: &str = "chain";
/// The same four policies in one module (`tollgate_bundle.wasm`): one VM, one stream context.
pub const BUNDLE: &str = "bundle";
/// The two forms of the full tollgate gateway, compared with passthrough in the main matrix.
pub const FULL: [&str; 2] = [CHAIN, BUNDLE];
pub const JWT: &str = "jwt-auth";
pub const JWT_PG: &str = "jwt-auth+prompt-guard";
pub const JWT_PG_KI: &str = "jwt-auth+prompt-guard+key-inject";
pub const NATIVE: &str = "native-jwt_authn";
pub const NATIVE_CACHE: &str = "native-jwt_authn+cache";
/// Near the price of being a proxy-wasm filter at all: the probe test fixture without commands
/// (per request one header read, three filter-state writes and two counter increments), once
/// and four times (four VMs, as the chain has).
pub const NOOP1: &str = "1-noop-filter";
pub const NOOP4: &str = "4-noop-filters";
/// The variants of the per-filter tables, in table order (the 4 KB prompt runs them all, the
/// other payloads a subset).
pub const PER_FILTER_VARIANTS: [&str; 10] = [
    PASS,
    NOOP1,
    NOOP4,
    NATIVE,
    NATIVE_CACHE,
    JWT,
    JWT_PG,
    JWT_PG_KI,
    CHAIN,
    BUNDLE,
];

/// Pause between the events of a paced stream (TTFB "paced": the upstream streams like the API
/// instead of sending the whole answer at once).
pub const PACE_MS: u64 = 2;

struct Bench {
    s: Settings,
    mock: MockServer,
    gateways: BTreeMap<String, Gateway>,
    payloads: BTreeMap<String, Payload>,
    runs: Vec<Value>,
    failures: Vec<String>,
}

/// `--report`: re-render the Markdown report from an existing `results.json` (after editing
/// `scripts/bench/notes.md`), without measuring.
fn report_only(s: &Settings) -> Result<()> {
    let path = s.out.join("results.json");
    let results: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
    )?;
    let report = if results["meta"]["quick"].as_bool() == Some(true) {
        s.out.join("BENCHMARKS.md")
    } else {
        s.report.clone()
    };
    let notes =
        std::fs::read_to_string(paths::workspace_root().join("scripts/bench/notes.md")).ok();
    std::fs::write(&report, report::markdown(&results, notes.as_deref()))?;
    log(&format!(
        "wrote {} from {}",
        report.display(),
        path.display()
    ));
    Ok(())
}

fn run() -> Result<()> {
    let s = Settings::from_env()?;
    if std::env::args().any(|a| a == "--report") {
        return report_only(&s);
    }
    let t_start = Instant::now();
    for f in paths::FILTERS.iter().chain(&["probe", "bundle"]) {
        if paths::try_wasm_path(f).is_none() {
            bail!(
                "{} is not built: run `make wasm`",
                paths::wasm_dir().join(paths::wasm_file_name(f)).display()
            );
        }
    }
    match &s.loadgen {
        load::LoadGen::Oha(p) | load::LoadGen::Wrk(p) if !p.is_file() => {
            bail!("load generator {} not found", p.display())
        }
        _ => {}
    }
    std::fs::create_dir_all(s.out.join("payloads"))?;
    let machine = report::machine();
    let mut meta = json!({
        "date_utc": utc_date(),
        "quick": s.quick,
        "secs_per_run": s.secs,
        "reps": s.reps,
        "concurrencies": s.concurrencies,
        "mem_requests": s.mem_requests,
        "mock_workers": s.mock_workers,
        "envoy_version": gateway::envoy_version(),
        "envoy_concurrency": 1,
        "load_generator": s.loadgen.describe(),
        "git_commit": git_commit(),
        "machine": machine,
        "loadavg_start": loadavg(),
    });
    log(&format!(
        "settings: quick={} secs={} reps={} mem={} loadavg {}",
        s.quick, s.secs, s.reps, s.mem_requests, meta["loadavg_start"]
    ));

    // The dev IdP, a token for a caller in group `agents`, the mock.
    let idp = Idp::start().context("starting the dev IdP (scripts/idp.mjs)")?;
    let token = idp
        .try_token(json!({"sub": "bench-agent", "groups": ["agents"]}), 7200)
        .context("a token from the dev IdP")?;
    let mock = MockServer::start(MockConfig {
        workers: s.mock_workers,
        record: false,
        record_limit: Some(0),
        ..MockConfig::default()
    })
    .context("starting the mock Claude API")?;
    log(&format!(
        "IdP {} (issuer {}), mock {}",
        idp.addr(),
        idp.issuer(),
        mock.addr()
    ));

    // Policies: shipped, with the issuer of this IdP, prompt-guard grown to 100 rules.
    let root = paths::workspace_root();
    let read = |name: &str| -> Result<String> {
        std::fs::read_to_string(paths::policy_path(name))
            .with_context(|| format!("reading policies/{name}.json"))
    };
    let mut jwt_policy: Value = serde_json::from_str(&read("jwt-auth")?)?;
    let providers = jwt_policy["providers"]
        .as_array_mut()
        .ok_or_else(|| anyhow!("policies/jwt-auth.json has no providers"))?;
    for p in providers {
        p["issuer"] = idp.issuer().into();
    }
    let pg_policy = payloads::prompt_guard_policy(&read("prompt-guard")?, 100)?;
    let shipped_pg_rules = serde_json::from_str::<Value>(&read("prompt-guard")?)?["rules"]
        .as_array()
        .map_or(0, Vec::len);
    std::fs::write(s.out.join("prompt-guard-100.json"), &pg_policy)?;
    let filter = |name: &str| -> Result<Filter> {
        Ok(match name {
            "jwt-auth" => Filter::new(name, jwt_policy.to_string()),
            "prompt-guard" => Filter::new(name, pg_policy.clone()),
            other => Filter::new(other, read(other)?),
        })
    };
    meta["policies"] = json!({
        "jwt-auth": "policies/jwt-auth.json (issuer set to the bench IdP); cached verified tokens",
        "prompt-guard": format!("policies/prompt-guard.json ({shipped_pg_rules} rules) + {} generated rules = 100 (target/bench/prompt-guard-100.json)", 100 - shipped_pg_rules),
        "key-inject": "policies/key-inject.json",
        "secret-mask": "policies/secret-mask.json (default rules on)",
    });

    let upstream_key = format!("sk-ant-bench-{}", std::process::id());
    let env = vec![("ANTHROPIC_API_KEY".to_string(), upstream_key)];
    let base = GatewayConfig::ephemeral(Upstream::Mock(mock.addr().into())).idp(idp.addr());
    let chain_of = |names: &[&str]| -> Result<GatewayConfig> {
        let mut cfg = base.clone();
        for n in names {
            cfg = cfg.filter(filter(n)?);
        }
        Ok(cfg)
    };
    let all = ["jwt-auth", "prompt-guard", "key-inject", "secret-mask"];
    let bundle_of = |names: &[&str]| -> Result<GatewayConfig> {
        let filters = names
            .iter()
            .map(|n| filter(n))
            .collect::<Result<Vec<_>>>()?;
        let one = tollgate_tests::render::bundle(&filters)
            .ok_or_else(|| anyhow!("tollgate_bundle.wasm is not built: run `make wasm`"))?;
        Ok(base.clone().filter(one))
    };
    let noops = |n: usize| -> GatewayConfig {
        (1..=n).fold(base.clone(), |cfg, i| {
            cfg.filter(Filter {
                name: format!("noop-{i}"),
                wasm: paths::wasm_path("probe"),
                config: String::new(),
                env_keys: Vec::new(),
            })
        })
    };
    let variants: Vec<(&str, GatewayConfig, Option<String>)> = vec![
        (PASS, base.clone(), None),
        (CHAIN, chain_of(&all)?, None),
        (BUNDLE, bundle_of(&all)?, None),
        (JWT, chain_of(&all[..1])?, None),
        (JWT_PG, chain_of(&all[..2])?, None),
        (JWT_PG_KI, chain_of(&all[..3])?, None),
        (NOOP1, noops(1), None),
        (NOOP4, noops(4), None),
        (
            NATIVE,
            base.clone(),
            Some(gateway::native_jwt_filter(idp.issuer(), false)),
        ),
        (
            NATIVE_CACHE,
            base.clone(),
            Some(gateway::native_jwt_filter(idp.issuer(), true)),
        ),
    ];
    let mut gateways = BTreeMap::new();
    for (name, cfg, native) in &variants {
        let t = Instant::now();
        let gw = Gateway::start(name, cfg, native.as_deref(), &env)
            .with_context(|| format!("starting Envoy `{name}`"))?;
        log(&format!(
            "envoy {name}: listener {} admin {} pid {:?} ({:.1}s)",
            gw.listener,
            gw.admin,
            gw.pid(),
            t.elapsed().as_secs_f64()
        ));
        gateways.insert(name.to_string(), gw);
    }

    // Payloads.
    let mut headers = payloads::common_headers();
    headers.push(("authorization".into(), format!("Bearer {token}")));
    let mut agent_headers = headers.clone();
    agent_headers.extend(payloads::agent_headers());
    let (reply2k, size2k) = payloads::stream_reply(2048)?;
    let (reply64k, size64k) = payloads::stream_reply(65_536)?;
    type Spec<'a> = (
        &'a str,
        &'a str,
        Vec<(String, String)>,
        String,
        Option<&'a Reply>,
    );
    let specs: Vec<Spec> = vec![
        (
            "4k",
            "/v1/messages",
            headers.clone(),
            payloads::body_4k(false)?,
            None,
        ),
        (
            "agent50k",
            "/v1/messages?beta=true",
            agent_headers,
            payloads::body_agent_50k()?,
            None,
        ),
        (
            "stream2k",
            "/v1/messages",
            headers.clone(),
            payloads::body_4k(true)?,
            Some(&reply2k),
        ),
        (
            "stream64k",
            "/v1/messages",
            headers.clone(),
            payloads::body_4k(true)?,
            Some(&reply64k),
        ),
    ];
    let mut payload_map = BTreeMap::new();
    for (name, path, hdrs, body, reply) in specs {
        let body_file = s.out.join("payloads").join(format!("{name}.json"));
        std::fs::write(&body_file, &body)?;
        payload_map.insert(
            name.to_string(),
            Payload {
                name: name.to_string(),
                path: path.to_string(),
                headers: hdrs,
                body_file,
                body: body.into_bytes(),
                // 64 KB: events grouped into ≥ 4 KB network chunks, else the mock's per-chunk
                // writes make it the bottleneck (its ceiling is reported)
                script: reply
                    .map(|r| {
                        payloads::raw_stream_script(r, if name == "stream64k" { 4096 } else { 0 })
                    })
                    .transpose()?,
                stream_text: reply.map(Reply::full_text),
            },
        );
    }
    meta["payloads"] = json!({
        "4k": "POST /v1/messages, one user message, 4,096-byte JSON body; non-streaming; the mock answers a ~300-byte Message JSON",
        "agent50k": "POST /v1/messages?beta=true, 51,200-byte body shaped like the Claude Agent SDK's: system as 2 text blocks, 12 tool definitions, a user message of 2 text blocks and an assistant message of text + tool_use; the SDK's anthropic-beta, x-stainless-*, x-claude-code-session-id and accept-encoding headers; non-streaming",
        "stream2k": format!("the 4 KB request with \"stream\": true; the mock streams a scripted SSE answer of {size2k} bytes ({}-byte text deltas, one network chunk per event; pre-rendered once and sent by the mock as a raw body cut at the event boundaries, the same bytes as its rendered streams); its text starts with an Anthropic API key", payloads::DELTA_SIZE),
        "stream64k": format!("as stream2k with a {size64k}-byte SSE answer, its events grouped into network chunks of ≥ 4 KB (cut between events; one chunk per event made the mock itself the bottleneck): every ~700 bytes of text an Anthropic key, an AWS access key id and secret key, or a GitHub token, split across deltas"),
        "headers": "content-type, anthropic-version, authorization: Bearer <RS256 JWT from the dev IdP> (the same token for every request: jwt-auth's cache is warm)",
    });

    let mut b = Bench {
        s: s.clone(),
        mock,
        gateways,
        payloads: payload_map,
        runs: Vec::new(),
        failures: Vec::new(),
    };

    let checks = b.sanity_checks(&token)?;
    log("sanity checks passed");
    b.warm_up()?;

    let mock_ceiling = b.mock_ceiling();
    b.main_matrix();
    b.per_filter();
    let ttfb = b.ttfb();
    let memory = b.memory(&base, &chain_of(&all)?, &env)?;

    meta["loadavg_end"] = loadavg().into();
    meta["duration_s"] = load::round1(t_start.elapsed().as_secs_f64()).into();
    let results = json!({
        "meta": meta,
        "checks": checks,
        "runs": b.runs,
        "summary": report::summarize(&b.runs),
        "mock_ceiling": mock_ceiling,
        "ttfb": ttfb,
        "memory": memory,
        "criterion": criterion_since().map_or(json!([]), |t| criterion_results(&criterion_dir(), t)),
        "failures": b.failures,
    });
    let results = report::with_targets(results);
    let path = s.out.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results)?)?;
    log(&format!("wrote {}", path.display()));
    let notes = std::fs::read_to_string(root.join("scripts/bench/notes.md")).ok();
    let md = report::markdown(&results, notes.as_deref());
    std::fs::write(&s.report, md)?;
    log(&format!(
        "wrote {} ({:.0}s in all)",
        s.report.display(),
        t_start.elapsed().as_secs_f64()
    ));
    println!("{}", report::console_summary(&results));
    drop(idp);
    if !b.failures.is_empty() {
        bail!("{} run(s) failed: {:?}", b.failures.len(), b.failures);
    }
    Ok(())
}

/// When `scripts/bench.sh` started the criterion benches (`BENCH_CRITERION_SINCE`, Unix
/// seconds); `None` when it did not run them.
fn criterion_since() -> Option<std::time::SystemTime> {
    let secs = std::env::var("BENCH_CRITERION_SINCE").ok()?.parse().ok()?;
    Some(std::time::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Where `cargo bench` writes criterion's results.
fn criterion_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| paths::workspace_root().join("target"))
        .join("criterion")
}

/// Every criterion bench under `dir` whose `new/estimates.json` was written since `since`, as
/// `{id, median_ns, bytes}` sorted by id.
fn criterion_results(dir: &std::path::Path, since: std::time::SystemTime) -> Value {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for path in entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()) {
            if path.file_name().is_none_or(|n| n != "new") {
                dirs.push(path);
                continue;
            }
            let fresh = std::fs::metadata(path.join("estimates.json"))
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= since);
            let read = |f: &str| -> Option<Value> {
                serde_json::from_str(&std::fs::read_to_string(path.join(f)).ok()?).ok()
            };
            if let (true, Some(b), Some(est)) =
                (fresh, read("benchmark.json"), read("estimates.json"))
            {
                found.push(json!({
                    "id": b["full_id"],
                    "median_ns": est["median"]["point_estimate"],
                    "bytes": b["throughput"]["Bytes"],
                }));
            }
        }
    }
    found.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    Value::Array(found)
}

fn utc_date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(paths::workspace_root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

impl Bench {
    fn gw(&self, name: &str) -> Result<&Gateway> {
        self.gateways
            .get(name)
            .ok_or_else(|| anyhow!("no gateway {name}"))
    }

    fn payload(&self, name: &str) -> Result<&Payload> {
        self.payloads
            .get(name)
            .ok_or_else(|| anyhow!("no payload {name}"))
    }

    fn request(&self, p: &Payload, with_auth: bool) -> Request {
        let mut r = Request::post(&p.path).body(p.body.clone());
        for (k, v) in &p.headers {
            if with_auth || k != "authorization" {
                r = r.header(k, v);
            }
        }
        r
    }

    /// The benchmark measures what it claims: the chain authenticates (401 without the
    /// token), passes the benchmark's requests (200), masks the streamed secrets that the
    /// passthrough lets through; the native JWT filter also refuses a missing token.
    fn sanity_checks(&self, _token: &str) -> Result<Value> {
        let mut out = Vec::new();
        let mut check = |what: String, ok: bool, detail: String| -> Result<()> {
            out.push(json!({"check": what, "ok": ok, "detail": detail}));
            if !ok {
                bail!("sanity check failed: {what}: {detail}");
            }
            Ok(())
        };
        for v in [CHAIN, BUNDLE, JWT, NATIVE, NATIVE_CACHE] {
            let gw = self.gw(v)?;
            let p = self.payload("4k")?;
            let r = thttp::send(gw.listener, &self.request(p, false))?;
            check(
                format!("{v}: no token → 401"),
                r.status == 401,
                format!("status {}", r.status),
            )?;
        }
        for v in [
            PASS,
            CHAIN,
            BUNDLE,
            JWT,
            JWT_PG,
            JWT_PG_KI,
            NATIVE,
            NATIVE_CACHE,
        ] {
            let gw = self.gw(v)?;
            for pn in ["4k", "agent50k"] {
                let p = self.payload(pn)?;
                let r = thttp::send(gw.listener, &self.request(p, true))?;
                check(
                    format!("{v}: {pn} → 200"),
                    r.status == 200,
                    format!("status {} {}", r.status, truncate(&r.text(), 300)),
                )?;
            }
        }
        for pn in ["stream2k", "stream64k"] {
            let p = self.payload(pn)?;
            let script = p
                .script
                .clone()
                .ok_or_else(|| anyhow!("{pn} has no script"))?;
            for v in [PASS, CHAIN, BUNDLE] {
                self.mock.push_script(script.clone());
                let r = thttp::send(self.gw(v)?.listener, &self.request(p, true))?;
                let body = thttp::sse_text(&r.sse());
                let full = p.stream_text.clone().unwrap_or_default();
                let expected: Vec<&str> = payloads::secrets()
                    .into_iter()
                    .filter(|s| full.contains(*s))
                    .collect();
                let leaked: Vec<&str> = expected
                    .iter()
                    .copied()
                    .filter(|s| body.contains(*s))
                    .collect();
                let redacted = body.matches("[REDACTED").count();
                if v == PASS {
                    check(
                        format!("{v}: {pn} → 200, secrets arrive unmasked"),
                        r.status == 200 && !expected.is_empty() && leaked.len() == expected.len(),
                        format!(
                            "status {}, {} of {} secrets seen",
                            r.status,
                            leaked.len(),
                            expected.len()
                        ),
                    )?;
                } else {
                    check(
                        format!("{v}: {pn} → 200, every secret masked"),
                        r.status == 200 && leaked.is_empty() && redacted > 0,
                        format!(
                            "status {}, {} leaked, {redacted} [REDACTED…] markers, {} body bytes",
                            r.status,
                            leaked.len(),
                            body.len()
                        ),
                    )?;
                }
            }
            self.mock.reset();
        }
        Ok(Value::Array(out))
    }

    fn warm_up(&mut self) -> Result<()> {
        let names: Vec<String> = self.gateways.keys().cloned().collect();
        for g in names {
            for pn in ["4k", "agent50k", "stream2k", "stream64k"] {
                let p = self.payload(pn)?.clone();
                let addr = self.gw(&g)?.listener;
                load::with_feeder(&self.mock, p.script.as_ref(), || {
                    self.s.loadgen.run(addr, &p, 4, Bound::Secs(1.0))
                })
                .with_context(|| format!("warm-up of {g} with {pn}"))?;
            }
        }
        log("warm-up done");
        Ok(())
    }

    /// One oha run, recorded; a failed run is recorded as a failure and skipped.
    fn measure(
        &mut self,
        group: &str,
        payload: &str,
        variant: &str,
        c: usize,
        rep: usize,
        bound: Bound,
    ) {
        let res = (|| -> Result<load::RunResult> {
            let p = self.payload(payload)?.clone();
            let addr = if variant == "mock" {
                self.mock.addr()
            } else {
                self.gw(variant)?.listener
            };
            load::with_feeder(&self.mock, p.script.as_ref(), || {
                self.s.loadgen.run(addr, &p, c, bound)
            })
        })();
        match res {
            Ok(r) => {
                log(&format!(
                    "{group:10} {payload:9} c={c:<3} {variant:34} rep {rep}: {:8.0} rps  p50 {:8.0} µs  p99 {:8.0} µs",
                    r.rps, r.p50_us, r.p99_us
                ));
                let mut v = r.to_json();
                v["group"] = group.into();
                v["payload"] = payload.into();
                v["variant"] = variant.into();
                v["concurrency"] = c.into();
                v["rep"] = rep.into();
                self.runs.push(v);
            }
            Err(e) => {
                let msg = format!("{group} {payload} c={c} {variant} rep {rep}: {e:#}");
                log(&format!("FAILED {msg}"));
                self.failures.push(msg);
            }
        }
        if let Some(gw) = self.gateways.get_mut(variant) {
            if let Err(e) = gw.check_alive() {
                self.failures.push(format!("{variant} died: {e:#}"));
            }
        }
    }

    fn interleaved(&mut self, group: &str, payload: &str, c: usize, variants: &[&str]) {
        for rep in 0..self.s.reps {
            for v in variants {
                self.measure(group, payload, v, c, rep, Bound::Secs(self.s.secs));
            }
        }
    }

    /// oha straight at the mock (no Envoy) at c=64: the upstream's own ceiling.
    fn mock_ceiling(&mut self) -> Value {
        let before = self.runs.len();
        for pn in ["4k", "agent50k", "stream2k", "stream64k"] {
            for rep in 0..self.s.reps {
                self.measure("mock", pn, "mock", 64, rep, Bound::Secs(self.s.secs));
            }
        }
        Value::Array(self.runs.drain(before..).collect())
    }

    fn main_matrix(&mut self) {
        for pn in ["4k", "agent50k", "stream2k", "stream64k"] {
            for c in self.s.concurrencies.clone() {
                self.interleaved("main", pn, c, &[PASS, CHAIN, BUNDLE]);
            }
        }
    }

    /// JWT alone (tollgate vs Envoy's native filter) and the chain built up one filter at a
    /// time (each step's added latency is that filter's cost), at c=16.
    fn per_filter(&mut self) {
        self.interleaved("filters", "4k", 16, &PER_FILTER_VARIANTS);
        self.interleaved(
            "filters",
            "agent50k",
            16,
            &[PASS, JWT, JWT_PG, JWT_PG_KI, CHAIN, BUNDLE],
        );
        self.interleaved(
            "filters",
            "stream64k",
            16,
            &[PASS, JWT_PG_KI, CHAIN, BUNDLE],
        );
    }

    /// Time to first byte of streamed answers, own client, keep-alive, interleaved.
    fn ttfb(&mut self) -> Value {
        let mut out = Vec::new();
        for (pn, paced) in [
            ("stream2k", false),
            ("stream64k", false),
            ("stream2k", true),
            ("stream64k", true),
        ] {
            // paced: c=1 only (a new connection per request; at c=16 connection churn dominates)
            let cs: &[(usize, usize)] = if paced {
                &[(1, self.s.ttfb_count_c1)]
            } else {
                &[(1, self.s.ttfb_count_c1), (16, self.s.ttfb_count_c16)]
            };
            for &(c, count) in cs {
                let mut per_variant: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
                for rep in 0..self.s.reps {
                    for v in [PASS, CHAIN] {
                        let res = (|| -> Result<load::Ttfb> {
                            let mut p = self.payload(pn)?.clone();
                            if paced {
                                p.script = p.script.map(|s| s.delay_ms(PACE_MS));
                            }
                            let addr = self.gw(v)?.listener;
                            load::with_feeder(&self.mock, p.script.as_ref(), || {
                                load::ttfb(addr, &p, c, count, paced)
                            })
                        })();
                        match res {
                            Ok(t) => {
                                let row = json!({
                                    "rep": rep,
                                    "requests": t.total_us.len(),
                                    "head_p50_us": load::round1(load::quantile(&t.head_us, 0.5)),
                                    "first_byte_p50_us": load::round1(load::quantile(&t.first_byte_us, 0.5)),
                                    "first_byte_p99_us": load::round1(load::quantile(&t.first_byte_us, 0.99)),
                                    "total_p50_us": load::round1(load::quantile(&t.total_us, 0.5)),
                                    "total_p99_us": load::round1(load::quantile(&t.total_us, 0.99)),
                                });
                                log(&format!(
                                    "ttfb {pn} paced={paced} c={c} {v} rep {rep}: {row}"
                                ));
                                per_variant.entry(v).or_default().push(row);
                            }
                            Err(e) => {
                                let msg = format!("ttfb {pn} c={c} {v} rep {rep}: {e:#}");
                                log(&format!("FAILED {msg}"));
                                self.failures.push(msg);
                            }
                        }
                    }
                }
                let med = |v: &str, k: &str| -> f64 {
                    let xs: Vec<f64> = per_variant
                        .get(v)
                        .into_iter()
                        .flatten()
                        .filter_map(|r| r[k].as_f64())
                        .collect();
                    load::round1(load::median(&xs))
                };
                let mut summary = json!({"payload": pn, "concurrency": c, "paced": paced});
                for v in [PASS, CHAIN] {
                    summary[v] = json!({
                        "head_p50_us": med(v, "head_p50_us"),
                        "first_byte_p50_us": med(v, "first_byte_p50_us"),
                        "first_byte_p99_us": med(v, "first_byte_p99_us"),
                        "total_p50_us": med(v, "total_p50_us"),
                        "total_p99_us": med(v, "total_p99_us"),
                        "reps": per_variant.get(v).cloned().unwrap_or_default(),
                    });
                }
                summary["added_first_byte_p50_us"] =
                    load::round1(med(CHAIN, "first_byte_p50_us") - med(PASS, "first_byte_p50_us"))
                        .into();
                summary["added_first_byte_p99_us"] =
                    load::round1(med(CHAIN, "first_byte_p99_us") - med(PASS, "first_byte_p99_us"))
                        .into();
                out.push(summary);
            }
        }
        Value::Array(out)
    }

    /// A fresh chain Envoy: RSS and allocator figures after 0 requests, a 1k warm-up, then
    /// half and all of `mem_requests` (a mix of the four payloads at c=16).
    fn memory(
        &mut self,
        _base: &GatewayConfig,
        chain: &GatewayConfig,
        env: &[(String, String)],
    ) -> Result<Value> {
        // The other gateways are idle from here on; stop them so the machine is quieter.
        self.gateways.clear();
        let gw = Gateway::start("chain-mem", chain, None, env)?;
        let mut samples = Vec::new();
        let sample = |gw: &Gateway, after: u64| -> Result<Value> {
            std::thread::sleep(Duration::from_millis(300));
            let v = json!({
                "after_requests": after,
                "rss_kib": gw.rss_kib()?,
                "memory": gw.memory()?,
                "wasm_stats": gw.stats_matching("wasm")?,
            });
            log(&format!(
                "memory after {after}: RSS {} KiB, allocated {}",
                v["rss_kib"], v["memory"]["allocated"]
            ));
            Ok(v)
        };
        samples.push(sample(&gw, 0)?);
        let mix = [
            ("4k", 0.5),
            ("agent50k", 0.2),
            ("stream2k", 0.2),
            ("stream64k", 0.1),
        ];
        let mut done = 0u64;
        let warm = 1000u64.min(self.s.mem_requests / 10);
        let half = self.s.mem_requests / 2;
        let t = Instant::now();
        for target in [warm, half, self.s.mem_requests] {
            // wrk runs whole seconds, so a step can overshoot: the samples carry the real count
            if done >= target {
                continue;
            }
            let step = target - done;
            for (pn, share) in mix {
                let n = ((step as f64) * share).round() as u64;
                if n == 0 {
                    continue;
                }
                let p = self.payload(pn)?.clone();
                let r = load::with_feeder(&self.mock, p.script.as_ref(), || {
                    self.s.loadgen.run(gw.listener, &p, 16, Bound::Count(n))
                })
                .with_context(|| format!("memory phase: {pn} × {n}"))?;
                done += r.requests;
            }
            samples.push(sample(&gw, done)?);
        }
        log(&format!(
            "memory phase: {done} requests in {:.0}s",
            t.elapsed().as_secs_f64()
        ));
        let rss = |i: usize| {
            samples
                .get(i)
                .and_then(|s| s["rss_kib"].as_u64())
                .unwrap_or(0) as f64
        };
        let n = samples.len();
        let growth_second_half = rss(n - 1) - rss(n - 2);
        Ok(json!({
            "variant": "chain (fresh Envoy, one worker)",
            "mix": "50% 4k, 20% agent50k, 20% stream2k, 10% stream64k at c=16",
            "samples": samples,
            "rss_growth_second_half_kib": growth_second_half,
            "rss_growth_after_warmup_kib": rss(n - 1) - rss(1),
        }))
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criterion_results_reads_fresh_medians_only() {
        let dir = std::env::temp_dir().join(format!("tollgate-crit-{}", std::process::id()));
        let write = |name: &str, median: f64| {
            let new = dir.join(name).join("new");
            std::fs::create_dir_all(&new).unwrap();
            let b = json!({"full_id": name, "throughput": {"Bytes": 1024}});
            std::fs::write(new.join("benchmark.json"), b.to_string()).unwrap();
            let e = json!({"median": {"point_estimate": median}});
            std::fs::write(new.join("estimates.json"), e.to_string()).unwrap();
        };
        write("group/b", 2000.0);
        write("group/a", 1000.0);
        let all = criterion_results(&dir, std::time::UNIX_EPOCH);
        assert_eq!(all[0]["id"], "group/a");
        assert_eq!(all[0]["median_ns"], 1000.0);
        assert_eq!(all[1]["bytes"], 1024);
        let later = std::time::SystemTime::now() + Duration::from_secs(60);
        assert_eq!(criterion_results(&dir, later), json!([]));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
