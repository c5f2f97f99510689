//! The Prometheus exposition behind `/metrics`. The `pgbouncer_*` families are exactly
//! what prometheus-community/pgbouncer_exporter derives from the console (same names,
//! labels and units, read from the same SHOW result sets, so they always agree with
//! SHOW POOLS), so dashboards built for the exporter work unchanged. The `pooler_*`
//! families are pooler's own: latency histograms, reserve connections in use and
//! server errors by kind. Process metrics come from the `prometheus` crate.
//!
//! Built per scrape from live state; no metric is updated on the hot path except the
//! atomics of [`crate::stats`].

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus::core::Collector;
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, TextEncoder};

mod exporter;

use crate::admin::{Access, Context};
use crate::cluster::Pooler;
use crate::registry::ClientRegistration;
use crate::stats::HistogramSnapshot;

/// Metric families under construction, by name.
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
            let mut c = Counter::default();
            c.set_value(v);
            metric.set_counter(c);
        } else {
            let mut g = Gauge::default();
            g.set_value(v);
            metric.set_gauge(g);
        }
        self.family(name, help, kind).mut_metric().push(metric);
    }

    fn histogram(&mut self, name: &str, help: &str, pairs: &[(&str, &str)], h: &HistogramSnapshot) {
        let mut histogram = Histogram::default();
        histogram.set_sample_count(h.count);
        histogram.set_sample_sum(h.sum_us as f64 / 1e6);
        histogram.set_bucket(
            h.cumulative
                .iter()
                .map(|(bound_us, n)| {
                    let mut bucket = Bucket::default();
                    bucket.set_upper_bound(*bound_us as f64 / 1e6);
                    bucket.set_cumulative_count(*n);
                    bucket
                })
                .collect(),
        );
        let mut metric = Metric::from_label(labels(pairs));
        metric.set_histogram(histogram);
        self.family(name, help, MetricType::HISTOGRAM)
            .mut_metric()
            .push(metric);
    }
}

fn pooler_families(families: &mut Families, pooler: &Pooler) {
    let check_delay = pooler.config().general.server_check_delay;
    for entry in pooler.pools() {
        // Host pools of a read/write-split entry carry their `host` as a third label.
        let pairs = [
            ("database", entry.database.as_str()),
            ("user", entry.user.as_str()),
            ("host", entry.host.as_deref().unwrap_or_default()),
        ];
        let pairs = if entry.host.is_some() {
            &pairs[..]
        } else {
            &pairs[..2]
        };
        let stats = entry.pool.stats();
        families.histogram(
            "pooler_client_wait_seconds",
            "Time clients waited for a server connection",
            pairs,
            &stats.wait_histogram.snapshot(),
        );
        families.histogram(
            "pooler_transaction_duration_seconds",
            "Time a server connection stayed linked to a client for one transaction",
            pairs,
            &stats.xact_histogram.snapshot(),
        );
        families.histogram(
            "pooler_query_duration_seconds",
            "Time from a request sent to the server to its ReadyForQuery",
            pairs,
            &stats.query_histogram.snapshot(),
        );
        let counts = entry.pool.counts(check_delay);
        let settings = entry.pool.settings();
        if settings.pool_size > 0 {
            // One ready-made ratio per pool: KEDA's metrics-api and HPA read a single series.
            families.add(
                "pooler_pool_utilisation",
                "Server connections lent to clients / (pool_size + reserve_pool_size)",
                MetricType::GAUGE,
                pairs,
                counts.active as f64 / (settings.pool_size + settings.reserve_pool_size) as f64,
            );
        }
        families.add(
            "pooler_reserve_connections_in_use",
            "Server connections beyond pool_size, taken from the reserve pool",
            MetricType::GAUGE,
            pairs,
            counts.reserve_in_use as f64,
        );
        for (kind, n) in entry.connect_errors.snapshot() {
            families.add(
                "pooler_server_connect_errors_total",
                "Failed server connection attempts by kind",
                MetricType::COUNTER,
                &[pairs, &[("kind", kind.as_str())]].concat(),
                n as f64,
            );
        }
        families.add(
            "pooler_server_connections_lost_total",
            "Linked server connections that broke mid-session (server conn crashed?)",
            MetricType::COUNTER,
            pairs,
            stats
                .server_lost_count
                .load(std::sync::atomic::Ordering::Relaxed) as f64,
        );
    }
}

/// Per host of every read/write-split pool: up, primary, banned, lag.
fn host_families(families: &mut Families, pooler: &Pooler) {
    for group in pooler.groups() {
        let entry = &group.hosts[0];
        for host in group.host_states() {
            let pairs = [
                ("database", entry.database.as_str()),
                ("user", entry.user.as_str()),
                ("host", host.label.as_str()),
            ];
            let flag = |b: bool| if b { 1.0 } else { 0.0 };
            let gauges = [
                (
                    "pooler_host_up",
                    "1 when the host's last health check succeeded",
                    flag(host.state != "down"),
                ),
                (
                    "pooler_host_banned",
                    "1 while the host gets no new transactions after a failure",
                    flag(host.state == "banned"),
                ),
                (
                    "pooler_host_primary",
                    "1 when the host reports it is the primary",
                    flag(host.role == crate::router::Role::Primary),
                ),
                (
                    "pooler_replica_lag_bytes",
                    "WAL bytes the replica's replay is behind the primary",
                    host.lag_bytes as f64,
                ),
                (
                    "pooler_replica_lag_seconds",
                    "Replay delay of the replica",
                    host.lag.as_secs_f64(),
                ),
            ];
            for (name, help, v) in gauges {
                families.add(name, help, MetricType::GAUGE, &pairs, v);
            }
        }
    }
}

/// Renders every metric in the Prometheus text format (version 0.0.4).
pub fn render(pooler: &Arc<Pooler>) -> String {
    let registration = ClientRegistration::detached();
    let ctx = Context {
        pooler,
        config: pooler.config(),
        access: Access::Stats,
        query: "",
        client: registration.info(),
    };
    let mut families = Families::default();
    exporter::exporter_families(&mut families, &ctx);
    pooler_families(&mut families, pooler);
    host_families(&mut families, pooler);
    let mut all: Vec<MetricFamily> = families.by_name.into_values().collect();
    all.extend(process_families());
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&all, &mut out) {
        tracing::warn!("encoding metrics failed: {e}");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// `process_*` (CPU, memory, file descriptors, start time) where the platform has them.
fn process_families() -> Vec<MetricFamily> {
    #[cfg(target_os = "linux")]
    {
        prometheus::process_collector::ProcessCollector::for_self().collect()
    }
    #[cfg(not(target_os = "linux"))]
    {
        Vec::new()
    }
}
