//! `SHOW HOSTS` (a pooler extension): every host of each read/write-split pool with its
//! discovered role, health, replication lag and load.

use super::Context;
use super::rows::Kind::{Int4, Int8, Numeric, Text};
use super::rows::{Columns, ResultSet, value};

/// SHOW HOSTS.
pub const HOSTS: Columns = &[
    ("database", Text),
    ("user", Text),
    ("host", Text),
    ("role", Text),
    ("state", Text),
    ("lag_bytes", Int8),
    ("lag_seconds", Numeric),
    ("cl_linked", Int4),
    ("sv_active", Int4),
    ("sv_idle", Int4),
];

/// One row per host of every host group.
pub fn hosts(ctx: &Context<'_>) -> ResultSet {
    let mut set = ResultSet::new(HOSTS);
    let check_delay = ctx.config.general.server_check_delay;
    for group in ctx.pooler.groups() {
        for (i, host) in group.host_states().into_iter().enumerate() {
            let entry = &group.hosts[i];
            let counts = entry.pool.counts(check_delay);
            set.push(vec![
                value(&entry.database),
                value(&entry.user),
                value(&host.label),
                value(host.role.as_str()),
                value(host.state),
                value(host.lag_bytes),
                value(format!("{:.3}", host.lag.as_secs_f64())),
                value(host.linked_clients),
                value(counts.active),
                value(counts.idle + counts.used),
            ]);
        }
    }
    set
}
