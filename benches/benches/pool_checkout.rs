//! The pool's checkout/checkin cycle with an in-memory connector: uncontended, and with
//! 64 tasks contending for 8 connections on a multi-threaded runtime.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pooler::pool::{ConnectFuture, Connector, Pool, PoolSettings};

struct Instant;

impl Connector<u64> for Instant {
    fn connect(&self) -> ConnectFuture<u64> {
        Box::pin(async { Ok(7) })
    }
}

fn pool(size: usize) -> Pool<u64> {
    let settings = PoolSettings {
        pool_size: size,
        server_idle_timeout: None,
        ..PoolSettings::default()
    };
    Pool::new("bench/bench".into(), settings, Box::new(Instant), vec![])
}

fn checkout(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let uncontended = runtime.block_on(async { pool(8) });
    c.bench_function("pool checkout+checkin, uncontended", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let server = uncontended.checkout().wait().await.unwrap();
                server.checkin();
            })
        })
    });
    let contended = runtime.block_on(async { pool(8) });
    let mut group = c.benchmark_group("pool_contended");
    group.throughput(Throughput::Elements(64 * 100));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("64 tasks x 100 checkouts, pool of 8", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut tasks = Vec::new();
                for _ in 0..64 {
                    let pool = contended.clone();
                    tasks.push(tokio::spawn(async move {
                        for _ in 0..100 {
                            let server = pool.checkout().wait().await.unwrap();
                            tokio::task::yield_now().await;
                            server.checkin();
                        }
                    }));
                }
                for task in tasks {
                    task.await.unwrap();
                }
            })
        })
    });
    group.finish();
}

criterion_group!(benches, checkout);
criterion_main!(benches);
