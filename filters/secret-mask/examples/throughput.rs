//! Measures masking throughput natively (a development aid; `cargo run --release --example
//! throughput -p tollgate-secret-mask`): the streaming matcher over prose-like text with a
//! secret every ~4 KiB, in 1 KiB feeds, and the whole SSE rewriter over a Messages stream.

use std::rc::Rc;
use std::time::Instant;

use tollgate_secret_mask::config::load;
use tollgate_secret_mask::matcher::{Stats, TextMasker};
use tollgate_secret_mask::rewrite::SseRewriter;

fn main() {
    let rules = match load(b"{}", &|_| None) {
        Ok(c) => c.rules,
        Err(e) => {
            eprintln!("{e}");
            return;
        }
    };
    let para = "The quick brown fox jumps over the lazy dog; see src/main.rs for the \
        `ask-ant` helper, task-runner and e.g. AKIA docs. Set eyJ-style tokens aside, x = 42.\n";
    let mut text = String::new();
    while text.len() < 8 << 20 {
        for _ in 0..30 {
            text.push_str(para);
        }
        text.push_str("key: AKIAZ2MQ4JXLS7RT5WHB and ghp_0123456789abcdefABCDEF0123456789abcd\n");
    }
    // Streaming matcher.
    let mut best = f64::MAX;
    let mut masked = 0;
    for _ in 0..5 {
        let mut m = TextMasker::new(Rc::clone(&rules));
        let mut st = Stats::default();
        let t = Instant::now();
        let mut out_len = 0;
        let bytes = text.as_bytes();
        let mut at = 0;
        while at < bytes.len() {
            let mut end = (at + 1024).min(bytes.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            out_len += m.feed(&text[at..end], &mut st).len();
            at = end;
        }
        out_len += m.finish(&mut st).len();
        best = best.min(t.elapsed().as_secs_f64());
        masked = st.total();
        assert!(out_len > 0);
    }
    println!(
        "matcher: {:.1} MB/s ({} bytes, {} secrets masked)",
        text.len() as f64 / best / 1e6,
        text.len(),
        masked
    );
    // SSE rewriter: deltas of ~20 bytes in the API's layout, 4 KiB network chunks.
    let mut sse = String::new();
    let mut i = 0;
    while i < text.len().min(4 << 20) {
        let mut end = (i + 20).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        // The API's layout (type, index, delta), as the upstream sends it.
        let t = serde_json::Value::from(&text[i..end]);
        sse.push_str(&format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":{t}}}}}\n\n"
        ));
        i = end;
    }
    let mut best = f64::MAX;
    for _ in 0..3 {
        let mut rw = SseRewriter::new(Rc::clone(&rules), 1 << 20);
        let mut out = Vec::new();
        let t = Instant::now();
        for chunk in sse.as_bytes().chunks(4096) {
            if rw.feed(chunk, &mut out).is_err() {
                eprintln!("rewriter failed");
                return;
            }
        }
        rw.finish(&mut out);
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "sse rewriter: {:.1} MB/s of SSE ({} bytes)",
        sse.len() as f64 / best / 1e6,
        sse.len()
    );
}
