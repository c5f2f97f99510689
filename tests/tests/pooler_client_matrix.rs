//! Real drivers through the pooler: `tests/clients/matrix.py` runs psycopg 3 (sync, async,
//! pipelines, COPY), asyncpg (with and without its statement cache), SQLAlchemy 2.0 and
//! pgjdbc, checking values, against the pooler in transaction mode (2 servers, named
//! prepared statements), in session mode, and in transaction mode with read/write
//! splitting over a primary and a replica. Needs python3 with
//! `tests/clients/requirements.txt` and Java 17 + `libpostgresql-jdbc-java`: a missing one
//! fails the test with the install command (the CI installs them), it never skips.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TestPooler;
use integration_tests::{AuthMethod, PgCluster, PgOptions, PgUser};

const USER: &str = "app";
const PASSWORD: &str = "app-secret";
const INSTALL: &str = "pip install -r tests/clients/requirements.txt && \
     apt-get install -y default-jre-headless libpostgresql-jdbc-java";
/// Per-case timeout handed to the matrix: it kills a hung case and reports it as FAIL.
const CASE_TIMEOUT_SECS: u64 = 45;
/// The whole matrix run; only reached if something hangs outside the per-case timeouts.
const RUN_TIMEOUT: Duration = Duration::from_secs(25 * 60);

/// Clients connect with SCRAM; `max_client_conn` is far above what the cases open.
const TRANSACTION_MODE: &str = "pool_mode = transaction\ndefault_pool_size = 2\n\
     max_prepared_statements = 200\nmax_client_conn = 1000\nauth_type = scram-sha-256\n\
     ignore_startup_parameters = extra_float_digits\n";
/// Enough servers for the most connections one case holds at once (asyncpg pool of 10
/// plus its setup connection, 8 JDBC workers, ...).
const SESSION_MODE: &str = "pool_mode = session\ndefault_pool_size = 60\n\
     max_client_conn = 1000\nauth_type = scram-sha-256\n\
     ignore_startup_parameters = extra_float_digits\n";

fn cluster(replicas: usize) -> PgCluster {
    PgCluster::start(PgOptions {
        replicas,
        users: vec![PgUser::new(USER, PASSWORD, AuthMethod::ScramSha256)],
        ..PgOptions::default()
    })
    .unwrap()
}

/// userlist.txt with the role's SCRAM secret: the pooler logs in to PostgreSQL with the
/// keys recovered from the client's own SCRAM login.
fn scram_userlist(pg: &PgCluster) -> String {
    let scram = pg
        .primary()
        .psql(&format!(
            "SELECT rolpassword FROM pg_authid WHERE rolname = '{USER}'"
        ))
        .unwrap();
    format!("\"{USER}\" \"{scram}\"\n")
}

fn matrix_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("clients")
        .join("matrix.py")
}

/// Panics (the test fails, never skips) when python3 or a driver is missing.
fn require_python_drivers() {
    let probe = Command::new("python3")
        .args(["-c", "import psycopg, asyncpg, sqlalchemy, greenlet"])
        .stdin(Stdio::null())
        .output();
    match probe {
        Err(error) => {
            panic!("python3 is not runnable ({error}); install python3 and: {INSTALL}")
        }
        Ok(output) if !output.status.success() => panic!(
            "the client matrix drivers are missing:\n{}\ninstall them with: {INSTALL}",
            String::from_utf8_lossy(&output.stderr)
        ),
        Ok(_) => {}
    }
}

/// Runs the whole matrix against the pooler on `port` (blocking) and returns its
/// output; panics with the output when a case failed or the run hung.
fn run_matrix(port: u16, dbname: &str, mode: &str) -> String {
    require_python_drivers();
    // stdout and stderr share one file (and one offset, through the duplicated handle).
    let log = tempfile::NamedTempFile::new().unwrap();
    let log_file = log.reopen().unwrap();
    let mut command = Command::new("python3");
    command.arg(matrix_script()).args([
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--user",
        USER,
        "--password",
        PASSWORD,
        "--dbname",
        dbname,
        "--mode",
        mode,
        "--timeout",
        &CASE_TIMEOUT_SECS.to_string(),
        "--require-jdbc",
    ]);
    // CLIENT_MATRIX_ONLY=group,case runs a subset (to chase one failure).
    if let Ok(only) = std::env::var("CLIENT_MATRIX_ONLY") {
        command.args(["--only", &only, "-v"]);
    }
    // No inherited PGOPTIONS, PGSSLMODE, ... may change what the drivers send.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            command.env_remove(&key);
        }
    }
    let mut child = command
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "python3 {}: {e}; install: {INSTALL}",
                matrix_script().display()
            )
        });
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = std::fs::read_to_string(log.path()).unwrap_or_default();
    match status {
        None => {
            panic!("client matrix ({mode}) still running after {RUN_TIMEOUT:?}, killed:\n{output}")
        }
        Some(status) => assert!(
            status.success(),
            "client matrix ({mode}) failed ({status}):\n{output}"
        ),
    }
    assert!(
        output
            .lines()
            .any(|line| line.starts_with("matrix: ") && line.contains(" 0 failed")),
        "client matrix ({mode}) printed no summary:\n{output}"
    );
    output
}

/// Runs the matrix from a blocking thread so the in-process pooler keeps serving.
async fn matrix(port: u16, dbname: &'static str, mode: &'static str) -> String {
    tokio::task::spawn_blocking(move || run_matrix(port, dbname, mode))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_drivers_work_in_transaction_mode() {
    let pg = cluster(0);
    let pooler = TestPooler::start(pg.primary(), TRANSACTION_MODE, &scram_userlist(&pg)).await;
    let output = matrix(pooler.port, "postgres", "transaction").await;
    println!("{output}");
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_drivers_work_in_session_mode() {
    let pg = cluster(0);
    let pooler = TestPooler::start(pg.primary(), SESSION_MODE, &scram_userlist(&pg)).await;
    let output = matrix(pooler.port, "postgres", "session").await;
    println!("{output}");
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_drivers_work_with_read_write_split() {
    let pg = cluster(1);
    // Database `postgres` spans the primary and the replica; reads go to the replica.
    let databases = format!(
        "postgres = host={} read_write_split=on health_check_period=0.1 ban_time=2",
        common::split::host_list(&pg)
    );
    // Plaintext secret here: the health monitor logs in before any client has.
    let userlist = format!("\"{USER}\" \"{PASSWORD}\"\n");
    let pooler = TestPooler::start_with_databases(&databases, TRANSACTION_MODE, &userlist).await;
    // Mode `split` adds psycopg.split_routing (plain reads answered by the replica,
    // transactions by the primary) and pins cross-connection checks to the primary.
    let output = matrix(pooler.port, "postgres", "split").await;
    println!("{output}");
    assert!(output.contains("ok psycopg.split_routing"), "{output}");
    pooler.stop().await;
}
