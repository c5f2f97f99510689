//! pooler in transaction mode against a real PostgreSQL: tokio-postgres (named
//! statements), pgbench in every protocol mode, SCRAM pass-through, errors, and a client
//! killed inside a transaction.

mod common;

use std::time::Duration;

use common::{TestPooler, server_connections};
use integration_tests::{AuthMethod, PgCluster, PgOptions, PgUser};

const TRANSACTION_MODE: &str = "pool_mode = transaction\ndefault_pool_size = 2\nauth_type = md5\n";

fn cluster() -> PgCluster {
    PgCluster::start(PgOptions {
        users: vec![
            PgUser::new("app", "app-secret", AuthMethod::ScramSha256),
            PgUser::new("legacy", "legacy-secret", AuthMethod::Md5),
        ],
        ..PgOptions::default()
    })
    .unwrap()
}

fn userlist(pg: &PgCluster) -> String {
    let scram = pg
        .primary()
        .psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'app'")
        .unwrap();
    format!("\"postgres\" \"\"\n\"app\" \"{scram}\"\n\"legacy\" \"legacy-secret\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_statements_work_across_servers_in_transaction_mode() {
    let pg = cluster();
    pg.primary()
        .psql("CREATE TABLE items (id int PRIMARY KEY, name text); GRANT ALL ON items TO app")
        .unwrap();
    let pooler = TestPooler::start(pg.primary(), TRANSACTION_MODE, &userlist(&pg)).await;
    let mut tasks = Vec::new();
    for client_id in 0..10 {
        let config = pooler.client_config("app", Some("app-secret"), "postgres");
        tasks.push(tokio::spawn(async move {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(connection);
            let insert = client
                .prepare("INSERT INTO items VALUES ($1, $2)")
                .await
                .unwrap();
            let select = client
                .prepare("SELECT name FROM items WHERE id = $1")
                .await
                .unwrap();
            for i in 0..20 {
                let id = client_id * 100 + i;
                client
                    .execute(&insert, &[&id, &format!("item {id}")])
                    .await
                    .unwrap();
                let row = client.query_one(&select, &[&id]).await.unwrap();
                assert_eq!(row.get::<_, String>(0), format!("item {id}"));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(
        server_connections(pg.primary(), "app") <= 2,
        "pool_size respected"
    );
    let count = pg.primary().psql("SELECT count(*) FROM items").unwrap();
    assert_eq!(count, "200");
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_runs_in_every_protocol_mode() {
    let pg = cluster();
    pg.primary().pgbench_init(1).unwrap();
    let pooler = TestPooler::start(
        pg.primary(),
        "pool_mode = transaction\ndefault_pool_size = 4\nauth_type = trust\n",
        &userlist(&pg),
    )
    .await;
    let port = pooler.port;
    tokio::task::spawn_blocking(move || {
        let pooler_port = port;
        for mode in ["simple", "extended", "prepared"] {
            let out = std::process::Command::new(integration_tests::pg_tool("pgbench").unwrap())
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &pooler_port.to_string(),
                    "-U",
                    "postgres",
                ])
                .args([
                    "-n", "-S", "-c", "12", "-j", "2", "-t", "50", "-M", mode, "postgres",
                ])
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "pgbench -M {mode}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                stdout.contains("number of transactions actually processed: 600/600"),
                "{stdout}"
            );
        }
        // -C: a new connection per transaction.
        let out = std::process::Command::new(integration_tests::pg_tool("pgbench").unwrap())
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &pooler_port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-n", "-S", "-C", "-c", "4", "-t", "25", "postgres"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pgbench -C: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    })
    .await
    .unwrap();
    assert!(server_connections(pg.primary(), "postgres") <= 4);
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_check_passwords_and_report_unknown_databases() {
    let pg = cluster();
    let pooler = TestPooler::start(pg.primary(), TRANSACTION_MODE, &userlist(&pg)).await;
    // SCRAM user: pass-through of the client's SCRAM keys to the server.
    let client = pooler
        .connect("app", Some("app-secret"), "postgres")
        .await
        .unwrap();
    let row = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "app");
    // md5 user with a plaintext password in the userlist.
    let legacy = pooler
        .connect("legacy", Some("legacy-secret"), "postgres")
        .await
        .unwrap();
    legacy.simple_query("SELECT 1").await.unwrap();

    let err = login_error(&pooler, "app", Some("wrong"), "postgres").await;
    assert_eq!(err, "SASL authentication failed", "PgBouncer's wording");
    let err = login_error(&pooler, "nobody", Some("x"), "postgres").await;
    assert!(err.contains("password authentication failed"), "{err}");
    let err = login_error(&pooler, "legacy", Some("legacy-secret"), "no_such_db").await;
    assert!(
        err.contains("does not exist"),
        "server's own error passed on: {err}"
    );
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_killed_mid_transaction_leaves_no_open_transaction() {
    let pg = cluster();
    pg.primary()
        .psql("CREATE TABLE t (x int); GRANT ALL ON t TO legacy")
        .unwrap();
    let pooler = TestPooler::start(pg.primary(), TRANSACTION_MODE, &userlist(&pg)).await;
    let client = pooler
        .connect("legacy", Some("legacy-secret"), "postgres")
        .await
        .unwrap();
    client
        .batch_execute("BEGIN; INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    drop(client);
    let mut open = String::new();
    for _ in 0..50 {
        open = pg
            .primary()
            .psql("SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'")
            .unwrap();
        if open == "0" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(open, "0");
    assert_eq!(
        pg.primary().psql("SELECT count(*) FROM t").unwrap(),
        "0",
        "rolled back"
    );
    let again = pooler
        .connect("legacy", Some("legacy-secret"), "postgres")
        .await
        .unwrap();
    again.simple_query("SELECT 1").await.unwrap();
    pooler.stop().await;
}

/// The server's (or pooler's) error message of a failed connect.
fn message(err: tokio_postgres::Error) -> String {
    err.as_db_error()
        .map(|e| e.message().to_owned())
        .unwrap_or_else(|| err.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_query_looks_up_users_missing_from_the_auth_file() {
    let pg = cluster();
    let general = "pool_mode = transaction\nauth_type = md5\nauth_user = postgres\n";
    let pooler = TestPooler::start(pg.primary(), general, "\"postgres\" \"\"\n").await;
    // md5 secret from pg_authid: md5 towards the client and the server.
    let legacy = pooler
        .connect("legacy", Some("legacy-secret"), "postgres")
        .await
        .unwrap();
    let row = legacy
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "legacy");
    // SCRAM secret from pg_authid: SCRAM with the client, keys passed through.
    let app = pooler
        .connect("app", Some("app-secret"), "postgres")
        .await
        .unwrap();
    app.simple_query("SELECT 1").await.unwrap();
    let err = login_error(&pooler, "legacy", Some("nope"), "postgres").await;
    assert_eq!(err, "password authentication failed");
    let err = login_error(&pooler, "ghost", Some("x"), "postgres").await;
    assert_eq!(err, "no such user");
    pooler.stop().await;
}

/// The seed deployment's settings, unchanged: 1000 pgbench clients through the pooler,
/// zero errors, and PostgreSQL never sees more than pool + reserve (30) connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_deployment_serves_1000_clients_with_at_most_30_server_connections() {
    let pg = cluster();
    pg.primary().pgbench_init(1).unwrap();
    let general = "pool_mode = transaction\nmax_client_conn = 1000\ndefault_pool_size = 25\nmin_pool_size = 10\nreserve_pool_size = 5\nreserve_pool_timeout = 3\nauth_type = trust\n";
    let pooler = TestPooler::start(pg.primary(), general, &userlist(&pg)).await;
    let port = pooler.port;
    let bench = tokio::task::spawn_blocking(move || {
        std::process::Command::new(integration_tests::pg_tool("pgbench").unwrap())
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
            .args(["-n", "-S", "-c", "1000", "-j", "2", "-T", "8", "postgres"])
            .output()
            .unwrap()
    });
    let mut max_seen = 0;
    while !bench.is_finished() {
        max_seen = max_seen.max(server_connections(pg.primary(), "postgres"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = bench.await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("number of failed transactions: 0"),
        "{stdout}"
    );
    assert!(
        max_seen <= 30,
        "PostgreSQL saw {max_seen} connections from the pooler"
    );
    pooler.stop().await;
}

/// The error message of a login that must fail.
async fn login_error(pooler: &TestPooler, user: &str, password: Option<&str>, db: &str) -> String {
    message(pooler.connect(user, password, db).await.err().unwrap())
}
