//! `RedisSet`: a Redis master, its replicas and the Sentinels monitoring them, plus the
//! failover helpers tests need (trigger, wait for the switch, kill or pause the master).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};

use crate::process::{RunAs, run_command};
use crate::redis_server::{RedisServer, ServerKind, ServerLayout, redis_tool};
use crate::test_dir::TestDir;
use crate::wait::wait_for;

/// How long [`RedisSet::start`] waits for replication and Sentinel discovery.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// What [`RedisSet::start`] builds. `Default`: a master, 1 replica and 3 Sentinels
/// (quorum 2) monitoring `mymaster`, tuned for fast failovers.
#[derive(Clone, Debug)]
pub struct RedisOptions {
    /// Replicas of the first master.
    pub replicas: usize,
    /// Sentinels (0 for plain replication without Sentinel).
    pub sentinels: usize,
    /// Sentinel quorum; `None` means a majority of `sentinels`.
    pub quorum: Option<usize>,
    /// The monitored master's name.
    pub master_name: String,
    /// `sentinel down-after-milliseconds` (default 1000: fast, but a server stalled
    /// longer than this on a loaded machine is considered down).
    pub down_after_ms: u64,
    /// `sentinel failover-timeout` (default 4000; a failed election is retried after
    /// twice this).
    pub failover_timeout_ms: u64,
    /// `requirepass`/`masterauth` on every data server and `auth-pass` in Sentinels.
    pub password: Option<String>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            replicas: 1,
            sentinels: 3,
            quorum: None,
            master_name: "mymaster".to_owned(),
            down_after_ms: 1000,
            failover_timeout_ms: 4000,
            password: None,
        }
    }
}

impl RedisOptions {
    /// A lone master: no replicas, no Sentinels.
    pub fn single() -> Self {
        Self {
            replicas: 0,
            sentinels: 0,
            ..Self::default()
        }
    }

    fn quorum(&self) -> usize {
        self.quorum.unwrap_or(self.sentinels / 2 + 1)
    }
}

/// Running Redis servers (index 0 starts as master, the others as its replicas) and
/// Sentinels, each on a free port of 127.0.0.1 with its own directory.
///
/// [`RedisSet::start`] returns only once replication links are up and every Sentinel
/// knows every replica and every other Sentinel, so failovers can start at once.
/// Drop stops the Sentinels first (no failover during teardown), then the servers,
/// and removes the directory unless the test is failing.
#[derive(Debug)]
pub struct RedisSet {
    servers: Vec<RedisServer>,
    sentinels: Vec<RedisServer>,
    options: RedisOptions,
    paused_master: Mutex<Option<SocketAddr>>,
    dir: TestDir,
}

impl RedisSet {
    /// Starts the master, the replicas, then the Sentinels, and waits until the set is
    /// stable (see [`RedisSet::wait_until_stable`]); about 2–3 s with Sentinels, which
    /// discover each other through 2 s hello messages. On failure the directory is
    /// kept and the logs are printed.
    pub fn start(options: RedisOptions) -> anyhow::Result<Self> {
        if options.sentinels > 0 && !(1..=options.sentinels).contains(&options.quorum()) {
            bail!(
                "quorum {} is impossible with {} sentinels",
                options.quorum(),
                options.sentinels
            );
        }
        let dir = TestDir::new("redisset-", RunAs::CurrentUser)?;
        let mut set = Self {
            servers: Vec::new(),
            sentinels: Vec::new(),
            options,
            paused_master: Mutex::new(None),
            dir,
        };
        if let Err(error) = set.launch_all() {
            set.dir.preserve();
            return Err(error);
        }
        Ok(set)
    }

    fn launch_all(&mut self) -> anyhow::Result<()> {
        let master = self.launch_data_server(0, None)?;
        let master_port = master.port();
        self.servers.push(master);
        for index in 1..=self.options.replicas {
            let replica = self.launch_data_server(index, Some(master_port))?;
            self.servers.push(replica);
        }
        // Sentinels learn the replicas from the master's first INFO reply: start them
        // once the links are up so discovery does not wait for the next 10 s refresh.
        self.wait_replicas_linked(master_port)?;
        for index in 0..self.options.sentinels {
            let sentinel = self.launch_sentinel(index, master_port)?;
            self.sentinels.push(sentinel);
        }
        self.wait_until_stable(SETTLE_TIMEOUT)
    }

    /// [`RedisSet::start`] on a blocking thread, for `#[tokio::test]`.
    pub async fn start_async(options: RedisOptions) -> anyhow::Result<Self> {
        tokio::task::spawn_blocking(move || Self::start(options))
            .await
            .context("start task")?
    }

