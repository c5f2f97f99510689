//! The `cacheproxy` library: everything the `cacheproxy` binary runs, so tests can run it in-process.
//!
//! Data flow: [`listener`] accepts a client → `client` decodes requests and asks [`router`]
//! for a target → local answer, a shared multiplexed connection (`upstream`) or a private
//! pinned one (`pinning`) → replies go back in request order. The `sentinel` watcher
//! publishes the [`topology::Topology`]; the upstream manager turns it into routes and
//! rebuilds pools when the master changes.
#![forbid(unsafe_code)]

pub mod cli;
mod client;
mod clients;
pub mod commands;
pub mod config;
pub mod error;
mod http;
pub mod link;
mod listener;
mod local;
pub mod metrics;
mod pinning;
pub mod router;
mod sentinel;
mod shared;
pub mod stats;
pub mod topology;
mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use config::{Config, ConfigError, ReadFrom};
pub use error::Error;
pub use stats::StatsSnapshot;
pub use topology::{MasterState, Topology};

use commands::CommandTable;
use sentinel::{ResolveHandle, SentinelWatcher};
use shared::Shared;
use stats::Stats;
use upstream::{Routes, UpstreamManager};

/// A running proxy. Dropping it without [`Running::shutdown`] leaves its tasks running
/// until the runtime stops.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    root: CancellationToken,
    stop_accepting: CancellationToken,
    client_shutdown: CancellationToken,
    clients: TaskTracker,
    background: Vec<JoinHandle<()>>,
}

/// Binds `addr`; the listener and its bound address.
async fn bind(addr: &str) -> Result<(TcpListener, SocketAddr), Error> {
    let listen_error = |source| Error::Listen {
        addr: addr.to_owned(),
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(listen_error)?;
    let bound = listener.local_addr().map_err(listen_error)?;
    Ok((listener, bound))
}

/// Validates `config`, binds the listen address (and `metrics_addr`) and starts every
/// task. Returns at once; commands sent before the master is resolved wait up to
/// `failover_timeout` for it.
pub async fn start(config: Config) -> Result<Running, Error> {
    config.validate()?;
    let (listener, addr) = bind(&config.listen).await?;
    let metrics_listener = match &config.metrics_addr {
        Some(metrics_addr) => Some(bind(metrics_addr).await?),
        None => None,
    };
    let (topology_tx, topology_rx) = watch::channel(Topology::initial());
    let (routes_tx, routes_rx) = watch::channel(Arc::new(Routes::initial()));
    let (resolver, nudges) = ResolveHandle::channel();
    let sentinels = config.sentinels.clone();
    let shared = Arc::new(Shared {
        config: ArcSwap::from_pointee(config),
        stats: Stats::default(),
        metrics: Arc::default(),
        commands: ArcSwap::from_pointee(CommandTable::builtin()),
        topology: topology_rx,
        routes: routes_rx,
        resolver: resolver.clone(),
        server_version: ArcSwap::from_pointee("7.0.0".to_owned()),
        next_client_id: AtomicU64::new(1),
        clients: Arc::default(),
        closing_subscribers: AtomicUsize::new(0),
        subscribed_clients: AtomicUsize::new(0),
    });
    let root = CancellationToken::new();
    let stop_accepting = CancellationToken::new();
    let client_shutdown = CancellationToken::new();
    let clients = TaskTracker::new();
    let mut background = Vec::new();
    let watcher = SentinelWatcher::new(Arc::clone(&shared), topology_tx, nudges);
    background.push(tokio::spawn(watcher.run(root.clone())));
    for sentinel in sentinels {
        background.push(tokio::spawn(sentinel::events::run_subscriber(
            sentinel,
            Arc::clone(&shared),
            resolver.clone(),
            root.clone(),
        )));
    }
    let manager = UpstreamManager::new(Arc::clone(&shared), routes_tx, root.clone());
    background.push(tokio::spawn(manager.run()));
    background.push(tokio::spawn(listener::run(
        listener,
        Arc::clone(&shared),
        stop_accepting.clone(),
        client_shutdown.clone(),
        clients.clone(),
    )));
    let metrics_addr = metrics_listener.map(|(metrics_listener, metrics_addr)| {
        background.push(http::spawn(
            metrics_listener,
            Arc::clone(&shared),
            stop_accepting.clone(),
            root.clone(),
        ));
        info!(%metrics_addr, "serving /metrics, /health and /ready");
        metrics_addr
    });
    info!(%addr, "cacheproxy listening");
    Ok(Running {
        addr,
        metrics_addr,
        shared,
        root,
        stop_accepting,
        client_shutdown,
        clients,
        background,
    })
}

impl Running {
    /// The bound listen address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound address of the `/metrics`, `/health`, `/ready` endpoint, when
    /// `metrics_addr` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The configuration in effect.
    pub fn config(&self) -> Arc<Config> {
        self.shared.config.load_full()
    }

    /// Counters (the same as `INFO`'s `# Proxy` section).
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// The latest topology.
    pub fn topology(&self) -> Topology {
        self.shared.topology.borrow().clone()
    }

    /// Waits until a master is confirmed; its address, or `None` after `timeout`.
    pub async fn wait_for_master(&self, timeout: Duration) -> Option<SocketAddr> {
        let mut topology = self.shared.topology.clone();
        let wait = topology.wait_for(|topology| topology.master_addr().is_some());
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(topology)) => topology.master_addr(),
            _ => None,
        }
    }

    /// Applies a new configuration (SIGHUP). Passwords, users, pool sizes, timeouts and
    /// `read_from` take effect at once (pool sizes for connections opened afterwards);
    /// `listen`, `sentinels`, `master_name`, `upstream` and `metrics_addr` need a restart and
    /// are kept.
    pub fn reload(&self, config: Config) -> Result<(), ConfigError> {
        config.validate()?;
        let current = self.shared.config.load_full();
        let mut next = config;
        let restart_only = [
            ("listen", next.listen != current.listen),
            ("sentinels", next.sentinels != current.sentinels),
            ("master_name", next.master_name != current.master_name),
            ("upstream", next.upstream != current.upstream),
            ("metrics_addr", next.metrics_addr != current.metrics_addr),
        ];
        for (key, is_changed) in restart_only {
            if is_changed {
                warn!(
                    key,
                    "changing this setting needs a restart; keeping the old value"
                );
            }
        }
        next.listen.clone_from(&current.listen);
        next.sentinels.clone_from(&current.sentinels);
        next.master_name.clone_from(&current.master_name);
        next.upstream.clone_from(&current.upstream);
        next.metrics_addr.clone_from(&current.metrics_addr);
        self.shared.config.store(Arc::new(next));
        info!("configuration reloaded");
        Ok(())
    }

    /// Graceful stop: no new clients; clients finish their in-flight commands (up to
    /// `shutdown_timeout`) and close; then upstream connections and the watcher stop.
    pub async fn shutdown(self) {
        self.stop_accepting.cancel();
        self.client_shutdown.cancel();
        self.clients.close();
        let grace = self.shared.config.load().shutdown_timeout + Duration::from_secs(1);
        if tokio::time::timeout(grace, self.clients.wait())
            .await
            .is_err()
        {
            warn!("clients still open after shutdown_timeout");
        }
        self.root.cancel();
        for task in self.background {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        info!("cacheproxy stopped");
    }
}
