//! `PgNode`: one PostgreSQL server of a cluster (primary or replica) and what tests do
//! to it: connect, query, stop/start/kill/pause, promote, control WAL replay, pgbench.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use nix::sys::signal::Signal;

use crate::pg_setup::{pg_command, pg_tool, prepare_pg_command, quote_literal};
use crate::ports::{AddrInUse, log_says_addr_in_use, with_free_port};
use crate::process::{ChildProcess, RunAs, run_command, server_command};
use crate::url::percent_encode;
use crate::wait::{give_up, wait_for};

/// How long a postmaster may take to accept connections (crash recovery included).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a fast shutdown may take before the node is SIGKILLed.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// Timeout of one psql run.
const PSQL_TIMEOUT: Duration = Duration::from_secs(120);
/// Timeout of `pgbench -i` and of `pgbench` runs.
const PGBENCH_TIMEOUT: Duration = Duration::from_secs(600);

/// Where one node lives: `<cluster dir>/<name>/` is its socket directory and holds
/// `data/` and `postgres.log`.
#[derive(Clone, Debug)]
pub(crate) struct NodeLayout {
    pub(crate) name: String,
    pub(crate) data_dir: PathBuf,
    pub(crate) socket_dir: PathBuf,
    pub(crate) log_path: PathBuf,
    pub(crate) run_as: RunAs,
}

#[derive(Debug)]
struct NodeShared {
    layout: NodeLayout,
    port: u16,
    postmaster: Mutex<Option<ChildProcess>>,
    /// Set when the owning cluster is dropped: the directory is going away.
    is_retired: AtomicBool,
}

/// Handle to one PostgreSQL server: the primary or a replica of a [`crate::PgCluster`].
///
/// Cheap to clone (move a clone into `spawn_blocking`); all clones control the same
/// server. The port never changes, also across [`PgNode::stop`]/[`PgNode::start`].
/// The server is stopped when its cluster is dropped, whatever clones remain.
#[derive(Clone, Debug)]
pub struct PgNode {
    shared: Arc<NodeShared>,
}

impl PgNode {
    /// Starts a postmaster for an initialised data directory on a fresh free port.
    pub(crate) fn launch(layout: NodeLayout) -> anyhow::Result<Self> {
        let (port, postmaster) =
            with_free_port(|port| Ok((port, spawn_postmaster(&layout, port)?)))?;
        Ok(Self {
            shared: Arc::new(NodeShared {
                layout,
                port,
                postmaster: Mutex::new(Some(postmaster)),
                is_retired: AtomicBool::new(false),
            }),
        })
    }

    fn postmaster(&self) -> MutexGuard<'_, Option<ChildProcess>> {
        self.shared
            .postmaster
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn with_running<T>(
        &self,
        action: impl FnOnce(&mut ChildProcess) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut guard = self.postmaster();
        match guard.as_mut() {
            Some(postmaster) => {
                if !postmaster.is_running() {
                    bail!("{} is not running", self.name());
                }
                action(postmaster)
            }
            None => bail!("{} is not running", self.name()),
        }
    }

    /// Node name: `primary`, `replica1`, `replica2`…
    pub fn name(&self) -> &str {
        &self.shared.layout.name
    }

