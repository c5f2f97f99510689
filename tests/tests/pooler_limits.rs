//! pooler limits against a real PostgreSQL: 500 clients over a pool of 10, the reserve
//! pool, query_wait_timeout and max_client_conn.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{TestPooler, active_server_connections, server_connections};
use integration_tests::{AuthMethod, PgCluster, PgNode, PgOptions, PgUser};

const USERLIST: &str = "\"postgres\" \"\"\n\"app\" \"\"\n";

fn cluster() -> PgCluster {
    PgCluster::start(PgOptions {
        users: vec![PgUser::new("app", "app-secret", AuthMethod::Trust)],
        ..PgOptions::default()
    })
    .unwrap()
}

/// Samples the server connections of `app` on a blocking thread until stopped; returns
/// every (time since start, count) sample.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<Vec<(Duration, usize)>>,
}

impl Sampler {
    fn start(node: &PgNode, every: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let node = node.clone();
        let stopped = Arc::clone(&stop);
        let handle = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let mut samples = Vec::new();
            while !stopped.load(Ordering::SeqCst) {
                samples.push((started.elapsed(), server_connections(&node, "app")));
                std::thread::sleep(every);
            }
            samples
        });
        Sampler { stop, handle }
    }

    async fn finish(self) -> Vec<(Duration, usize)> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_clients_share_ten_server_connections() {
    let pg = cluster();
    let pooler = TestPooler::start(
        pg.primary(),
        "pool_mode = transaction\ndefault_pool_size = 10\nmax_client_conn = 1000\nauth_type = trust\nquery_wait_timeout = 60\n",
        USERLIST,
    )
    .await;
    let sampler = Sampler::start(pg.primary(), Duration::from_millis(100));
    let errors = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client_id in 0..500i32 {
        let config = pooler.client_config("app", None, "postgres");
        let errors = Arc::clone(&errors);
        tasks.push(tokio::spawn(async move {
            let result: Result<(), String> = async {
                let (client, connection) = config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                tokio::spawn(connection);
                for i in 0..3 {
                    let row = client
                        .query_one("SELECT $1::int + 1", &[&(client_id * 10 + i)])
                        .await
                        .map_err(|e| format!("query: {e}"))?;
                    if row.get::<_, i32>(0) != client_id * 10 + i + 1 {
                        return Err("wrong answer".to_owned());
                    }
                }
                let rows = client
                    .simple_query("BEGIN; SELECT pg_backend_pid(); COMMIT")
                    .await
                    .map_err(|e| format!("tx: {e}"))?;
                if rows.len() < 3 {
                    return Err(format!("short answer {}", rows.len()));
                }
                Ok(())
            }
            .await;
            if let Err(e) = result
                && errors.fetch_add(1, Ordering::SeqCst) < 5
            {
                eprintln!("client {client_id}: {e}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let samples = sampler.finish().await;
    let max = samples.iter().map(|(_, n)| *n).max().unwrap_or(0);
    eprintln!(
        "500 clients done in {elapsed:?}; {} samples, max {max} server connections",
        samples.len()
    );
    assert_eq!(errors.load(Ordering::SeqCst), 0, "client errors");
    assert!(max <= 10, "server saw {max} connections: {samples:?}");
    assert!(server_connections(pg.primary(), "app") <= 10);
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserve_pool_opens_one_extra_connection_after_the_timeout() {
    let pg = cluster();
    let pooler = TestPooler::start(
        pg.primary(),
        "pool_mode = transaction\ndefault_pool_size = 2\nreserve_pool_size = 1\nreserve_pool_timeout = 1\nauth_type = trust\n",
        USERLIST,
    )
    .await;
    let mut sleepers = Vec::new();
    for _ in 0..2 {
        sleepers.push(pooler.connect("app", None, "postgres").await.unwrap());
    }
    let waiter = pooler.connect("app", None, "postgres").await.unwrap();
    let mut sleeps = Vec::new();
    for client in sleepers {
        sleeps.push(tokio::spawn(async move {
            client.simple_query("SELECT pg_sleep(3)").await.map(drop)
        }));
    }
    let node = pg.primary().clone();
    let busy = common::eventually(Duration::from_secs(5), || {
        active_server_connections(&node, "app") == 2
    })
    .await;
    assert!(busy, "two servers busy with pg_sleep");

    let sampler = Sampler::start(pg.primary(), Duration::from_millis(50));
    let started = Instant::now();
    waiter.simple_query("SELECT 1").await.unwrap();
    let waited = started.elapsed();
    // Keep sampling until the sleeps end: the reserve connection must stay the only extra one.
    for sleep in sleeps {
        sleep.await.unwrap().unwrap();
    }
    let samples = sampler.finish().await;
    eprintln!("third client waited {waited:?}; samples {samples:?}");
    assert!(
        waited >= Duration::from_millis(900),
        "reserve used before reserve_pool_timeout: {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(2500),
        "reserve pool not used: waited {waited:?}"
    );
    let early: Vec<_> = samples
        .iter()
        .filter(|(t, _)| *t < Duration::from_millis(800))
        .collect();
    assert!(
        early.iter().all(|(_, n)| *n == 2),
        "a 3rd server before ~1 s: {early:?}"
    );
    assert!(
        samples.iter().any(|(_, n)| *n == 3),
        "never exactly 3 server connections: {samples:?}"
    );
    assert!(
        samples.iter().all(|(_, n)| *n <= 3),
        "more than pool_size + reserve_pool_size: {samples:?}"
    );
    assert!(server_connections(pg.primary(), "app") <= 3);
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_longer_than_query_wait_timeout_fails_the_client() {
    let pg = cluster();
    let pooler = TestPooler::start(
        pg.primary(),
        "pool_mode = transaction\ndefault_pool_size = 1\nquery_wait_timeout = 1\nauth_type = trust\n",
        USERLIST,
    )
    .await;
    let holder = pooler.connect("app", None, "postgres").await.unwrap();
    let waiter = pooler.connect("app", None, "postgres").await.unwrap();
    holder.batch_execute("BEGIN; SELECT 1").await.unwrap();

    let started = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(10), waiter.simple_query("SELECT 1"))
        .await
        .expect("waiting client not failed by query_wait_timeout")
        .unwrap_err();
    let waited = started.elapsed();
    assert_eq!(common::error_message(&err), "query_wait_timeout", "{err:?}");
    assert_eq!(
        common::error_code(&err).as_deref(),
        Some("08P01"),
        "{err:?}"
    );
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "failed after {waited:?}"
    );

    // The holder's transaction was untouched and the pool serves new clients once it ends.
    holder.batch_execute("COMMIT").await.unwrap();
    let next = pooler.connect("app", None, "postgres").await.unwrap();
    next.simple_query("SELECT 1").await.unwrap();
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_client_conn_rejects_the_extra_client() {
    let pg = cluster();
    let pooler = TestPooler::start(
        pg.primary(),
        "pool_mode = transaction\ndefault_pool_size = 2\nmax_client_conn = 2\nauth_type = trust\n",
        USERLIST,
    )
    .await;
    let first = pooler.connect("app", None, "postgres").await.unwrap();
    let second = pooler.connect("app", None, "postgres").await.unwrap();
    let err = pooler
        .connect("app", None, "postgres")
        .await
        .expect_err("3rd client admitted over max_client_conn = 2");
    assert_eq!(
        common::error_message(&err),
        "no more connections allowed (max_client_conn)",
        "{err:?}"
    );
    assert_eq!(
        common::error_code(&err).as_deref(),
        Some("08P01"),
        "{err:?}"
    );
    first.simple_query("SELECT 1").await.unwrap();
    second.simple_query("SELECT 1").await.unwrap();

    // Once a client leaves, its slot is free again.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    let third = loop {
        match pooler.connect("app", None, "postgres").await {
            Ok(client) => break client,
            Err(e) if Instant::now() < deadline => {
                assert_eq!(
                    common::error_message(&e),
                    "no more connections allowed (max_client_conn)"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("slot not freed after a client left: {e}"),
        }
    };
    third.simple_query("SELECT 1").await.unwrap();
    pooler.stop().await;
}
