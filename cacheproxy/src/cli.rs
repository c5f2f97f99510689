//! The command line: every config setting as a flag and an environment variable (for
//! sidecars), layered over the optional TOML file.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Config, ConfigError, ReadFrom, parse_duration};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `cacheproxy [--config FILE] [flags]`: flags and environment variables override the file.
#[derive(Debug, Clone, Default, clap::Parser)]
#[command(
    name = "cacheproxy",
    version,
    about = "A drop-in REDIS_URL proxy in front of a Sentinel-managed Redis master/replica set"
)]
pub struct Cli {
    /// TOML config file (see deploy/config/cacheproxy.example.toml).
    #[arg(short, long, env = "CACHEPROXY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Only validate the configuration and exit.
    #[arg(long)]
    pub check: bool,
    /// Log format.
    #[arg(long, env = "CACHEPROXY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Listen address (host:port).
    #[arg(long, env = "CACHEPROXY_LISTEN")]
    pub listen: Option<String>,
    /// Sentinels, comma separated host:port list.
    #[arg(long, env = "CACHEPROXY_SENTINELS", value_delimiter = ',')]
    pub sentinels: Option<Vec<String>>,
    /// Master name monitored by the Sentinels.
    #[arg(long, env = "CACHEPROXY_MASTER_NAME")]
    pub master_name: Option<String>,
    /// A single Redis host:port without Sentinel.
    #[arg(long, env = "CACHEPROXY_UPSTREAM")]
    pub upstream: Option<String>,
    /// Upstream ACL user.
    #[arg(long, env = "CACHEPROXY_USER")]
    pub user: Option<String>,
    /// Upstream password.
    #[arg(long, env = "CACHEPROXY_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Sentinel ACL user.
    #[arg(long, env = "CACHEPROXY_SENTINEL_USER")]
    pub sentinel_user: Option<String>,
    /// Sentinel password.
    #[arg(long, env = "CACHEPROXY_SENTINEL_PASSWORD", hide_env_values = true)]
    pub sentinel_password: Option<String>,
    /// Password clients must send with AUTH.
    #[arg(long, env = "CACHEPROXY_REQUIREPASS", hide_env_values = true)]
    pub requirepass: Option<String>,
    /// Extra client users, comma separated name:password list.
    #[arg(
        long,
        env = "CACHEPROXY_USERS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub users: Option<Vec<String>>,
    /// Shared connections per upstream server and protocol.
    #[arg(long, env = "CACHEPROXY_POOL_SIZE")]
    pub pool_size: Option<usize>,
    /// Idle pinned connections kept ready.
    #[arg(long, env = "CACHEPROXY_PINNED_POOL_SIZE")]
    pub pinned_pool_size: Option<usize>,
    /// Most pinned connections at once.
    #[arg(long, env = "CACHEPROXY_MAX_PINNED")]
    pub max_pinned: Option<usize>,
    /// Where read-only commands go.
    #[arg(long, env = "CACHEPROXY_READ_FROM", value_enum)]
    pub read_from: Option<ReadFrom>,
    /// How long commands wait for a new master (e.g. 5s).
    #[arg(long, env = "CACHEPROXY_FAILOVER_TIMEOUT", value_parser = parse_duration)]
    pub failover_timeout: Option<Duration>,
    /// Connect timeout towards Redis and Sentinel (e.g. 1s).
    #[arg(long, env = "CACHEPROXY_CONNECT_TIMEOUT", value_parser = parse_duration)]
    pub connect_timeout: Option<Duration>,
    /// Longest wait for an upstream reply (0s disables).
    #[arg(long, env = "CACHEPROXY_UPSTREAM_TIMEOUT", value_parser = parse_duration)]
    pub upstream_timeout: Option<Duration>,
    /// Most client connections.
    #[arg(long, env = "CACHEPROXY_MAX_CLIENTS")]
    pub max_clients: Option<usize>,
    /// Allow MONITOR.
    #[arg(long, env = "CACHEPROXY_ENABLE_MONITOR")]
    pub enable_monitor: Option<bool>,
    /// `host:port` of the `/metrics`, `/health` and `/ready` HTTP endpoint (off when unset).
    #[arg(long, env = "CACHEPROXY_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
    /// Log every client connection (true/false).
    #[arg(long, env = "CACHEPROXY_LOG_CONNECTIONS")]
    pub log_connections: Option<bool>,
    /// Log every client disconnection with its reason (true/false).
    #[arg(long, env = "CACHEPROXY_LOG_DISCONNECTIONS")]
    pub log_disconnections: Option<bool>,
}

