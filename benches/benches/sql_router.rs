//! The read/write classifier on statements real applications send (it runs once per
//! transaction when read/write splitting is on).

use criterion::{Criterion, criterion_group, criterion_main};
use pooler::router::{DEFAULT_VOLATILE_FUNCTIONS, classify};
use std::hint::black_box;

fn classifier(c: &mut Criterion) {
    let cases: &[(&str, &str)] = &[
        (
            "pgbench select",
            "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
        ),
        (
            "for update",
            "SELECT * FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 10 FOR NO KEY UPDATE SKIP LOCKED",
        ),
        (
            "cte with comment",
            "/* app=web */ WITH recent AS (SELECT * FROM orders WHERE created_at > now() - interval '1 day') SELECT count(*) FROM recent",
        ),
        (
            "update",
            "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2",
        ),
    ];
    for (name, sql) in cases {
        c.bench_function(&format!("classify: {name}"), |b| {
            b.iter(|| {
                black_box(classify(
                    black_box(sql.as_bytes()),
                    DEFAULT_VOLATILE_FUNCTIONS,
                ))
            })
        });
    }
}

criterion_group!(benches, classifier);
criterion_main!(benches);
