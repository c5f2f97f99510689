//! Shared setup for the pooler tests: a pgbouncer.ini written to a temp dir and the
//! pooler run in-process on a free port.
#![allow(dead_code)]

use std::path::PathBuf;

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
        let dir = tempfile::tempdir().unwrap();
        let ini = format!(
            "[databases]\n* = host=127.0.0.1 port={port}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = 0\nunix_socket_dir = {sock}\nauth_file = {dir}/userlist.txt\n{general}\n",
            port = node.port(),
            sock = dir.path().display(),
            dir = dir.path().display(),
        );
        let path: PathBuf = dir.path().join("pgbouncer.ini");
        std::fs::write(&path, ini).unwrap();
        std::fs::write(dir.path().join("userlist.txt"), userlist).unwrap();
        let loaded = pooler::config::load(&path).unwrap_or_else(|e| panic!("config: {e:?}"));
        let secrets = pooler::config::load_auth_file(&dir.path().join("userlist.txt")).unwrap().0;
        let running = pooler::start(loaded.config, secrets).await.unwrap();
        let port = running.tcp_addrs[0].port();
        TestPooler { running: Some(running), port, dir }
    }

    /// tokio-postgres config for a client of the pooler.
    pub fn client_config(&self, user: &str, password: Option<&str>, db: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config.host("127.0.0.1").port(self.port).user(user).dbname(db);
        if let Some(p) = password {
            config.password(p);
        }
        config
    }

    /// Connects with tokio-postgres through the pooler.
    pub async fn connect(&self, user: &str, password: Option<&str>, db: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) = self.client_config(user, password, db).connect(tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Runs pgbench against the pooler and returns its stdout; panics with its output
    /// on failure.
    pub fn pgbench(&self, args: &[&str]) -> String {
        let output = std::process::Command::new(integration_tests::pg_tool("pgbench").unwrap())
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres"])
            .args(args)
            .arg("postgres")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "pgbench {args:?} failed:\n{stdout}\n{stderr}");
        stdout
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
