//! The `scaler` library: everything the `scaler` binary runs, so tests can run it
//! in-process. One [`Scaler::tick`] discovers and scrapes the targets, reads the instance
//! count from the actuator, computes the signals, decides (see [`decide`]) and carries out
//! the decision; [`run`] ticks every `interval` until shut down.
#![forbid(unsafe_code)]

pub mod actuator;
pub mod config;
pub mod decide;
mod http;
pub mod http_client;
#[cfg(feature = "keda-grpc")]
pub mod keda_grpc;
pub mod kubernetes;
pub mod scrape;
pub mod signals;
pub mod status;
pub mod trace;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use actuator::Actuator;
use config::Config;
use decide::{Decision, History, Observation, Reading, decide};
use signals::Collector;
use status::{SignalReport, Status, TickReport};

/// The scaler's state across ticks.
#[derive(Debug)]
pub struct Scaler {
    config: Config,
    history: History,
    collector: Collector,
    actuator: Actuator,
    status: Arc<Status>,
    origin: Instant,
    last_reason: Option<&'static str>,
    recorder: Option<std::io::BufWriter<std::fs::File>>,
}

fn signal_reports(observation: &Observation, decision: &Decision) -> Vec<SignalReport> {
    observation
        .signals
        .iter()
        .zip(&decision.proposals)
        .map(|(signal, (_, proposal))| {
            let (value, target) = match &signal.reading {
                Reading::PerInstance { samples, target } => {
                    let values: Vec<f64> =
                        samples.iter().filter_map(|sample| sample.value).collect();
                    let average = (!values.is_empty())
                        .then(|| values.iter().sum::<f64>() / values.len() as f64);
                    (average, *target)
                }
                Reading::External { value, target } => (
                    *value,
                    match target {
                        decide::Target::AverageValue(t)
                        | decide::Target::TotalAverageValue(t)
                        | decide::Target::Value(t) => *t,
                    },
                ),
            };
            SignalReport {
                name: signal.name.clone(),
                value,
                target,
                proposal: *proposal,
            }
        })
        .collect()
}

fn utilisation_sum(observation: &Observation) -> f64 {
    observation
        .signals
        .iter()
        .filter(|signal| signal.name.contains("utilisation"))
        .filter_map(|signal| match &signal.reading {
            Reading::PerInstance { samples, .. } => Some(
                samples
                    .iter()
                    .filter_map(|sample| sample.value)
                    .sum::<f64>(),
            ),
            Reading::External { .. } => None,
        })
        .sum()
}

impl Scaler {
    /// A scaler for a validated `config`.
    pub fn new(config: Config) -> Scaler {
        let actuator = Actuator::new(config.actuator.clone());
        Scaler {
            config,
            history: History::default(),
            collector: Collector::default(),
            actuator,
            status: Arc::new(Status::new()),
            origin: Instant::now(),
            last_reason: None,
            recorder: None,
        }
    }

    /// Records every tick's scrapes to `path` (JSON lines, see [`trace`]).
    pub fn record_trace(&mut self, path: &std::path::Path) -> std::io::Result<()> {
        self.recorder = Some(std::io::BufWriter::new(std::fs::File::create(path)?));
        Ok(())
    }

    /// The status the HTTP endpoint serves.
    pub fn status(&self) -> Arc<Status> {
        Arc::clone(&self.status)
    }

    /// Replaces the configuration (SIGHUP); history and histogram baselines stay.
    pub fn reload(&mut self, config: Config) {
        if config.actuator != self.config.actuator {
            self.actuator = Actuator::new(config.actuator.clone());
        }
        self.config = config;
    }

