//! The harness's own tests: every hostcall the Rust SDK uses, success and error paths, through
//! the probe fixture filter (`harness/probe`), asserting outcomes only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;
use std::time::Duration;

use tollgate_harness::{
    artifact, CalloutReply, FilterSpec, Gateway, HarnessError, Host, LogLevel, Outcome, Request,
    Upstream,
};

fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| Host::new().expect("engine"))
}

/// The probe under Envoy's default (`allow_on_headers_stop_iteration` off): a header `Pause`
/// stops everything, which most tests here rely on; the StopIteration mode has its own test.
fn probe() -> FilterSpec {
    FilterSpec::new(artifact("probe"))
        .name("probe")
        .allow_on_headers_stop_iteration(false)
}

fn gateway(spec: FilterSpec) -> Gateway {
    Gateway::builder(host())
        .filter(spec)
        .cluster("idp")
        .build()
        .expect("probe starts")
}

fn ok_upstream() -> Upstream {
    Upstream::new(200)
        .header("content-type", "text/plain")
        .body("hello from upstream")
}

fn run(gw: &mut Gateway, commands: &str) -> Outcome {
    gw.run(
        Request::post("/v1/messages")
            .header("x-probe", commands)
            .body("{}"),
        ok_upstream(),
    )
}

fn upstream_header(out: &Outcome, name: &str) -> Option<String> {
    out.upstream.as_ref().and_then(|u| u.header(name))
}

#[test]
fn passthrough_delivers_request_and_response_intact() {
    let mut gw = gateway(probe());
    let out = gw.run(
        Request::post("/v1/messages?beta=true")
            .header("authorization", "Bearer t")
            .chunks(vec![b"ab".to_vec(), b"cd".to_vec()]),
        Upstream::new(201)
            .header("x-up", "1")
            .chunks(vec![b"x".to_vec(), b"yz".to_vec()]),
    );
    let up = out.upstream.as_ref().expect("reached upstream");
    assert!(up.complete);
    assert_eq!(up.body, b"abcd");
    assert_eq!(
        up.header(":path").as_deref(),
        Some("/v1/messages?beta=true")
    );
    assert_eq!(up.header("authorization").as_deref(), Some("Bearer t"));
    assert_eq!(out.client.status, 201);
    assert_eq!(out.client.header("x-up").as_deref(), Some("1"));
    assert_eq!(out.client.chunks, vec![b"x".to_vec(), b"yz".to_vec()]);
    assert!(!out.client.local_reply);
    assert_eq!(out.failure, None);
    assert_eq!(gw.metric("probe_requests"), Some(1));
    assert_eq!(
        gw.metric("probe_streams_logged"),
        Some(1),
        "on_log ran at stream end"
    );
}

#[test]
fn header_map_calls_follow_envoy() {
    let mut gw = gateway(probe());
    let out = gw.run(
        Request::post("/v1/messages")
            .header("x-probe", "add:x-a=1; add:x-a=2; replace:x-b=new; remove:x-c; remove:x-missing; get:x-d; get:x-none; get:x-empty")
            .header("x-b", "old")
            .header("x-b", "older")
            .header("x-c", "gone")
            .header("x-d", "dee")
            .header("x-empty", ""),
        ok_upstream(),
    );
    let up = out.upstream.expect("upstream");
    assert_eq!(up.headers.get_all("x-a"), vec![&b"1"[..], &b"2"[..]]);
    assert_eq!(
        up.headers.get_all("x-b"),
        vec![&b"new"[..]],
        "replace drops other values"
    );
    assert_eq!(up.header("x-c"), None);
    assert_eq!(up.header("x-probe-get-x-d").as_deref(), Some("some:dee"));
    assert_eq!(up.header("x-probe-get-x-none").as_deref(), Some("none"));
    assert_eq!(
        up.header("x-probe-get-x-empty").as_deref(),
        Some("some:"),
        "empty is not missing"
    );
}

