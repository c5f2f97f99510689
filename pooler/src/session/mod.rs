//! One client connection after login: the `run` loop that links the client to a server
//! for a transaction (or session, or statement), relays both ways, and releases the
//! server exactly when it is clean.

pub mod exchange;
mod finish;
mod link;
mod lost;
pub mod routing;

pub use finish::{fatal, log_pooler_error};
pub mod params;
pub mod prepared;
pub mod relay;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use protocol::ProtocolError;
use protocol::pg::{BackendTag, FrameSplitter, TransactionStatus, peek_header};
use tokio::io::{Interest, Ready};
use tokio_util::sync::CancellationToken;

use crate::cancel::CancelHandle;
use crate::config::PoolMode;
use crate::pool::{Pool, PoolError, PooledServer};
use crate::server::ServerConnection;
use exchange::Exchange;
use params::ClientParams;
use prepared::{ClientStatements, StatementRegistry};
use relay::{ClientFlow, Link};

/// Buffered bytes in one direction above which the session stops reading the other side.
const BACKPRESSURE_BYTES: usize = 256 * 1024;

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
    linked_at: Instant,
    last_request_at: Instant,
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
            linked_at: now,
            last_request_at: now,
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

    async fn serve(&mut self) -> Result<(), SessionError> {
        loop {
            if self.server.is_some() {
                if let Err(error) = self.active_step().await {
                    if self.can_reroute(&error) {
                        self.reroute(&error);
                    } else if !self.survive_server_loss(&error) {
                        return Err(error);
                    }
                    continue;
                }
                if self.is_releasable() {
                    self.release().await;
                }
            } else if self.has_complete_frame()? {
                if self.lost.is_some() {
                    self.answer_lost_transaction()?;
                    if self.lost.is_some() || !self.has_complete_frame()? {
                        continue;
                    }
                }
                self.link_server().await?;
            } else {
                self.idle_step().await?;
            }
        }
    }

    fn has_complete_frame(&self) -> Result<bool, SessionError> {
        match peek_header(&self.client_in, self.settings.max_packet_size) {
            Ok(Some(header)) => Ok(self.client_in.len() >= header.len),
            Ok(None) => Ok(false),
            Err(e) => Err(SessionError::Protocol(e)),
        }
    }

    /// No server linked: wait for the client's next message.
    async fn idle_step(&mut self) -> Result<(), SessionError> {
        self.free_idle_buffers();
        let idle_deadline = self
            .settings
            .client_idle_timeout
            .map(|t| self.last_client_activity + t);
        let wanted = crate::net::interest(true, !self.client_out.is_empty());
        let ready = tokio::select! {
            biased;
            () = self.shutdown.cancelled() => return Err(SessionError::Shutdown),
            () = self.registration.killed() => return Err(self.killed_error()),
            r = self.client.ready(wanted.unwrap_or(Interest::READABLE)) => r.map_err(SessionError::ClientIo)?,
            () = sleep_until(idle_deadline), if idle_deadline.is_some() => {
                return Err(SessionError::Fatal("client_idle_timeout"));
            }
        };
        self.on_client_ready(ready)
    }

    /// An idle client holds no buffer memory: thousands of idle clients cost little. The
    /// next message allocates again (a few KiB from the allocator's thread cache).
    fn free_idle_buffers(&mut self) {
        for buf in [
            &mut self.client_in,
            &mut self.client_out,
            &mut self.server_out,
        ] {
            if buf.is_empty() && buf.capacity() > 0 {
                *buf = BytesMut::new();
            }
        }
    }

    /// Moves bytes to and from the client socket after a readiness event.
    fn on_client_ready(&mut self, ready: Ready) -> Result<(), SessionError> {
        if ready.is_writable() && !self.client_out.is_empty() {
            self.client
                .try_write_buf(&mut self.client_out)
                .map_err(SessionError::ClientIo)?;
        }
        if ready.is_readable() || ready.is_read_closed() {
            let read = self
                .client
                .try_read_into_sized(&mut self.client_in, crate::net::CLIENT_READ_CHUNK);
            match read {
                Ok(None) => {}
                Ok(Some(n)) => self.on_client_read(Ok(n))?,
                Err(e) => self.on_client_read(Err(e))?,
            }
        }
        Ok(())
    }

    fn on_client_read(&mut self, read: std::io::Result<usize>) -> Result<(), SessionError> {
        match read {
            Ok(0) => Err(SessionError::ClientClosed),
            Ok(n) => {
                self.last_client_activity = Instant::now();
                self.registration.on_request(self.last_client_activity);
                crate::stats::PoolStats::add(&self.pool.stats().bytes_received, n as u64);
                Ok(())
            }
            Err(e) => Err(SessionError::ClientIo(e)),
        }
    }

    /// One round of relaying while a server is linked.
    async fn active_step(&mut self) -> Result<(), SessionError> {
        self.relay_client_frames()?;
        let Self {
            client,
            client_out,
            server,
            server_out,
            ..
        } = self;
        let Some(server) = server.as_mut() else {
            return Ok(());
        };
        if !server_out.is_empty() {
            server
                .stream
                .try_write_buf(server_out)
                .map_err(SessionError::ServerClosed)?;
            self.last_request_at = Instant::now();
        }
        if !client_out.is_empty() {
            client
                .try_write_buf(client_out)
                .map_err(SessionError::ClientIo)?;
        }
        let (server_out, client_out) = (&self.server_out, &self.client_out);
        if self.exchange.is_idle() && server_out.is_empty() {
            let is_done = match self.settings.pool_mode {
                PoolMode::Session => false,
                _ => self.status == TransactionStatus::Idle,
            };
            if is_done {
                return Ok(());
            }
        }
        let can_read_client =
            server_out.len() < BACKPRESSURE_BYTES && self.client_in.len() < BACKPRESSURE_BYTES;
        let can_read_server = client_out.len() < BACKPRESSURE_BYTES;
        let client_wants = crate::net::interest(can_read_client, !client_out.is_empty());
        let server_wants = crate::net::interest(can_read_server, !server_out.is_empty());
        let deadline = self.deadline();
        let Some(server) = self.server.as_deref() else {
            return Ok(());
        };
        tokio::select! {
            r = server.stream.ready(server_wants.unwrap_or(Interest::READABLE)), if server_wants.is_some() => {
                let ready = r.map_err(SessionError::ServerClosed)?;
                self.on_server_ready(ready)?;
            }
            r = self.client.ready(client_wants.unwrap_or(Interest::READABLE)), if client_wants.is_some() => {
                let ready = r.map_err(SessionError::ClientIo)?;
                self.on_client_ready(ready)?;
            }
            () = sleep_until(deadline), if deadline.is_some() => return Err(self.timeout_error()),
            () = self.registration.killed() => return Err(self.killed_error()),
        }
        Ok(())
    }

    /// KILL_CLIENT or KILL ended this client: PgBouncer's reason, as FATAL.
    fn killed_error(&self) -> SessionError {
        SessionError::Fatal(self.registration.info().kill_reason())
    }

    /// Moves bytes to and from the server socket after a readiness event.
    fn on_server_ready(&mut self, ready: Ready) -> Result<(), SessionError> {
        let Some(server) = self.server.as_deref_mut() else {
            return Ok(());
        };
        if ready.is_writable() && !self.server_out.is_empty() {
            server
                .stream
                .try_write_buf(&mut self.server_out)
                .map_err(SessionError::ServerClosed)?;
            self.last_request_at = Instant::now();
        }
        if ready.is_readable() || ready.is_read_closed() {
            match server.stream.try_read_into(&mut server.read_buf) {
                Ok(None) => {}
                Ok(Some(0)) => {
                    return Err(SessionError::ServerClosed(
                        std::io::ErrorKind::UnexpectedEof.into(),
                    ));
                }
                Ok(Some(n)) => {
                    crate::stats::PoolStats::add(&self.pool.stats().bytes_sent, n as u64);
                    self.relay_server_frames()?;
                    // Most replies fit the socket buffer: send now, not after another
                    // trip through the event loop.
                    if !self.client_out.is_empty() {
                        self.client
                            .try_write_buf(&mut self.client_out)
                            .map_err(SessionError::ClientIo)?;
                    }
                }
                Err(e) => return Err(SessionError::ServerClosed(e)),
            }
        }
        Ok(())
    }

    fn link(&mut self) -> Option<Link<'_>> {
        let is_routed = self.router.is_some() && self.settings.pool_mode != PoolMode::Session;
        let retry_base = self.retry.as_ref().map(|_| self.client_out.len());
        let server = self.server.as_deref_mut()?;
        Some(Link {
            server,
            server_out: &mut self.server_out,
            client_out: &mut self.client_out,
            exchange: &mut self.exchange,
            statements: &mut self.statements,
            registry: &self.registry,
            params: &mut self.params,
            stats: self.pool.stats(),
            is_renaming: self.settings.max_prepared_statements > 0
                && self.settings.pool_mode != PoolMode::Session,
            is_statement_mode: self.settings.pool_mode == PoolMode::Statement,
            retry_base,
            is_routed,
        })
    }

    fn relay_client_frames(&mut self) -> Result<(), SessionError> {
        let splitter = FrameSplitter::new(self.settings.max_packet_size);
        let mut input = std::mem::take(&mut self.client_in);
        // On a replica one transaction at a time: frames after a Sync or Query wait until
        // its ReadyForQuery, so the next transaction is routed on its own.
        let is_one_at_a_time = self.is_on_replica();
        let mut retry = self.retry.take();
        // A read sent to the primary may be followed by pipelined writes: remember the
        // statements forwarded, so read-your-writes tracks them.
        let is_tracking_writes = self.router.as_ref().is_some_and(|r| {
            r.current
                .as_ref()
                .is_some_and(|c| !c.is_replica && !c.is_write)
        });
        let mut forwarded = Vec::new();
        let result = (|| {
            let Some(mut link) = self.link() else {
                return Ok(());
            };
            loop {
                if is_one_at_a_time && link.exchange.awaits_ready_for_query() {
                    break;
                }
                let Some(frame) = splitter.split(&mut input).map_err(SessionError::Protocol)?
                else {
                    break;
                };
                let answered_before = link.client_out.len();
                if link.client_frame(&frame)? == ClientFlow::Terminate {
                    return Err(SessionError::ClientClosed);
                }
                if let Some(r) = retry.as_mut()
                    && link.client_out.len() == answered_before
                {
                    r.frames.extend_from_slice(frame.as_bytes());
                }
                if is_tracking_writes {
                    forwarded.push(frame);
                }
            }
            Ok(())
        })();
        self.client_in = input;
        self.retry = retry;
        if let Some(router) = self.router.as_mut() {
            for frame in &forwarded {
                router.note_forwarded(frame.as_bytes(), &self.statements);
            }
        }
        result
    }

    fn is_on_replica(&self) -> bool {
        self.settings.pool_mode != PoolMode::Session
            && self
                .router
                .as_ref()
                .and_then(|r| r.current.as_ref())
                .is_some_and(|c| c.is_replica)
    }

    fn relay_server_frames(&mut self) -> Result<(), SessionError> {
        let max = self.settings.max_packet_size;
        let relayed_before = self.client_out.len();
        let Some(server) = self.server.as_deref_mut() else {
            return Ok(());
        };
        let mut input = std::mem::take(&mut server.read_buf);
        let mut consumed = 0;
        let mut last_status = None;
        let result = (|| {
            let Some(mut link) = self.link() else {
                return Ok(());
            };
            while let Some(header) =
                peek_header(&input[consumed..], max).map_err(SessionError::ServerProtocol)?
            {
                let end = consumed + header.len;
                let Some(frame) = input.get(consumed..end) else {
                    break;
                };
                if let Some(status) = link.server_frame(frame, BackendTag::from_byte(header.tag))? {
                    last_status = Some(status);
                }
                consumed = end;
            }
            Ok(())
        })();
        input.advance(consumed);
        if let Some(server) = self.server.as_deref_mut() {
            server.read_buf = input;
        }
        if let Some(status) = last_status {
            self.on_ready_for_query(status)?;
        }
        if self.client_out.len() != relayed_before {
            // A server reply reached the client: the transaction can no longer move.
            self.retry = None;
        }
        result
    }

    fn on_ready_for_query(&mut self, status: TransactionStatus) -> Result<(), SessionError> {
        let was_in_transaction = self.status != TransactionStatus::Idle;
        self.status = status;
        let stats = self.pool.stats();
        let query_time = self.last_request_at.elapsed();
        crate::stats::PoolStats::add(&stats.query_time_us, query_time.as_micros() as u64);
        stats.query_histogram.observe(query_time);
        if status == TransactionStatus::Idle {
            crate::stats::PoolStats::add(&stats.xact_count, 1);
            if !was_in_transaction {
                crate::stats::PoolStats::add(&stats.query_count, 1);
            }
        }
        Ok(())
    }

    fn is_releasable(&self) -> bool {
        self.settings.pool_mode != PoolMode::Session
            && self.status == TransactionStatus::Idle
            && self.exchange.is_idle()
            && !self.exchange.is_in_batch()
            && self.server_out.is_empty()
    }

    fn deadline(&self) -> Option<Instant> {
        let s = &self.settings;
        let query = s
            .query_timeout
            .filter(|_| !self.exchange.is_idle())
            .map(|t| self.last_request_at + t);
        let idle_tx = s
            .idle_transaction_timeout
            .filter(|_| self.exchange.is_idle() && self.status != TransactionStatus::Idle)
            .map(|t| self.last_client_activity + t);
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
