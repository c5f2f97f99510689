//! Child-process guard (log file, signals, stop-on-Drop), one-shot commands with a
//! timeout, and the user a server runs as.
//!
//! "The process tree" below means the child plus all its descendants found in `/proc`
//! at the moment of signalling. A process group is not enough: PostgreSQL makes every
//! backend the leader of its own session (`setsid`), so only the parent links reach it.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Gid, Pid, Uid, User, chown, geteuid};

use crate::wait::{scaled, wait_until};

/// How long to wait for a SIGKILLed process tree to disappear.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// A command for a long-running server `program`: wrapped in
/// `setpriv --pdeathsig KILL --` when available, so the kernel SIGKILLs the server if the
/// test process dies without running its destructors (Ctrl-C, a CI timeout), instead of
/// leaving it running on its port. `setpriv` execs the program, so the pid is the
/// server's own. Spawn it with [`ChildProcess::spawn`].
pub fn server_command(program: &Path) -> Command {
    static SETPRIV: OnceLock<Option<PathBuf>> = OnceLock::new();
    let setpriv = SETPRIV.get_or_init(|| {
        ["/usr/bin/setpriv", "/bin/setpriv"]
            .into_iter()
            .map(PathBuf::from)
            .find(|path| path.is_file())
    });
    match setpriv {
        Some(setpriv) => {
            let mut command = Command::new(setpriv);
            command.args(["--pdeathsig", "KILL", "--"]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `command` from one thread that lives as long as the test process. The
/// parent-death signal fires when the *thread* that forked the child exits, so children
/// forked by short-lived threads (test threads, `spawn_blocking`) would be killed early.
fn spawn_from_spawner_thread(mut command: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Option<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (sender, receiver) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("harness-spawner".to_owned())
            .spawn(move || {
                for (mut command, reply) in receiver {
                    let _ = reply.send(command.spawn());
                }
            })
            .ok()
            .map(|_| sender)
    });
    let Some(spawner) = spawner else {
        return command.spawn();
    };
    let (reply_sender, reply_receiver) = mpsc::channel();
    if let Err(mpsc::SendError((mut command, _))) = spawner.send((command, reply_sender)) {
        return command.spawn();
    }
    reply_receiver
        .recv()
        .unwrap_or_else(|_| Err(std::io::Error::other("the spawner thread is gone")))
}

/// The identity a server process runs as.
///
/// PostgreSQL refuses to run as root, so when the tests run as root, PostgreSQL
/// commands switch to the `postgres` user (`Command::uid`/`gid`, the same effect as
/// `runuser -u postgres --` but without an extra parent process between us and the
/// postmaster) and their directories are chowned to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunAs {
    /// Run as the user running the tests.
    CurrentUser,
    /// Switch to this uid/gid (supplementary groups are dropped).
    User {
        /// Target user id.
        uid: Uid,
        /// Target group id.
        gid: Gid,
    },
}

impl RunAs {
    /// The identity for PostgreSQL: the `postgres` user when running as root, the
    /// current user otherwise.
    pub fn postgres() -> anyhow::Result<Self> {
        if !geteuid().is_root() {
            return Ok(Self::CurrentUser);
        }
        let user = User::from_name("postgres")
            .context("looking up the postgres user")?
            .ok_or_else(|| anyhow!("running as root but there is no `postgres` user"))?;
        Ok(Self::User {
            uid: user.uid,
            gid: user.gid,
        })
    }

    /// Makes `command` run as this identity.
    pub fn apply(&self, command: &mut Command) {
        if let Self::User { uid, gid } = self {
            command.uid(uid.as_raw()).gid(gid.as_raw());
        }
    }

    /// Gives `path` to this identity (no-op for [`RunAs::CurrentUser`]).
    pub fn give(&self, path: &Path) -> anyhow::Result<()> {
        if let Self::User { uid, gid } = self {
            chown(path, Some(*uid), Some(*gid))
                .with_context(|| format!("chown {} to uid {uid}", path.display()))?;
        }
        Ok(())
    }
}

/// A spawned server process, stopped when the guard is dropped.
///
/// The child runs in its own process group with stdin closed and stdout/stderr
/// appended to a log file. On Drop (and [`ChildProcess::stop`]) the tree is resumed
/// (SIGCONT, in case a test paused it), the leader gets its stop signal (SIGTERM unless
/// changed with [`ChildProcess::with_stop_signal`]), and whatever is still alive after
/// the grace period is SIGKILLed.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    child: Child,
    log_path: PathBuf,
    /// Length of the log file when this process was spawned (the log is shared by
    /// restarts of the same server).
    log_start: u64,
    stop_signal: Signal,
    stop_grace: Duration,
    exit_status: Option<ExitStatus>,
}

