//! The pooler's shared state: the live config and secrets, one pool per (database,
//! user), connection budgets, client limits, the statement and cancel registries.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use protocol::pg::auth::StoredSecret;
use protocol::pg::sqlstate;

use crate::admin::ConsoleState;
use crate::averages::StatsPeriods;
use crate::cancel::CancelRegistry;
use crate::config::{self, Config, DatabaseConfig, PoolMode, UserSecrets};
use crate::login::LoginError;
use crate::net::KeepaliveOptions;
use crate::pool::{Budget, Pool, PoolSettings};
use crate::registry::{RegisteringConnector, Registry};
use crate::router::{HostGroup, Topology};
use crate::server::{
    ServerConnection, ServerConnector, ServerCredentials, ServerEndpoint, ServerParams,
    ServerTarget,
};
use crate::session::SessionSettings;
use crate::session::prepared::StatementRegistry;
use crate::stats::ConnectErrors;

/// One (database, user) pool and what its sessions need to know about it.
#[derive(Debug)]
pub struct PoolEntry {
    /// The server connections.
    pub pool: Pool<ServerConnection>,
    /// Database name as clients know it.
    pub database: String,
    /// User name as clients know it.
    pub user: String,
    /// Credentials used to log in to the server; SCRAM keys are learned from clients.
    pub credentials: Arc<Mutex<ServerCredentials>>,
    /// Effective settings.
    pub settings: config::PoolSettings,
    /// Parameters of the first server login, the basis of every client's welcome.
    pub welcome: Mutex<Option<ServerParams>>,
    /// Failed server connection attempts by kind (metrics).
    pub connect_errors: Arc<ConnectErrors>,
    /// `host:port` of this pool's server when it is one host of a role-aware host list.
    pub host: Option<String>,
    /// The host group this pool belongs to; cleared when the pools are removed (KILL),
    /// which breaks the group → pools → group cycle.
    pub group: Mutex<Option<Arc<HostGroup>>>,
}

/// (database, server user, host index): host index 0 unless the entry is a host group.
type PoolKey = (String, String, usize);

/// Shared state of a running pooler.
#[derive(Debug)]
pub struct Pooler {
    config: ArcSwap<Config>,
    secrets: ArcSwap<UserSecrets>,
    pools: Mutex<HashMap<PoolKey, Arc<PoolEntry>>>,
    db_budgets: Mutex<HashMap<String, Arc<Budget>>>,
    user_budgets: Mutex<HashMap<String, Arc<Budget>>>,
    /// Every distinct prepared statement.
    pub statements: Arc<StatementRegistry>,
    /// Cancel keys of logged-in clients.
    pub cancels: Arc<CancelRegistry>,
    clients: AtomicUsize,
    client_counts: Mutex<ClientCounts>,
    /// Live clients and servers (SHOW CLIENTS / SERVERS, KILL_CLIENT).
    pub registry: Arc<Registry>,
    /// PAUSE / SUSPEND / DISABLE state and shutdown requests from the console.
    pub console: ConsoleState,
    /// `stats_period` snapshots behind the averages.
    pub periods: StatsPeriods,
}

/// A connected client's place in `max_client_conn` and, once it logged in, in
/// `max_db_client_connections` / `max_user_client_connections`; freed on drop.
#[derive(Debug)]
pub struct ClientSlot {
    pooler: Arc<Pooler>,
    database_user: Option<(String, String)>,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.pooler.clients.fetch_sub(1, Ordering::AcqRel);
        if let Some((database, user)) = &self.database_user {
            let mut counts = self.pooler.client_counts.lock();
            decrement(&mut counts.by_database, database);
            decrement(&mut counts.by_user, user);
        }
    }
}

fn decrement(map: &mut HashMap<String, usize>, key: &str) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

/// Logged-in clients per database and per user.
#[derive(Debug, Default)]
struct ClientCounts {
    by_database: HashMap<String, usize>,
    by_user: HashMap<String, usize>,
}

