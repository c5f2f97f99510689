//! The `[pgbouncer]` key table (every key of PgBouncer master plus pooler's own, with default,
//! type, reload flag and implementation status) and the typed [`General`] built from it.

use std::collections::BTreeMap;
use std::time::Duration;

pub use super::setting::{
    KeySpec, Reload, SettingError, SettingValue, Support, ValueError, ValueKind, parse_bool,
    parse_c_integer, parse_seconds, split_list,
};

/// Raw effective value of every `[pgbouncer]` key, by name; `None` is "unset" (SHOW CONFIG's
/// NULL). [`General::from_settings`] turns it into typed values.
pub type Settings = BTreeMap<&'static str, Option<String>>;

/// PgBouncer's default `auth_query`.
pub const DEFAULT_AUTH_QUERY: &str = "SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END FROM pg_authid WHERE rolname=$1 AND rolcanlogin";

/// `tcp_defer_accept` defaults to 1 where `TCP_DEFER_ACCEPT` exists (Linux), else 0.
const DEFAULT_TCP_DEFER_ACCEPT: &str = if cfg!(target_os = "linux") { "1" } else { "0" };

choice_enum! {
    /// `pool_mode`: when a server connection goes back to the pool.
    PoolMode default Session {
        /// Released when the client disconnects.
        Session = "session",
        /// Released at the end of each transaction.
        Transaction = "transaction",
        /// Released after each statement; transaction blocks are refused.
        Statement = "statement",
    }
}

choice_enum! {
    /// `auth_type`: how clients authenticate. pooler implements `any`, `trust`, `plain`, `md5`
    /// and `scram-sha-256`; the others are accepted by the parser and refused by `validate()`.
    AuthType default Md5 {
        /// No authentication; the user name is ignored.
        Any = "any",
        /// No password, but the user must exist in auth_file.
        Trust = "trust",
        /// Clear-text password (deprecated).
        Plain = "plain",
        /// MD5, or SCRAM when the stored secret is a SCRAM secret.
        Md5 = "md5",
        /// SCRAM-SHA-256.
        ScramSha256 = "scram-sha-256",
        /// TLS client certificate.
        Cert = "cert",
        /// Per-connection method from auth_hba_file.
        Hba = "hba",
        /// LDAP (PgBouncer 1.25).
        Ldap = "ldap",
        /// PAM.
        Pam = "pam",
    }
}

impl AuthType {
    /// Whether pooler implements this method.
    pub fn is_supported(self) -> bool {
        matches!(
            self,
            AuthType::Any
                | AuthType::Trust
                | AuthType::Plain
                | AuthType::Md5
                | AuthType::ScramSha256
        )
    }
}

choice_enum! {
    /// `client_tls_sslmode` / `server_tls_sslmode`.
    SslMode default Disable {
        /// No TLS.
        Disable = "disable",
        /// TLS if the other side asks.
        Allow = "allow",
        /// TLS if possible.
        Prefer = "prefer",
        /// TLS required, no certificate check.
        Require = "require",
        /// TLS required, certificate chain checked.
        VerifyCa = "verify-ca",
        /// TLS required, chain and host name checked.
        VerifyFull = "verify-full",
    }
}

impl SslMode {
    /// Whether plaintext is refused (`require` and stricter).
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }
}

choice_enum! {
    /// `log_format` (pooler extension).
    LogFormat default Text {
        /// Human-readable lines.
        Text = "text",
        /// One JSON object per line.
        Json = "json",
    }
}

