//! Running pgbench against one target and reading its results.

use std::process::Command;

use anyhow::{Context, bail};

/// One pgbench run's figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct PgbenchResult {
    /// Transactions per second (excluding initial connection time).
    pub tps: f64,
    /// Transactions processed.
    pub transactions: u64,
    /// Average latency in milliseconds.
    pub latency_ms: f64,
    /// Failed transactions.
    pub failed: u64,
    /// Median transaction latency in ms (from pgbench's per-transaction log).
    pub p50_ms: f64,
    /// 99th percentile transaction latency in ms.
    pub p99_ms: f64,
}

/// Runs `pgbench -n <args> -h 127.0.0.1 -p <port> -U postgres postgres` with a
/// per-transaction log, from which p50/p99 are computed.
pub fn run(port: u16, args: &[String]) -> anyhow::Result<PgbenchResult> {
    run_in(port, "postgres", args).map(|(result, _)| result)
}

/// [`run`] against database `database`; also returns pgbench's stdout.
pub fn run_in(
    port: u16,
    database: &str,
    args: &[String],
) -> anyhow::Result<(PgbenchResult, String)> {
    let logs = tempfile::tempdir()?;
    let output = command(port, database, logs.path(), args)?
        .output()
        .context("running pgbench")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench {args:?} failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut result = parse(&stdout)?;
    let mut latencies_us = Vec::new();
    for entry in std::fs::read_dir(logs.path())? {
        let text = std::fs::read_to_string(entry?.path())?;
        // "client_id transaction_no time script_no time_epoch time_us": time is in µs.
        latencies_us.extend(
            text.lines()
                .filter_map(|l| l.split_whitespace().nth(2)?.parse::<f64>().ok()),
        );
    }
    latencies_us.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((latencies_us.len().saturating_sub(1)) as f64 * q).round() as usize;
        latencies_us.get(i).map_or(0.0, |us| us / 1000.0)
    };
    result.p50_ms = at(0.50);
    result.p99_ms = at(0.99);
    Ok((result, stdout.into_owned()))
}

/// `pgbench -n -h 127.0.0.1 -p <port> -U postgres --log <args> <database>`, writing its
/// per-transaction log into `log_dir`.
pub fn command(
    port: u16,
    database: &str,
    log_dir: &std::path::Path,
    args: &[String],
) -> anyhow::Result<Command> {
    let mut command = Command::new(integration_tests::pg_tool("pgbench")?);
    command
        .args([
            "-n",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
        ])
        .arg("--log")
        .arg(format!("--log-prefix={}", log_dir.join("tx").display()))
        .args(args)
        .arg(database);
    Ok(command)
}

/// Reads pgbench's summary.
pub fn parse(stdout: &str) -> anyhow::Result<PgbenchResult> {
    let mut result = PgbenchResult::default();
    for line in stdout.lines() {
        let value = |prefix: &str| {
            line.strip_prefix(prefix)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.split('/').next())
                .and_then(|v| v.parse::<f64>().ok())
        };
        if let Some(v) = value("tps = ") {
            result.tps = v;
        } else if let Some(v) = value("number of transactions actually processed: ") {
            result.transactions = v as u64;
        } else if let Some(v) = value("latency average = ") {
            result.latency_ms = v;
        } else if let Some(v) = value("number of failed transactions: ") {
            result.failed = v as u64;
        }
    }
    if result.transactions == 0 {
        bail!("pgbench printed no result:\n{stdout}");
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_a_pgbench_15_summary() {
        let out = "number of transactions actually processed: 1234/1234\nnumber of failed transactions: 0 (0.000%)\nlatency average = 0.812 ms\ninitial connection time = 3.2 ms\ntps = 1231.5 (without initial connection time)\n";
        let r = super::parse(out).unwrap();
        assert_eq!(r.transactions, 1234);
        assert_eq!(r.tps, 1231.5);
        assert_eq!(r.latency_ms, 0.812);
        assert_eq!(r.failed, 0);
    }
}
