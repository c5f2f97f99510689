//! `PinnedPool`: pre-warmed private master connections lent to one client at a time for
//! connection-scoped state (MULTI/WATCH, blocking commands, SUBSCRIBE, SELECT n, tracking,
//! MONITOR). Checked in clean, or reset (`RESET` + `AUTH`) in the background, or closed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::BytesMut;
use protocol::resp::{RespVersion, Value};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::error::LinkError;
use crate::link::ControlLink;
use crate::shared::Shared;
use crate::stats::Stats;
use crate::upstream::handshake;

/// Why no pinned connection could be lent.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// `max_pinned` connections are open.
    #[error("max number of pinned upstream connections ({0}) reached")]
    Exhausted(usize),
    /// The pool belongs to a master that is no longer current.
    #[error("the master changed")]
    Retired,
    /// Opening a new connection failed.
    #[error("cannot open a pinned upstream connection: {0}")]
    Connect(#[from] LinkError),
}

/// How a connection comes back to the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkin {
    /// Its state ended normally (EXEC done, unsubscribed, SELECT 0 …): reuse as is.
    Clean,
    /// It may carry state: `RESET` it first.
    Dirty,
    /// Replies are still pending (a blocked command): close it.
    Busy,
}

/// Counts a closed subscriber until its connection is unsubscribed (see
/// `Shared::closing_subscribers`); dropping it uncounts.
#[derive(Debug)]
pub struct ClosingSubscriber(Arc<Shared>);

impl ClosingSubscriber {
    /// Counts one closing subscriber.
    pub fn new(shared: &Arc<Shared>) -> ClosingSubscriber {
        shared.closing_subscribers.fetch_add(1, Ordering::AcqRel);
        ClosingSubscriber(Arc::clone(shared))
    }
}