/// Declares the key table and [`General`] from one list so they cannot drift apart.
macro_rules! general_keys {
    ($($name:ident: $ty:ty = $default:expr, $reload:ident, $support:ident, $doc:literal;)*) => {
        /// Typed value of every `[pgbouncer]` key (see [`KEYS`] for defaults and status).
        /// Times are `Duration`s where 0 means "disabled" unless the key's doc says otherwise.
        #[derive(Debug, Clone, PartialEq)]
        pub struct General {
            $(#[doc = $doc] pub $name: $ty,)*
        }

        /// Every `[pgbouncer]` key in alphabetical order (PgBouncer's SHOW CONFIG order, with
        /// pooler's extension keys merged in).
        pub static KEYS: &[KeySpec] = &[$(KeySpec {
            name: stringify!($name),
            default: $default,
            kind: <$ty as SettingValue>::KIND,
            reload: Reload::$reload,
            support: Support::$support,
            doc: $doc,
        },)*];

        impl General {
            /// Parses every key from `settings` (missing keys take their default). A value
            /// that does not parse is reported and replaced by the key's default.
            pub fn from_settings(settings: &Settings) -> (General, Vec<SettingError>) {
                let mut errors = Vec::new();
                let general = General {$($name: {
                    let raw = match settings.get(stringify!($name)) {
                        Some(value) => value.as_deref(),
                        None => $default,
                    };
                    <$ty as SettingValue>::parse_setting(raw).unwrap_or_else(|error| {
                        errors.push(SettingError {
                            key: stringify!($name),
                            value: raw.unwrap_or_default().to_owned(),
                            error,
                        });
                        <$ty as SettingValue>::parse_setting($default).unwrap_or_default()
                    })
                },)*};
                (general, errors)
            }
        }

        /// Checks that `raw` parses for `key` (unknown keys pass: see [`lookup`]).
        pub fn check_value(key: &str, raw: &str) -> Result<(), ValueError> {
            match key {
                $(stringify!($name) => <$ty as SettingValue>::parse_setting(Some(raw)).map(drop),)*
                _ => Ok(()),
            }
        }

        /// Whether `raw` means the same as `key`'s default once parsed (`0x10` = `16`).
        pub fn is_default_value(key: &str, raw: &str) -> bool {
            match key {
                $(stringify!($name) => same_as_default::<$ty>(raw, $default),)*
                _ => false,
            }
        }
    };
}

fn same_as_default<T: SettingValue>(raw: &str, default: Option<&str>) -> bool {
    matches!(
        (T::parse_setting(Some(raw)), T::parse_setting(default)),
        (Ok(value), Ok(default)) if value == default
    )
}

general_keys! {
    admin_users: Vec<String> = Some(""), Online, Implemented, "Users allowed every admin console command (comma list).";
    application_name_add_host: bool = Some("0"), Online, Planned, "Append the client address and port to application_name.";
    auth_dbname: Option<String> = None, Online, Implemented, "Database auth_query runs in (default: the client's database).";
    auth_file: Option<String> = None, Online, Implemented, "userlist.txt with user names and secrets; relative to the config file's directory.";
    auth_hba_file: String = Some(""), Online, Planned, "pg_hba.conf-style file for auth_type = hba.";
    auth_ident_file: Option<String> = None, Online, Planned, "pg_ident.conf-style map for auth_type = hba.";
    auth_ldap_options: Option<String> = None, Online, Planned, "LDAP options for auth_type = ldap.";
    auth_query: String = Some(DEFAULT_AUTH_QUERY), Online, Implemented, "Query returning (user, secret) for users missing from auth_file.";
    auth_type: AuthType = Some("md5"), Online, Implemented, "Client authentication method.";
    auth_user: Option<String> = None, Online, Implemented, "User that runs auth_query.";
    autodb_idle_timeout: Duration = Some("3600"), Online, Planned, "Seconds after which an unused database created from the `*` entry is freed.";
    cancel_wait_timeout: Duration = Some("10"), Online, Planned, "Seconds a cancel request may wait for a server connection.";
    client_idle_timeout: Duration = Some("0"), Online, Implemented, "Close client connections idle this many seconds.";
    client_login_timeout: Duration = Some("60"), Online, Implemented, "Close clients that do not finish logging in within this many seconds.";
    client_tls13_ciphers: Option<String> = None, Online, Planned, "TLS 1.3 cipher suites for clients.";
    client_tls_ca_file: String = Some(""), Online, Planned, "CA file for client certificates.";
    client_tls_cert_file: String = Some(""), Online, Planned, "Certificate presented to clients.";
    client_tls_ciphers: String = Some("default"), Online, Planned, "TLS 1.2 ciphers for clients.";
    client_tls_dheparams: String = Some("auto"), Online, Planned, "DHE parameters for clients.";
    client_tls_ecdhcurve: String = Some("auto"), Online, Planned, "ECDH curve for clients.";
    client_tls_key_file: String = Some(""), Online, Planned, "Private key for client_tls_cert_file.";
    client_tls_protocols: String = Some("secure"), Online, Planned, "TLS protocol versions for clients.";
    client_tls_sslmode: SslMode = Some("disable"), Online, Planned, "TLS mode towards clients.";
    conffile: Option<String> = None, Online, NoEffect, "The configuration file (informational; pooler fills it in).";
    default_pool_size: u32 = Some("20"), Online, Implemented, "Server connections per (database, user) pool; 0 = unlimited.";
    disable_pqexec: bool = Some("0"), Restart, Planned, "Refuse simple-protocol Query messages.";
    dns_max_ttl: Duration = Some("15"), Online, Planned, "Seconds a DNS answer is cached.";
    dns_nxdomain_ttl: Duration = Some("15"), Online, Planned, "Seconds a DNS failure is cached.";
    dns_zone_check_period: Duration = Some("0"), Online, Planned, "Seconds between DNS zone serial checks.";
    idle_transaction_timeout: Duration = Some("0"), Online, Implemented, "Close clients idle in a transaction this many seconds.";
    ignore_startup_parameters: Vec<String> = Some(""), Online, Implemented, "Startup parameters accepted and ignored (comma list).";
    job_name: String = Some("pgbouncer"), Restart, Implemented, "Name used in logs.";
    listen_addr: Vec<String> = Some(""), Restart, Implemented, "TCP addresses to listen on (comma list, `*` = all); empty = Unix socket only.";
    listen_backlog: u32 = Some("128"), Restart, Implemented, "listen(2) backlog.";
    listen_port: u16 = Some("6432"), Restart, Implemented, "TCP port, also names the Unix socket `.s.PGSQL.<port>`.";
    log_connections: bool = Some("1"), Online, Implemented, "Log successful logins.";
    log_disconnections: bool = Some("1"), Online, Implemented, "Log disconnections with reasons.";
    log_format: LogFormat = Some("text"), Restart, Extension, "pooler: log line format, `text` or `json`.";
    log_pooler_errors: bool = Some("1"), Online, Implemented, "Log errors the pooler sends to clients.";
    log_stats: bool = Some("1"), Online, Implemented, "Log aggregated statistics every stats_period.";
    logfile: String = Some(""), Online, Implemented, "Log file (in addition to stderr); empty = none.";
    login_notify_message: String = Some(""), Online, Planned, "NOTICE sent to every client after login.";
    max_client_conn: u32 = Some("100"), Online, Implemented, "Maximum client connections.";
    max_db_client_connections: u32 = Some("0"), Online, Implemented, "Maximum client connections per database; 0 = unlimited.";
    max_db_connections: u32 = Some("0"), Online, Implemented, "Maximum server connections per database; 0 = unlimited.";
    max_packet_size: u32 = Some("2147483647"), Online, Implemented, "Largest accepted protocol message in bytes.";
    max_prepared_statements: u32 = Some("200"), Online, Implemented, "Prepared statements tracked per server connection in transaction/statement mode; 0 = off.";
    max_user_client_connections: u32 = Some("0"), Online, Implemented, "Maximum client connections per user; 0 = unlimited.";
    max_user_connections: u32 = Some("0"), Online, Implemented, "Maximum server connections per user; 0 = unlimited.";
    metrics_addr: Option<String> = None, Restart, Extension, "pooler: `host:port` of the HTTP endpoint serving Prometheus `/metrics`, `/health` and `/ready`; unset = off.";
    min_pool_size: u32 = Some("0"), Online, Implemented, "Server connections kept open per pool.";
    peer_id: u16 = Some("0"), Online, Planned, "This process's id among the `[peers]` (1..16383); 0 = no peering.";
    pidfile: String = Some(""), Restart, Implemented, "PID file; empty = none.";
    pkt_buf: u32 = Some("4096"), Restart, NoEffect, "PgBouncer's packet buffer size.";
    pool_idle_timeout: Duration = Some("0"), Online, Planned, "Free pools unused this many seconds (PgBouncer master).";
    pool_mode: PoolMode = Some("session"), Online, Implemented, "Default pool mode: session, transaction or statement.";
    query_timeout: Duration = Some("0"), Online, Implemented, "Cancel queries running longer than this many seconds.";
    query_wait_notify: u32 = Some("5"), Online, Planned, "Seconds of waiting before a client is told it is queued.";
    query_wait_timeout: Duration = Some("120"), Online, Implemented, "Disconnect clients waiting longer than this many seconds for a server.";
    reserve_pool_size: u32 = Some("0"), Online, Implemented, "Extra connections a pool may open when clients wait reserve_pool_timeout.";
    reserve_pool_timeout: Duration = Some("5"), Online, Implemented, "Seconds the oldest client must wait before the reserve pool is used.";
    resolv_conf: String = Some(""), Restart, Planned, "Alternative resolv.conf.";
    sbuf_loopcnt: u32 = Some("5"), Online, NoEffect, "PgBouncer's event-loop fairness knob.";
    scram_iterations: u32 = Some("4096"), Online, Implemented, "PBKDF2 iterations when pooler derives a SCRAM secret from a plain password.";
    server_check_delay: Duration = Some("30"), Online, Implemented, "Idle seconds after which a server is checked before reuse; 0 = always check.";
    server_check_query: String = Some("<empty>"), Online, Implemented, "Health-check query; `<empty>` sends an empty query, empty disables checks.";
    server_connect_timeout: Duration = Some("15"), Online, Implemented, "Seconds allowed for connecting and logging in to a server.";
    server_fast_close: bool = Some("0"), Online, Planned, "Close close_needed session servers at transaction end.";
    server_idle_timeout: Duration = Some("600"), Online, Implemented, "Close server connections idle this many seconds.";
    server_lifetime: Duration = Some("3600"), Online, Implemented, "Close server connections older than this many seconds when released.";
    server_login_retry: Duration = Some("15"), Online, Implemented, "Seconds to wait after a failed server login before retrying.";
    server_reset_query: String = Some("DISCARD ALL"), Online, Implemented, "Query run when a server is released in session mode.";
    server_reset_query_always: bool = Some("0"), Online, Implemented, "Run server_reset_query in every pool mode.";
    server_round_robin: bool = Some("0"), Online, Implemented, "Reuse servers round-robin instead of LIFO.";
    server_tls13_ciphers: Option<String> = None, Online, Planned, "TLS 1.3 cipher suites towards servers.";
    server_tls_ca_file: String = Some(""), Online, Planned, "CA file for server certificates.";
    server_tls_cert_file: String = Some(""), Online, Planned, "Client certificate presented to servers.";
    server_tls_ciphers: String = Some("default"), Online, Planned, "TLS 1.2 ciphers towards servers.";
    server_tls_key_file: String = Some(""), Online, Planned, "Private key for server_tls_cert_file.";
    server_tls_protocols: String = Some("secure"), Online, Planned, "TLS protocol versions towards servers.";
    server_tls_sslmode: SslMode = Some("prefer"), Online, Planned, "TLS mode towards servers.";
    shutdown_timeout: Duration = Some("30"), Online, Extension, "pooler: seconds a shutdown (SIGTERM, SIGINT, SHUTDOWN) lets clients finish before the process exits regardless; 0 = exit at once.";
    so_reuseport: bool = Some("0"), Restart, Implemented, "Set SO_REUSEPORT so several processes share the port.";
    stats_period: u32 = Some("60"), Online, Implemented, "Seconds between statistics averages and log_stats lines.";
    stats_users: Vec<String> = Some(""), Online, Implemented, "Users allowed read-only admin console commands (comma list).";
    suspend_timeout: Duration = Some("10"), Online, Planned, "Seconds SUSPEND waits for buffers to flush.";
    syslog: bool = Some("0"), Online, Implemented, "Accepted; pooler logs to stderr and logfile (journald collects stderr).";
    syslog_facility: String = Some("daemon"), Online, Planned, "Syslog facility.";
    syslog_ident: String = Some("pgbouncer"), Online, Planned, "Syslog ident.";
    tcp_defer_accept: u32 = Some(DEFAULT_TCP_DEFER_ACCEPT), Online, Planned, "TCP_DEFER_ACCEPT on listening sockets.";
    tcp_keepalive: bool = Some("1"), Online, Implemented, "Enable TCP keepalive.";
    tcp_keepcnt: u32 = Some("0"), Online, Implemented, "TCP_KEEPCNT; 0 = OS default.";
    tcp_keepidle: u32 = Some("0"), Online, Implemented, "TCP_KEEPIDLE seconds; 0 = OS default.";
    tcp_keepintvl: u32 = Some("0"), Online, Implemented, "TCP_KEEPINTVL seconds; 0 = OS default.";
    tcp_socket_buffer: u32 = Some("0"), Online, Planned, "Socket buffer size; 0 = OS default.";
    tcp_user_timeout: u32 = Some("0"), Online, Implemented, "TCP_USER_TIMEOUT milliseconds; 0 = OS default.";
    track_extra_parameters: Vec<String> = Some("IntervalStyle"), Restart, Implemented, "Extra GUC_REPORT parameters tracked per client (comma list).";
    transaction_timeout: Duration = Some("0"), Online, Implemented, "Close clients whose transaction lasts longer than this many seconds.";
    unix_socket_dir: String = Some("/tmp"), Restart, Implemented, "Directory of the Unix socket; empty = no Unix socket.";
    unix_socket_group: String = Some(""), Restart, Planned, "Group owning the Unix socket.";
    unix_socket_mode: u32 = Some("0777"), Restart, Implemented, "Permissions of the Unix socket (octal).";
    user: Option<String> = None, Restart, Implemented, "Unix user to switch to at startup.";
    verbose: u32 = None, Online, Implemented, "Log verbosity (0 = info, 1 = debug, 2 = trace).";
    worker_threads: usize = Some("0"), Restart, Extension, "pooler: runtime worker threads; 0 = one per CPU core.";
}

/// The table row for `name` (exact, case-sensitive match).
pub fn lookup(name: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|spec| spec.name == name)
}