    /// One tick: scrape, decide, act. Never scales on an actuator count it could not read.
    pub async fn tick(&mut self) -> TickReport {
        let now = Instant::now();
        let clock = now.saturating_duration_since(self.origin);
        let urls = scrape::discover(&self.config.targets).await;
        let scrapes = scrape::scrape_all(&urls, self.config.targets.timeout).await;
        let scraped: Vec<(String, bool)> = scrapes
            .iter()
            .map(|target| (target.url.clone(), target.scrape.is_some()))
            .collect();
        let targets_up = scraped.iter().filter(|(_, is_up)| *is_up).count();
        let current = match self.actuator.current(urls.len()).await {
            Ok(current) => current,
            Err(error) => {
                warn!(%error, actuator = self.actuator.kind(), "cannot read the instance count; holding");
                let report = TickReport {
                    direction: "none",
                    reason: "actuator_error",
                    targets: urls.len(),
                    targets_up,
                    actuator_error: Some(error),
                    ..TickReport::default()
                };
                self.status.record(&report, &scraped, now);
                return report;
            }
        };
        if let Some(recorder) = self.recorder.as_mut() {
            use std::io::Write;
            let written =
                trace::record(recorder, clock, current, &scrapes).and_then(|()| recorder.flush());
            if let Err(error) = written {
                warn!(%error, "cannot write the trace; recording stopped");
                self.recorder = None;
            }
        }
        let observation = self.collector.observe(&self.config, &scrapes, current, now);
        let policy = self.config.policy();
        let decision = decide(&policy, &self.history, &observation, clock);
        self.history.record_decision(&decision, clock);
        let mut actuator_error = None;
        if decision.desired != current && self.actuator.acts() {
            match self.actuator.scale(current, decision.desired).await {
                Ok(()) => {
                    self.history.record_move(current, decision.desired, clock);
                    info!(
                        from = current,
                        to = decision.desired,
                        reason = decision.reason.as_str(),
                        proposals = ?decision.proposals,
                        clients_waiting = ?observation.clients_waiting,
                        "scaled"
                    );
                }
                Err(error) => {
                    warn!(%error, from = current, to = decision.desired, "actuation failed; no event recorded, retrying next tick");
                    actuator_error = Some(error);
                }
            }
        } else if self.last_reason != Some(decision.reason.as_str()) {
            info!(
                replicas = current,
                reason = decision.reason.as_str(),
                proposals = ?decision.proposals,
                saturated = ?observation.backend_saturated,
                "holding"
            );
        }
        self.last_reason = Some(decision.reason.as_str());
        self.history.prune(self.config.history_span(), clock);
        let waiting_sum = observation.clients_waiting.unwrap_or(0.0);
        let utilisation_sum = utilisation_sum(&observation);
        let report = TickReport {
            current_replicas: current,
            desired_replicas: decision.desired,
            direction: match decision.direction() {
                Some(decide::Direction::Up) => "up",
                Some(decide::Direction::Down) => "down",
                None => "none",
            },
            reason: decision.reason.as_str(),
            signals: signal_reports(&observation, &decision),
            utilisation_sum,
            waiting_sum,
            backend_saturated: observation.backend_saturated.clone(),
            targets_up,
            targets: urls.len(),
            actuator_error,
            active: waiting_sum > 0.0 || utilisation_sum > 0.0,
        };
        self.status.record(&report, &scraped, now);
        report
    }
}

/// Ticks every `interval` until `shutdown`; `reloads` delivers new configurations.
pub async fn run(
    config: Config,
    mut reloads: tokio::sync::mpsc::UnboundedReceiver<Config>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut scaler = Scaler::new(config);
    let _http = match &scaler.config.listen {
        Some(listen) => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|error| anyhow::anyhow!("cannot listen on {listen}: {error}"))?;
            info!(listen = %listener.local_addr()?, "serving /metrics /keda /health /ready");
            Some(http::spawn(
                listener,
                scaler.status(),
                scaler.config.interval,
            ))
        }
        None => None,
    };
    let _grpc: Option<tokio::task::JoinHandle<()>> = match &scaler.config.keda_grpc_listen {
        #[cfg(feature = "keda-grpc")]
        Some(listen) => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|error| anyhow::anyhow!("cannot listen on {listen}: {error}"))?;
            info!(listen = %listener.local_addr()?, "serving KEDA's External Scaler gRPC service");
            Some(keda_grpc::spawn(
                listener,
                scaler.status(),
                scaler.config.interval,
            ))
        }
        #[cfg(not(feature = "keda-grpc"))]
        Some(_) => anyhow::bail!("keda_grpc_listen needs a scaler built with --features keda-grpc"),
        None => None,
    };
    info!(actuator = scaler.actuator.kind(), interval = ?scaler.config.interval, "scaler started");
    let mut next = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(config) = reloads.recv() => {
                info!("configuration reloaded");
                scaler.reload(config);
                continue;
            }
            () = tokio::time::sleep_until(next) => {}
        }
        // A tick never outlives the interval by much: scrapes and actions have timeouts.
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = scaler.tick() => {}
        }
        next += scaler.config.interval;
        let now = tokio::time::Instant::now();
        if next < now {
            next = now + Duration::from_millis(1);
        }
    }
    info!("scaler stopped");
    Ok(())
}
