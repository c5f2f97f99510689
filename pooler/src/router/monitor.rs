//! The health monitor of a host group: every `health_check_period` (or at once when a
//! session reports a failure) it asks each host for its role and WAL position over its
//! own connection, computes replica lag, bans failed hosts and publishes a snapshot.
//! A host that goes down or changes role has its idle pooled connections closed.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::group::HostGroup;
use super::topology::{Role, Snapshot, Topology, parse_lsn};
use crate::pool::Connector;
use crate::server::{ServerConnection, ServerConnector};

/// Longest a health check of one host may take (connect, login and query).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Shortest pause between two checks, also when sessions keep reporting failures.
const MIN_SPACING: Duration = Duration::from_millis(20);

/// The check: role, then the replay position (replica) or WAL insert position (primary),
/// and on a replica the age of the last replayed commit.
const PROBE_SQL: &str = "SELECT pg_catalog.pg_is_in_recovery(), \
     CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn() \
     ELSE pg_catalog.pg_current_wal_insert_lsn() END, \
     CASE WHEN pg_catalog.pg_is_in_recovery() THEN COALESCE(EXTRACT(EPOCH FROM \
     pg_catalog.now() - pg_catalog.pg_last_xact_replay_timestamp()), 0) ELSE 0 END";

/// What one check found.
#[derive(Debug, Clone, Copy)]
struct Probe {
    role: Role,
    lsn: u64,
    replay_age: Duration,
}

/// Starts the monitor of `group`; it stops when the group is dropped.
pub fn spawn(group: &Arc<HostGroup>, connectors: Vec<ServerConnector>) {
    let weak = Arc::downgrade(group);
    let topology = Arc::clone(&group.topology);
    tokio::spawn(run(weak, topology, connectors));
}

async fn run(group: Weak<HostGroup>, topology: Arc<Topology>, connectors: Vec<ServerConnector>) {
    let period = topology.options().health_check_period;
    let mut connections: Vec<Option<ServerConnection>> = connectors.iter().map(|_| None).collect();
    loop {
        let started = Instant::now();
        let results = probe_all(&connectors, &mut connections).await;
        let Some(group) = group.upgrade() else {
            return;
        };
        let snapshot = next_snapshot(&topology, &group, &results);
        topology.publish(snapshot);
        drop(group);
        let next = started + period;
        tokio::select! {
            () = tokio::time::sleep_until(next.into()) => {}
            () = topology.wake_monitor.notified() => {
                tokio::time::sleep_until((started + MIN_SPACING).into()).await;
            }
        }
    }
}

/// Checks every host concurrently, reusing each host's monitor connection.
async fn probe_all(
    connectors: &[ServerConnector],
    connections: &mut [Option<ServerConnection>],
) -> Vec<Result<Probe, String>> {
    let mut tasks = JoinSet::new();
    for (i, connector) in connectors.iter().enumerate() {
        let connection = connections[i].take();
        let connector = connector.clone();
        tasks.spawn(async move {
            let checked = tokio::time::timeout(PROBE_TIMEOUT, probe(&connector, connection)).await;
            let result = checked.unwrap_or_else(|_| Err("health check timed out".into()));
            (i, result)
        });
    }
    let mut results: Vec<Result<Probe, String>> = vec![Err("not checked".into()); connectors.len()];
    while let Some(joined) = tasks.join_next().await {
        if let Ok((i, result)) = joined {
            results[i] = match result {
                Ok((probe, connection)) => {
                    connections[i] = Some(connection);
                    Ok(probe)
                }
                Err(error) => Err(error),
            };
        }
    }
    results
}

async fn probe(
    connector: &ServerConnector,
    connection: Option<ServerConnection>,
) -> Result<(Probe, ServerConnection), String> {
    let mut connection = match connection {
        Some(c) => c,
        None => connector.connect().await.map_err(|e| e.message.clone())?,
    };
    let max = connector.target().max_packet_size;
    let result = connection
        .simple_query(PROBE_SQL, max)
        .await
        .map_err(|e| e.to_string())?;
    let row = result.rows.first().ok_or("health check returned no row")?;
    let text = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
    let role = if text(0) == "t" {
        Role::Replica
    } else {
        Role::Primary
    };
    let lsn = parse_lsn(&text(1)).unwrap_or(0);
    let replay_age = text(2)
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .unwrap_or(Duration::ZERO);
    Ok((
        Probe {
            role,
            lsn,
            replay_age,
        },
        connection,
    ))
}

/// The snapshot after a round of checks; acts on transitions (logs, closes idle
/// connections of a host that went down or stopped being primary).
fn next_snapshot(
    topology: &Topology,
    group: &HostGroup,
    results: &[Result<Probe, String>],
) -> Snapshot {
    let previous = topology.load();
    let options = topology.options();
    let now = Instant::now();
    let primary_lsn = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter(|p| p.role == Role::Primary)
        .map(|p| p.lsn)
        .max();
    let mut hosts = Vec::with_capacity(results.len());
    for (i, result) in results.iter().enumerate() {
        let before = previous.hosts.get(i).cloned().unwrap_or_default();
        let label = group.label(i);
        let mut status = before.clone();
        match result {
            Ok(probe) => {
                status.is_up = true;
                status.role = probe.role;
                status.lsn = probe.lsn;
                if before.is_suspect {
                    // A session saw one connection fail; the host itself answers.
                    status.is_suspect = false;
                    status.banned_until = None;
                }
                if probe.role == Role::Primary {
                    // A reachable primary is never kept out by an old ban.
                    status.banned_until = None;
                    status.lag_bytes = 0;
                    status.lag = Duration::ZERO;
                    if before.role != Role::Primary {
                        status.primary_since = previous.epoch + 1;
                    }
                } else {
                    let behind = primary_lsn.map_or(0, |p| p.saturating_sub(probe.lsn));
                    status.lag_bytes = behind;
                    status.lag = if behind == 0 {
                        Duration::ZERO
                    } else {
                        probe.replay_age
                    };
                }
                if !before.is_up || before.role != probe.role {
                    tracing::info!(host = %label, role = probe.role.as_str(), "host is up");
                }
                if !before.is_up {
                    group.host_up(i);
                }
                if before.role == Role::Primary && probe.role != Role::Primary {
                    tracing::warn!(host = %label, "former primary is now a replica; closing its connections");
                    group.reconnect_host(i);
                }
                if before.role != probe.role {
                    topology.forget_replayed(i);
                }
            }
            Err(error) => {
                status.is_up = false;
                if before.is_up || before.is_suspect || previous.epoch == 0 {
                    tracing::warn!(host = %label, %error, "host is down");
                    status.banned_until = Some(now + options.ban_time);
                    status.is_suspect = false;
                    topology.forget_replayed(i);
                    group.host_down(i);
                }
            }
        }
        hosts.push(status);
    }
    Snapshot {
        hosts,
        epoch: previous.epoch,
        is_complete: true,
    }
}