    /// TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.shared.port
    }

    /// Always `"127.0.0.1"`: servers listen on loopback only.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port()))
    }

    /// Directory holding the unix socket `.s.PGSQL.<port>` (use as `host=` for libpq).
    pub fn socket_dir(&self) -> &Path {
        &self.shared.layout.socket_dir
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.shared.layout.data_dir
    }

    /// The server log (stderr of the postmaster, all restarts appended).
    pub fn log_path(&self) -> &Path {
        &self.shared.layout.log_path
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        crate::process::log_tail(self.log_path(), lines)
    }

    /// Postmaster pid while running.
    pub fn pid(&self) -> Option<u32> {
        let mut guard = self.postmaster();
        guard
            .as_mut()
            .and_then(|postmaster| postmaster.is_running().then(|| postmaster.pid()))
    }

    /// Pids of the postmaster and all its children (backends, walsender, checkpointer…).
    pub fn process_ids(&self) -> Vec<u32> {
        self.postmaster()
            .as_mut()
            .map(ChildProcess::tree_pids)
            .unwrap_or_default()
    }

    /// True while the postmaster runs.
    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// `postgres://user[:password]@127.0.0.1:<port>/db`, percent-encoded.
    pub fn url(&self, user: &str, password: Option<&str>, db: &str) -> String {
        let credentials = match password {
            Some(password) => format!("{}:{}", percent_encode(user), percent_encode(password)),
            None => percent_encode(user),
        };
        format!(
            "postgres://{credentials}@127.0.0.1:{}/{}",
            self.port(),
            percent_encode(db)
        )
    }

    /// libpq key/value string `host=127.0.0.1 port=<port> user='…' dbname='…'`.
    pub fn conninfo(&self, user: &str, db: &str) -> String {
        let quote = |value: &str| format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"));
        format!(
            "host=127.0.0.1 port={} user={} dbname={}",
            self.port(),
            quote(user),
            quote(db)
        )
    }

    /// tokio-postgres settings for this node over TCP (10 s connect timeout).
    pub fn tokio_config(
        &self,
        user: &str,
        password: Option<&str>,
        db: &str,
    ) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port())
            .user(user)
            .dbname(db)
            .application_name("integration-tests")
            .connect_timeout(Duration::from_secs(10));
        if let Some(password) = password {
            config.password(password);
        }
        config
    }

    /// Connects with tokio-postgres over TCP (no TLS) and spawns the connection task on
    /// the current runtime. Authentication failures keep the `tokio_postgres::Error`
    /// in the chain (`error.downcast_ref::<tokio_postgres::Error>()` gives its SQLSTATE).
    pub async fn connect(
        &self,
        user: &str,
        password: Option<&str>,
        db: &str,
    ) -> anyhow::Result<tokio_postgres::Client> {
        let (client, connection) = self
            .tokio_config(user, password, db)
            .connect(tokio_postgres::NoTls)
            .await
            .with_context(|| format!("connecting to {} as {user}", self.name()))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Runs `sql` with `psql -X -A -t -q` as `postgres` over the unix socket, in
    /// database `postgres`, and returns stdout trimmed: one row per line, columns
    /// separated by `|`. Multiple statements in one string run in one transaction.
    /// Errors carry psql's stderr.
    pub fn psql(&self, sql: &str) -> anyhow::Result<String> {
        self.psql_in("postgres", sql)
    }

    /// [`PgNode::psql`] in database `db`.
    pub fn psql_in(&self, db: &str, sql: &str) -> anyhow::Result<String> {
        self.psql_statements(db, &[sql])
    }

    /// Runs each statement as its own `-c` (own transaction, so `CREATE DATABASE` and
    /// session `SET`s work) in one psql session; returns all output.
    pub fn psql_statements(
        &self,
        db: &str,
        statements: &[impl AsRef<str>],
    ) -> anyhow::Result<String> {
        if statements.is_empty() {
            return Ok(String::new());
        }
        let mut command = pg_command("psql", RunAs::CurrentUser, self.socket_dir())?;
        command
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.socket_dir())
            .args(["-p", &self.port().to_string(), "-U", "postgres", "-d", db]);
        for statement in statements {
            command.arg("-c").arg(statement.as_ref());
        }
        let output = run_command(command, PSQL_TIMEOUT)
            .with_context(|| format!("psql on {} (port {})", self.name(), self.port()))?;
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// The single value `sql` returns (first column of the only row).
    ///
    /// # Panics
    /// If psql fails or the result is not exactly one row: meant for test assertions.
    #[track_caller]
    pub fn query_one(&self, sql: &str) -> String {
        let output = match self.psql(sql) {
            Ok(output) => output,
            Err(error) => panic!("query_one({sql:?}) on {}: {error:#}", self.name()),
        };
        let mut lines = output.lines();
        match (lines.next(), lines.next()) {
            (Some(line), None) => line.split('|').next().unwrap_or_default().to_owned(),
            _ => panic!(
                "query_one({sql:?}) on {}: expected one row, got {output:?}",
                self.name()
            ),
        }
    }

    /// Fast shutdown (SIGINT to the postmaster, what `pg_ctl -m fast stop` sends),
    /// SIGKILL after 30 s. No-op if not running.
    pub fn stop(&self) -> anyhow::Result<()> {
        let mut guard = self.postmaster();
        if let Some(postmaster) = guard.as_mut() {
            postmaster.stop()?;
        }
        *guard = None;
        Ok(())
    }

    /// Starts the server again on the same port after [`PgNode::stop`] or
    /// [`PgNode::kill`] (crash recovery runs if needed) and waits until it accepts
    /// connections.
    pub fn start(&self) -> anyhow::Result<()> {
        if self.shared.is_retired.load(Ordering::SeqCst) {
            bail!("{}: its cluster was dropped", self.name());
        }
        let mut guard = self.postmaster();
        if guard.as_mut().is_some_and(ChildProcess::is_running) {
            bail!("{} is already running", self.name());
        }
        *guard = None;
        let mut attempt = 0;
        let postmaster = loop {
            attempt += 1;
            match spawn_postmaster(&self.shared.layout, self.port()) {
                Err(error) if error.is::<AddrInUse>() && attempt < 10 => {
                    std::thread::sleep(Duration::from_millis(300));
                }
                result => break result?,
            }
        };
        *guard = Some(postmaster);
        Ok(())
    }

    /// [`PgNode::stop`] then [`PgNode::start`].
    pub fn restart(&self) -> anyhow::Result<()> {
        self.stop()?;
        self.start()
    }

    /// SIGKILL to the postmaster and all its children at once (a machine crash: no
    /// shutdown checkpoint, clients see their connections drop). Waits until they are
    /// gone, so [`PgNode::start`] can follow immediately.
    pub fn kill(&self) -> anyhow::Result<()> {
        self.with_running(ChildProcess::kill)?;
        *self.postmaster() = None;
        Ok(())
    }

    /// SIGSTOP to the postmaster only. Existing backends keep running and answering
    /// their clients; new connections hang after the TCP handshake (the kernel still
    /// accepts them), so a client's `connect_timeout` does not fire: bound connection
    /// attempts with an overall timeout.
    pub fn pause(&self) -> anyhow::Result<()> {
        self.with_running(ChildProcess::pause)
    }

    /// SIGSTOP to the postmaster and every backend: the whole server hangs, existing
    /// connections included (a network partition or stalled host).
    pub fn pause_all(&self) -> anyhow::Result<()> {
        self.with_running(ChildProcess::pause_tree)
    }

    /// SIGCONT to every process of the server (after [`PgNode::pause`] or
    /// [`PgNode::pause_all`]).
    pub fn resume(&self) -> anyhow::Result<()> {
        self.with_running(ChildProcess::resume)
    }

    /// Sends `signal` to the postmaster (SIGHUP reloads the configuration).
    pub fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        self.with_running(|postmaster| postmaster.signal(signal))
    }

    /// `SELECT pg_is_in_recovery()`.
    pub fn is_in_recovery(&self) -> anyhow::Result<bool> {
        Ok(self.psql("SELECT pg_is_in_recovery()")? == "t")
    }

    /// Promotes a replica (`pg_promote`, which waits for the end of recovery) and
    /// checks `pg_is_in_recovery()` is false.
    pub fn promote(&self) -> anyhow::Result<()> {
        let promoted = self.psql("SELECT pg_promote(true, 60)")?;
        if promoted != "t" {
            bail!("pg_promote on {} returned {promoted:?}", self.name());
        }
        wait_for(
            &format!("{} to leave recovery", self.name()),
            START_TIMEOUT,
            || Ok((!self.is_in_recovery()?).then_some(())),
        )
    }

    /// Pauses WAL replay on a replica (`pg_wal_replay_pause`). WAL is still received,
    /// so the replica lags only in what queries see. Returns once the pause is
    /// requested; the next record will not be applied.
    pub fn pause_replay(&self) -> anyhow::Result<()> {
        self.psql("SELECT pg_wal_replay_pause()")?;
        let state = self.psql("SELECT pg_get_wal_replay_pause_state()")?;
        if state == "not paused" {
            bail!("replay on {} did not pause", self.name());
        }
        Ok(())
    }

    /// Resumes WAL replay (`pg_wal_replay_resume`).
    pub fn resume_replay(&self) -> anyhow::Result<()> {
        self.psql("SELECT pg_wal_replay_resume()").map(drop)
    }

    /// On a primary: a WAL position covering everything committed before the call.
    ///
    /// Writes a tiny WAL record (a logical decoding message, ignored by physical
    /// replicas) in a transaction committed with `synchronous_commit = on`, which also
    /// flushes every earlier asynchronous commit (the cluster runs with
    /// `synchronous_commit = off`), and returns the record's end LSN, a position a
    /// replica's replay LSN reaches exactly.
    pub fn current_wal_lsn(&self) -> anyhow::Result<String> {
        let output = self.psql_statements(
            "postgres",
            &[
                "SET synchronous_commit = on",
                "SELECT pg_logical_emit_message(true, 'integration-tests', 'lsn')",
            ],
        )?;
        if output.is_empty() {
            bail!("no LSN from {}", self.name());
        }
        Ok(output)
    }

    /// On a replica: has WAL up to `lsn` been replayed (visible to queries)?
    pub fn has_replayed(&self, lsn: &str) -> anyhow::Result<bool> {
        let sql = format!(
            "SELECT pg_last_wal_replay_lsn() >= {}::pg_lsn",
            quote_literal(lsn)
        );
        Ok(self.psql(&sql)? == "t")
    }

    /// On a replica: has WAL up to `lsn` been received and flushed (maybe not replayed)?
    pub fn has_received(&self, lsn: &str) -> anyhow::Result<bool> {
        let sql = format!(
            "SELECT pg_last_wal_receive_lsn() >= {}::pg_lsn",
            quote_literal(lsn)
        );
        Ok(self.psql(&sql)? == "t")
    }

    /// Waits until this replica has replayed everything `upstream` had committed when
    /// the wait began. Fails at once if replay is paused here.
    pub fn wait_caught_up_with(&self, upstream: &PgNode, timeout: Duration) -> anyhow::Result<()> {
        let target = upstream.current_wal_lsn()?;
        let sql = format!(
            "SELECT pg_last_wal_replay_lsn() >= {}::pg_lsn, pg_get_wal_replay_pause_state()",
            quote_literal(&target)
        );
        wait_for(
            &format!("{} to replay up to {target}", self.name()),
            timeout,
            || {
                let output = self.psql(&sql)?;
                match output.split_once('|') {
                    Some(("t", _)) => Ok(Some(())),
                    Some((_, "not paused")) => Ok(None),
                    Some((_, state)) => {
                        Err(give_up(anyhow!("WAL replay on {} is {state}", self.name())))
                    }
                    None => Err(give_up(anyhow!(
                        "{} is not a replica: {output:?}",
                        self.name()
                    ))),
                }
            },
        )
    }

    fn pgbench_command(&self, args: &[&str]) -> anyhow::Result<std::process::Command> {
        let mut command = pg_command("pgbench", RunAs::CurrentUser, self.socket_dir())?;
        command
            .env("PGDATABASE", "postgres")
            .arg("-h")
            .arg(self.socket_dir())
            .args(["-p", &self.port().to_string(), "-U", "postgres"])
            .args(args);
        Ok(command)
    }

    /// `pgbench -i -s <scale> -q` in database `postgres`, as `postgres`.
    pub fn pgbench_init(&self, scale: u32) -> anyhow::Result<()> {
        let command = self.pgbench_command(&["-i", "-s", &scale.to_string(), "-q"])?;
        run_command(command, PGBENCH_TIMEOUT).context("pgbench -i")?;
        Ok(())
    }

    /// Runs `pgbench <args>` directly against this node (as `postgres`, database
    /// `postgres` unless `args` names one) and returns its stdout.
    pub fn pgbench(&self, args: &[&str]) -> anyhow::Result<String> {
        let output =
            run_command(self.pgbench_command(args)?, PGBENCH_TIMEOUT).context("pgbench")?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Stops the server for good: called by the cluster's Drop.
    pub(crate) fn retire(&self) -> anyhow::Result<()> {
        self.shared.is_retired.store(true, Ordering::SeqCst);
        self.stop()
    }
}

