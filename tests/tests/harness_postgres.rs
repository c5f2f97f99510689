//! Self-tests of the PostgreSQL harness: replication, auth methods, promotion, replay
//! control, process faults and cleanup, all against real servers.

use std::time::Duration;

use integration_tests::process::pid_is_alive;
use integration_tests::{AuthMethod, PgCluster, PgOptions, PgUser};
use tokio_postgres::error::SqlState;

fn primary_and_replica() -> PgCluster {
    PgCluster::start(PgOptions {
        replicas: 1,
        ..PgOptions::default()
    })
    .expect("cluster starts")
}

#[test]
fn replica_streams_from_primary_on_free_ports() {
    let cluster = primary_and_replica();
    let (primary, replica) = (cluster.primary(), cluster.replica(0));
    assert_ne!(primary.port(), replica.port());
    for port in [primary.port(), replica.port()] {
        assert!(
            port != 5432 && port != 6379,
            "harness must never use system ports"
        );
    }
    assert_eq!(primary.query_one("SHOW port"), primary.port().to_string());
    assert_eq!(replica.query_one("SHOW port"), replica.port().to_string());

    primary
        .psql("CREATE TABLE items (id int PRIMARY KEY, name text)")
        .unwrap();
    primary.psql("INSERT INTO items VALUES (1, 'one')").unwrap();
    cluster.wait_for_replication().unwrap();
    assert_eq!(
        replica.query_one("SELECT name FROM items WHERE id = 1"),
        "one"
    );

    assert!(replica.is_in_recovery().unwrap());
    assert!(!primary.is_in_recovery().unwrap());
    let write_on_replica = replica
        .psql("INSERT INTO items VALUES (2, 'two')")
        .unwrap_err();
    assert!(format!("{write_on_replica:#}").contains("read-only"));
}

#[tokio::test]
async fn users_log_in_only_with_their_method_and_password() {
    let cluster = PgCluster::start_async(PgOptions {
        users: vec![
            PgUser::new("md5_user", "md5 secret", AuthMethod::Md5),
            PgUser::new("scram_user", "scram'secret", AuthMethod::ScramSha256),
            PgUser::new("trusted", "", AuthMethod::Trust),
        ],
        databases: vec!["appdb".to_owned()],
        ..PgOptions::default()
    })
    .await
    .unwrap();
    let primary = cluster.primary();

    let stored = primary.query_one("SELECT rolpassword FROM pg_authid WHERE rolname = 'md5_user'");
    assert!(
        stored.starts_with("md5"),
        "md5 user must have an md5 hash, got {stored}"
    );
    let stored =
        primary.query_one("SELECT rolpassword FROM pg_authid WHERE rolname = 'scram_user'");
    assert!(stored.starts_with("SCRAM-SHA-256$"), "got {stored}");

    primary.psql_in("appdb", "CREATE TABLE t (x int)").unwrap();
    for (user, password) in [("md5_user", "md5 secret"), ("scram_user", "scram'secret")] {
        let client = primary
            .connect(user, Some(password), "appdb")
            .await
            .unwrap();
        let row = client.query_one("SELECT current_user", &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), user);
        // Tables created by postgres are usable by every role, and so is schema public.
        client
            .batch_execute("INSERT INTO t VALUES (1)")
            .await
            .unwrap();
        client
            .batch_execute(&format!("CREATE TABLE own_{user} (x int)"))
            .await
            .unwrap();

        let error = primary
            .connect(user, Some("wrong"), "appdb")
            .await
            .unwrap_err();
        let pg_error = error
            .downcast_ref::<tokio_postgres::Error>()
            .expect("a postgres error");
        assert_eq!(
            pg_error.code(),
            Some(&SqlState::INVALID_PASSWORD),
            "{error:#}"
        );
        let error = primary.connect(user, None, "appdb").await.unwrap_err();
        assert!(format!("{error:#}").contains("password"), "{error:#}");
    }

    primary.connect("trusted", None, "postgres").await.unwrap();
    let url_client = tokio_postgres::connect(
        &primary.url("md5_user", Some("md5 secret"), "appdb"),
        tokio_postgres::NoTls,
    )
    .await
    .map(|(client, connection)| {
        tokio::spawn(connection);
        client
    })
    .unwrap();
    url_client.simple_query("SELECT 1").await.unwrap();

    let error = primary
        .connect("nobody", None, "postgres")
        .await
        .unwrap_err();
    assert!(format!("{error:#}").contains("pg_hba.conf"), "{error:#}");
}

