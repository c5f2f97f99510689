//! cacheproxy's HTTP endpoint against a real master + replica + 3 Sentinels: `/metrics`
//! parses as Prometheus text and its command counters, latency histograms and keyspace
//! hits/misses match the commands sent; `/health` answers; `/ready` is 200 with a confirmed
//! master, 503 once the master is killed (through the failover hold) and 200 again when
//! the new master is confirmed; the failover counter and the master address follow
//! `failover_and_wait`.

mod cacheproxy_support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cacheproxy_support::{RawClient, TestProxy};
use integration_tests::{RedisOptions, RedisSet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Series by their exact text (`name{label="value",...}`), as the proxy writes them.
type Series = HashMap<String, f64>;

/// `GET path` over HTTP/1.1; the status code and the body.
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect to /metrics");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("HTTP reply in time")
        .expect("read");
    let text = String::from_utf8(response).expect("UTF-8 reply");
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status code");
    (status, body.to_owned())
}

/// A small Prometheus text-format parser: checks every line and returns the samples.
fn parse_prometheus(text: &str) -> Series {
    let mut series = Series::new();
    for line in text.lines().filter(|line| !line.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            let words: Vec<&str> = comment.split_whitespace().collect();
            assert!(matches!(words.first(), Some(&"HELP" | &"TYPE")), "{line}");
            if words.first() == Some(&"TYPE") {
                assert!(
                    matches!(
                        words.get(2).copied(),
                        Some("counter" | "gauge" | "histogram" | "summary" | "untyped")
                    ),
                    "bad TYPE line: {line}"
                );
            }
            continue;
        }
        let (key, value) = line.rsplit_once(' ').expect("a value");
        let name = key.split('{').next().expect("a name");
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line}"
        );
        if let Some(labels) = key.strip_prefix(name).filter(|rest| !rest.is_empty()) {
            assert!(
                labels.starts_with('{') && labels.ends_with('}') && labels.contains("=\""),
                "bad labels in {line}"
            );
        }
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            number => number
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        assert!(
            series.insert(key.to_owned(), value).is_none(),
            "duplicate {key}"
        );
    }
    series
}

async fn scrape(addr: SocketAddr) -> Series {
    let (status, body) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    parse_prometheus(&body)
}

/// A sample's value, 0 when the series is absent (counters not yet touched).
fn value(series: &Series, key: &str) -> f64 {
    series.get(key).copied().unwrap_or(0.0)
}

fn command_delta(before: &Series, after: &Series, family: &str, command: &str) -> f64 {
    let key = format!("{family}{{command=\"{command}\"}}");
    value(after, &key) - value(before, &key)
}

