//! Differential tests: one scenario, two hosts. Each scenario runs through the harness and
//! through a real Envoy (the venv's 1.40, V8) loading the same `.wasm` files in front of the
//! mock Claude API, and both must give the same client-visible outcome (status, the headers the
//! scenario names, body bytes) and the same request at the upstream (body bytes and named
//! headers). Where Envoy behaves in a way worth knowing, a scenario pins it on both sides.
//!
//! Scenarios are grouped by filter chain, so each chain starts one Envoy and one harness
//! gateway; a chain whose filter traps runs last in its own group, since a trapped VM fails
//! every later stream (on both hosts).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod probe;
mod product;

use std::sync::OnceLock;

use tollgate_harness::{FilterSpec, Gateway, Host, Outcome};
use tollgate_mock::{MockConfig, MockServer, Script};
use tollgate_tests::http::{Request as HttpRequest, Response as HttpResponse};
use tollgate_tests::{Endpoint, Envoy, EnvoyOptions, Filter, GatewayConfig, Upstream as Target};

/// A request both hosts receive.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send the body with chunked transfer-encoding, as these chunks.
    pub chunks: Option<Vec<Vec<u8>>>,
}

impl Req {
    pub fn get(path: &str) -> Self {
        Req {
            method: "GET",
            path: path.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            chunks: None,
        }
    }

    pub fn post(path: &str, body: impl Into<Vec<u8>>) -> Self {
        Req {
            method: "POST",
            body: body.into(),
            ..Req::get(path)
        }
        .header("content-type", "application/json")
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn probe(self, commands: &str) -> Self {
        self.header("x-probe", commands)
    }

    pub fn chunked(mut self, chunks: Vec<Vec<u8>>) -> Self {
        self.body = chunks.concat();
        self.chunks = Some(chunks);
        self
    }

    fn stream_requested(&self) -> bool {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["stream"].as_bool())
            .unwrap_or(false)
    }

    fn to_http(&self) -> HttpRequest {
        let mut req = HttpRequest::new(self.method, &self.path);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        match &self.chunks {
            Some(chunks) => req.chunks(chunks.clone()),
            None if !self.body.is_empty() => req.body(self.body.clone()),
            None => req,
        }
    }

    fn to_harness(&self, authority: &str) -> tollgate_harness::Request {
        let mut req =
            tollgate_harness::Request::new(self.method, &self.path).header(":authority", authority);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        // What Envoy's codec adds to what the client sent.
        match &self.chunks {
            Some(chunks) => req
                .header("transfer-encoding", "chunked")
                .chunks(chunks.clone()),
            None if !self.body.is_empty() || self.method == "POST" => req
                .header("content-length", self.body.len().to_string())
                .chunks(if self.body.is_empty() {
                    vec![]
                } else {
                    vec![self.body.clone()]
                }),
            None => req,
        }
    }
}

/// One scenario: the request, the upstream's answer (a mock script; `None` means the
/// scenario expects nothing to reach the upstream), and what to compare.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub request: Req,
    pub upstream: Option<Script>,
    /// Client-visible headers to compare (besides status and body).
    pub client_headers: Vec<&'static str>,
    /// Headers the upstream received to compare (besides its body).
    pub upstream_headers: Vec<&'static str>,
}

impl Scenario {
    pub fn new(name: &'static str, request: Req, upstream: Option<Script>) -> Self {
        Scenario {
            name,
            request,
            upstream,
            client_headers: vec!["content-type"],
            upstream_headers: Vec::new(),
        }
    }

    pub fn client_headers(mut self, names: &[&'static str]) -> Self {
        self.client_headers.extend_from_slice(names);
        self
    }

    pub fn upstream_headers(mut self, names: &[&'static str]) -> Self {
        self.upstream_headers.extend_from_slice(names);
        self
    }
}

/// One filter of a chain: plugin name, artifact name, configuration, environment.
#[derive(Clone, Debug)]
pub struct ChainFilter {
    pub plugin: String,
    pub artifact: String,
    pub config: String,
    pub env: Vec<(String, String)>,
}

/// A chain of filters, and the upstream key the mock requires (`None`: no authentication).
#[derive(Clone, Debug, Default)]
pub struct ChainSpec {
    pub filters: Vec<ChainFilter>,
    pub upstream_key: Option<String>,
}

impl ChainSpec {
    pub fn new() -> Self {
        ChainSpec::default()
    }

    pub fn filter(mut self, plugin: &str, artifact: &str, config: &str) -> Self {
        self.filters.push(ChainFilter {
            plugin: plugin.into(),
            artifact: artifact.into(),
            config: config.into(),
            env: Vec::new(),
        });
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        if let Some(last) = self.filters.last_mut() {
            last.env.push((key.into(), value.into()));
        }
        self
    }

    pub fn upstream_key(mut self, key: &str) -> Self {
        self.upstream_key = Some(key.to_string());
        self
    }
}

fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| Host::new().expect("wasm engine"))
}

