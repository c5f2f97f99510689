//! `[databases]`, `[users]` and `[peers]` entries: the libpq-like `key=value` parser of
//! PgBouncer's `loader.c` and the typed entries built from it.
//!
//! Integers in these sections are read with C `atoi` by PgBouncer (`pool_size=20x` is 20); pooler
//! reads them the same way but warns when the text was not a clean integer.

use std::fmt;
use std::time::Duration;

use super::keys::PoolMode;
use super::routing::RoutingOptions;
use super::{ConfigErrorKind, ConfigWarningKind};

/// The database name reserved for the admin console.
pub const ADMIN_DATABASE: &str = "pgbouncer";
/// The `[databases]` name of the fallback entry.
pub const FALLBACK_DATABASE: &str = "*";
/// Default server port of a `[databases]` entry.
pub const DEFAULT_SERVER_PORT: u16 = 5432;
/// Default port of a `[peers]` entry.
pub const DEFAULT_PEER_PORT: u16 = 6432;

/// A password from the config; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Self {
        Password(password.into())
    }

    /// The password itself; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

choice_enum! {
    /// `load_balance_hosts` of a `[databases]` entry with a host list.
    LoadBalanceHosts default RoundRobin {
        /// Rotate through the hosts for each new connection.
        RoundRobin = "round-robin",
        /// Try the hosts in order.
        Disable = "disable",
    }
}

/// One destination of a `host=` list: a host name, IP, `/dir` (Unix socket) or `@name`
/// (abstract socket), optionally with its own port (`host:port`, `[v6]:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// Host, IP (without brackets) or socket directory.
    pub host: String,
    /// Port for this host; `None` = the entry's `port=`.
    pub port: Option<u16>,
}

impl HostSpec {
    /// Whether this is a Unix-domain socket (`/dir` or abstract `@name`).
    pub fn is_unix_socket(&self) -> bool {
        self.host.starts_with('/') || self.host.starts_with('@')
    }
}

/// A `[databases]` entry. `None` means "not set here": the global value or a default applies.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseConfig {
    /// The name clients connect to (`*` for the fallback entry).
    pub name: String,
    /// `dbname`: database on the server; `None` = same as `name` (the client's for `*`).
    pub dbname: Option<String>,
    /// `host`: destinations in order; empty = Unix socket in the default directory.
    pub hosts: Vec<HostSpec>,
    /// `port`, for hosts without their own port.
    pub port: u16,
    /// `user`: forced server user (one pool for the database).
    pub user: Option<String>,
    /// `password` of the forced user; else taken from auth_file.
    pub password: Option<Password>,
    /// `auth_user` override.
    pub auth_user: Option<String>,
    /// `auth_query` override.
    pub auth_query: Option<String>,
    /// `auth_dbname` override.
    pub auth_dbname: Option<String>,
    /// `pool_size` override.
    pub pool_size: Option<u32>,
    /// `min_pool_size` override.
    pub min_pool_size: Option<u32>,
    /// `reserve_pool_size` (alias `reserve_pool`) override.
    pub reserve_pool_size: Option<u32>,
    /// `max_db_connections` override (0 = use the global value).
    pub max_db_connections: Option<u32>,
    /// `max_db_client_connections` override (0 = use the global value).
    pub max_db_client_connections: Option<u32>,
    /// `pool_mode` override.
    pub pool_mode: Option<PoolMode>,
    /// `query_wait_timeout` override (whole seconds).
    pub query_wait_timeout: Option<Duration>,
    /// `server_lifetime` override (whole seconds; 0 = use the global value).
    pub server_lifetime: Option<Duration>,
    /// `load_balance_hosts` for a host list.
    pub load_balance_hosts: LoadBalanceHosts,
    /// `connect_query`: SQL run on each new server connection.
    pub connect_query: Option<String>,
    /// `application_name` sent to the server.
    pub application_name: Option<String>,
    /// `client_encoding` startup parameter.
    pub client_encoding: Option<String>,
    /// `datestyle` startup parameter.
    pub datestyle: Option<String>,
    /// `timezone` startup parameter.
    pub timezone: Option<String>,
    /// pooler's read/write-split options.
    pub routing: RoutingOptions,
}

