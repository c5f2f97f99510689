//! Configuration: reads an unchanged pgbouncer.ini (+ userlist.txt) into the typed [`Config`],
//! validates it, resolves per-pool settings, and builds a config from a database URL (sidecar).
//!
//! Errors and warnings carry file and line; loading collects every error of a file so
//! `pooler --check` can print them all. Nothing here logs: callers print the warnings.

#[macro_use]
mod setting;
mod connstr;
mod error;
mod ini;
pub mod keys;
mod routing;
mod url;
mod userlist;
mod validate;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use connstr::{
    ADMIN_DATABASE, DEFAULT_PEER_PORT, DEFAULT_SERVER_PORT, DatabaseConfig, FALLBACK_DATABASE,
    HostSpec, LoadBalanceHosts, Password, PeerConfig, UserConfig, parse_pairs,
};
pub use error::{ConfigError, ConfigErrorKind, ConfigWarning, ConfigWarningKind, Location};
pub use ini::{IniItem, MAX_INCLUDE_DEPTH, parse_ini_text, read_ini};
pub use keys::{
    AuthType, General, LogFormat, PoolMode, Reload, Settings, SslMode, Support, markdown_key_table,
};
pub use routing::{
    DEFAULT_BAN_TIME, DEFAULT_HEALTH_CHECK_PERIOD, ReadYourWrites, ReplicaSelection,
    RoutingOptions, TargetSessionAttrs,
};
pub use url::{SIDECAR_SOURCE, SidecarArgs, sidecar_config};
pub use userlist::{MAX_PASSWORD, MAX_USERNAME, UserSecrets, load_auth_file, parse_auth_file};

/// The whole typed configuration. Immutable once built; reload builds a new one.
#[derive(Debug, Clone)]
pub struct Config {
    /// Typed `[pgbouncer]` values.
    pub general: General,
    /// Raw effective `[pgbouncer]` values (SHOW CONFIG, `SET`).
    pub settings: Settings,
    /// `[databases]` entries by name (PgBouncer keeps them sorted by name too).
    pub databases: BTreeMap<String, DatabaseConfig>,
    /// The `*` entry, template for databases not listed.
    pub fallback_database: Option<DatabaseConfig>,
    /// `[users]` entries by name.
    pub users: BTreeMap<String, UserConfig>,
    /// `[peers]` entries by id.
    pub peers: BTreeMap<u16, PeerConfig>,
    /// Secrets that come with the config rather than from auth_file (sidecar mode); the
    /// runtime merges them over the auth_file users.
    pub static_users: UserSecrets,
    /// Where each entry was set, keyed `"<section>/<key>"`, for later error messages.
    pub origins: BTreeMap<String, Location>,
    /// The file the config was loaded from (a pseudo path in sidecar mode).
    pub source: PathBuf,
}

/// A loaded config plus the warnings to print.
#[derive(Debug)]
pub struct Loaded {
    /// The config.
    pub config: Config,
    /// Warnings: those about file lines in file order, then validation advice.
    pub warnings: Vec<ConfigWarning>,
}

/// Effective limits and timeouts of one (database, user) pool after PgBouncer's precedence
/// (`user` > `database` > `[pgbouncer]`). Zero keeps PgBouncer's meaning (unlimited/disabled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// user > database > `pool_mode`.
    pub pool_mode: PoolMode,
    /// user > database > `default_pool_size`.
    pub pool_size: u32,
    /// database > `min_pool_size`.
    pub min_pool_size: u32,
    /// user > database > `reserve_pool_size`.
    pub reserve_pool_size: u32,
    /// Global only.
    pub reserve_pool_timeout: Duration,
    /// database (if > 0) > global.
    pub max_db_connections: u32,
    /// database (if > 0) > global.
    pub max_db_client_connections: u32,
    /// user (if > 0) > global.
    pub max_user_connections: u32,
    /// user (if > 0) > global.
    pub max_user_client_connections: u32,
    /// database (if > 0) > global.
    pub server_lifetime: Duration,
    /// Global only.
    pub server_idle_timeout: Duration,
    /// user (if > 0) > global.
    pub query_timeout: Duration,
    /// user (if > 0) > database (if > 0) > global.
    pub query_wait_timeout: Duration,
    /// user (if > 0) > global.
    pub idle_transaction_timeout: Duration,
    /// user (if > 0) > global.
    pub transaction_timeout: Duration,
    /// user (if > 0) > global.
    pub client_idle_timeout: Duration,
}

