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
    /// Validate prompt-guard policy files offline with the filter's own parser (exit 1: invalid).
    Check {
        #[arg(required = true, value_name = "POLICY.json")]
        files: Vec<String>,
    },
    /// Decide one request body as prompt-guard would: pass, flag, or deny (exit 3).
    /// Arguments: POLICY.json REQUEST.json [--api messages|count_tokens|chat_completions]
    /// [--groups a,b] [--repeat N].
    Eval {
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build an OCI image per filter and for the bundle; push it, print its digest, write a lock file.
    Package(package::Args),
    /// Render Istio WasmPlugin or Envoy Gateway EnvoyExtensionPolicy manifests pinned by digest.
    Render(render::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // check and eval keep prompt-guard's own exit statuses (0, 1, 2 usage, 3 denied).
    let policy_command = match &cli.command {
        Command::Check { files } => Some([vec!["check".to_string()], files.clone()].concat()),
        Command::Eval { args } => Some([vec!["eval".to_string()], args.clone()].concat()),
        _ => None,
    };
    if let Some(args) = policy_command {
        let status = tollgate_prompt_guard::cli::run(args);
        return ExitCode::from(u8::try_from(status).unwrap_or(1));
    }
    match run(cli) {
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
        Command::Check { .. } | Command::Eval { .. } => {}
        Command::Render(args) => {
            let text = render::run(&args).context("tollgate render")?;
            if args.output.is_none() {
                print!("{text}");
            }
        }
    }
    Ok(())
}
