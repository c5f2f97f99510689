//! A plain `host=` list without read/write splitting keeps PgBouncer's meaning: new
//! server connections rotate through the hosts (`load_balance_hosts = round-robin`) or
//! try them in order (`disable`).

mod common;

use std::collections::BTreeSet;

use common::TestPooler;
use integration_tests::{PgCluster, PgOptions};

const GENERAL: &str = "pool_mode = transaction\nauth_type = trust\ndefault_pool_size = 4\n";
const USERLIST: &str = "\"postgres\" \"\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_server_connections_rotate_through_a_plain_host_list() {
    let pg = PgCluster::start(PgOptions {
        replicas: 1,
        ..PgOptions::default()
    })
    .unwrap();
    let databases = format!(
        "postgres = host=127.0.0.1:{},127.0.0.1:{}",
        pg.primary().port(),
        pg.replica(0).port()
    );
    let pooler = TestPooler::start_with_databases(&databases, GENERAL, USERLIST).await;
    // Two clients inside transactions at once hold two server connections.
    let mut clients = Vec::new();
    let mut ports = BTreeSet::new();
    for _ in 0..2 {
        let client = pooler.connect("postgres", None, "postgres").await.unwrap();
        client.batch_execute("BEGIN").await.unwrap();
        let port: i32 = client
            .query_one("SELECT inet_server_port()", &[])
            .await
            .unwrap()
            .get(0);
        ports.insert(port);
        clients.push(client);
    }
    let expected: BTreeSet<i32> = pg.nodes().iter().map(|n| i32::from(n.port())).collect();
    assert_eq!(ports, expected, "the two connections went to both hosts");
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balance_hosts_disable_tries_the_hosts_in_order() {
    let pg = PgCluster::start(PgOptions::default()).unwrap();
    let dead = integration_tests::ports::free_port().unwrap();
    let databases = format!(
        "postgres = host=127.0.0.1:{dead},127.0.0.1:{} load_balance_hosts=disable",
        pg.primary().port()
    );
    let pooler = TestPooler::start_with_databases(&databases, GENERAL, USERLIST).await;
    let client = pooler.connect("postgres", None, "postgres").await.unwrap();
    for _ in 0..3 {
        let port: i32 = client
            .query_one("SELECT inet_server_port()", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(port, i32::from(pg.primary().port()));
    }
    pooler.stop().await;
}