/// The outcome of one scenario on one host, reduced to what the hosts must agree on.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    status: u32,
    client_headers: Vec<(String, Option<String>)>,
    body: Vec<u8>,
    upstream: Option<(Vec<u8>, Headers)>,
}

/// Named headers and their values (`None`: absent).
type Headers = Vec<(String, Option<String>)>;

fn harness_seen(out: &Outcome, sc: &Scenario) -> Seen {
    Seen {
        status: out.client.status,
        client_headers: sc
            .client_headers
            .iter()
            .map(|h| (h.to_string(), out.client.header(h)))
            .collect(),
        body: out.client.body.clone(),
        upstream: out.upstream.as_ref().filter(|u| u.complete).map(|u| {
            (
                u.body.clone(),
                sc.upstream_headers
                    .iter()
                    .map(|h| (h.to_string(), u.header(h)))
                    .collect(),
            )
        }),
    }
}

fn envoy_seen(
    resp: &HttpResponse,
    received: Option<&tollgate_mock::RecordedRequest>,
    sc: &Scenario,
) -> Seen {
    Seen {
        status: u32::from(resp.status),
        client_headers: sc
            .client_headers
            .iter()
            .map(|h| (h.to_string(), resp.header(h).map(str::to_string)))
            .collect(),
        body: resp.body.clone(),
        upstream: received.map(|r| {
            (
                r.body.clone(),
                sc.upstream_headers
                    .iter()
                    .map(|h| (h.to_string(), r.header(h).map(str::to_string)))
                    .collect(),
            )
        }),
    }
}

/// Runs every scenario of a chain on both hosts and asserts they agree. Returns the harness
/// outcomes and Envoy responses for scenario-specific assertions.
pub fn run_chain(chain: &ChainSpec, scenarios: &[Scenario]) -> Vec<(Outcome, HttpResponse)> {
    let mock = MockServer::start(MockConfig {
        api_key: chain.upstream_key.clone(),
        accept_bearer: false,
        ..MockConfig::default()
    })
    .expect("mock starts");
    let mut cfg = GatewayConfig::ephemeral(Target::Mock(mock.addr().into()))
        .idp(Endpoint::new("127.0.0.1", closed_port()));
    let mut options = EnvoyOptions::default();
    let mut builder = Gateway::builder(host())
        .cluster("idp")
        .cluster("upstream")
        .route_cluster("upstream");
    for ChainFilter {
        plugin,
        artifact,
        config,
        env,
    } in &chain.filters
    {
        let mut filter =
            Filter::new(artifact, config.clone()).env_keys(env.iter().map(|(k, _)| k.clone()));
        filter.name = plugin.clone();
        cfg = cfg.filter(filter);
        let mut spec = FilterSpec::new(tollgate_harness::artifact(artifact))
            .name(plugin)
            .config(config.clone());
        for (k, v) in env {
            options = options.env(k, v);
            spec = spec.env(k, v);
        }
        builder = builder.filter(spec);
    }
    let mut gateway = builder.build().expect("harness gateway starts");
    let envoy = Envoy::start_with(&cfg, &options).expect("envoy starts");
    let authority = envoy.addr().to_string();

    let mut results = Vec::new();
    let mut failures = Vec::new();
    for sc in scenarios {
        let before = mock.request_count();
        if let Some(script) = &sc.upstream {
            mock.push_script(script.clone());
        }
        let resp = envoy
            .send(&sc.request.to_http().header("host", &authority))
            .unwrap_or_else(|e| {
                panic!("{}: envoy request failed: {e:#}\n{}", sc.name, envoy.log())
            });
        let requests = mock.requests();
        let received = requests.get(before..).and_then(|r| r.last());
        let upstream = match &sc.upstream {
            Some(script) => {
                let rendered = script.render_for(sc.request.stream_requested(), None);
                let mut up = tollgate_harness::Upstream::new(u32::from(rendered.status));
                for (k, v) in &rendered.headers {
                    up = up.header(k, v);
                }
                up.chunks(rendered.chunks)
            }
            None => tollgate_harness::Upstream::new(200).body("unexpected"),
        };
        let out = gateway.run(sc.request.to_harness(&authority), upstream);
        let (h, e) = (harness_seen(&out, sc), envoy_seen(&resp, received, sc));
        if h != e {
            failures.push(format!(
                "scenario `{}` differs\n  harness: {}\n  envoy:   {}\n  harness failure: {:?}",
                sc.name,
                render(&h),
                render(&e),
                out.failure
            ));
        }
        results.push((out, resp));
    }
    assert!(
        failures.is_empty(),
        "{}\n--- envoy log ---\n{}",
        failures.join("\n"),
        tail(&envoy.log())
    );
    results
}

fn render(seen: &Seen) -> String {
    format!(
        "status {} headers {:?} body {} upstream {:?}",
        seen.status,
        seen.client_headers,
        shorten(&seen.body),
        seen.upstream.as_ref().map(|(b, h)| (shorten(b), h))
    )
}

/// Bodies in failure messages: the first 300 bytes and the length.
fn shorten(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    format!("{text:?} ({} bytes)", body.len())
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A local port with nothing listening (the IdP cluster of chains that must not reach one).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
