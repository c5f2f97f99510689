//! A pool of server connections for one (database, user): checkout / checkin with FIFO
//! waiters, the reserve pool, login-retry back-off, PAUSE and RECONNECT.
//!
//! The pool is generic over the connection type so its logic is tested and benchmarked
//! with in-memory fakes; the pooler instantiates it with `server::ServerConnection`.

mod budget;
mod guard;
pub mod inner;
mod maintenance;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use budget::BudgetMember;
pub use budget::{Budget, BudgetPermit};
pub use guard::{PooledServer, Waiting};
use inner::{Inner, Slot};

use crate::stats::PoolStats;

/// Why a client did not get a server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Waited longer than `query_wait_timeout`.
    #[error("query_wait_timeout")]
    QueryWaitTimeout,
    /// The server refused to log in and the pool has no working connection: the
    /// server's own error is passed on, as PgBouncer does.
    #[error("{0}")]
    ServerLogin(Arc<ConnectFailure>),
    /// A login failed less than `server_login_retry` ago; new clients fail fast.
    #[error("server login has been failing, cached error: {} (server_login_retry)", .0.message)]
    LoginRetry(Arc<ConnectFailure>),
    /// The pool was closed (database removed, KILL, shutdown).
    #[error("{0}")]
    Closed(&'static str),
}

/// Why opening a server connection failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConnectFailure {
    /// The SQLSTATE the server sent, when the server itself refused the login.
    pub sqlstate: Option<String>,
    /// What went wrong, for clients and logs.
    pub message: String,
}

impl ConnectFailure {
    /// Whether the server itself answered with an error (as opposed to a network
    /// failure). `57P03` (the database system is starting up) does not count: clients
    /// keep waiting through it, as with PgBouncer.
    pub fn is_server_rejection(&self) -> bool {
        matches!(&self.sqlstate, Some(code) if code != "57P03")
    }
}

/// A boxed connect future.
pub type ConnectFuture<C> = Pin<Box<dyn Future<Output = Result<C, ConnectFailure>> + Send>>;

/// Opens new server connections for a pool.
pub trait Connector<C>: Send + Sync + 'static {
    /// Opens and logs in one connection.
    fn connect(&self) -> ConnectFuture<C>;
}

/// Size limits and timeouts of one pool (PgBouncer's names; `None`/0 = disabled).
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSettings {
    /// `pool_size` / `default_pool_size`; 0 means unlimited.
    pub pool_size: usize,
    /// `min_pool_size`: kept open in the background.
    pub min_pool_size: usize,
    /// `reserve_pool_size`: extra servers once a client waited `reserve_pool_timeout`.
    pub reserve_pool_size: usize,
    /// `reserve_pool_timeout`.
    pub reserve_pool_timeout: Option<Duration>,
    /// `query_wait_timeout`.
    pub query_wait_timeout: Option<Duration>,
    /// `server_login_retry`.
    pub server_login_retry: Duration,
    /// `server_lifetime`.
    pub server_lifetime: Option<Duration>,
    /// `server_idle_timeout`.
    pub server_idle_timeout: Option<Duration>,
    /// `server_round_robin`: reuse the least recently used server instead of the most.
    pub is_round_robin: bool,
    /// One host of a read/write-split entry: a network failure to connect fails the
    /// waiters at once (their sessions move to another host) instead of letting them wait.
    pub is_failing_waiters_on_network_errors: bool,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            pool_size: 20,
            min_pool_size: 0,
            reserve_pool_size: 0,
            reserve_pool_timeout: Some(Duration::from_secs(5)),
            query_wait_timeout: Some(Duration::from_secs(120)),
            server_login_retry: Duration::from_secs(15),
            server_lifetime: Some(Duration::from_secs(3600)),
            server_idle_timeout: Some(Duration::from_secs(600)),
            is_round_robin: false,
            is_failing_waiters_on_network_errors: false,
        }
    }
}

impl PoolSettings {
    fn capacity(&self) -> usize {
        if self.pool_size == 0 {
            usize::MAX
        } else {
            self.pool_size
        }
    }

    fn capacity_with_reserve(&self) -> usize {
        self.capacity().saturating_add(self.reserve_pool_size)
    }
}