    fn launch_data_server(
        &self,
        index: usize,
        master_port: Option<u16>,
    ) -> anyhow::Result<RedisServer> {
        let name = format!("redis{index}");
        let dir = self.dir.subdir(&name, RunAs::CurrentUser)?;
        let layout = ServerLayout {
            name: name.clone(),
            dir: dir.clone(),
            kind: ServerKind::Data,
            password: self.options.password.clone(),
        };
        let password = self.options.password.clone();
        RedisServer::launch(layout, move |port| {
            let mut conf = format!(
                "port {port}\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\nlogfile \"\"\n\
                 dir {}\nsave \"\"\nappendonly no\nrepl-diskless-sync-delay 0\n\
                 shutdown-timeout 1\nloglevel notice\n",
                conf_quote(&dir.to_string_lossy())
            );
            if let Some(password) = &password {
                let _ = writeln!(
                    conf,
                    "requirepass {0}\nmasterauth {0}",
                    conf_quote(password)
                );
            }
            if let Some(master_port) = master_port {
                let _ = writeln!(conf, "replicaof 127.0.0.1 {master_port}");
            }
            conf
        })
        .with_context(|| format!("starting {name}"))
    }

    fn launch_sentinel(&self, index: usize, master_port: u16) -> anyhow::Result<RedisServer> {
        let name = format!("sentinel{index}");
        let dir = self.dir.subdir(&name, RunAs::CurrentUser)?;
        let layout = ServerLayout {
            name: name.clone(),
            dir: dir.clone(),
            kind: ServerKind::Sentinel,
            password: None,
        };
        let options = self.options.clone();
        RedisServer::launch(layout, move |port| {
            let master = &options.master_name;
            let mut conf = format!(
                "port {port}\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\nlogfile \"\"\n\
                 dir {}\nsentinel resolve-hostnames no\n\
                 sentinel monitor {master} 127.0.0.1 {master_port} {}\n\
                 sentinel down-after-milliseconds {master} {}\n\
                 sentinel failover-timeout {master} {}\n\
                 sentinel parallel-syncs {master} 1\n",
                conf_quote(&dir.to_string_lossy()),
                options.quorum(),
                options.down_after_ms,
                options.failover_timeout_ms,
            );
            if let Some(password) = &options.password {
                let _ = writeln!(conf, "sentinel auth-pass {master} {}", conf_quote(password));
            }
            conf
        })
        .with_context(|| format!("starting {name}"))
    }

    fn wait_replicas_linked(&self, master_port: u16) -> anyhow::Result<()> {
        for replica in self
            .servers
            .iter()
            .filter(|server| server.port() != master_port)
        {
            wait_for(
                &format!("{} to sync with its master", replica.name()),
                SETTLE_TIMEOUT,
                || {
                    let info = replica.info("replication")?;
                    let linked = info
                        .get("master_link_status")
                        .is_some_and(|status| status == "up")
                        && info
                            .get("master_port")
                            .is_some_and(|port| *port == master_port.to_string());
                    Ok(linked.then_some(()))
                },
            )?;
        }
        Ok(())
    }

    /// The monitored master's name.
    pub fn master_name(&self) -> &str {
        &self.options.master_name
    }

    /// Data servers in creation order (index 0 was the first master).
    pub fn servers(&self) -> &[RedisServer] {
        &self.servers
    }

    /// Sentinels in creation order.
    pub fn sentinels(&self) -> &[RedisServer] {
        &self.sentinels
    }

    /// The data server or Sentinel listening on `addr`, if it belongs to this set.
    pub fn server(&self, addr: SocketAddr) -> Option<&RedisServer> {
        self.servers
            .iter()
            .chain(&self.sentinels)
            .find(|server| server.addr() == addr)
    }

    /// Addresses of all Sentinels (also stopped ones).
    pub fn sentinel_addrs(&self) -> Vec<SocketAddr> {
        self.sentinels.iter().map(RedisServer::addr).collect()
    }

