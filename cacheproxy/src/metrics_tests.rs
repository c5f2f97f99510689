//! Unit tests of the command ids, reply classification, the rendered text, and that the
//! Grafana dashboard (deploy/grafana/cacheproxy-dashboard.json) queries only exported series.

use super::*;

#[test]
fn command_ids_ignore_case_and_fall_back_to_other() {
    assert_eq!(CommandId::of(b"GET").label(), "get");
    assert_eq!(CommandId::of(b"hGetAll").label(), "hgetall");
    assert_eq!(CommandId::of(b"OBJECT").label(), "other");
    assert_eq!(CommandId::of(b"").label(), "other");
    assert_eq!(CommandId::other().label(), "other");
}

#[test]
fn single_reads_count_nil_as_a_miss() {
    let metrics = Metrics::default();
    let get = CommandId::of(b"get");
    metrics.reply_started(get, b"$-1\r\n");
    metrics.reply_started(get, b"_\r\n");
    metrics.reply_started(get, b"$3\r\nabc\r\n");
    metrics.reply_started(CommandId::of(b"set"), b"$-1\r\n");
    let counters = &metrics.commands[get.0];
    assert_eq!(counters.hits.load(Ordering::Relaxed), 1);
    assert_eq!(counters.misses.load(Ordering::Relaxed), 2);
}

#[test]
fn multi_reads_count_each_element() {
    let metrics = Metrics::default();
    let mget = CommandId::of(b"MGET");
    metrics.reply_started(mget, b"*4\r\n$1\r\na\r\n$-1\r\n_\r\n$2\r\n\r\n\r\n");
    let counters = &metrics.commands[mget.0];
    assert_eq!(counters.hits.load(Ordering::Relaxed), 2);
    assert_eq!(counters.misses.load(Ordering::Relaxed), 2);
    // A truncated chunk counts what it holds and never panics.
    assert_eq!(count_array_elements(b"*3\r\n$-1\r\n$10\r\nab"), (1, 1));
    assert_eq!(count_array_elements(b"*99999999999\r\n"), (0, 0));
    assert_eq!(count_array_elements(b"*x\r\n"), (0, 0));
    assert_eq!(count_array_elements(b""), (0, 0));
}

#[test]
fn error_replies_count_by_prefix() {
    let metrics = Metrics::default();
    metrics.reply_started(CommandId::of(b"get"), b"-WRONGTYPE Operation\r\n");
    metrics.reply_started(CommandId::of(b"get"), b"-ERR x\r\n");
    metrics.reply_started(CommandId::of(b"get"), b"-WEIRD\r\n");
    metrics.reply_started(CommandId::of(b"get"), b"-\r\n");
    let read = |index: usize| metrics.error_replies[index].load(Ordering::Relaxed);
    assert_eq!(read(0), 1);
    assert_eq!(read(1), 1);
    assert_eq!(read(ERROR_PREFIXES.len()), 2);
}

#[test]
fn latency_lands_in_the_right_bucket() {
    let histogram = LatencyHistogram::default();
    histogram.observe(Duration::from_micros(40));
    histogram.observe(Duration::from_millis(3));
    histogram.observe(Duration::from_secs(60));
    let proto = histogram.to_proto();
    assert_eq!(proto.get_sample_count(), 3);
    let cumulative: Vec<u64> = proto
        .get_bucket()
        .iter()
        .map(|bucket| bucket.cumulative_count())
        .collect();
    assert_eq!(cumulative.first(), Some(&1));
    assert_eq!(cumulative.get(6), Some(&2));
    assert_eq!(cumulative.last(), Some(&2));
}

/// A `Shared` with no tasks behind it: a confirmed master, one replica, and traffic on
/// every kind of series (so each family the renderer can emit appears).
fn shared_with_traffic() -> Shared {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, AtomicUsize};

    use arc_swap::ArcSwap;
    use tokio::sync::watch;

    use crate::commands::CommandTable;
    use crate::config::Config;
    use crate::sentinel::ResolveHandle;
    use crate::stats::Stats;
    use crate::topology::{MasterState, Topology};
    use crate::upstream::Routes;

    let master = "10.0.0.1:6379".parse().unwrap();
    let replica = "10.0.0.2:6379".parse().unwrap();
    let topology = Topology {
        master: MasterState::Ready(master),
        replicas: Arc::from(vec![replica]),
        epoch: 1,
        generation: 1,
    };
    // The receivers keep the last value after their senders are dropped.
    let (_, topology) = watch::channel(topology);
    let (_, routes) = watch::channel(Arc::new(Routes::initial()));
    let (resolver, _) = ResolveHandle::channel();
    let metrics = Metrics::default();
    let get = CommandId::of(b"get");
    metrics.reply_started(get, b"$-1\r\n");
    metrics.reply_completed(get, Duration::from_micros(300));
    metrics.reply_completed(CommandId::of(b"set"), Duration::from_micros(200));
    metrics.error(ErrorKind::UpstreamLost);
    Shared {
        config: ArcSwap::from_pointee(Config::default()),
        stats: Stats::default(),
        metrics: Arc::new(metrics),
        commands: ArcSwap::from_pointee(CommandTable::builtin()),
        topology,
        routes,
        resolver,
        server_version: ArcSwap::from_pointee("7.0.0".to_owned()),
        next_client_id: AtomicU64::new(1),
        clients: Arc::default(),
        closing_subscribers: AtomicUsize::new(0),
        subscribed_clients: AtomicUsize::new(0),
    }
}

/// Series names a family exposes: histograms add `_bucket`, `_sum` and `_count`.
fn exported_series(rendered: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in rendered.lines() {
        let mut words = line.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        {
            names.push(name.to_owned());
            if kind == "histogram" || kind == "summary" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.push(format!("{name}{suffix}"));
                }
            }
        }
    }
    names
}

fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(fields) => {
            for (key, field) in fields {
                match (key.as_str(), field) {
                    ("expr" | "definition", serde_json::Value::String(expr)) => {
                        out.push(expr.clone());
                    }
                    _ => collect_exprs(field, out),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect_exprs(item, out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_grafana_dashboard_uses_only_exported_metrics() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/cacheproxy-dashboard.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let exported = exported_series(&render(&shared_with_traffic()));
    assert!(
        exported
            .iter()
            .any(|name| name == "cacheproxy_commands_total"),
        "{exported:?}"
    );
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() > 20, "the dashboard queries were found");
    let mut used = std::collections::BTreeSet::new();
    for expr in &exprs {
        let words = expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
        for word in words {
            let is_metric = word.starts_with("cacheproxy_")
                || (cfg!(target_os = "linux") && word.starts_with("process_"));
            if is_metric {
                assert!(
                    exported.iter().any(|name| name == word),
                    "the dashboard uses {word}, which /metrics does not export"
                );
                used.insert(word.to_owned());
            }
        }
    }
    for required in [
        "cacheproxy_commands_total",
        "cacheproxy_command_duration_seconds_bucket",
        "cacheproxy_keyspace_hits_total",
        "cacheproxy_keyspace_misses_total",
        "cacheproxy_errors_total",
        "cacheproxy_upstream_connections",
        "cacheproxy_clients",
        "cacheproxy_master",
        "cacheproxy_failovers_total",
        "cacheproxy_master_ready",
    ] {
        assert!(
            used.contains(required),
            "the dashboard has no {required} panel"
        );
    }
}
