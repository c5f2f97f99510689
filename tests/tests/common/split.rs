//! Read/write-split fixtures: a primary with streaming replicas and a pooler whose
//! database `postgres` spans all of them.

use integration_tests::{PgCluster, PgOptions};

use super::TestPooler;

/// A primary and `replicas` streaming replicas.
pub fn cluster(replicas: usize) -> PgCluster {
    PgCluster::start(PgOptions {
        replicas,
        ..PgOptions::default()
    })
    .unwrap()
}

/// `host=` list of every node, primary first.
pub fn host_list(pg: &PgCluster) -> String {
    let hosts: Vec<String> = pg
        .nodes()
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port()))
        .collect();
    hosts.join(",")
}

/// A pooler (transaction mode, trust, `admin_users = postgres`, `/metrics` on a free
/// port) whose database `postgres` spans the cluster with `entry_options`, checked every
/// 0.1 s with a 2 s ban time.
pub async fn split_pooler(pg: &PgCluster, entry_options: &str, pool_size: u32) -> TestPooler {
    let databases = format!(
        "postgres = host={} health_check_period=0.1 ban_time=2 {entry_options}",
        host_list(pg)
    );
    let metrics_port = integration_tests::ports::free_port().unwrap();
    let general = format!(
        "pool_mode = transaction\nauth_type = trust\ndefault_pool_size = {pool_size}\nadmin_users = postgres\nmetrics_addr = 127.0.0.1:{metrics_port}\n"
    );
    TestPooler::start_with_databases(&databases, &general, "\"postgres\" \"\"\n").await
}
