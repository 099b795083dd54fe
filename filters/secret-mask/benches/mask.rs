//! Native masking throughput with the default rules (target: ≥ 50 MB/s):
//! `cargo bench -p tollgate-secret-mask`.
//!
//! - `matcher/prose_1k_feeds`: the streaming matcher over prose dense with near-misses
//!   (`sk-`, `AKIA`, `eyJ`) and a real secret every ~5 KiB, fed 1 KiB at a time;
//! - `matcher/one_shot_clean`: one-shot masking of text without candidates (the fast path);
//! - `sse/text_deltas`: the whole SSE rewriter (parse, JSON decode/encode of every delta,
//!   masking) over a Messages stream of 20-byte text deltas in 4 KiB network chunks.

// Bench code is test code: a broken setup must stop the run loudly.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::hint::black_box;
use std::rc::Rc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tollgate_secret_mask::config::load;
use tollgate_secret_mask::matcher::{RuleSet, Stats, TextMasker};
use tollgate_secret_mask::rewrite::SseRewriter;

fn prose(len: usize) -> String {
    let para = "The quick brown fox jumps over the lazy dog; see src/main.rs for the `ask-ant` \
        helper, task-runner and e.g. AKIA docs. Set eyJ-style tokens aside, x = 42.\n";
    let mut text = String::new();
    while text.len() < len {
        for _ in 0..30 {
            text.push_str(para);
        }
        text.push_str("key: AKIAZ2MQ4JXLS7RT5WHB and ghp_0123456789abcdefABCDEF0123456789abcd\n");
    }
    text
}

fn pieces(text: &str, n: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let mut end = (at + n).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        out.push(&text[at..end]);
        at = end;
    }
    out
}

fn stream_mask(rules: &Rc<RuleSet>, feeds: &[&str]) -> usize {
    let mut m = TextMasker::new(Rc::clone(rules));
    let mut st = Stats::default();
    let mut n = 0;
    for f in feeds {
        n += m.feed(f, &mut st).len();
    }
    n + m.finish(&mut st).len()
}

fn bench(c: &mut Criterion) {
    let rules = load(b"{}", &|_| None).unwrap().rules;
    let text = prose(1 << 20);
    let feeds = pieces(&text, 1024);

    let mut g = c.benchmark_group("matcher");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("prose_1k_feeds", |b| {
        b.iter(|| black_box(stream_mask(&rules, black_box(&feeds))))
    });
    let clean: String = text.replace(['s', 'A', 'e', 'g', 'x', 'r', '-'], "o");
    g.bench_function("one_shot_clean", |b| {
        b.iter(|| black_box(rules.mask_once(black_box(clean.as_bytes()), &mut Stats::default())))
    });
    g.finish();

    let mut sse = String::new();
    for d in pieces(&text, 20) {
        let v = serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":d}});
        sse.push_str(&format!("event: content_block_delta\ndata: {v}\n\n"));
    }
    let mut g = c.benchmark_group("sse");
    g.throughput(Throughput::Bytes(sse.len() as u64));
    g.bench_function("text_deltas", |b| {
        b.iter(|| {
            let mut rw = SseRewriter::new(Rc::clone(&rules), 1 << 20);
            let mut out = Vec::with_capacity(sse.len());
            for chunk in sse.as_bytes().chunks(4096) {
                rw.feed(chunk, &mut out).unwrap();
            }
            rw.finish(&mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
