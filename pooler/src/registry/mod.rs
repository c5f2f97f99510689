//! Live clients and server connections for SHOW CLIENTS / SERVERS / SOCKETS, KILL and
//! KILL_CLIENT. Each connection owns an `Arc` of its entry and writes its state with
//! relaxed atomics on state changes only (link, release, wait), so the hot path takes
//! no lock and allocates nothing; the console reads the entries when asked.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// Every live client and server of one pooler.
#[derive(Debug)]
pub struct Registry {
    started: Instant,
    started_wall: SystemTime,
    next_id: AtomicU64,
    clients: Mutex<HashMap<u64, Arc<ClientInfo>>>,
    servers: Mutex<HashMap<u64, Arc<ServerInfo>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            started_wall: SystemTime::now(),
            next_id: AtomicU64::new(1),
            clients: Mutex::new(HashMap::new()),
            servers: Mutex::new(HashMap::new()),
        }
    }
}

/// What a client is doing, as SHOW CLIENTS names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// Logged in, no server linked (`idle`; counted in `cl_active`).
    Idle,
    /// Linked to a server (`active`).
    Active,
    /// Waiting for a server (`waiting`; `cl_waiting`).
    Waiting,
}

/// What a server connection is doing, as SHOW SERVERS names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Connecting or logging in (`new`; `sv_login`).
    New,
    /// In the pool (`idle`, or `used` once idle longer than `server_check_delay`).
    Idle,
    /// Linked to a client (`active`).
    Active,
}

/// Where a connection's peer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP peer.
    Tcp(SocketAddr),
    /// A Unix-socket peer: the directory or `unix`, and the port in the socket name.
    Unix(String, u16),
}

/// A client connection as the console shows it.
#[derive(Debug)]
pub struct ClientInfo {
    /// Unique id (KILL_CLIENT), shared counter with servers.
    pub id: u64,
    /// Login user.
    pub user: String,
    /// Database the client asked for.
    pub database: String,
    /// User of the pool it is served by (the forced user if the database has one).
    pub pool_user: String,
    /// Remote end.
    pub remote: Endpoint,
    /// Local end.
    pub local: Endpoint,
    /// Peer process id over a Unix socket, else 0.
    pub remote_pid: u32,
    /// When it connected.
    pub connected_at: SystemTime,
    /// `application_name` at login.
    pub application_name: String,
    /// Whether this is an admin console session.
    pub is_console: bool,
    state: AtomicU8,
    /// Registry-relative µs when the client started waiting.
    wait_since_us: AtomicU64,
    /// Registry-relative µs of the last request.
    request_at_us: AtomicU64,
    linked_server: AtomicU64,
    prepared_statements: AtomicU32,
    kill: CancellationToken,
    kill_reason: OnceLock<&'static str>,
}

/// A server connection as the console shows it.
#[derive(Debug)]
pub struct ServerInfo {
    /// Unique id, shared counter with clients.
    pub id: u64,
    /// Database of the pool (the name clients use).
    pub database: String,
    /// User it logs in as.
    pub user: String,
    /// When the connection attempt started.
    pub connected_at: SystemTime,
    details: OnceLock<ServerDetails>,
    state: AtomicU8,
    linked_client: AtomicU64,
    /// Registry-relative µs of the last link or release.
    last_used_us: AtomicU64,
    prepared_statements: AtomicU32,
    /// Set by RECONNECT: closed when released.
    close_needed: std::sync::atomic::AtomicBool,
}

/// Facts known once a server connection logged in.
#[derive(Debug, Clone)]
pub struct ServerDetails {
    /// Remote end.
    pub remote: Endpoint,
    /// Local end.
    pub local: Option<SocketAddr>,
    /// Backend process id from BackendKeyData.
    pub backend_pid: u32,
}

impl ClientInfo {
    fn new(id: u64, entry: NewClient, now_us: u64) -> Self {
        Self {
            id,
            user: entry.user,
            database: entry.database,
            pool_user: entry.pool_user,
            remote: entry.remote,
            local: entry.local,
            remote_pid: entry.remote_pid,
            connected_at: SystemTime::now(),
            application_name: entry.application_name,
            is_console: entry.is_console,
            state: AtomicU8::new(0),
            wait_since_us: AtomicU64::new(0),
            request_at_us: AtomicU64::new(now_us),
            linked_server: AtomicU64::new(0),
            prepared_statements: AtomicU32::new(0),
            kill: CancellationToken::new(),
            kill_reason: OnceLock::new(),
        }
    }

