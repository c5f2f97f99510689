//! pooler's read/write-split keys of a `[databases]` entry (`read_write_split`,
//! `target_session_attrs`, replica choice, lag bounds, health checks, read-your-writes).

use std::time::Duration;

use super::ConfigErrorKind;
use super::keys::{parse_bool, parse_c_integer, parse_seconds};

choice_enum! {
    /// `target_session_attrs`: which kind of server a connection must reach (libpq's values).
    TargetSessionAttrs default Any {
        /// Any server.
        Any = "any",
        /// A server accepting writes.
        ReadWrite = "read-write",
        /// A server refusing writes.
        ReadOnly = "read-only",
        /// A server not in recovery.
        Primary = "primary",
        /// A server in recovery.
        Standby = "standby",
        /// A standby if one is up, else the primary.
        PreferStandby = "prefer-standby",
    }
}

impl TargetSessionAttrs {
    /// Every transaction goes to a standby (never the primary).
    pub fn is_standby_only(self) -> bool {
        matches!(self, Self::Standby | Self::ReadOnly)
    }

    /// Every transaction prefers a standby, falling back to the primary.
    pub fn is_standby_first(self) -> bool {
        matches!(self, Self::Standby | Self::ReadOnly | Self::PreferStandby)
    }
}

choice_enum! {
    /// `replica_selection` (alias `load_balance`): how a replica is picked for reads.
    ReplicaSelection default RoundRobin {
        /// Rotate through the replicas (weighted by `replica_weights`).
        RoundRobin = "round-robin",
        /// The replica with the fewest clients linked to it.
        LeastConnections = "least-connections",
    }
}

/// `read_your_writes`: how long a client's reads avoid replicas after it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadYourWrites {
    /// Until a replica has replayed the primary's WAL position taken after the write.
    #[default]
    Lsn,
    /// For a fixed time after the write.
    Window(Duration),
    /// Reads may go to a replica right after a write.
    Off,
}

/// Default `health_check_period`.
pub const DEFAULT_HEALTH_CHECK_PERIOD: Duration = Duration::from_millis(250);
/// Default `ban_time`.
pub const DEFAULT_BAN_TIME: Duration = Duration::from_secs(10);

/// The read/write-split keys of one `[databases]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingOptions {
    /// `read_write_split=on`: send read-only transactions to replicas of the host list.
    pub read_write_split: bool,
    /// `target_session_attrs`: kind of server for this entry's connections.
    pub target_session_attrs: TargetSessionAttrs,
    /// `replica_selection` / `load_balance`: how a replica is chosen.
    pub replica_selection: ReplicaSelection,
    /// `max_replica_lag` (seconds): replicas lagging more are skipped; `None` = no limit.
    pub max_replica_lag: Option<Duration>,
    /// `max_replica_lag_bytes`: replicas whose replay is more WAL bytes behind are skipped.
    pub max_replica_lag_bytes: Option<u64>,
    /// `replica_weights=1,2,2`: relative weight per host of the list; empty = equal.
    pub replica_weights: Vec<u32>,
    /// `health_check_period` (seconds): how often each host's role and LSN are read.
    pub health_check_period: Duration,
    /// `ban_time` (seconds): how long a failed host gets no new transactions.
    pub ban_time: Duration,
    /// `read_your_writes = lsn | off | <seconds>`.
    pub read_your_writes: ReadYourWrites,
    /// `volatile_functions=f1,f2`: extra functions that make a SELECT a write.
    pub volatile_functions: Vec<String>,
}

impl Default for RoutingOptions {
    fn default() -> Self {
        Self {
            read_write_split: false,
            target_session_attrs: TargetSessionAttrs::default(),
            replica_selection: ReplicaSelection::default(),
            max_replica_lag: None,
            max_replica_lag_bytes: None,
            replica_weights: Vec::new(),
            health_check_period: DEFAULT_HEALTH_CHECK_PERIOD,
            ban_time: DEFAULT_BAN_TIME,
            read_your_writes: ReadYourWrites::default(),
            volatile_functions: Vec::new(),
        }
    }
}

impl RoutingOptions {
    /// Whether the entry's host list is served by role-aware routing (per-host pools,
    /// health checks, failover following) rather than PgBouncer's plain host rotation.
    pub fn is_role_aware(&self) -> bool {
        self.read_write_split || self.target_session_attrs != TargetSessionAttrs::Any
    }
}