#[test]
fn set_header_map_pairs_replaces_the_map() {
    let mut gw = gateway(probe());
    let out = run(&mut gw, "set-pairs:x-only=1");
    let up = out.upstream.expect("upstream");
    assert_eq!(up.header(":path").as_deref(), Some("/replaced"));
    assert_eq!(up.header("x-only").as_deref(), Some("1"));
    assert_eq!(up.header("x-probe"), None);
}

#[test]
fn header_names_are_serialized_in_order() {
    let mut gw = gateway(probe());
    let out = gw.run(
        Request::get("/v1/models")
            .header("x-probe", "echo-headers")
            .header("x-z", "1"),
        ok_upstream(),
    );
    assert_eq!(
        upstream_header(&out, "x-probe-names").as_deref(),
        Some(":method,:path,:authority,:scheme,x-probe,x-z")
    );
}

#[test]
fn properties_cover_request_plugin_and_filter_state_across_vms() {
    let mut gw = Gateway::builder(host())
        .filter(probe().name("first"))
        .filter(probe().name("second"))
        .build()
        .unwrap();
    // Both probes run every command: the first writes filter state before the second reads it.
    let out = run(
        &mut gw,
        "set-property:tollgate.subject=alice; get-property:tollgate.subject; get-property:request/path; get-property:plugin_name; get-property:nope",
    );
    assert_eq!(out.property("tollgate.subject").as_deref(), Some("alice"));
    let up = out.upstream.expect("upstream");
    let seen: Vec<_> = up.headers.get_all("x-probe-prop-tollgate-subject");
    assert_eq!(seen, vec![&b"alice"[..], &b"alice"[..]]);
    assert_eq!(
        up.header("x-probe-prop-request-path").as_deref(),
        Some("/v1/messages")
    );
    assert_eq!(
        up.headers.get_all("x-probe-prop-plugin_name"),
        vec![&b"first"[..], &b"second"[..]]
    );
    assert_eq!(up.header("x-probe-prop-nope").as_deref(), Some("none"));
}

#[test]
fn filter_state_is_per_stream() {
    let mut gw = gateway(probe());
    let first = run(&mut gw, "set-property:tollgate.subject=alice");
    assert_eq!(first.property("tollgate.subject").as_deref(), Some("alice"));
    let second = run(&mut gw, "get-property:tollgate.subject");
    assert_eq!(second.property("tollgate.subject"), None);
    assert_eq!(
        upstream_header(&second, "x-probe-prop-tollgate-subject").as_deref(),
        Some("none")
    );
}

#[test]
fn response_code_property_is_an_integer() {
    let mut gw = gateway(probe());
    let out = run(&mut gw, "get-property:response/code");
    assert_eq!(
        upstream_header(&out, "x-probe-prop-response-code").as_deref(),
        Some("none"),
        "no response yet"
    );
}

#[test]
fn shared_data_has_cas_semantics_per_vm_id() {
    let mut gw = Gateway::builder(host())
        .filter(probe().name("a").vm_id("shared"))
        .filter(probe().name("b").vm_id("shared"))
        .filter(probe().name("c").vm_id("other"))
        .build()
        .unwrap();
    let out = run(&mut gw, "shared-get:k");
    assert_eq!(
        out.upstream.unwrap().headers.get_all("x-probe-shared-k"),
        vec![&b"none"[..]; 3]
    );
    // Only the first VM writes; the second (same vm id) sees it, the third does not.
    let mut gw = Gateway::builder(host())
        .filter(probe().name("a").vm_id("shared"))
        .build()
        .unwrap();
    run(&mut gw, "shared-set:k=v1");
    let (value, cas) = gw.shared_data("shared", "k").expect("written");
    assert_eq!(value, b"v1");
    let out = run(
        &mut gw,
        &format!(
            "shared-cas:k=v2@{}; shared-cas:k=v3@{}; shared-get:k",
            cas, cas
        ),
    );
    let up = out.upstream.unwrap();
    assert_eq!(
        up.headers.get_all("x-probe-cas-k"),
        vec![&b"ok"[..], &b"mismatch"[..]]
    );
    let got = up.header("x-probe-shared-k").unwrap();
    assert!(got.starts_with("v2@"), "{got}");
    assert_ne!(got, format!("v2@{cas}"), "every write gets a new cas");
    assert_eq!(gw.shared_data("other", "k"), None);
}

