//! Shared setup for the cacheproxy tests: the proxy run in-process in front of a harness
//! `RedisSet`, clients (redis-rs, raw sockets, redis-cli) and small load helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use cacheproxy::{Config, Running};
use integration_tests::{RedisSet, redis_tool};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A proxy running in this process.
pub struct TestProxy {
    pub running: Option<Running>,
    pub addr: SocketAddr,
}

/// A proxy config pointing at `set`'s Sentinels, listening on a free port.
pub fn sentinel_config(set: &RedisSet) -> Config {
    Config {
        listen: "127.0.0.1:0".to_owned(),
        sentinels: set
            .sentinel_addrs()
            .iter()
            .map(ToString::to_string)
            .collect(),
        master_name: set.master_name().to_owned(),
        failover_timeout: Duration::from_secs(15),
        refresh_interval: Duration::from_secs(1),
        ..Config::default()
    }
}

impl TestProxy {
    /// Starts the proxy with `config` and waits until it confirmed a master.
    pub async fn start(config: Config) -> TestProxy {
        let running = cacheproxy::start(config).await.expect("proxy starts");
        let addr = running.addr();
        running
            .wait_for_master(Duration::from_secs(30))
            .await
            .expect("the proxy finds the master");
        TestProxy {
            running: Some(running),
            addr,
        }
    }

    /// Starts a proxy in front of `set` with default test settings changed by `edit`.
    pub async fn in_front_of(set: &RedisSet, edit: impl FnOnce(&mut Config)) -> TestProxy {
        let mut config = sentinel_config(set);
        edit(&mut config);
        TestProxy::start(config).await
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("running")
    }

