//! What the harness itself costs: compiling a module, starting a VM, and one request
//! (headers, a 16 KB body, a response) through a trivial filter (the probe, no commands).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use tollgate_harness::{artifact, FilterSpec, Gateway, Host, Request, Upstream};

fn request() -> Request {
    Request::post("/v1/messages")
        .header("content-type", "application/json")
        .header("authorization", "Bearer bench")
        .body(vec![b'x'; 16 * 1024])
}

fn upstream() -> Upstream {
    Upstream::new(200)
        .header("content-type", "application/json")
        .body(vec![b'y'; 2 * 1024])
}

fn bench(c: &mut Criterion) {
    let probe = artifact("probe");
    let mut group = c.benchmark_group("harness");
    group.sample_size(10);
    group.bench_function("module load (compile, fresh engine)", |b| {
        b.iter_batched(
            || Host::new().unwrap(),
            |host| Gateway::new(&host, vec![FilterSpec::new(&probe)]).unwrap(),
            BatchSize::PerIteration,
        )
    });
    group.finish();

    let host = Host::new().unwrap();
    c.bench_function("harness/vm start (cached module)", |b| {
        b.iter(|| Gateway::new(&host, vec![FilterSpec::new(&probe)]).unwrap())
    });

    let mut gateway = Gateway::new(&host, vec![FilterSpec::new(&probe)]).unwrap();
    c.bench_function("harness/request 16 KB + response through the probe", |b| {
        b.iter_batched(
            || (request(), upstream()),
            |(req, up)| {
                let out = gateway.run(req, up);
                assert_eq!(out.client.status, 200);
                out
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
