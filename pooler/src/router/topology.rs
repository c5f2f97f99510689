//! What the pooler knows about each host of a role-aware `[databases]` entry (role,
//! health, ban, replay position, lag), published as an immutable snapshot so a session
//! picks a host per transaction without taking a lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::{Notify, watch};

use crate::config::{ReplicaSelection, RoutingOptions};

/// A host's role as last seen by the health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Not checked yet, or unreachable since start.
    Unknown,
    /// `pg_is_in_recovery()` is false.
    Primary,
    /// `pg_is_in_recovery()` is true.
    Replica,
}

impl Role {
    /// Name used in logs and `SHOW HOSTS`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Unknown => "unknown",
            Role::Primary => "primary",
            Role::Replica => "replica",
        }
    }
}

/// One host's state in a snapshot.
#[derive(Debug, Clone)]
pub struct HostStatus {
    /// Last known role (kept while the host is down, so a returning host is recognised).
    pub role: Role,
    /// The last health check succeeded.
    pub is_up: bool,
    /// No new transactions before this instant (failed check or failed transaction).
    pub banned_until: Option<Instant>,
    /// Replay position (replica) or WAL insert position (primary) at the last check.
    pub lsn: u64,
    /// WAL bytes the replica's replay is behind the primary (0 for the primary).
    pub lag_bytes: u64,
    /// Time the replica's replay is behind (0 when caught up).
    pub lag: Duration,
    /// Snapshot epoch in which the host last became primary (newest primary wins).
    pub primary_since: u64,
    /// Banned because a session saw it fail, not a health check: the next successful
    /// check lifts the ban (one terminated backend must not take a host out).
    pub is_suspect: bool,
}

impl Default for HostStatus {
    fn default() -> Self {
        Self {
            role: Role::Unknown,
            is_up: false,
            banned_until: None,
            lsn: 0,
            lag_bytes: 0,
            lag: Duration::ZERO,
            primary_since: 0,
            is_suspect: false,
        }
    }
}

impl HostStatus {
    /// Up and not banned at `now`.
    pub fn is_usable(&self, now: Instant) -> bool {
        self.is_up && self.banned_until.is_none_or(|until| now >= until)
    }
}

/// The published state of every host; replaced whole by the health monitor.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Per host, in `host=` order.
    pub hosts: Vec<HostStatus>,
    /// Incremented on every publication.
    pub epoch: u64,
    /// Every host has been checked at least once.
    pub is_complete: bool,
}

/// What a transaction needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// The primary (writes, locks, unknown statements).
    Primary,
    /// A replica that replayed at least `min_lsn`; `fallback` lets it use the primary
    /// when no replica qualifies.
    Replica {
        /// Replay position the replica must have reached (read-your-writes); 0 = any.
        min_lsn: u64,
        /// Use the primary when no replica qualifies.
        fallback: bool,
    },
}

/// Shared topology of one host group: the snapshot, change notification and the
/// per-host counters sessions update.
#[derive(Debug)]
pub struct Topology {
    snapshot: ArcSwap<Snapshot>,
    changes: watch::Sender<u64>,
    /// Wakes the health monitor for an immediate check (a session saw a failure).
    pub wake_monitor: Notify,
    linked: Vec<AtomicUsize>,
    /// Replay positions sessions read on replicas between health checks.
    replayed: Vec<AtomicU64>,
    next: AtomicUsize,
    options: RoutingOptions,
    weights: Vec<u32>,
}

impl Topology {
    /// A topology of `hosts` hosts, all unknown.
    pub fn new(hosts: usize, options: RoutingOptions) -> Arc<Self> {
        let weights = if options.replica_weights.len() == hosts {
            options.replica_weights.clone()
        } else {
            vec![1; hosts]
        };
        Arc::new(Self {
            snapshot: ArcSwap::from_pointee(Snapshot {
                hosts: vec![HostStatus::default(); hosts],
                epoch: 0,
                is_complete: false,
            }),
            changes: watch::channel(0).0,
            wake_monitor: Notify::new(),
            linked: (0..hosts).map(|_| AtomicUsize::new(0)).collect(),
            replayed: (0..hosts).map(|_| AtomicU64::new(0)).collect(),
            next: AtomicUsize::new(0),
            options,
            weights,
        })
    }

    /// The routing options of the entry.
    pub fn options(&self) -> &RoutingOptions {
        &self.options
    }

