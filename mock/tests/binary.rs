//! Tests of the `tollgate-mock` binary as another process would drive it: the ready line,
//! authentication from `MOCK_API_KEY`, the control API, request logging without secrets, and a
//! clean exit on SIGTERM / SIGINT.

// Helpers outside #[test] fns fail tests by panicking, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod client;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use client::{post_json, request};
use serde_json::json;
use tollgate_mock::RecordedRequest;

struct Proc {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[&str], env: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate-mock"));
    cmd.args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("MOCK_API_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn tollgate-mock");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("ready line");
    let url = line
        .trim()
        .strip_prefix("tollgate-mock listening on http://")
        .unwrap_or_else(|| panic!("unexpected ready line {line:?}"));
    let addr = url.parse().expect("address in ready line");
    Proc { child, addr }
}

fn signal(p: &Proc, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &p.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

fn wait_exit(p: &mut Proc) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(s) = p.child.try_wait().expect("try_wait") {
            return s;
        }
        assert!(Instant::now() < deadline, "did not exit after signal");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn binary_serves_authenticates_logs_and_stops_on_sigterm() {
    let key = "sk-ant-api03-binarytestkeyvalue";
    let mut p = spawn(&["--demo", "--workers", "2"], &[("MOCK_API_KEY", key)]);
    let body = r#"{"model":"m","max_tokens":500,"messages":[{"role":"user","content":"hello there, private-prompt-text"}]}"#;
    assert_eq!(post_json(p.addr, "/v1/messages", &[], body).status, 401);
    let ok = post_json(
        p.addr,
        "/v1/messages?beta=true",
        &[("x-api-key", key)],
        body,
    );
    assert_eq!(ok.status, 200);
    assert!(ok.json()["content"][0]["text"]
        .as_str()
        .is_some_and(|t| t.contains("demo")));

    // Control API: script, requests, reset.
    let script =
        json!({"status": 529, "body": {"type": "error", "error_type": "overloaded_error"}});
    assert_eq!(
        post_json(p.addr, "/_mock/script", &[], &script.to_string()).status,
        200
    );
    let r = post_json(p.addr, "/v1/messages", &[("x-api-key", key)], body);
    assert_eq!(r.status, 529);
    let list = request(p.addr, "GET", "/_mock/requests", &[], b"");
    let reqs: Vec<RecordedRequest> = serde_json::from_slice(&list.body).expect("requests json");
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[1].path, "/v1/messages?beta=true");
    assert_eq!(reqs[1].header("x-api-key"), Some(key));
    assert_eq!(reqs[1].body, body.as_bytes());
    assert_eq!(
        request(p.addr, "POST", "/_mock/reset", &[], b"").status,
        200
    );
    let list = request(p.addr, "GET", "/_mock/requests", &[], b"");
    assert_eq!(list.json(), json!([]));

    signal(&p, "-TERM");
    let status = wait_exit(&mut p);
    assert!(status.success(), "{status:?}");
    let mut logs = String::new();
    p.child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut logs)
        .expect("read logs");
    assert!(logs.contains("POST /v1/messages 401"), "{logs}");
    assert!(logs.contains("POST /v1/messages 200"), "{logs}");
    assert!(logs.contains("POST /v1/messages 529"), "{logs}");
    assert!(!logs.contains(key), "logs must not contain the key: {logs}");
    assert!(
        !logs.contains("private-prompt-text"),
        "logs must not contain bodies"
    );
    assert!(!logs.contains("beta=true"), "query strings are not logged");
}

#[test]
fn binary_stops_on_sigint_and_flag_key_wins() {
    let mut p = spawn(
        &["--api-key", "flag-key", "--quiet"],
        &[("MOCK_API_KEY", "env-key")],
    );
    let body = r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#;
    assert_eq!(
        post_json(p.addr, "/v1/messages", &[("x-api-key", "env-key")], body).status,
        401
    );
    assert_eq!(
        post_json(p.addr, "/v1/messages", &[("x-api-key", "flag-key")], body).status,
        200
    );
    signal(&p, "-INT");
    assert!(wait_exit(&mut p).success());
    let mut logs = String::new();
    p.child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut logs)
        .expect("read logs");
    assert!(
        !logs.contains("/v1/messages"),
        "--quiet logs no requests: {logs}"
    );
}

#[test]
fn binary_rejects_bad_arguments() {
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate-mock"))
        .args(["--listen", "not-an-address"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen not-an-address"));
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate-mock"))
        .arg("--bogus")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let help = Command::new(env!("CARGO_BIN_EXE_tollgate-mock"))
        .arg("--help")
        .output()
        .expect("run");
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--api-key"));
}
