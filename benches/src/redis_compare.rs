//! `compare cacheproxy`: redis-benchmark against Redis directly, through twemproxy
//! (Debian's `nutcracker`) and through cacheproxy, same upstream, interleaved rounds.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use integration_tests::{ChildProcess, RedisOptions, RedisSet};

use crate::{cpu_time, median};

/// What to measure.
#[derive(Debug, Clone)]
pub struct Options {
    /// redis-benchmark `-c` values.
    pub clients: Vec<u32>,
    /// Pipeline depths (`-P`).
    pub pipelines: Vec<u32>,
    /// Requests per redis-benchmark run (`-n`).
    pub requests: u32,
    /// Rounds per cell (median reported).
    pub rounds: u32,
    /// Also run a large-value case (`-d 100000` SET/GET).
    pub is_large_value_included: bool,
    /// The cacheproxy binary (a release build).
    pub cacheproxy_bin: PathBuf,
}

/// One measured cell.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Test name as redis-benchmark prints it (SET, GET, ...).
    pub test: String,
    /// Clients.
    pub clients: u32,
    /// Pipeline depth.
    pub pipeline: u32,
    /// Value size.
    pub value_size: u32,
    /// Target name.
    pub target: &'static str,
    /// Median requests per second.
    pub rps: f64,
    /// Median p50 latency in ms.
    pub p50_ms: f64,
    /// Median p99 latency in ms.
    pub p99_ms: f64,
    /// CPU microseconds per request of the proxy process.
    pub cpu_us_per_request: Option<f64>,
}

pub(crate) struct Target {
    pub(crate) name: &'static str,
    pub(crate) port: u16,
    pub(crate) process: Option<ChildProcess>,
}

const TESTS: &str = "get,set,incr,lpush,mset";

/// Per test name: (rps, p50 ms, p99 ms, CPU µs per request) of each round.
type SamplesByTest = std::collections::BTreeMap<String, Vec<(f64, f64, f64, Option<f64>)>>;

/// Runs the comparison.
pub fn run(options: &Options) -> anyhow::Result<Vec<Cell>> {
    let redis = RedisSet::start(RedisOptions::single())?;
    let upstream = redis.master_addr()?;
    let dir = tempfile::tempdir()?;
    let targets = [
        Target {
            name: "direct",
            port: upstream.port(),
            process: None,
        },
        start_twemproxy(dir.path(), upstream)?,
        start_cacheproxy(dir.path(), upstream, &options.cacheproxy_bin)?,
    ];
    let mut cases: Vec<(u32, u32, u32, String)> = Vec::new();
    for &pipeline in &options.pipelines {
        for &clients in &options.clients {
            cases.push((clients, pipeline, 3, TESTS.into()));
        }
    }
    if options.is_large_value_included {
        cases.push((50, 1, 100_000, "set,get".into()));
    }
    let mut cells = Vec::new();
    for (clients, pipeline, size, tests) in cases {
        let mut samples: Vec<SamplesByTest> = vec![Default::default(); targets.len()];
        for round in 0..options.rounds {
            for k in 0..targets.len() {
                let i = (k + round as usize) % targets.len();
                let target = &targets[i];
                let pid = target.process.as_ref().map(ChildProcess::pid);
                let before = pid.map(cpu_time).transpose()?;
                let rows = benchmark(
                    target.port,
                    clients,
                    pipeline,
                    size,
                    &tests,
                    options.requests,
                )?;
                let cpu = match (pid, before) {
                    (Some(pid), Some(before)) => Some(cpu_time(pid)?.saturating_sub(before)),
                    _ => None,
                };
                let total: u64 = rows.len() as u64 * u64::from(options.requests);
                for (test, rps, p50, p99) in rows {
                    let cpu_us = cpu.map(|c| c.as_secs_f64() * 1e6 / total as f64);
                    samples[i]
                        .entry(test)
                        .or_default()
                        .push((rps, p50, p99, cpu_us));
                }
            }
        }
        for (i, target) in targets.iter().enumerate() {
            for (test, values) in &samples[i] {
                let mut rps: Vec<f64> = values.iter().map(|v| v.0).collect();
                let mut p50: Vec<f64> = values.iter().map(|v| v.1).collect();
                let mut p99: Vec<f64> = values.iter().map(|v| v.2).collect();
                let mut cpu: Vec<f64> = values.iter().filter_map(|v| v.3).collect();
                cells.push(Cell {
                    test: test.clone(),
                    clients,
                    pipeline,
                    value_size: size,
                    target: target.name,
                    rps: median(&mut rps),
                    p50_ms: median(&mut p50),
                    p99_ms: median(&mut p99),
                    cpu_us_per_request: (!cpu.is_empty()).then(|| median(&mut cpu)),
                });
            }
        }
        eprintln!("c={clients} P={pipeline} d={size}: done");
    }
    Ok(cells)
}

