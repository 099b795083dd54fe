//! `tollgate-render`: renders `envoy/gateway.yaml.tmpl` for scripts (`make up`, the compose
//! stack, benchmarks) with the same code the tests use (`tollgate_tests::render`).
//!
//! ```text
//! cargo run -q -p tollgate-tests --bin tollgate-render -- [OPTIONS]
//! ```

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use tollgate_tests::paths;
use tollgate_tests::render::{Endpoint, Filter, GatewayConfig, Upstream};

const USAGE: &str = "\
tollgate-render: render the tollgate Envoy configuration (envoy/gateway.yaml.tmpl)

OPTIONS
  -o, --output FILE         write the config here (default: stdout)
  --listen HOST:PORT        gateway listener           (default 127.0.0.1:10000)
  --admin HOST:PORT         Envoy admin                (default 127.0.0.1:9901)
  --upstream mock|anthropic the Claude API to route to (default: $TOLLGATE_UPSTREAM or mock)
  --mock HOST:PORT          the mock Claude API        (default 127.0.0.1:8081)
  --idp HOST:PORT           the identity provider      (default 127.0.0.1:8082)
  --access-log PATH         JSON access log            (default /dev/stdout)
  --chain CHAIN             `shipped` (default): every filter of jwt-auth, prompt-guard,
                            key-inject, secret-mask whose .wasm and policies/<name>.json exist;
                            `none`: the passthrough gateway; or NAME[,NAME...]
  --bundle                  run the chain's filters as one module (tollgate_bundle.wasm, one
                            VM, one configuration with a section per filter)
  --wasm-prefix DIR         write .wasm paths under DIR (where they are mounted, e.g. in a
                            container) instead of the local build directory
  --ca-file FILE            CA bundle for api.anthropic.com (default /etc/ssl/certs/ca-certificates.crt)
  --preset compose          the docker-compose stack's config (0.0.0.0 listeners, services
                            mock:8081 and idp:8082, .wasm paths relative to the container's
                            working directory); other options still apply after it
  --list-chain              print the chain's filter names, one a line, instead of the config
                            (with --bundle: the filters the bundle runs)
  -h, --help

The .wasm files come from $TOLLGATE_WASM_DIR (default <workspace>/target/wasm32-wasip1/release).
";

fn main() {
    if let Err(e) = run() {
        eprintln!("tollgate-render: {e:#}");
        std::process::exit(2);
    }
}

fn run() -> Result<()> {
    let mut cfg = GatewayConfig::default();
    let mut output: Option<PathBuf> = None;
    let mut upstream = std::env::var("TOLLGATE_UPSTREAM").unwrap_or_else(|_| "mock".into());
    let mut mock = Endpoint::new("127.0.0.1", 8081);
    let mut chain = "shipped".to_string();
    let mut wasm_prefix: Option<PathBuf> = None;
    let mut ca_file: Option<PathBuf> = None;
    let mut list_chain = false;
    let mut bundle = false;

    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(());
            }
            "-o" | "--output" => output = Some(value()?.into()),
            "--listen" => cfg.listen = value()?.parse()?,
            "--admin" => cfg.admin = value()?.parse()?,
            "--upstream" => upstream = value()?,
            "--mock" => mock = value()?.parse()?,
            "--idp" => cfg.idp = value()?.parse()?,
            "--access-log" => cfg.access_log = value()?.into(),
            "--chain" => chain = value()?,
            "--wasm-prefix" => wasm_prefix = Some(value()?.into()),
            "--ca-file" => ca_file = Some(value()?.into()),
            "--list-chain" => list_chain = true,
            "--bundle" => bundle = true,
            "--preset" => match value()?.as_str() {
                "compose" => {
                    cfg = GatewayConfig::compose();
                    mock = Endpoint::new("mock", 8081);
                    chain = "keep".into();
                }
                other => bail!("unknown preset `{other}` (known: compose)"),
            },
            other => bail!("unknown option {other}\n\n{USAGE}"),
        }
    }

    cfg.upstream = match upstream.as_str() {
        "mock" | "" => Upstream::Mock(mock),
        "anthropic" => Upstream::Anthropic {
            ca_file: ca_file.unwrap_or_else(|| tollgate_tests::render::DEFAULT_CA_FILE.into()),
        },
        other => {
            bail!("--upstream (or TOLLGATE_UPSTREAM) must be `mock` or `anthropic`, not `{other}`")
        }
    };

    cfg.filters = match chain.as_str() {
        "keep" => std::mem::take(&mut cfg.filters),
        "shipped" => tollgate_tests::shipped_chain(),
        "none" | "passthrough" => Vec::new(),
        names => names
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|name| {
                if !paths::FILTERS.contains(&name) {
                    bail!(
                        "unknown filter `{name}` (known: {})",
                        paths::FILTERS.join(", ")
                    );
                }
                Filter::shipped(name).ok_or_else(|| {
                    anyhow!(
                        "filter `{name}` needs {} (run `make wasm`) and {}",
                        paths::wasm_dir()
                            .join(paths::wasm_file_name(name))
                            .display(),
                        paths::policy_path(name).display()
                    )
                })
            })
            .collect::<Result<_>>()?,
    };
    // The policies by filter name, also for a bundle (it runs the same ones).
    if list_chain {
        for f in &cfg.filters {
            println!("{}", f.name);
        }
        return Ok(());
    }
    if bundle && !cfg.filters.is_empty() {
        let one = tollgate_tests::render::bundle(&cfg.filters).ok_or_else(|| {
            anyhow!(
                "--bundle needs {} (run `make wasm`)",
                paths::wasm_dir()
                    .join(paths::wasm_file_name("bundle"))
                    .display()
            )
        })?;
        cfg.filters = vec![one];
    }
    if let Some(prefix) = wasm_prefix {
        for f in &mut cfg.filters {
            let file = f
                .wasm
                .file_name()
                .ok_or_else(|| anyhow!("bad wasm path {}", f.wasm.display()))?;
            f.wasm = prefix.join(file);
        }
    }

    match output {
        Some(path) => cfg
            .render_to(&path)
            .with_context(|| format!("rendering {}", path.display())),
        None => {
            print!("{}", cfg.render()?);
            Ok(())
        }
    }
}
