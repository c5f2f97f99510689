//! Upstream connections: the request/reply messages between clients and shared connections,
//! the `Routes` clients dispatch with, and the `UpstreamManager` that rebuilds the pools
//! (shared, pinned, replicas) whenever the topology epoch changes.

pub mod connection;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use protocol::resp::{RespVersion, Value};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::commands::CommandTable;
use crate::config::Config;
use crate::error::{LinkError, UpstreamFailure};
use crate::link::{ControlLink, describe};
use crate::pinning::PinnedPool;
use crate::shared::Shared;
use crate::topology::{MasterState, Topology};
use connection::{ConnectionSpec, UpstreamRole};

/// One client request for a shared connection.
#[derive(Debug)]
pub struct UpstreamRequest {
    /// The request's wire bytes (multibulk), forwarded unchanged.
    pub bytes: Bytes,
    /// The client's sequence number for the reply.
    pub seq: u64,
    /// Where the reply goes.
    pub reply_to: ReplySender,
    /// When the client received it (bounds waiting in a disconnected connection).
    pub queued_at: Instant,
}

/// What a shared connection sends back to a client.
#[derive(Debug)]
pub enum UpstreamReply {
    /// Reply bytes for `seq`: the whole reply, or a chunk of a large one (`is_complete` false
    /// until its last chunk).
    Data {
        /// The request's sequence number.
        seq: u64,
        /// Raw reply bytes.
        bytes: Bytes,
        /// True on the last chunk.
        is_complete: bool,
    },
    /// A control-connection request the client started for another client (`CLIENT
    /// UNBLOCK`) finished: its pinned connection may be released again.
    ControlDone,
    /// Another client's task queued a request (`CLIENT KILL`, `CLIENT UNBLOCK`) on the
    /// client's control channel.
    Control,
    /// No (more) reply for `seq` will come.
    Failed {
        /// The request's sequence number.
        seq: u64,
        /// Why.
        failure: UpstreamFailure,
    },
}

/// A client's receiving channel for [`UpstreamReply`]s.
pub type ReplySender = mpsc::UnboundedSender<UpstreamReply>;

/// Sends requests to one shared connection task.
#[derive(Debug, Clone)]
pub struct UpstreamHandle {
    tx: mpsc::UnboundedSender<UpstreamRequest>,
}

impl UpstreamHandle {
    /// Queues a request; gives it back when the connection was retired.
    pub fn send(&self, request: UpstreamRequest) -> Result<(), UpstreamRequest> {
        self.tx.send(request).map_err(|error| error.0)
    }
}

/// The shared and pinned pools of the current master.
#[derive(Debug, Clone)]
pub struct MasterPools {
    /// Master address.
    pub addr: SocketAddr,
    /// Shared RESP2 connections.
    pub resp2: Arc<[UpstreamHandle]>,
    /// Shared RESP3 connections (connected on first use).
    pub resp3: Arc<[UpstreamHandle]>,
    /// Pre-warmed private connections.
    pub pinned: Arc<PinnedPool>,
}

impl MasterPools {
    /// The shared connection for a client: fixed per client so its commands stay in order.
    pub fn shared_for(&self, protocol: RespVersion, client_id: u64) -> Option<&UpstreamHandle> {
        let handles = match protocol {
            RespVersion::Resp2 => &self.resp2,
            RespVersion::Resp3 => &self.resp3,
        };
        let index = usize::try_from(client_id % handles.len().max(1) as u64).unwrap_or_default();
        handles.get(index)
    }
}

/// Whether the master can be used.
#[derive(Debug, Clone)]
pub enum MasterRoute {
    /// Send to these pools.
    Ready(MasterPools),
    /// Wait (up to `failover_timeout`): the reason.
    Unavailable(Arc<str>),
}

/// What clients dispatch with; republished on every relevant topology change.
#[derive(Debug, Clone)]
pub struct Routes {
    /// The topology epoch these pools belong to.
    pub epoch: u64,
    /// The master.
    pub master: MasterRoute,
    /// One handle per shared replica connection.
    pub replicas: Arc<[UpstreamHandle]>,
}

impl Routes {
    /// Routes before anything is resolved.
    pub fn initial() -> Routes {
        Routes {
            epoch: 0,
            master: MasterRoute::Unavailable(Arc::from("the master has not been resolved yet")),
            replicas: Arc::from(Vec::new()),
        }
    }
}

