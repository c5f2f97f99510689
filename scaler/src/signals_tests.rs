//! Signals from real-shaped `/metrics` text: utilisation, histogram quantiles over deltas,
//! counter resets, missing and garbage targets.

use std::time::{Duration, Instant};

use super::*;
use crate::config::Config;
use crate::decide::Observation;

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).unwrap()
}

fn pooler_metrics(active: u32, waiting: u32, wait_buckets: [u64; 3]) -> String {
    format!(
        "# TYPE pgbouncer_pools_server_active_connections gauge\n\
pgbouncer_pools_server_active_connections{{database=\"app\",user=\"app\"}} {active}\n\
pgbouncer_pools_server_active_connections{{database=\"pgbouncer\",user=\"pgbouncer\"}} 0\n\
# TYPE pgbouncer_pools_client_waiting_connections gauge\n\
pgbouncer_pools_client_waiting_connections{{database=\"app\",user=\"app\"}} {waiting}\n\
# TYPE pgbouncer_databases_pool_size gauge\n\
pgbouncer_databases_pool_size{{name=\"app\",host=\"db\",port=\"5432\",database=\"app\",force_user=\"\",pool_mode=\"transaction\"}} 8\n\
# TYPE pgbouncer_databases_reserve_pool gauge\n\
pgbouncer_databases_reserve_pool{{name=\"app\",host=\"db\",port=\"5432\",database=\"app\",force_user=\"\",pool_mode=\"transaction\"}} 2\n\
pgbouncer_databases_pool_size{{name=\"pgbouncer\",host=\"\",port=\"6432\",database=\"pgbouncer\",force_user=\"pgbouncer\",pool_mode=\"statement\"}} 2\n\
# TYPE pooler_client_wait_seconds histogram\n\
pooler_client_wait_seconds_bucket{{le=\"0.01\"}} {}\n\
pooler_client_wait_seconds_bucket{{le=\"0.1\"}} {}\n\
pooler_client_wait_seconds_bucket{{le=\"+Inf\"}} {}\n\
pooler_client_wait_seconds_sum 1\n\
pooler_client_wait_seconds_count {}\n",
        wait_buckets[0], wait_buckets[1], wait_buckets[2], wait_buckets[2]
    )
}

#[test]
fn utilisation_joins_pools_to_databases() {
    let scrape = parse(&pooler_metrics(7, 0, [0, 0, 0]));
    let utilisation = pool_utilisation(&scrape, &Some("app".to_owned())).unwrap();
    assert!((utilisation - 0.7).abs() < 1e-9);
    // The console's database counts for neither side.
    let utilisation = pool_utilisation(&scrape, &None).unwrap();
    assert!((utilisation - 0.7).abs() < 1e-9);
    assert_eq!(pool_capacity(&scrape, &None), Some(10.0));
}

#[test]
fn quantiles_follow_prometheus() {
    let buckets = [
        (0.1, 50.0),
        (0.5, 90.0),
        (1.0, 100.0),
        (f64::INFINITY, 100.0),
    ];
    assert!((quantile(0.5, &buckets).unwrap() - 0.1).abs() < 1e-9);
    assert!((quantile(0.9, &buckets).unwrap() - 0.5).abs() < 1e-9);
    assert!((quantile(0.75, &buckets).unwrap() - 0.35).abs() < 1e-9);
    let in_inf = [(0.1, 1.0), (f64::INFINITY, 10.0)];
    assert_eq!(quantile(0.99, &in_inf), Some(0.1));
    assert_eq!(quantile(0.99, &[(0.1, 0.0), (f64::INFINITY, 0.0)]), None);
}

#[test]
fn deltas_survive_counter_resets() {
    let before = [(0.1, 10.0), (f64::INFINITY, 20.0)];
    let after = [(0.1, 15.0), (f64::INFINITY, 30.0)];
    assert_eq!(
        delta(&after, Some(&before)),
        vec![(0.1, 5.0), (f64::INFINITY, 10.0)]
    );
    let reset = [(0.1, 1.0), (f64::INFINITY, 2.0)];
    assert_eq!(delta(&reset, Some(&before)), reset.to_vec());
}