impl Drop for ClosingSubscriber {
    fn drop(&mut self) {
        self.0.closing_subscribers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A private upstream connection. Dropping it closes it and frees its pool slot.
#[derive(Debug)]
pub struct PinnedConnection {
    /// The socket.
    pub stream: TcpStream,
    /// Bytes read but not yet consumed.
    pub buf: BytesMut,
    /// Protocol the connection speaks.
    pub protocol: RespVersion,
    /// The server's `CLIENT ID` of this connection (for `CLIENT UNBLOCK`).
    pub upstream_id: Option<i64>,
    slot: PoolSlot,
}

impl PinnedConnection {
    /// False when the server closed it or sent something while it was idle.
    fn is_idle_and_open(&self) -> bool {
        let mut probe = [0u8; 1];
        match self.stream.try_read(&mut probe) {
            Err(error) => error.kind() == std::io::ErrorKind::WouldBlock,
            Ok(_) => false,
        }
    }
}

/// Counts one open connection of a pool; released on drop.
#[derive(Debug)]
struct PoolSlot {
    open: Arc<AtomicUsize>,
    shared: Arc<Shared>,
    is_lent: bool,
}

impl PoolSlot {
    fn lend(&mut self, is_lent: bool) {
        if self.is_lent != is_lent {
            Stats::add(
                &self.shared.stats.pinned_in_use,
                if is_lent { 1 } else { -1 },
            );
            self.is_lent = is_lent;
        }
    }
}

impl Drop for PoolSlot {
    fn drop(&mut self) {
        self.lend(false);
        self.open.fetch_sub(1, Ordering::Relaxed);
        Stats::add(&self.shared.stats.pinned_connections, -1);
    }
}

#[derive(Debug, Default)]
struct Idle {
    resp2: Vec<PinnedConnection>,
    resp3: Vec<PinnedConnection>,
}

impl Idle {
    fn list(&mut self, protocol: RespVersion) -> &mut Vec<PinnedConnection> {
        match protocol {
            RespVersion::Resp2 => &mut self.resp2,
            RespVersion::Resp3 => &mut self.resp3,
        }
    }
}

/// Private connections to one master (one pool per topology epoch).
#[derive(Debug)]
pub struct PinnedPool {
    addr: SocketAddr,
    epoch: u64,
    shared: Arc<Shared>,
    /// Idle connections; the lock is held only to push or pop.
    idle: Mutex<Idle>,
    open: Arc<AtomicUsize>,
    cancel: CancellationToken,
    refill: Notify,
}

impl PinnedPool {
    /// A pool for `addr` that keeps `pinned_pool_size` idle RESP2 connections until `cancel`.
    pub fn start(
        addr: SocketAddr,
        epoch: u64,
        shared: Arc<Shared>,
        cancel: CancellationToken,
    ) -> Arc<PinnedPool> {
        let pool = Arc::new(PinnedPool {
            addr,
            epoch,
            shared,
            idle: Mutex::new(Idle::default()),
            open: Arc::new(AtomicUsize::new(0)),
            cancel,
            refill: Notify::new(),
        });
        tokio::spawn(Arc::clone(&pool).keep_warm());
        pool
    }

    /// The master this pool connects to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The topology epoch of this pool's master.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    fn idle(&self) -> MutexGuard<'_, Idle> {
        self.idle
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Retires the pool: idle connections close, checked-in ones are dropped.
    pub fn close(&self) {
        self.cancel.cancel();
        let drained = std::mem::take(&mut *self.idle());
        drop(drained);
    }

    /// Lends a connection speaking `protocol`: an idle one if any, else a new one.
    pub async fn checkout(&self, protocol: RespVersion) -> Result<PinnedConnection, PinError> {
        if self.cancel.is_cancelled() {
            return Err(PinError::Retired);
        }
        loop {
            let candidate = self.idle().list(protocol).pop();
            let Some(mut connection) = candidate else {
                break;
            };
            if connection.is_idle_and_open() {
                connection.slot.lend(true);
                self.refill.notify_one();
                return Ok(connection);
            }
        }
        let mut connection = self.open_connection(protocol).await?;
        connection.slot.lend(true);
        self.refill.notify_one();
        Ok(connection)
    }

    /// Takes a connection back (see [`Checkin`]). `closing` stays counted until the
    /// connection's `RESET` (which unsubscribes it) is answered.
    pub fn checkin(
        self: &Arc<Self>,
        mut connection: PinnedConnection,
        state: Checkin,
        closing: Option<ClosingSubscriber>,
    ) {
        connection.slot.lend(false);
        match state {
            Checkin::Busy => {}
            Checkin::Clean if connection.buf.is_empty() && !self.cancel.is_cancelled() => {
                self.park(connection);
            }
            Checkin::Clean => {}
            Checkin::Dirty => {
                let pool = Arc::clone(self);
                tokio::spawn(async move {
                    let reset = pool.reset(connection).await;
                    drop(closing);
                    match reset {
                        Ok(connection) if !pool.cancel.is_cancelled() => pool.park(connection),
                        Ok(_) => {}
                        Err(error) => {
                            debug!(%error, "pinned connection dropped after a failed RESET")
                        }
                    }
                });
            }
        }
    }

    fn park(&self, connection: PinnedConnection) {
        let limit = self.shared.config.load().pinned_pool_size.max(1) * 2;
        let mut idle = self.idle();
        let list = idle.list(connection.protocol);
        if list.len() < limit {
            list.push(connection);
        }
    }

    /// `RESET` (skipping any Pub/Sub messages before `+RESET`), then `AUTH` again since
    /// `RESET` logs the connection out. The connection speaks RESP2 afterwards.
    async fn reset(&self, connection: PinnedConnection) -> Result<PinnedConnection, LinkError> {
        let PinnedConnection {
            stream,
            buf,
            slot,
            upstream_id,
            ..
        } = connection;
        let config = self.shared.config.load_full();
        let mut link = ControlLink::from_parts(stream, buf, config.connect_timeout);
        link.send(&[&[b"RESET"]]).await?;
        loop {
            match link.read_value().await? {
                Value::Simple(text) if text.as_ref() == b"RESET" => break,
                value if value.is_error() => {
                    return Err(LinkError::unexpected(
                        "RESET",
                        crate::link::describe(&value),
                    ));
                }
                _ => {}
            }
        }
        if let Some(credentials) = config.upstream_credentials() {
            link.authenticate(&credentials).await?;
        }
        // RESET cleared the name that marks the proxy's connections in CLIENT LIST.
        link.command(&[b"CLIENT", b"SETNAME", b"cacheproxy"])
            .await?;
        let (stream, buf) = link.into_parts();
        Ok(PinnedConnection {
            stream,
            buf,
            protocol: RespVersion::Resp2,
            upstream_id,
            slot,
        })
    }

    async fn open_connection(&self, protocol: RespVersion) -> Result<PinnedConnection, PinError> {
        let max = self.shared.config.load().max_pinned;
        if self.open.fetch_add(1, Ordering::Relaxed) >= max {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return Err(PinError::Exhausted(max));
        }
        Stats::add(&self.shared.stats.pinned_connections, 1);
        // The slot releases the count if the handshake fails.
        let slot = PoolSlot {
            open: Arc::clone(&self.open),
            shared: Arc::clone(&self.shared),
            is_lent: false,
        };
        let config = self.shared.config.load_full();
        let (stream, buf) = handshake(self.addr, protocol, &config).await?;
        let mut link = ControlLink::from_parts(stream, buf, config.connect_timeout);
        let upstream_id = link.command(&[b"CLIENT", b"ID"]).await?.as_integer();
        let (stream, buf) = link.into_parts();
        Ok(PinnedConnection {
            stream,
            buf,
            protocol,
            upstream_id,
            slot,
        })
    }

    /// Keeps `pinned_pool_size` idle RESP2 connections open.
    async fn keep_warm(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let (wanted, have) = {
                let wanted = self.shared.config.load().pinned_pool_size;
                (wanted, self.idle().resp2.len())
            };
            if have < wanted {
                let opened = tokio::select! {
                    () = self.cancel.cancelled() => return,
                    opened = self.open_connection(RespVersion::Resp2) => opened,
                };
                match opened {
                    Ok(connection) => {
                        backoff = Duration::from_millis(100);
                        self.park(connection);
                        continue;
                    }
                    Err(error) => {
                        debug!(%error, master = %self.addr, "cannot pre-warm a pinned connection");
                        tokio::select! {
                            () = self.cancel.cancelled() => return,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                        continue;
                    }
                }
            }
            tokio::select! {
                () = self.cancel.cancelled() => return,
                () = self.refill.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}
