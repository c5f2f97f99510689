//! Per-pool counters behind SHOW STATS and `/metrics`: relaxed atomics bumped on the
//! hot path, read by the console and the exporter. Also the duration histograms and the
//! server error counters, which follow the same rule (atomics only, no lock, no
//! allocation when recording).

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
    /// How long clients waited for a server (recorded when one is assigned).
    pub wait_histogram: DurationHistogram,
    /// How long a server stayed linked to a client for one transaction.
    pub xact_histogram: DurationHistogram,
    /// From a request sent to the server to its ReadyForQuery.
    pub query_histogram: DurationHistogram,
    /// Linked server connections that broke mid-session (`server conn crashed?`).
    pub server_lost_count: AtomicU64,
}

impl PoolStats {
    /// Adds `n` to a counter.
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters at this instant (each read on its own: they may be a few events
    /// apart, as PgBouncer's are).
    pub fn snapshot(&self) -> StatsTotals {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsTotals {
            server_assignment_count: read(&self.server_assignment_count),
            xact_count: read(&self.xact_count),
            query_count: read(&self.query_count),
            bytes_received: read(&self.bytes_received),
            bytes_sent: read(&self.bytes_sent),
            xact_time_us: read(&self.xact_time_us),
            query_time_us: read(&self.query_time_us),
            wait_time_us: read(&self.wait_time_us),
            client_parse_count: read(&self.client_parse_count),
            server_parse_count: read(&self.server_parse_count),
            bind_count: read(&self.bind_count),
            client_login_count: read(&self.client_login_count),
        }
    }
}

/// A plain copy of [`PoolStats`] counters, summed per database by the console.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsTotals {
    /// See [`PoolStats::server_assignment_count`].
    pub server_assignment_count: u64,
    /// See [`PoolStats::xact_count`].
    pub xact_count: u64,
    /// See [`PoolStats::query_count`].
    pub query_count: u64,
    /// See [`PoolStats::bytes_received`].
    pub bytes_received: u64,
    /// See [`PoolStats::bytes_sent`].
    pub bytes_sent: u64,
    /// See [`PoolStats::xact_time_us`].
    pub xact_time_us: u64,
    /// See [`PoolStats::query_time_us`].
    pub query_time_us: u64,
    /// See [`PoolStats::wait_time_us`].
    pub wait_time_us: u64,
    /// See [`PoolStats::client_parse_count`].
    pub client_parse_count: u64,
    /// See [`PoolStats::server_parse_count`].
    pub server_parse_count: u64,
    /// See [`PoolStats::bind_count`].
    pub bind_count: u64,
    /// See [`PoolStats::client_login_count`].
    pub client_login_count: u64,
}

impl StatsTotals {
    /// The twelve counters in PgBouncer's column order.
    pub fn as_array(&self) -> [u64; 12] {
        [
            self.server_assignment_count,
            self.xact_count,
            self.query_count,
            self.bytes_received,
            self.bytes_sent,
            self.xact_time_us,
            self.query_time_us,
            self.wait_time_us,
            self.client_parse_count,
            self.server_parse_count,
            self.bind_count,
            self.client_login_count,
        ]
    }

    fn from_array(a: [u64; 12]) -> Self {
        let [
            server_assignment_count,
            xact_count,
            query_count,
            bytes_received,
            bytes_sent,
            xact_time_us,
            query_time_us,
            wait_time_us,
            client_parse_count,
            server_parse_count,
            bind_count,
            client_login_count,
        ] = a;
        Self {
            server_assignment_count,
            xact_count,
            query_count,
            bytes_received,
            bytes_sent,
            xact_time_us,
            query_time_us,
            wait_time_us,
            client_parse_count,
            server_parse_count,
            bind_count,
            client_login_count,
        }
    }

    /// Field-wise sum.
    pub fn plus(&self, other: &StatsTotals) -> StatsTotals {
        let (a, b) = (self.as_array(), other.as_array());
        Self::from_array(std::array::from_fn(|i| a[i].saturating_add(b[i])))
    }

