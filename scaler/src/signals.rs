//! From scraped `/metrics` to an [`Observation`]: pool utilisation per instance, quantiles
//! of histogram deltas over the last interval (counter resets handled), clients waiting,
//! backend saturation and the connections one instance may open.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use prometheus_parse::{Sample, Scrape, Value};

use crate::config::{Config, SignalSource};
use crate::decide::{InstanceSample, Observation, Reading, SignalReading, Target};

const ACTIVE: &str = "pgbouncer_pools_server_active_connections";
const WAITING: &str = "pgbouncer_pools_client_waiting_connections";
const POOL_SIZE: &str = "pgbouncer_databases_pool_size";
const RESERVE: &str = "pgbouncer_databases_reserve_pool";
const CLIENT_WAIT: &str = "pooler_client_wait_seconds";
const QUERY_DURATION: &str = "pooler_query_duration_seconds";
const CACHE_DURATION: &str = "cacheproxy_command_duration_seconds";
const CACHE_MASTER_READY: &str = "cacheproxy_master_ready";

/// One target's scrape this tick (`None`: unreachable or garbage).
#[derive(Debug)]
pub struct TargetScrape {
    /// The URL.
    pub url: String,
    /// Its metrics.
    pub scrape: Option<Scrape>,
    /// The text it answered (kept for trace recording).
    pub text: Option<String>,
}

fn matches(sample: &Sample, name: &str, labels: &BTreeMap<String, String>) -> bool {
    sample.metric == name
        && labels
            .iter()
            .all(|(key, value)| sample.labels.get(key) == Some(value.as_str()))
}

fn scalar(value: &Value) -> Option<f64> {
    match value {
        Value::Counter(value) | Value::Gauge(value) | Value::Untyped(value) => Some(*value),
        _ => None,
    }
}

/// The sum of a gauge's series matching `labels`; `None` when there is none.
pub fn sum_gauge(scrape: &Scrape, name: &str, labels: &BTreeMap<String, String>) -> Option<f64> {
    let values: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|sample| matches(sample, name, labels))
        .filter_map(|sample| scalar(&sample.value))
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// The console's virtual database: never application traffic.
const ADMIN_DATABASE: &str = "pgbouncer";

/// Sum of `name` over the application databases (`label` names the database; only
/// `database` when one is given).
fn sum_databases(
    scrape: &Scrape,
    name: &str,
    label: &str,
    database: &Option<String>,
) -> Option<f64> {
    let values: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|sample| sample.metric == name)
        .filter(|sample| {
            let db = sample.labels.get(label).unwrap_or_default();
            db != ADMIN_DATABASE && database.as_deref().is_none_or(|wanted| wanted == db)
        })
        .filter_map(|sample| scalar(&sample.value))
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// `pool_size + reserve_pool` over the application databases (one database when named).
pub fn pool_capacity(scrape: &Scrape, database: &Option<String>) -> Option<f64> {
    let size = sum_databases(scrape, POOL_SIZE, "name", database)?;
    Some(size + sum_databases(scrape, RESERVE, "name", database).unwrap_or(0.0))
}

/// `sv_active / (pool_size + reserve_pool)`.
pub fn pool_utilisation(scrape: &Scrape, database: &Option<String>) -> Option<f64> {
    let active = sum_databases(scrape, ACTIVE, "database", database)?;
    let capacity = pool_capacity(scrape, database)?;
    (capacity > 0.0).then(|| active / capacity)
}