impl Cli {
    /// The file (or the defaults) with every given flag applied, validated.
    pub fn load_config(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        self.apply(&mut config);
        config.validate()?;
        Ok(config)
    }

    /// Overrides `config` with the flags that were given.
    pub fn apply(&self, config: &mut Config) {
        fn set<T: Clone>(target: &mut T, value: &Option<T>) {
            if let Some(value) = value {
                *target = value.clone();
            }
        }
        fn set_some<T: Clone>(target: &mut Option<T>, value: &Option<T>) {
            if value.is_some() {
                target.clone_from(value);
            }
        }
        set(&mut config.listen, &self.listen);
        set(&mut config.sentinels, &self.sentinels);
        set(&mut config.master_name, &self.master_name);
        if self.upstream.is_some() {
            config.upstream.clone_from(&self.upstream);
            if self.sentinels.is_none() {
                config.sentinels.clear();
            }
        }
        set_some(&mut config.user, &self.user);
        set_some(&mut config.password, &self.password);
        set_some(&mut config.sentinel_user, &self.sentinel_user);
        set_some(&mut config.sentinel_password, &self.sentinel_password);
        set_some(&mut config.requirepass, &self.requirepass);
        set(&mut config.users, &self.users);
        set(&mut config.pool_size, &self.pool_size);
        set(&mut config.pinned_pool_size, &self.pinned_pool_size);
        set(&mut config.max_pinned, &self.max_pinned);
        set(&mut config.read_from, &self.read_from);
        set(&mut config.failover_timeout, &self.failover_timeout);
        set(&mut config.connect_timeout, &self.connect_timeout);
        set(&mut config.upstream_timeout, &self.upstream_timeout);
        set(&mut config.max_clients, &self.max_clients);
        set(&mut config.enable_monitor, &self.enable_monitor);
        set_some(&mut config.metrics_addr, &self.metrics_addr);
        set(&mut config.log_connections, &self.log_connections);
        set(&mut config.log_disconnections, &self.log_disconnections);
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn flags_override_defaults() {
        let cli = Cli::try_parse_from([
            "cacheproxy",
            "--listen",
            "0.0.0.0:7000",
            "--sentinels",
            "a:1,b:2",
            "--read-from",
            "replica-preferred",
            "--failover-timeout",
            "2s",
            "--pool-size",
            "3",
            "--metrics-addr",
            "127.0.0.1:9380",
        ])
        .unwrap();
        let config = cli.load_config().unwrap();
        assert_eq!(config.listen, "0.0.0.0:7000");
        assert_eq!(config.sentinels, vec!["a:1".to_owned(), "b:2".to_owned()]);
        assert_eq!(config.read_from, ReadFrom::ReplicaPreferred);
        assert_eq!(config.failover_timeout, Duration::from_secs(2));
        assert_eq!(config.pool_size, 3);
        assert_eq!(config.metrics_addr.as_deref(), Some("127.0.0.1:9380"));
    }

    #[test]
    fn upstream_flag_replaces_file_sentinels() {
        let cli = Cli::try_parse_from(["cacheproxy", "--upstream", "127.0.0.1:6379"]).unwrap();
        let mut config = Config {
            sentinels: vec!["x:1".to_owned()],
            ..Config::default()
        };
        cli.apply(&mut config);
        config.validate().unwrap();
        assert_eq!(config.upstream.as_deref(), Some("127.0.0.1:6379"));
        assert!(config.sentinels.is_empty());
    }

    #[test]
    fn connection_logging_is_on_by_default_and_can_be_turned_off() {
        let cli = Cli::try_parse_from(["cacheproxy", "--upstream", "127.0.0.1:6379"]).unwrap();
        let config = cli.load_config().unwrap();
        assert!(config.log_connections && config.log_disconnections);
        let cli = Cli::try_parse_from([
            "cacheproxy",
            "--upstream",
            "127.0.0.1:6379",
            "--log-connections",
            "false",
            "--log-disconnections=false",
        ])
        .unwrap();
        let config = cli.load_config().unwrap();
        assert!(!config.log_connections && !config.log_disconnections);
    }

    #[test]
    fn missing_upstream_is_reported() {
        let cli = Cli::try_parse_from(["cacheproxy"]).unwrap();
        assert!(cli.load_config().is_err());
    }
}
