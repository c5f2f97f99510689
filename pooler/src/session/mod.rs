//! One client connection after login: the `run` loop that links the client to a server
//! for a transaction (or session, or statement), relays both ways, and releases the
//! server exactly when it is clean.

pub mod exchange;
mod finish;
mod frames;
mod io;
mod link;
mod lost;
pub mod routing;

pub use finish::{fatal, log_pooler_error};
pub mod params;
pub mod prepared;
pub mod relay;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use protocol::ProtocolError;
use protocol::pg::TransactionStatus;
use tokio_util::sync::CancellationToken;

use crate::cancel::CancelHandle;
use crate::config::PoolMode;
use crate::pool::{Pool, PoolError, PooledServer};
use crate::server::ServerConnection;
use exchange::Exchange;
use params::ClientParams;
use prepared::{ClientStatements, StatementRegistry};

/// Buffered bytes in one direction above which the session stops reading the other side.
const BACKPRESSURE_BYTES: usize = 256 * 1024;

/// Consecutive steps of the serve loop that moved no byte and changed no link before
/// the session is ended as stalled. Every step waits on a socket, a timer or a signal
/// unless it moved something, so only a bug can reach this: it bounds the damage to one
/// client instead of a spinning worker thread.
const MAX_STEPS_WITHOUT_PROGRESS: u32 = 10_000;

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The client closed its connection or sent Terminate.
    #[error("client closed the connection")]
    ClientClosed,
    /// Socket error on the client side.
    #[error("client connection failed: {0}")]
    ClientIo(std::io::Error),
    /// The linked server went away.
    #[error("server conn crashed?")]
    ServerClosed(#[source] std::io::Error),
    /// The client broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(ProtocolError),
    /// The server sent bytes that break the protocol.
    #[error("server protocol error: {0}")]
    ServerProtocol(ProtocolError),
    /// Applying the client's parameters on a server failed.
    #[error("invalid server parameter: {0}")]
    ServerParameter(String),
    /// No server could be had.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// A condition PgBouncer answers with a FATAL error and a closed connection.
    #[error("{0}")]
    Fatal(&'static str),
    /// The pooler is shutting down.
    #[error("pooler is shutting down")]
    Shutdown,
    /// A replica answered its first reply with an error that another host may not give
    /// (shutdown, recovery conflict): the transaction moves if nothing reached the client.
    #[error("server conn crashed? ({0})")]
    ServerRetryable(String),
    /// The session stopped making progress (a bug): ended so it cannot hold a thread.
    #[error("pooler internal error: the session stopped making progress")]
    Stalled(String),
}

impl SessionError {
    pub(crate) fn protocol(what: &'static str) -> Self {
        Self::Protocol(ProtocolError::invalid(what))
    }
}

/// Per-session settings, resolved from the config for this client's pool.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Session, transaction or statement pooling.
    pub pool_mode: PoolMode,
    /// `max_packet_size`.
    pub max_packet_size: usize,
    /// `max_prepared_statements` (0 = pass named statements through).
    pub max_prepared_statements: usize,
    /// `query_timeout`.
    pub query_timeout: Option<Duration>,
    /// `idle_transaction_timeout`.
    pub idle_transaction_timeout: Option<Duration>,
    /// `transaction_timeout`.
    pub transaction_timeout: Option<Duration>,
    /// `client_idle_timeout`.
    pub client_idle_timeout: Option<Duration>,
    /// `server_reset_query` (empty = none).
    pub server_reset_query: Option<String>,
    /// `server_reset_query_always`.
    pub is_reset_query_always: bool,
    /// `server_check_delay` and `server_check_query` (empty = empty query); `None`
    /// when checks are off.
    pub server_check: Option<(Duration, String)>,
    /// `log_disconnections`.
    pub is_logging_disconnections: bool,
    /// `log_pooler_errors`.
    pub is_logging_pooler_errors: bool,
    /// How long a routed transaction waits for a usable host (`query_wait_timeout`).
    pub route_wait_timeout: Option<Duration>,
}

/// Client frames sent to a replica before any of its replies reached the client, to
/// resend elsewhere if the replica fails. Dropped as soon as a server reply is relayed.
#[derive(Debug)]
struct Retry {
    /// Frames forwarded to the server (those the pooler answered itself are not kept).
    frames: BytesMut,
    /// Moves so far for this transaction.
    reroutes: u32,
}

/// A logged-in client connection.
pub struct ClientSession {
    client: crate::net::Stream,
    client_in: BytesMut,
    client_out: BytesMut,
    server: Option<PooledServer<ServerConnection>>,
    server_out: BytesMut,
    exchange: Exchange,
    status: TransactionStatus,
    pool: Pool<ServerConnection>,
    settings: SessionSettings,
    statements: ClientStatements,
    params: ClientParams,
    registry: Arc<StatementRegistry>,
    shutdown: CancellationToken,
    cancel: CancelHandle,
    last_client_activity: Instant,
    /// Last bytes from the linked server: idle-in-transaction time counts from the later
    /// of this and the client's last bytes.
    last_server_activity: Instant,
    linked_at: Instant,
    last_request_at: Instant,
    /// Bytes moved and link changes so far: each serve step must add to it or wait.
    progress: u64,
    _admission: crate::cluster::ClientSlot,
    /// This client's entry in the console's registry (SHOW CLIENTS, KILL_CLIENT).
    registration: crate::registry::ClientRegistration,
    /// Read/write routing when the client's database is a host group.
    router: Option<routing::SessionRouter>,
    retry: Option<Retry>,
    /// The server died mid-transaction: answer locally until the client ends it.
    lost: Option<lost::LostTransaction>,
}

