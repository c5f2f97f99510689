//! pooler's timeouts and failure paths against a real PostgreSQL: client_idle_timeout,
//! idle_transaction_timeout, query_timeout, transaction_timeout, a server that dies
//! mid-transaction, and a failing Parse in a transaction-mode pipeline.

mod common;

use std::time::Duration;

use common::{TestPooler, error_message};
use integration_tests::{PgCluster, PgOptions};

const USERLIST: &str = "\"postgres\" \"\"\n";

async fn start(extra: &str) -> (PgCluster, TestPooler) {
    let pg = PgCluster::start(PgOptions::default()).unwrap();
    let general =
        format!("pool_mode = transaction\nauth_type = trust\ndefault_pool_size = 2\n{extra}");
    let pooler = TestPooler::start(pg.primary(), &general, USERLIST).await;
    (pg, pooler)
}

/// The error that ended `client`'s connection, as the next query sees it.
async fn next_error(client: &tokio_postgres::Client) -> String {
    match client.simple_query("SELECT 1").await {
        Ok(_) => "no error".into(),
        Err(e) => error_message(&e),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clients_and_idle_transactions_are_closed() {
    let (pg, pooler) = start("client_idle_timeout = 1\nidle_transaction_timeout = 1\n").await;
    let idle = pooler.connect("postgres", None, "postgres").await.unwrap();
    let in_tx = pooler.connect("postgres", None, "postgres").await.unwrap();
    in_tx.batch_execute("BEGIN; SELECT 1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(idle.is_closed() || next_error(&idle).await != "no error");
    assert!(in_tx.is_closed() || next_error(&in_tx).await != "no error");
    // The abandoned transaction is gone on the server, and a fresh client works.
    let open = pg
        .primary()
        .psql("SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'")
        .unwrap();
    assert_eq!(open, "0");
    let fresh = pooler.connect("postgres", None, "postgres").await.unwrap();
    fresh.simple_query("SELECT 1").await.unwrap();
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_timeout_ends_a_long_query_and_the_pool_recovers() {
    let (_pg, pooler) = start("query_timeout = 1\n").await;
    let client = pooler.connect("postgres", None, "postgres").await.unwrap();
    let err = client
        .simple_query("SELECT pg_sleep(10)")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("query timeout")
            || error_message(&err).contains("query timeout")
            || client.is_closed(),
        "{err:?}"
    );
    let other = pooler.connect("postgres", None, "postgres").await.unwrap();
    other.simple_query("SELECT 1").await.unwrap();
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_dying_mid_transaction_fails_only_that_client() {
    let (pg, pooler) = start("").await;
    let victim = pooler.connect("postgres", None, "postgres").await.unwrap();
    let bystander = pooler.connect("postgres", None, "postgres").await.unwrap();
    victim.batch_execute("BEGIN").await.unwrap();
    let pid: i32 = victim
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    pg.primary()
        .psql(&format!("SELECT pg_terminate_backend({pid})"))
        .unwrap();
    let err = victim.simple_query("SELECT 1").await.unwrap_err();
    let text = format!("{} {}", error_message(&err), err);
    assert!(
        text.contains("terminating connection")
            || text.contains("server conn crashed")
            || victim.is_closed(),
        "{text}"
    );
    bystander
        .simple_query("SELECT 1")
        .await
        .expect("other clients unaffected");
    pooler
        .connect("postgres", None, "postgres")
        .await
        .unwrap()
        .simple_query("SELECT 1")
        .await
        .unwrap();
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_parse_reports_its_error_and_the_connection_goes_on() {
    let (_pg, pooler) = start("").await;
    let client = pooler.connect("postgres", None, "postgres").await.unwrap();
    let err = client.prepare("SELEC 1").await.unwrap_err();
    assert!(error_message(&err).contains("syntax error"), "{err:?}");
    let good = client.prepare("SELECT $1::int + 1").await.unwrap();
    for i in 0..20 {
        let row = client.query_one(&good, &[&i]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), i + 1);
    }
    // Describe before any Bind, on whatever server comes next (lazy re-Parse).
    let described = client.prepare("SELECT 'x'::text AS label").await.unwrap();
    assert_eq!(described.columns()[0].name(), "label");
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_timeout_ends_a_long_transaction() {
    let (_pg, pooler) = start("transaction_timeout = 1\n").await;
    let client = pooler.connect("postgres", None, "postgres").await.unwrap();
    client.batch_execute("BEGIN").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(client.is_closed() || next_error(&client).await != "no error");
    pooler.stop().await;
}
