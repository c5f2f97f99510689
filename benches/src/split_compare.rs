//! `compare split`: read/write splitting with a primary and 2 streaming replicas.
//! pgbench `-b select-only@9 -b simple-update@1` against the primary directly, through
//! pooler to the primary only, and through pooler splitting reads to the replicas (with
//! and without read-your-writes), interleaved; then a primary failover under the same
//! load, measured from pgbench's per-transaction log.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use integration_tests::{ChildProcess, PgCluster, PgOptions, RunAs};

use crate::median;
use crate::pgbench;

/// What to measure.
#[derive(Debug, Clone)]
pub struct Options {
    /// pgbench client counts.
    pub clients: Vec<u32>,
    /// Seconds per pgbench run.
    pub duration_secs: u32,
    /// Interleaved rounds per cell (the median is reported).
    pub rounds: u32,
    /// pgbench scale.
    pub scale: u32,
    /// Seconds of the failover run (the primary stops a third of the way in).
    pub failover_secs: u32,
    /// The pooler binary.
    pub pooler_bin: PathBuf,
}

/// A load target: a database name on a port.
struct Target {
    name: &'static str,
    port: u16,
    database: &'static str,
}

/// The mixed workload of issue 6.
fn mixed_args(clients: u32, secs: u32) -> Vec<String> {
    [
        "-b",
        "select-only@9",
        "-b",
        "simple-update@1",
        "-c",
        &clients.to_string(),
        "-j",
        "2",
        "-T",
        &secs.to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// Runs the comparison and returns the markdown report.
pub fn run(options: &Options) -> anyhow::Result<String> {
    let max_clients = options.clients.iter().copied().max().unwrap_or(10);
    // Production commits synchronously (the test harness does not, for speed): replicas
    // then receive each commit at once, which read-your-writes depends on.
    let pg = PgCluster::start(PgOptions {
        replicas: 2,
        max_connections: max_clients * 2 + 50,
        extra_conf: vec![("synchronous_commit".into(), "on".into())],
        ..PgOptions::default()
    })?;
    pg.primary().pgbench_init(options.scale)?;
    pg.wait_for_replication()?;
    let dir = tempfile::tempdir()?;
    RunAs::postgres()?.give(dir.path())?;
    let (pooler, port, metrics) = start_pooler(&pg, dir.path(), options, max_clients)?;
    let targets = [
        Target {
            name: "direct to the primary",
            port: pg.primary().port(),
            database: "postgres",
        },
        Target {
            name: "pooler, primary only",
            port,
            database: "primary_only",
        },
        Target {
            name: "pooler, split (read-your-writes lsn)",
            port,
            database: "split",
        },
        Target {
            name: "pooler, split (read_your_writes=off)",
            port,
            database: "split_noryw",
        },
    ];
    let replica_hosts: Vec<String> = pg
        .replicas()
        .iter()
        .map(|r| format!("127.0.0.1:{}", r.port()))
        .collect();
    let mut text = String::new();
    writeln!(
        text,
        "| clients | target | tps | vs direct | vs pooler primary-only | reads on replicas | primary CPU µs/txn | replicas CPU µs/txn |"
    )?;
    writeln!(text, "|---:|---|---:|---:|---:|---:|---:|---:|")?;
    for &clients in &options.clients {
        let mut tps = vec![Vec::new(); targets.len()];
        let mut shares = vec![Vec::new(); targets.len()];
        let mut primary_cpu = vec![Vec::new(); targets.len()];
        let mut replica_cpu = vec![Vec::new(); targets.len()];
        for round in 0..options.rounds {
            for k in 0..targets.len() {
                let i = (k + round as usize) % targets.len();
                let t = &targets[i];
                let before = replica_transactions(metrics, t.database, &replica_hosts)?;
                let cpu_before = cluster_cpu(&pg);
                let (result, stdout) = pgbench::run_in(
                    t.port,
                    t.database,
                    &mixed_args(clients, options.duration_secs),
                )?;
                let cpu_after = cluster_cpu(&pg);
                let after = replica_transactions(metrics, t.database, &replica_hosts)?;
                tps[i].push(result.tps);
                let per_txn = |before: Duration, after: Duration| {
                    after.saturating_sub(before).as_secs_f64() * 1e6
                        / result.transactions.max(1) as f64
                };
                primary_cpu[i].push(per_txn(cpu_before.0, cpu_after.0));
                replica_cpu[i].push(per_txn(cpu_before.1, cpu_after.1));
                if let Some(reads) = select_only_transactions(&stdout) {
                    shares[i].push((after - before) as f64 / reads.max(1) as f64);
                }
            }
        }
        let medians: Vec<f64> = tps.iter_mut().map(|v| median(v)).collect();
        for (i, t) in targets.iter().enumerate() {
            let share = median(&mut shares[i]);
            writeln!(
                text,
                "| {clients} | {} | {:.0} | {:.2} | {:.2} | {:.0}% | {:.0} | {:.0} |",
                t.name,
                medians[i],
                medians[i] / medians[0].max(1.0),
                medians[i] / medians[1].max(1.0),
                share * 100.0,
                median(&mut primary_cpu[i]),
                median(&mut replica_cpu[i]),
            )?;
        }
        eprintln!("split c={clients}: done");
    }
    text.push_str(&failover(&pg, port, options)?);
    drop(pooler);
    Ok(text)
}

/// CPU time used so far by the primary's processes and by the replicas' (postmaster and
/// every child: backends, WAL sender/receiver, startup process), from /proc.
fn cluster_cpu(pg: &PgCluster) -> (Duration, Duration) {
    // Live processes, plus what the postmaster's exited children used (backends of
    // short-lived direct connections end between two readings).
    let node_cpu = |node: &integration_tests::PgNode| {
        let live: Duration = node
            .process_ids()
            .into_iter()
            .filter_map(|pid| crate::cpu_time(pid).ok())
            .sum();
        let reaped = node
            .pid()
            .and_then(|pid| crate::children_cpu_time(pid).ok())
            .unwrap_or_default();
        live + reaped
    };
    let primary = node_cpu(pg.primary());
    let replicas = pg.replicas().iter().map(node_cpu).sum();
    (primary, replicas)
}

/// The pooler with three databases over the same cluster.
fn start_pooler(
    pg: &PgCluster,
    dir: &std::path::Path,
    options: &Options,
    max_clients: u32,
) -> anyhow::Result<(ChildProcess, u16, u16)> {
    let port = integration_tests::ports::free_port()?;
    let metrics = integration_tests::ports::free_port()?;
    let hosts: Vec<String> = pg
        .nodes()
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port()))
        .collect();
    let hosts = hosts.join(",");
    let primary = pg.primary().port();
    let userlist = dir.join("userlist.txt");
    std::fs::write(&userlist, "\"postgres\" \"\"\n")?;
    let mut ini = String::new();
    writeln!(ini, "[databases]")?;
    writeln!(
        ini,
        "primary_only = host=127.0.0.1 port={primary} dbname=postgres"
    )?;
    writeln!(
        ini,
        "split = host={hosts} dbname=postgres read_write_split=on"
    )?;
    writeln!(
        ini,
        "split_noryw = host={hosts} dbname=postgres read_write_split=on read_your_writes=off"
    )?;
    writeln!(
        ini,
        "[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir ="
    )?;
    writeln!(ini, "auth_type = trust\nauth_file = {}", userlist.display())?;
    writeln!(
        ini,
        "pool_mode = transaction\ndefault_pool_size = {}\nmax_client_conn = 5000",
        max_clients.min(20)
    )?;
    writeln!(
        ini,
        "max_db_connections = 0\nmetrics_addr = 127.0.0.1:{metrics}"
    )?;
    writeln!(
        ini,
        "ignore_startup_parameters = extra_float_digits\nlog_connections = 0\nlog_disconnections = 0"
    )?;
    writeln!(ini, "logfile = {}/pooler.log", dir.display())?;
    let path = dir.join("split.ini");
    std::fs::write(&path, ini)?;
    let mut command = Command::new(&options.pooler_bin);
    command
        .arg(&path)
        .env("POOLER_LOG", "warn")
        .current_dir(dir);
    let process = ChildProcess::spawn("pooler", command, &dir.join("pooler.out"))?;
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(10) {
            bail!("pooler did not start: {}", process.log_tail(20));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((process, port, metrics))
}

/// Transactions pooler ran on the replica hosts of `database`, from `/metrics`.
fn replica_transactions(metrics: u16, database: &str, hosts: &[String]) -> anyhow::Result<u64> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", metrics)).context("metrics")?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut body = String::new();
    stream.read_to_string(&mut body)?;
    let mut total = 0;
    for line in body.lines() {
        let Some(rest) = line.strip_prefix("pooler_transaction_duration_seconds_count{") else {
            continue;
        };
        let is_ours = rest.contains(&format!("database=\"{database}\""))
            && hosts
                .iter()
                .any(|h| rest.contains(&format!("host=\"{h}\"")));
        if is_ours {
            total += rest
                .rsplit(' ')
                .next()
                .and_then(|n| n.parse::<f64>().ok())
                .unwrap_or(0.0) as u64;
        }
    }
    Ok(total)
}

