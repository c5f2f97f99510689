//! A connection to a PostgreSQL server: its socket and read buffer, the parameters the
//! server reported, its cancel key, and the prepared statements it holds.

mod connector;
mod login;
mod query;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};

pub use connector::{ServerConnector, ServerCredentials, ServerEndpoint, ServerTarget};
pub use query::{QueryError, QueryResult, quote_literal};

use crate::net::{PeerAddr, Stream};
use crate::session::prepared::ServerStatements;

/// Ids for SHOW SERVERS and logs.
static NEXT_SERVER_ID: AtomicU64 = AtomicU64::new(1);

/// The server parameters a pooler tracks (PgBouncer's varcache): name → value as the
/// server last reported it in ParameterStatus.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerParams {
    values: HashMap<String, String>,
    /// Bumped on every change, so a session can tell the server still matches the
    /// parameters it was last synced to.
    version: u64,
}

impl ServerParams {
    /// The value of `name` (exact name as the server reports it).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Records a ParameterStatus.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.values.get_mut(name) {
            Some(v) if v == value => return,
            Some(v) => value.clone_into(v),
            None => {
                self.values.insert(name.to_owned(), value.to_owned());
            }
        }
        self.version += 1;
    }

    /// Changes so far (see the field).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Forgets a parameter (after RESET of one the server does not report).
    pub fn remove(&mut self, name: &str) {
        if self.values.remove(name).is_some() {
            self.version += 1;
        }
    }

    /// Every parameter, for the client's welcome.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// One logged-in server connection.
pub struct ServerConnection {
    /// The socket.
    pub stream: Stream,
    /// Bytes read from the server and not yet processed.
    pub read_buf: BytesMut,
    /// Parameters as the server last reported them.
    pub params: ServerParams,
    /// The server's BackendKeyData, used to forward cancel requests.
    pub cancel_key: Option<(u32, Bytes)>,
    /// Cancel requests on their way to this server: it is not reused until they finish.
    pub cancels: std::sync::Arc<crate::cancel::CancelsInFlight>,
    /// Where it is connected to (shared: cancel targets point at it without copying).
    pub endpoint: std::sync::Arc<ServerEndpoint>,
    /// Prepared statements this server holds (transaction/statement pooling).
    pub statements: ServerStatements,
    /// (client parameter fingerprint, `params.version`) when the server last matched a
    /// client's parameters: the next client with the same fingerprint needs no check.
    pub params_synced: Option<(u64, u64)>,
    /// Unique id for the console.
    pub id: u64,
    /// Local address of the connection.
    pub local_addr: Option<std::net::SocketAddr>,
    /// The remote address.
    pub peer: PeerAddr,
    /// Its entry in the console's registry (set by the pool's connector); dropping
    /// the connection removes it.
    pub registration: Option<crate::registry::ServerRegistration>,
}

impl std::fmt::Debug for ServerConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConnection")
            .field("id", &self.id)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl ServerConnection {
    fn new(stream: Stream, endpoint: std::sync::Arc<ServerEndpoint>, max_prepared: usize) -> Self {
        let local_addr = match &stream {
            Stream::Tcp(s) => s.local_addr().ok(),
            Stream::Unix(_) => None,
        };
        let peer = stream.peer_addr();
        Self {
            stream,
            read_buf: BytesMut::with_capacity(crate::net::READ_CHUNK),
            params: ServerParams::default(),
            cancel_key: None,
            cancels: std::sync::Arc::default(),
            endpoint,
            statements: ServerStatements::new(max_prepared),
            params_synced: None,
            id: NEXT_SERVER_ID.fetch_add(1, Ordering::Relaxed),
            local_addr,
            peer,
            registration: None,
        }
    }

    /// The backend process id (from BackendKeyData), 0 if unknown.
    pub fn backend_pid(&self) -> u32 {
        self.cancel_key.as_ref().map_or(0, |(pid, _)| *pid)
    }
}

impl Drop for ServerConnection {
    /// Says goodbye with a Terminate if the socket takes it without waiting, so the
    /// server logs a clean disconnect instead of an unexpected EOF.
    fn drop(&mut self) {
        let mut terminate = BytesMut::with_capacity(5);
        protocol::pg::encode::terminate(&mut terminate);
        let _ = self.stream.try_write_buf(&mut terminate);
    }
}