/// Parses one routing key into `routing`; any other key is an unknown parameter.
pub fn parse_routing_key(
    routing: &mut RoutingOptions,
    key: &str,
    value: &str,
) -> Result<(), ConfigErrorKind> {
    let seconds = |value: &str| {
        parse_seconds(value).ok_or_else(|| invalid(key, value, "a non-negative number of seconds"))
    };
    match key {
        "read_write_split" => {
            routing.read_write_split =
                parse_bool(value).ok_or_else(|| invalid(key, value, "on or off"))?;
        }
        "target_session_attrs" => {
            routing.target_session_attrs = TargetSessionAttrs::parse(value)
                .ok_or_else(|| invalid(key, value, &TargetSessionAttrs::NAMES.join(", ")))?;
        }
        "replica_selection" | "load_balance" => {
            routing.replica_selection = ReplicaSelection::parse(value)
                .ok_or_else(|| invalid(key, value, "round-robin or least-connections"))?;
        }
        "max_replica_lag" => routing.max_replica_lag = Some(seconds(value)?),
        "max_replica_lag_bytes" => {
            let bytes = parse_c_integer(value)
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| invalid(key, value, "a non-negative number of bytes"))?;
            routing.max_replica_lag_bytes = Some(bytes);
        }
        "replica_weights" => {
            routing.replica_weights = value
                .split(',')
                .map(|weight| parse_c_integer(weight.trim()).and_then(|w| u32::try_from(w).ok()))
                .collect::<Option<Vec<u32>>>()
                .ok_or_else(|| invalid(key, value, "a comma list of non-negative integers"))?;
        }
        "health_check_period" => {
            let period = seconds(value)?;
            if period < Duration::from_millis(10) {
                return Err(invalid(key, value, "at least 0.01 seconds"));
            }
            routing.health_check_period = period;
        }
        "ban_time" => routing.ban_time = seconds(value)?,
        "read_your_writes" => {
            routing.read_your_writes = match value.to_ascii_lowercase().as_str() {
                "lsn" | "on" => ReadYourWrites::Lsn,
                "off" | "0" => ReadYourWrites::Off,
                _ => ReadYourWrites::Window(
                    parse_seconds(value)
                        .ok_or_else(|| invalid(key, value, "lsn, off or a number of seconds"))?,
                ),
            };
        }
        "volatile_functions" => {
            routing.volatile_functions = value
                .split(',')
                .map(|f| f.trim().to_ascii_lowercase())
                .filter(|f| !f.is_empty())
                .collect();
        }
        _ => {
            return Err(ConfigErrorKind::UnrecognizedConnectionParameter {
                key: key.to_owned(),
            });
        }
    }
    Ok(())
}

/// `replica_weights` must give one weight per host when set.
pub fn check_weights(routing: &RoutingOptions, hosts: usize) -> Result<(), ConfigErrorKind> {
    let weights = routing.replica_weights.len();
    if weights != 0 && weights != hosts {
        let expected = format!("one weight per host ({hosts} hosts)");
        let texts: Vec<String> = routing.replica_weights.iter().map(u32::to_string).collect();
        return Err(invalid("replica_weights", &texts.join(","), &expected));
    }
    Ok(())
}

fn invalid(key: &str, value: &str, expected: &str) -> ConfigErrorKind {
    ConfigErrorKind::InvalidValue {
        key: key.to_owned(),
        value: value.to_owned(),
        expected: expected.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(pairs: &[(&str, &str)]) -> Result<RoutingOptions, ConfigErrorKind> {
        let mut routing = RoutingOptions::default();
        for (key, value) in pairs {
            parse_routing_key(&mut routing, key, value)?;
        }
        Ok(routing)
    }

    #[test]
    fn every_routing_key_parses() {
        let routing = parsed(&[
            ("read_write_split", "on"),
            ("target_session_attrs", "prefer-standby"),
            ("load_balance", "least-connections"),
            ("max_replica_lag", "2.5"),
            ("max_replica_lag_bytes", "16777216"),
            ("replica_weights", "0, 2,1"),
            ("health_check_period", "0.05"),
            ("ban_time", "30"),
            ("read_your_writes", "1.5"),
            ("volatile_functions", "Audit_Log, next_no,"),
        ])
        .unwrap();
        assert!(routing.read_write_split && routing.is_role_aware());
        assert!(routing.target_session_attrs.is_standby_first());
        assert!(!routing.target_session_attrs.is_standby_only());
        assert_eq!(
            routing.replica_selection,
            ReplicaSelection::LeastConnections
        );
        assert_eq!(routing.max_replica_lag, Some(Duration::from_millis(2500)));
        assert_eq!(routing.max_replica_lag_bytes, Some(16 << 20));
        assert_eq!(routing.replica_weights, [0, 2, 1]);
        assert_eq!(routing.health_check_period, Duration::from_millis(50));
        assert_eq!(routing.ban_time, Duration::from_secs(30));
        assert_eq!(
            routing.read_your_writes,
            ReadYourWrites::Window(Duration::from_millis(1500))
        );
        assert_eq!(routing.volatile_functions, ["audit_log", "next_no"]);
        assert_eq!(
            parsed(&[("read_your_writes", "off")])
                .unwrap()
                .read_your_writes,
            ReadYourWrites::Off
        );
        assert_eq!(
            parsed(&[("read_your_writes", "LSN")])
                .unwrap()
                .read_your_writes,
            ReadYourWrites::Lsn
        );
        let defaults = RoutingOptions::default();
        assert!(!defaults.is_role_aware());
        assert_eq!(defaults.health_check_period, DEFAULT_HEALTH_CHECK_PERIOD);
    }

    #[test]
    fn bad_routing_values_name_the_key_and_what_is_expected() {
        for (key, value) in [
            ("read_write_split", "maybe"),
            ("target_session_attrs", "leader"),
            ("replica_selection", "random"),
            ("max_replica_lag", "-1"),
            ("max_replica_lag_bytes", "lots"),
            ("replica_weights", "1,x"),
            ("health_check_period", "0.001"),
            ("ban_time", "soon"),
            ("read_your_writes", "sometimes"),
        ] {
            match parsed(&[(key, value)]) {
                Err(ConfigErrorKind::InvalidValue {
                    key: k,
                    value: v,
                    expected,
                }) => {
                    assert_eq!((k.as_str(), v.as_str()), (key, value));
                    assert!(!expected.is_empty());
                }
                other => panic!("{key}={value}: {other:?}"),
            }
        }
        assert!(matches!(
            parsed(&[("replica_wieghts", "1")]),
            Err(ConfigErrorKind::UnrecognizedConnectionParameter { .. })
        ));
        let weights = RoutingOptions {
            replica_weights: vec![1, 2],
            ..RoutingOptions::default()
        };
        assert!(check_weights(&weights, 3).is_err());
        assert!(check_weights(&weights, 2).is_ok());
    }
}
