//! Per-pool counters behind SHOW STATS and `/metrics`: relaxed atomics bumped on the
//! hot path, read by the console and the exporter.

use std::sync::atomic::{AtomicU64, Ordering};

/// Totals since the pool was created (PgBouncer's `total_*` columns).
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Times a server was assigned to a client.
    pub server_assignment_count: AtomicU64,
    /// Transactions completed (ReadyForQuery back to idle).
    pub xact_count: AtomicU64,
    /// Queries completed (ReadyForQuery or CommandComplete of Execute).
    pub query_count: AtomicU64,
    /// Bytes received from clients.
    pub bytes_received: AtomicU64,
    /// Bytes sent to clients.
    pub bytes_sent: AtomicU64,
    /// Microseconds spent in transactions, idle-in-transaction included.
    pub xact_time_us: AtomicU64,
    /// Microseconds spent in queries.
    pub query_time_us: AtomicU64,
    /// Microseconds clients waited for a server.
    pub wait_time_us: AtomicU64,
    /// Parse messages received from clients.
    pub client_parse_count: AtomicU64,
    /// Parse messages sent to servers.
    pub server_parse_count: AtomicU64,
    /// Bind messages.
    pub bind_count: AtomicU64,
    /// Client logins.
    pub client_login_count: AtomicU64,
}

impl PoolStats {
    /// Adds `n` to a counter.
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