/// Cumulative buckets `(le, count)` of a histogram, summed over its series.
pub fn buckets(
    scrape: &Scrape,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> Option<Vec<(f64, f64)>> {
    let mut summed: Vec<(f64, f64)> = Vec::new();
    let mut found = false;
    for sample in scrape
        .samples
        .iter()
        .filter(|sample| matches(sample, name, labels))
    {
        let Value::Histogram(counts) = &sample.value else {
            continue;
        };
        found = true;
        for count in counts {
            match summed.iter_mut().find(|(le, _)| *le == count.less_than) {
                Some(entry) => entry.1 += count.count,
                None => summed.push((count.less_than, count.count)),
            }
        }
    }
    summed.sort_by(|a, b| a.0.total_cmp(&b.0));
    found.then_some(summed)
}

/// `current − previous` bucket by bucket; after a counter reset (any bucket went down) the
/// current counts are the delta.
pub fn delta(current: &[(f64, f64)], previous: Option<&[(f64, f64)]>) -> Vec<(f64, f64)> {
    let Some(previous) = previous else {
        return current.to_vec();
    };
    let before = |le: f64| {
        previous
            .iter()
            .find(|(bound, _)| *bound == le)
            .map_or(0.0, |(_, count)| *count)
    };
    if current.iter().any(|(le, count)| *count < before(*le)) {
        return current.to_vec();
    }
    current
        .iter()
        .map(|(le, count)| (*le, count - before(*le)))
        .collect()
}

/// Prometheus' `histogram_quantile` over cumulative buckets; `None` without observations.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let index = buckets.iter().position(|(_, count)| *count >= rank)?;
    let (upper, count) = buckets[index];
    if upper.is_infinite() {
        // In the +Inf bucket: the highest finite bound.
        return Some(if index > 0 { buckets[index - 1].0 } else { 0.0 });
    }
    let (lower, below) = if index > 0 {
        buckets[index - 1]
    } else {
        (0.0, 0.0)
    };
    if count - below <= 0.0 {
        return Some(upper);
    }
    Some(lower + (upper - lower) * (rank - below) / (count - below))
}

/// Turns scrapes into observations; remembers histogram counts and first sightings.
#[derive(Debug, Default)]
pub struct Collector {
    previous: HashMap<(String, String), Vec<(f64, f64)>>,
    counters: HashMap<(String, String), (f64, Instant)>,
    first_seen: HashMap<String, Instant>,
}

impl Collector {
    /// The interval's quantile `q` of histogram `name` summed over every target.
    fn service_quantile(
        &mut self,
        scrapes: &[TargetScrape],
        key: &str,
        name: &str,
        labels: &BTreeMap<String, String>,
        q: f64,
    ) -> Option<f64> {
        let mut total: Vec<(f64, f64)> = Vec::new();
        let mut any = false;
        for target in scrapes {
            let Some(current) = target
                .scrape
                .as_ref()
                .and_then(|scrape| buckets(scrape, name, labels))
            else {
                continue;
            };
            let slot = (target.url.clone(), key.to_owned());
            let interval = delta(&current, self.previous.get(&slot).map(Vec::as_slice));
            let had_previous = self.previous.insert(slot, current).is_some();
            if !had_previous {
                // The first scrape of a target is its whole history, not this interval.
                continue;
            }
            any = true;
            for (le, count) in interval {
                match total.iter_mut().find(|(bound, _)| *bound == le) {
                    Some(entry) => entry.1 += count,
                    None => total.push((le, count)),
                }
            }
        }
        total.sort_by(|a, b| a.0.total_cmp(&b.0));
        if any {
            quantile(q, &total).or(Some(0.0))
        } else {
            None
        }
    }

