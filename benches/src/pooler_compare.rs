//! `compare pooler`: pgbench select-only against PostgreSQL directly, through PgBouncer
//! and through pooler, with the same pool settings, interleaved round by round.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use integration_tests::{ChildProcess, PgCluster, PgOptions, RunAs};

use crate::pgbench::{self, PgbenchResult};
use crate::{cpu_time, median};

/// What to measure.
#[derive(Debug, Clone)]
pub struct Options {
    /// pgbench client counts.
    pub clients: Vec<u32>,
    /// pgbench `-M` modes.
    pub modes: Vec<String>,
    /// Seconds per pgbench run.
    pub duration_secs: u32,
    /// Interleaved rounds per cell (the median is reported).
    pub rounds: u32,
    /// Also run the `-C` (new connection per transaction) case.
    pub is_reconnect_included: bool,
    /// `default_pool_size` for both poolers.
    pub pool_size: u32,
    /// Extra `[pgbouncer]` lines for both poolers (e.g. the seed deployment's
    /// `min_pool_size`, `reserve_pool_size`, `reserve_pool_timeout`).
    pub extra_settings: Vec<String>,
    /// The pooler binary (a release build).
    pub pooler_bin: PathBuf,
}

/// A load target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// PostgreSQL itself.
    Direct,
    /// Debian's PgBouncer.
    PgBouncer,
    /// Our pooler.
    Pooler,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Direct => "direct",
            Target::PgBouncer => "pgbouncer",
            Target::Pooler => "pooler",
        }
    }
}

/// One cell of the result table: medians over the rounds.
#[derive(Debug, Clone)]
pub struct Cell {
    /// pgbench mode (`simple`, `extended`, `prepared`, or `simple -C`).
    pub mode: String,
    /// Clients.
    pub clients: u32,
    /// Target.
    pub target: Target,
    /// Median tps; `None` if the target cannot run this case.
    pub tps: Option<f64>,
    /// Median average latency in ms.
    pub latency_ms: f64,
    /// Median of the rounds' p50 latency in ms.
    pub p50_ms: f64,
    /// Median of the rounds' p99 latency in ms.
    pub p99_ms: f64,
    /// CPU microseconds the daemon spent per transaction (not for direct).
    pub cpu_us_per_txn: Option<f64>,
    /// Why the target could not run it.
    pub error: Option<String>,
}

pub(crate) struct Daemon {
    pub(crate) target: Target,
    pub(crate) port: u16,
    pub(crate) process: Option<ChildProcess>,
}

/// Runs the comparison and returns the table cells.
pub fn run(options: &Options) -> anyhow::Result<Vec<Cell>> {
    let max_clients = options.clients.iter().copied().max().unwrap_or(10);
    let pg = PgCluster::start(PgOptions {
        max_connections: max_clients + 50,
        ..PgOptions::default()
    })?;
    pg.primary().pgbench_init(10)?;
    let dir = tempfile::tempdir()?;
    let run_as = RunAs::postgres()?;
    run_as.give(dir.path())?;
    let daemons = [
        Daemon {
            target: Target::Direct,
            port: pg.primary().port(),
            process: None,
        },
        start_daemon(
            Target::PgBouncer,
            dir.path(),
            pg.primary().port(),
            options,
            run_as,
        )?,
        start_daemon(
            Target::Pooler,
            dir.path(),
            pg.primary().port(),
            options,
            run_as,
        )?,
    ];
    let mut cases: Vec<(String, u32, Vec<String>)> = Vec::new();
    for mode in &options.modes {
        for &clients in &options.clients {
            let args = vec![
                "-S".into(),
                "-M".into(),
                mode.clone(),
                "-c".into(),
                clients.to_string(),
                "-j".into(),
                "2".into(),
                "-T".into(),
                options.duration_secs.to_string(),
            ];
            cases.push((mode.clone(), clients, args));
        }
    }
    if options.is_reconnect_included {
        let args = vec![
            "-S".into(),
            "-C".into(),
            "-c".into(),
            "10".into(),
            "-j".into(),
            "2".into(),
            "-T".into(),
            options.duration_secs.to_string(),
        ];
        cases.push(("simple -C".into(), 10, args));
    }
    let mut cells = Vec::new();
    for (mode, clients, args) in cases {
        let mut samples: Vec<Vec<(PgbenchResult, Option<Duration>)>> =
            vec![Vec::new(); daemons.len()];
        let mut errors: Vec<Option<String>> = vec![None; daemons.len()];
        for round in 0..options.rounds {
            // Rotate the order every round so no target always runs first.
            for k in 0..daemons.len() {
                let i = (k + round as usize) % daemons.len();
                if errors[i].is_some() {
                    continue;
                }
                let daemon = &daemons[i];
                let pid = daemon.process.as_ref().map(ChildProcess::pid);
                let cpu_before = pid.map(cpu_time).transpose()?;
                match pgbench::run(daemon.port, &args) {
                    Ok(result) => {
                        let cpu = match (pid, cpu_before) {
                            (Some(pid), Some(before)) => {
                                Some(cpu_time(pid)?.saturating_sub(before))
                            }
                            _ => None,
                        };
                        samples[i].push((result, cpu));
                    }
                    Err(e) => errors[i] = Some(first_line(&e.to_string())),
                }
            }
        }
        for (i, daemon) in daemons.iter().enumerate() {
            let mut tps: Vec<f64> = samples[i].iter().map(|(r, _)| r.tps).collect();
            let mut latency: Vec<f64> = samples[i].iter().map(|(r, _)| r.latency_ms).collect();
            let mut p50: Vec<f64> = samples[i].iter().map(|(r, _)| r.p50_ms).collect();
            let mut p99: Vec<f64> = samples[i].iter().map(|(r, _)| r.p99_ms).collect();
            let mut cpu: Vec<f64> = samples[i]
                .iter()
                .filter_map(|(r, cpu)| {
                    cpu.map(|c| c.as_secs_f64() * 1e6 / r.transactions.max(1) as f64)
                })
                .collect();
            cells.push(Cell {
                mode: mode.clone(),
                clients,
                target: daemon.target,
                tps: (!tps.is_empty()).then(|| median(&mut tps)),
                latency_ms: median(&mut latency),
                p50_ms: median(&mut p50),
                p99_ms: median(&mut p99),
                cpu_us_per_txn: (!cpu.is_empty()).then(|| median(&mut cpu)),
                error: errors[i].clone(),
            });
        }
        eprintln!("{mode} c={clients}: done");
    }
    Ok(cells)
}

fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(text);
    line.chars().take(120).collect()
}

pub(crate) fn start_daemon(
    target: Target,
    dir: &Path,
    pg_port: u16,
    options: &Options,
    run_as: RunAs,
) -> anyhow::Result<Daemon> {
    let port = integration_tests::ports::free_port()?;
    let name = target.name();
    let userlist = dir.join("userlist.txt");
    std::fs::write(&userlist, "\"postgres\" \"\"\n")?;
    let ini = dir.join(format!("{name}.ini"));
    let mut text = String::new();
    writeln!(
        text,
        "[databases]\npostgres = host=127.0.0.1 port={pg_port}\n"
    )?;
    writeln!(
        text,
        "[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir ="
    )?;
    writeln!(
        text,
        "auth_type = trust\nauth_file = {}",
        userlist.display()
    )?;
    writeln!(
        text,
        "pool_mode = transaction\ndefault_pool_size = {}\nmax_client_conn = 5000",
        options.pool_size
    )?;
    writeln!(
        text,
        "ignore_startup_parameters = extra_float_digits\nlog_connections = 0\nlog_disconnections = 0"
    )?;
    writeln!(text, "logfile = {}/{name}.log", dir.display())?;
    for line in &options.extra_settings {
        writeln!(text, "{line}")?;
    }
    if target == Target::Pooler {
        writeln!(text, "max_prepared_statements = 200")?;
    }
    std::fs::write(&ini, text)?;
    run_as.give(&ini)?;
    run_as.give(&userlist)?;
    let mut command = match target {
        Target::PgBouncer => {
            let mut c = Command::new("pgbouncer");
            c.arg(&ini);
            run_as.apply(&mut c);
            c
        }
        _ => {
            let mut c = Command::new(&options.pooler_bin);
            c.arg(&ini).env("POOLER_LOG", "warn");
            c
        }
    };
    command.current_dir(dir);
    let process = ChildProcess::spawn(name, command, &dir.join(format!("{name}.out")))?;
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(10) {
            bail!(
                "{name} did not start listening on {port}: {}",
                process.log_tail(20)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Daemon {
        target,
        port,
        process: Some(process),
    })
}

/// Checks the pooler binary exists.
pub fn check_binary(path: &Path) -> anyhow::Result<()> {
    if !path.is_file() {
        bail!(
            "{} not found: run `cargo build --release -p pooler` first",
            path.display()
        );
    }
    Command::new("pgbouncer")
        .arg("--version")
        .output()
        .context("pgbouncer is not installed (apt-get install pgbouncer)")?;
    Ok(())
}
