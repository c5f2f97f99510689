//! The scaler's configuration: a TOML file, `SCALER_*` and the seed's `SCALING_*`
//! environment variables, validated into a [`Config`] with the decision [`Policy`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::decide::behavior::Rules;
use crate::decide::{Behavior, ConnectionBudget, Cooldowns, FlapBudget, Policy, Tolerance};

/// What a signal is computed from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum SignalSource {
    /// Per instance: `sv_active / (pool_size + reserve_pool)` of the pooler's pools
    /// (optionally of one `database`).
    PoolUtilisation {
        /// Only this database.
        #[serde(default)]
        database: Option<String>,
    },
    /// For the service: p99 of `pooler_client_wait_seconds` over the last interval.
    ClientWaitP99,
    /// Per instance: a gauge (summed over its series, filtered by `labels`).
    Gauge {
        /// Metric name.
        metric: String,
        /// Label filter.
        #[serde(default)]
        labels: BTreeMap<String, String>,
    },
    /// Per instance: a counter's rate per second over the last interval (e.g. transactions:
    /// `pgbouncer_stats_totals_xact_count`); a counter reset counts the new value as the increase.
    CounterRate {
        /// Metric name.
        metric: String,
        /// Label filter.
        #[serde(default)]
        labels: BTreeMap<String, String>,
    },
    /// For the service: a quantile of a histogram over the last interval.
    HistogramQuantile {
        /// Metric name (without `_bucket`).
        metric: String,
        /// 0 < q < 1.
        quantile: f64,
        /// Label filter.
        #[serde(default)]
        labels: BTreeMap<String, String>,
    },
}

/// One named drive signal (unknown keys are refused by [`SignalSource`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SignalConfig {
    /// What it is computed from.
    #[serde(flatten)]
    pub source: SignalSource,
    /// Its target (per instance for per-instance signals, for the service otherwise).
    pub target: f64,
}

/// Where the instances' `/metrics` are.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetsConfig {
    /// Static URLs.
    pub urls: Vec<String>,
    /// `host:port[/path]`: every A/AAAA record of host (compose replicas).
    pub dns: Option<String>,
    /// A file with one URL per line, re-read every tick (a deployment rewrites it).
    pub file: Option<PathBuf>,
    /// Per-scrape timeout.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// An instance first seen less than this long ago is warming up (not ready).
    #[serde(with = "humantime_serde")]
    pub warmup: Duration,
}

/// The actuator.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", deny_unknown_fields)]
pub enum ActuatorConfig {
    /// Decide and log, change nothing (the count is the last decision).
    DryRun {
        /// The count to start from.
        #[serde(default = "one")]
        initial: u32,
    },
    /// Serve `/metrics` and `/keda` only (the count is the number of targets).
    None,
    /// Run `command` (`{service} {desired} {current}` replaced); the count is what
    /// `count_command` prints, or the number of targets.
    Exec {
        /// Argv template.
        command: Vec<String>,
        /// Argv template printing the current count.
        #[serde(default)]
        count_command: Option<Vec<String>>,
        /// Service name for `{service}`.
        #[serde(default)]
        service: String,
        /// Per-command timeout.
        #[serde(default = "thirty_seconds", with = "humantime_serde")]
        timeout: Duration,
    },
    /// A Deployment's `scale` subresource through the API server (see `kubernetes`).
    Kubernetes {
        /// `https://kubernetes.default.svc` in a cluster, or `http://` (`kubectl proxy`).
        api_server: String,
        /// Namespace.
        #[serde(default = "default_namespace")]
        namespace: String,
        /// Deployment name.
        deployment: String,
        /// Bearer token file (e.g. the service account's).
        #[serde(default)]
        token_file: Option<PathBuf>,
        /// CA bundle the API server's certificate must chain to (`https://`).
        #[serde(default)]
        ca_file: Option<PathBuf>,
        /// Per-request timeout.
        #[serde(default = "ten_seconds", with = "humantime_serde")]
        timeout: Duration,
    },
    /// `docker compose -p P -f F up -d --no-deps --no-recreate --scale S=N S`.
    Compose {
        /// `docker` (with the compose plugin), `docker-compose` or `podman-compose`.
        #[serde(default = "docker")]
        binary: String,
        /// Project name.
        project: String,
        /// Compose file.
        file: PathBuf,
        /// Service to scale.
        service: String,
        /// Per-command timeout.
        #[serde(default = "thirty_seconds", with = "humantime_serde")]
        timeout: Duration,
    },
}