/// Numbers for SHOW POOLS and metrics, read under the lock at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolCounts {
    /// Servers lent to clients.
    pub active: usize,
    /// Idle servers.
    pub idle: usize,
    /// Idle servers not used for longer than `server_check_delay`.
    pub used: usize,
    /// Servers being opened.
    pub connecting: usize,
    /// Clients waiting for a server.
    pub waiting: usize,
    /// How long the oldest waiter has waited.
    pub max_wait: Duration,
    /// Servers beyond `pool_size` (taken from the reserve pool).
    pub reserve_in_use: usize,
    /// Whether the pool is paused.
    pub is_paused: bool,
}

impl PoolCounts {
    /// Adds `other` (another host's pool of the same database and user).
    pub fn merge(&mut self, other: &PoolCounts) {
        self.active += other.active;
        self.idle += other.idle;
        self.used += other.used;
        self.connecting += other.connecting;
        self.waiting += other.waiting;
        self.max_wait = self.max_wait.max(other.max_wait);
        self.reserve_in_use += other.reserve_in_use;
        self.is_paused |= other.is_paused;
    }
}

pub(crate) struct Shared<C> {
    inner: Mutex<Inner<C>>,
    settings: Mutex<PoolSettings>,
    connector: Box<dyn Connector<C>>,
    budgets: Vec<Arc<Budget>>,
    stats: PoolStats,
    name: String,
}

/// A cheap-to-clone handle to one pool.
pub struct Pool<C> {
    shared: Arc<Shared<C>>,
}

impl<C> Clone for Pool<C> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<C> std::fmt::Debug for Pool<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