/// Spawns `postgres -D <data> -p <port> -k <socket dir>` and waits until its
/// postmaster.pid says it is ready on `port`. Fails with [`AddrInUse`] if the port was
/// taken meanwhile.
fn spawn_postmaster(layout: &NodeLayout, port: u16) -> anyhow::Result<ChildProcess> {
    let mut command = server_command(&pg_tool("postgres")?);
    prepare_pg_command(&mut command, layout.run_as, &layout.socket_dir);
    command
        .arg("-D")
        .arg(&layout.data_dir)
        .args(["-p", &port.to_string(), "-k"])
        .arg(&layout.socket_dir);
    let mut postmaster = ChildProcess::spawn(
        &format!("postgres {}", layout.name),
        command,
        &layout.log_path,
    )?
    .with_stop_signal(Signal::SIGINT, STOP_GRACE);
    let pid_file = layout.data_dir.join("postmaster.pid");
    wait_for(
        &format!("{} to accept connections", layout.name),
        START_TIMEOUT,
        || {
            if let Some(status) = postmaster.exit_status() {
                let log = postmaster.log_since_start();
                if log_says_addr_in_use(&log) {
                    return Err(give_up(AddrInUse { port }));
                }
                return Err(give_up(anyhow!(
                    "{} exited during startup ({status}):\n{log}",
                    layout.name
                )));
            }
            // Lines: pid, data dir, start time, port, socket dir, listen address, shmem key,
            // status ("starting", "ready", "standby" or "stopping").
            let Ok(text) = fs::read_to_string(&pid_file) else {
                return Ok(None);
            };
            let lines: Vec<&str> = text.lines().map(str::trim).collect();
            let is_ours = lines.first() == Some(&postmaster.pid().to_string().as_str())
                && lines.get(3) == Some(&port.to_string().as_str());
            let is_ready = matches!(lines.get(7), Some(&"ready") | Some(&"standby"));
            Ok((is_ours && is_ready).then_some(()))
        },
    )?;
    Ok(postmaster)
}
