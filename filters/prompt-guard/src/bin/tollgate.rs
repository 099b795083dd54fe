//! `tollgate check <policy.json>...`: validates prompt-guard policy files offline with the very
//! parser and compile step the filter runs in `on_configure`. Prints a summary per valid file;
//! prints `<file>: <field path>: <problem>` for an invalid one. Exit status: 0 all valid,
//! 1 some file invalid or unreadable, 2 usage error. Native only: on wasm32 this is an empty
//! program (the crate's wasm build compiles every target).

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    std::process::exit(cli::run(std::env::args().skip(1).collect()));
}

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use tollgate_prompt_guard::config::load;

    const USAGE: &str = "usage: tollgate check <policy.json>...";

    pub fn run(args: Vec<String>) -> i32 {
        match args.split_first() {
            Some((cmd, files)) if cmd == "check" && !files.is_empty() => {
                let mut status = 0;
                for file in files {
                    match std::fs::read(file) {
                        Err(e) => {
                            eprintln!("{file}: cannot read: {e}");
                            status = 1;
                        }
                        Ok(raw) => match load(&raw) {
                            Ok(policy) => println!("{file}: ok: {}", policy.summary()),
                            Err(e) => {
                                eprintln!("{file}: {e}");
                                status = 1;
                            }
                        },
                    }
                }
                status
            }
            Some((flag, _)) if flag == "-h" || flag == "--help" => {
                println!("{USAGE}");
                0
            }
            _ => {
                eprintln!("{USAGE}");
                2
            }
        }
    }
}