    /// PgBouncer's `calc_average`: counts and bytes per second over `elapsed_us`; times
    /// per transaction, per query and per server assignment. `self` is now, `older`
    /// the snapshot taken `elapsed_us` ago.
    pub fn averages_since(&self, older: &StatsTotals, elapsed_us: u64) -> StatsTotals {
        if elapsed_us == 0 {
            return StatsTotals::default();
        }
        let (now, old) = (self.as_array(), older.as_array());
        let delta: [u64; 12] = std::array::from_fn(|i| now[i].saturating_sub(old[i]));
        let per_second = |n: u64| (u128::from(n) * 1_000_000 / u128::from(elapsed_us)) as u64;
        let per = |time: u64, count: u64| time.checked_div(count).unwrap_or(0);
        let d = Self::from_array(delta);
        StatsTotals {
            server_assignment_count: per_second(d.server_assignment_count),
            xact_count: per_second(d.xact_count),
            query_count: per_second(d.query_count),
            bytes_received: per_second(d.bytes_received),
            bytes_sent: per_second(d.bytes_sent),
            xact_time_us: per(d.xact_time_us, d.xact_count),
            query_time_us: per(d.query_time_us, d.query_count),
            wait_time_us: per(d.wait_time_us, d.server_assignment_count),
            client_parse_count: per_second(d.client_parse_count),
            server_parse_count: per_second(d.server_parse_count),
            bind_count: per_second(d.bind_count),
            client_login_count: per_second(d.client_login_count),
        }
    }
}

/// Upper bounds of the histogram buckets in microseconds (0.5 ms .. 60 s).
pub const HISTOGRAM_BOUNDS_US: [u64; 16] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
];

/// A fixed-bucket latency histogram: one relaxed atomic add per bucket touched, so the
/// session can record on every transaction.
#[derive(Debug, Default)]
pub struct DurationHistogram {
    /// Observations per bucket (not cumulative); the last slot is `+Inf`.
    buckets: [AtomicU64; HISTOGRAM_BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

/// A histogram read at one instant, with cumulative bucket counts (Prometheus style).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// `(upper bound in µs, observations <= bound)`, without `+Inf` (that is `count`).
    pub cumulative: Vec<(u64, u64)>,
    /// Sum of observations in µs.
    pub sum_us: u64,
    /// Number of observations.
    pub count: u64,
}

impl DurationHistogram {
    /// Records one duration in microseconds.
    #[inline]
    pub fn observe_us(&self, us: u64) {
        let index = HISTOGRAM_BOUNDS_US
            .iter()
            .position(|bound| us <= *bound)
            .unwrap_or(HISTOGRAM_BOUNDS_US.len());
        if let Some(bucket) = self.buckets.get(index) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a duration.
    #[inline]
    pub fn observe(&self, duration: std::time::Duration) {
        self.observe_us(u64::try_from(duration.as_micros()).unwrap_or(u64::MAX));
    }

    /// The cumulative view for the exporter.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0u64;
        let cumulative = HISTOGRAM_BOUNDS_US
            .iter()
            .zip(&self.buckets)
            .map(|(bound, n)| {
                running += n.load(Ordering::Relaxed);
                (*bound, running)
            })
            .collect();
        let overflow = self.buckets.last().map_or(0, |n| n.load(Ordering::Relaxed));
        HistogramSnapshot {
            cumulative,
            sum_us: self.sum_us.load(Ordering::Relaxed),
            // Counted from the buckets so `count` always equals the `+Inf` bucket.
            count: running + overflow,
        }
    }
}

/// Why opening a server connection failed, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectErrorKind {
    /// TCP/Unix connect failed (refused, unreachable, DNS).
    Network,
    /// `server_connect_timeout` expired.
    Timeout,
    /// The server refused the credentials (SQLSTATE class 28).
    Auth,
    /// The server is starting up or shutting down (57P03).
    StartingUp,
    /// Any other error the server sent (unknown database, too many connections, ...).
    Server,
}

