//! Prometheus metrics: per-command counters, latency histograms, keyspace hits/misses and
//! errors by kind (fixed arrays of atomics indexed by a small [`CommandId`], so the hot
//! path never allocates), and the `/metrics` text built per scrape from them, [`Stats`]
//! and the topology.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, TextEncoder};

use crate::error::UpstreamFailure;
use crate::shared::Shared;
use crate::topology::MasterState;

/// Commands with their own series (lower case); everything else is counted as `other`.
#[rustfmt::skip]
pub const COMMAND_NAMES: [&str; 72] = [
    "get", "set", "del", "unlink", "exists", "expire", "pexpire", "ttl", "pttl", "incr",
    "incrby", "decr", "decrby", "mget", "mset", "setex", "setnx", "getset", "getdel", "getex",
    "append", "strlen", "hget", "hset", "hmget", "hmset", "hgetall", "hdel", "hincrby",
    "hexists", "hlen", "lpush", "rpush", "lpop", "rpop", "lrange", "llen", "lindex", "ltrim",
    "sadd", "srem", "smembers", "sismember", "scard", "zadd", "zrem", "zrange", "zrangebyscore",
    "zscore", "zincrby", "zcard", "publish", "subscribe", "psubscribe", "unsubscribe", "ping",
    "eval", "evalsha", "multi", "exec", "discard", "watch", "blpop", "brpop", "auth", "hello",
    "select", "info", "scan", "type", "keys", "client",
];

/// Index of the `other` bucket.
const OTHER: usize = COMMAND_NAMES.len();
/// Series per command: the named ones and `other`.
const COMMAND_SLOTS: usize = COMMAND_NAMES.len() + 1;

/// A command's index in the per-command arrays (computed once per request, no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandId(usize);

impl CommandId {
    /// The id of a command name (any case); `other` when it has no series of its own.
    pub fn of(name: &[u8]) -> CommandId {
        let index = COMMAND_NAMES
            .iter()
            .position(|known| known.as_bytes().eq_ignore_ascii_case(name))
            .unwrap_or(OTHER);
        CommandId(index)
    }

    /// The `other` bucket (requests that are not commands, e.g. protocol errors).
    pub fn other() -> CommandId {
        CommandId(OTHER)
    }

    /// The `command` label value.
    pub fn label(self) -> &'static str {
        COMMAND_NAMES.get(self.0).copied().unwrap_or("other")
    }

    /// How a reply to this command counts for keyspace hits/misses.
    fn keyspace(self) -> Keyspace {
        match self.label() {
            "get" | "getdel" | "getex" | "hget" | "lindex" | "zscore" => Keyspace::Single,
            "mget" | "hmget" => Keyspace::PerElement,
            _ => Keyspace::None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyspace {
    /// Not a keyspace read.
    None,
    /// One value: nil is a miss, anything else a hit.
    Single,
    /// An array of values: each nil element is a miss, each other element a hit.
    PerElement,
}

/// Upper bounds of the latency buckets, in microseconds.
const LATENCY_BOUNDS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 10_000_000,
];

/// A latency histogram of atomics (not cumulative; the last slot is `+Inf`).
#[derive(Debug, Default)]
struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl LatencyHistogram {
    fn observe(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let index = LATENCY_BOUNDS_US
            .iter()
            .position(|bound| us <= *bound)
            .unwrap_or(LATENCY_BOUNDS_US.len());
        if let Some(bucket) = self.buckets.get(index) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn to_proto(&self) -> Histogram {
        let mut running = 0u64;
        let buckets = LATENCY_BOUNDS_US
            .iter()
            .zip(&self.buckets)
            .map(|(bound_us, n)| {
                running += n.load(Ordering::Relaxed);
                let mut bucket = Bucket::default();
                bucket.set_upper_bound(*bound_us as f64 / 1e6);
                bucket.set_cumulative_count(running);
                bucket
            })
            .collect();
        let mut histogram = Histogram::default();
        histogram.set_bucket(buckets);
        histogram.set_sample_sum(self.sum_us.load(Ordering::Relaxed) as f64 / 1e6);
        histogram.set_sample_count(self.count.load(Ordering::Relaxed));
        histogram
    }
}

/// The counters of one command.
#[derive(Debug, Default)]
struct CommandCounters {
    calls: AtomicU64,
    latency: LatencyHistogram,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Proxy-side failures, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A client sent bytes that are not RESP (the client is closed).
    Protocol,
    /// A command could not be written to the master.
    UpstreamNotSent,
    /// An upstream connection was lost before the reply.
    UpstreamLost,
    /// No reply within `upstream_timeout`.
    UpstreamTimeout,
    /// No master reachable within `failover_timeout`.
    UpstreamUnreachable,
    /// A pinned connection (MULTI, blocking command, subscription) was lost.
    PinnedLost,
}

impl ErrorKind {
    const ALL: [ErrorKind; 6] = [
        ErrorKind::Protocol,
        ErrorKind::UpstreamNotSent,
        ErrorKind::UpstreamLost,
        ErrorKind::UpstreamTimeout,
        ErrorKind::UpstreamUnreachable,
        ErrorKind::PinnedLost,
    ];

    /// The `kind` label value.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::Protocol => "protocol",
            ErrorKind::UpstreamNotSent => "upstream_not_sent",
            ErrorKind::UpstreamLost => "upstream_lost",
            ErrorKind::UpstreamTimeout => "upstream_timeout",
            ErrorKind::UpstreamUnreachable => "upstream_unreachable",
            ErrorKind::PinnedLost => "pinned_lost",
        }
    }

    /// The kind of an upstream failure that reached the client.
    pub fn of_failure(failure: &UpstreamFailure) -> ErrorKind {
        match failure {
            UpstreamFailure::NotSent => ErrorKind::UpstreamNotSent,
            UpstreamFailure::Lost => ErrorKind::UpstreamLost,
            UpstreamFailure::Timeout(_) => ErrorKind::UpstreamTimeout,
            UpstreamFailure::Unreachable(_) => ErrorKind::UpstreamUnreachable,
        }
    }
}