    /// Current state.
    pub fn state(&self) -> ClientState {
        match self.state.load(Ordering::Relaxed) {
            1 => ClientState::Active,
            2 => ClientState::Waiting,
            _ => ClientState::Idle,
        }
    }

    /// Id of the linked server, 0 if none.
    pub fn linked_server(&self) -> u64 {
        self.linked_server.load(Ordering::Relaxed)
    }

    /// Statements this client prepared (as of its last release).
    pub fn prepared_statements(&self) -> u32 {
        self.prepared_statements.load(Ordering::Relaxed)
    }

    /// Asks the client's session to end with `reason` (KILL_CLIENT, KILL).
    pub fn kill(&self, reason: &'static str) {
        let _ = self.kill_reason.set(reason);
        self.kill.cancel();
    }

    /// Whether [`ClientInfo::kill`] was called.
    pub fn is_killed(&self) -> bool {
        self.kill.is_cancelled()
    }

    /// Why the client was killed.
    pub fn kill_reason(&self) -> &'static str {
        self.kill_reason
            .get()
            .copied()
            .unwrap_or("admin forced disconnect")
    }
}

impl ServerInfo {
    /// Current state.
    pub fn state(&self) -> ServerState {
        match self.state.load(Ordering::Relaxed) {
            1 => ServerState::Idle,
            2 => ServerState::Active,
            _ => ServerState::New,
        }
    }

    /// Id of the linked client, 0 if none.
    pub fn linked_client(&self) -> u64 {
        self.linked_client.load(Ordering::Relaxed)
    }

    /// Address, local address and backend pid once logged in.
    pub fn details(&self) -> Option<&ServerDetails> {
        self.details.get()
    }

    /// Statements prepared on this server (as of its last release).
    pub fn prepared_statements(&self) -> u32 {
        self.prepared_statements.load(Ordering::Relaxed)
    }

    /// Whether a RECONNECT asked for it to be closed when released.
    pub fn is_close_needed(&self) -> bool {
        self.close_needed.load(Ordering::Relaxed)
    }

    /// Marks it for closing when released (RECONNECT, KILL).
    pub fn mark_close_needed(&self) {
        self.close_needed.store(true, Ordering::Relaxed);
    }
}

/// Microseconds from `epoch` to `at` (0 if `at` is earlier).
#[inline]
fn micros_between(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch).as_micros()).unwrap_or(u64::MAX)
}

impl Registry {
    /// Microseconds since the registry was created: the clock of every stored stamp.
    #[inline]
    pub fn now_us(&self) -> u64 {
        self.us_at(Instant::now())
    }