impl DatabaseConfig {
    /// An entry named `name` with every key unset.
    pub fn new(name: impl Into<String>) -> Self {
        DatabaseConfig {
            name: name.into(),
            dbname: None,
            hosts: Vec::new(),
            port: DEFAULT_SERVER_PORT,
            user: None,
            password: None,
            auth_user: None,
            auth_query: None,
            auth_dbname: None,
            pool_size: None,
            min_pool_size: None,
            reserve_pool_size: None,
            max_db_connections: None,
            max_db_client_connections: None,
            pool_mode: None,
            query_wait_timeout: None,
            server_lifetime: None,
            load_balance_hosts: LoadBalanceHosts::default(),
            connect_query: None,
            application_name: None,
            client_encoding: None,
            datestyle: None,
            timezone: None,
            routing: RoutingOptions::default(),
        }
    }

    /// The database name to send to the server.
    pub fn server_dbname(&self) -> &str {
        self.dbname.as_deref().unwrap_or(&self.name)
    }
}

/// A `[users]` entry: per-user overrides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserConfig {
    /// `pool_size` override (beats the database's).
    pub pool_size: Option<u32>,
    /// `reserve_pool_size` override.
    pub reserve_pool_size: Option<u32>,
    /// `pool_mode` override (beats the database's).
    pub pool_mode: Option<PoolMode>,
    /// `max_user_connections` override (0 = use the global value).
    pub max_user_connections: Option<u32>,
    /// `max_user_client_connections` override (0 = use the global value).
    pub max_user_client_connections: Option<u32>,
    /// `query_timeout` override (whole seconds; 0 = use the global value).
    pub query_timeout: Option<Duration>,
    /// `query_wait_timeout` override.
    pub query_wait_timeout: Option<Duration>,
    /// `idle_transaction_timeout` override.
    pub idle_transaction_timeout: Option<Duration>,
    /// `transaction_timeout` override.
    pub transaction_timeout: Option<Duration>,
    /// `client_idle_timeout` override.
    pub client_idle_timeout: Option<Duration>,
}

/// A `[peers]` entry: another process of an `so_reuseport` group, for cancel forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The key: peer id, 1..=65535.
    pub peer_id: u16,
    /// `host` (required).
    pub host: String,
    /// `port`, default 6432.
    pub port: u16,
    /// `pool_size` for cancel connections to this peer.
    pub pool_size: Option<u32>,
}

/// An entry parse: the value plus any leniency warnings, or the first error (PgBouncer stops
/// at the first bad key of an entry too).
pub type EntryResult<T> = Result<(T, Vec<ConfigWarningKind>), ConfigErrorKind>;

/// Splits a connection string into `(key, value)` pairs. A key ends at `=` or a space; a value
/// is unquoted up to the next space, or single-quoted with `''` for a quote. Empty values are
/// an error. The error is a short reason; it never echoes the text (it may hold a password).
pub fn parse_pairs(text: &str) -> Result<Vec<(String, String)>, &'static str> {
    let mut pairs = Vec::new();
    let mut rest = text.trim_ascii_start();
    while !rest.is_empty() {
        let key_end = rest.find(['=', ' ']).unwrap_or(rest.len());
        let (key, after_key) = rest.split_at(key_end);
        if key.is_empty() {
            return Err("empty parameter name");
        }
        let after_eq = after_key
            .trim_ascii_start()
            .strip_prefix('=')
            .ok_or("expected '=' after a parameter name")?
            .trim_ascii_start();
        let (value, after_value) = if let Some(quoted) = after_eq.strip_prefix('\'') {
            split_quoted(quoted)?
        } else {
            let end = after_eq.find(' ').unwrap_or(after_eq.len());
            let (value, after) = after_eq.split_at(end);
            (value.to_owned(), after)
        };
        if value.is_empty() {
            return Err("empty value");
        }
        if !after_value.is_empty() && !after_value.starts_with(|c: char| c.is_ascii_whitespace()) {
            return Err("text right after a quoted value");
        }
        pairs.push((key.to_owned(), value));
        rest = after_value.trim_ascii_start();
    }
    Ok(pairs)
}

/// Reads a single-quoted value after its opening quote; `''` is a literal quote.
fn split_quoted(text: &str) -> Result<(String, &str), &'static str> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((index, c)) = chars.next() {
        if c != '\'' {
            value.push(c);
            continue;
        }
        let after = text.get(index + 1..).unwrap_or("");
        if after.starts_with('\'') {
            value.push('\'');
            chars.next();
        } else {
            return Ok((value, after));
        }
    }
    Err("unterminated quoted value")
}

