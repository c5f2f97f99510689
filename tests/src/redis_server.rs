//! `RedisServer`: one redis-server process (data server or Sentinel) with its own config
//! file, directory and log, on a free port.

use std::collections::HashMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use redis::FromRedisValue;

use crate::ports::{AddrInUse, log_says_addr_in_use, with_free_port};
use crate::process::{ChildProcess, server_command};
use crate::url::percent_encode;
use crate::wait::{give_up, wait_for};

/// How long a server may take to answer after being spawned.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Grace period after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Connect, read and write timeout of harness connections (a paused server must not
/// hang a test forever).
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Full path of a Redis program (`redis-server`, `redis-cli`, `redis-benchmark`):
/// from `HARNESS_REDIS_BINDIR`, else the first match on `PATH`, else `/usr/bin`.
pub fn redis_tool(name: &str) -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("HARNESS_REDIS_BINDIR") {
        return Ok(PathBuf::from(dir).join(name));
    }
    let path_dirs = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_dirs)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| anyhow!("{name} not found (install redis-server / redis-tools)"))
}

/// What a [`RedisServer`] runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ServerKind {
    /// A data server (master or replica).
    Data,
    /// `redis-server <conf> --sentinel`.
    Sentinel,
}

/// Files of one server: `<set dir>/<name>/` holds `redis.conf` (or `sentinel.conf`),
/// `redis.log` and any RDB a replica receives.
#[derive(Clone, Debug)]
pub(crate) struct ServerLayout {
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    pub(crate) kind: ServerKind,
    /// `requirepass` of a data server; `None` for Sentinels.
    pub(crate) password: Option<String>,
}

impl ServerLayout {
    fn conf_path(&self) -> PathBuf {
        match self.kind {
            ServerKind::Data => self.dir.join("redis.conf"),
            ServerKind::Sentinel => self.dir.join("sentinel.conf"),
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }
}

#[derive(Debug)]
struct ServerShared {
    layout: ServerLayout,
    port: u16,
    process: Mutex<Option<ChildProcess>>,
    is_retired: AtomicBool,
}

/// Handle to one redis-server or Sentinel of a [`crate::RedisSet`].
///
/// Cheap to clone; all clones control the same process, whose port never changes
/// (also across [`RedisServer::stop`]/[`RedisServer::start`], which reuse the config
/// file, as rewritten by Sentinel). The process is stopped when its set is dropped.
#[derive(Clone, Debug)]
pub struct RedisServer {
    shared: Arc<ServerShared>,
}

impl RedisServer {
    /// Writes the config built by `conf(port)` for a free port, starts the server and
    /// waits until it answers (and is really ours: `INFO` reports our child's pid).
    pub(crate) fn launch(
        layout: ServerLayout,
        conf: impl Fn(u16) -> String,
    ) -> anyhow::Result<Self> {
        let (port, process) = with_free_port(|port| {
            fs::write(layout.conf_path(), conf(port)).context("writing the redis config")?;
            Ok((port, spawn_server(&layout, port)?))
        })?;
        Ok(Self {
            shared: Arc::new(ServerShared {
                layout,
                port,
                process: Mutex::new(Some(process)),
                is_retired: AtomicBool::new(false),
            }),
        })
    }

    fn process(&self) -> MutexGuard<'_, Option<ChildProcess>> {
        self.shared
            .process
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn with_running<T>(
        &self,
        action: impl FnOnce(&mut ChildProcess) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut guard = self.process();
        match guard.as_mut() {
            Some(process) => {
                if !process.is_running() {
                    bail!("{} is not running", self.name());
                }
                action(process)
            }
            None => bail!("{} is not running", self.name()),
        }
    }

    /// Server name: `redis0` (first master), `redis1`…, `sentinel0`…
    pub fn name(&self) -> &str {
        &self.shared.layout.name
    }

