//! The `pooler` library: a drop-in PgBouncer replacement. Everything the `pooler` binary
//! runs lives here so tests can run it in-process.
//!
//! Flow: [`listener`] accepts → [`client`] reads the startup packet and authenticates
//! ([`login`]) → [`session`] links the client to a server from its [`pool`] per
//! transaction and relays bytes → the server goes back to the pool when clean.
#![forbid(unsafe_code)]

pub mod admin;
pub mod averages;
pub mod cancel;
pub mod client;
pub mod cluster;
pub mod config;
pub mod http;
pub mod listener;
pub mod login;
pub mod metrics;
pub mod net;
pub mod pool;
pub mod registry;
pub mod reload;
pub mod router;
pub mod server;
pub mod session;
pub mod stats;
pub mod watchdog;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use cluster::Pooler;
pub use listener::Listeners;

/// How long a graceful shutdown lets linked clients finish their transactions.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// A running pooler, for the binary and for in-process tests.
#[derive(Debug)]
pub struct Running {
    /// Shared state (pools, config); reload through it.
    pub pooler: Arc<Pooler>,
    /// Bound TCP addresses.
    pub tcp_addrs: Vec<std::net::SocketAddr>,
    /// Bound Unix socket path.
    pub unix_path: Option<std::path::PathBuf>,
    /// Bound address of the `/metrics`, `/health`, `/ready` endpoint (`metrics_addr`).
    pub metrics_addr: Option<std::net::SocketAddr>,
    stop_accepting: CancellationToken,
    /// Cancelled once shutdown finished: stops the HTTP endpoint, which reports 503 on
    /// `/ready` while clients drain.
    stopped: CancellationToken,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    serve: tokio::task::JoinHandle<()>,
}

/// Binds the listeners and starts serving `config` with the auth_file `secrets`.
pub async fn start(
    config: config::Config,
    secrets: config::UserSecrets,
) -> std::io::Result<Running> {
    let listeners = Listeners::bind(&config).await?;
    let http = match &config.general.metrics_addr {
        Some(addr) => Some(http::bind(addr).await?),
        None => None,
    };
    let metrics_addr = http.as_ref().and_then(|l| l.local_addr().ok());
    let tcp_addrs = listeners.tcp_addrs();
    let unix_path = listeners.unix_path().cloned();
    let pooler = Pooler::new(config, secrets);
    let stop_accepting = CancellationToken::new();
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let stopped = CancellationToken::new();
    averages::spawn(Arc::downgrade(&pooler), stopped.clone());
    if let Some(listener) = http {
        http::spawn(
            listener,
            Arc::downgrade(&pooler),
            shutdown.clone(),
            stopped.clone(),
        );
    }
    let serve = tokio::spawn(listeners.serve(
        Arc::clone(&pooler),
        stop_accepting.clone(),
        shutdown.clone(),
        tasks.clone(),
    ));
    Ok(Running {
        pooler,
        tcp_addrs,
        unix_path,
        metrics_addr,
        stop_accepting,
        stopped,
        shutdown,
        tasks,
        serve,
    })
}

impl Running {
    /// Graceful shutdown: stop accepting, let clients finish their transaction (idle
    /// clients are told `pooler is shutting down`), wait up to `grace`, then return.
    pub async fn shutdown(self, grace: Duration) {
        self.stop_accepting.cancel();
        self.shutdown.cancel();
        let _ = self.serve.await;
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "shutdown: clients still connected after {}s, exiting",
                grace.as_secs()
            );
        }
        self.stopped.cancel();
    }

    /// Changes when the console asks for a SHUTDOWN; the process owner acts on it.
    pub fn shutdown_requests(&self) -> tokio::sync::watch::Receiver<Option<admin::ShutdownMode>> {
        self.pooler.console.shutdown_requests()
    }

    /// Pauses every pool (SIGUSR1, PAUSE).
    pub fn pause(&self) {
        self.pooler.console.set_mode(admin::PauseMode::Paused);
        self.pooler.pools().iter().for_each(|p| p.pool.pause());
    }

    /// Resumes every pool (SIGUSR2, RESUME).
    pub fn resume(&self) {
        let console = &self.pooler.console;
        console.set_mode(admin::PauseMode::Running);
        for entry in self.pooler.pools() {
            if !console.is_database_paused(&entry.database) {
                entry.pool.resume();
            }
        }
    }
}
