//! Process-wide counters shown in the `# Proxy` section of `INFO`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Counters updated by clients, upstream connections and the Sentinel watcher.
#[derive(Debug, Default)]
pub struct Stats {
    /// Client connections open now.
    pub clients: AtomicI64,
    /// Client connections accepted since start.
    pub clients_total: AtomicU64,
    /// Shared upstream connections open now.
    pub upstream_connections: AtomicI64,
    /// Pinned upstream connections open now (idle and in use).
    pub pinned_connections: AtomicI64,
    /// Pinned upstream connections currently lent to a client.
    pub pinned_in_use: AtomicI64,
    /// Master changes since start.
    pub failovers: AtomicU64,
    /// Commands received from clients.
    pub commands: AtomicU64,
    /// Commands answered with an error because their upstream connection failed.
    pub upstream_errors: AtomicU64,
    /// Read-only commands resent after their upstream connection failed.
    pub retries: AtomicU64,
}

impl Stats {
    /// Adds `delta` to a gauge.
    pub fn add(gauge: &AtomicI64, delta: i64) {
        gauge.fetch_add(delta, Ordering::Relaxed);
    }

    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A consistent-enough copy of every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            clients: self.clients.load(Ordering::Relaxed),
            clients_total: self.clients_total.load(Ordering::Relaxed),
            upstream_connections: self.upstream_connections.load(Ordering::Relaxed),
            pinned_connections: self.pinned_connections.load(Ordering::Relaxed),
            pinned_in_use: self.pinned_in_use.load(Ordering::Relaxed),
            failovers: self.failovers.load(Ordering::Relaxed),
            commands: self.commands.load(Ordering::Relaxed),
            upstream_errors: self.upstream_errors.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }
}

/// A copy of [`Stats`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// See [`Stats::clients`].
    pub clients: i64,
    /// See [`Stats::clients_total`].
    pub clients_total: u64,
    /// See [`Stats::upstream_connections`].
    pub upstream_connections: i64,
    /// See [`Stats::pinned_connections`].
    pub pinned_connections: i64,
    /// See [`Stats::pinned_in_use`].
    pub pinned_in_use: i64,
    /// See [`Stats::failovers`].
    pub failovers: u64,
    /// See [`Stats::commands`].
    pub commands: u64,
    /// See [`Stats::upstream_errors`].
    pub upstream_errors: u64,
    /// See [`Stats::retries`].
    pub retries: u64,
}