impl Default for TargetsConfig {
    fn default() -> Self {
        TargetsConfig {
            urls: Vec::new(),
            dns: None,
            file: None,
            timeout: Duration::from_secs(1),
            warmup: Duration::from_secs(30),
        }
    }
}

fn default_namespace() -> String {
    "default".to_owned()
}
fn ten_seconds() -> Duration {
    Duration::from_secs(10)
}
fn one() -> u32 {
    1
}
fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}
fn docker() -> String {
    "docker".to_owned()
}

/// The guards HPA lacks.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardsConfig {
    /// `pooler_query_duration_seconds` p99 above this: the database is saturated.
    #[serde(with = "humantime_serde")]
    pub query_p99_limit: Option<Duration>,
    /// `cacheproxy_command_duration_seconds` p99 above this: Redis is saturated.
    #[serde(with = "humantime_serde")]
    pub cache_p99_limit: Option<Duration>,
    /// The database's `max_connections` (enables the connection budget).
    pub max_connections: Option<u32>,
    /// Connections kept for others.
    pub reserved_connections: u32,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Seconds between ticks.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// `/metrics`, `/keda`, `/health`, `/ready` (off when unset).
    pub listen: Option<String>,
    /// KEDA's External Scaler gRPC service (feature `keda-grpc`; off when unset).
    pub keda_grpc_listen: Option<String>,
    /// Fewest instances.
    pub min_replicas: u32,
    /// Most instances.
    pub max_replicas: u32,
    /// Tolerance around the target (both directions unless `tolerance_down` is set).
    pub tolerance: f64,
    /// Scale-down tolerance.
    pub tolerance_down: Option<f64>,
    /// Drive signals by name.
    pub signals: BTreeMap<String, SignalConfig>,
    /// Targets.
    pub targets: TargetsConfig,
    /// Guards.
    pub guards: GuardsConfig,
    /// Scale-up rules (HPA default when unset).
    pub scale_up: Option<Rules>,
    /// Scale-down rules (HPA default when unset).
    pub scale_down: Option<Rules>,
    /// Cooldown after a scale-up before the next one.
    #[serde(with = "humantime_serde")]
    pub cooldown_up: Duration,
    /// Cooldown after a scale-down before the next one.
    #[serde(with = "humantime_serde")]
    pub cooldown_down: Duration,
    /// No move against the last one for this long.
    #[serde(with = "humantime_serde")]
    pub cooldown_after_opposite: Duration,
    /// Allowed reversals per hour (freeze beyond; off when unset).
    pub flap_budget: Option<u32>,
    /// The actuator.
    pub actuator: ActuatorConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            interval: Duration::from_secs(5),
            listen: None,
            keda_grpc_listen: None,
            min_replicas: 1,
            max_replicas: 10,
            tolerance: 0.1,
            tolerance_down: None,
            signals: BTreeMap::new(),
            targets: TargetsConfig::default(),
            guards: GuardsConfig::default(),
            scale_up: None,
            scale_down: None,
            cooldown_up: Duration::ZERO,
            cooldown_down: Duration::ZERO,
            cooldown_after_opposite: Duration::ZERO,
            flap_budget: None,
            actuator: ActuatorConfig::DryRun { initial: 1 },
        }
    }
}

