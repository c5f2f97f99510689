//! Sidecar shortcut: a whole [`Config`] from one `postgres://` URL and a listen address, for
//! running pooler next to one application without any ini file.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use protocol::pg::auth::StoredSecret;

use super::connstr::{DatabaseConfig, FALLBACK_DATABASE, HostSpec, LoadBalanceHosts, parse_hosts};
use super::keys::{self, AuthType, General, PoolMode, Settings};
use super::{
    Config, ConfigError, ConfigErrorKind, ConfigWarning, ConfigWarningKind, Loaded,
    TargetSessionAttrs, UserSecrets,
};

/// The pseudo file name errors and warnings of sidecar mode are reported against.
pub const SIDECAR_SOURCE: &str = "<database-url>";

/// Arguments of sidecar mode. `Debug` hides the URL, which usually holds a password.
///
/// Authentication: the application connects to pooler with the same user and password as in
/// the URL. That user and its **plain-text** password go into [`Config::static_users`] (the
/// in-memory userlist), and `auth_type` defaults to `md5`: every driver supports MD5, PgBouncer's
/// md5 mode also serves SCRAM when the stored secret is SCRAM, and because pooler holds the
/// plain password it can log into the server with whatever the server demands (md5 or SCRAM).
/// Pass `auth_type = Some(AuthType::ScramSha256)` to require SCRAM from the application. A URL
/// without a password gives `trust` (the server presumably trusts this client too).
#[derive(Clone)]
pub struct SidecarArgs {
    /// `postgres://user:password@host:port/db?params` (also `postgresql://`; hosts may be a
    /// comma list, IPv6 in brackets, port defaults to 5432; values percent-decoded).
    pub database_url: String,
    /// Where pooler listens: `HOST:PORT`, `[IPV6]:PORT`, `*:PORT`, or `PORT` (on 127.0.0.1).
    pub listen: String,
    /// `pool_mode`; default `session` (PgBouncer's default).
    pub pool_mode: Option<PoolMode>,
    /// `default_pool_size`; default 20.
    pub pool_size: Option<u32>,
    /// `min_pool_size`; default 0.
    pub min_pool_size: Option<u32>,
    /// `max_client_conn`; default 100.
    pub max_client_conn: Option<u32>,
    /// Client authentication; default `md5` (or `trust` without a password), see above.
    pub auth_type: Option<AuthType>,
    /// The database name applications use; default: the URL's database.
    pub database_name: Option<String>,
    /// Also serve other database names on the same server (a `*` entry). Default true.
    pub allow_other_databases: bool,
    /// `metrics_addr` of the Prometheus/health endpoint; default off.
    pub metrics_addr: Option<String>,
}

impl SidecarArgs {
    /// Arguments with every option at its default.
    pub fn new(database_url: impl Into<String>, listen: impl Into<String>) -> Self {
        SidecarArgs {
            database_url: database_url.into(),
            listen: listen.into(),
            pool_mode: None,
            pool_size: None,
            min_pool_size: None,
            max_client_conn: None,
            auth_type: None,
            database_name: None,
            allow_other_databases: true,
            metrics_addr: None,
        }
    }
}

impl fmt::Debug for SidecarArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SidecarArgs")
            .field("database_url", &"<redacted>")
            .field("listen", &self.listen)
            .field("pool_mode", &self.pool_mode)
            .field("pool_size", &self.pool_size)
            .field("auth_type", &self.auth_type)
            .field("database_name", &self.database_name)
            .finish_non_exhaustive()
    }
}

/// The parts of a database URL. `Debug` is not derived: it holds the password.
#[derive(Clone, Default)]
pub struct DatabaseUrl {
    /// User name.
    pub user: Option<String>,
    /// Password, decoded.
    pub password: Option<String>,
    /// Hosts; empty = the default Unix socket.
    pub hosts: Vec<HostSpec>,
    /// Port from `?port=` (hosts may carry their own).
    pub port: Option<u16>,
    /// Database name.
    pub dbname: Option<String>,
    /// Other query parameters, decoded, in order.
    pub params: Vec<(String, String)>,
}

fn url_error(reason: impl Into<String>) -> ConfigErrorKind {
    ConfigErrorKind::InvalidUrl {
        reason: reason.into(),
    }
}