    /// The current snapshot.
    pub fn load(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Publishes a new snapshot (the monitor, or a session banning a host).
    pub fn publish(&self, mut snapshot: Snapshot) {
        snapshot.epoch = self.snapshot.load().epoch + 1;
        let epoch = snapshot.epoch;
        self.snapshot.store(Arc::new(snapshot));
        self.changes.send_replace(epoch);
    }

    /// Receives every publication.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// A session saw `host` fail (connect error, connection lost): no new transactions
    /// there for `ban_time`, and the monitor checks it now.
    pub fn report_failure(&self, host: usize) {
        let current = self.load();
        let mut snapshot = Snapshot::clone(&current);
        if let Some(status) = snapshot.hosts.get_mut(host) {
            status.is_up = false;
            status.is_suspect = true;
            status.banned_until = Some(Instant::now() + self.options.ban_time);
            tracing::warn!(
                host,
                "host failed a transaction; banned for {:?}",
                self.options.ban_time
            );
        }
        self.publish(snapshot);
        self.wake_monitor.notify_one();
    }

    /// Forgets replay positions sessions read on `host` (it went down or changed role:
    /// a rebuilt replica may be behind them).
    pub fn forget_replayed(&self, host: usize) {
        if let Some(replayed) = self.replayed.get(host) {
            replayed.store(0, Ordering::Relaxed);
        }
    }

    /// A session read `lsn` as `host`'s replay position (newer than the last check).
    pub fn note_replayed(&self, host: usize, lsn: u64) {
        if let Some(replayed) = self.replayed.get(host) {
            replayed.fetch_max(lsn, Ordering::Relaxed);
        }
    }

    fn replayed_at_least(&self, host: usize, status: &HostStatus) -> u64 {
        let noted = self
            .replayed
            .get(host)
            .map_or(0, |r| r.load(Ordering::Relaxed));
        status.lsn.max(noted)
    }

    /// Clients currently linked to `host`.
    pub fn linked(&self, host: usize) -> usize {
        self.linked
            .get(host)
            .map_or(0, |n| n.load(Ordering::Relaxed))
    }

    /// Counts a client linked to `host` until the lease drops.
    pub fn lease(self: &Arc<Self>, host: usize) -> HostLease {
        if let Some(n) = self.linked.get(host) {
            n.fetch_add(1, Ordering::Relaxed);
        }
        HostLease {
            topology: Arc::clone(self),
            host,
        }
    }

    /// The host for a transaction that wants `want`, or `None` when none qualifies now.
    pub fn choose(&self, want: Want) -> Option<usize> {
        let snapshot = self.snapshot.load();
        let now = Instant::now();
        match want {
            Want::Primary => primary(&snapshot, now),
            Want::Replica { min_lsn, fallback } => self
                .replica(&snapshot, now, min_lsn)
                .or_else(|| fallback.then(|| primary(&snapshot, now)).flatten()),
        }
    }

    fn replica(&self, snapshot: &Snapshot, now: Instant, min_lsn: u64) -> Option<usize> {
        let o = &self.options;
        let eligible = |i: usize, h: &HostStatus| {
            h.role == Role::Replica
                && h.is_usable(now)
                && self.replayed_at_least(i, h) >= min_lsn
                && o.max_replica_lag.is_none_or(|max| h.lag <= max)
                && o.max_replica_lag_bytes.is_none_or(|max| h.lag_bytes <= max)
                && self.weights.get(i).is_some_and(|w| *w > 0)
        };
        let candidates = snapshot
            .hosts
            .iter()
            .enumerate()
            .filter(|(i, h)| eligible(*i, h));
        match o.replica_selection {
            ReplicaSelection::LeastConnections => candidates
                .map(|(i, _)| i)
                .min_by_key(|i| (self.linked(*i) * 1000) / self.weights[*i].max(1) as usize),
            ReplicaSelection::RoundRobin => {
                let total: u64 = candidates
                    .clone()
                    .map(|(i, _)| u64::from(self.weights[i]))
                    .sum();
                if total == 0 {
                    return None;
                }
                let mut ticket = self.next.fetch_add(1, Ordering::Relaxed) as u64 % total;
                for (i, _) in candidates {
                    let weight = u64::from(self.weights[i]);
                    if ticket < weight {
                        return Some(i);
                    }
                    ticket -= weight;
                }
                None
            }
        }
    }
}

/// The usable primary; when several hosts claim to be primary (an old primary came back
/// without being demoted), the one that became primary last wins.
fn primary(snapshot: &Snapshot, now: Instant) -> Option<usize> {
    snapshot
        .hosts
        .iter()
        .enumerate()
        .filter(|(_, h)| h.role == Role::Primary && h.is_usable(now))
        .max_by_key(|(i, h)| (h.primary_since, std::cmp::Reverse(*i)))
        .map(|(i, _)| i)
}

/// A client linked to a host, counted for `least-connections`.
#[derive(Debug)]
pub struct HostLease {
    topology: Arc<Topology>,
    host: usize,
}

impl HostLease {
    /// The host index.
    pub fn host(&self) -> usize {
        self.host
    }
}

impl Drop for HostLease {
    fn drop(&mut self) {
        if let Some(n) = self.topology.linked.get(self.host) {
            n.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Parses a `pg_lsn` text (`16/B374D848`) into a byte position.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.trim().split_once('/')?;
    let high = u64::from_str_radix(high, 16).ok()?;
    let low = u64::from_str_radix(low, 16).ok()?;
    (high <= u64::from(u32::MAX) && low <= u64::from(u32::MAX)).then_some((high << 32) | low)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(role: Role, lsn: u64) -> HostStatus {
        HostStatus {
            role,
            is_up: true,
            lsn,
            ..HostStatus::default()
        }
    }

    fn topology(hosts: Vec<HostStatus>, options: RoutingOptions) -> Arc<Topology> {
        let t = Topology::new(hosts.len(), options);
        t.publish(Snapshot {
            hosts,
            epoch: 0,
            is_complete: true,
        });
        t
    }

    #[test]
    fn lsn_texts_parse() {
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) | 0xB374_D848));
        assert_eq!(parse_lsn("garbage"), None);
        assert_eq!(parse_lsn("1/"), None);
        assert_eq!(parse_lsn("100000000/0"), None);
    }