/// One entry of `listen_addr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// `*`: every IPv4 and IPv6 address.
    AllInterfaces,
    /// A host name or IP address.
    Host(String),
}

/// What `server_check_query` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerCheck<'a> {
    /// Empty string: no check.
    Disabled,
    /// `<empty>` (default): send an empty query.
    EmptyQuery,
    /// Run this query.
    Query(&'a str),
}

impl General {
    /// `listen_addr` as addresses to bind (empty = Unix socket only).
    pub fn listen_addrs(&self) -> Vec<ListenAddr> {
        self.listen_addr
            .iter()
            .map(|addr| match addr.as_str() {
                "*" => ListenAddr::AllInterfaces,
                host => ListenAddr::Host(host.to_owned()),
            })
            .collect()
    }

    /// `server_check_query` interpreted.
    pub fn server_check(&self) -> ServerCheck<'_> {
        match self.server_check_query.as_str() {
            "" => ServerCheck::Disabled,
            "<empty>" => ServerCheck::EmptyQuery,
            query => ServerCheck::Query(query),
        }
    }
}

/// Loads `path` (and its `%include`s). Does not read auth_file: see [`load_auth_file`].
pub fn load(path: &Path) -> Result<Loaded, Vec<ConfigError>> {
    let items = read_ini(path);
    let is_unreadable = matches!(items.first(), Some(IniItem::Error(e)) if e.line.is_none());
    let mut assembly = Assembly::default();
    for item in items {
        assembly.take(item);
    }
    if !assembly.has_main_section && !is_unreadable {
        let kind = ConfigErrorKind::MissingMainSection;
        assembly
            .errors
            .push(ConfigError::new(path.to_path_buf(), None, kind));
    }
    assembly.finish(path)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Main,
    Databases,
    Users,
    Peers,
    Invalid,
}

/// Interprets INI items section by section.
#[derive(Default)]
struct Assembly {
    section: Option<Section>,
    has_main_section: bool,
    main: BTreeMap<&'static str, (String, Location)>,
    databases: BTreeMap<String, DatabaseConfig>,
    fallback: Option<DatabaseConfig>,
    users: BTreeMap<String, UserConfig>,
    peers: BTreeMap<u16, PeerConfig>,
    origins: BTreeMap<String, Location>,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigWarning>,
}

impl Assembly {
    fn take(&mut self, item: IniItem) {
        match item {
            IniItem::Error(error) => self.errors.push(error),
            IniItem::Section { name, at } => self.start_section(&name, &at),
            IniItem::Entry { key, value, at } => match self.section {
                None => {
                    let kind = ConfigErrorKind::ValueWithoutSection { key };
                    self.errors.push(ConfigError::at(&at, kind));
                }
                Some(Section::Invalid) => {}
                Some(Section::Main) => self.take_main(key, value, at),
                Some(section) => self.take_entry(section, key, &value, at),
            },
        }
    }

    fn start_section(&mut self, name: &str, at: &Location) {
        let section = match name {
            "pgbouncer" => Section::Main,
            "databases" => Section::Databases,
            "users" => Section::Users,
            "peers" => Section::Peers,
            _ => {
                let kind = ConfigErrorKind::InvalidSection {
                    name: name.to_owned(),
                };
                self.errors.push(ConfigError::at(at, kind));
                Section::Invalid
            }
        };
        if section == Section::Main {
            self.has_main_section = true;
            if !self.main.is_empty() {
                let kind = ConfigWarningKind::SectionRestarted {
                    count: self.main.len(),
                };
                self.warnings
                    .push(ConfigWarning::new(at.file.clone(), Some(at.line), kind));
                self.main.clear();
            }
        }
        self.section = Some(section);
    }

    fn take_main(&mut self, key: String, value: String, at: Location) {
        match keys::lookup(&key) {
            Some(spec) => match keys::check_value(spec.name, &value) {
                Ok(()) => {
                    self.main.insert(spec.name, (value, at));
                }
                Err(error) => {
                    let expected = error.expected;
                    let kind = ConfigErrorKind::InvalidValue {
                        key,
                        value,
                        expected,
                    };
                    self.errors.push(ConfigError::at(&at, kind));
                }
            },
            None => {
                let section = "pgbouncer";
                let kind = ConfigErrorKind::UnknownParameter { section, key };
                self.errors.push(ConfigError::at(&at, kind));
            }
        }
    }