/// Parses `postgres[ql]://[user[:password]@][host[:port][,...]][/dbname][?k=v&...]`.
/// Errors never echo the URL (it holds the password).
pub fn parse_database_url(url: &str) -> Result<DatabaseUrl, ConfigErrorKind> {
    let rest = ["postgresql://", "postgres://"]
        .iter()
        .find_map(|scheme| {
            url.get(..scheme.len())
                .filter(|prefix| prefix.eq_ignore_ascii_case(scheme))
                .and_then(|_| url.get(scheme.len()..))
        })
        .ok_or_else(|| url_error("it must start with postgres:// or postgresql://"))?;
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = before_query.split_once('/').unwrap_or((before_query, ""));
    let mut parsed = DatabaseUrl::default();
    let host_list = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            parsed.user = Some(percent_decode(user)?).filter(|u| !u.is_empty());
            parsed.password = password.map(percent_decode).transpose()?;
            hosts
        }
        None => authority,
    };
    if !host_list.is_empty() {
        parsed.hosts = parse_url_hosts(host_list)?;
    }
    parsed.dbname = Some(percent_decode(path)?).filter(|db| !db.is_empty());
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| url_error("a query parameter has no '='"))?;
        let (key, value) = (percent_decode(key)?, percent_decode(value)?);
        match key.as_str() {
            "user" => parsed.user = Some(value),
            "password" => parsed.password = Some(value),
            "dbname" => parsed.dbname = Some(value),
            "host" => {
                parsed.hosts =
                    parse_hosts(&value).map_err(|_| url_error("invalid host= parameter"))?
            }
            "port" => parsed.port = Some(parse_port(&value)?),
            _ => parsed.params.push((key, value)),
        }
    }
    Ok(parsed)
}

fn parse_port(text: &str) -> Result<u16, ConfigErrorKind> {
    text.parse::<u16>()
        .ok()
        .filter(|port| *port != 0)
        .ok_or_else(|| url_error(format!("invalid port \"{text}\"")))
}

/// `host[:port]` or `[ipv6][:port]` items separated by commas, each percent-decoded.
fn parse_url_hosts(list: &str) -> Result<Vec<HostSpec>, ConfigErrorKind> {
    list.split(',')
        .map(|item| {
            let (host, port) = if let Some(bracketed) = item.strip_prefix('[') {
                let (address, after) = bracketed
                    .split_once(']')
                    .ok_or_else(|| url_error("unterminated [ in host"))?;
                match after.strip_prefix(':') {
                    Some(port) => (address, Some(parse_port(port)?)),
                    None if after.is_empty() => (address, None),
                    None => return Err(url_error("text after ] in host")),
                }
            } else {
                match item.split_once(':') {
                    Some((host, port)) => (host, Some(parse_port(port)?)),
                    None => (item, None),
                }
            };
            let host = percent_decode(host)?;
            if host.is_empty() {
                return Err(url_error("empty host in host list"));
            }
            Ok(HostSpec { host, port })
        })
        .collect()
}

/// Decodes `%XY` escapes (`+` stays a plus, as in libpq); the result must be UTF-8.
fn percent_decode(text: &str) -> Result<String, ConfigErrorKind> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let hex = bytes
                .get(index + 1..index + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| url_error("invalid percent-encoding"))?;
            out.push(hex);
            index += 3;
        } else {
            out.push(byte);
            index += 1;
        }
    }
    String::from_utf8(out).map_err(|_| url_error("percent-encoding does not decode to UTF-8"))
}

