//! Micro-benchmarks of intralb's dispatch path, without HTTP or a router, at 10, 100, 1,000 and
//! 10,000 workers:
//!
//! - `lease_release`: lease an idle worker and give it back (every request's fixed cost);
//! - `shed_when_full`: every worker leased and no queue place left, a lease is refused (the
//!   cost of a `503` before any response is written).
//!
//! `cargo bench -p intralb-bench --bench dispatch`. The pool comes from the hidden hook
//! `intralb::__private::bench`, on a current-thread runtime; each sample times a loop inside
//! one `block_on`, so the runtime's entry cost is not measured.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use intralb::__private::bench::Pool;
use tokio::runtime::Runtime;

const WORKERS: [usize; 4] = [10, 100, 1_000, 10_000];

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

/// Times `iters` runs of `op` inside one `block_on`.
fn timed<F, Fut>(runtime: &Runtime, iters: u64, mut op: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    runtime.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            op().await;
        }
        start.elapsed()
    })
}

fn lease_release(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("lease_release");
    for workers in WORKERS {
        let pool = runtime.block_on(Pool::new(workers, 100));
        group.bench_with_input(BenchmarkId::from_parameter(workers), &pool, |b, pool| {
            b.iter_custom(|iters| {
                timed(&runtime, iters, || async {
                    let lease = pool.lease().await;
                    assert!(lease.is_some(), "an idle pool leases");
                    drop(black_box(lease));
                })
            });
        });
    }
    group.finish();
}

fn shed_when_full(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("shed_when_full");
    for workers in WORKERS {
        let pool = runtime.block_on(Pool::new(workers, 0));
        let held: Vec<_> = runtime.block_on(async {
            let mut held = Vec::with_capacity(workers);
            for _ in 0..workers {
                held.push(pool.lease().await.expect("a worker is idle"));
            }
            held
        });
        group.bench_with_input(BenchmarkId::from_parameter(workers), &pool, |b, pool| {
            b.iter_custom(|iters| {
                timed(&runtime, iters, || async {
                    let lease = pool.lease().await;
                    assert!(lease.is_none(), "a full pool with no queue sheds");
                    black_box(lease);
                })
            });
        });
        drop(held);
    }
    group.finish();
}

criterion_group!(benches, lease_release, shed_when_full);
criterion_main!(benches);
