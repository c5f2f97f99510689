//! The handles connections hold on their registry entries: each state change is one or
//! two relaxed atomic stores, and dropping the handle removes the entry. Also the pool
//! connector wrapper that registers server connections from their first attempt on.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use super::{
    ClientInfo, ClientState, Endpoint, NewClient, Registry, ServerDetails, ServerInfo, ServerState,
};
use crate::pool::{ConnectFuture, Connector};
use crate::server::{ServerConnection, ServerConnector};
use crate::stats::ConnectErrors;

/// A client's place in the registry; removed on drop. Cheap to call on every state
/// change: each method is one or two relaxed atomic stores.
#[derive(Debug)]
pub struct ClientRegistration {
    pub(super) info: Arc<ClientInfo>,
    pub(super) registry: Weak<Registry>,
    /// The registry's clock origin, copied so stamping takes no reference count.
    pub(super) epoch: Instant,
}

impl ClientRegistration {
    /// A registration listed nowhere, for sessions created without a registry.
    pub fn detached() -> Self {
        let entry = NewClient {
            user: String::new(),
            database: String::new(),
            pool_user: String::new(),
            remote: Endpoint::Unix("unix".to_owned(), 0),
            local: Endpoint::Unix("unix".to_owned(), 0),
            remote_pid: 0,
            application_name: String::new(),
            is_console: false,
        };
        Self {
            info: Arc::new(ClientInfo::new(0, entry, 0)),
            registry: Weak::new(),
            epoch: Instant::now(),
        }
    }

    /// The shared entry.
    pub fn info(&self) -> &Arc<ClientInfo> {
        &self.info
    }

    /// Resolves when the console killed this client.
    pub async fn killed(&self) {
        self.info.kill.cancelled().await;
    }

    fn stamp(&self, at: Instant) -> u64 {
        super::micros_between(self.epoch, at)
    }

    /// The client sent bytes at `at`.
    #[inline]
    pub fn on_request(&self, at: Instant) {
        self.info
            .request_at_us
            .store(self.stamp(at), Ordering::Relaxed);
    }

    /// The client is queued for a server since `since`.
    pub fn on_wait(&self, since: Instant) {
        self.info
            .wait_since_us
            .store(self.stamp(since), Ordering::Relaxed);
        self.info
            .state
            .store(ClientState::Waiting as u8, Ordering::Relaxed);
    }

    /// The client got `server`.
    pub fn on_link(&self, server: &ServerConnection) {
        let server_id = server.registration.as_ref().map_or(0, |r| r.info.id);
        if let Some(registration) = &server.registration {
            registration.on_link(self.info.id);
        }
        self.info.linked_server.store(server_id, Ordering::Relaxed);
        self.info
            .state
            .store(ClientState::Active as u8, Ordering::Relaxed);
    }

    /// The client released `server`; `prepared` is how many statements it holds now.
    pub fn on_release(&self, server: &ServerConnection, prepared: usize) {
        if let Some(registration) = &server.registration {
            registration.on_release(server.statements.len());
        }
        self.info.linked_server.store(0, Ordering::Relaxed);
        self.info.prepared_statements.store(
            u32::try_from(prepared).unwrap_or(u32::MAX),
            Ordering::Relaxed,
        );
        self.info
            .state
            .store(ClientState::Idle as u8, Ordering::Relaxed);
    }

    /// The client stopped waiting without a server (it failed or left).
    pub fn on_unlinked(&self) {
        self.info.linked_server.store(0, Ordering::Relaxed);
        self.info
            .state
            .store(ClientState::Idle as u8, Ordering::Relaxed);
    }
}

impl Drop for ClientRegistration {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            registry.clients.lock().remove(&self.info.id);
        }
    }
}

/// A server connection's place in the registry; removed on drop (the connection is
/// closed or never opened).
#[derive(Debug)]
pub struct ServerRegistration {
    pub(super) info: Arc<ServerInfo>,
    pub(super) registry: Weak<Registry>,
    /// The registry's clock origin (see [`ClientRegistration`]).
    pub(super) epoch: Instant,
}

impl ServerRegistration {
    /// The shared entry.
    pub fn info(&self) -> &Arc<ServerInfo> {
        &self.info
    }

    fn now_us(&self) -> u64 {
        super::micros_between(self.epoch, Instant::now())
    }

    fn on_link(&self, client: u64) {
        self.info.linked_client.store(client, Ordering::Relaxed);
        self.info
            .last_used_us
            .store(self.now_us(), Ordering::Relaxed);
        self.info
            .state
            .store(ServerState::Active as u8, Ordering::Relaxed);
    }

    fn on_release(&self, prepared: usize) {
        self.info.linked_client.store(0, Ordering::Relaxed);
        self.info.prepared_statements.store(
            u32::try_from(prepared).unwrap_or(u32::MAX),
            Ordering::Relaxed,
        );
        self.info
            .last_used_us
            .store(self.now_us(), Ordering::Relaxed);
        self.info
            .state
            .store(ServerState::Idle as u8, Ordering::Relaxed);
    }
}

impl Drop for ServerRegistration {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            registry.servers.lock().remove(&self.info.id);
        }
    }
}

/// The pool's connector wrapped so every connection is listed in the registry from its
/// first connect attempt (`new`) on, and failed attempts are counted by kind.
pub struct RegisteringConnector {
    inner: ServerConnector,
    registry: Arc<Registry>,
    database: String,
    user: String,
    errors: Arc<ConnectErrors>,
}

impl RegisteringConnector {
    /// Wraps `inner` for the pool (`database`, `user`).
    pub fn new(
        inner: ServerConnector,
        registry: Arc<Registry>,
        database: &str,
        user: &str,
        errors: Arc<ConnectErrors>,
    ) -> Self {
        Self {
            inner,
            registry,
            database: database.to_owned(),
            user: user.to_owned(),
            errors,
        }
    }
}

impl Connector<ServerConnection> for RegisteringConnector {
    fn connect(&self) -> ConnectFuture<ServerConnection> {
        let registration = self.registry.register_server(&self.database, &self.user);
        let connect = self.inner.connect();
        let errors = Arc::clone(&self.errors);
        Box::pin(async move {
            let mut conn = connect
                .await
                .inspect_err(|failure| errors.record(failure))?;
            let remote = match &conn.peer {
                crate::net::PeerAddr::Tcp(addr) => Endpoint::Tcp(*addr),
                crate::net::PeerAddr::Unix => {
                    Endpoint::Unix(conn.endpoint.host().to_owned(), conn.endpoint.port())
                }
            };
            let _ = registration.info.details.set(ServerDetails {
                remote,
                local: conn.local_addr,
                backend_pid: conn.backend_pid(),
            });
            registration.on_release(0);
            conn.registration = Some(registration);
            Ok(conn)
        })
    }
}