    /// `redis://127.0.0.1:<port>/<db>`.
    pub fn url(&self, db: u32) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.addr.port())
    }

    /// A redis-rs multiplexed connection through the proxy.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        self.connection_to(&self.url(0)).await
    }

    pub async fn connection_to(&self, url: &str) -> redis::aio::MultiplexedConnection {
        connect(url).await.expect("connects through the proxy")
    }

    /// A raw socket to the proxy.
    pub async fn raw(&self) -> RawClient {
        RawClient::connect(self.addr).await
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

/// A redis-rs connection with timeouts suited to a loaded 2-core CI machine (redis-rs
/// defaults to 500 ms per response; failovers legitimately hold commands for seconds).
pub async fn connect(url: &str) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(10)))
        .set_response_timeout(Some(Duration::from_secs(30)));
    redis::Client::open(url)?
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// A plain TCP client that writes bytes and reads exact replies.
pub struct RawClient {
    pub stream: TcpStream,
    buffer: Vec<u8>,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).await.expect("connect");
        RawClient {
            stream,
            buffer: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Sends a command as a multibulk array.
    pub async fn command(&mut self, args: &[&str]) {
        let mut bytes = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            bytes.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
        }
        self.send(&bytes).await;
    }

    /// Reads until `expected` bytes arrived (within 10 s) and returns them.
    pub async fn read_exact_len(&mut self, len: usize) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.buffer.len() < len {
            let mut chunk = vec![0u8; 64 * 1024];
            let read = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .expect("reply in time")
                .expect("read");
            assert!(
                read > 0,
                "connection closed after {:?}",
                String::from_utf8_lossy(&self.buffer)
            );
            self.buffer.extend_from_slice(&chunk[..read]);
        }
        self.buffer.drain(..len).collect()
    }

    /// Reads exactly `expected.len()` bytes and compares them.
    pub async fn expect(&mut self, expected: &str) {
        let got = self.read_exact_len(expected.len()).await;
        assert_eq!(String::from_utf8_lossy(&got), expected);
    }

    /// Reads one RESP value (any type) and returns its raw bytes.
    pub async fn read_value(&mut self) -> Vec<u8> {
        let mut framer = protocol::resp::RespFramer::default();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(len) = framer.next_frame_len(&self.buffer).expect("valid RESP") {
                return self.buffer.drain(..len).collect();
            }
            let mut chunk = vec![0u8; 64 * 1024];
            let read = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .expect("reply in time")
                .expect("read");
            assert!(read > 0, "connection closed");
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }

    /// True when the proxy closed the connection (EOF within 5 s, after draining data).
    pub async fn is_closed(&mut self) -> bool {
        let mut chunk = [0u8; 1024];
        loop {
            match tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// Runs redis-cli against the proxy and returns its trimmed stdout.
pub fn redis_cli(addr: SocketAddr, args: &[&str]) -> String {
    let output = std::process::Command::new(redis_tool("redis-cli").expect("redis-cli"))
        .env_remove("REDISCLI_AUTH")
        .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Runs redis-cli with `input` on stdin (pipe mode or a script of commands).
pub fn redis_cli_stdin(addr: SocketAddr, args: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(redis_tool("redis-cli").expect("redis-cli"))
        .env_remove("REDISCLI_AUTH")
        .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("redis-cli runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let output = child.wait_with_output().expect("redis-cli ends");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// `INFO <section>` of a server as field → value.
pub fn info_field(set: &RedisSet, addr: SocketAddr, section: &str, field: &str) -> Option<String> {
    let server = set.server(addr)?;
    server.info(section).ok()?.get(field).cloned()
}

/// Calls count of a command on a server, from `INFO commandstats` (0 if never called).
pub fn command_calls(set: &RedisSet, addr: SocketAddr, command: &str) -> u64 {
    info_field(set, addr, "commandstats", &format!("cmdstat_{command}"))
        .and_then(|stats| {
            stats.split(',').find_map(|part| {
                part.strip_prefix("calls=")
                    .and_then(|calls| calls.parse().ok())
            })
        })
        .unwrap_or(0)
}

/// What one INCR load task saw.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    /// INCRs written.
    pub attempted: u64,
    /// INCRs answered with an integer.
    pub acknowledged: u64,
    /// Error replies (text).
    pub errors: Vec<String>,
    /// The proxy closed the client connection.
    pub was_dropped: bool,
    /// When each acknowledgement arrived.
    pub acknowledged_at: Vec<std::time::Instant>,
}

impl LoadReport {
    /// Merges several tasks' reports.
    pub fn merge(reports: Vec<LoadReport>) -> LoadReport {
        let mut total = LoadReport::default();
        for report in reports {
            total.attempted += report.attempted;
            total.acknowledged += report.acknowledged;
            total.errors.extend(report.errors);
            total.was_dropped |= report.was_dropped;
            total.acknowledged_at.extend(report.acknowledged_at);
        }
        total.acknowledged_at.sort();
        total
    }

    /// Longest time without any acknowledgement, between the first and last one.
    pub fn longest_gap(&self) -> Duration {
        self.acknowledged_at
            .windows(2)
            .map(|pair| pair[1] - pair[0])
            .max()
            .unwrap_or_default()
    }

    /// Acknowledgements after `at`.
    pub fn acknowledged_after(&self, at: std::time::Instant) -> usize {
        self.acknowledged_at
            .iter()
            .filter(|time| **time > at)
            .count()
    }
}

/// `clients` raw connections sending `INCR key` one at a time until `stop` is set.
pub fn spawn_incr_load(
    addr: SocketAddr,
    key: &str,
    clients: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<LoadReport>> {
    (0..clients)
        .map(|_| {
            let stop = std::sync::Arc::clone(&stop);
            let command = format!("*2\r\n$4\r\nINCR\r\n${}\r\n{key}\r\n", key.len());
            tokio::spawn(async move {
                let mut report = LoadReport::default();
                let mut client = RawClient::connect(addr).await;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    report.attempted += 1;
                    if client.stream.write_all(command.as_bytes()).await.is_err() {
                        report.was_dropped = true;
                        break;
                    }
                    match client.try_read_value(Duration::from_secs(30)).await {
                        Some(reply) if reply.first() == Some(&b':') => {
                            report.acknowledged += 1;
                            report.acknowledged_at.push(std::time::Instant::now());
                        }
                        Some(reply) => report
                            .errors
                            .push(String::from_utf8_lossy(&reply).trim().to_owned()),
                        None => {
                            report.was_dropped = true;
                            break;
                        }
                    }
                }
                report
            })
        })
        .collect()
}

impl RawClient {
    /// One RESP value, or `None` if the connection closed or nothing came within `limit`.
    pub async fn try_read_value(&mut self, limit: Duration) -> Option<Vec<u8>> {
        let mut framer = protocol::resp::RespFramer::default();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(len) = framer.next_frame_len(&self.buffer).ok()? {
                return Some(self.buffer.drain(..len).collect());
            }
            let mut chunk = vec![0u8; 16 * 1024];
            let read = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .ok()?
                .ok()?;
            if read == 0 {
                return None;
            }
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }
}
