//! Scenarios on the probe fixture: the host semantics themselves (headers, bodies, buffering,
//! local replies, properties, callouts, failures), independent of any product filter.

use tollgate_mock::{Reply, Script};

use super::{run_chain, ChainSpec, Req, Scenario};

fn probe_chain() -> ChainSpec {
    ChainSpec::new().filter("probe", "probe", "")
}

fn messages(stream: bool) -> Vec<u8> {
    serde_json::json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "stream": stream,
        "messages": [{"role": "user", "content": "hello gateway"}],
    })
    .to_string()
    .into_bytes()
}

fn reply() -> Option<Script> {
    Some(Script::reply(Reply::text(
        "Hello from the mock Claude API.",
    )))
}

/// An upstream error with a fixed body (the mock's own error bodies carry a fresh request id).
fn error_script(status: u16, kind: &str) -> Script {
    Script::json(
        status,
        serde_json::json!({"type": "error", "error": {"type": kind, "message": "upstream says no"}}),
    )
}

fn scenarios() -> Vec<Scenario> {
    let big: Vec<u8> = std::iter::repeat_n(b'a', 200 * 1024).collect();
    vec![
        Scenario::new("json passthrough", Req::post("/v1/messages", messages(false)), reply()),
        Scenario::new("sse passthrough", Req::post("/v1/messages", messages(true)), reply()),
        Scenario::new(
            "sse in odd network chunks",
            Req::post("/v1/messages", messages(true)),
            Some(Script::stream(Reply::text("split me across chunks please").delta_size(3)).chunk_size(7)),
        ),
        Scenario::new(
            "path with query string",
            Req::post("/v1/messages?beta=true", messages(false)).probe("get-property:request/path"),
            reply(),
        )
        .upstream_headers(&["x-probe-prop-request-path"]),
        Scenario::new(
            "request header add, replace, remove",
            Req::post("/v1/messages", messages(false))
                .probe("add:x-a=1; replace:x-b=new; remove:x-c; get:x-d; get:x-none")
                .header("x-b", "old")
                .header("x-c", "gone")
                .header("x-d", "dee"),
            reply(),
        )
        .upstream_headers(&["x-a", "x-b", "x-c", "x-probe-get-x-d", "x-probe-get-x-none"]),
        Scenario::new(
            "response header add, replace, remove",
            Req::post("/v1/messages", messages(false))
                .probe("resp-add:x-r=1; resp-replace:content-type=text/x-probe; resp-remove:request-id"),
            reply(),
        )
        .client_headers(&["x-r", "request-id"]),
        Scenario::new(
            "local reply at request headers with json",
            Req::post("/v1/messages", messages(false)).probe(r#"reply:403={"type":"error","error":{"type":"permission_error","message":"no"}}"#),
            None,
        )
        .client_headers(&["x-probe-reply", "content-length"]),
        Scenario::new(
            "local reply without content type is text/plain",
            Req::get("/v1/models").probe("reply-plain:401=who are you"),
            None,
        )
        .client_headers(&["content-length"]),
        Scenario::new(
            "local reply with empty body",
            Req::get("/v1/models").probe("reply-plain:429="),
            None,
        )
        .client_headers(&["content-length"]),
        Scenario::new(
            // Buffered: without the pause the body has already gone upstream when the reply is
            // sent, and whether the upstream saw it complete is a race in Envoy.
            "local reply at buffered request body",
            Req::post("/v1/messages", messages(false)).probe("buffer-request; reply-on-body:400"),
            None,
        ),
        Scenario::new(
            "local reply at response headers replaces the upstream answer",
            Req::post("/v1/messages", messages(false)).probe("reply-on-response:502"),
            reply(),
        ),
        Scenario::new(
            "request body rewritten in place",
            Req::post("/v1/messages", messages(false)).probe("upper-request"),
            Some(Script::json(200, serde_json::json!({"ok": true}))),
        ),
        Scenario::new(
            "buffered request body rewritten once",
            Req::post("/v1/messages", b"abcdefghij".to_vec())
                .probe("buffer-request; upper-request; report")
                .chunked(vec![b"abc".to_vec(), b"defg".to_vec(), b"hij".to_vec()]),
            Some(Script::json(200, serde_json::json!({"ok": true}))),
        )
        .client_headers(&["x-probe-body-total"]),
        Scenario::new(
            "body callbacks: data, then an empty end of stream",
            Req::post("/v1/messages", b"abcdefghij".to_vec()).probe("report"),
            Some(Script::json(200, serde_json::json!({"ok": true}))),
        )
        .client_headers(&["x-probe-body-calls"]),
        Scenario::new(
            "buffered body callbacks report the cumulative size",
            Req::post("/v1/messages", b"abcdefghij".to_vec()).probe("report; buffer-request"),
            Some(Script::json(200, serde_json::json!({"ok": true}))),
        )
        .client_headers(&["x-probe-body-calls"]),
        Scenario::new(
            "response body callbacks: data, then an empty end of stream",
            Req::post("/v1/messages", messages(false)).probe("mark-response"),
            Some(Script::json(200, serde_json::json!({"ok": true}))),
        ),
        Scenario::new(
            "large request body buffered",
            Req::post("/v1/messages", big.clone()).probe("buffer-request; report"),
            Some(Script::json(200, serde_json::json!({"ok": true}))),
        )
        .client_headers(&["x-probe-body-total"]),
        Scenario::new(
            "request over the buffer limit is 413",
            Req::post("/v1/messages", vec![b'x'; (1 << 20) + 4096]).probe("buffer-request"),
            None,
        ),
        Scenario::new(
            "request over the buffer limit passes when not buffered",
            Req::post("/v1/messages", vec![b'y'; (1 << 20) + 4096]),
            Some(Script::json(200, serde_json::json!({"ok": true}))),
        ),
        Scenario::new(
            "sse rewritten chunk by chunk",
            Req::post("/v1/messages", messages(true)).probe("upper-response"),
            Some(Script::stream(Reply::text("stream me").delta_size(4)).chunk_size(16)),
        )
        .client_headers(&["content-length"]),
        Scenario::new(
            "response buffered and rewritten once",
            Req::post("/v1/messages", messages(false)).probe("buffer-response"),
            reply(),
        ),
        Scenario::new(
            "upstream 429 passes through",
            Req::post("/v1/messages", messages(false)),
            Some(error_script(429, "rate_limit_error").header("retry-after", "7")),
        )
        .client_headers(&["retry-after"]),
        Scenario::new(
            "upstream 529 passes through",
            Req::post("/v1/messages", messages(false)),
            Some(error_script(529, "overloaded_error")),
        ),
        Scenario::new(
            "error event mid-stream passes through",
            Req::post("/v1/messages", messages(true)),
            Some(Script::stream(Reply::text("partial answer").error_after(3, "overloaded_error", "busy"))),
        ),
        Scenario::new(
            "gzip reply passes through untouched",
            Req::post("/v1/messages", messages(false)),
            Some(Script::reply(Reply::text("compressed")).gzip()),
        )
        .client_headers(&["content-encoding"]),
        Scenario::new(
            "filter state written and read back",
            Req::post("/v1/messages", messages(false))
                .probe("set-property:tollgate.subject=alice; get-property:tollgate.subject; get-property:plugin_name; get-property:request/method"),
            reply(),
        )
        .upstream_headers(&["x-probe-prop-tollgate-subject", "x-probe-prop-plugin_name", "x-probe-prop-request-method"]),
        Scenario::new(
            "callout to an unknown cluster is refused",
            Req::post("/v1/messages", messages(false)).probe("callout:no-such-cluster=500"),
            reply(),
        )
        .upstream_headers(&["x-probe-callout"]),
        Scenario::new(
            "callout without :path is refused",
            Req::post("/v1/messages", messages(false)).probe("callout-no-path:idp"),
            reply(),
        )
        .upstream_headers(&["x-probe-callout"]),
        Scenario::new(
            "empty POST body",
            Req::post("/v1/messages", Vec::new()).probe("report"),
            Some(Script::json(400, serde_json::json!({"type": "error"}))),
        )
        .client_headers(&["x-probe-body-total"]),
        Scenario::new(
            "environment is not visible without host_env_keys",
            Req::post("/v1/messages", messages(false)).probe("env:HOME"),
            reply(),
        )
        .upstream_headers(&["x-probe-env-home"]),
    ]
}

#[test]
fn probe_scenarios_agree() {
    let scenarios = scenarios();
    let results = run_chain(&probe_chain(), &scenarios);
    // A few facts worth pinning explicitly (both hosts agreed on them above).
    let by_name = |name: &str| {
        let i = scenarios.iter().position(|s| s.name == name).unwrap();
        &results[i].1
    };
    assert_eq!(by_name("request over the buffer limit is 413").status, 413);
    assert_eq!(
        by_name("request over the buffer limit is 413").text(),
        "Payload Too Large"
    );
    assert_eq!(
        by_name("local reply without content type is text/plain").header("content-type"),
        Some("text/plain")
    );
    assert_eq!(
        by_name("local reply at request headers with json").header("content-type"),
        Some("application/json")
    );
    assert_eq!(
        by_name("callout to an unknown cluster is refused").status,
        200
    );
}

#[test]
fn chain_order_and_local_reply_skipping_agree() {
    let chain =
        ChainSpec::new()
            .filter("probe-outer", "probe", "")
            .filter("probe-inner", "probe", "");
    run_chain(
        &chain,
        &[
            Scenario::new(
                "both filters edit request and response headers in order",
                Req::post("/v1/messages", messages(false))
                    .probe("add:x-order=req; resp-add:x-order=resp; get-property:plugin_name"),
                reply(),
            )
            .client_headers(&["x-order"])
            .upstream_headers(&["x-order", "x-probe-prop-plugin_name"]),
            Scenario::new(
                "filter state crosses VMs",
                Req::post("/v1/messages", messages(false))
                    .probe("set-property:tollgate.groups=agents; get-property:tollgate.groups"),
                reply(),
            )
            .upstream_headers(&["x-probe-prop-tollgate-groups"]),
            Scenario::new(
                "a local reply from the first filter skips the second",
                Req::get("/v1/models").probe("reply-plain:403=stop; resp-add:x-seen=1"),
                None,
            )
            .client_headers(&["x-seen"]),
        ],
    );
}

#[test]
fn a_panic_at_request_headers_fails_closed_on_both_hosts() {
    let results = run_chain(
        &probe_chain(),
        &[
            Scenario::new(
                "panic in request headers",
                Req::post("/v1/messages", messages(false)).probe("panic:request-headers"),
                None,
            ),
            Scenario::new(
                "the failed VM keeps failing",
                Req::post("/v1/messages", messages(false)),
                None,
            ),
        ],
    );
    assert_eq!(results[0].1.status, 503);
    assert!(results[0].0.failure.is_some());
}
