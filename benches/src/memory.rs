//! `compare memory`: resident memory of each daemon holding N idle client connections
//! (logged in for the poolers, PINGed for the Redis proxies), per connection.

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::BytesMut;
use integration_tests::{PgCluster, PgOptions, RedisOptions, RedisSet, RunAs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::pooler_compare::{self, Target};
use crate::{redis_compare, rss_bytes};

/// One daemon's figures.
#[derive(Debug, Clone)]
pub struct MemoryRow {
    /// Daemon name.
    pub name: &'static str,
    /// Connections held.
    pub connections: usize,
    /// RSS before the connections, bytes.
    pub rss_before: u64,
    /// RSS while holding them, bytes.
    pub rss_after: u64,
}

impl MemoryRow {
    /// Bytes of RSS per idle connection.
    pub fn per_connection(&self) -> f64 {
        self.rss_after.saturating_sub(self.rss_before) as f64 / self.connections.max(1) as f64
    }
}

/// Measures pooler vs PgBouncer and cacheproxy vs twemproxy with `n` idle clients each.
pub fn run(
    n: usize,
    pooler_bin: &std::path::Path,
    cacheproxy_bin: &std::path::Path,
) -> anyhow::Result<Vec<MemoryRow>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut rows = Vec::new();

    let pg = PgCluster::start(PgOptions::default())?;
    let dir = tempfile::tempdir()?;
    let run_as = RunAs::postgres()?;
    run_as.give(dir.path())?;
    let options = pooler_compare::Options {
        clients: vec![],
        modes: vec![],
        duration_secs: 0,
        rounds: 0,
        is_reconnect_included: false,
        pool_size: 10,
        extra_settings: vec![format!("max_client_conn = {}", n + 100)],
        pooler_bin: pooler_bin.to_path_buf(),
    };
    for target in [Target::PgBouncer, Target::Pooler] {
        let daemon = pooler_compare::start_daemon(
            target,
            dir.path(),
            pg.primary().port(),
            &options,
            run_as,
        )?;
        let pid = daemon.process.as_ref().context("daemon process")?.pid();
        // One login first so the pool's server connection is not counted per client.
        runtime.block_on(pg_login(daemon.port))?;
        let before = rss_bytes(pid)?;
        let held = runtime.block_on(hold(n, || pg_login(daemon.port)))?;
        std::thread::sleep(Duration::from_millis(500));
        let after = rss_bytes(pid)?;
        drop(held);
        rows.push(MemoryRow {
            name: if target == Target::Pooler {
                "pooler"
            } else {
                "pgbouncer"
            },
            connections: n,
            rss_before: before,
            rss_after: after,
        });
    }

    let redis = RedisSet::start(RedisOptions::single())?;
    let upstream = redis.master_addr()?;
    let proxies = [
        redis_compare::start_twemproxy(dir.path(), upstream)?,
        redis_compare::start_cacheproxy(dir.path(), upstream, cacheproxy_bin)?,
    ];
    for proxy in &proxies {
        let pid = proxy.process.as_ref().context("proxy process")?.pid();
        runtime.block_on(redis_ping(proxy.port))?;
        let before = rss_bytes(pid)?;
        let held = runtime.block_on(hold(n, || redis_ping(proxy.port)))?;
        std::thread::sleep(Duration::from_millis(500));
        let after = rss_bytes(pid)?;
        drop(held);
        rows.push(MemoryRow {
            name: proxy.name,
            connections: n,
            rss_before: before,
            rss_after: after,
        });
    }
    Ok(rows)
}

/// Opens `n` connections with `open`, one after another, and returns them (held open).
async fn hold<F, Fut>(n: usize, open: F) -> anyhow::Result<Vec<TcpStream>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<TcpStream>>,
{
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(open().await?);
    }
    Ok(held)
}

/// Logs in as `postgres` (trust) and waits for ReadyForQuery.
async fn pg_login(port: u16) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let mut out = BytesMut::new();
    protocol::pg::encode::startup_message(
        &mut out,
        &[("user", "postgres"), ("database", "postgres")],
    )?;
    stream.write_all(&out).await?;
    let mut input = BytesMut::new();
    let splitter = protocol::pg::FrameSplitter::new(1 << 20);
    loop {
        while let Some(frame) = splitter.split(&mut input)? {
            match frame.backend_tag() {
                Some(protocol::pg::BackendTag::ReadyForQuery) => return Ok(stream),
                Some(protocol::pg::BackendTag::ErrorResponse) => {
                    bail!("login failed on port {port}")
                }
                _ => {}
            }
        }
        if stream.read_buf(&mut input).await? == 0 {
            bail!("connection closed during login on port {port}");
        }
    }
}

/// Connects and sends one PING.
async fn redis_ping(port: u16) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(b"*1\r\n$4\r\nPING\r\n").await?;
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).await?;
    if &reply != b"+PONG\r\n" {
        bail!("unexpected PING reply on port {port}");
    }
    Ok(stream)
}