    fn take_entry(&mut self, section: Section, key: String, value: &str, at: Location) {
        let (prefix, outcome) = match section {
            Section::Databases => (
                "databases",
                connstr::parse_database(&key, value).map(|(db, warnings)| {
                    if key == FALLBACK_DATABASE {
                        self.fallback = Some(db);
                    } else {
                        self.databases.insert(key.clone(), db);
                    }
                    warnings
                }),
            ),
            Section::Users => (
                "users",
                connstr::parse_user(value).map(|(user, warnings)| {
                    self.users.insert(key.clone(), user);
                    warnings
                }),
            ),
            _ => (
                "peers",
                connstr::parse_peer(&key, value).map(|(peer, warnings)| {
                    self.peers.insert(peer.peer_id, peer);
                    warnings
                }),
            ),
        };
        match outcome {
            Ok(warnings) => {
                self.warnings.extend(
                    warnings
                        .into_iter()
                        .map(|kind| ConfigWarning::new(at.file.clone(), Some(at.line), kind)),
                );
                self.origins.insert(format!("{prefix}/{key}"), at);
            }
            Err(kind) => self.errors.push(ConfigError::at(&at, kind)),
        }
    }

    fn finish(mut self, path: &Path) -> Result<Loaded, Vec<ConfigError>> {
        let mut settings = keys::default_settings();
        settings.insert("conffile", Some(path.display().to_string()));
        let mut unimplemented = Vec::new();
        for (key, (value, at)) in &self.main {
            settings.insert(key, Some(value.clone()));
            self.origins.insert(format!("pgbouncer/{key}"), at.clone());
            let kind = match keys::lookup(key).map(|spec| spec.support) {
                Some(Support::Planned) => ConfigWarningKind::NotImplemented {
                    key,
                    value: value.clone(),
                },
                Some(Support::NoEffect) => ConfigWarningKind::NoEffect {
                    key,
                    value: value.clone(),
                },
                _ => continue,
            };
            if !keys::is_default_value(key, value) {
                unimplemented.push((at, kind));
            }
        }
        unimplemented.sort_by_key(|(at, _)| *at);
        self.warnings.extend(
            unimplemented
                .into_iter()
                .map(|(at, kind)| ConfigWarning::new(at.file.clone(), Some(at.line), kind)),
        );
        let (general, setting_errors) = General::from_settings(&settings);
        for error in setting_errors {
            let kind = ConfigErrorKind::InvalidValue {
                key: error.key.to_owned(),
                value: error.value,
                expected: error.error.expected,
            };
            let (file, line) = match self.main.get(error.key) {
                Some((_, at)) => (at.file.clone(), Some(at.line)),
                None => (path.to_path_buf(), None),
            };
            self.errors.push(ConfigError::new(file, line, kind));
        }
        let config = Config {
            general,
            settings,
            databases: self.databases,
            fallback_database: self.fallback,
            users: self.users,
            peers: self.peers,
            static_users: UserSecrets::new(),
            origins: self.origins,
            source: path.to_path_buf(),
        };
        // Cross-field rules only make sense once every value parsed; otherwise they would
        // report consequences of the defaults that replaced the bad values.
        if self.errors.is_empty() {
            match config.validate() {
                Ok(warnings) => self.warnings.extend(warnings),
                Err(errors) => self.errors.extend(errors),
            }
        }
        if self.errors.is_empty() {
            Ok(Loaded {
                config,
                warnings: self.warnings,
            })
        } else {
            Err(self.errors)
        }
    }
}