    /// The observation of one tick. `current` and `ready` come from the actuator.
    pub fn observe(
        &mut self,
        config: &Config,
        scrapes: &[TargetScrape],
        current: u32,
        now: Instant,
    ) -> Observation {
        let warmup = config.targets.warmup;
        let seen: Vec<String> = scrapes.iter().map(|target| target.url.clone()).collect();
        self.first_seen.retain(|url, _| seen.contains(url));
        self.previous.retain(|(url, _), _| seen.contains(url));
        self.counters.retain(|(url, _), _| seen.contains(url));
        for url in &seen {
            self.first_seen.entry(url.clone()).or_insert(now);
        }
        let is_warm = |url: &str, first_seen: &HashMap<String, Instant>| {
            first_seen
                .get(url)
                .is_some_and(|at| now.saturating_duration_since(*at) >= warmup)
        };
        let warm: Vec<bool> = scrapes
            .iter()
            .map(|target| is_warm(&target.url, &self.first_seen))
            .collect();
        let per_instance = |scrapes: &[TargetScrape], value: &dyn Fn(&Scrape) -> Option<f64>| {
            scrapes
                .iter()
                .zip(&warm)
                .map(|(target, is_warm)| InstanceSample {
                    value: target.scrape.as_ref().and_then(value),
                    is_ready: *is_warm,
                })
                .collect::<Vec<_>>()
        };
        let mut signals = Vec::new();
        for (name, signal) in &config.signals {
            let reading = match &signal.source {
                SignalSource::PoolUtilisation { database } => Reading::PerInstance {
                    samples: per_instance(scrapes, &|scrape| pool_utilisation(scrape, database)),
                    target: signal.target,
                },
                SignalSource::Gauge { metric, labels } => Reading::PerInstance {
                    samples: per_instance(scrapes, &|scrape| sum_gauge(scrape, metric, labels)),
                    target: signal.target,
                },
                SignalSource::CounterRate { metric, labels } => {
                    let mut samples = per_instance(scrapes, &|_| None);
                    for (sample, target) in samples.iter_mut().zip(scrapes) {
                        let total = target
                            .scrape
                            .as_ref()
                            .and_then(|scrape| sum_gauge(scrape, metric, labels));
                        sample.value = total.and_then(|total| {
                            let key = (target.url.clone(), name.clone());
                            let (before, at) = self.counters.insert(key, (total, now))?;
                            let seconds = now.saturating_duration_since(at).as_secs_f64();
                            let increase = if total < before {
                                total
                            } else {
                                total - before
                            };
                            (seconds > 0.0).then(|| increase / seconds)
                        });
                    }
                    Reading::PerInstance {
                        samples,
                        target: signal.target,
                    }
                }
                SignalSource::ClientWaitP99 => Reading::External {
                    value: self.service_quantile(
                        scrapes,
                        name,
                        CLIENT_WAIT,
                        &BTreeMap::new(),
                        0.99,
                    ),
                    target: Target::Value(signal.target),
                },
                SignalSource::HistogramQuantile {
                    metric,
                    quantile,
                    labels,
                } => Reading::External {
                    value: self.service_quantile(scrapes, name, metric, labels, *quantile),
                    target: Target::Value(signal.target),
                },
            };
            signals.push(SignalReading {
                name: name.clone(),
                reading,
            });
        }
        let reachable: Vec<&Scrape> = scrapes
            .iter()
            .filter_map(|target| target.scrape.as_ref())
            .collect();
        let clients_waiting = reachable
            .iter()
            .filter_map(|scrape| sum_gauge(scrape, WAITING, &BTreeMap::new()))
            .reduce(|a, b| a + b);
        let connections_per_replica = reachable
            .iter()
            .filter_map(|scrape| pool_capacity(scrape, &None))
            .reduce(f64::max)
            .map(|capacity| capacity.ceil() as u32);
        let ready = scrapes
            .iter()
            .filter(|target| target.scrape.is_some() && is_warm(&target.url, &self.first_seen))
            .count() as u32;
        let backend_saturated = self.saturation(config, scrapes, &reachable);
        Observation {
            current,
            ready,
            signals,
            clients_waiting,
            backend_saturated,
            connections_per_replica,
        }
    }

    fn saturation(
        &mut self,
        config: &Config,
        scrapes: &[TargetScrape],
        reachable: &[&Scrape],
    ) -> Option<String> {
        let none = BTreeMap::new();
        let mut reason = None;
        if let Some(limit) = config.guards.query_p99_limit {
            // Not measured yet (the first scrape is only a baseline): the guard cannot
            // clear a scale-out it has not judged.
            let p99 = self.service_quantile(scrapes, "__query_p99", QUERY_DURATION, &none, 0.99);
            reason = match p99 {
                Some(p99) if p99 > limit.as_secs_f64() => Some(format!(
                    "query p99 {} above {}",
                    seconds(p99),
                    seconds(limit.as_secs_f64())
                )),
                Some(_) => None,
                None if reachable.is_empty() => None,
                None => Some("query p99 not measured yet (first interval)".to_owned()),
            };
        }
        // During a Sentinel failover Redis latency says nothing about load: suspended.
        let is_failing_over = reachable
            .iter()
            .any(|scrape| sum_gauge(scrape, CACHE_MASTER_READY, &none) == Some(0.0));
        if let Some(limit) = config.guards.cache_p99_limit
            && let Some(p99) =
                self.service_quantile(scrapes, "__cache_p99", CACHE_DURATION, &none, 0.99)
            && p99 > limit.as_secs_f64()
            && !is_failing_over
            && reason.is_none()
        {
            reason = Some(format!(
                "cache command p99 {} above {}",
                seconds(p99),
                seconds(limit.as_secs_f64())
            ));
        }
        reason
    }
}

fn seconds(value: f64) -> String {
    format!("{:?}", Duration::from_secs_f64(value.max(0.0)))
}

#[cfg(test)]
#[path = "signals_tests.rs"]
mod tests;
