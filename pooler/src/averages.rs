//! `stats_period`: every period the totals of each pool are snapshotted, so SHOW STATS /
//! STATS_AVERAGES / TOTALS can report per-second rates and per-event times over the last
//! period, and `log_stats` prints PgBouncer's `stats:` line.
//!
//! Like PgBouncer, an average is `(live totals − snapshot before the last refresh) /
//! time since that snapshot`, so it always covers between one and two periods.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cluster::{PoolEntry, Pooler};
use crate::stats::StatsTotals;

type PoolKey = (String, String);

/// The two latest snapshots of every pool's totals.
#[derive(Debug)]
pub struct StatsPeriods {
    inner: Mutex<Snapshots>,
}

#[derive(Debug)]
struct Snapshots {
    /// Totals at the refresh before the last one, taken at `old_stamp`.
    older: HashMap<PoolKey, StatsTotals>,
    old_stamp: Instant,
    /// Totals at the last refresh, taken at `new_stamp`.
    newer: HashMap<PoolKey, StatsTotals>,
    new_stamp: Instant,
}

impl Default for StatsPeriods {
    fn default() -> Self {
        // As PgBouncer's stats_setup: the first averages cover the time since start
        // plus one second, against zero totals.
        let now = Instant::now();
        Self {
            inner: Mutex::new(Snapshots {
                older: HashMap::new(),
                old_stamp: now.checked_sub(Duration::from_secs(1)).unwrap_or(now),
                newer: HashMap::new(),
                new_stamp: now,
            }),
        }
    }
}

/// One database's (or every database's) totals and averages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DatabaseStats {
    /// Since start.
    pub totals: StatsTotals,
    /// Over the last period (see the module doc).
    pub averages: StatsTotals,
}

impl StatsPeriods {
    /// Takes a new snapshot of `pools`; returns the averages over the period that just
    /// ended, summed over all pools (the `log_stats` line).
    pub fn refresh(&self, pools: &[Arc<PoolEntry>]) -> StatsTotals {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let current: HashMap<PoolKey, StatsTotals> = pools
            .iter()
            .map(|p| {
                (
                    (p.database.clone(), p.user.clone()),
                    p.pool.stats().snapshot(),
                )
            })
            .collect();
        inner.old_stamp = inner.new_stamp;
        inner.new_stamp = now;
        inner.older = std::mem::replace(&mut inner.newer, current);
        let (mut live, mut older) = (StatsTotals::default(), StatsTotals::default());
        for (key, totals) in &inner.newer {
            live = live.plus(totals);
            older = older.plus(&inner.older.get(key).copied().unwrap_or_default());
        }
        live.averages_since(&older, elapsed_us(now, inner.old_stamp))
    }

    /// Totals and averages per database, sorted by database name.
    pub fn by_database(&self, pools: &[Arc<PoolEntry>]) -> Vec<(String, DatabaseStats)> {
        let now = Instant::now();
        let inner = self.inner.lock();
        let mut live: HashMap<&str, StatsTotals> = HashMap::new();
        let mut older: HashMap<&str, StatsTotals> = HashMap::new();
        for pool in pools {
            let key = (pool.database.clone(), pool.user.clone());
            let totals = pool.pool.stats().snapshot();
            let old = inner.older.get(&key).copied().unwrap_or_default();
            let entry = live.entry(pool.database.as_str()).or_default();
            *entry = entry.plus(&totals);
            let entry = older.entry(pool.database.as_str()).or_default();
            *entry = entry.plus(&old);
        }
        let elapsed = elapsed_us(now, inner.old_stamp);
        let mut rows: Vec<(String, DatabaseStats)> = live
            .into_iter()
            .map(|(db, totals)| {
                let old = older.get(db).copied().unwrap_or_default();
                let stats = DatabaseStats {
                    totals,
                    averages: totals.averages_since(&old, elapsed),
                };
                (db.to_owned(), stats)
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    /// Totals and averages over every pool (SHOW TOTALS).
    pub fn overall(&self, pools: &[Arc<PoolEntry>]) -> DatabaseStats {
        let now = Instant::now();
        let inner = self.inner.lock();
        let (mut live, mut older) = (StatsTotals::default(), StatsTotals::default());
        for pool in pools {
            let key = (pool.database.clone(), pool.user.clone());
            live = live.plus(&pool.pool.stats().snapshot());
            older = older.plus(&inner.older.get(&key).copied().unwrap_or_default());
        }
        DatabaseStats {
            totals: live,
            averages: live.averages_since(&older, elapsed_us(now, inner.old_stamp)),
        }
    }
}

fn elapsed_us(now: Instant, since: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(since).as_micros()).unwrap_or(u64::MAX)
}

/// Formats PgBouncer's periodic line from the averages of the last period.
pub fn stats_line(avg: &StatsTotals) -> String {
    format!(
        "stats: {} xacts/s, {} queries/s, {} client parses/s, {} server parses/s, {} binds/s, in {} B/s, out {} B/s, xact {} us, query {} us, wait {} us",
        avg.xact_count,
        avg.query_count,
        avg.client_parse_count,
        avg.server_parse_count,
        avg.bind_count,
        avg.bytes_received,
        avg.bytes_sent,
        avg.xact_time_us,
        avg.query_time_us,
        avg.wait_time_us,
    )
}

/// Runs the refresh every `stats_period` (re-read each time, so `SET stats_period`
/// applies) until `shutdown` or the pooler is gone; logs the line when `log_stats`.
pub fn spawn(pooler: Weak<Pooler>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            let period = match pooler.upgrade() {
                Some(p) => Duration::from_secs(u64::from(p.config().general.stats_period.max(1))),
                None => return,
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(period) => {}
            }
            let Some(pooler) = pooler.upgrade() else {
                return;
            };
            let averages = pooler.periods.refresh(&pooler.pools());
            if pooler.config().general.log_stats {
                tracing::info!("{}", stats_line(&averages));
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stats_line_has_pgbouncer_wording() {
        let avg = StatsTotals {
            xact_count: 12,
            query_count: 30,
            bytes_received: 1_000,
            bytes_sent: 2_000,
            xact_time_us: 150,
            query_time_us: 60,
            wait_time_us: 5,
            ..StatsTotals::default()
        };
        assert_eq!(
            stats_line(&avg),
            "stats: 12 xacts/s, 30 queries/s, 0 client parses/s, 0 server parses/s, 0 binds/s, in 1000 B/s, out 2000 B/s, xact 150 us, query 60 us, wait 5 us"
        );
    }
}