/// C `atoi`: optional sign and leading digits; junk after them is ignored. Returns the value
/// (clamped to the C `int` range) and whether the whole text was a clean integer.
fn atoi(text: &str) -> (i64, bool) {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let end = unsigned
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(unsigned.len());
    let magnitude = unsigned
        .get(..end)
        .unwrap_or("")
        .bytes()
        .fold(0_i64, |acc, digit| {
            (acc * 10 + i64::from(digit - b'0')).min(i64::from(i32::MAX))
        });
    let value = if negative { -magnitude } else { magnitude };
    (value, end > 0 && end == unsigned.len())
}

/// Reads the typed values of one entry, collecting leniency warnings.
struct Values {
    warnings: Vec<ConfigWarningKind>,
}

impl Values {
    fn integer(&mut self, key: &str, value: &str) -> i64 {
        let (parsed, is_clean) = atoi(value);
        if !is_clean {
            self.warnings.push(ConfigWarningKind::LenientInteger {
                key: key.to_owned(),
                value: value.to_owned(),
                parsed,
            });
        }
        parsed
    }

    /// A count; negative is PgBouncer's "not set" (-1).
    fn count(&mut self, key: &str, value: &str) -> Option<u32> {
        u32::try_from(self.integer(key, value)).ok()
    }

    fn whole_seconds(&mut self, key: &str, value: &str) -> Result<Duration, ConfigErrorKind> {
        u64::try_from(self.integer(key, value))
            .map(Duration::from_secs)
            .map_err(|_| invalid(key, value, "a non-negative number of seconds"))
    }

    fn port(&mut self, value: &str) -> Result<u16, ConfigErrorKind> {
        u16::try_from(self.integer("port", value))
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(|| ConfigErrorKind::InvalidPort {
                value: value.to_owned(),
            })
    }
}

fn invalid(key: &str, value: &str, expected: &str) -> ConfigErrorKind {
    ConfigErrorKind::InvalidValue {
        key: key.to_owned(),
        value: value.to_owned(),
        expected: expected.to_owned(),
    }
}

fn pool_mode(value: &str) -> Result<PoolMode, ConfigErrorKind> {
    PoolMode::parse(value)
        .ok_or_else(|| invalid("pool_mode", value, "session, transaction or statement"))
}

fn syntax(section: &'static str, detail: &'static str) -> ConfigErrorKind {
    ConfigErrorKind::ConnectionStringSyntax { section, detail }
}

/// Parses a `[databases]` entry `name = connstr` (also the `*` fallback).
pub fn parse_database(name: &str, connstr: &str) -> EntryResult<DatabaseConfig> {
    if name == ADMIN_DATABASE {
        return Err(ConfigErrorKind::ReservedDatabase {
            name: name.to_owned(),
        });
    }
    let pairs = parse_pairs(connstr).map_err(|detail| syntax("connection string", detail))?;
    let mut values = Values {
        warnings: Vec::new(),
    };
    let mut db = DatabaseConfig::new(name);
    for (key, value) in pairs {
        match key.as_str() {
            "dbname" => db.dbname = Some(value),
            "host" => db.hosts = parse_hosts(&value)?,
            "port" => db.port = values.port(&value)?,
            "user" => db.user = Some(value),
            "password" => db.password = Some(Password(value)),
            "auth_user" => db.auth_user = Some(value),
            "auth_query" => db.auth_query = Some(value),
            "auth_dbname" => db.auth_dbname = Some(value),
            "pool_size" => db.pool_size = values.count(&key, &value),
            "min_pool_size" => db.min_pool_size = values.count(&key, &value),
            "reserve_pool" | "reserve_pool_size" => {
                db.reserve_pool_size = values.count(&key, &value);
            }
            "max_db_connections" => db.max_db_connections = values.count(&key, &value),
            "max_db_client_connections" => {
                db.max_db_client_connections = values.count(&key, &value);
            }
            "pool_mode" => db.pool_mode = Some(pool_mode(&value)?),
            "query_wait_timeout" => {
                db.query_wait_timeout = Some(values.whole_seconds(&key, &value)?);
            }
            "server_lifetime" => db.server_lifetime = Some(values.whole_seconds(&key, &value)?),
            "load_balance_hosts" => {
                db.load_balance_hosts = LoadBalanceHosts::parse(&value)
                    .ok_or_else(|| invalid(&key, &value, "round-robin or disable"))?;
            }
            "connect_query" => db.connect_query = Some(value),
            "application_name" => db.application_name = Some(value),
            "client_encoding" => db.client_encoding = Some(value),
            "datestyle" => db.datestyle = Some(value),
            "timezone" => db.timezone = Some(value),
            _ => super::routing::parse_routing_key(&mut db.routing, &key, &value)?,
        }
    }
    super::routing::check_weights(&db.routing, db.hosts.len())?;
    Ok((db, values.warnings))
}