#[test]
fn promote_turns_the_replica_into_a_primary() {
    let cluster = primary_and_replica();
    let replica = cluster.replica(0);
    cluster
        .primary()
        .psql("CREATE TABLE before_promotion (x int)")
        .unwrap();
    cluster.wait_for_replication().unwrap();

    replica.promote().unwrap();
    assert!(!replica.is_in_recovery().unwrap());
    replica
        .psql("INSERT INTO before_promotion VALUES (42)")
        .unwrap();
    assert_eq!(replica.query_one("SELECT x FROM before_promotion"), "42");
}

#[test]
fn paused_replay_hides_new_rows_until_resumed() {
    let cluster = primary_and_replica();
    let (primary, replica) = (cluster.primary(), cluster.replica(0));
    primary.psql("CREATE TABLE events (id int)").unwrap();
    cluster.wait_for_replication().unwrap();

    replica.pause_replay().unwrap();
    primary.psql("INSERT INTO events VALUES (1)").unwrap();
    let lsn = primary.current_wal_lsn().unwrap();
    integration_tests::wait::wait_until(
        "the replica to receive the insert",
        Duration::from_secs(30),
        || replica.has_received(&lsn).unwrap_or(false),
    )
    .unwrap();
    assert!(!replica.has_replayed(&lsn).unwrap());
    assert_eq!(replica.query_one("SELECT count(*) FROM events"), "0");
    let paused_wait = cluster.wait_caught_up(replica).unwrap_err();
    assert!(
        format!("{paused_wait:#}").contains("paus"),
        "{paused_wait:#}"
    );

    replica.resume_replay().unwrap();
    cluster.wait_caught_up(replica).unwrap();
    assert_eq!(replica.query_one("SELECT count(*) FROM events"), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_start_kill_and_pause_a_node() {
    let cluster = PgCluster::start_async(PgOptions::default()).await.unwrap();
    let primary = cluster.primary().clone();
    let port = primary.port();
    tokio::task::block_in_place(|| {
        primary.pgbench_init(1).unwrap();
        primary.restart().unwrap();
        assert_eq!(primary.port(), port);
        assert_eq!(
            primary.query_one("SELECT count(*) FROM pgbench_branches"),
            "1"
        );

        let pids = primary.process_ids();
        primary.kill().unwrap();
        assert!(!primary.is_running());
        assert!(pids.iter().all(|pid| !pid_is_alive(*pid)));
        primary.start().unwrap();
        assert_eq!(
            primary.query_one("SELECT count(*) FROM pgbench_branches"),
            "1"
        );
        let output = primary.pgbench(&["-S", "-t", "20", "-n"]).unwrap();
        assert!(
            output.contains("number of transactions actually processed: 20"),
            "{output}"
        );
    });

    // A connection opened before pause() keeps working: only the postmaster stops.
    let existing = primary.connect("postgres", None, "postgres").await.unwrap();
    primary.pause().unwrap();
    existing.simple_query("SELECT 1").await.unwrap();
    // The kernel still completes the TCP handshake: only the startup exchange hangs.
    let new_connection = tokio::time::timeout(
        Duration::from_millis(500),
        primary.connect("postgres", None, "postgres"),
    )
    .await;
    assert!(
        new_connection.is_err(),
        "a paused postmaster must not accept connections"
    );
    primary.resume().unwrap();
    primary.connect("postgres", None, "postgres").await.unwrap();

    // pause_all() freezes existing connections too.
    primary.pause_all().unwrap();
    let frozen = tokio::time::timeout(
        Duration::from_millis(500),
        existing.simple_query("SELECT 1"),
    )
    .await;
    assert!(frozen.is_err(), "a fully paused server must not answer");
    primary.resume().unwrap();
    existing.simple_query("SELECT 1").await.unwrap();
}

#[test]
fn drop_stops_every_process_and_removes_the_directory() {
    let cluster = primary_and_replica();
    let dir = cluster.dir().to_owned();
    let handle = cluster.replica(0).clone();
    let pids: Vec<u32> = cluster
        .nodes()
        .iter()
        .flat_map(|node| node.process_ids())
        .collect();
    assert!(
        pids.len() >= 2 * 4,
        "postmasters and their children: {pids:?}"
    );
    assert!(dir.exists());
    // Drop must also cope with a frozen server.
    cluster.replica(0).pause_all().unwrap();

    drop(cluster);
    let survivors: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|pid| pid_is_alive(*pid))
        .collect();
    assert!(survivors.is_empty(), "processes left behind: {survivors:?}");
    assert!(!dir.exists(), "{} was not removed", dir.display());
    assert!(!handle.is_running());
    assert!(
        handle.start().is_err(),
        "a node cannot restart after its cluster is gone"
    );
}
