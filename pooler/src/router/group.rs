//! A host group: the per-host pools of one (database, user) whose `[databases]` entry
//! lists several hosts with role-aware routing, their shared [`Topology`], and how a
//! transaction's route becomes a host.

use std::sync::Arc;
use std::time::Duration;

use super::topology::{Role, Topology, Want};
use crate::cluster::PoolEntry;
use crate::config::TargetSessionAttrs;

/// One host as `SHOW HOSTS` and `/metrics` report it.
#[derive(Debug, Clone)]
pub struct HostState {
    /// `host:port`.
    pub label: String,
    /// Last known role.
    pub role: Role,
    /// `up`, `banned` (up but serving nothing until its ban ends) or `down`.
    pub state: &'static str,
    /// WAL bytes behind the primary.
    pub lag_bytes: u64,
    /// Replay delay.
    pub lag: Duration,
    /// Clients linked to it now.
    pub linked_clients: usize,
}

/// The pools of one (database, user) across the hosts of its `host=` list.
#[derive(Debug)]
pub struct HostGroup {
    /// One pool per host, in `host=` order.
    pub hosts: Vec<Arc<PoolEntry>>,
    /// Roles, health and lag of the hosts.
    pub topology: Arc<Topology>,
    /// Functions that make a SELECT a write (defaults plus `volatile_functions`).
    pub volatile: Vec<String>,
    /// Identifies `volatile`: a prepared statement's cached class is only reused by
    /// groups with the same list.
    pub volatile_fingerprint: u64,
    /// `read_write_split=on`.
    pub is_split: bool,
    /// `target_session_attrs` of the entry.
    pub target_session_attrs: TargetSessionAttrs,
}

impl HostGroup {
    /// `host:port` of host `i`, for logs and the console.
    pub fn label(&self, i: usize) -> &str {
        self.hosts
            .get(i)
            .and_then(|e| e.host.as_deref())
            .unwrap_or("?")
    }

    /// Closes the idle connections of host `i` and retires its lent ones.
    pub fn reconnect_host(&self, i: usize) {
        if let Some(entry) = self.hosts.get(i) {
            entry.pool.reconnect();
        }
    }

    /// Host `i` is down: its connections are closed and clients waiting for one of
    /// them are sent elsewhere.
    pub fn host_down(&self, i: usize) {
        if let Some(entry) = self.hosts.get(i) {
            entry
                .pool
                .fail_unreachable(&format!("server {} is down", self.label(i)));
        }
    }

    /// Host `i` answers its health check again: its pool may connect right away.
    pub fn host_up(&self, i: usize) {
        if let Some(entry) = self.hosts.get(i) {
            entry.pool.clear_login_failure();
        }
    }

    /// A session lost its connection to host `i`: no new transactions there until the
    /// monitor, woken now, has checked it (a failed check keeps it banned for
    /// `ban_time` and moves its pool's waiters).
    pub fn report_failure(&self, i: usize) {
        self.topology.report_failure(i);
    }

    /// Waits until every host was checked once (at most `limit`), so the first
    /// transactions after start are routed by real roles.
    pub async fn wait_first_check(&self, limit: Duration) {
        let mut changes = self.topology.subscribe();
        let wait = async {
            while !self.topology.load().is_complete {
                if changes.changed().await.is_err() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
    }

    /// What a transaction of class `is_read` wants from this group, before
    /// read-your-writes narrows it.
    pub fn want(&self, is_read: bool, min_lsn: u64) -> Want {
        let tsa = self.target_session_attrs;
        if tsa.is_standby_first() {
            return Want::Replica {
                min_lsn: 0,
                fallback: !tsa.is_standby_only(),
            };
        }
        if is_read && self.is_split {
            Want::Replica {
                min_lsn,
                fallback: true,
            }
        } else {
            Want::Primary
        }
    }

    /// Per host, in `host=` order: (`host:port`, its state for the console and metrics).
    pub fn host_states(&self) -> Vec<HostState> {
        let snapshot = self.topology.load();
        let now = std::time::Instant::now();
        snapshot
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| HostState {
                label: self.label(i).to_owned(),
                role: h.role,
                state: match (h.is_up, h.is_usable(now)) {
                    (false, _) => "down",
                    (true, false) => "banned",
                    (true, true) => "up",
                },
                lag_bytes: h.lag_bytes,
                lag: h.lag,
                linked_clients: self.topology.linked(i),
            })
            .collect()
    }

    /// Hosts to try for a login-time welcome: usable primary first, then replicas,
    /// then the rest.
    pub fn welcome_order(&self) -> Vec<Arc<PoolEntry>> {
        let snapshot = self.topology.load();
        let rank = |i: usize| match snapshot.hosts.get(i) {
            Some(h) if h.is_up && h.role == Role::Primary => 0,
            Some(h) if h.is_up => 1,
            _ => 2,
        };
        let mut order: Vec<usize> = (0..self.hosts.len()).collect();
        order.sort_by_key(|i| rank(*i));
        order
            .into_iter()
            .map(|i| Arc::clone(&self.hosts[i]))
            .collect()
    }
}
