//! The `pooler` binary's signals against a real PostgreSQL: SIGHUP reloads (a new
//! database appears, connected clients stay; a broken file keeps the old config),
//! SIGUSR1/SIGUSR2 pause and resume, SIGTERM shuts down after clients leave.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::{PgCluster, PgOptions};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

struct Daemon {
    child: Child,
    port: u16,
    ini: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ini_text(pg_port: u16, port: u16, dir: &std::path::Path, extra_db: &str) -> String {
    format!(
        "[databases]\npostgres = host=127.0.0.1 port={pg_port}\n{extra_db}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\nauth_type = trust\nauth_file = {}/users.txt\npool_mode = transaction\n",
        dir.display()
    )
}

fn start(pg: &PgCluster) -> Daemon {
    start_with(pg, "")
}

/// Starts the binary with `general` lines added to `[pgbouncer]`.
fn start_with(pg: &PgCluster, general: &str) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let port = integration_tests::ports::free_port().unwrap();
    let ini = dir.path().join("pgbouncer.ini");
    let text = format!(
        "{}{general}",
        ini_text(pg.primary().port(), port, dir.path(), "")
    );
    std::fs::write(&ini, text).unwrap();
    std::fs::write(dir.path().join("users.txt"), "\"postgres\" \"\"\n").unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_pooler"))
        .arg(&ini)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "pooler did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Daemon {
        child,
        port,
        ini,
        _dir: dir,
    }
}

async fn connect(port: u16, db: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user("postgres")
        .dbname(db)
        .connect(tokio_postgres::NoTls)
        .await?;
    tokio::spawn(connection);
    Ok(client)
}

fn signal(daemon: &Daemon, signal: Signal) {
    kill(Pid::from_raw(daemon.child.id() as i32), signal).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_a_database_without_dropping_clients_and_a_bad_file_changes_nothing() {
    let pg = PgCluster::start(PgOptions {
        databases: vec!["other".into()],
        ..PgOptions::default()
    })
    .unwrap();
    let daemon = start(&pg);
    let client = connect(daemon.port, "postgres").await.unwrap();
    assert!(
        connect(daemon.port, "reporting").await.is_err(),
        "not configured yet"
    );

    let extra = format!(
        "reporting = host=127.0.0.1 port={} dbname=other\n",
        pg.primary().port()
    );
    let dir = daemon.ini.parent().unwrap().to_path_buf();
    std::fs::write(
        &daemon.ini,
        ini_text(pg.primary().port(), daemon.port, &dir, &extra),
    )
    .unwrap();
    signal(&daemon, Signal::SIGHUP);
    let mut reporting = None;
    for _ in 0..50 {
        if let Ok(c) = connect(daemon.port, "reporting").await {
            reporting = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reporting = reporting.expect("reload added the database");
    let row = reporting
        .query_one("SELECT current_database()::text", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "other");
    client
        .simple_query("SELECT 1")
        .await
        .expect("the old client is still connected");

    std::fs::write(&daemon.ini, "[pgbouncer]\nno_such_key = 1\n").unwrap();
    signal(&daemon, Signal::SIGHUP);
    tokio::time::sleep(Duration::from_millis(300)).await;
    client
        .simple_query("SELECT 1")
        .await
        .expect("a bad file keeps the old config");
    connect(daemon.port, "reporting")
        .await
        .expect("old config still serves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_pauses_new_transactions_until_sigusr2() {
    let pg = PgCluster::start(PgOptions::default()).unwrap();
    let daemon = start(&pg);
    let client = connect(daemon.port, "postgres").await.unwrap();
    client.simple_query("SELECT 1").await.unwrap();
    signal(&daemon, Signal::SIGUSR1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let query = tokio::spawn(async move { client.simple_query("SELECT 2").await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!query.is_finished(), "paused: the transaction waits");
    signal(&daemon, Signal::SIGUSR2);
    tokio::time::timeout(Duration::from_secs(5), query)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_accepting_and_exits_once_clients_leave() {
    let pg = PgCluster::start(PgOptions::default()).unwrap();
    let mut daemon = start(&pg);
    let client = connect(daemon.port, "postgres").await.unwrap();
    signal(&daemon, Signal::SIGTERM);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        connect(daemon.port, "postgres").await.is_err(),
        "no new clients"
    );
    drop(client);
    let started = Instant::now();
    loop {
        if let Some(status) = daemon.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "pooler did not exit"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits up to `limit` for the process to exit; returns how long it took.
async fn exit_time(daemon: &mut Daemon, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if daemon.child.try_wait().unwrap().is_some() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "pooler still running after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_by_shutdown_timeout_whatever_the_clients_do() {
    let pg = PgCluster::start(PgOptions::default()).unwrap();
    let mut daemon = start_with(&pg, "shutdown_timeout = 1\n");
    // A client inside a transaction, another mid-batch after a Flush: neither ends.
    let client = connect(daemon.port, "postgres").await.unwrap();
    client.batch_execute("BEGIN; SELECT 1").await.unwrap();
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", daemon.port))
        .await
        .unwrap();
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut out = bytes::BytesMut::new();
        protocol::pg::encode::startup_message(
            &mut out,
            &[("user", "postgres"), ("database", "postgres")],
        )
        .unwrap();
        protocol::pg::encode::parse(&mut out, b"", b"SELECT 1", &[]).unwrap();
        protocol::pg::encode::flush(&mut out);
        raw.write_all(&out).await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_secs(2), raw.read(&mut buf)).await;
    }
    signal(&daemon, Signal::SIGTERM);
    let took = exit_time(&mut daemon, Duration::from_secs(10)).await;
    assert!(took < Duration::from_secs(4), "exited after {took:?}");
    drop(raw);
    drop(client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_exits_at_once() {
    let pg = PgCluster::start(PgOptions::default()).unwrap();
    let mut daemon = start_with(&pg, "shutdown_timeout = 60\n");
    let client = connect(daemon.port, "postgres").await.unwrap();
    client.batch_execute("BEGIN; SELECT 1").await.unwrap();
    signal(&daemon, Signal::SIGTERM);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "waits for the transaction"
    );
    signal(&daemon, Signal::SIGTERM);
    let took = exit_time(&mut daemon, Duration::from_secs(10)).await;
    assert!(took < Duration::from_secs(3), "exited after {took:?}");
    drop(client);
}