#[test]
fn shared_data_write_with_cas_zero_always_wins() {
    let mut gw = gateway(probe().vm_id("z"));
    run(&mut gw, "shared-set:k=1; shared-set:k=2");
    assert_eq!(gw.shared_data("z", "k").unwrap().0, b"2");
}

#[test]
fn shared_queues_notify_their_owner_after_the_callback() {
    let mut gw = gateway(probe().vm_id("q").config(r#"{"queue":"probe"}"#));
    let out = run(
        &mut gw,
        "enqueue:q=item-1; enqueue:q=item-2; enqueue:missing-vm=x; dequeue-missing",
    );
    let up = out.upstream.unwrap();
    assert_eq!(
        up.headers.get_all("x-probe-enqueue"),
        vec![&b"ok"[..], &b"ok"[..], &b"unresolved"[..]]
    );
    assert_eq!(up.header("x-probe-dequeue").as_deref(), Some("not-found"));
    assert_eq!(gw.metric("probe_queue_items"), Some(2));
    assert_eq!(gw.shared_data("q", "queue_last").unwrap().0, b"item-2");
}

#[test]
fn metrics_counters_gauges_histograms() {
    let mut gw = gateway(probe());
    let out = run(
        &mut gw,
        "count:c1; count:c1; gauge:g1=10; histogram:h1=42; counter-decrement:c1",
    );
    let up = out.upstream.unwrap();
    assert_eq!(gw.metric("c1"), Some(2), "decrement refused");
    assert_eq!(
        up.header("x-probe-counter-decrement").as_deref(),
        Some("bad-argument")
    );
    assert_eq!(up.header("x-probe-gauge").as_deref(), Some("9"));
    assert_eq!(gw.metric("g1"), Some(9));
    assert_eq!(gw.histogram("h1"), Some(vec![42]));
    assert_eq!(
        up.header("x-probe-histogram-increment").as_deref(),
        Some("bad-argument")
    );
    assert_eq!(gw.metric("never"), None);
}

#[test]
fn logs_are_captured_with_level_and_filter() {
    let mut gw = gateway(probe());
    let out = run(
        &mut gw,
        "log:warn=careful; log:error=broken; log:debug=details; print:to stdout",
    );
    assert!(out.logged(LogLevel::Warn, "careful"));
    assert!(out.logged(LogLevel::Error, "broken"));
    assert!(
        !out.logged(LogLevel::Info, "details"),
        "debug is below info"
    );
    assert!(out.logged(LogLevel::Debug, "details"));
    assert!(
        out.logged(LogLevel::Info, "to stdout"),
        "WASI stdout is captured"
    );
    assert!(out.logs.iter().all(|l| l.filter == "probe"));
}

#[test]
fn clock_is_controlled_for_proxy_and_wasi_time() {
    let start = std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut gw = Gateway::builder(host())
        .filter(probe())
        .start_time(start)
        .build()
        .unwrap();
    let out = run(&mut gw, "time");
    assert_eq!(
        upstream_header(&out, "x-probe-time").as_deref(),
        Some("1800000000")
    );
    assert_eq!(
        upstream_header(&out, "x-probe-wasi-time").as_deref(),
        Some("1800000000")
    );
    gw.advance(Duration::from_secs(90));
    let out = run(&mut gw, "time");
    assert_eq!(
        upstream_header(&out, "x-probe-time").as_deref(),
        Some("1800000090")
    );
}

#[test]
fn environment_is_per_vm() {
    let mut gw = Gateway::builder(host())
        .filter(probe().name("with").env("UPSTREAM_KEY", "sk-test"))
        .filter(probe().name("without"))
        .build()
        .unwrap();
    let out = run(&mut gw, "env:UPSTREAM_KEY; random");
    let up = out.upstream.unwrap();
    assert_eq!(
        up.headers.get_all("x-probe-env-upstream_key"),
        vec![&b"sk-test"[..], &b"unset"[..]]
    );
    assert_eq!(up.header("x-probe-random").as_deref(), Some("ok"));
}

#[test]
fn callout_answer_resumes_the_paused_request() {
    let mut gw = gateway(probe());
    gw.script_callout("idp", CalloutReply::ok(200, "keys").header("x-k", "1"));
    let out = run(&mut gw, "callout:idp=1000");
    assert_eq!(
        upstream_header(&out, "x-probe-callout").as_deref(),
        Some("200:keys")
    );
    assert_eq!(out.callouts.len(), 1);
    let call = &out.callouts[0];
    assert_eq!(call.cluster, "idp");
    assert_eq!(call.body, b"ping");
    assert_eq!(call.headers.get_str(":path").as_deref(), Some("/keys"));
    assert_eq!(call.timeout, Duration::from_millis(1000));
    assert_eq!(out.client.status, 200);
}

#[test]
fn callout_failures_and_timeouts_arrive_as_empty_answers() {
    let mut gw = gateway(probe());
    gw.script_callout("idp", CalloutReply::fail());
    let before = gw.now();
    let out = run(&mut gw, "callout:idp=1000");
    assert_eq!(
        upstream_header(&out, "x-probe-callout").as_deref(),
        Some("failed")
    );
    assert_eq!(gw.now(), before, "a failure is immediate");

    gw.script_callout("idp", CalloutReply::timeout());
    let out = run(&mut gw, "callout:idp=2500");
    assert_eq!(
        upstream_header(&out, "x-probe-callout").as_deref(),
        Some("failed")
    );
    assert_eq!(
        gw.now().duration_since(before).unwrap(),
        Duration::from_millis(2500),
        "the timeout elapsed on the controlled clock"
    );

    // Unscripted calls time out too.
    let out = run(&mut gw, "callout:idp=100");
    assert_eq!(
        upstream_header(&out, "x-probe-callout").as_deref(),
        Some("failed")
    );

    // An answer slower than the timeout is a timeout.
    gw.script_callout(
        "idp",
        CalloutReply::ok(200, "late").delay(Duration::from_secs(5)),
    );
    let out = run(&mut gw, "callout:idp=1000");
    assert_eq!(
        upstream_header(&out, "x-probe-callout").as_deref(),
        Some("failed")
    );

    gw.script_callout(
        "idp",
        CalloutReply::ok(200, "slow").delay(Duration::from_millis(300)),
    );
    let out = run(&mut gw, "callout:idp=1000");
    assert_eq!(
        upstream_header(&out, "x-probe-callout").as_deref(),
        Some("200:slow")
    );
}

#[test]
fn callout_bad_arguments() {
    let mut gw = gateway(probe());
    let out = run(&mut gw, "callout:unknown-cluster=100");
    assert_eq!(
        upstream_header(&out, "x-probe-callout").as_deref(),
        Some("bad-argument")
    );
    let out = run(&mut gw, "callout-no-path:idp");
    assert_eq!(
        upstream_header(&out, "x-probe-callout").as_deref(),
        Some("bad-argument")
    );
    assert!(out.callouts.is_empty());
}

#[test]
fn local_reply_from_a_callout_answer() {
    let mut gw = gateway(probe());
    gw.script_callout("idp", CalloutReply::fail());
    let out = run(&mut gw, "callout:idp=100; reply-on-callout-failure");
    assert_eq!(out.client.status, 503);
    assert_eq!(
        out.client.header("x-probe-reply").as_deref(),
        Some("callout-failed")
    );
    assert!(out.upstream.is_none());
}

#[test]
fn root_context_callouts_at_configure_are_delivered() {
    let gw = Gateway::builder(host())
        .filter(probe().vm_id("r").config(r#"{"cluster":"idp"}"#))
        .cluster("idp");
    let mut gw = gw.build().unwrap();
    // Unscripted at configure time: the answer (a timeout) arrives once the clock moves on.
    gw.advance(Duration::from_secs(6));
    assert_eq!(gw.shared_data("r", "root_callout").unwrap().0, b":0");
}

#[test]
fn ticks_fire_on_the_controlled_clock_and_can_resume_streams() {
    let mut gw = gateway(probe().config(r#"{"tick_ms":1000}"#));
    gw.advance(Duration::from_millis(3500));
    assert_eq!(gw.metric("probe_ticks"), Some(3));
    let before = gw.now();
    let out = run(&mut gw, "resume-on-tick");
    assert_eq!(out.client.status, 200, "{:?}", out.failure);
    assert!(out.upstream.unwrap().complete);
    let waited = gw.now().duration_since(before).unwrap();
    assert!(waited <= Duration::from_millis(1000), "{waited:?}");
}

#[test]
fn with_stop_iteration_a_header_pause_still_delivers_the_body() {
    // Envoy's `allow_on_headers_stop_iteration`: the headers are held, the body reaches the
    // filter, and the probe's body callback (Continue) releases headers, then body.
    let mut gw = gateway(probe().allow_on_headers_stop_iteration(true));
    let out = run(&mut gw, "pause");
    assert_eq!(out.client.status, 200, "{:?}", out.failure);
    let up = out.upstream.expect("headers and body went on");
    assert!(up.complete);
    assert_eq!(up.body, b"{}");
    // Without a body nothing continues the held headers: the stream stalls as before.
    let out = gw.run(Request::get("/").header("x-probe", "pause"), ok_upstream());
    assert!(out.upstream.is_none());
    assert!(out.failure.unwrap_or_default().contains("stalled"));
}

#[test]
fn a_request_paused_forever_stalls_visibly() {
    let mut gw = gateway(probe());
    let out = run(&mut gw, "pause");
    assert!(out.upstream.is_none());
    assert!(out.failure.unwrap().contains("stalled"));
}

#[test]
fn body_buffering_reports_cumulative_sizes_and_forwards_once() {
    let mut gw = gateway(probe());
    let out = gw.run(
        Request::post("/v1/messages")
            .header("x-probe", "buffer-request; upper-request")
            .chunks(vec![
                b"abcde".to_vec(),
                b"fghij".to_vec(),
                b"klmno".to_vec(),
            ]),
        ok_upstream(),
    );
    assert_eq!(
        out.property("probe.request_body_sizes").as_deref(),
        Some("5,10,15,15"),
        "Envoy's HTTP/1 codec ends the body with an empty end-of-stream callback"
    );
    assert_eq!(out.upstream.unwrap().body, b"ABCDEFGHIJKLMNO");
}

#[test]
fn streaming_body_sees_each_chunk() {
    let mut gw = gateway(probe());
    let out = gw.run(
        Request::post("/v1/messages")
            .header("x-probe", "append-request")
            .chunks(vec![b"ab".to_vec(), b"cd".to_vec()]),
        ok_upstream(),
    );
    assert_eq!(
        out.property("probe.request_body_sizes").as_deref(),
        Some("2,2,0")
    );
    assert_eq!(
        out.upstream.unwrap().body,
        b"ab+appendedcd+appended+appended"
    );
}

#[test]
fn body_write_in_the_middle_is_refused_and_fails_the_stream() {
    let mut gw = gateway(probe());
    let out = gw.run(
        Request::post("/v1/messages")
            .header("x-probe", "bad-offset-request")
            .body("abc"),
        ok_upstream(),
    );
    assert!(out.failure.is_some());
    assert_eq!(out.client.status, 503);
    assert!(
        !out.upstream.unwrap().complete,
        "the body never reached the upstream"
    );
}

#[test]
fn request_buffer_limit_gives_413() {
    let mut gw = Gateway::builder(host())
        .filter(probe())
        .buffer_limit(10)
        .build()
        .unwrap();
    let out = gw.run(
        Request::post("/v1/messages")
            .header("x-probe", "buffer-request")
            .chunks(vec![
                b"123456".to_vec(),
                b"789012".to_vec(),
                b"end".to_vec(),
            ]),
        ok_upstream(),
    );
    assert_eq!(out.client.status, 413);
    assert!(out.client.local_reply);
    assert_eq!(out.client.text(), "Payload Too Large");
    assert!(!out.upstream.unwrap().complete);
}

#[test]
fn response_buffer_overflow_after_headers_went_downstream_resets() {
    let mut gw = Gateway::builder(host())
        .filter(probe())
        .buffer_limit(10)
        .build()
        .unwrap();
    let out = gw.run(
        Request::get("/v1/models").header("x-probe", "buffer-response"),
        Upstream::new(200).chunks(vec![
            b"123456".to_vec(),
            b"789012".to_vec(),
            b"end".to_vec(),
        ]),
    );
    // The probe let the response headers through, so Envoy can no longer answer 500: it resets.
    assert_eq!(out.client.status, 200);
    assert!(out.client.reset);
    assert!(out.client.body.is_empty());
}

#[test]
fn local_reply_at_request_headers_never_reaches_upstream() {
    let mut gw = gateway(probe());
    let out = run(&mut gw, r#"reply:403={"type":"error"}"#);
    assert!(out.upstream.is_none());
    assert_eq!(out.client.status, 403);
    assert!(out.client.local_reply);
    assert_eq!(out.client.text(), r#"{"type":"error"}"#);
    assert_eq!(out.client.header("x-probe-reply").as_deref(), Some("yes"));
    assert_eq!(
        out.client.headers.get_all("content-type"),
        vec![&b"application/json"[..]]
    );
    assert_eq!(out.client.header("content-length").as_deref(), Some("16"));
    // The local reply runs through the response callbacks of the filter that saw the request.
    assert_eq!(out.property("probe.seen_status").as_deref(), Some("403"));
}

#[test]
fn local_reply_skips_filters_that_never_saw_the_request() {
    let mut gw = Gateway::builder(host())
        .filter(probe().name("first"))
        .filter(probe().name("second"))
        .build()
        .unwrap();
    let out = gw.run(
        Request::get("/v1/models").header("x-probe", "reply:401=no; resp-add:x-seen=1"),
        ok_upstream(),
    );
    assert_eq!(out.client.status, 401);
    assert_eq!(
        gw.metric("probe_requests"),
        Some(1),
        "the second filter never ran"
    );
    assert_eq!(out.client.headers.get_all("x-seen").len(), 1);
}

#[test]
fn local_reply_at_request_body_cuts_the_upstream_request() {
    let mut gw = gateway(probe());
    let out = gw.run(
        Request::post("/v1/messages")
            .header("x-probe", "reply-on-body:400")
            .body("bad"),
        ok_upstream(),
    );
    assert_eq!(out.client.status, 400);
    assert_eq!(out.client.text(), "blocked at body");
    assert_eq!(
        out.client.header("content-type").as_deref(),
        Some("text/plain")
    );
    // The trap Envoy sets: the data arrived without end of stream and the probe let it pass, so
    // only the end of stream was held back. A filter that must see the whole body pauses.
    let up = out.upstream.expect("headers went upstream");
    assert!(!up.complete);
    assert_eq!(up.body, b"bad");
}

#[test]
fn local_reply_at_response_headers_replaces_the_response() {
    let mut gw = gateway(probe());
    let out = run(&mut gw, "reply-on-response:502");
    assert_eq!(out.client.status, 502);
    assert_eq!(out.client.text(), "replaced");
    assert!(out.upstream.unwrap().complete);
}

#[test]
fn response_edits_and_chunk_rewrites() {
    let mut gw = gateway(probe());
    let out = gw.run(
        Request::get("/v1/models").header(
            "x-probe",
            "resp-add:x-a=1; resp-replace:x-b=2; resp-remove:x-c; upper-response",
        ),
        Upstream::new(200)
            .header("x-b", "old")
            .header("x-c", "bye")
            .header("content-length", "6")
            .chunks(vec![b"abc".to_vec(), b"def".to_vec()]),
    );
    assert_eq!(out.client.header("x-a").as_deref(), Some("1"));
    assert_eq!(out.client.header("x-b").as_deref(), Some("2"));
    assert_eq!(out.client.header("x-c"), None);
    assert_eq!(out.client.header("content-length"), None);
    assert_eq!(out.client.chunks, vec![b"ABC".to_vec(), b"DEF".to_vec()]);
}

#[test]
fn buffered_response_is_emitted_once() {
    let mut gw = gateway(probe());
    let out = gw.run(
        Request::get("/v1/models").header("x-probe", "buffer-response"),
        Upstream::new(200).chunks(vec![b"abc".to_vec(), b"def".to_vec()]),
    );
    assert_eq!(out.client.chunks, vec![b"ABCDEF".to_vec()]);
}

#[test]
fn chain_runs_requests_in_order_and_responses_reversed() {
    let mut gw = Gateway::builder(host())
        .filter(probe().name("outer"))
        .filter(probe().name("inner"))
        .build()
        .unwrap();
    let out = gw.run(
        Request::get("/v1/models").header(
            "x-probe",
            "add:x-order=req; resp-add:x-order=resp; log:info=seen",
        ),
        ok_upstream(),
    );
    let filters: Vec<&str> = out
        .logs
        .iter()
        .filter(|l| l.message == "seen")
        .map(|l| l.filter.as_str())
        .collect();
    assert_eq!(filters, vec!["outer", "inner"]);
    assert_eq!(out.upstream.unwrap().headers.get_all("x-order").len(), 2);
    assert_eq!(out.client.headers.get_all("x-order").len(), 2);
}

#[test]
fn trailers_pass_and_are_counted() {
    let mut gw = gateway(probe());
    let out = gw.run(
        Request::post("/v1/messages")
            .header("x-probe", "none")
            .body("x")
            .trailer("x-t", "1"),
        Upstream::new(200)
            .body("y")
            .trailer("x-u", "2")
            .trailer("x-v", "3"),
    );
    assert_eq!(out.property("probe.request_trailers").as_deref(), Some("1"));
    assert_eq!(
        out.property("probe.response_trailers").as_deref(),
        Some("2")
    );
    let up = out.upstream.unwrap();
    assert_eq!(up.trailers.unwrap().get_str("x-t").as_deref(), Some("1"));
    assert_eq!(out.client.trailers.unwrap().len(), 2);
}

#[test]
fn a_panic_fails_the_stream_closed_and_the_vm_stays_failed() {
    let mut gw = gateway(probe());
    let out = run(&mut gw, "panic:request-headers");
    assert_eq!(out.client.status, 503);
    assert!(out.client.local_reply);
    assert!(out.upstream.is_none());
    assert!(out.failure.as_deref().unwrap().contains("panicked"));
    assert!(
        out.logged(LogLevel::Critical, "told to panic"),
        "{:?}",
        out.logs
    );
    assert!(gw.vm_failure("probe").is_some());
    // Like Envoy, a failed VM fails every later stream closed.
    let next = run(&mut gw, "");
    assert_eq!(next.client.status, 503);
    assert!(next.upstream.is_none());
}

#[test]
fn a_panic_after_the_response_started_resets_the_stream() {
    let mut gw = gateway(probe());
    let out = run(&mut gw, "panic:response-body");
    assert_eq!(out.client.status, 200);
    assert!(out.client.reset);
    assert!(
        out.client.body.is_empty(),
        "no unchecked bytes reached the client"
    );
}

#[test]
fn an_endless_loop_runs_out_of_fuel() {
    let mut gw = gateway(probe().fuel(50_000_000));
    let out = run(&mut gw, "loop");
    assert_eq!(out.client.status, 503);
    assert!(out.failure.unwrap().contains("fuel"));
}

#[test]
fn an_unmetered_host_ignores_the_fuel_budget() {
    // A budget far too small for one callback: the metered host fails the stream, the
    // unmetered one (benchmarks) runs the filter as Envoy would.
    let tiny = || probe().fuel(1_000);
    let metered = Gateway::builder(host()).filter(tiny()).build();
    assert!(
        metered.is_err(),
        "the metered host must run out of fuel while starting the VM"
    );
    let unmetered = Host::unmetered().expect("engine");
    let mut gw = Gateway::builder(&unmetered)
        .filter(tiny())
        .build()
        .expect("probe starts unmetered");
    let out = run(&mut gw, "");
    assert_eq!(out.client.status, 200, "{:?}", out.failure);
    assert_eq!(out.client.body, b"hello from upstream");
}

#[test]
fn memory_is_limited() {
    let mut gw = gateway(probe().memory_limit(64 << 20));
    let out = run(&mut gw, "alloc-mb:2");
    assert_eq!(
        upstream_header(&out, "x-probe-alloc").as_deref(),
        Some("2097152")
    );
    let out = run(&mut gw, "alloc-mb:100");
    assert_eq!(out.client.status, 503);
    assert!(out.failure.is_some());
}

#[test]
fn close_stream_resets() {
    let mut gw = gateway(probe());
    let out = run(&mut gw, "close");
    assert!(out.client.reset);
    assert!(out.upstream.is_none());
}

#[test]
fn configuration_errors_are_reported_with_logs() {
    let err = Gateway::builder(host())
        .filter(probe().config(r#"{"fail_configure":true}"#))
        .build()
        .err()
        .expect("refused");
    assert!(matches!(err, HarnessError::Configure { .. }), "{err}");
    assert!(err.to_string().contains("told to refuse"), "{err}");

    let err = Gateway::new(host(), vec![probe().config("{not json")])
        .err()
        .unwrap();
    assert!(err.to_string().contains("bad configuration"), "{err}");

    let err = Gateway::new(host(), vec![probe().vm_config("fail")])
        .err()
        .unwrap();
    assert!(matches!(err, HarnessError::VmStart { .. }), "{err}");

    let err = Gateway::new(host(), vec![FilterSpec::new("/nonexistent/x.wasm")])
        .err()
        .unwrap();
    assert!(err.to_string().contains("make wasm"), "{err}");
}

#[test]
fn concurrent_streams_wait_on_one_callout_each() {
    let mut gw = gateway(probe());
    for n in 0..3 {
        gw.script_callout(
            "idp",
            CalloutReply::ok(200, format!("k{n}")).delay(Duration::from_millis(10)),
        );
    }
    let outs = gw.run_concurrently(
        (0..3)
            .map(|_| {
                (
                    Request::get("/v1/models").header("x-probe", "callout:idp=1000"),
                    ok_upstream(),
                )
            })
            .collect(),
    );
    let mut bodies: Vec<String> = outs
        .iter()
        .map(|o| upstream_header(o, "x-probe-callout").unwrap())
        .collect();
    bodies.sort();
    assert_eq!(bodies, vec!["200:k0", "200:k1", "200:k2"]);
}

#[test]
fn request_without_body_ends_at_headers() {
    let mut gw = gateway(probe());
    let out = gw.run(
        Request::get("/v1/models").header("x-probe", "none"),
        Upstream::new(204),
    );
    assert_eq!(
        out.property("probe.request_body_sizes"),
        None,
        "no body callback"
    );
    assert_eq!(out.client.status, 204);
    assert!(out.client.body.is_empty());
}

#[test]
fn route_cluster_property_is_what_the_builder_set() {
    let mut gw = Gateway::builder(host())
        .filter(probe())
        .route_cluster("upstream")
        .build()
        .unwrap();
    let out = run(&mut gw, "get-property:xds/cluster_name");
    assert_eq!(
        upstream_header(&out, "x-probe-prop-xds-cluster_name").as_deref(),
        Some("upstream")
    );
    let mut gw = gateway(probe());
    let out = run(&mut gw, "get-property:xds/cluster_name");
    assert_eq!(
        upstream_header(&out, "x-probe-prop-xds-cluster_name").as_deref(),
        Some("none")
    );
}