/// A configuration problem, with the file position when the TOML parser knows it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Parses TOML text (`origin` names it in errors, with line and column).
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|error| {
            let position = error
                .span()
                .map(|span| {
                    let line = text[..span.start].matches('\n').count() + 1;
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            ConfigError(format!("{origin}{position}: {}", error.message()))
        })?;
        Ok(config)
    }

    /// Applies the seed's `SCALING_*` variables (from `lookup`): min/max instances,
    /// cooldowns, and up/down thresholds, which become the first signal's target (their
    /// midpoint) and tolerances (so scaling starts above the up and below the down
    /// threshold, as the seed's script did). Percentages above 1 are divided by 100 for a
    /// signal whose target is a fraction.
    pub fn apply_seed_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let number = |name: &str| -> Result<Option<f64>, ConfigError> {
            lookup(name)
                .map(|text| {
                    text.trim()
                        .parse::<f64>()
                        .map_err(|_| ConfigError(format!("{name}={text}: not a number")))
                })
                .transpose()
        };
        let seconds = |name: &str| -> Result<Option<Duration>, ConfigError> {
            lookup(name)
                .map(|text| {
                    let text = text.trim();
                    text.parse::<u64>()
                        .map(Duration::from_secs)
                        .or_else(|_| humantime::parse_duration(text))
                        .map_err(|_| ConfigError(format!("{name}={text}: not a duration")))
                })
                .transpose()
        };
        if let Some(min) = number("SCALING_MIN_INSTANCES")? {
            self.min_replicas = min as u32;
        }
        if let Some(max) = number("SCALING_MAX_INSTANCES")? {
            self.max_replicas = max as u32;
        }
        if let Some(up) = seconds("SCALING_SCALE_UP_COOLDOWN")? {
            self.cooldown_up = up;
        }
        if let Some(down) = seconds("SCALING_SCALE_DOWN_COOLDOWN")? {
            self.cooldown_down = down;
        }
        let up = number("SCALING_SCALE_UP_THRESHOLD")?;
        let down = number("SCALING_SCALE_DOWN_THRESHOLD")?;
        if let (Some(up), Some(down)) = (up, down) {
            if down >= up {
                return Err(ConfigError(format!(
                    "SCALING_SCALE_DOWN_THRESHOLD ({down}) must be below SCALING_SCALE_UP_THRESHOLD ({up})"
                )));
            }
            let Some(signal) = self.signals.values_mut().next() else {
                return Err(ConfigError(
                    "SCALING_SCALE_UP/DOWN_THRESHOLD need a signal to apply to".to_owned(),
                ));
            };
            let scale = if up > 1.0 && signal.target <= 1.0 {
                100.0
            } else {
                1.0
            };
            let (up, down) = (up / scale, down / scale);
            let target = (up + down) / 2.0;
            signal.target = target;
            self.tolerance = up / target - 1.0;
            self.tolerance_down = Some(1.0 - down / target);
        }
        Ok(())
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |text: String| Err(ConfigError(text));
        if self.min_replicas > self.max_replicas {
            return fail(format!(
                "min_replicas ({}) is above max_replicas ({})",
                self.min_replicas, self.max_replicas
            ));
        }
        if self.interval.is_zero() {
            return fail("interval must be above zero".to_owned());
        }
        if self.signals.is_empty() {
            return fail("no [signals.<name>] configured: nothing to scale on".to_owned());
        }
        for (name, signal) in &self.signals {
            if signal.target <= 0.0 || !signal.target.is_finite() {
                return fail(format!("signals.{name}.target must be above zero"));
            }
            if let SignalSource::HistogramQuantile { quantile, .. } = signal.source
                && !(0.0..1.0).contains(&quantile)
            {
                return fail(format!("signals.{name}.quantile must be in (0, 1)"));
            }
        }
        let has_targets = !self.targets.urls.is_empty()
            || self.targets.dns.is_some()
            || self.targets.file.is_some();
        if !has_targets {
            return fail("[targets] needs urls, dns or file".to_owned());
        }
        for rules in [&self.scale_up, &self.scale_down].into_iter().flatten() {
            if rules
                .policies
                .iter()
                .any(|policy| policy.period > Duration::from_secs(1800) || policy.period.is_zero())
            {
                return fail("a rate policy's period must be in (0, 1800 s]".to_owned());
            }
        }
        if let ActuatorConfig::Exec { command, .. } = &self.actuator
            && command.is_empty()
        {
            return fail("actuator.command is empty".to_owned());
        }
        if let ActuatorConfig::Kubernetes {
            api_server,
            ca_file,
            ..
        } = &self.actuator
        {
            let is_tls = api_server.starts_with("https://");
            if !is_tls && !api_server.starts_with("http://") {
                return fail(format!(
                    "actuator.api_server = {api_server}: not an http(s):// URL"
                ));
            }
            if is_tls && ca_file.is_none() {
                return fail(
                    "actuator.ca_file is needed for an https:// api_server (in a cluster: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt)"
                        .to_owned(),
                );
            }
        }
        Ok(())
    }

    /// The decision policy.
    pub fn policy(&self) -> Policy {
        Policy {
            min_replicas: self.min_replicas,
            max_replicas: self.max_replicas,
            tolerance: Tolerance {
                up: self.tolerance,
                down: self.tolerance_down.unwrap_or(self.tolerance),
            },
            behavior: Behavior {
                up: self.scale_up.clone().unwrap_or_else(Rules::default_up),
                down: self.scale_down.clone().unwrap_or_else(Rules::default_down),
            },
            cooldowns: Cooldowns {
                up: self.cooldown_up,
                down: self.cooldown_down,
                after_opposite: self.cooldown_after_opposite,
            },
            flap_budget: self.flap_budget.map(|reversals| FlapBudget {
                reversals,
                per: Duration::from_secs(3600),
            }),
            connection_budget: self.guards.max_connections.map(|max_connections| {
                ConnectionBudget {
                    max_connections,
                    reserved: self.guards.reserved_connections,
                }
            }),
        }
    }

    /// How long history must be kept for every rule to see what it needs.
    pub fn history_span(&self) -> Duration {
        let policy = self.policy();
        let periods = [&policy.behavior.up, &policy.behavior.down]
            .into_iter()
            .flat_map(|rules| {
                rules
                    .policies
                    .iter()
                    .map(|policy| policy.period)
                    .chain([rules.window])
            });
        periods
            .chain([
                self.cooldown_up,
                self.cooldown_down,
                self.cooldown_after_opposite,
                Duration::from_secs(3600),
            ])
            .max()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
interval = "5s"
min_replicas = 2
max_replicas = 10
[targets]
urls = ["http://127.0.0.1:9127/metrics"]
[signals.utilisation]
kind = "pool_utilisation"
target = 0.7
[guards]
query_p99_limit = "500ms"
max_connections = 100
reserved_connections = 10
[actuator]
kind = "exec"
command = ["./scale.sh", "{service}", "{desired}"]
"#;

    #[test]
    fn example_parses_and_validates() {
        let config = Config::from_toml(EXAMPLE, "scaler.toml").unwrap();
        config.validate().unwrap();
        assert_eq!(config.min_replicas, 2);
        assert_eq!(
            config.guards.query_p99_limit,
            Some(Duration::from_millis(500))
        );
        assert_eq!(config.policy().connection_budget.unwrap().reserved, 10);
        // Defaults hold for keys a present table leaves out.
        assert_eq!(config.targets.timeout, Duration::from_secs(1));
        assert_eq!(config.targets.warmup, Duration::from_secs(30));
    }

    #[test]
    fn errors_name_the_line() {
        let error =
            Config::from_toml("interval = \"5s\"\nmin_replicas = \"two\"\n", "x.toml").unwrap_err();
        assert!(error.0.starts_with("x.toml (line 2)"), "{}", error.0);
        let error = Config::from_toml("\n\nbogus = 1\n", "x.toml").unwrap_err();
        assert!(error.0.contains("line 3"), "{}", error.0);
    }

    #[test]
    fn seed_thresholds_become_target_and_tolerances() {
        let mut config = Config::from_toml(EXAMPLE, "scaler.toml").unwrap();
        let env = |name: &str| match name {
            "SCALING_SCALE_UP_THRESHOLD" => Some("80".to_owned()),
            "SCALING_SCALE_DOWN_THRESHOLD" => Some("40".to_owned()),
            "SCALING_SCALE_UP_COOLDOWN" => Some("300".to_owned()),
            "SCALING_MAX_INSTANCES" => Some("8".to_owned()),
            _ => None,
        };
        config.apply_seed_env(env).unwrap();
        let signal = &config.signals["utilisation"];
        assert!((signal.target - 0.6).abs() < 1e-9);
        let policy = config.policy();
        // Ratio 0.8/0.6 = 1.333 is the edge of the up tolerance; 0.4/0.6 of the down one.
        assert!((policy.tolerance.up - 1.0 / 3.0).abs() < 1e-9);
        assert!((policy.tolerance.down - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(policy.cooldowns.up, Duration::from_secs(300));
        assert_eq!(config.max_replicas, 8);
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let text = include_str!("../../deploy/config/scaler.example.toml");
        let config = Config::from_toml(text, "scaler.example.toml").unwrap();
        config.validate().unwrap();
        assert_eq!(config.signals.len(), 2);
        assert!(matches!(config.actuator, ActuatorConfig::Compose { .. }));
    }

    #[test]
    fn unknown_signal_keys_are_refused() {
        let text = EXAMPLE.replace("target = 0.7", "target = 0.7\ndatabse = \"app\"");
        assert!(Config::from_toml(&text, "x.toml").is_err());
    }

    #[test]
    fn validation_explains() {
        let mut config = Config::from_toml(EXAMPLE, "scaler.toml").unwrap();
        config.min_replicas = 20;
        assert!(config.validate().unwrap_err().0.contains("min_replicas"));
    }
}
