//! Shared setup for the pooler tests: a pgbouncer.ini written to a temp dir and the
//! pooler run in-process on a free port.
#![allow(dead_code)]

pub mod admin;
pub mod raw;
pub mod split;

use std::path::{Path, PathBuf};

use integration_tests::PgNode;

/// A pooler running in-process against `node`, configured by an ini file.
pub struct TestPooler {
    pub running: Option<pooler::Running>,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl TestPooler {
    /// Writes pgbouncer.ini (`[databases]` pointing at `node`, `general` extra lines)
    /// and `userlist` lines, loads them as the binary would, and starts serving.
    pub async fn start(node: &PgNode, general: &str, userlist: &str) -> TestPooler {
        let databases = format!("* = host=127.0.0.1 port={}", node.port());
        Self::start_with_databases(&databases, general, userlist).await
    }

    /// Like [`TestPooler::start`] with its own `[databases]` lines.
    pub async fn start_with_databases(
        databases: &str,
        general: &str,
        userlist: &str,
    ) -> TestPooler {
        let dir = tempfile::tempdir().unwrap();
        let ini = format!(
            "[databases]\n{databases}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = 0\nunix_socket_dir = {sock}\nauth_file = {dir}/userlist.txt\n{general}\n",
            sock = dir.path().display(),
            dir = dir.path().display(),
        );
        let path: PathBuf = dir.path().join("pgbouncer.ini");
        std::fs::write(&path, ini).unwrap();
        std::fs::write(dir.path().join("userlist.txt"), userlist).unwrap();
        let loaded = pooler::config::load(&path).unwrap_or_else(|e| panic!("config: {e:?}"));
        let secrets = pooler::config::load_auth_file(&dir.path().join("userlist.txt"))
            .unwrap()
            .0;
        let running = pooler::start(loaded.config, secrets).await.unwrap();
        let port = running.tcp_addrs[0].port();
        TestPooler {
            running: Some(running),
            port,
            dir,
        }
    }

    /// tokio-postgres config for a client of the pooler.
    pub fn client_config(
        &self,
        user: &str,
        password: Option<&str>,
        db: &str,
    ) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user(user)
            .dbname(db);
        if let Some(p) = password {
            config.password(p);
        }
        config
    }

    /// Connects with tokio-postgres through the pooler.
    pub async fn connect(
        &self,
        user: &str,
        password: Option<&str>,
        db: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) = self
            .client_config(user, password, db)
            .connect(tokio_postgres::NoTls)
            .await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Runs pgbench against the pooler and returns its stdout; panics with its output
    /// on failure.
    pub fn pgbench(&self, args: &[&str]) -> String {
        let output = std::process::Command::new(integration_tests::pg_tool("pgbench").unwrap())
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(args)
            .arg("postgres")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "pgbench {args:?} failed:\n{stdout}\n{stderr}"
        );
        stdout
    }

    /// The pooler's `unix_socket_dir` (holds `.s.PGSQL.<port>`).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs the real `psql -X -A -t -v ON_ERROR_STOP=1` through the pooler as `user` in
    /// database `postgres`; `host` is `127.0.0.1` or a socket directory. Blocking: call it
    /// from `spawn_blocking`. Returns stdout (trimmed) or stdout+stderr on failure.
    pub fn psql(&self, host: &str, user: &str, sql: &str) -> Result<String, String> {
        run_psql(host, self.port, user, sql)
    }

    /// Connects through the pooler and forwards every asynchronous message (notices,
    /// notifications) the connection receives to the returned channel.
    pub async fn connect_with_messages(
        &self,
        config: &tokio_postgres::Config,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::AsyncMessage>,
        ),
        tokio_postgres::Error,
    > {
        let (client, mut connection) = config.connect(tokio_postgres::NoTls).await?;
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(message)) =
                std::future::poll_fn(|cx| connection.poll_message(cx)).await
            {
                let _ = sender.send(message);
            }
        });
        Ok((client, receiver))
    }

    /// The pgbouncer.ini the pooler was started from (rewrite it, then RELOAD).
    pub fn ini_path(&self) -> PathBuf {
        self.dir.path().join("pgbouncer.ini")
    }

    /// The bound `metrics_addr`, when the config set one.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.running.as_ref().and_then(|r| r.metrics_addr)
    }

    /// Connects with tokio-postgres to the admin console (database `pgbouncer`).
    pub async fn console(
        &self,
        user: &str,
        password: Option<&str>,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        self.connect(user, password, "pgbouncer").await
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown(std::time::Duration::from_secs(5)).await;
        }
    }
}

/// Server connections the pooler holds to `node` for `user`.
pub fn server_connections(node: &PgNode, user: &str) -> usize {
    node.psql(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = '{user}' AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
    ))
    .unwrap()
    .trim()
    .parse()
    .unwrap()
}

/// Runs `psql` against `host`:`port` (see [`TestPooler::psql`]).
pub fn run_psql(host: &str, port: u16, user: &str, sql: &str) -> Result<String, String> {
    let output = std::process::Command::new(integration_tests::pg_tool("psql").unwrap())
        .env_remove("PGOPTIONS")
        .env("PGCONNECT_TIMEOUT", "10")
        .args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            host,
            "-p",
            &port.to_string(),
            "-U",
            user,
            "-d",
            "postgres",
            "-c",
            sql,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Server connections of `user` to `node` that are running a query (`state = 'active'`).
pub fn active_server_connections(node: &PgNode, user: &str) -> usize {
    node.psql(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = '{user}' AND backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid()"
    ))
    .unwrap()
    .trim()
    .parse()
    .unwrap()
}

/// The server's (or pooler's) error message of a failed call: the ErrorResponse text when
/// there is one, else the error's display.
pub fn error_message(err: &tokio_postgres::Error) -> String {
    err.as_db_error()
        .map(|e| e.message().to_owned())
        .unwrap_or_else(|| err.to_string())
}

/// The SQLSTATE of a failed call, if the failure carried an ErrorResponse.
pub fn error_code(err: &tokio_postgres::Error) -> Option<String> {
    err.code().map(|c| c.code().to_owned())
}

/// Polls `probe` every 50 ms until it returns true or `timeout` passes; returns the last result.
pub async fn eventually(timeout: std::time::Duration, mut probe: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if probe() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Runs `psql` exactly as an operator would (`psql -h HOST -p PORT -U USER DB -c SQL`,
/// default aligned output), with `PGPASSWORD` when given. Blocking. Returns stdout or
/// stdout+stderr on failure.
pub fn operator_psql(
    host: &str,
    port: u16,
    user: &str,
    password: Option<&str>,
    db: &str,
    sql: &str,
) -> Result<String, String> {
    let mut command = std::process::Command::new(integration_tests::pg_tool("psql").unwrap());
    command
        .env_remove("PGOPTIONS")
        .env("PGCONNECT_TIMEOUT", "10")
        .args([
            "-X",
            "-h",
            host,
            "-p",
            &port.to_string(),
            "-U",
            user,
            db,
            "-c",
            sql,
        ])
        .stdin(std::process::Stdio::null());
    match password {
        Some(p) => command.env("PGPASSWORD", p),
        None => command.env_remove("PGPASSWORD"),
    };
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A minimal HTTP/1.1 GET (`Connection: close`): returns (status code, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut response),
    )
    .await
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}