/// Opens an upstream connection and prepares it: `HELLO 3 [AUTH …]` for RESP3 or
/// `AUTH` for RESP2, then `CLIENT SETNAME cacheproxy`. Returns the socket and unread bytes.
pub async fn handshake(
    addr: SocketAddr,
    protocol: RespVersion,
    config: &Config,
) -> Result<(TcpStream, BytesMut), LinkError> {
    let mut link = ControlLink::connect(addr, config.connect_timeout, None).await?;
    let credentials = config.upstream_credentials();
    match (protocol, &credentials) {
        (RespVersion::Resp3, _) => {
            let mut args: Vec<&[u8]> = vec![b"HELLO", b"3"];
            if let Some(credentials) = &credentials {
                args.push(b"AUTH");
                args.push(credentials.user.as_deref().unwrap_or("default").as_bytes());
                args.push(credentials.password.as_bytes());
            }
            let reply = link.command(&args).await?;
            if reply.is_error() {
                return Err(LinkError::Auth(describe(&reply)));
            }
        }
        (RespVersion::Resp2, Some(credentials)) => link.authenticate(credentials).await?,
        (RespVersion::Resp2, None) => {}
    }
    let named = link
        .command(&[b"CLIENT", b"SETNAME", b"cacheproxy"])
        .await?;
    if named.is_error()
        && named
            .as_bytes()
            .is_some_and(|text| text.starts_with(b"NOAUTH"))
    {
        return Err(LinkError::Auth(describe(&named)));
    }
    Ok(link.into_parts())
}

struct MasterSet {
    epoch: u64,
    pools: MasterPools,
    cancel: CancellationToken,
}

struct ReplicaSet {
    addr: SocketAddr,
    handles: Vec<UpstreamHandle>,
    cancel: CancellationToken,
}

/// Builds and retires pools as the topology changes, and publishes [`Routes`].
pub struct UpstreamManager {
    shared: Arc<Shared>,
    routes: watch::Sender<Arc<Routes>>,
    master: Option<MasterSet>,
    replicas: Vec<ReplicaSet>,
    root: CancellationToken,
}

impl UpstreamManager {
    /// A manager publishing on `routes`; every connection it opens stops with `root`.
    pub fn new(
        shared: Arc<Shared>,
        routes: watch::Sender<Arc<Routes>>,
        root: CancellationToken,
    ) -> Self {
        UpstreamManager {
            shared,
            routes,
            master: None,
            replicas: Vec::new(),
            root,
        }
    }

    /// Follows the topology until shutdown.
    pub async fn run(mut self) {
        let mut topology = self.shared.topology.clone();
        loop {
            let snapshot = topology.borrow_and_update().clone();
            self.apply(&snapshot);
            tokio::select! {
                changed = topology.changed() => if changed.is_err() { break },
                () = self.root.cancelled() => break,
            }
        }
        if let Some(master) = self.master.take() {
            master.pools.pinned.close();
        }
    }

    fn apply(&mut self, topology: &Topology) {
        if let MasterState::Ready(addr) = topology.master {
            let is_current = self
                .master
                .as_ref()
                .is_some_and(|master| master.epoch == topology.epoch && master.pools.addr == addr);
            if !is_current {
                let previous = self.master.replace(self.build_master(addr, topology.epoch));
                self.publish(topology);
                if let Some(previous) = previous {
                    info!(old = %previous.pools.addr, new = %addr, "retiring connections to the old master");
                    previous.cancel.cancel();
                    previous.pools.pinned.close();
                }
                tokio::spawn(fetch_command_table(Arc::clone(&self.shared), addr));
            }
        }
        self.apply_replicas(&topology.replicas);
        self.publish(topology);
    }

    fn build_master(&self, addr: SocketAddr, epoch: u64) -> MasterSet {
        let cancel = self.root.child_token();
        let config = self.shared.config.load();
        let handles = |protocol: RespVersion, is_lazy: bool| -> Arc<[UpstreamHandle]> {
            (0..config.pool_size)
                .map(|_| {
                    let spec = ConnectionSpec {
                        addr,
                        role: UpstreamRole::Master,
                        protocol,
                        is_lazy,
                    };
                    connection::spawn(spec, Arc::clone(&self.shared), cancel.clone())
                })
                .collect()
        };
        let pools = MasterPools {
            addr,
            resp2: handles(RespVersion::Resp2, false),
            resp3: handles(RespVersion::Resp3, true),
            pinned: PinnedPool::start(addr, epoch, Arc::clone(&self.shared), cancel.clone()),
        };
        MasterSet {
            epoch,
            pools,
            cancel,
        }
    }