/// The select-only script's transaction count from pgbench's per-script summary.
fn select_only_transactions(stdout: &str) -> Option<u64> {
    let after = stdout.split("<builtin: select only>").nth(1)?;
    let line = after.lines().find(|l| l.contains(" transactions ("))?;
    line.trim_start_matches([' ', '-'])
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Stops the primary a third into a mixed run through the split database and promotes
/// replica 1; reports the longest gap between completed writes and the aborted clients.
fn failover(pg: &PgCluster, port: u16, options: &Options) -> anyhow::Result<String> {
    let logs = tempfile::tempdir()?;
    let clients = 10;
    let mut command = pgbench::command(
        port,
        "split",
        logs.path(),
        &mixed_args(clients, options.failover_secs),
    )?;
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    std::thread::sleep(Duration::from_secs(u64::from(options.failover_secs) / 3));
    let stopped_at = std::time::SystemTime::now();
    pg.primary().stop()?;
    pg.replica(0).promote()?;
    let promote_took = stopped_at.elapsed().unwrap_or_default();
    let output = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let aborted = stderr
        .lines()
        .filter(|l| l.contains("aborted in command"))
        .count();
    // What the aborted clients were told, without the client numbers.
    let mut messages: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("aborted in command"))
        .filter_map(|l| l.split_once("query 0: ").map(|(_, m)| m.trim()))
        .collect();
    messages.sort_unstable();
    messages.dedup();
    // "client_id transaction_no time script_no time_epoch time_us": script 1 = update.
    let mut writes: Vec<f64> = Vec::new();
    for entry in std::fs::read_dir(logs.path())? {
        for line in std::fs::read_to_string(entry?.path())?.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.get(3) == Some(&"1")
                && let (Some(s), Some(us)) = (f.get(4), f.get(5))
                && let (Ok(s), Ok(us)) = (s.parse::<f64>(), us.parse::<f64>())
            {
                writes.push(s + us / 1e6);
            }
        }
    }
    writes.sort_by(f64::total_cmp);
    let stop = stopped_at
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    // The longest pause in completed writes from just before the stop to the end.
    let gap = writes
        .windows(2)
        .filter(|w| w[1] >= stop - 0.5)
        .map(|w| w[1] - w[0])
        .fold(0.0, f64::max);
    let resumed = writes
        .iter()
        .filter(|t| **t > stop + promote_took.as_secs_f64())
        .count();
    Ok(format!(
        "\nFailover under the same load ({clients} clients, pgbench {} s): primary stopped (fast) and replica 1 promoted \
         ({:.0} ms from stop to promoted); write outage (longest gap between completed writes, all clients, from 0.5 s before the stop) {:.0} ms; \
         {resumed} writes completed on the new primary; {aborted} of {clients} pgbench clients aborted (pgbench ends a client at its first error), with: {}.\n",
        options.failover_secs,
        promote_took.as_secs_f64() * 1000.0,
        gap * 1000.0,
        if messages.is_empty() {
            "no error".to_owned()
        } else {
            messages.join(" | ")
        }
    ))
}
