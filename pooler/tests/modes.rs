//! The binary's other ways to run: sidecar mode from a database URL (flags and env
//! vars), and `-d` (daemon with pidfile and logfile).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::{AuthMethod, PgCluster, PgOptions, PgUser};

fn wait_listening(port: u16) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "pooler did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_mode_needs_no_file() {
    let pg = PgCluster::start(PgOptions {
        users: vec![PgUser::new("app", "s3cret", AuthMethod::ScramSha256)],
        ..PgOptions::default()
    })
    .unwrap();
    let port = integration_tests::ports::free_port().unwrap();
    let url = format!(
        "postgres://app:s3cret@127.0.0.1:{}/postgres",
        pg.primary().port()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_pooler"))
        .env("POOLER_DATABASE_URL", &url)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--pool-mode",
            "transaction",
            "--pool-size",
            "3",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(port);
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user("app")
        .password("s3cret")
        .dbname("postgres")
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "app");
    let wrong = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user("app")
        .password("nope")
        .dbname("postgres")
        .connect(tokio_postgres::NoTls)
        .await;
    assert!(wrong.is_err());
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn daemon_mode_detaches_and_writes_its_pidfile() {
    let pg = PgCluster::start(PgOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = integration_tests::ports::free_port().unwrap();
    let ini = dir.path().join("pgbouncer.ini");
    let pidfile = dir.path().join("pooler.pid");
    std::fs::write(dir.path().join("users.txt"), "\"postgres\" \"\"\n").unwrap();
    let text = format!(
        "[databases]\n* = host=127.0.0.1 port={}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\nauth_type = trust\nauth_file = users.txt\npidfile = {}\nlogfile = {}/pooler.log\n",
        pg.primary().port(),
        pidfile.display(),
        dir.path().display()
    );
    std::fs::write(&ini, text).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_pooler"))
        .arg("-d")
        .arg(&ini)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the foreground process exits once detached"
    );
    wait_listening(port);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let log = std::fs::read_to_string(dir.path().join("pooler.log")).unwrap();
    assert!(log.contains("listening on"), "{log}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let started = Instant::now();
    while pidfile.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "pidfile removed at exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Without a pidfile -d refuses, as PgBouncer does.
    std::fs::write(
        &ini,
        "[databases]\n[pgbouncer]\nauth_type = trust\nauth_file = users.txt\nlogfile = x.log\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pooler"))
        .arg("-d")
        .arg(&ini)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("daemon needs pidfile configured"));
}