impl ConnectErrorKind {
    /// Every kind, in label order.
    pub const ALL: [ConnectErrorKind; 5] = [
        Self::Network,
        Self::Timeout,
        Self::Auth,
        Self::StartingUp,
        Self::Server,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Network => "network",
            Self::Timeout => "timeout",
            Self::Auth => "auth",
            Self::StartingUp => "starting_up",
            Self::Server => "server_error",
        }
    }

    /// Classifies a failure by its SQLSTATE (server errors) or message (socket errors).
    pub fn of(failure: &crate::pool::ConnectFailure) -> Self {
        match failure.sqlstate.as_deref() {
            Some(code) if code.starts_with("28") => Self::Auth,
            Some("57P03") => Self::StartingUp,
            Some(_) => Self::Server,
            None if failure.message.starts_with("server connect timeout") => Self::Timeout,
            None => Self::Network,
        }
    }
}

/// Failed server connection attempts of one pool, by kind.
#[derive(Debug, Default)]
pub struct ConnectErrors {
    counts: [AtomicU64; ConnectErrorKind::ALL.len()],
}

impl ConnectErrors {
    /// Counts one failure.
    pub fn record(&self, failure: &crate::pool::ConnectFailure) {
        let kind = ConnectErrorKind::of(failure);
        if let Some(slot) = ConnectErrorKind::ALL
            .iter()
            .position(|k| *k == kind)
            .and_then(|i| self.counts.get(i))
        {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `(kind, count)` for every kind.
    pub fn snapshot(&self) -> Vec<(ConnectErrorKind, u64)> {
        ConnectErrorKind::ALL
            .iter()
            .zip(&self.counts)
            .map(|(kind, n)| (*kind, n.load(Ordering::Relaxed)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_follow_pgbouncer_calc_average() {
        let older = StatsTotals::default();
        let now = StatsTotals {
            xact_count: 10,
            query_count: 20,
            xact_time_us: 1_000,
            query_time_us: 400,
            wait_time_us: 50,
            server_assignment_count: 5,
            bytes_received: 2_000,
            ..StatsTotals::default()
        };
        let avg = now.averages_since(&older, 2_000_000);
        assert_eq!(avg.xact_count, 5);
        assert_eq!(avg.query_count, 10);
        assert_eq!(avg.bytes_received, 1_000);
        assert_eq!(avg.xact_time_us, 100);
        assert_eq!(avg.query_time_us, 20);
        assert_eq!(avg.wait_time_us, 10);
        assert_eq!(now.averages_since(&older, 0), StatsTotals::default());
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = DurationHistogram::default();
        h.observe_us(100);
        h.observe_us(1_500);
        h.observe_us(100_000_000);
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.cumulative.first(), Some(&(500, 1)));
        assert_eq!(s.cumulative.get(2), Some(&(2_500, 2)));
        assert_eq!(s.cumulative.last(), Some(&(60_000_000, 2)));
        assert_eq!(s.sum_us, 100_001_600);
    }

    #[test]
    fn connect_failures_are_classified() {
        let failure = |sqlstate: Option<&str>, message: &str| crate::pool::ConnectFailure {
            sqlstate: sqlstate.map(str::to_owned),
            message: message.to_owned(),
        };
        let kind = |f| ConnectErrorKind::of(&f);
        assert_eq!(kind(failure(Some("28P01"), "x")), ConnectErrorKind::Auth);
        assert_eq!(
            kind(failure(Some("57P03"), "x")),
            ConnectErrorKind::StartingUp
        );
        assert_eq!(kind(failure(Some("3D000"), "x")), ConnectErrorKind::Server);
        assert_eq!(
            kind(failure(None, "server connect timeout (1s) to x")),
            ConnectErrorKind::Timeout
        );
        assert_eq!(
            kind(failure(None, "could not connect")),
            ConnectErrorKind::Network
        );
    }
}