    #[inline]
    fn us_at(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.started).as_micros()).unwrap_or(u64::MAX)
    }

    /// Wall-clock time of a registry stamp.
    pub fn wall_time(&self, us: u64) -> SystemTime {
        self.started_wall + std::time::Duration::from_micros(us)
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a logged-in client; it stays listed until the registration drops.
    pub fn register_client(self: &Arc<Self>, entry: NewClient) -> ClientRegistration {
        let info = Arc::new(ClientInfo::new(self.next_id(), entry, self.now_us()));
        self.clients.lock().insert(info.id, Arc::clone(&info));
        ClientRegistration {
            info,
            registry: Arc::downgrade(self),
            epoch: self.started,
        }
    }

    fn register_server(self: &Arc<Self>, database: &str, user: &str) -> ServerRegistration {
        let info = Arc::new(ServerInfo {
            id: self.next_id(),
            database: database.to_owned(),
            user: user.to_owned(),
            connected_at: SystemTime::now(),
            details: OnceLock::new(),
            state: AtomicU8::new(0),
            linked_client: AtomicU64::new(0),
            last_used_us: AtomicU64::new(self.now_us()),
            prepared_statements: AtomicU32::new(0),
            close_needed: std::sync::atomic::AtomicBool::new(false),
        });
        self.servers.lock().insert(info.id, Arc::clone(&info));
        ServerRegistration {
            info,
            registry: Arc::downgrade(self),
            epoch: self.started,
        }
    }

    /// Every registered client, sorted by id.
    pub fn clients(&self) -> Vec<Arc<ClientInfo>> {
        let mut all: Vec<_> = self.clients.lock().values().cloned().collect();
        all.sort_by_key(|c| c.id);
        all
    }

    /// Every registered server connection, sorted by id.
    pub fn servers(&self) -> Vec<Arc<ServerInfo>> {
        let mut all: Vec<_> = self.servers.lock().values().cloned().collect();
        all.sort_by_key(|s| s.id);
        all
    }

    /// The client with this id.
    pub fn client(&self, id: u64) -> Option<Arc<ClientInfo>> {
        self.clients.lock().get(&id).cloned()
    }

    /// The server with this id.
    pub fn server(&self, id: u64) -> Option<Arc<ServerInfo>> {
        self.servers.lock().get(&id).cloned()
    }

    /// Registry-relative µs since the client started waiting, if it waits.
    pub fn waited_us(&self, client: &ClientInfo) -> u64 {
        if client.state() != ClientState::Waiting {
            return 0;
        }
        self.now_us()
            .saturating_sub(client.wait_since_us.load(Ordering::Relaxed))
    }

    /// Wall time of a client's last request.
    pub fn client_request_time(&self, client: &ClientInfo) -> SystemTime {
        self.wall_time(client.request_at_us.load(Ordering::Relaxed))
    }

    /// Wall time of a server's last link or release.
    pub fn server_request_time(&self, server: &ServerInfo) -> SystemTime {
        self.wall_time(server.last_used_us.load(Ordering::Relaxed))
    }

    /// How long a server has been idle, in µs (0 when linked).
    pub fn server_idle_us(&self, server: &ServerInfo) -> u64 {
        if server.state() != ServerState::Idle {
            return 0;
        }
        self.now_us()
            .saturating_sub(server.last_used_us.load(Ordering::Relaxed))
    }
}

/// What the login knows about a new client.
#[derive(Debug, Clone)]
pub struct NewClient {
    /// Login user.
    pub user: String,
    /// Database asked for.
    pub database: String,
    /// User of its pool.
    pub pool_user: String,
    /// Remote end.
    pub remote: Endpoint,
    /// Local end.
    pub local: Endpoint,
    /// Peer pid over a Unix socket.
    pub remote_pid: u32,
    /// `application_name` at login.
    pub application_name: String,
    /// Admin console session.
    pub is_console: bool,
}

mod registration;

pub use registration::{ClientRegistration, RegisteringConnector, ServerRegistration};

#[cfg(test)]
mod tests {
    use super::*;

    fn client(registry: &Arc<Registry>) -> ClientRegistration {
        registry.register_client(NewClient {
            user: "u".into(),
            database: "d".into(),
            pool_user: "u".into(),
            remote: Endpoint::Unix("unix".into(), 1),
            local: Endpoint::Unix("unix".into(), 1),
            remote_pid: 0,
            application_name: String::new(),
            is_console: false,
        })
    }

    #[test]
    fn clients_are_listed_until_dropped() {
        let registry = Arc::new(Registry::default());
        let a = client(&registry);
        let b = client(&registry);
        assert_ne!(a.info().id, b.info().id);
        assert_eq!(registry.clients().len(), 2);
        drop(a);
        assert_eq!(registry.clients().len(), 1);
        assert!(registry.client(b.info().id).is_some());
    }

    #[test]
    fn waiting_then_unlinked() {
        let registry = Arc::new(Registry::default());
        let a = client(&registry);
        a.on_wait(Instant::now());
        assert_eq!(a.info().state(), ClientState::Waiting);
        a.on_unlinked();
        assert_eq!(a.info().state(), ClientState::Idle);
        assert_eq!(registry.waited_us(a.info()), 0);
    }

    #[test]
    fn kill_records_the_reason() {
        let registry = Arc::new(Registry::default());
        let a = client(&registry);
        a.info().kill("database removed");
        assert!(a.info().is_killed());
        assert_eq!(a.info().kill_reason(), "database removed");
    }

    #[test]
    fn a_detached_registration_is_listed_nowhere() {
        let a = ClientRegistration::detached();
        a.on_wait(Instant::now());
        assert_eq!(a.info().state(), ClientState::Waiting);
    }
}