/// Polls `/ready` until it answers `status` (within `limit`); the time it took.
async fn wait_ready_status(addr: SocketAddr, status: u16, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (got, body) = http_get(addr, "/ready").await;
        if got == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "/ready stayed {got} ({body:?}) instead of {status} for {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_proxy_master(proxy: &TestProxy, expected: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while proxy.running().topology().master_addr() != Some(expected) {
        assert!(
            Instant::now() < deadline,
            "the proxy did not follow to {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_and_readiness_follow_commands_and_failovers() {
    let set = Arc::new(
        RedisSet::start_async(RedisOptions::default())
            .await
            .unwrap(),
    );
    let proxy = TestProxy::in_front_of(&set, |config| {
        config.metrics_addr = Some("127.0.0.1:0".to_owned());
    })
    .await;
    let http = proxy
        .running()
        .metrics_addr()
        .expect("metrics endpoint bound");
    let master = set.master_addr().unwrap();

    assert_eq!(http_get(http, "/health").await.0, 200);
    assert_eq!(http_get(http, "/nope").await.0, 404);
    wait_ready_status(http, 200, Duration::from_secs(5)).await;

    // Commands through the proxy, counted exactly.
    let before = scrape(http).await;
    let mut client = RawClient::connect(proxy.addr).await;
    for key in ["m:a", "m:b", "m:c"] {
        client.command(&["SET", key, "v"]).await;
        client.expect("+OK\r\n").await;
    }
    client.command(&["GET", "m:a"]).await;
    client.expect("$1\r\nv\r\n").await;
    for _ in 0..2 {
        client.command(&["get", "m:missing"]).await;
        client.expect("$-1\r\n").await;
    }
    client.command(&["MGET", "m:a", "m:missing", "m:b"]).await;
    client.expect("*3\r\n$1\r\nv\r\n$-1\r\n$1\r\nv\r\n").await;
    client.command(&["HGET", "m:hash", "field"]).await;
    client.expect("$-1\r\n").await;
    client.command(&["INCR", "m:a"]).await;
    let incr_error = client.read_value().await;
    assert!(incr_error.starts_with(b"-ERR"), "INCR of a string fails");
    client.command(&["OBJECT", "ENCODING", "m:a"]).await;
    client.read_value().await;
    let after = scrape(http).await;

    let commands = "cacheproxy_commands_total";
    assert_eq!(command_delta(&before, &after, commands, "set"), 3.0);
    assert_eq!(command_delta(&before, &after, commands, "get"), 3.0);
    assert_eq!(command_delta(&before, &after, commands, "mget"), 1.0);
    assert_eq!(command_delta(&before, &after, commands, "hget"), 1.0);
    assert_eq!(command_delta(&before, &after, commands, "incr"), 1.0);
    assert_eq!(command_delta(&before, &after, commands, "other"), 1.0);
    let latency_count = "cacheproxy_command_duration_seconds_count";
    assert_eq!(command_delta(&before, &after, latency_count, "set"), 3.0);
    assert_eq!(
        value(
            &after,
            "cacheproxy_command_duration_seconds_bucket{command=\"set\",le=\"+Inf\"}"
        ),
        value(&after, "cacheproxy_commands_total{command=\"set\"}"),
    );
    let hits = "cacheproxy_keyspace_hits_total";
    let misses = "cacheproxy_keyspace_misses_total";
    assert_eq!(command_delta(&before, &after, hits, "get"), 1.0);
    assert_eq!(command_delta(&before, &after, misses, "get"), 2.0);
    assert_eq!(command_delta(&before, &after, hits, "mget"), 2.0);
    assert_eq!(command_delta(&before, &after, misses, "mget"), 1.0);
    assert_eq!(command_delta(&before, &after, misses, "hget"), 1.0);
    let err_replies = "cacheproxy_error_replies_total{prefix=\"ERR\"}";
    assert_eq!(
        value(&after, err_replies) - value(&before, err_replies),
        1.0
    );
    assert!(value(&after, "cacheproxy_clients") >= 1.0);
    assert!(
        value(
            &after,
            "cacheproxy_upstream_connections{kind=\"shared\",state=\"open\"}"
        ) >= 1.0
    );
    assert!(after.contains_key("cacheproxy_upstream_connections{kind=\"pinned\",state=\"idle\"}"));
    assert!(after.contains_key("cacheproxy_errors_total{kind=\"upstream_lost\"}"));
    assert_eq!(
        value(
            &after,
            &format!("cacheproxy_master{{address=\"{master}\"}}")
        ),
        1.0
    );
    assert_eq!(value(&after, "cacheproxy_master_ready"), 1.0);
    assert!(value(&after, "process_resident_memory_bytes") > 0.0);

    // A graceful failover: the counter goes up by exactly one and the address follows.
    let failovers_before = value(&after, "cacheproxy_failovers_total");
    let new_master = {
        let set = Arc::clone(&set);
        tokio::task::spawn_blocking(move || set.failover_and_wait(Duration::from_secs(30)))
            .await
            .unwrap()
            .unwrap()
    };
    assert_ne!(new_master, master);
    wait_proxy_master(&proxy, new_master).await;
    wait_ready_status(http, 200, Duration::from_secs(10)).await;
    let switched = scrape(http).await;
    assert_eq!(
        value(&switched, "cacheproxy_failovers_total"),
        failovers_before + 1.0
    );
    assert_eq!(
        value(
            &switched,
            &format!("cacheproxy_master{{address=\"{new_master}\"}}")
        ),
        1.0
    );
    assert!(!switched.contains_key(&format!("cacheproxy_master{{address=\"{master}\"}}")));

    // Killing the master: /ready is 503 through the failover hold, then 200 again.
    {
        let set = Arc::clone(&set);
        tokio::task::spawn_blocking(move || set.wait_until_stable(Duration::from_secs(40)))
            .await
            .unwrap()
            .unwrap();
    }
    let killed = {
        let set = Arc::clone(&set);
        tokio::task::spawn_blocking(move || set.kill_master())
            .await
            .unwrap()
            .unwrap()
    };
    assert_eq!(killed, new_master);
    let down_after = wait_ready_status(http, 503, Duration::from_secs(5)).await;
    let (_, body) = http_get(http, "/ready").await;
    let back_after = wait_ready_status(http, 200, Duration::from_secs(30)).await;
    let final_master = proxy.running().topology().master_addr().expect("a master");
    assert_ne!(final_master, killed);
    let last = scrape(http).await;
    assert_eq!(
        value(&last, "cacheproxy_failovers_total"),
        failovers_before + 2.0
    );
    println!(
        "/ready went 503 {down_after:?} after the kill ({}), back to 200 {back_after:?} later",
        body.trim()
    );
    proxy.stop().await;
}