/// Splits the listen argument into (`listen_addr`, `listen_port`).
fn parse_listen(listen: &str) -> Result<(String, String), ConfigErrorKind> {
    let invalid = || ConfigErrorKind::InvalidValue {
        key: "listen".to_owned(),
        value: listen.to_owned(),
        expected: "HOST:PORT, [IPV6]:PORT, *:PORT or PORT".to_owned(),
    };
    let (host, port) = match listen.rsplit_once(':') {
        Some((host, port)) => {
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            (host, port)
        }
        None => ("127.0.0.1", listen),
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(invalid)?;
    if host.is_empty() {
        return Err(invalid());
    }
    Ok((host.to_owned(), port.to_string()))
}

/// Builds the sidecar [`Config`]: one database entry (named after the URL's database) on the
/// URL's server, optionally a `*` entry for other names on the same server, the URL's user in
/// the in-memory userlist, no Unix socket. Runs [`Config::validate`].
pub fn sidecar_config(args: &SidecarArgs) -> Result<Loaded, Vec<ConfigError>> {
    let source = PathBuf::from(SIDECAR_SOURCE);
    let fail = |kind| vec![ConfigError::new(source.clone(), None, kind)];
    let url = parse_database_url(&args.database_url).map_err(fail)?;
    let user = url
        .user
        .clone()
        .ok_or_else(|| fail(url_error("it has no user name")))?;
    let (listen_addr, listen_port) = parse_listen(&args.listen).map_err(fail)?;
    let auth_type = args.auth_type.unwrap_or(if url.password.is_some() {
        AuthType::Md5
    } else {
        AuthType::Trust
    });

    let mut settings: Settings = keys::default_settings();
    let mut set = |key: &'static str, value: String| settings.insert(key, Some(value));
    set("listen_addr", listen_addr);
    set("listen_port", listen_port);
    set("unix_socket_dir", String::new());
    set("auth_type", auth_type.to_string());
    // pgjdbc sends extra_float_digits at startup; the example pgbouncer.ini ignores it too.
    set("ignore_startup_parameters", "extra_float_digits".to_owned());
    if let Some(mode) = args.pool_mode {
        set("pool_mode", mode.to_string());
    }
    for (key, value) in [
        ("default_pool_size", args.pool_size),
        ("min_pool_size", args.min_pool_size),
        ("max_client_conn", args.max_client_conn),
    ] {
        if let Some(value) = value {
            set(key, value.to_string());
        }
    }
    if let Some(addr) = &args.metrics_addr {
        set("metrics_addr", addr.clone());
    }

    let dbname = url.dbname.clone().unwrap_or_else(|| user.clone());
    let name = args.database_name.clone().unwrap_or_else(|| dbname.clone());
    let mut db = DatabaseConfig::new(name.clone());
    db.dbname = Some(dbname);
    db.hosts = url.hosts.clone();
    if let Some(port) = url.port {
        db.port = port;
    }
    let mut warnings = Vec::new();
    for (key, value) in &url.params {
        let mut apply = || -> Result<bool, ConfigErrorKind> {
            match key.as_str() {
                "application_name" => db.application_name = Some(value.clone()),
                "client_encoding" => db.client_encoding = Some(value.clone()),
                "sslmode" => {
                    set("server_tls_sslmode", value.clone());
                }
                "connect_timeout" => {
                    set("server_connect_timeout", value.clone());
                }
                "target_session_attrs" => {
                    db.routing.target_session_attrs =
                        TargetSessionAttrs::parse(value).ok_or_else(|| {
                            url_error(format!("invalid target_session_attrs \"{value}\""))
                        })?;
                }
                "load_balance_hosts" => {
                    db.load_balance_hosts = match value.as_str() {
                        "disable" => LoadBalanceHosts::Disable,
                        "random" | "round-robin" => LoadBalanceHosts::RoundRobin,
                        _ => {
                            return Err(url_error(format!(
                                "invalid load_balance_hosts \"{value}\""
                            )));
                        }
                    };
                }
                _ => return Ok(false),
            }
            Ok(true)
        };
        if !apply().map_err(fail)? {
            let kind = ConfigWarningKind::UrlParameterIgnored { name: key.clone() };
            warnings.push(ConfigWarning::new(source.clone(), None, kind));
        }
    }

    let (general, setting_errors) = General::from_settings(&settings);
    if !setting_errors.is_empty() {
        return Err(setting_errors
            .into_iter()
            .map(|error| {
                let kind = ConfigErrorKind::InvalidValue {
                    key: error.key.to_owned(),
                    value: error.value,
                    expected: error.error.expected,
                };
                ConfigError::new(source.clone(), None, kind)
            })
            .collect());
    }
    let fallback_database = args.allow_other_databases.then(|| {
        let mut fallback = db.clone();
        fallback.name = FALLBACK_DATABASE.to_owned();
        fallback.dbname = None;
        fallback
    });
    let password = url.password.clone().unwrap_or_default();
    let static_users: UserSecrets = BTreeMap::from([(user, StoredSecret::Plain(password))]);
    let config = Config {
        general,
        settings,
        databases: BTreeMap::from([(name, db)]),
        fallback_database,
        users: BTreeMap::new(),
        peers: BTreeMap::new(),
        static_users,
        origins: BTreeMap::new(),
        source: source.clone(),
    };
    warnings.extend(config.validate()?);
    Ok(Loaded { config, warnings })
}