impl<C: Send + 'static> Pool<C> {
    /// Creates a pool and starts its maintenance task (min size, idle and lifetime
    /// expiry). Must be called inside a tokio runtime. `budgets` are the
    /// `max_db_connections` / `max_user_connections` caps it shares with other pools.
    pub fn new(
        name: String,
        settings: PoolSettings,
        connector: Box<dyn Connector<C>>,
        budgets: Vec<Arc<Budget>>,
    ) -> Self {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            settings: Mutex::new(settings),
            connector,
            budgets,
            stats: PoolStats::default(),
            name,
        });
        for budget in &shared.budgets {
            budget.register(Arc::downgrade(&shared) as _);
        }
        maintenance::spawn(Arc::downgrade(&shared));
        Self { shared }
    }

    /// The pool's name (`database/user`), for logs.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Counters for SHOW STATS and metrics.
    pub fn stats(&self) -> &PoolStats {
        &self.shared.stats
    }

    /// The current settings.
    pub fn settings(&self) -> PoolSettings {
        self.shared.settings.lock().clone()
    }

    /// Applies new settings (RELOAD); takes effect for the next checkout.
    pub fn update_settings(&self, settings: PoolSettings) {
        *self.shared.settings.lock() = settings;
        self.shared.launch_connections();
    }

    /// Starts waiting for a server. The returned [`Waiting`] must be awaited with
    /// [`Waiting::wait`]; dropping it at any point (timeout, client gone) leaves the
    /// queue cleanly and returns a server that was handed over meanwhile.
    pub fn checkout(&self) -> Waiting<C> {
        let since = Instant::now();
        let (tx, rx) = oneshot::channel();
        let mut inner = self.shared.inner.lock();
        if !inner.is_paused {
            let settings = self.shared.settings.lock();
            while let Some(slot) = pop_idle(&mut inner, settings.is_round_robin) {
                if is_expired(&slot, &settings, inner.generation, since) {
                    continue; // dropped here: closes the connection
                }
                inner.active += 1;
                drop(settings);
                drop(inner);
                return Waiting::ready(self.clone(), slot, since);
            }
            if let Some((at, failure)) = &inner.login_failure
                && !inner.has_working_server()
                && since.duration_since(*at) < settings.server_login_retry
                && failure_is_rejection(failure)
            {
                let error = match failure {
                    PoolError::ServerLogin(f) => PoolError::LoginRetry(Arc::clone(f)),
                    other => other.clone(),
                };
                drop(settings);
                drop(inner);
                return Waiting::failed(self.clone(), error);
            }
        }
        let id = inner.enqueue(since, tx);
        let settings = self.shared.settings.lock().clone();
        drop(inner);
        self.shared.launch_connections();
        Waiting::queued(self.clone(), id, rx, since, settings)
    }

    /// Pauses the pool: no server is handed out until [`Pool::resume`].
    pub fn pause(&self) {
        self.shared.inner.lock().is_paused = true;
    }

    /// Resumes a paused pool and serves its waiters.
    pub fn resume(&self) {
        let mut inner = self.shared.inner.lock();
        inner.is_paused = false;
        while !inner.waiters.is_empty() {
            let Some(slot) = inner.idle.pop_back() else {
                break;
            };
            if let Some(back) = inner.hand_to_waiter(slot) {
                inner.idle.push_back(back);
                break;
            }
        }
        drop(inner);
        self.shared.launch_connections();
    }

    /// Marks every current server to be closed when released (RECONNECT) and closes the
    /// idle ones now.
    pub fn reconnect(&self) {
        let idle = {
            let mut inner = self.shared.inner.lock();
            inner.generation += 1;
            inner.is_login_verified = false;
            std::mem::take(&mut inner.idle)
        };
        drop(idle);
        self.shared.launch_connections();
    }

    /// The server answers again (its health check succeeded): forget the cached login
    /// failure so connections are opened now, not after `server_login_retry`.
    pub fn clear_login_failure(&self) {
        self.shared.inner.lock().login_failure = None;
        self.shared.launch_connections();
    }

    /// The server is unreachable (a health check or a session found it down): closes
    /// the idle servers, retires lent ones and fails every waiter with a connection
    /// failure, so routed clients move to another host instead of waiting.
    pub fn fail_unreachable(&self, message: &str) {
        let failure = Arc::new(ConnectFailure {
            sqlstate: None,
            message: message.to_owned(),
        });
        self.retire_all(&PoolError::ServerLogin(failure));
    }

    /// Closes the pool: fails all waiters with `reason` and closes idle servers.
    /// Lent servers are closed when they come back.
    pub fn close(&self, reason: &'static str) {
        self.retire_all(&PoolError::Closed(reason));
    }

    /// Fails every waiter with `error`, closes the idle servers (outside the lock) and
    /// retires the lent ones.
    fn retire_all(&self, error: &PoolError) {
        let idle = {
            let mut inner = self.shared.inner.lock();
            inner.generation += 1;
            inner.fail_waiters(error);
            std::mem::take(&mut inner.idle)
        };
        drop(idle);
    }

    /// A snapshot of the pool's counts. `check_delay` splits idle servers into
    /// `idle` and `used` as SHOW POOLS does.
    pub fn counts(&self, check_delay: Duration) -> PoolCounts {
        let now = Instant::now();
        let inner = self.shared.inner.lock();
        let pool_size = self.shared.settings.lock().capacity();
        let used = inner
            .idle
            .iter()
            .filter(|s| now.duration_since(s.idle_since) > check_delay)
            .count();
        PoolCounts {
            active: inner.active,
            idle: inner.idle.len() - used,
            used,
            connecting: inner.connecting,
            waiting: inner.waiters.len(),
            max_wait: inner
                .oldest_wait()
                .map(|t| now.duration_since(t))
                .unwrap_or_default(),
            reserve_in_use: inner.total().saturating_sub(pool_size),
            is_paused: inner.is_paused,
        }
    }

    /// Returns a server for reuse, or closes it if it is too old or from before a
    /// RECONNECT. Called by [`PooledServer::checkin`].
    fn checkin(&self, mut slot: Slot<C>) {
        let now = Instant::now();
        let mut inner = self.shared.inner.lock();
        inner.active -= 1;
        let settings = self.shared.settings.lock();
        let is_expired = is_expired(&slot, &settings, inner.generation, now);
        let is_over_capacity = inner.total() >= settings.capacity_with_reserve();
        drop(settings);
        if is_expired || is_over_capacity {
            drop(inner);
            drop(slot);
            self.shared.launch_connections();
            return;
        }
        slot.idle_since = now;
        if inner.is_paused {
            inner.idle.push_back(slot);
            return;
        }
        if let Some(back) = inner.hand_to_waiter(slot) {
            inner.idle.push_back(back);
            let is_starving = self.shared.budgets.iter().any(|b| b.has_starving_pools());
            drop(inner);
            if is_starving {
                self.shared.evict_one_idle();
            }
        }
    }

    /// Closes a lent server that is in an unknown state, freeing its place.
    fn discard(&self, slot: Slot<C>) {
        self.shared.inner.lock().active -= 1;
        drop(slot);
        self.shared.launch_connections();
    }

    /// Asks for one connection beyond `pool_size` when the oldest waiter has waited
    /// `reserve_pool_timeout` (PgBouncer's `taking connection from reserve_pool`).
    fn launch_reserve(&self) {
        let now = Instant::now();
        {
            let mut inner = self.shared.inner.lock();
            let settings = self.shared.settings.lock();
            let Some(timeout) = settings.reserve_pool_timeout else {
                return;
            };
            let Some(oldest) = inner.oldest_wait() else {
                return;
            };
            if now.duration_since(oldest) < timeout
                || inner.total() >= settings.capacity_with_reserve()
                || inner.connecting >= inner.waiters.len()
            {
                return;
            }
            inner.connecting += 1;
        }
        match self.shared.acquire_budget() {
            Some(permits) => {
                tracing::info!(pool = %self.shared.name, "taking connection from reserve_pool");
                self.shared.spawn_connect(permits);
            }
            None => self.shared.inner.lock().connecting -= 1,
        }
    }
}