    /// TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.shared.port
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port()))
    }

    /// True for a Sentinel, false for a data server.
    pub fn is_sentinel(&self) -> bool {
        self.shared.layout.kind == ServerKind::Sentinel
    }

    /// The `requirepass` of a data server (Sentinels have none).
    pub fn password(&self) -> Option<&str> {
        self.shared.layout.password.as_deref()
    }

    /// The server's directory (config, log, RDB files).
    pub fn dir(&self) -> &Path {
        &self.shared.layout.dir
    }

    /// The config file (Sentinel rewrites its own at run time).
    pub fn conf_path(&self) -> PathBuf {
        self.shared.layout.conf_path()
    }

    /// The log file (stdout of every start of this server).
    pub fn log_path(&self) -> PathBuf {
        self.shared.layout.log_path()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        crate::process::log_tail(&self.log_path(), lines)
    }

    /// Process id while running.
    pub fn pid(&self) -> Option<u32> {
        let mut guard = self.process();
        guard
            .as_mut()
            .and_then(|process| process.is_running().then(|| process.pid()))
    }

    /// Pids of the server and any child it forked (RDB saves, diskless syncs).
    pub fn process_ids(&self) -> Vec<u32> {
        self.process()
            .as_mut()
            .map(ChildProcess::tree_pids)
            .unwrap_or_default()
    }

    /// True while the process runs (also when paused).
    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// `redis://[:password@]127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        match self.password() {
            Some(password) => format!(
                "redis://:{}@127.0.0.1:{}/",
                percent_encode(password),
                self.port()
            ),
            None => format!("redis://127.0.0.1:{}/", self.port()),
        }
    }

    /// A new synchronous connection (authenticated, 5 s connect/read/write timeouts).
    pub fn connection(&self) -> anyhow::Result<redis::Connection> {
        let client = redis::Client::open(self.url())?;
        let connection = client
            .get_connection_with_timeout(IO_TIMEOUT)
            .with_context(|| format!("connecting to {} ({})", self.name(), self.addr()))?;
        connection.set_read_timeout(Some(IO_TIMEOUT))?;
        connection.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(connection)
    }

    /// Runs one command on a fresh connection: `server.query::<String>(&["GET", "k"])`.
    pub fn query<T: FromRedisValue>(&self, args: &[&str]) -> anyhow::Result<T> {
        let Some((name, rest)) = args.split_first() else {
            bail!("empty command")
        };
        let mut command = redis::cmd(name);
        for arg in rest {
            command.arg(*arg);
        }
        command
            .query(&mut self.connection()?)
            .with_context(|| format!("{args:?} on {} ({})", self.name(), self.addr()))
    }

    /// First element of `ROLE`: `master`, `slave` or `sentinel`.
    pub fn role(&self) -> anyhow::Result<String> {
        let role: Vec<redis::Value> = self.query(&["ROLE"])?;
        let first = role
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("empty ROLE reply"))?;
        Ok(String::from_redis_value(first)?)
    }

    /// `INFO <section>` as a field → value map.
    pub fn info(&self, section: &str) -> anyhow::Result<HashMap<String, String>> {
        let text: String = self.query(&["INFO", section])?;
        Ok(parse_info(&text))
    }

    /// Graceful stop (SIGTERM, SIGKILL after 5 s). No-op if not running.
    pub fn stop(&self) -> anyhow::Result<()> {
        let mut guard = self.process();
        if let Some(process) = guard.as_mut() {
            process.stop()?;
        }
        *guard = None;
        Ok(())
    }

    /// Starts the server again on the same port with its (possibly rewritten) config.
    pub fn start(&self) -> anyhow::Result<()> {
        if self.shared.is_retired.load(Ordering::SeqCst) {
            bail!("{}: its set was dropped", self.name());
        }
        let mut guard = self.process();
        if guard.as_mut().is_some_and(ChildProcess::is_running) {
            bail!("{} is already running", self.name());
        }
        *guard = None;
        let mut attempt = 0;
        let process = loop {
            attempt += 1;
            match spawn_server(&self.shared.layout, self.port()) {
                Err(error) if error.is::<AddrInUse>() && attempt < 10 => {
                    std::thread::sleep(Duration::from_millis(300));
                }
                result => break result?,
            }
        };
        *guard = Some(process);
        Ok(())
    }

    /// SIGKILL (a crash) and wait until the process is gone.
    pub fn kill(&self) -> anyhow::Result<()> {
        self.with_running(ChildProcess::kill)?;
        *self.process() = None;
        Ok(())
    }

    /// SIGSTOP: the server stops answering but keeps its connections open (clients and
    /// Sentinels time out instead of seeing a refused connection).
    pub fn pause(&self) -> anyhow::Result<()> {
        self.with_running(ChildProcess::pause_tree)
    }

    /// SIGCONT after [`RedisServer::pause`].
    pub fn resume(&self) -> anyhow::Result<()> {
        self.with_running(ChildProcess::resume)
    }

    /// Stops the server for good: called by the set's Drop.
    pub(crate) fn retire(&self) -> anyhow::Result<()> {
        self.shared.is_retired.store(true, Ordering::SeqCst);
        self.stop()
    }
}

/// Parses `INFO` output (`field:value` lines, `#` section headers).
pub(crate) fn parse_info(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.trim_end().split_once(':'))
        .map(|(field, value)| (field.to_owned(), value.to_owned()))
        .collect()
}

/// Spawns the server from its config file and waits until `INFO server` on `port`
/// reports the child's pid (so we never mistake another server on that port for ours).
fn spawn_server(layout: &ServerLayout, port: u16) -> anyhow::Result<ChildProcess> {
    let mut command = server_command(&redis_tool("redis-server")?);
    command.arg(layout.conf_path()).current_dir(&layout.dir);
    if layout.kind == ServerKind::Sentinel {
        command.arg("--sentinel");
    }
    let mut process = ChildProcess::spawn(&layout.name, command, &layout.log_path())?
        .with_stop_signal(nix::sys::signal::Signal::SIGTERM, STOP_GRACE);
    let url = match &layout.password {
        Some(password) => format!("redis://:{}@127.0.0.1:{port}/", percent_encode(password)),
        None => format!("redis://127.0.0.1:{port}/"),
    };
    let client = redis::Client::open(url)?;
    wait_for(
        &format!("{} to answer on port {port}", layout.name),
        START_TIMEOUT,
        || {
            if let Some(status) = process.exit_status() {
                let log = process.log_since_start();
                if log_says_addr_in_use(&log) {
                    return Err(give_up(AddrInUse { port }));
                }
                return Err(give_up(anyhow!(
                    "{} exited during startup ({status}):\n{log}",
                    layout.name
                )));
            }
            let mut connection = client.get_connection_with_timeout(IO_TIMEOUT)?;
            connection.set_read_timeout(Some(IO_TIMEOUT))?;
            let info: String = redis::cmd("INFO").arg("server").query(&mut connection)?;
            let pid = parse_info(&info)
                .get("process_id")
                .cloned()
                .unwrap_or_default();
            if pid != process.pid().to_string() {
                return Err(give_up(AddrInUse { port }));
            }
            Ok(Some(()))
        },
    )?;
    Ok(process)
}

#[cfg(test)]
mod tests {
    use super::parse_info;

    #[test]
    fn parses_info_fields() {
        let info = parse_info("# Replication\r\nrole:slave\r\nmaster_link_status:up\r\n\r\n");
        assert_eq!(info.get("role").map(String::as_str), Some("slave"));
        assert_eq!(
            info.get("master_link_status").map(String::as_str),
            Some("up")
        );
    }
}