    fn apply_replicas(&mut self, wanted: &[SocketAddr]) {
        self.replicas.retain(|replica| {
            let keep = wanted.contains(&replica.addr);
            if !keep {
                replica.cancel.cancel();
            }
            keep
        });
        let pool_size = self.shared.config.load().pool_size;
        for addr in wanted {
            if self.replicas.iter().any(|replica| replica.addr == *addr) {
                continue;
            }
            let cancel = self.root.child_token();
            let handles = (0..pool_size)
                .map(|_| {
                    let spec = ConnectionSpec {
                        addr: *addr,
                        role: UpstreamRole::Replica,
                        protocol: RespVersion::Resp2,
                        is_lazy: false,
                    };
                    connection::spawn(spec, Arc::clone(&self.shared), cancel.clone())
                })
                .collect();
            self.replicas.push(ReplicaSet {
                addr: *addr,
                handles,
                cancel,
            });
        }
    }

    fn publish(&self, topology: &Topology) {
        let master = match (&topology.master, &self.master) {
            (MasterState::Ready(addr), Some(master)) if master.pools.addr == *addr => {
                MasterRoute::Ready(master.pools.clone())
            }
            (MasterState::Unavailable { reason, .. }, _) => {
                MasterRoute::Unavailable(Arc::clone(reason))
            }
            (MasterState::Ready(_), _) => {
                MasterRoute::Unavailable(Arc::from("connecting to the master"))
            }
        };
        let replicas: Arc<[UpstreamHandle]> = self
            .replicas
            .iter()
            .flat_map(|replica| replica.handles.iter().cloned())
            .collect();
        let epoch = self.master.as_ref().map_or(0, |master| master.epoch);
        let previous = self.routes.borrow().clone();
        let is_same = previous.epoch == epoch
            && previous.replicas.len() == replicas.len()
            && match (&previous.master, &master) {
                (MasterRoute::Ready(old), MasterRoute::Ready(new)) => old.addr == new.addr,
                (MasterRoute::Unavailable(old), MasterRoute::Unavailable(new)) => old == new,
                _ => false,
            };
        if !is_same || self.replicas_changed(&previous) {
            self.routes.send_replace(Arc::new(Routes {
                epoch,
                master,
                replicas,
            }));
        }
    }

    fn replicas_changed(&self, previous: &Routes) -> bool {
        let count: usize = self
            .replicas
            .iter()
            .map(|replica| replica.handles.len())
            .sum();
        count != previous.replicas.len()
    }
}

/// Replaces the built-in command table with the master's `COMMAND` reply, and records its
/// version for `HELLO`.
async fn fetch_command_table(shared: Arc<Shared>, addr: SocketAddr) {
    let config = shared.config.load_full();
    let result = async {
        let mut link = ControlLink::connect(
            addr,
            config.connect_timeout,
            config.upstream_credentials().as_ref(),
        )
        .await?;
        let reply = link.command(&[b"COMMAND"]).await?;
        let info = link.command(&[b"INFO", b"server"]).await?;
        Ok::<(Value, Value), LinkError>((reply, info))
    }
    .await;
    match result {
        Ok((reply, info)) => {
            match CommandTable::from_command_reply(&reply) {
                Ok(table) => {
                    info!(commands = table.len(), master = %addr, "command table loaded from the master");
                    shared.commands.store(Arc::new(table));
                }
                Err(error) => warn!(%error, "keeping the built-in command table"),
            }
            let version = info
                .as_str()
                .and_then(|text| {
                    text.lines()
                        .find_map(|line| line.strip_prefix("redis_version:"))
                })
                .map(|version| version.trim().to_owned());
            if let Some(version) = version {
                shared.server_version.store(Arc::new(version));
            }
        }
        Err(error) => {
            warn!(%error, master = %addr, "cannot fetch COMMAND; keeping the built-in table")
        }
    }
}