#[test]
fn observation_from_two_ticks() {
    let config = Config::from_toml(
        r#"
[targets]
urls = ["a", "b"]
warmup = "0s"
[signals.utilisation]
kind = "pool_utilisation"
target = 0.7
[signals.wait]
kind = "client_wait_p99"
target = 0.05
"#,
        "test",
    )
    .unwrap();
    let mut collector = Collector::default();
    let now = Instant::now();
    let tick = |a: String, b: Option<String>| {
        vec![
            TargetScrape {
                url: "a".to_owned(),
                scrape: Some(parse(&a)),
                text: None,
            },
            TargetScrape {
                url: "b".to_owned(),
                scrape: b.map(|text| parse(&text)),
                text: None,
            },
        ]
    };
    let first = collector.observe(
        &config,
        &tick(
            pooler_metrics(5, 0, [10, 10, 10]),
            Some(pooler_metrics(9, 2, [0, 0, 0])),
        ),
        2,
        now,
    );
    assert_eq!(first.clients_waiting, Some(2.0));
    assert_eq!(first.connections_per_replica, Some(10));
    assert_eq!(first.ready, 2);
    // The first scrape of a histogram is its whole history: no interval quantile yet.
    let wait = first
        .signals
        .iter()
        .find(|signal| signal.name == "wait")
        .unwrap();
    assert_eq!(
        wait.reading,
        Reading::External {
            value: None,
            target: Target::Value(0.05)
        }
    );
    // Second tick: target b is unreachable; target a saw 10 waits, all slower than 0.1 s.
    let second = collector.observe(
        &config,
        &tick(pooler_metrics(8, 0, [10, 10, 20]), None),
        2,
        now + Duration::from_secs(5),
    );
    let utilisation = second
        .signals
        .iter()
        .find(|signal| signal.name == "utilisation")
        .unwrap();
    let Reading::PerInstance { samples, .. } = &utilisation.reading else {
        panic!("per instance");
    };
    assert_eq!(samples[1].value, None, "unreachable target is missing");
    assert!((samples[0].value.unwrap() - 0.8).abs() < 1e-9);
    let wait = second
        .signals
        .iter()
        .find(|signal| signal.name == "wait")
        .unwrap();
    assert_eq!(
        wait.reading,
        Reading::External {
            value: Some(0.1),
            target: Target::Value(0.05)
        }
    );
    assert_eq!(second.ready, 1);
}

#[test]
fn counter_rates_per_instance_survive_resets() {
    let config = Config::from_toml(
        r#"
[targets]
urls = ["a"]
warmup = "0s"
[signals.tps]
kind = "counter_rate"
metric = "pgbouncer_stats_totals_xact_count"
target = 100
"#,
        "test",
    )
    .unwrap();
    let mut collector = Collector::default();
    let start = Instant::now();
    let tick = |count: u64| {
        vec![TargetScrape {
            url: "a".to_owned(),
            scrape: Some(parse(&format!(
                "# TYPE pgbouncer_stats_totals_xact_count counter\npgbouncer_stats_totals_xact_count{{database=\"app\"}} {count}\n"
            ))),
            text: None,
        }]
    };
    let rate = |observation: Observation| match &observation.signals[0].reading {
        Reading::PerInstance { samples, .. } => samples[0].value,
        Reading::External { .. } => panic!("per instance"),
    };
    assert_eq!(
        rate(collector.observe(&config, &tick(1000), 1, start)),
        None
    );
    let second = collector.observe(&config, &tick(1500), 1, start + Duration::from_secs(5));
    assert_eq!(rate(second), Some(100.0));
    // The pooler restarted: the counter began again at 200.
    let third = collector.observe(&config, &tick(200), 1, start + Duration::from_secs(10));
    assert_eq!(rate(third), Some(40.0));
}