/// Error-reply prefixes with their own series; others count as `other`.
const ERROR_PREFIXES: [&str; 11] = [
    "ERR",
    "WRONGTYPE",
    "NOAUTH",
    "WRONGPASS",
    "NOPERM",
    "READONLY",
    "LOADING",
    "MASTERDOWN",
    "NOSCRIPT",
    "EXECABORT",
    "OOM",
];

/// The hot-path counters behind `/metrics`.
#[derive(Debug)]
pub struct Metrics {
    commands: [CommandCounters; COMMAND_SLOTS],
    errors: [AtomicU64; ErrorKind::ALL.len()],
    error_replies: [AtomicU64; ERROR_PREFIXES.len() + 1],
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            commands: std::array::from_fn(|_| CommandCounters::default()),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
            error_replies: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Metrics {
    /// Counts a proxy-side failure.
    pub fn error(&self, kind: ErrorKind) {
        let index = ErrorKind::ALL
            .iter()
            .position(|known| *known == kind)
            .unwrap_or(0);
        if let Some(counter) = self.errors.get(index) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts the first bytes of a command's reply: error replies by prefix, and keyspace
    /// hits/misses of read commands. For MGET/HMGET only the elements present in `start`
    /// (the first chunk of the reply, up to 64 KiB) are counted.
    pub fn reply_started(&self, command: CommandId, start: &[u8]) {
        if start.first() == Some(&b'-') {
            let word = start
                .get(1..)
                .unwrap_or_default()
                .split(|byte| *byte == b' ' || *byte == b'\r')
                .next()
                .unwrap_or_default();
            let index = ERROR_PREFIXES
                .iter()
                .position(|prefix| prefix.as_bytes() == word)
                .unwrap_or(ERROR_PREFIXES.len());
            if let Some(counter) = self.error_replies.get(index) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        let Some(counters) = self.commands.get(command.0) else {
            return;
        };
        let (hits, misses) = match command.keyspace() {
            Keyspace::None => return,
            Keyspace::Single => match value_is_nil(start) {
                Some(true) => (0, 1),
                Some(false) => (1, 0),
                None => return,
            },
            Keyspace::PerElement => count_array_elements(start),
        };
        counters.hits.fetch_add(hits, Ordering::Relaxed);
        counters.misses.fetch_add(misses, Ordering::Relaxed);
    }

    /// Counts a completed command and its latency (arrival to the last reply byte).
    pub fn reply_completed(&self, command: CommandId, elapsed: Duration) {
        if let Some(counters) = self.commands.get(command.0) {
            counters.calls.fetch_add(1, Ordering::Relaxed);
            counters.latency.observe(elapsed);
        }
    }
}

/// `Some(true)` for a RESP2/RESP3 nil, `Some(false)` for any other value, `None` when
/// `bytes` is empty.
fn value_is_nil(bytes: &[u8]) -> Option<bool> {
    let first = *bytes.first()?;
    Some(
        matches!(first, b'_')
            || (matches!(first, b'$' | b'*') && bytes.get(1..3) == Some(b"-1".as_slice())),
    )
}

/// (non-nil, nil) elements of an array reply, counting only whole elements in `bytes`.
fn count_array_elements(bytes: &[u8]) -> (u64, u64) {
    let Some((header, mut rest)) = split_line(bytes) else {
        return (0, 0);
    };
    let Some(count) = header
        .strip_prefix(b"*")
        .and_then(|n| std::str::from_utf8(n).ok())
        .and_then(|n| n.parse::<u64>().ok())
    else {
        return (0, 0);
    };
    let (mut hits, mut misses) = (0u64, 0u64);
    for _ in 0..count {
        let Some((line, after)) = split_line(rest) else {
            break;
        };
        if value_is_nil(line) == Some(true) {
            misses += 1;
            rest = after;
            continue;
        }
        // A bulk string: skip its payload and CRLF; other scalars are one line.
        if let Some(len) = line
            .strip_prefix(b"$")
            .and_then(|n| std::str::from_utf8(n).ok())
            .and_then(|n| n.parse::<usize>().ok())
        {
            let Some(after_payload) = len.checked_add(2).and_then(|skip| after.get(skip..)) else {
                hits += 1;
                break;
            };
            rest = after_payload;
        } else {
            rest = after;
        }
        hits += 1;
    }
    (hits, misses)
}

/// The first CRLF-terminated line (without CRLF) and what follows.
fn split_line(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes.windows(2).position(|pair| pair == b"\r\n")?;
    Some((bytes.get(..end)?, bytes.get(end + 2..)?))
}

/// Metric families under construction.
#[derive(Default)]
struct Families {
    by_name: BTreeMap<String, MetricFamily>,
}

fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    pairs
        .iter()
        .map(|(name, value)| {
            let mut pair = LabelPair::default();
            pair.set_name((*name).to_owned());
            pair.set_value((*value).to_owned());
            pair
        })
        .collect()
}

impl Families {
    fn family(&mut self, name: &str, help: &str, kind: MetricType) -> &mut MetricFamily {
        self.by_name.entry(name.to_owned()).or_insert_with(|| {
            let mut family = MetricFamily::default();
            family.set_name(name.to_owned());
            family.set_help(help.to_owned());
            family.set_field_type(kind);
            family
        })
    }

    fn add(&mut self, name: &str, help: &str, kind: MetricType, pairs: &[(&str, &str)], v: f64) {
        let mut metric = Metric::from_label(labels(pairs));
        if kind == MetricType::COUNTER {
            let mut counter = Counter::default();
            counter.set_value(v);
            metric.set_counter(counter);
        } else {
            let mut gauge = Gauge::default();
            gauge.set_value(v);
            metric.set_gauge(gauge);
        }
        self.family(name, help, kind).mut_metric().push(metric);
    }

    fn histogram(&mut self, name: &str, help: &str, pairs: &[(&str, &str)], h: Histogram) {
        let mut metric = Metric::from_label(labels(pairs));
        metric.set_histogram(h);
        self.family(name, help, MetricType::HISTOGRAM)
            .mut_metric()
            .push(metric);
    }
}

fn command_families(families: &mut Families, metrics: &Metrics) {
    for (index, counters) in metrics.commands.iter().enumerate() {
        let calls = counters.calls.load(Ordering::Relaxed);
        if calls == 0 {
            continue;
        }
        let pairs = [("command", CommandId(index).label())];
        families.add(
            "cacheproxy_commands_total",
            "Commands answered, by command (lower case; `other` for the rest)",
            MetricType::COUNTER,
            &pairs,
            calls as f64,
        );
        families.histogram(
            "cacheproxy_command_duration_seconds",
            "Time from a command's arrival to the end of its reply",
            &pairs,
            counters.latency.to_proto(),
        );
        if CommandId(index).keyspace() != Keyspace::None {
            families.add(
                "cacheproxy_keyspace_hits_total",
                "Read commands (per key for MGET/HMGET) answered with a value",
                MetricType::COUNTER,
                &pairs,
                counters.hits.load(Ordering::Relaxed) as f64,
            );
            families.add(
                "cacheproxy_keyspace_misses_total",
                "Read commands (per key for MGET/HMGET) answered with nil",
                MetricType::COUNTER,
                &pairs,
                counters.misses.load(Ordering::Relaxed) as f64,
            );
        }
    }
}

fn error_families(families: &mut Families, metrics: &Metrics) {
    for (kind, counter) in ErrorKind::ALL.iter().zip(&metrics.errors) {
        families.add(
            "cacheproxy_errors_total",
            "Proxy-side failures by kind",
            MetricType::COUNTER,
            &[("kind", kind.label())],
            counter.load(Ordering::Relaxed) as f64,
        );
    }
    for (index, counter) in metrics.error_replies.iter().enumerate() {
        let prefix = ERROR_PREFIXES.get(index).copied().unwrap_or("other");
        families.add(
            "cacheproxy_error_replies_total",
            "Error replies sent to clients, by error prefix",
            MetricType::COUNTER,
            &[("prefix", prefix)],
            counter.load(Ordering::Relaxed) as f64,
        );
    }
}

fn proxy_families(families: &mut Families, shared: &Shared) {
    let stats = shared.stats.snapshot();
    let gauge = MetricType::GAUGE;
    let counter = MetricType::COUNTER;
    families.add(
        "cacheproxy_clients",
        "Client connections open now",
        gauge,
        &[],
        stats.clients as f64,
    );
    families.add(
        "cacheproxy_clients_accepted_total",
        "Client connections accepted since start",
        counter,
        &[],
        stats.clients_total as f64,
    );
    let connections =
        "Upstream connections by kind (shared: multiplexed; pinned: private) and state";
    let pinned_idle = (stats.pinned_connections - stats.pinned_in_use).max(0);
    for (kind, state, value) in [
        ("shared", "open", stats.upstream_connections),
        ("pinned", "idle", pinned_idle),
        ("pinned", "in_use", stats.pinned_in_use),
    ] {
        families.add(
            "cacheproxy_upstream_connections",
            connections,
            gauge,
            &[("kind", kind), ("state", state)],
            value as f64,
        );
    }
    families.add(
        "cacheproxy_failovers_total",
        "Master changes seen since start",
        counter,
        &[],
        stats.failovers as f64,
    );
    families.add(
        "cacheproxy_retries_total",
        "Read-only commands resent after their upstream connection failed",
        counter,
        &[],
        stats.retries as f64,
    );
    let (master, is_ready) = match &shared.topology.borrow().master {
        MasterState::Ready(addr) => (Some(*addr), true),
        MasterState::Unavailable { last, .. } => (*last, false),
    };
    families.add(
        "cacheproxy_master_ready",
        "1 when a confirmed master is known, 0 during a failover hold or with no master",
        gauge,
        &[],
        if is_ready { 1.0 } else { 0.0 },
    );
    if let Some(addr) = master {
        families.add(
            "cacheproxy_master",
            "The current (or, while not ready, the last) master: 1 when confirmed, 0 otherwise",
            gauge,
            &[("address", &addr.to_string())],
            if is_ready { 1.0 } else { 0.0 },
        );
    }
    families.add(
        "cacheproxy_replicas",
        "Healthy replicas of the master",
        gauge,
        &[],
        shared.topology.borrow().replicas.len() as f64,
    );
}

/// Renders every metric in the Prometheus text format (version 0.0.4).
pub fn render(shared: &Shared) -> String {
    let mut families = Families::default();
    command_families(&mut families, &shared.metrics);
    error_families(&mut families, &shared.metrics);
    proxy_families(&mut families, shared);
    let mut all: Vec<MetricFamily> = families.by_name.into_values().collect();
    all.extend(process_families());
    let mut out = Vec::new();
    if let Err(error) = TextEncoder::new().encode(&all, &mut out) {
        tracing::warn!("encoding metrics failed: {error}");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// `process_*` (CPU, memory, file descriptors, start time) where the platform has them.
fn process_families() -> Vec<MetricFamily> {
    #[cfg(target_os = "linux")]
    {
        use prometheus::core::Collector;
        prometheus::process_collector::ProcessCollector::for_self().collect()
    }
    #[cfg(not(target_os = "linux"))]
    {
        Vec::new()
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