impl Pooler {
    /// State for `config` with the auth_file secrets `secrets`.
    pub fn new(config: Config, secrets: UserSecrets) -> Arc<Self> {
        Arc::new(Self {
            config: ArcSwap::from_pointee(config),
            secrets: ArcSwap::from_pointee(secrets),
            pools: Mutex::new(HashMap::new()),
            db_budgets: Mutex::new(HashMap::new()),
            user_budgets: Mutex::new(HashMap::new()),
            statements: Arc::new(StatementRegistry::default()),
            cancels: Arc::new(CancelRegistry::default()),
            clients: AtomicUsize::new(0),
            client_counts: Mutex::new(ClientCounts::default()),
            registry: Arc::new(Registry::default()),
            console: ConsoleState::default(),
            periods: StatsPeriods::default(),
        })
    }

    /// The current config.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Swaps in a reloaded config and secrets; pools pick up new sizes and timeouts.
    pub fn reload(&self, config: Config, secrets: UserSecrets) {
        self.config.store(Arc::new(config));
        self.secrets.store(Arc::new(secrets));
        let config = self.config();
        for entry in self.pools.lock().values() {
            let settings = config.pool_settings(&entry.database, &entry.user);
            let is_host = entry.host.is_some();
            entry
                .pool
                .update_settings(pool_settings(&settings, &config, is_host));
        }
    }

    /// Applies a changed config (console `SET`), keeping the current secrets.
    pub fn update_config(&self, config: Config) {
        let secrets = UserSecrets::clone(&self.secrets.load());
        self.reload(config, secrets);
    }

    /// Every user name known from auth_file and the sidecar's static users.
    pub fn secret_users(&self) -> Vec<String> {
        let mut names: Vec<String> = self.secrets.load().keys().cloned().collect();
        names.extend(self.config().static_users.keys().cloned());
        names
    }

