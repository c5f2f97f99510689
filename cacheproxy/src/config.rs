//! The proxy's settings: TOML file format, defaults, validation and the derived values the
//! rest of the crate uses (credentials, upstream mode, client users).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Where commands for replica-eligible (read-only) commands go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ReadFrom {
    /// Everything goes to the master (the default).
    #[default]
    Master,
    /// Read-only commands go to a replica; with no healthy replica they fail.
    Replica,
    /// Read-only commands go to a replica when one is healthy, else to the master.
    ReplicaPreferred,
}

/// Every setting of the proxy. Each field's default is what an absent key means.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address clients connect to. _Default:_ `127.0.0.1:6380`.
    pub listen: String,
    /// Sentinels as `host:port`, tried in order. Empty when `upstream` is used.
    pub sentinels: Vec<String>,
    /// The master name the Sentinels monitor. _Default:_ `mymaster`.
    pub master_name: String,
    /// A single Redis `host:port` without Sentinel (mutually exclusive with `sentinels`).
    pub upstream: Option<String>,
    /// ACL user for upstream Redis servers (`AUTH user password`). _Default:_ none.
    pub user: Option<String>,
    /// Password for upstream Redis servers. _Default:_ none.
    pub password: Option<String>,
    /// ACL user for the Sentinels. _Default:_ none.
    pub sentinel_user: Option<String>,
    /// Password for the Sentinels. _Default:_ none.
    pub sentinel_password: Option<String>,
    /// Password clients must give (`AUTH password`, `HELLO … AUTH default password`).
    pub requirepass: Option<String>,
    /// Extra client users as `"name:password"` (`AUTH name password`).
    pub users: Vec<String>,
    /// Shared, multiplexed connections per upstream server and protocol. _Default:_ 2.
    pub pool_size: usize,
    /// Idle pinned connections kept open to the master, ready for MULTI, blocking
    /// commands, SUBSCRIBE, SELECT … _Default:_ 4.
    pub pinned_pool_size: usize,
    /// Most pinned connections open at once (idle and in use). _Default:_ 1024.
    pub max_pinned: usize,
    /// Routing of read-only commands. _Default:_ `master`.
    pub read_from: ReadFrom,
    /// How long a command waits for a master during a failover. _Default:_ `5s`.
    #[serde(deserialize_with = "duration")]
    pub failover_timeout: Duration,
    /// TCP connect (and handshake) timeout towards Redis and Sentinel. _Default:_ `1s`.
    #[serde(deserialize_with = "duration")]
    pub connect_timeout: Duration,
    /// Longest wait for a reply on a shared connection before it is considered dead
    /// (`0s` disables). _Default:_ `10s`.
    #[serde(deserialize_with = "duration")]
    pub upstream_timeout: Duration,
    /// Timeout of one Sentinel query or ROLE probe. _Default:_ `500ms`.
    #[serde(deserialize_with = "duration")]
    pub sentinel_timeout: Duration,
    /// How often the master and the replica list are re-checked without any event.
    /// _Default:_ `5s`.
    #[serde(deserialize_with = "duration")]
    pub refresh_interval: Duration,
    /// Most client connections at once. _Default:_ 10000.
    pub max_clients: usize,
    /// Most commands one client may have in flight (pipelined) before the proxy stops
    /// reading from it. _Default:_ 1024.
    pub max_pipeline: usize,
    /// Allow `MONITOR` (on a pinned connection). _Default:_ false.
    pub enable_monitor: bool,
    /// How long SIGTERM waits for clients to finish their in-flight commands. _Default:_ `10s`.
    #[serde(deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
    /// `host:port` of the HTTP endpoint serving Prometheus `/metrics`, `/health` and
    /// `/ready`. _Default:_ none (off).
    pub metrics_addr: Option<String>,
    /// Log an info line for every accepted client (`client connected: addr=… id=…`), like
    /// PgBouncer's `log_connections`. _Default:_ true.
    pub log_connections: bool,
    /// Log an info line, with the reason, for every client that goes away (`client closed:
    /// addr=… id=… reason=…`), like PgBouncer's `log_disconnections`. _Default:_ true.
    pub log_disconnections: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:6380".to_owned(),
            sentinels: Vec::new(),
            master_name: "mymaster".to_owned(),
            upstream: None,
            user: None,
            password: None,
            sentinel_user: None,
            sentinel_password: None,
            requirepass: None,
            users: Vec::new(),
            pool_size: 2,
            pinned_pool_size: 4,
            max_pinned: 1024,
            read_from: ReadFrom::Master,
            failover_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
            upstream_timeout: Duration::from_secs(10),
            sentinel_timeout: Duration::from_millis(500),
            refresh_interval: Duration::from_secs(5),
            max_clients: 10_000,
            max_pipeline: 1024,
            enable_monitor: false,
            shutdown_timeout: Duration::from_secs(10),
            metrics_addr: None,
            log_connections: true,
            log_disconnections: true,
        }
    }
}

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for [`Config`].
    #[error("invalid config {path}: {source}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// The TOML error, with line and column.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A value is out of range or settings contradict each other.
    #[error("invalid setting `{key}`: {reason}")]
    Invalid {
        /// The offending key.
        key: &'static str,
        /// Why it is wrong.
        reason: String,
    },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// `AUTH` arguments for an upstream server or a Sentinel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// ACL user; `None` sends `AUTH password`.
    pub user: Option<String>,
    /// The password.
    pub password: String,
}

