//! Read/write splitting against a real primary and two streaming replicas: routing by
//! statement, hints and overrides, prepared statements across hosts, read-your-writes,
//! a replica killed under load, a lagging replica, and a primary failover.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{TestPooler, split};
use integration_tests::PgCluster;

fn cluster() -> PgCluster {
    split::cluster(2)
}

/// A pooler whose database `postgres` spans the cluster with `entry_options`.
async fn split_pooler(pg: &PgCluster, entry_options: &str) -> TestPooler {
    split::split_pooler(pg, entry_options, 4).await
}

async fn is_in_recovery(client: &tokio_postgres::Client, sql: &str) -> bool {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// Reads until one lands on a replica (read-your-writes may hold reads on the primary
/// until the replicas replayed this client's last write).
async fn eventually_on_replica(client: &tokio_postgres::Client) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if is_in_recovery(client, "SELECT pg_is_in_recovery()").await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A console query's rows as text.
async fn simple_rows(client: &tokio_postgres::Client, sql: &str) -> Vec<Vec<String>> {
    client
        .simple_query(sql)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or_default().to_owned())
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// The port of the server that answers one simple-protocol read: one transaction, one
/// routing decision. (tokio-postgres's `query_one` is two links, Describe then Execute,
/// since the pooler answers the repeated Parse and the Close itself; with two replicas
/// round-robin would then always run the Execute on the same one.)
async fn server_port(client: &tokio_postgres::Client) -> i32 {
    simple_rows(client, "SELECT inet_server_port()").await[0][0]
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_replicas_and_transactions_writes_and_hints_to_the_primary() {
    let pg = cluster();
    let pooler = split_pooler(&pg, "read_write_split=on").await;
    let client = pooler.connect("postgres", None, "postgres").await.unwrap();

    assert!(is_in_recovery(&client, "SELECT pg_is_in_recovery()").await);
    let mut transaction = client_transaction(&pooler).await;
    assert!(!is_in_recovery(&transaction, "SELECT pg_is_in_recovery()").await);
    transaction.batch_execute("COMMIT").await.unwrap();
    transaction = client_transaction_read_only(&pooler).await;
    assert!(is_in_recovery(&transaction, "SELECT pg_is_in_recovery()").await);
    transaction.batch_execute("COMMIT").await.unwrap();

    let hinted = "/* pooler: primary */ SELECT pg_is_in_recovery()";
    assert!(!is_in_recovery(&client, hinted).await);
    // A volatile function makes a SELECT a write.
    assert!(!is_in_recovery(&client, "SELECT pg_is_in_recovery(), txid_current()").await);
    client
        .batch_execute("SET pooler.route = 'primary'")
        .await
        .unwrap();
    assert!(!is_in_recovery(&client, "SELECT pg_is_in_recovery()").await);
    client.batch_execute("RESET pooler.route").await.unwrap();
    // txid_current() wrote: this client reads from the primary until a replica replayed it.
    assert!(eventually_on_replica(&client).await);

    // Reads rotate over both replicas and never touch the primary (another client:
    // this one wrote).
    let client = pooler.connect("postgres", None, "postgres").await.unwrap();
    let mut ports = BTreeSet::new();
    for _ in 0..20 {
        ports.insert(server_port(&client).await);
    }
    let replica_ports: BTreeSet<i32> = pg.replicas().iter().map(|r| i32::from(r.port())).collect();
    assert_eq!(ports, replica_ports);

    // Writes go to the primary; a prepared read runs on replicas, on servers that never
    // saw its Parse (prepared lazily per server).
    client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY)")
        .await
        .unwrap();
    let insert = client.prepare("INSERT INTO t VALUES ($1)").await.unwrap();
    let select = client
        .prepare("SELECT pg_is_in_recovery(), inet_server_port()")
        .await
        .unwrap();
    for i in 0..20 {
        client.execute(&insert, &[&i]).await.unwrap();
        client.query_one(&select, &[]).await.unwrap();
    }
    let count: i64 = pg
        .primary()
        .query_one("SELECT count(*) FROM t")
        .parse()
        .unwrap();
    assert_eq!(count, 20);
    pg.wait_for_replication().unwrap();
    assert!(eventually_on_replica(&client).await);
    let row = client.query_one(&select, &[]).await.unwrap();
    assert!(
        row.get::<_, bool>(0),
        "a prepared read after replication ran on a replica"
    );

    // psql through the pooler, simple protocol.
    let answer = tokio::task::spawn_blocking({
        let port = pooler.port;
        move || common::run_psql("127.0.0.1", port, "postgres", "SELECT pg_is_in_recovery()")
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(answer, "t");
    pooler.stop().await;
}

async fn client_transaction(pooler: &TestPooler) -> tokio_postgres::Client {
    let client = pooler.connect("postgres", None, "postgres").await.unwrap();
    client.batch_execute("BEGIN").await.unwrap();
    client
}

async fn client_transaction_read_only(pooler: &TestPooler) -> tokio_postgres::Client {
    let client = pooler.connect("postgres", None, "postgres").await.unwrap();
    client.batch_execute("BEGIN READ ONLY").await.unwrap();
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_always_reads_its_own_writes() {
    let pg = cluster();
    pg.primary()
        .psql("CREATE TABLE rw (id int PRIMARY KEY, client int)")
        .unwrap();
    pg.wait_for_replication().unwrap();
    let pooler = split_pooler(&pg, "read_write_split=on").await;
    let replica_reads = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in 0..4 {
        let config = pooler.client_config("postgres", None, "postgres");
        let replica_reads = Arc::clone(&replica_reads);
        tasks.push(tokio::spawn(async move {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(connection);
            for i in 0..50 {
                let id = c * 1000 + i;
                client
                    .execute("INSERT INTO rw VALUES ($1, $2)", &[&id, &c])
                    .await
                    .unwrap();
                let row = client
                    .query_one(
                        "SELECT count(*), pg_is_in_recovery() FROM rw WHERE id = $1",
                        &[&id],
                    )
                    .await
                    .unwrap();
                assert_eq!(row.get::<_, i64>(0), 1, "client {c} did not see row {id}");
                if row.get::<_, bool>(1) {
                    replica_reads.fetch_add(1, Ordering::Relaxed);
                }
                // Later reads of older rows may go to a replica once it caught up.
                if i % 10 == 9 {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let row = client
                        .query_one(
                            "SELECT count(*), pg_is_in_recovery() FROM rw WHERE client = $1",
                            &[&c],
                        )
                        .await
                        .unwrap();
                    assert_eq!(row.get::<_, i64>(0), i64::from(i + 1));
                    if row.get::<_, bool>(1) {
                        replica_reads.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // A write hidden after a SET in one message still counts as a write.
    let client = pooler.connect("postgres", None, "postgres").await.unwrap();
    client
        .batch_execute("SET application_name = 'x'; INSERT INTO rw VALUES (9999, 9)")
        .await
        .unwrap();
    let row = client
        .query_one("SELECT count(*) FROM rw WHERE id = 9999", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
    assert!(
        replica_reads.load(Ordering::Relaxed) > 0,
        "reads after replication caught up should reach replicas"
    );
    pooler.stop().await;
}

/// Runs `clients` tokio-postgres clients that each repeat `sql` until `stop`; returns
/// (successful queries, error messages).
fn read_load(
    pooler: &TestPooler,
    clients: usize,
    sql: &'static str,
    stop: &Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<(usize, Vec<String>)>> {
    (0..clients)
        .map(|_| {
            let config = pooler.client_config("postgres", None, "postgres");
            let stop = Arc::clone(stop);
            tokio::spawn(async move {
                let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(connection);
                let (mut ok, mut errors) = (0, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    match client.query_one(sql, &[]).await {
                        Ok(_) => ok += 1,
                        Err(e) => errors.push(common::error_message(&e)),
                    }
                }
                (ok, errors)
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_read_load_causes_no_client_error() {
    let pg = cluster();
    pg.primary()
        .psql("CREATE TABLE r AS SELECT g AS id FROM generate_series(1, 1000) g")
        .unwrap();
    pg.wait_for_replication().unwrap();
    let pooler = split_pooler(&pg, "read_write_split=on").await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sql = "SELECT count(*) FROM r, pg_sleep(0.002)";
    let tasks = read_load(&pooler, 8, sql, &stop);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let victim = pg.replica(0).clone();
    tokio::task::spawn_blocking(move || victim.kill().unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut errors) = (0, Vec::new());
    for task in tasks {
        let (n, e) = task.await.unwrap();
        ok += n;
        errors.extend(e);
    }
    assert!(errors.is_empty(), "client errors: {errors:?}");
    assert!(ok > 100, "only {ok} reads");
    // The survivor serves reads.
    let client = pooler.connect("postgres", None, "postgres").await.unwrap();
    assert_eq!(server_port(&client).await, i32::from(pg.replica(1).port()));
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_replay_is_paused_stops_getting_reads_once_it_lags() {
    let pg = cluster();
    pg.primary().psql("CREATE TABLE lag (v text)").unwrap();
    pg.wait_for_replication().unwrap();
    let pooler = split_pooler(&pg, "read_write_split=on max_replica_lag_bytes=4096").await;
    let reader = pooler.connect("postgres", None, "postgres").await.unwrap();
    let paused = pg.replica(0);
    let paused_port = i32::from(paused.port());
    let mut ports = BTreeSet::new();
    for _ in 0..10 {
        ports.insert(server_port(&reader).await);
    }
    assert!(
        ports.contains(&paused_port),
        "both replicas serve reads at first"
    );

    paused.pause_replay().unwrap();
    pg.primary()
        .psql("INSERT INTO lag SELECT repeat('x', 100) FROM generate_series(1, 200)")
        .unwrap();
    pg.replica(1)
        .wait_caught_up_with(pg.primary(), Duration::from_secs(30))
        .unwrap();
    // One health check later the paused replica is out.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..20 {
        assert_ne!(
            server_port(&reader).await,
            paused_port,
            "read went to the lagging replica"
        );
    }
    // The console and /metrics show why.
    let console = pooler.console("postgres", None).await.unwrap();
    let rows = simple_rows(&console, "SHOW HOSTS").await;
    let label = format!("127.0.0.1:{}", paused.port());
    let row = rows
        .iter()
        .find(|r| r[2] == label)
        .expect("paused replica in SHOW HOSTS");
    assert_eq!((row[3].as_str(), row[4].as_str()), ("replica", "up"));
    assert!(row[5].parse::<u64>().unwrap() > 4096, "lag_bytes {row:?}");
    assert_eq!(rows.iter().filter(|r| r[3] == "primary").count(), 1);
    let metrics_addr = pooler.metrics_addr().unwrap();
    let (_, metrics) = common::http_get(metrics_addr, "/metrics").await.unwrap();
    let lag_line = metrics
        .lines()
        .find(|l| l.starts_with("pooler_replica_lag_bytes{") && l.contains(&label))
        .expect("lag gauge");
    let lag: f64 = lag_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(lag > 4096.0, "{lag_line}");
    paused.resume_replay().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut is_back = false;
    while Instant::now() < deadline && !is_back {
        is_back = server_port(&reader).await == paused_port;
    }
    assert!(is_back, "the replica gets reads again once it caught up");
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_endpoint_never_uses_the_primary() {
    let pg = cluster();
    let pooler = split_pooler(&pg, "target_session_attrs=standby").await;
    let client = pooler.connect("postgres", None, "postgres").await.unwrap();
    client.batch_execute("BEGIN").await.unwrap();
    assert!(is_in_recovery(&client, "SELECT pg_is_in_recovery()").await);
    client.batch_execute("COMMIT").await.unwrap();
    let error = client
        .batch_execute("CREATE TABLE nope (id int)")
        .await
        .unwrap_err();
    assert_eq!(common::error_code(&error).as_deref(), Some("25006"));
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_mixed_load_runs_through_the_split_in_every_protocol_mode() {
    let pg = cluster();
    pg.primary().pgbench_init(1).unwrap();
    pg.wait_for_replication().unwrap();
    let pooler = split_pooler(&pg, "read_write_split=on").await;
    for mode in ["simple", "extended", "prepared"] {
        let pooler_ref = &pooler;
        let out = tokio::task::block_in_place(|| {
            pooler_ref.pgbench(&[
                "-n",
                "-M",
                mode,
                "-b",
                "select-only@9",
                "-b",
                "simple-update@1",
                "-c",
                "4",
                "-T",
                "2",
            ])
        });
        assert!(
            out.contains("number of failed transactions: 0 "),
            "{mode}: {out}"
        );
    }
    let (_, metrics) = common::http_get(pooler.metrics_addr().unwrap(), "/metrics")
        .await
        .unwrap();
    for replica in pg.replicas() {
        let label = format!("host=\"127.0.0.1:{}\"", replica.port());
        let served = metrics
            .lines()
            .filter(|l| {
                l.starts_with("pooler_transaction_duration_seconds_count{") && l.contains(&label)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        assert!(served > 0.0, "replica {label} served no transaction");
    }
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_terminated_by_its_own_client_bans_no_host() {
    let pg = cluster();
    let pooler = split_pooler(&pg, "read_write_split=on").await;
    let client = pooler.connect("postgres", None, "postgres").await.unwrap();
    // Every attempt kills the backend it runs on: moved a few times, then reported.
    let error = client
        .query_one("SELECT pg_terminate_backend(pg_backend_pid())", &[])
        .await
        .unwrap_err();
    assert_eq!(common::error_code(&error).as_deref(), Some("08006"));
    // The same connection works and both replicas still serve reads.
    let mut ports = BTreeSet::new();
    for _ in 0..20 {
        ports.insert(server_port(&client).await);
    }
    let replica_ports: BTreeSet<i32> = pg.replicas().iter().map(|r| i32::from(r.port())).collect();
    assert_eq!(ports, replica_ports);
    pooler.stop().await;
}

/// asyncpg prepares with Parse/Describe/Flush (a read, on a replica) and may send a
/// write as a simple Query right after, without a Sync: the write still reaches the
/// primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_query_after_a_read_batch_left_open_goes_to_the_primary() {
    use bytes::BytesMut;
    use common::raw::{RawClient, tags};
    use protocol::pg::encode;

    let pg = cluster();
    let pooler = split_pooler(&pg, "read_write_split=on").await;
    let mut client = RawClient::connect(pooler.port).await;
    client
        .startup(&[("user", "postgres"), ("database", "postgres")])
        .await;
    for round in 0..3 {
        let mut out = BytesMut::new();
        encode::parse(&mut out, format!("s{round}").as_bytes(), b"SELECT 1", &[]).unwrap();
        encode::describe_statement(&mut out, format!("s{round}").as_bytes()).unwrap();
        encode::flush(&mut out);
        client.send(&out).await.unwrap();
        let mut answer = Vec::new();
        for _ in 0..3 {
            answer.push(client.read_message().await.unwrap());
        }
        assert_eq!(tags(&answer), "1tT");
        let answer = client
            .simple_query(&format!("CREATE TABLE after_batch_{round} (id int)"))
            .await;
        assert_eq!(
            tags(&answer),
            "CZ",
            "{:?}",
            answer.first().and_then(|m| m.field(b'M'))
        );
    }
}