/// Parses a `host=` value: a comma list of `host`, `host:port`, `[ipv6]:port`, `/dir`, `@name`.
pub fn parse_hosts(value: &str) -> Result<Vec<HostSpec>, ConfigErrorKind> {
    value
        .split(',')
        .map(|item| {
            parse_host(item.trim()).ok_or_else(|| {
                invalid(
                    "host",
                    value,
                    "a comma list of host, host:port or [ipv6]:port",
                )
            })
        })
        .collect()
}

fn parse_host(item: &str) -> Option<HostSpec> {
    let spec = |host: &str, port| {
        (!host.is_empty()).then(|| HostSpec {
            host: host.to_owned(),
            port,
        })
    };
    if item.starts_with('/') || item.starts_with('@') {
        return spec(item, None);
    }
    if let Some(bracketed) = item.strip_prefix('[') {
        let (address, after) = bracketed.split_once(']')?;
        return match after {
            "" => spec(address, None),
            _ => spec(address, Some(strict_port(after.strip_prefix(':')?)?)),
        };
    }
    match item.split_once(':') {
        // Exactly one colon: host:port. More colons: a bare IPv6 address.
        Some((host, port)) if !port.contains(':') => spec(host, Some(strict_port(port)?)),
        _ => spec(item, None),
    }
}

fn strict_port(text: &str) -> Option<u16> {
    text.parse::<u16>().ok().filter(|port| *port != 0)
}

/// Parses a `[users]` entry.
pub fn parse_user(connstr: &str) -> EntryResult<UserConfig> {
    let pairs = parse_pairs(connstr).map_err(|detail| syntax("user settings", detail))?;
    let mut values = Values {
        warnings: Vec::new(),
    };
    let mut user = UserConfig::default();
    for (key, value) in pairs {
        let key = key.as_str();
        match key {
            "pool_size" => user.pool_size = values.count(key, &value),
            "reserve_pool_size" => user.reserve_pool_size = values.count(key, &value),
            "pool_mode" => user.pool_mode = Some(pool_mode(&value)?),
            "max_user_connections" => user.max_user_connections = values.count(key, &value),
            "max_user_client_connections" => {
                user.max_user_client_connections = values.count(key, &value);
            }
            "query_timeout" => user.query_timeout = Some(values.whole_seconds(key, &value)?),
            "query_wait_timeout" => {
                user.query_wait_timeout = Some(values.whole_seconds(key, &value)?);
            }
            "idle_transaction_timeout" => {
                user.idle_transaction_timeout = Some(values.whole_seconds(key, &value)?);
            }
            "transaction_timeout" => {
                user.transaction_timeout = Some(values.whole_seconds(key, &value)?);
            }
            "client_idle_timeout" => {
                user.client_idle_timeout = Some(values.whole_seconds(key, &value)?);
            }
            _ => {
                return Err(ConfigErrorKind::UnrecognizedUserParameter {
                    key: key.to_owned(),
                });
            }
        }
    }
    Ok((user, values.warnings))
}

/// Parses a `[peers]` entry `<peer_id> = host=... port=... pool_size=...`.
pub fn parse_peer(name: &str, connstr: &str) -> EntryResult<PeerConfig> {
    let peer_id = name
        .parse::<u16>()
        .ok()
        .filter(|id| *id != 0)
        .ok_or_else(|| ConfigErrorKind::InvalidPeerId {
            name: name.to_owned(),
        })?;
    let pairs = parse_pairs(connstr).map_err(|detail| syntax("connection string", detail))?;
    let mut values = Values {
        warnings: Vec::new(),
    };
    let (mut host, mut port, mut pool_size) = (None, DEFAULT_PEER_PORT, None);
    for (key, value) in pairs {
        match key.as_str() {
            "host" => host = Some(value),
            "port" => port = values.port(&value)?,
            "pool_size" => pool_size = values.count(&key, &value),
            _ => return Err(ConfigErrorKind::UnrecognizedConnectionParameter { key }),
        }
    }
    let host = host.ok_or(ConfigErrorKind::PeerHostMissing { peer_id })?;
    let peer = PeerConfig {
        peer_id,
        host,
        port,
        pool_size,
    };
    Ok((peer, values.warnings))
}
