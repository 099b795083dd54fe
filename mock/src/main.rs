//! `tollgate-mock`: runs the mock Claude API server until SIGINT/SIGTERM.
//!
//! ```text
//! tollgate-mock [--listen 127.0.0.1:8081] [--api-key KEY | env MOCK_API_KEY] [--strict-auth] [--demo]
//!               [--workers N] [--no-record] [--record-limit N] [--quiet] [--delta-size N]
//!               [--stream-delay-ms N]
//! ```
//! Prints `tollgate-mock listening on http://ADDR` on stdout once it accepts connections, then
//! logs one line per request (method, path without query, status; never bodies or keys) on
//! stderr unless `--quiet`.

use std::net::SocketAddr;
use std::process::ExitCode;

use tollgate_mock::{MockConfig, MockServer};

const USAGE: &str =
    "usage: tollgate-mock [--listen ADDR] [--api-key KEY] [--strict-auth] [--demo] [--workers N] \
[--no-record] [--record-limit N] [--quiet] [--delta-size N] [--stream-delay-ms N]
  --listen ADDR     address to bind (default 127.0.0.1:8081; port 0 = ephemeral)
  --api-key KEY     require x-api-key: KEY (default: env MOCK_API_KEY; unset = no auth)
  --strict-auth     accept the key only as x-api-key (not as authorization: Bearer)
  --demo            demo answers; shows fake credentials when asked for keys
  --workers N       runtime worker threads (default: available cores)
  --no-record       do not record requests (long benchmarks)
  --record-limit N  keep only the N most recent requests (default 10000)
  --quiet           do not log requests
  --stream-delay-ms N  delay between events of unscripted streams (default 0)
  --delta-size N    text delta size of unscripted streams in bytes (default 16; 0 = one delta)";

struct Args {
    listen: SocketAddr,
    config: MockConfig,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 8081));
    let mut config = MockConfig {
        api_key: std::env::var("MOCK_API_KEY").ok().filter(|k| !k.is_empty()),
        workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
        log: true,
        record_limit: Some(10_000),
        ..MockConfig::default()
    };
    let mut it = args;
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--listen" => {
                let v = value("--listen")?;
                listen = v
                    .parse()
                    .map_err(|e| format!("--listen {v}: not an address ({e})"))?;
            }
            "--api-key" => config.api_key = Some(value("--api-key")?),
            "--demo" => config.demo = true,
            "--strict-auth" => config.accept_bearer = false,
            "--workers" => {
                let v = value("--workers")?;
                config.workers = v
                    .parse()
                    .map_err(|_| format!("--workers {v}: not a number"))?;
            }
            "--delta-size" => {
                let v = value("--delta-size")?;
                config.delta_size = v
                    .parse()
                    .map_err(|_| format!("--delta-size {v}: not a number"))?;
            }
            "--stream-delay-ms" => {
                let v = value("--stream-delay-ms")?;
                config.stream_delay_ms = v
                    .parse()
                    .map_err(|_| format!("--stream-delay-ms {v}: not a number"))?;
            }
            "--no-record" => config.record = false,
            "--record-limit" => {
                let v = value("--record-limit")?;
                config.record_limit = Some(
                    v.parse()
                        .map_err(|_| format!("--record-limit {v}: not a number"))?,
                );
            }
            "--quiet" => config.log = false,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Some(Args { listen, config }))
}

/// SIGINT/SIGTERM listeners, installed before the server reports readiness so that a signal
/// sent right after the ready line stops it cleanly.
struct Signals {
    rt: tokio::runtime::Runtime,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let (term, int) = rt.block_on(async {
                Ok::<_, std::io::Error>((
                    signal(SignalKind::terminate())?,
                    signal(SignalKind::interrupt())?,
                ))
            })?;
            Ok(Signals { rt, term, int })
        }
        #[cfg(not(unix))]
        Ok(Signals { rt })
    }

    fn wait(mut self) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            let (term, int) = (&mut self.term, &mut self.int);
            self.rt.block_on(async {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            });
            Ok(())
        }
        #[cfg(not(unix))]
        self.rt.block_on(tokio::signal::ctrl_c())
    }
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("tollgate-mock: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let auth = if args.config.api_key.is_some() {
        "required"
    } else {
        "off"
    };
    let demo = args.config.demo;
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tollgate-mock: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = match MockServer::start_on(args.listen, args.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tollgate-mock: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    println!("tollgate-mock listening on http://{}", server.addr());
    eprintln!("tollgate-mock: api key {auth}, demo {demo}");
    if let Err(e) = signals.wait() {
        eprintln!("tollgate-mock: cannot wait for signals: {e}");
        return ExitCode::FAILURE;
    }
    drop(server);
    eprintln!("tollgate-mock: stopped");
    ExitCode::SUCCESS
}