    /// Clients connected (logging in or logged in), admin console excluded.
    pub fn client_count(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    /// Removes every pool of `database` (KILL) and returns them for closing; new
    /// clients get fresh pools.
    pub fn remove_pools(&self, database: &str) -> Vec<Arc<PoolEntry>> {
        let mut pools = self.pools.lock();
        let keys: Vec<_> = pools
            .keys()
            .filter(|(db, _, _)| db == database)
            .cloned()
            .collect();
        let removed: Vec<_> = keys.iter().filter_map(|k| pools.remove(k)).collect();
        for entry in &removed {
            entry.group.lock().take();
        }
        removed
    }

    /// Takes a place in `max_client_conn`.
    pub fn admit_client(self: &Arc<Self>) -> Result<ClientSlot, LoginError> {
        let max = self.config().general.max_client_conn as usize;
        let previous = self.clients.fetch_add(1, Ordering::AcqRel);
        let slot = ClientSlot {
            pooler: Arc::clone(self),
            database_user: None,
        };
        if max > 0 && previous >= max {
            return Err(LoginError::rejected(
                sqlstate::PROTOCOL_VIOLATION,
                "no more connections allowed (max_client_conn)",
            ));
        }
        Ok(slot)
    }

    /// Counts a logged-in client against `max_db_client_connections` and
    /// `max_user_client_connections` of its pool.
    pub fn admit_to_pool(
        &self,
        slot: &mut ClientSlot,
        entry: &PoolEntry,
    ) -> Result<(), LoginError> {
        let s = &entry.settings;
        let mut counts = self.client_counts.lock();
        let db = counts
            .by_database
            .get(&entry.database)
            .copied()
            .unwrap_or(0);
        let user = counts.by_user.get(&entry.user).copied().unwrap_or(0);
        let over = |max: u32, n: usize| max > 0 && n >= max as usize;
        if over(s.max_db_client_connections, db) {
            return Err(LoginError::rejected(
                sqlstate::PROTOCOL_VIOLATION,
                "client connections exceeded (max_db_client_connections)",
            ));
        }
        if over(s.max_user_client_connections, user) {
            return Err(LoginError::rejected(
                sqlstate::PROTOCOL_VIOLATION,
                "client connections exceeded (max_user_client_connections)",
            ));
        }
        *counts
            .by_database
            .entry(entry.database.clone())
            .or_default() += 1;
        *counts.by_user.entry(entry.user.clone()).or_default() += 1;
        slot.database_user = Some((entry.database.clone(), entry.user.clone()));
        Ok(())
    }

    /// The secret of `user`: static users (sidecar) over auth_file.
    pub fn secret(&self, user: &str) -> Option<StoredSecret> {
        if let Some(secret) = self.config().static_users.get(user) {
            return Some(secret.clone());
        }
        self.secrets.load().get(user).cloned()
    }

    /// Every host group (role-aware host lists), for SHOW HOSTS and metrics.
    pub fn groups(&self) -> Vec<Arc<HostGroup>> {
        let mut groups: Vec<_> = self
            .pools
            .lock()
            .iter()
            .filter(|((_, _, host), _)| *host == 0)
            .filter_map(|(_, entry)| entry.group.lock().clone())
            .collect();
        groups.sort_by(|a, b| {
            let key = |g: &HostGroup| (g.hosts[0].database.clone(), g.hosts[0].user.clone());
            key(a).cmp(&key(b))
        });
        groups
    }

    /// Every pool, for the console and metrics.
    pub fn pools(&self) -> Vec<Arc<PoolEntry>> {
        self.pools.lock().values().cloned().collect()
    }

    /// The pool for a client of `database` logged in as `user`; creates it on first use.
    /// `secret` is the client's secret when it came from `auth_query` rather than the
    /// auth_file.
    pub fn pool_for(
        &self,
        database: &str,
        user: &str,
        secret: Option<&StoredSecret>,
    ) -> Result<Arc<PoolEntry>, LoginError> {
        let config = self.config();
        let db = config.database(database).ok_or_else(|| {
            LoginError::rejected(
                sqlstate::PROTOCOL_VIOLATION,
                format!("no such database: {database}"),
            )
        })?;
        let server_user = db.user.clone().unwrap_or_else(|| user.to_owned());
        let key = (database.to_owned(), server_user.clone(), 0);
        // One lock over lookup and creation: concurrent first logins share one pool
        // (and one host group with its health monitor).
        let mut pools = self.pools.lock();
        if let Some(entry) = pools.get(&key) {
            if let Some(secret) = secret {
                let mut credentials = entry.credentials.lock();
                if matches!(*credentials, ServerCredentials::None) {
                    *credentials = server_credentials(Some(secret.clone()));
                }
            }
            return Ok(Arc::clone(entry));
        }
        if db.routing.is_role_aware() && db.hosts.len() > 1 {
            return Ok(self.new_group(&mut pools, &config, &db, database, &server_user, secret));
        }
        let credentials = self.initial_credentials(&db, &server_user, secret);
        let entry =
            Arc::new(self.new_pool(&config, &db, database, &server_user, credentials, None));
        if self.console.is_database_paused(database) {
            entry.pool.pause();
        }
        pools.insert(key, Arc::clone(&entry));
        Ok(entry)
    }

    /// The host group of a client's pool, when its database entry is role-aware.
    pub fn group_for(&self, entry: &PoolEntry) -> Option<Arc<HostGroup>> {
        entry.group.lock().clone()
    }

    /// Creates the per-host pools of a role-aware entry, their topology and health
    /// monitor; returns the first host's pool (the key under which the group is found).
    fn new_group(
        &self,
        pools: &mut HashMap<PoolKey, Arc<PoolEntry>>,
        config: &Config,
        db: &DatabaseConfig,
        database: &str,
        user: &str,
        secret: Option<&StoredSecret>,
    ) -> Arc<PoolEntry> {
        let credentials = self.initial_credentials(db, user, secret);
        let hosts = (0..db.hosts.len())
            .map(|i| {
                let credentials = Arc::clone(&credentials);
                Arc::new(self.new_pool(config, db, database, user, credentials, Some(i)))
            })
            .collect();
        let mut volatile: Vec<String> = crate::router::DEFAULT_VOLATILE_FUNCTIONS
            .iter()
            .map(|f| (*f).to_owned())
            .collect();
        volatile.extend(db.routing.volatile_functions.iter().cloned());
        let volatile_fingerprint = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::hash::DefaultHasher::new();
            volatile.hash(&mut hasher);
            hasher.finish()
        };
        let group = Arc::new(HostGroup {
            hosts,
            topology: Topology::new(db.hosts.len(), db.routing.clone()),
            volatile,
            volatile_fingerprint,
            is_split: db.routing.read_write_split,
            target_session_attrs: db.routing.target_session_attrs,
        });
        let monitors = (0..db.hosts.len())
            .map(|i| {
                let mut target = server_target(config, db, user, Arc::clone(&credentials), Some(i));
                target
                    .startup_params
                    .retain(|(name, _)| name != "application_name");
                target
                    .startup_params
                    .push(("application_name".into(), "pooler health check".into()));
                ServerConnector::new(target)
            })
            .collect();
        crate::router::monitor::spawn(&group, monitors);
        for (i, entry) in group.hosts.iter().enumerate() {
            if self.console.is_database_paused(database) {
                entry.pool.pause();
            }
            *entry.group.lock() = Some(Arc::clone(&group));
            pools.insert((database.to_owned(), user.to_owned(), i), Arc::clone(entry));
        }
        Arc::clone(&group.hosts[0])
    }