impl ChildProcess {
    /// Spawns `command` in a new process group, logging to `log_path` (appended, with a
    /// header line naming the command). `name` appears in error messages.
    pub fn spawn(name: &str, mut command: Command, log_path: &Path) -> anyhow::Result<Self> {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .with_context(|| format!("opening log file {}", log_path.display()))?;
        writeln!(log, "=== harness: starting {name}: {command:?}")?;
        let log_start = log.metadata()?.len();
        let log_for_stderr = log.try_clone()?;
        command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_for_stderr)
            .process_group(0);
        let child =
            spawn_from_spawner_thread(command).with_context(|| format!("spawning {name}"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log_path: log_path.to_owned(),
            log_start,
            stop_signal: Signal::SIGTERM,
            stop_grace: Duration::from_secs(10),
            exit_status: None,
        })
    }

    /// Sets the signal sent to the leader by [`ChildProcess::stop`] and Drop, and how
    /// long to wait for it to exit before SIGKILL.
    pub fn with_stop_signal(mut self, signal: Signal, grace: Duration) -> Self {
        self.stop_signal = signal;
        self.stop_grace = grace;
        self
    }

    /// The name given at spawn time.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Process id of the leader.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn nix_pid(&self) -> Pid {
        to_pid(self.child.id())
    }

    /// The log file receiving stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `lines` lines of the log file (empty if unreadable).
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path, lines)
    }

    /// Everything this process (not an earlier one sharing the log) has logged so far.
    pub fn log_since_start(&self) -> String {
        let Ok(bytes) = fs::read(&self.log_path) else {
            return String::new();
        };
        let start = usize::try_from(self.log_start)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }

    /// True while the leader has not exited (reaps it if it has).
    pub fn is_running(&mut self) -> bool {
        self.exit_status().is_none()
    }

    /// The leader's exit status once it has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exit_status.is_none() {
            match self.child.try_wait() {
                Ok(status) => self.exit_status = status,
                Err(_) => return None,
            }
        }
        self.exit_status
    }

    /// Pids of the leader and all its live descendants.
    pub fn tree_pids(&mut self) -> Vec<u32> {
        if !self.is_running() {
            return Vec::new();
        }
        process_tree(self.child.id())
    }

    /// Sends `signal` to the leader only.
    pub fn signal(&mut self, signal: Signal) -> anyhow::Result<()> {
        if !self.is_running() {
            bail!("{} is not running", self.name);
        }
        kill(self.nix_pid(), signal).with_context(|| format!("sending {signal} to {}", self.name))
    }

    /// Sends `signal` to the leader and every descendant (errors for vanished
    /// processes are ignored).
    pub fn signal_tree(&mut self, signal: Signal) {
        for pid in self.tree_pids() {
            send_signal(pid, signal);
        }
    }

    /// SIGSTOP to the leader only: it stops accepting and serving, but children it
    /// already forked keep running.
    pub fn pause(&mut self) -> anyhow::Result<()> {
        self.signal(Signal::SIGSTOP)
    }

    /// SIGSTOP to the leader and all descendants: everything freezes.
    pub fn pause_tree(&mut self) -> anyhow::Result<()> {
        if !self.is_running() {
            bail!("{} is not running", self.name);
        }
        self.signal_tree(Signal::SIGSTOP);
        Ok(())
    }

    /// SIGCONT to the whole tree (undoes [`ChildProcess::pause`] and
    /// [`ChildProcess::pause_tree`]).
    pub fn resume(&mut self) -> anyhow::Result<()> {
        if !self.is_running() {
            bail!("{} is not running", self.name);
        }
        self.signal_tree(Signal::SIGCONT);
        Ok(())
    }

    /// Waits up to `timeout` (not scaled) for the leader to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILLs the whole tree (a crash: no shutdown code runs) and waits until every
    /// process of it is gone.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        let pids = self.tree_pids();
        for pid in &pids {
            send_signal(*pid, Signal::SIGKILL);
        }
        if self.wait_exit(scaled(KILL_WAIT)).is_none() {
            bail!("{} (pid {}) survived SIGKILL", self.name, self.pid());
        }
        wait_until(
            &format!("{} processes to disappear", self.name),
            KILL_WAIT,
            || pids.iter().all(|pid| !pid_is_alive(*pid)),
        )
    }

    /// Graceful stop: SIGCONT the tree, send the stop signal to the leader, wait for the
    /// grace period, then SIGKILL whatever is left. Idempotent.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if !self.is_running() {
            return Ok(());
        }
        let descendants = self.tree_pids();
        self.signal_tree(Signal::SIGCONT);
        let _ = kill(self.nix_pid(), self.stop_signal);
        if self.wait_exit(scaled(self.stop_grace)).is_none() {
            self.kill()?;
        }
        // Children normally exit with their parent; reap stragglers (e.g. forked by a
        // server that was SIGKILLed earlier) so nothing outlives the guard.
        let stragglers: Vec<u32> = descendants
            .into_iter()
            .filter(|pid| pid_is_alive(*pid))
            .collect();
        for pid in &stragglers {
            send_signal(*pid, Signal::SIGKILL);
        }
        wait_until(
            &format!("{} stragglers to disappear", self.name),
            KILL_WAIT,
            || stragglers.iter().all(|pid| !pid_is_alive(*pid)),
        )
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            eprintln!("harness: stopping {}: {error:#}", self.name);
        }
    }
}

