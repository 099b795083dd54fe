//! The prompt-guard command line behind `tollgate check` and `tollgate eval` (the `tollgate`
//! command, crate `cli/`). Native only.
//!
//! - `check <policy.json>...` validates policy files offline with the very parser and compile
//!   step the filter runs in `on_configure`. Prints a summary per valid file and
//!   `<file>: <field path>: <problem>` for an invalid one. Exit status: 0 all valid, 1 some file
//!   invalid or unreadable, 2 usage error.
//! - `eval <policy.json> <request.json> [--api messages|count_tokens|chat_completions]
//!   [--groups a,b] [--repeat N]` decides on one request body as the filter would and prints the
//!   verdict (`pass`, `flag: ids`, `deny <status> <type>: message`), plus the mean time per
//!   evaluation with `--repeat`. Exit status: 0 pass or flag, 3 denied, 1 unreadable input or
//!   invalid policy, 2 usage error.

use std::time::Instant;

use crate::config::load;
use crate::extract::Api;
use crate::policy::Verdict;

const USAGE: &str = "usage: tollgate check <policy.json>...\n       tollgate eval <policy.json> <request.json> [--api messages|count_tokens|chat_completions] [--groups a,b] [--repeat N]";

fn eval(args: &[String]) -> i32 {
    let (mut api, mut groups, mut repeat) = (Api::Messages, Vec::new(), 0u32);
    let mut files = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.clone().next()) {
            ("--api", Some(v)) => {
                api = match v.as_str() {
                    "messages" => Api::Messages,
                    "count_tokens" => Api::CountTokens,
                    "chat_completions" => Api::ChatCompletions,
                    _ => {
                        eprintln!("unknown --api {v}\n{USAGE}");
                        return 2;
                    }
                };
                it.next();
            }
            ("--groups", Some(v)) => {
                groups = v
                    .split(',')
                    .filter(|g| !g.is_empty())
                    .map(String::from)
                    .collect();
                it.next();
            }
            ("--repeat", Some(v)) => {
                let Ok(n) = v.parse() else {
                    eprintln!("--repeat needs a number\n{USAGE}");
                    return 2;
                };
                repeat = n;
                it.next();
            }
            (flag, _) if flag.starts_with("--") => {
                eprintln!("unknown option {flag}\n{USAGE}");
                return 2;
            }
            (file, _) => files.push(file.to_string()),
        }
    }
    let [policy_file, request_file] = files.as_slice() else {
        eprintln!("{USAGE}");
        return 2;
    };
    let policy = match std::fs::read(policy_file)
        .map_err(|e| e.to_string())
        .and_then(|raw| load(&raw).map_err(|e| e.to_string()))
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{policy_file}: {e}");
            return 1;
        }
    };
    let body = match std::fs::read(request_file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{request_file}: cannot read: {e}");
            return 1;
        }
    };
    let verdict = policy.evaluate(api, &body, &groups);
    if repeat > 0 {
        let start = Instant::now();
        for _ in 0..repeat {
            std::hint::black_box(policy.evaluate(api, std::hint::black_box(&body), &groups));
        }
        let per = start.elapsed().as_secs_f64() * 1e6 / f64::from(repeat);
        println!(
            "time: {per:.1} us per evaluation ({} bytes, {repeat} runs)",
            body.len()
        );
    }
    match verdict {
        Verdict::Pass {
            flags,
            body: rewritten,
        } => {
            let clamp = if rewritten.is_some() {
                " (max_tokens clamped)"
            } else {
                ""
            };
            if flags.is_empty() {
                println!("pass{clamp}");
            } else {
                println!("flag: {}{clamp}", flags.join(","));
            }
            0
        }
        Verdict::Deny(d) => {
            println!(
                "deny {} {}: {}",
                d.kind.status(),
                d.kind.type_name(),
                d.message
            );
            3
        }
    }
}

pub fn run(args: Vec<String>) -> i32 {
    match args.split_first() {
        Some((cmd, rest)) if cmd == "eval" => eval(rest),
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