impl Config {
    /// The entry for database `name`: a listed one, or one made from the `*` fallback with that
    /// name (as PgBouncer's auto-databases). `None` if neither exists.
    pub fn database(&self, name: &str) -> Option<Cow<'_, DatabaseConfig>> {
        if let Some(db) = self.databases.get(name) {
            return Some(Cow::Borrowed(db));
        }
        let mut auto = self.fallback_database.clone()?;
        auto.name = name.to_owned();
        Some(Cow::Owned(auto))
    }

    /// Effective settings of the pool (`database`, `user`); `user` is the forced user if the
    /// database has one. Unknown names just get the global values.
    pub fn pool_settings(&self, database: &str, user: &str) -> PoolSettings {
        let g = &self.general;
        let db = self.database(database);
        let db = db.as_deref();
        let user = self.users.get(user);
        let positive = |value: Option<u32>| value.filter(|n| *n > 0);
        let nonzero = |value: Option<Duration>| value.filter(|d| !d.is_zero());
        let user_time = |pick: fn(&UserConfig) -> Option<Duration>| nonzero(user.and_then(pick));
        PoolSettings {
            pool_mode: (user.and_then(|u| u.pool_mode))
                .or(db.and_then(|d| d.pool_mode))
                .unwrap_or(g.pool_mode),
            pool_size: (user.and_then(|u| u.pool_size))
                .or(db.and_then(|d| d.pool_size))
                .unwrap_or(g.default_pool_size),
            min_pool_size: db.and_then(|d| d.min_pool_size).unwrap_or(g.min_pool_size),
            reserve_pool_size: (user.and_then(|u| u.reserve_pool_size))
                .or(db.and_then(|d| d.reserve_pool_size))
                .unwrap_or(g.reserve_pool_size),
            reserve_pool_timeout: g.reserve_pool_timeout,
            max_db_connections: positive(db.and_then(|d| d.max_db_connections))
                .unwrap_or(g.max_db_connections),
            max_db_client_connections: positive(db.and_then(|d| d.max_db_client_connections))
                .unwrap_or(g.max_db_client_connections),
            max_user_connections: positive(user.and_then(|u| u.max_user_connections))
                .unwrap_or(g.max_user_connections),
            max_user_client_connections: positive(user.and_then(|u| u.max_user_client_connections))
                .unwrap_or(g.max_user_client_connections),
            server_lifetime: nonzero(db.and_then(|d| d.server_lifetime))
                .unwrap_or(g.server_lifetime),
            server_idle_timeout: g.server_idle_timeout,
            query_timeout: user_time(|u| u.query_timeout).unwrap_or(g.query_timeout),
            query_wait_timeout: user_time(|u| u.query_wait_timeout)
                .or(nonzero(db.and_then(|d| d.query_wait_timeout)))
                .unwrap_or(g.query_wait_timeout),
            idle_transaction_timeout: user_time(|u| u.idle_transaction_timeout)
                .unwrap_or(g.idle_transaction_timeout),
            transaction_timeout: user_time(|u| u.transaction_timeout)
                .unwrap_or(g.transaction_timeout),
            client_idle_timeout: user_time(|u| u.client_idle_timeout)
                .unwrap_or(g.client_idle_timeout),
        }
    }

    /// `auth_file` as a path; a relative one is resolved against the config file's directory.
    pub fn auth_file_path(&self) -> Option<PathBuf> {
        let file = Path::new(self.general.auth_file.as_deref()?);
        match self.source.parent() {
            Some(dir) if file.is_relative() => Some(dir.join(file)),
            _ => Some(file.to_path_buf()),
        }
    }

    /// Applies a console `SET key = value`. Returns `Ok(false)` for a restart-only key, which
    /// PgBouncer silently ignores at runtime; the config is unchanged on error.
    pub fn set_general(&mut self, key: &str, value: &str) -> Result<bool, ConfigErrorKind> {
        let spec = keys::lookup(key).ok_or_else(|| ConfigErrorKind::UnknownParameter {
            section: "pgbouncer",
            key: key.to_owned(),
        })?;
        if spec.reload == Reload::Restart {
            return Ok(false);
        }
        let mut settings = self.settings.clone();
        settings.insert(spec.name, Some(value.to_owned()));
        let (general, errors) = General::from_settings(&settings);
        if let Some(error) = errors.into_iter().next() {
            return Err(ConfigErrorKind::InvalidValue {
                key: error.key.to_owned(),
                value: error.value,
                expected: error.error.expected,
            });
        }
        self.settings = settings;
        self.general = general;
        Ok(true)
    }

    /// For a reload: keeps the running values of restart-only keys (PgBouncer ignores their
    /// changes silently) and returns the keys whose new value was dropped, for a log line.
    pub fn retain_restart_settings(&mut self, running: &Config) -> Vec<&'static str> {
        let mut changed = Vec::new();
        for spec in keys::KEYS
            .iter()
            .filter(|spec| spec.reload == Reload::Restart)
        {
            let old = running.settings.get(spec.name).cloned().flatten();
            if self.settings.get(spec.name).cloned().flatten() != old {
                changed.push(spec.name);
                self.settings.insert(spec.name, old);
            }
        }
        if !changed.is_empty() {
            self.general = General::from_settings(&self.settings).0;
        }
        changed
    }
}
