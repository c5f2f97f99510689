//! pooler in session mode against a real PostgreSQL: the real psql over TCP and the Unix
//! socket, server reset between clients, LISTEN/NOTIFY and NOTICE forwarding, and COPY in
//! both directions in session and transaction mode.

mod common;

use std::time::Duration;

use common::{TestPooler, server_connections};
use futures_util::{SinkExt, StreamExt};
use integration_tests::{AuthMethod, PgCluster, PgOptions, PgUser};
use tokio_postgres::AsyncMessage;

const SESSION_MODE: &str = "pool_mode = session\ndefault_pool_size = 1\nauth_type = trust\n";
const TRANSACTION_MODE: &str =
    "pool_mode = transaction\ndefault_pool_size = 2\nauth_type = trust\n";
const USERLIST: &str = "\"postgres\" \"\"\n\"app\" \"\"\n";

fn cluster() -> PgCluster {
    PgCluster::start(PgOptions {
        users: vec![PgUser::new("app", "app-secret", AuthMethod::Trust)],
        ..PgOptions::default()
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_works_over_tcp_and_the_unix_socket() {
    let pg = cluster();
    let pooler = TestPooler::start(pg.primary(), SESSION_MODE, USERLIST).await;
    let socket_dir = pooler.socket_dir().to_str().unwrap().to_owned();
    assert!(
        pooler
            .socket_dir()
            .join(format!(".s.PGSQL.{}", pooler.port))
            .exists(),
        "Unix socket file"
    );
    let port = pooler.port;
    let (tcp, unix) = tokio::task::spawn_blocking(move || {
        let sql =
            "SELECT current_user || ':' || (inet_server_port() IS NOT NULL) || ':' || (2 + 3)";
        let tcp = common::run_psql("127.0.0.1", port, "app", sql);
        let unix = common::run_psql(&socket_dir, port, "app", sql);
        (tcp, unix)
    })
    .await
    .unwrap();
    // The pooler itself talks TCP to PostgreSQL, whichever way the client came in.
    assert_eq!(tcp.unwrap(), "app:true:5");
    assert_eq!(unix.unwrap(), "app:true:5");
    // A multi-statement psql script with an error stops and reports the server's error.
    let port = pooler.port;
    let failed = tokio::task::spawn_blocking(move || {
        common::run_psql("127.0.0.1", port, "app", "SELECT 1/0")
    })
    .await
    .unwrap();
    assert!(failed.unwrap_err().contains("division by zero"));
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_state_does_not_leak_to_the_next_client() {
    let pg = cluster();
    let pooler = TestPooler::start(pg.primary(), SESSION_MODE, USERLIST).await;
    let first = pooler.connect("app", None, "postgres").await.unwrap();
    first
        .batch_execute(
            "SET statement_timeout = '4321ms'; SET search_path = leaked, public; \
             CREATE TEMP TABLE leaked_temp (x int); PREPARE leaked_plan AS SELECT 1",
        )
        .await
        .unwrap();
    let first_pid: i32 = first
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    drop(first);

    // pool_size = 1: the next client waits for the same server, which was reset.
    let second = tokio::time::timeout(
        Duration::from_secs(10),
        pooler.connect("app", None, "postgres"),
    )
    .await
    .expect("second client gets the released server")
    .unwrap();
    let row = second
        .query_one(
            "SELECT pg_backend_pid(), current_setting('statement_timeout'), current_setting('search_path'), \
             to_regclass('leaked_temp') IS NULL, (SELECT count(*) FROM pg_prepared_statements WHERE name = 'leaked_plan')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, i32>(0),
        first_pid,
        "same server connection reused"
    );
    assert_eq!(row.get::<_, String>(1), "0", "SET statement_timeout leaked");
    assert_eq!(
        row.get::<_, String>(2),
        "\"$user\", public",
        "SET search_path leaked"
    );
    assert!(row.get::<_, bool>(3), "temp table leaked");
    assert_eq!(row.get::<_, i64>(4), 0, "prepared statement leaked");
    assert_eq!(server_connections(pg.primary(), "app"), 1);
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_notify_and_notices_are_forwarded_in_session_mode() {
    let pg = cluster();
    let pooler = TestPooler::start(
        pg.primary(),
        "pool_mode = session\ndefault_pool_size = 4\nauth_type = trust\n",
        USERLIST,
    )
    .await;
    let config = pooler.client_config("app", None, "postgres");
    let (listener, mut messages) = pooler.connect_with_messages(&config).await.unwrap();
    listener.batch_execute("LISTEN jobs").await.unwrap();

    // Notification sent by another client through the pooler while the listener is idle.
    let sender = pooler.connect("app", None, "postgres").await.unwrap();
    sender.batch_execute("NOTIFY jobs, 'job 1'").await.unwrap();
    sender
        .execute("SELECT pg_notify('jobs', $1)", &[&"job 2"])
        .await
        .unwrap();
    let mut payloads = Vec::new();
    while payloads.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(10), messages.recv()).await {
            Ok(Some(AsyncMessage::Notification(n))) => {
                assert_eq!(n.channel(), "jobs");
                payloads.push(n.payload().to_owned());
            }
            Ok(Some(other)) => panic!("unexpected async message {other:?}"),
            Ok(None) => panic!("listener connection closed"),
            Err(_) => panic!("notification not forwarded to an idle client; got {payloads:?}"),
        }
    }
    assert_eq!(payloads, ["job 1", "job 2"]);

    // NOTICE raised inside a DO block reaches the client before the command completes.
    listener
        .batch_execute(
            "DO $$ BEGIN RAISE NOTICE 'hello from %', 'plpgsql'; RAISE WARNING 'careful'; END $$",
        )
        .await
        .unwrap();
    let mut notices = Vec::new();
    while let Ok(message) = messages.try_recv() {
        match message {
            AsyncMessage::Notice(notice) => {
                notices.push((notice.severity().to_owned(), notice.message().to_owned()))
            }
            other => panic!("unexpected async message {other:?}"),
        }
    }
    assert_eq!(
        notices,
        [
            ("NOTICE".to_owned(), "hello from plpgsql".to_owned()),
            ("WARNING".to_owned(), "careful".to_owned())
        ]
    );

    // UNLISTEN then NOTIFY: nothing arrives any more.
    listener.batch_execute("UNLISTEN jobs").await.unwrap();
    sender.batch_execute("NOTIFY jobs, 'job 3'").await.unwrap();
    listener.batch_execute("SELECT 1").await.unwrap();
    assert!(
        messages.try_recv().is_err(),
        "no notification after UNLISTEN"
    );
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_are_forwarded_in_transaction_mode() {
    let pg = cluster();
    let pooler = TestPooler::start(pg.primary(), TRANSACTION_MODE, USERLIST).await;
    let config = pooler.client_config("app", None, "postgres");
    let (client, mut messages) = pooler.connect_with_messages(&config).await.unwrap();
    for i in 0..3 {
        client
            .batch_execute(&format!("DO $$ BEGIN RAISE NOTICE 'round {i}'; END $$"))
            .await
            .unwrap();
        match messages.try_recv() {
            Ok(AsyncMessage::Notice(notice)) => assert_eq!(notice.message(), format!("round {i}")),
            other => panic!("round {i}: expected a notice, got {other:?}"),
        }
    }
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_and_out_work_in_session_mode() {
    copy_round_trip(SESSION_MODE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_and_out_work_in_transaction_mode() {
    copy_round_trip(TRANSACTION_MODE).await;
}

/// COPY FROM STDIN of 10 000 rows (several CopyData chunks), COPY TO STDOUT of them back,
/// a failing COPY FROM STDIN, then plain queries on the same connection.
async fn copy_round_trip(general: &str) {
    let pg = cluster();
    pg.primary()
        .psql("CREATE TABLE copied (id int PRIMARY KEY, name text); GRANT ALL ON copied TO app")
        .unwrap();
    let pooler = TestPooler::start(pg.primary(), general, USERLIST).await;
    let client = pooler.connect("app", None, "postgres").await.unwrap();

    let expected: String = (0..10_000).map(|i| format!("{i}\tname {i}\n")).collect();
    let sink = client
        .copy_in("COPY copied (id, name) FROM STDIN")
        .await
        .unwrap();
    let mut sink = std::pin::pin!(sink);
    for chunk in expected.as_bytes().chunks(7000) {
        sink.send(bytes::Bytes::copy_from_slice(chunk))
            .await
            .unwrap();
    }
    let copied = sink.as_mut().finish().await.unwrap();
    assert_eq!(copied, 10_000);

    let stream = client
        .copy_out("COPY (SELECT id, name FROM copied ORDER BY id) TO STDOUT")
        .await
        .unwrap();
    let mut stream = std::pin::pin!(stream);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(String::from_utf8(out).unwrap(), expected);

    // A COPY the server rejects half-way (duplicate key) ends in an error, and the
    // connection stays usable.
    let sink = client
        .copy_in("COPY copied (id, name) FROM STDIN")
        .await
        .unwrap();
    let mut sink = std::pin::pin!(sink);
    sink.send(bytes::Bytes::from_static(b"10001\tnew\n1\tduplicate\n"))
        .await
        .unwrap();
    let err = sink.as_mut().finish().await.unwrap_err();
    assert_eq!(common::error_code(&err).as_deref(), Some("23505"), "{err}");
    let count: i64 = client
        .query_one("SELECT count(*) FROM copied", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 10_000);
    assert_eq!(
        pg.primary().psql("SELECT count(*) FROM copied").unwrap(),
        "10000"
    );
    pooler.stop().await;
}
