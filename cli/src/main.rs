//! The `tollgate` binary: parses the command line and dispatches to one module per subcommand
//! (see the library's overview). Errors print with their causes and exit 1; usage errors exit 2.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use tollgate::{package, render};

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Ship and run tollgate, the Claude API gateway policies for Envoy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build an OCI image per filter and for the bundle; push it, print its digest, write a lock file.
    Package(package::Args),
    /// Render Istio WasmPlugin or Envoy Gateway EnvoyExtensionPolicy manifests pinned by digest.
    Render(render::Args),
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The cause chain on one line, no backtrace: these are user-facing errors.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Package(args) => {
            package::run(&args).context("tollgate package")?;
        }
        Command::Render(args) => {
            let text = render::run(&args).context("tollgate render")?;
            if args.output.is_none() {
                print!("{text}");
            }
        }
    }
    Ok(())
}
