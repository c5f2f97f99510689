//! `Shared`: the handle every task holds (config, counters, command table, topology and
//! routes receivers, the watcher's nudge handle). No globals.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::clients::ClientRegistry;
use crate::commands::CommandTable;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::sentinel::ResolveHandle;
use crate::stats::Stats;
use crate::topology::Topology;
use crate::upstream::Routes;

/// State shared by all tasks; passed around as `Arc<Shared>`.
pub struct Shared {
    /// The current configuration, swapped on reload.
    pub config: ArcSwap<Config>,
    /// Counters for `INFO`.
    pub stats: Stats,
    /// Per-command counters and histograms for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The command table (built-in until the live one is fetched).
    pub commands: ArcSwap<CommandTable>,
    /// The watcher's latest topology.
    pub topology: watch::Receiver<Topology>,
    /// The upstream manager's latest routes.
    pub routes: watch::Receiver<Arc<Routes>>,
    /// Nudges the Sentinel watcher.
    pub resolver: ResolveHandle,
    /// `redis_version` of the master, for `HELLO` replies.
    pub server_version: ArcSwap<String>,
    /// Next client id (also the `id` in `HELLO` replies).
    pub next_client_id: AtomicU64,
    /// Connected clients, for `CLIENT LIST/KILL/UNBLOCK`.
    pub clients: Arc<ClientRegistry>,
    /// Subscribed clients that closed and whose pinned connection is not unsubscribed yet:
    /// `PUBLISH` waits (briefly) for them, so a closed subscriber is never counted.
    pub closing_subscribers: AtomicUsize,
    /// Clients subscribed to anything (only `PUBLISH` looks at it).
    pub subscribed_clients: AtomicUsize,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Shared").finish_non_exhaustive()
    }
}