    /// What a new pool logs in to the server with (shared by a group's host pools).
    fn initial_credentials(
        &self,
        db: &DatabaseConfig,
        user: &str,
        secret: Option<&StoredSecret>,
    ) -> Arc<Mutex<ServerCredentials>> {
        let credentials = match (&db.user, &db.password) {
            (Some(_), Some(password)) => ServerCredentials::Password(password.expose().to_owned()),
            _ => server_credentials(self.secret(user).or_else(|| secret.cloned())),
        };
        Arc::new(Mutex::new(credentials))
    }

    fn new_pool(
        &self,
        config: &Config,
        db: &DatabaseConfig,
        database: &str,
        user: &str,
        credentials: Arc<Mutex<ServerCredentials>>,
        host: Option<usize>,
    ) -> PoolEntry {
        let settings = config.pool_settings(database, user);
        let target = server_target(config, db, user, Arc::clone(&credentials), host);
        let budgets = self.budgets(database, user, &settings);
        let connect_errors = Arc::new(ConnectErrors::default());
        let connector = RegisteringConnector::new(
            ServerConnector::new(target),
            Arc::clone(&self.registry),
            database,
            user,
            Arc::clone(&connect_errors),
        );
        let pool = Pool::new(
            match host {
                Some(i) => format!("{database}/{user}@{}", host_label(db, i)),
                None => format!("{database}/{user}"),
            },
            pool_settings(&settings, config, host.is_some()),
            Box::new(connector),
            budgets,
        );
        PoolEntry {
            pool,
            database: database.to_owned(),
            user: user.to_owned(),
            credentials,
            settings,
            welcome: Mutex::new(None),
            connect_errors,
            host: host.map(|i| host_label(db, i)),
            group: Mutex::new(None),
        }
    }

    fn budgets(
        &self,
        database: &str,
        user: &str,
        settings: &config::PoolSettings,
    ) -> Vec<Arc<Budget>> {
        let get = |map: &Mutex<HashMap<String, Arc<Budget>>>, name: &str, max: u32| {
            let mut map = map.lock();
            let budget = map
                .entry(name.to_owned())
                .or_insert_with(|| Budget::new(name, max as usize));
            budget.set_max(max as usize);
            Arc::clone(budget)
        };
        vec![
            get(&self.db_budgets, database, settings.max_db_connections),
            get(&self.user_budgets, user, settings.max_user_connections),
        ]
    }

    /// Session settings for a client of `entry`.
    pub fn session_settings(&self, entry: &PoolEntry) -> SessionSettings {
        let config = self.config();
        let g = &config.general;
        let s = &entry.settings;
        SessionSettings {
            pool_mode: s.pool_mode,
            max_packet_size: g.max_packet_size as usize,
            max_prepared_statements: g.max_prepared_statements as usize,
            query_timeout: nonzero(s.query_timeout),
            idle_transaction_timeout: nonzero(s.idle_transaction_timeout),
            transaction_timeout: nonzero(s.transaction_timeout),
            client_idle_timeout: nonzero(s.client_idle_timeout),
            server_reset_query: Some(g.server_reset_query.clone()).filter(|q| !q.is_empty()),
            is_reset_query_always: g.server_reset_query_always,
            server_check: match g.server_check() {
                config::ServerCheck::Disabled => None,
                config::ServerCheck::EmptyQuery => Some((g.server_check_delay, String::new())),
                config::ServerCheck::Query(q) => Some((g.server_check_delay, q.to_owned())),
            },
            is_logging_disconnections: g.log_disconnections,
            is_logging_pooler_errors: g.log_pooler_errors,
            route_wait_timeout: nonzero(s.query_wait_timeout),
        }
    }
}