/// Where the master comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamMode<'a> {
    /// Ask these Sentinels for `master_name`.
    Sentinel {
        /// Sentinel addresses in configured order.
        sentinels: &'a [String],
        /// The monitored master's name.
        master_name: &'a str,
    },
    /// One fixed Redis server.
    Single(&'a str),
}

impl Config {
    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text).map_err(|error| match error {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.to_owned(),
                source,
            },
            other => other,
        })
    }

    /// Parses TOML text (without validating; see [`Config::validate`]).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            source: Box::new(source),
        })
    }

    /// Checks ranges and that exactly one upstream mode is configured.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_host_port("listen", &self.listen)?;
        if let Some(metrics_addr) = &self.metrics_addr {
            check_host_port("metrics_addr", metrics_addr)?;
        }
        match (&self.upstream, self.sentinels.is_empty()) {
            (Some(_), false) => {
                return Err(invalid(
                    "upstream",
                    "set either `sentinels` or `upstream`, not both",
                ));
            }
            (None, true) => {
                return Err(invalid(
                    "sentinels",
                    "set `sentinels` (with `master_name`) or `upstream`",
                ));
            }
            (Some(upstream), true) => check_host_port("upstream", upstream)?,
            (None, false) => {
                for sentinel in &self.sentinels {
                    check_host_port("sentinels", sentinel)?;
                }
                if self.master_name.trim().is_empty() {
                    return Err(invalid("master_name", "must not be empty"));
                }
            }
        }
        if self.pool_size == 0 || self.pool_size > 64 {
            return Err(invalid("pool_size", "must be between 1 and 64"));
        }
        if self.max_pinned == 0 {
            return Err(invalid("max_pinned", "must be at least 1"));
        }
        if self.pinned_pool_size > self.max_pinned {
            return Err(invalid("pinned_pool_size", "must not exceed max_pinned"));
        }
        if self.max_clients == 0 {
            return Err(invalid("max_clients", "must be at least 1"));
        }
        if self.max_pipeline == 0 {
            return Err(invalid("max_pipeline", "must be at least 1"));
        }
        for (key, value) in [
            ("failover_timeout", self.failover_timeout),
            ("connect_timeout", self.connect_timeout),
            ("sentinel_timeout", self.sentinel_timeout),
            ("refresh_interval", self.refresh_interval),
        ] {
            if value.is_zero() {
                return Err(invalid(key, "must be greater than zero"));
            }
        }
        if self.user.is_some() && self.password.is_none() {
            return Err(invalid("user", "an upstream user needs a `password`"));
        }
        if self.sentinel_user.is_some() && self.sentinel_password.is_none() {
            return Err(invalid(
                "sentinel_user",
                "a Sentinel user needs a `sentinel_password`",
            ));
        }
        self.client_users()?;
        Ok(())
    }

    /// The configured upstream mode (valid after [`Config::validate`]).
    pub fn mode(&self) -> UpstreamMode<'_> {
        match &self.upstream {
            Some(upstream) => UpstreamMode::Single(upstream),
            None => UpstreamMode::Sentinel {
                sentinels: &self.sentinels,
                master_name: &self.master_name,
            },
        }
    }

    /// Credentials for upstream Redis servers.
    pub fn upstream_credentials(&self) -> Option<Credentials> {
        self.password.as_ref().map(|password| Credentials {
            user: self.user.clone(),
            password: password.clone(),
        })
    }

    /// Credentials for the Sentinels.
    pub fn sentinel_credentials(&self) -> Option<Credentials> {
        self.sentinel_password.as_ref().map(|password| Credentials {
            user: self.sentinel_user.clone(),
            password: password.clone(),
        })
    }

    /// The `users` list as (name, password) pairs. Errors name the entry by position,
    /// never by its text, which may hold a password.
    pub fn client_users(&self) -> Result<Vec<(String, String)>, ConfigError> {
        self.users
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                let position = index + 1;
                let (name, password) = entry.split_once(':').ok_or_else(|| {
                    invalid("users", format!("entry {position} is not name:password"))
                })?;
                if name.is_empty() || password.is_empty() {
                    return Err(invalid(
                        "users",
                        format!("entry {position} has an empty name or password"),
                    ));
                }
                Ok((name.to_owned(), password.to_owned()))
            })
            .collect()
    }

    /// True when clients must authenticate before running commands.
    pub fn requires_client_auth(&self) -> bool {
        self.requirepass.is_some() || !self.users.is_empty()
    }
}

fn check_host_port(key: &'static str, value: &str) -> Result<(), ConfigError> {
    let (host, port) = value
        .rsplit_once(':')
        .ok_or_else(|| invalid(key, format!("`{value}` is not host:port")))?;
    if host.is_empty() {
        return Err(invalid(key, format!("`{value}` has no host")));
    }
    port.parse::<u16>()
        .map_err(|_| invalid(key, format!("`{value}` has an invalid port")))?;
    Ok(())
}

/// A duration written as humantime text (`"5s"`, `"250ms"`) or as integer milliseconds.
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        Millis(u64),
        Human(String),
    }
    match Text::deserialize(deserializer)? {
        Text::Millis(millis) => Ok(Duration::from_millis(millis)),
        Text::Human(text) => parse_duration(&text).map_err(serde::de::Error::custom),
    }
}

/// Parses `"5s"`, `"250ms"`, `"1m 30s"`; used by the config file and the command line.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|error| format!("`{text}`: {error}"))
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
