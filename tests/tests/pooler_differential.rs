//! Differential protocol testing: random sequences of frontend messages (simple and
//! extended queries, pipelines with and without Sync, Flush, errors, COPY, transaction
//! blocks, Close) from many clients at once, sent to PostgreSQL directly and through the
//! pooler over a pool smaller than the clients; every answer must be the same, and the
//! console must answer meanwhile.
//!
//! Bounded for CI. A long run: `DIFF_SEEDS=500 DIFF_STEPS=80 cargo test -p
//! integration-tests --test pooler_differential -- --nocapture`; one failing seed
//! again: `DIFF_FIRST_SEED=<seed> DIFF_SEEDS=1`.

mod common;
mod differential;

use std::time::{Duration, Instant};

use common::TestPooler;
use differential::generate::Generator;
use differential::{Transcript, Wire, first_difference, run_script};
use integration_tests::{PgCluster, PgNode, PgOptions};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Two databases with the same tables: one for the direct runs, one for the pooler's.
fn prepare_databases(node: &PgNode, clients: usize) {
    for db in ["diff_direct", "diff_pooler"] {
        node.psql(&format!("CREATE DATABASE {db}")).unwrap();
        let tables: String = (0..clients)
            .map(|c| format!("CREATE TABLE t{c} (id int PRIMARY KEY, v text);"))
            .collect();
        node.psql_in(db, &tables).unwrap();
    }
}

fn reset_tables(node: &PgNode, clients: usize) {
    let tables: Vec<String> = (0..clients).map(|c| format!("t{c}")).collect();
    for db in ["diff_direct", "diff_pooler"] {
        node.psql_in(db, &format!("TRUNCATE {}", tables.join(", ")))
            .unwrap();
    }
}

async fn run_all(
    port: u16,
    database: &'static str,
    scripts: &[differential::generate::Script],
    direct: Option<&[Transcript]>,
) -> Vec<Result<Transcript, String>> {
    let mut tasks = Vec::new();
    for (index, script) in scripts.iter().enumerate() {
        let script = script.clone();
        let counts = direct.map(|d| d[index].clone());
        tasks.push(tokio::spawn(async move {
            let mut wire = Wire::connect(port, "postgres", database).await?;
            run_script(&mut wire, &script, counts.as_ref()).await
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

/// Logs in to the console and runs SHOW POOLS every 100 ms until `stop`; returns the
/// slowest round trip (login included).
async fn watch_console(port: u16, stop: tokio::sync::watch::Receiver<bool>) -> Duration {
    let mut slowest = Duration::ZERO;
    while !*stop.borrow() {
        let started = Instant::now();
        let mut wire = Wire::connect(port, "postgres", "pgbouncer").await.unwrap();
        let mut query = bytes::BytesMut::new();
        protocol::pg::encode::query(&mut query, b"SHOW POOLS").unwrap();
        wire.send(&query).await.unwrap();
        while let Some((tag, _)) = wire.read(Duration::from_secs(10)).await.unwrap() {
            if tag == b'Z' {
                break;
            }
        }
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    slowest
}

async fn differential_run(general: &str) {
    let clients = env_number("DIFF_CLIENTS", 6) as usize;
    let seeds = env_number("DIFF_SEEDS", 8);
    let steps = env_number("DIFF_STEPS", 40) as usize;
    let first_seed = env_number("DIFF_FIRST_SEED", 1);
    let pg = PgCluster::start_async(PgOptions::default()).await.unwrap();
    prepare_databases(pg.primary(), clients);
    let general =
        format!("auth_type = trust\nadmin_users = postgres\nmax_client_conn = 200\n{general}");
    let pooler = TestPooler::start(pg.primary(), &general, "\"postgres\" \"\"\n").await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let console = tokio::spawn(watch_console(pooler.port, stop_rx));
    let mut failures = Vec::new();
    for seed in first_seed..first_seed + seeds {
        reset_tables(pg.primary(), clients);
        let scripts: Vec<_> = (0..clients)
            .map(|c| Generator::new(seed, c).script(c, steps))
            .collect();
        let direct: Vec<Transcript> = run_all(pg.primary().port(), "diff_direct", &scripts, None)
            .await
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("seed {seed}: direct run failed: {e}")))
            .collect();
        let pooled = run_all(pooler.port, "diff_pooler", &scripts, Some(&direct)).await;
        for ((script, want), got) in scripts.iter().zip(&direct).zip(&pooled) {
            let difference = match got {
                Err(e) => Some(format!("client {}: {e}", script.client)),
                Ok(got) => first_difference(script, want, got),
            };
            if let Some(difference) = difference {
                failures.push(format!("seed {seed}, {difference}"));
            }
        }
        if !failures.is_empty() {
            break;
        }
    }
    stop_tx.send(true).unwrap();
    let slowest = console.await.unwrap();
    println!(
        "{seeds} seeds x {clients} clients x {steps} steps; slowest console login + SHOW POOLS: {slowest:?}"
    );
    pooler.stop().await;
    assert!(
        failures.is_empty(),
        "the pooler answered differently:\n{}",
        failures.join("\n")
    );
    assert!(
        slowest < Duration::from_secs(2),
        "the console took {slowest:?} to answer during the run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_pooling_answers_like_postgres() {
    differential_run(
        "pool_mode = transaction\ndefault_pool_size = 2\nmax_prepared_statements = 100\n",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_pooling_with_statement_evictions_answers_like_postgres() {
    differential_run(
        "pool_mode = transaction\ndefault_pool_size = 3\nmax_prepared_statements = 3\n",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_pooling_answers_like_postgres() {
    differential_run("pool_mode = session\ndefault_pool_size = 10\n").await;
}
