//! pooler in statement mode against a real PostgreSQL: single statements (pgbench -S)
//! work, transaction blocks are refused with PgBouncer's wording.

mod common;

use std::time::Duration;

use common::{TestPooler, server_connections};
use integration_tests::PgCluster;

const STATEMENT_MODE: &str = "pool_mode = statement\ndefault_pool_size = 2\nauth_type = trust\n";
const USERLIST: &str = "\"postgres\" \"\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_statements_work_in_statement_mode() {
    let pg = PgCluster::start(Default::default()).unwrap();
    pg.primary().pgbench_init(1).unwrap();
    let pooler = TestPooler::start(pg.primary(), STATEMENT_MODE, USERLIST).await;
    let port = pooler.port;
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(integration_tests::pg_tool("pgbench").unwrap())
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
            .args([
                "-n", "-S", "-M", "simple", "-c", "6", "-j", "2", "-t", "50", "postgres",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pgbench: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("number of transactions actually processed: 300/300"),
        "{stdout}"
    );
    assert!(server_connections(pg.primary(), "postgres") <= 2);

    // Statements of one client run on whichever server is free, one at a time.
    let client = pooler.connect("postgres", None, "postgres").await.unwrap();
    for i in 0..20i32 {
        let row = client.query_one("SELECT $1::int * 2", &[&i]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), i * 2);
    }
    client
        .batch_execute("CREATE TABLE st (x int)")
        .await
        .unwrap();
    client
        .batch_execute("INSERT INTO st VALUES (1)")
        .await
        .unwrap();
    let count: i64 = client
        .query_one("SELECT count(*) FROM st", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1, "autocommit statements are committed");
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_blocks_are_refused_in_statement_mode() {
    let pg = PgCluster::start(Default::default()).unwrap();
    pg.primary().psql("CREATE TABLE st (x int)").unwrap();
    let pooler = TestPooler::start(pg.primary(), STATEMENT_MODE, USERLIST).await;
    let client = pooler.connect("postgres", None, "postgres").await.unwrap();
    client.simple_query("SELECT 1").await.unwrap();

    let err = client
        .batch_execute("BEGIN")
        .await
        .expect_err("BEGIN accepted in statement mode");
    let message = common::error_message(&err);
    assert!(
        message.contains("transaction blocks not allowed in statement pooling mode"),
        "{err:?}"
    );

    // No server is left idle in transaction and the pool keeps serving.
    let node = pg.primary().clone();
    let clean = common::eventually(Duration::from_secs(5), || {
        node.psql("SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'")
            .unwrap()
            == "0"
    })
    .await;
    assert!(
        clean,
        "a server was left inside the refused transaction block"
    );
    assert_eq!(pg.primary().psql("SELECT count(*) FROM st").unwrap(), "0");
    let other = pooler.connect("postgres", None, "postgres").await.unwrap();
    let row = other.query_one("SELECT 7", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 7);
    pooler.stop().await;
}