impl<C: Send + 'static> Shared<C> {
    /// Opens connections while clients wait and the pool is below its size (or below
    /// `min_pool_size`), respecting budgets and the login-retry back-off.
    pub(crate) fn launch_connections(self: &Arc<Self>) {
        loop {
            {
                let mut inner = self.inner.lock();
                let settings = self.settings.lock();
                let now = Instant::now();
                if let Some((at, _)) = &inner.login_failure
                    && now.duration_since(*at) < settings.server_login_retry
                {
                    return;
                }
                let below_min = settings.min_pool_size.saturating_sub(inner.total());
                let demand = if inner.is_paused {
                    0
                } else {
                    inner.waiters.len()
                };
                if inner.connecting >= demand.max(below_min + inner.connecting)
                    || inner.total() >= settings.capacity()
                {
                    return;
                }
                inner.connecting += 1;
            }
            // Budgets are taken without holding this pool's lock: acquiring may evict
            // an idle server of another pool, which takes that pool's lock.
            match self.acquire_budget() {
                Some(permits) => self.spawn_connect(permits),
                None => {
                    self.inner.lock().connecting -= 1;
                    return;
                }
            }
        }
    }

    fn acquire_budget(self: &Arc<Self>) -> Option<Vec<BudgetPermit>> {
        let mut permits = Vec::with_capacity(self.budgets.len());
        for budget in &self.budgets {
            match budget.try_acquire(Arc::downgrade(self) as _) {
                Some(p) => permits.push(p),
                None => return None, // already-acquired permits are released on drop
            }
        }
        Some(permits)
    }

    fn spawn_connect(self: &Arc<Self>, permits: Vec<BudgetPermit>) {
        let shared = Arc::clone(self);
        let connect = self.connector.connect();
        tokio::spawn(async move {
            let result = connect.await;
            shared.finish_connect(result, permits);
        });
    }

    fn finish_connect(
        self: &Arc<Self>,
        result: Result<C, ConnectFailure>,
        permits: Vec<BudgetPermit>,
    ) {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        inner.connecting -= 1;
        match result {
            Ok(conn) => {
                inner.login_failure = None;
                inner.is_login_verified = true;
                let slot = Slot {
                    conn,
                    created_at: now,
                    idle_since: now,
                    generation: inner.generation,
                    permits,
                };
                if inner.is_paused {
                    inner.idle.push_back(slot);
                } else if let Some(back) = inner.hand_to_waiter(slot) {
                    inner.idle.push_back(back);
                }
                drop(inner);
                self.launch_connections();
            }
            Err(failure) => {
                tracing::warn!(pool = %self.name, "server connection failed: {failure}");
                let error = PoolError::ServerLogin(Arc::new(failure));
                let has_no_server = !inner.has_working_server();
                let is_failing_fast = self.settings.lock().is_failing_waiters_on_network_errors;
                if has_no_server && (failure_is_rejection(&error) || is_failing_fast) {
                    inner.fail_waiters(&error);
                }
                inner.login_failure = Some((now, error));
                drop(inner);
                drop(permits);
                let retry = self.settings.lock().server_login_retry;
                let weak = Arc::downgrade(self);
                tokio::spawn(async move {
                    tokio::time::sleep(retry).await;
                    if let Some(shared) = weak.upgrade() {
                        shared.launch_connections();
                    }
                });
            }
        }
    }
}

fn failure_is_rejection(error: &PoolError) -> bool {
    matches!(error, PoolError::ServerLogin(f) if f.is_server_rejection())
}

fn pop_idle<C>(inner: &mut Inner<C>, is_round_robin: bool) -> Option<Slot<C>> {
    if is_round_robin {
        inner.idle.pop_front()
    } else {
        inner.idle.pop_back()
    }
}

fn is_expired<C>(slot: &Slot<C>, settings: &PoolSettings, generation: u64, now: Instant) -> bool {
    slot.generation != generation
        || settings
            .server_lifetime
            .is_some_and(|life| now.duration_since(slot.created_at) >= life)
}

#[cfg(test)]
mod tests;