/// Every key with its default value.
pub fn default_settings() -> Settings {
    KEYS.iter()
        .map(|spec| (spec.name, spec.default.map(str::to_owned)))
        .collect()
}

/// Formats a raw value the way PgBouncer's SHOW CONFIG prints it: integers `%d`, seconds `%g`,
/// choices in canonical spelling, unset as `None` (NULL) except for integer keys, whose C
/// variable reads 0 (`verbose`). Unparsable input is returned as-is.
pub fn display_value(spec: &KeySpec, raw: Option<&str>) -> Option<String> {
    let Some(raw) = raw else {
        let is_integer = matches!(spec.kind, ValueKind::Integer | ValueKind::Boolean);
        return is_integer.then(|| "0".to_owned());
    };
    let shown = match spec.kind {
        ValueKind::Integer => parse_c_integer(raw).map(|n| n.to_string()),
        ValueKind::Boolean => parse_bool(raw).map(|on| {
            parse_c_integer(raw).map_or_else(|| u8::from(on).to_string(), |n| n.to_string())
        }),
        ValueKind::Seconds => parse_seconds(raw).map(|d| format_g(d.as_secs_f64())),
        ValueKind::Choice(names) => names
            .iter()
            .find(|name| name.eq_ignore_ascii_case(raw))
            .map(|name| (*name).to_owned()),
        ValueKind::Text | ValueKind::List => None,
    };
    Some(shown.unwrap_or_else(|| raw.to_owned()))
}