    #[test]
    fn reads_rotate_over_replicas_and_fall_back_to_the_primary() {
        let t = topology(
            vec![
                host(Role::Primary, 10),
                host(Role::Replica, 10),
                host(Role::Replica, 10),
            ],
            RoutingOptions::default(),
        );
        let any = Want::Replica {
            min_lsn: 0,
            fallback: true,
        };
        let picks: Vec<_> = (0..4).map(|_| t.choose(any)).collect();
        assert_eq!(picks, [Some(1), Some(2), Some(1), Some(2)]);
        assert_eq!(t.choose(Want::Primary), Some(0));
        // Read-your-writes: nobody replayed 11 yet.
        assert_eq!(
            t.choose(Want::Replica {
                min_lsn: 11,
                fallback: true
            }),
            Some(0)
        );
        assert_eq!(
            t.choose(Want::Replica {
                min_lsn: 11,
                fallback: false
            }),
            None
        );
        t.report_failure(1);
        assert_eq!(t.choose(any), Some(2));
        assert_eq!(t.choose(any), Some(2));
    }

    #[test]
    fn lag_bounds_and_weights_exclude_replicas() {
        let mut lagging = host(Role::Replica, 5);
        lagging.lag_bytes = 5000;
        lagging.lag = Duration::from_secs(30);
        let options = RoutingOptions {
            max_replica_lag: Some(Duration::from_secs(10)),
            ..RoutingOptions::default()
        };
        let t = topology(
            vec![
                host(Role::Primary, 10),
                lagging.clone(),
                host(Role::Replica, 10),
            ],
            options,
        );
        let any = Want::Replica {
            min_lsn: 0,
            fallback: true,
        };
        assert!((0..5).all(|_| t.choose(any) == Some(2)));
        let options = RoutingOptions {
            max_replica_lag_bytes: Some(100),
            replica_weights: vec![1, 1, 0],
            ..RoutingOptions::default()
        };
        let t = topology(
            vec![host(Role::Primary, 10), lagging, host(Role::Replica, 10)],
            options,
        );
        assert_eq!(t.choose(any), Some(0));
    }

    #[test]
    fn the_newest_primary_wins_and_least_connections_balances() {
        let mut old = host(Role::Primary, 1);
        old.primary_since = 1;
        let mut new = host(Role::Primary, 1);
        new.primary_since = 7;
        let options = RoutingOptions {
            replica_selection: ReplicaSelection::LeastConnections,
            ..RoutingOptions::default()
        };
        let t = topology(
            vec![old, new, host(Role::Replica, 1), host(Role::Replica, 1)],
            options,
        );
        assert_eq!(t.choose(Want::Primary), Some(1));
        let any = Want::Replica {
            min_lsn: 0,
            fallback: false,
        };
        let first = t.choose(any).unwrap();
        let _lease = t.lease(first);
        let second = t.choose(any).unwrap();
        assert_ne!(first, second);
    }
}