/// What the pooler can log in to the server with, given the user's stored secret. A
/// SCRAM secret needs the keys of a client's SCRAM login first.
fn server_credentials(secret: Option<StoredSecret>) -> ServerCredentials {
    match secret {
        Some(StoredSecret::Plain(p)) => ServerCredentials::Password(p),
        Some(StoredSecret::Md5(s)) => ServerCredentials::Md5Secret(s),
        _ => ServerCredentials::None,
    }
}

/// `0` means disabled in PgBouncer's settings.
pub fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// The pool's settings; `is_host` for one host of a read/write-split entry.
fn pool_settings(s: &config::PoolSettings, config: &Config, is_host: bool) -> PoolSettings {
    let g = &config.general;
    PoolSettings {
        is_failing_waiters_on_network_errors: is_host,
        pool_size: s.pool_size as usize,
        min_pool_size: s.min_pool_size as usize,
        reserve_pool_size: s.reserve_pool_size as usize,
        reserve_pool_timeout: nonzero(s.reserve_pool_timeout),
        query_wait_timeout: nonzero(s.query_wait_timeout),
        server_login_retry: g.server_login_retry,
        server_lifetime: nonzero(s.server_lifetime),
        server_idle_timeout: nonzero(s.server_idle_timeout),
        is_round_robin: g.server_round_robin,
    }
}

/// TCP keepalive options from `[pgbouncer]`.
pub fn keepalive(config: &Config) -> KeepaliveOptions {
    let g = &config.general;
    let secs = |n: u32| (n > 0).then(|| Duration::from_secs(n.into()));
    KeepaliveOptions {
        is_enabled: g.tcp_keepalive,
        idle: secs(g.tcp_keepidle),
        interval: secs(g.tcp_keepintvl),
        retries: (g.tcp_keepcnt > 0).then_some(g.tcp_keepcnt),
        user_timeout: (g.tcp_user_timeout > 0)
            .then(|| Duration::from_millis(g.tcp_user_timeout.into())),
    }
}

fn server_target(
    config: &Config,
    db: &DatabaseConfig,
    user: &str,
    credentials: Arc<Mutex<ServerCredentials>>,
    host: Option<usize>,
) -> ServerTarget {
    let g = &config.general;
    // A host group's pool uses its own host; a plain pool uses the first host.
    let endpoint = match db.hosts.get(host.unwrap_or(0)) {
        Some(h) => ServerEndpoint::new(&h.host, h.port.unwrap_or(db.port)),
        None => ServerEndpoint::new(&g.unix_socket_dir, db.port),
    };
    let mut startup_params = Vec::new();
    for (name, value) in [
        ("client_encoding", &db.client_encoding),
        ("datestyle", &db.datestyle),
        ("timezone", &db.timezone),
        ("application_name", &db.application_name),
    ] {
        if let Some(value) = value {
            startup_params.push((name.to_owned(), value.clone()));
        }
    }
    // A plain host list (no read/write split) rotates like PgBouncer's.
    let host_list = match host {
        None if db.hosts.len() > 1 => db
            .hosts
            .iter()
            .map(|h| ServerEndpoint::new(&h.host, h.port.unwrap_or(db.port)))
            .collect(),
        _ => Vec::new(),
    };
    ServerTarget {
        host_list,
        is_rotating_hosts: db.load_balance_hosts == config::LoadBalanceHosts::RoundRobin,
        endpoint,
        database: db.server_dbname().to_owned(),
        user: user.to_owned(),
        credentials,
        startup_params,
        connect_query: db.connect_query.clone(),
        connect_timeout: nonzero(g.server_connect_timeout),
        keepalive: keepalive(config),
        max_prepared_statements: g.max_prepared_statements as usize,
        max_packet_size: g.max_packet_size as usize,
    }
}

/// `host:port` of host `i` of `db`'s list.
fn host_label(db: &DatabaseConfig, i: usize) -> String {
    match db.hosts.get(i) {
        Some(h) if h.host.contains(':') => format!("[{}]:{}", h.host, h.port.unwrap_or(db.port)),
        Some(h) => format!("{}:{}", h.host, h.port.unwrap_or(db.port)),
        None => String::new(),
    }
}

impl PoolMode {
    /// Whether servers are shared between clients between transactions.
    pub fn is_shared(self) -> bool {
        self != PoolMode::Session
    }
}