/// C's `%g`: 6 significant digits, trailing zeros dropped, exponent form outside 1e-4..1e6.
fn format_g(value: f64) -> String {
    if value == 0.0 {
        return "0".to_owned();
    }
    let scientific = format!("{value:.5e}");
    let exponent: i32 = scientific
        .split_once('e')
        .and_then(|(_, exp)| exp.parse().ok())
        .unwrap_or(0);
    if !(-4..6).contains(&exponent) {
        let mantissa = scientific.split_once('e').map_or("", |(m, _)| m);
        let mantissa = trim_fraction(mantissa);
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs());
    }
    let decimals = usize::try_from(5 - exponent).unwrap_or(0);
    trim_fraction(&format!("{value:.decimals$}")).to_owned()
}

fn trim_fraction(number: &str) -> &str {
    if number.contains('.') {
        number.trim_end_matches('0').trim_end_matches('.')
    } else {
        number
    }
}

/// Renders the key table as Markdown (for the README): key, default, type, reload, status.
pub fn markdown_key_table() -> String {
    let mut out = String::from(
        "| key | default | type | reload | pooler | description |\n|---|---|---|---|---|---|\n",
    );
    for spec in KEYS {
        let default = match spec.default {
            None => "(unset)".to_owned(),
            Some("") => "(empty)".to_owned(),
            Some(value) => format!("`{value}`"),
        };
        let kind = match spec.kind {
            ValueKind::Integer => "integer".to_owned(),
            ValueKind::Boolean => "boolean (0/1)".to_owned(),
            ValueKind::Seconds => "seconds".to_owned(),
            ValueKind::Text => "string".to_owned(),
            ValueKind::List => "comma list".to_owned(),
            ValueKind::Choice(names) => names.join(" \\| "),
        };
        let reload = match spec.reload {
            Reload::Online => "yes",
            Reload::Restart => "restart",
        };
        let support = match spec.support {
            Support::Implemented => "yes",
            Support::Planned => "not yet (warns)",
            Support::NoEffect => "no effect (warns)",
            Support::Extension => "pooler only",
        };
        let doc = spec.doc.replace('|', "\\|");
        out.push_str(&format!(
            "| `{}` | {default} | {kind} | {reload} | {support} | {doc} |\n",
            spec.name
        ));
    }
    out
}