fn to_pid(pid: u32) -> Pid {
    Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX))
}

/// Sends `signal` to one process, ignoring errors (it may have exited already).
fn send_signal(pid: u32, signal: Signal) {
    let _ = kill(to_pid(pid), signal);
}

/// True if `pid` exists and is not a zombie.
pub fn pid_is_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => parse_stat(&stat).is_some_and(|(state, _)| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// Parses `/proc/<pid>/stat` into (state, parent pid). The command name may contain
/// spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<(char, u32)> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((state, parent))
}

/// `root` and all its live descendants, from one scan of `/proc`.
pub fn process_tree(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            if let Some((state, parent)) = parse_stat(&stat)
                && state != 'Z'
                && state != 'X'
            {
                children.entry(parent).or_default().push(pid);
            }
        }
    }
    let mut tree = vec![root];
    let mut next = 0;
    while let Some(pid) = tree.get(next).copied() {
        tree.extend(children.get(&pid).into_iter().flatten().copied());
        next += 1;
    }
    tree
}

/// The last `lines` lines of a file, or an empty string if it cannot be read.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(bytes) = fs::read(path) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs a one-shot command (psql, initdb, pg_basebackup, redis-cli…) to completion with
/// captured output, in its own process group. Fails if it exits non-zero (the error
/// carries stderr and stdout) or runs longer than `timeout` (scaled; the process tree is
/// then SIGKILLed).
pub fn run_command(mut command: Command, timeout: Duration) -> anyhow::Result<Output> {
    let description = format!("{command:?}");
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let child = command
        .spawn()
        .with_context(|| format!("spawning {description}"))?;
    let pid = child.id();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    let timeout = scaled(timeout);
    let output = match receiver.recv_timeout(timeout) {
        Ok(output) => output.with_context(|| format!("waiting for {description}"))?,
        Err(_) => {
            // Not reaped yet (the waiting thread has not returned), so the pid is ours.
            for tree_pid in process_tree(pid) {
                send_signal(tree_pid, Signal::SIGKILL);
            }
            bail!("{description} did not finish within {timeout:?}");
        }
    };
    if !output.status.success() {
        bail!(
            "{description} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::time::Duration;

    use super::{ChildProcess, parse_stat, pid_is_alive, process_tree, run_command};

    #[test]
    fn parses_stat_with_odd_command_names() {
        assert_eq!(parse_stat("42 (a (b) c) S 7 42 42 0"), Some(('S', 7)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn run_command_reports_failures_and_timeouts() {
        let mut echo = Command::new("sh");
        echo.args(["-c", "echo hi"]);
        assert_eq!(
            run_command(echo, Duration::from_secs(10)).unwrap().stdout,
            b"hi\n"
        );

        let mut failing = Command::new("sh");
        failing.args(["-c", "echo oops >&2; exit 3"]);
        let error = run_command(failing, Duration::from_secs(10)).unwrap_err();
        assert!(format!("{error:#}").contains("oops"));

        let mut slow = Command::new("sleep");
        slow.arg("30");
        assert!(run_command(slow, Duration::from_millis(200)).is_err());
    }

    #[test]
    fn child_tree_is_killed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new("sh");
        // A grandchild in its own session, like a PostgreSQL backend.
        command.args(["-c", "setsid sleep 300 & exec sleep 300"]);
        let mut child = ChildProcess::spawn("sleeper", command, &dir.path().join("s.log")).unwrap();
        crate::wait::wait_until("grandchild", Duration::from_secs(10), || {
            child.tree_pids().len() == 2
        })
        .unwrap();
        let pids = process_tree(child.pid());
        child.pause_tree().unwrap();
        drop(child);
        assert!(
            pids.iter().all(|pid| !pid_is_alive(*pid)),
            "{pids:?} survived"
        );
    }
}
