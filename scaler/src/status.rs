//! What the scaler shows of itself: the last tick (for `/keda`, `/ready` and `--once`)
//! and its Prometheus families (`scaler_desired_replicas`, `scaler_signal_value{signal}`,
//! `scaler_decisions_total{direction,reason}`, `scaler_target_up{target}` …).

use std::sync::Mutex;
use std::time::Instant;

use prometheus::{
    Encoder, GaugeVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use serde::Serialize;

/// One tick, as `--once` prints it and `/keda` serves it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TickReport {
    /// Instances now.
    pub current_replicas: u32,
    /// Instances wanted.
    pub desired_replicas: u32,
    /// `up`, `down` or `none`.
    pub direction: &'static str,
    /// Why.
    pub reason: &'static str,
    /// Each signal's value (per-instance signals: the average) and proposal.
    pub signals: Vec<SignalReport>,
    /// Sum of pool utilisation over the instances (KEDA mode B).
    pub utilisation_sum: f64,
    /// Clients waiting for a server connection, summed.
    pub waiting_sum: f64,
    /// Why the backend counts as saturated, if it does.
    pub backend_saturated: Option<String>,
    /// Targets scraped / known.
    pub targets_up: usize,
    /// Targets known.
    pub targets: usize,
    /// The actuator's error, when it failed this tick.
    pub actuator_error: Option<String>,
    /// KEDA `IsActive`: work is waiting or running.
    pub active: bool,
}

/// One signal in a report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SignalReport {
    /// Name.
    pub name: String,
    /// Value (`None`: missing).
    pub value: Option<f64>,
    /// Its target.
    pub target: f64,
    /// Its proposal.
    pub proposal: Option<u32>,
}

/// Shared between the loop and the HTTP endpoint.
#[derive(Debug)]
pub struct Status {
    registry: Registry,
    desired: IntGauge,
    current: IntGauge,
    signal_value: GaugeVec,
    decisions: IntCounterVec,
    target_up: GaugeVec,
    actuator_errors: IntCounter,
    last: Mutex<Option<(Instant, TickReport)>>,
    last_scrape_ok: Mutex<Option<Instant>>,
}

impl Default for Status {
    fn default() -> Self {
        Status::new()
    }
}

impl Status {
    /// Registers the families.
    pub fn new() -> Status {
        let registry = Registry::new();
        let desired = IntGauge::new(
            "scaler_desired_replicas",
            "Instances the last decision wants",
        )
        .unwrap();
        let current =
            IntGauge::new("scaler_current_replicas", "Instances the actuator reports").unwrap();
        let signal_value = GaugeVec::new(
            Opts::new(
                "scaler_signal_value",
                "Each signal's last value (per-instance signals: the average)",
            ),
            &["signal"],
        )
        .unwrap();
        let decisions = IntCounterVec::new(
            Opts::new(
                "scaler_decisions_total",
                "Decisions by direction and reason",
            ),
            &["direction", "reason"],
        )
        .unwrap();
        let target_up = GaugeVec::new(
            Opts::new(
                "scaler_target_up",
                "1 when the last scrape of the target succeeded",
            ),
            &["target"],
        )
        .unwrap();
        let actuator_errors = IntCounter::new(
            "scaler_actuator_errors_total",
            "Failed actuations (no event recorded)",
        )
        .unwrap();
        for collector in [
            Box::new(desired.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(current.clone()),
            Box::new(signal_value.clone()),
            Box::new(decisions.clone()),
            Box::new(target_up.clone()),
            Box::new(actuator_errors.clone()),
        ] {
            registry.register(collector).unwrap();
        }
        Status {
            registry,
            desired,
            current,
            signal_value,
            decisions,
            target_up,
            actuator_errors,
            last: Mutex::new(None),
            last_scrape_ok: Mutex::new(None),
        }
    }

    /// Records a tick.
    pub fn record(&self, report: &TickReport, scraped: &[(String, bool)], now: Instant) {
        self.desired.set(i64::from(report.desired_replicas));
        self.current.set(i64::from(report.current_replicas));
        for signal in &report.signals {
            match signal.value {
                Some(value) => self
                    .signal_value
                    .with_label_values(&[&signal.name])
                    .set(value),
                None => {
                    let _ = self.signal_value.remove_label_values(&[&signal.name]);
                }
            }
        }
        self.decisions
            .with_label_values(&[report.direction, report.reason])
            .inc();
        self.target_up.reset();
        for (url, is_up) in scraped {
            self.target_up
                .with_label_values(&[url])
                .set(if *is_up { 1.0 } else { 0.0 });
        }
        if report.actuator_error.is_some() {
            self.actuator_errors.inc();
        }
        if report.targets_up > 0 {
            *self
                .last_scrape_ok
                .lock()
                .unwrap_or_else(|poison| poison.into_inner()) = Some(now);
        }
        *self
            .last
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = Some((now, report.clone()));
    }

    /// The last tick.
    pub fn last(&self) -> Option<TickReport> {
        self.last
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .as_ref()
            .map(|(_, report)| report.clone())
    }

    /// True when a scrape succeeded within `window`.
    pub fn is_ready(&self, window: std::time::Duration) -> bool {
        self.last_scrape_ok
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .is_some_and(|at| at.elapsed() <= window)
    }

    /// The Prometheus text.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dashboard_queries_only_exported_families() {
        let status = Status::new();
        let report = TickReport {
            signals: vec![SignalReport {
                name: "utilisation".to_owned(),
                value: Some(0.5),
                target: 0.7,
                proposal: Some(2),
            }],
            direction: "up",
            reason: "signals",
            actuator_error: Some("x".to_owned()),
            ..TickReport::default()
        };
        status.record(
            &report,
            &[("http://a/metrics".to_owned(), true)],
            Instant::now(),
        );
        let rendered = status.render();
        let dashboard = include_str!("../../deploy/grafana/scaler-dashboard.json");
        let mut checked = 0;
        for word in dashboard.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("scaler_") {
                assert!(rendered.contains(word), "{word} is not exported");
                checked += 1;
            }
        }
        assert!(checked >= 6);
    }
}