impl ClientSession {
    /// A session for a client that completed login. `client_in` may already hold the
    /// first messages the client pipelined after its startup packet.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: crate::net::Stream,
        client_in: BytesMut,
        pool: Pool<ServerConnection>,
        settings: SessionSettings,
        params: ClientParams,
        registry: Arc<StatementRegistry>,
        shutdown: CancellationToken,
        cancel: CancelHandle,
        admission: crate::cluster::ClientSlot,
    ) -> Self {
        let now = Instant::now();
        Self {
            client,
            client_in,
            client_out: BytesMut::new(),
            server: None,
            server_out: BytesMut::new(),
            exchange: Exchange::default(),
            status: TransactionStatus::Idle,
            pool,
            settings,
            statements: ClientStatements::default(),
            params,
            registry,
            shutdown,
            cancel,
            last_client_activity: now,
            last_server_activity: now,
            linked_at: now,
            last_request_at: now,
            progress: 0,
            _admission: admission,
            registration: crate::registry::ClientRegistration::detached(),
            router: None,
            retry: None,
            lost: None,
        }
    }

    /// Routes the session's transactions across a host group.
    pub fn with_router(mut self, router: routing::SessionRouter) -> Self {
        self.router = Some(router);
        self
    }

    /// Lists the session in the console's registry; KILL_CLIENT then ends it.
    pub fn with_registration(mut self, registration: crate::registry::ClientRegistration) -> Self {
        self.registration = registration;
        self
    }

    /// Serves the client until it leaves or fails, then releases or closes its server and
    /// tells the client why it is being disconnected.
    pub async fn run(mut self) {
        let result = self.serve().await;
        self.finish(result).await;
    }

    /// Steps until the client leaves or fails. No step can spin: each either moves
    /// bytes or a link, or waits; a step that did neither is counted, and the session
    /// ends after [`MAX_STEPS_WITHOUT_PROGRESS`] of them in a row. Every wait is on a
    /// socket's readiness, which takes from tokio's cooperative budget, so even a client
    /// that is always ready yields its worker thread to the accept loop, the console and
    /// the signal handlers.
    async fn serve(&mut self) -> Result<(), SessionError> {
        let mut steps_without_progress = 0;
        loop {
            let before = self.progress;
            self.step().await?;
            if self.progress == before {
                steps_without_progress += 1;
                if steps_without_progress >= MAX_STEPS_WITHOUT_PROGRESS {
                    let state = self.describe_state();
                    tracing::error!(%state, "session stopped making progress; closing it");
                    return Err(SessionError::Stalled(state));
                }
            } else {
                steps_without_progress = 0;
            }
        }
    }

    async fn step(&mut self) -> Result<(), SessionError> {
        if self.server.is_some() {
            match self.active_step().await {
                Ok(()) if self.is_releasable() => {
                    self.release().await;
                    self.progress += 1;
                }
                Ok(()) => {}
                Err(error) => {
                    if self.can_reroute(&error) {
                        self.reroute(&error);
                    } else if !self.survive_server_loss(&error) {
                        return Err(error);
                    }
                    self.progress += 1;
                }
            }
            return Ok(());
        }
        if self.lost.is_some() && self.has_complete_frame()? {
            let before = self.client_in.len();
            self.answer_lost_transaction()?;
            self.progress += (before - self.client_in.len()) as u64;
            if self.lost.is_some() {
                return Ok(());
            }
        }
        if self.answer_unlinked()? {
            self.link_server().await?;
            self.progress += 1;
        } else {
            self.idle_step().await?;
        }
        Ok(())
    }

    /// The session's protocol state, for the log line of a stalled session.
    fn describe_state(&self) -> String {
        format!(
            "linked={} status={:?} phase={:?} owed={} discarding={} client_in={} client_out={} server_out={}",
            self.server.is_some(),
            self.status,
            self.exchange.phase(),
            self.exchange.len(),
            self.exchange.is_discarding(),
            self.client_in.len(),
            self.client_out.len(),
            self.server_out.len(),
        )
    }

    /// The one rule for giving the server back (transaction and statement pooling): the
    /// last ReadyForQuery said idle, the server owes nothing, no batch or COPY is open
    /// on it, and everything for it was written.
    fn is_releasable(&self) -> bool {
        self.server.is_some()
            && self.settings.pool_mode != PoolMode::Session
            && self.status == TransactionStatus::Idle
            && self.exchange.is_settled()
            && self.server_out.is_empty()
    }

    fn deadline(&self) -> Option<Instant> {
        let s = &self.settings;
        let query = s
            .query_timeout
            .filter(|_| !self.exchange.is_idle())
            .map(|t| self.last_request_at + t);
        // Idle in transaction: nothing owed, and counted from the later of the server's
        // last reply and the client's last message (as PgBouncer counts from the
        // ReadyForQuery), never from the start of a long query.
        let idle_since = self.last_client_activity.max(self.last_server_activity);
        let idle_tx = s
            .idle_transaction_timeout
            .filter(|_| self.exchange.is_idle() && self.status != TransactionStatus::Idle)
            .map(|t| idle_since + t);
        let tx = s.transaction_timeout.map(|t| self.linked_at + t);
        [query, idle_tx, tx].into_iter().flatten().min()
    }

    fn timeout_error(&self) -> SessionError {
        let now = Instant::now();
        let s = &self.settings;
        if s.transaction_timeout
            .is_some_and(|t| now >= self.linked_at + t)
        {
            SessionError::Fatal("transaction timeout")
        } else if self.exchange.is_idle() {
            SessionError::Fatal("idle transaction timeout")
        } else {
            SessionError::Fatal("query timeout")
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