/// `redis-benchmark --csv`: (test, rps, p50 ms, p99 ms) per test.
fn benchmark(
    port: u16,
    clients: u32,
    pipeline: u32,
    size: u32,
    tests: &str,
    requests: u32,
) -> anyhow::Result<Vec<(String, f64, f64, f64)>> {
    let out = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--csv",
            "-t",
            tests,
        ])
        .args([
            "-c",
            &clients.to_string(),
            "-P",
            &pipeline.to_string(),
            "-d",
            &size.to_string(),
        ])
        .args(["-n", &requests.to_string(), "-r", "100000"])
        .output()
        .context("running redis-benchmark")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "redis-benchmark failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut rows = Vec::new();
    for line in stdout.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').map(|f| f.trim_matches('"')).collect();
        if fields.len() < 7 {
            continue;
        }
        let number = |i: usize| fields[i].parse::<f64>().unwrap_or(0.0);
        let test = fields[0]
            .split_whitespace()
            .next()
            .unwrap_or(fields[0])
            .to_owned();
        rows.push((test, number(1), number(4), number(6)));
    }
    if rows.is_empty() {
        bail!("redis-benchmark printed no result: {stdout}");
    }
    Ok(rows)
}

fn wait_listening(name: &str, port: u16, process: &ChildProcess) -> anyhow::Result<()> {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(10) {
            bail!("{name} did not listen on {port}: {}", process.log_tail(20));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

pub(crate) fn start_twemproxy(
    dir: &Path,
    upstream: std::net::SocketAddr,
) -> anyhow::Result<Target> {
    let port = integration_tests::ports::free_port()?;
    let conf = dir.join("nutcracker.yml");
    let mut text = String::new();
    writeln!(
        text,
        "bench:\n  listen: 127.0.0.1:{port}\n  redis: true\n  hash: fnv1a_64\n  distribution: ketama"
    )?;
    writeln!(
        text,
        "  server_connections: 1\n  auto_eject_hosts: false\n  servers:\n   - {upstream}:1"
    )?;
    std::fs::write(&conf, text)?;
    let mut command = Command::new("nutcracker");
    command
        .arg("-c")
        .arg(&conf)
        .arg("-s")
        .arg(integration_tests::ports::free_port()?.to_string());
    let process = ChildProcess::spawn("nutcracker", command, &dir.join("nutcracker.log"))?;
    wait_listening("nutcracker", port, &process)?;
    Ok(Target {
        name: "twemproxy",
        port,
        process: Some(process),
    })
}

pub(crate) fn start_cacheproxy(
    dir: &Path,
    upstream: std::net::SocketAddr,
    bin: &Path,
) -> anyhow::Result<Target> {
    let port = integration_tests::ports::free_port()?;
    let mut command = Command::new(bin);
    command
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--upstream",
            &upstream.to_string(),
        ])
        .env("RUST_LOG", "warn");
    let process = ChildProcess::spawn("cacheproxy", command, &dir.join("cacheproxy.log"))?;
    wait_listening("cacheproxy", port, &process)?;
    Ok(Target {
        name: "cacheproxy",
        port,
        process: Some(process),
    })
}

/// Checks the binary and twemproxy exist.
pub fn check_binaries(path: &Path) -> anyhow::Result<()> {
    if !path.is_file() {
        bail!(
            "{} not found: run `cargo build --release -p cacheproxy` first",
            path.display()
        );
    }
    Command::new("nutcracker")
        .arg("--version")
        .output()
        .context("nutcracker is not installed (apt-get install nutcracker)")?;
    Ok(())
}