    /// The current master: the first running Sentinel's `get-master-addr-by-name`, or
    /// without Sentinels the first running server whose ROLE is master.
    pub fn master_addr(&self) -> anyhow::Result<SocketAddr> {
        if self.sentinels.is_empty() {
            return self
                .servers
                .iter()
                .filter(|server| server.is_running())
                .find(|server| server.role().is_ok_and(|role| role == "master"))
                .map(RedisServer::addr)
                .ok_or_else(|| anyhow!("no running server reports ROLE master"));
        }
        let mut last_error = anyhow!("no Sentinel is running");
        for sentinel in self
            .sentinels
            .iter()
            .filter(|sentinel| sentinel.is_running())
        {
            match self.sentinel_master_addr(sentinel) {
                Ok(addr) => return Ok(addr),
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    /// The current master's handle (see [`RedisSet::master_addr`]).
    pub fn master(&self) -> anyhow::Result<&RedisServer> {
        let addr = self.master_addr()?;
        self.server(addr)
            .ok_or_else(|| anyhow!("master {addr} is not part of this set"))
    }

    fn sentinel_master_addr(&self, sentinel: &RedisServer) -> anyhow::Result<SocketAddr> {
        let reply: Option<(String, u16)> =
            sentinel.query(&["SENTINEL", "get-master-addr-by-name", self.master_name()])?;
        let (host, port) =
            reply.ok_or_else(|| anyhow!("{} does not know the master", sentinel.name()))?;
        format!("{host}:{port}")
            .parse()
            .with_context(|| format!("master address {host}:{port}"))
    }

    /// Addresses of running data servers whose ROLE is `slave`.
    pub fn replica_addrs(&self) -> Vec<SocketAddr> {
        self.servers
            .iter()
            .filter(|server| server.is_running() && server.role().is_ok_and(|role| role == "slave"))
            .map(RedisServer::addr)
            .collect()
    }

    /// Asks a Sentinel to fail over now (`SENTINEL FAILOVER`), retrying while no
    /// replica is eligible yet (`NOGOODSLAVE`, e.g. right after a previous failover) or
    /// a failover is in progress. Returns once the failover has started: follow with
    /// [`RedisSet::wait_for_switch_master`].
    pub fn failover(&self) -> anyhow::Result<()> {
        wait_for(
            "a Sentinel to accept SENTINEL FAILOVER",
            Duration::from_secs(30),
            || {
                let sentinel = self
                    .sentinels
                    .iter()
                    .find(|sentinel| sentinel.is_running())
                    .ok_or_else(|| crate::wait::give_up(anyhow!("no Sentinel is running")))?;
                match sentinel.query::<String>(&["SENTINEL", "FAILOVER", self.master_name()]) {
                    Ok(_) => Ok(Some(())),
                    Err(error) => {
                        let text = format!("{error:#}");
                        if text.contains("NOGOODSLAVE") || text.contains("INPROG") {
                            Err(error)
                        } else {
                            Err(crate::wait::give_up(error))
                        }
                    }
                }
            },
        )
    }

    /// [`RedisSet::failover`] then [`RedisSet::wait_for_switch_master`]; returns the
    /// new master.
    pub fn failover_and_wait(&self, timeout: Duration) -> anyhow::Result<SocketAddr> {
        let old = self.master_addr()?;
        self.failover()?;
        self.wait_for_switch_master(old, timeout)
    }

    /// Waits until every running Sentinel names the same master, different from `old`,
    /// and that server answers ROLE `master`; returns its address.
    pub fn wait_for_switch_master(
        &self,
        old: SocketAddr,
        timeout: Duration,
    ) -> anyhow::Result<SocketAddr> {
        wait_for(
            &format!("Sentinels to switch master away from {old}"),
            timeout,
            || {
                let Some(addr) = self.agreed_master()? else {
                    return Ok(None);
                };
                if addr == old {
                    return Ok(None);
                }
                let server = self
                    .server(addr)
                    .ok_or_else(|| anyhow!("new master {addr} is not ours"))?;
                Ok((server.role()? == "master").then_some(addr))
            },
        )
    }

    /// The master all running Sentinels agree on, or `None` while they disagree.
    fn agreed_master(&self) -> anyhow::Result<Option<SocketAddr>> {
        let mut agreed = None;
        for sentinel in self
            .sentinels
            .iter()
            .filter(|sentinel| sentinel.is_running())
        {
            let addr = self.sentinel_master_addr(sentinel)?;
            if agreed.is_some_and(|previous| previous != addr) {
                return Ok(None);
            }
            agreed = Some(addr);
        }
        Ok(agreed)
    }

    /// Waits until the set is settled around its current master: every running Sentinel
    /// agrees on it, it answers ROLE master, every other running server replicates from
    /// it with the link up, and every running Sentinel lists those replicas and the other
    /// running Sentinels as healthy (and `SENTINEL CKQUORUM` is OK). Call after a
    /// failover to wait for the old master to rejoin as a replica; note that Sentinel
    /// demotes a surviving old master only ~10 s after the switch (until then it still
    /// claims to be a master: the split-brain window clients must cope with).
    pub fn wait_until_stable(&self, timeout: Duration) -> anyhow::Result<()> {
        wait_for("the Redis set to settle", timeout, || self.check_stable())
    }

    fn check_stable(&self) -> anyhow::Result<Option<()>> {
        let master_addr = if self.sentinels.is_empty() {
            self.master_addr()?
        } else {
            let Some(addr) = self.agreed_master()? else {
                return Ok(None);
            };
            addr
        };
        let master = self
            .server(master_addr)
            .ok_or_else(|| anyhow!("master {master_addr} is not ours"))?;
        if master.role()? != "master" {
            return Ok(None);
        }
        let replicas: Vec<&RedisServer> = self
            .servers
            .iter()
            .filter(|server| server.is_running() && server.addr() != master_addr)
            .collect();
        for replica in &replicas {
            let info = replica.info("replication")?;
            let linked = info
                .get("master_link_status")
                .is_some_and(|status| status == "up")
                && info
                    .get("master_port")
                    .is_some_and(|port| *port == master_addr.port().to_string());
            if !linked {
                return Ok(None);
            }
        }
        let running_sentinels: Vec<&RedisServer> = self
            .sentinels
            .iter()
            .filter(|sentinel| sentinel.is_running())
            .collect();
        for sentinel in &running_sentinels {
            let known_replicas = self.healthy_peers(sentinel, "replicas")?;
            let known_sentinels = self.healthy_peers(sentinel, "sentinels")?;
            let sees_replicas = replicas
                .iter()
                .all(|replica| known_replicas.contains(&replica.port()));
            let sees_sentinels = running_sentinels
                .iter()
                .filter(|other| other.port() != sentinel.port())
                .all(|other| known_sentinels.contains(&other.port()));
            if !sees_replicas || !sees_sentinels {
                return Ok(None);
            }
            if running_sentinels.len() >= self.options.quorum() {
                sentinel.query::<String>(&["SENTINEL", "CKQUORUM", self.master_name()])?;
            }
        }
        Ok(Some(()))
    }

    /// Ports of the replicas or Sentinels a Sentinel lists without a down/disconnected flag.
    fn healthy_peers(&self, sentinel: &RedisServer, kind: &str) -> anyhow::Result<Vec<u16>> {
        let peers: Vec<HashMap<String, String>> =
            sentinel.query(&["SENTINEL", kind, self.master_name()])?;
        Ok(peers
            .iter()
            .filter(|peer| {
                peer.get("flags")
                    .is_some_and(|flags| !flags.contains("down") && !flags.contains("disconnected"))
            })
            .filter_map(|peer| peer.get("port")?.parse().ok())
            .collect())
    }

    /// SIGKILLs the current master and returns its address.
    pub fn kill_master(&self) -> anyhow::Result<SocketAddr> {
        let master = self.master()?;
        master.kill()?;
        Ok(master.addr())
    }

    /// SIGSTOPs the current master (it hangs without closing connections) and returns
    /// its address; [`RedisSet::resume_master`] undoes it.
    pub fn pause_master(&self) -> anyhow::Result<SocketAddr> {
        let master = self.master()?;
        master.pause()?;
        *self
            .paused_master
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = Some(master.addr());
        Ok(master.addr())
    }

    /// SIGCONTs the server paused by [`RedisSet::pause_master`] (even if it is no longer
    /// the master); returns its address.
    pub fn resume_master(&self) -> anyhow::Result<SocketAddr> {
        let addr = self
            .paused_master
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take()
            .ok_or_else(|| anyhow!("no master was paused"))?;
        self.server(addr)
            .ok_or_else(|| anyhow!("{addr} is not ours"))?
            .resume()?;
        Ok(addr)
    }

    /// SIGKILLs Sentinel number `index`.
    pub fn kill_sentinel(&self, index: usize) -> anyhow::Result<()> {
        self.sentinels
            .get(index)
            .ok_or_else(|| {
                anyhow!(
                    "there are {} sentinels, not {}",
                    self.sentinels.len(),
                    index + 1
                )
            })?
            .kill()
    }

    /// Runs `redis-cli -h 127.0.0.1 -p <port> <args>` (with the password for data
    /// servers) against a server of this set and returns its stdout, trimmed. Error
    /// replies are printed by redis-cli, not turned into `Err`: use
    /// [`RedisServer::query`] to check them. Refuses addresses outside the set.
    pub fn redis_cli(&self, addr: SocketAddr, args: &[&str]) -> anyhow::Result<String> {
        let server = self
            .server(addr)
            .ok_or_else(|| anyhow!("{addr} is not part of this set"))?;
        let mut command = std::process::Command::new(redis_tool("redis-cli")?);
        command.env_remove("REDISCLI_AUTH").args([
            "-h",
            "127.0.0.1",
            "-p",
            &server.port().to_string(),
        ]);
        if let Some(password) = server.password() {
            command.args(["--no-auth-warning", "-a", password]);
        }
        command.args(args);
        let output = run_command(command, Duration::from_secs(30))?;
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }
}

impl Drop for RedisSet {
    fn drop(&mut self) {
        for server in self.sentinels.iter().chain(&self.servers) {
            if let Err(error) = server.retire() {
                eprintln!("harness: stopping {}: {error:#}", server.name());
            }
        }
    }
}

/// Quotes a value for a redis config file (double quotes, backslash escapes).
fn conf_quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}
