//! The column lists of every SHOW, PgBouncer master's exact names, order and types
//! (src/admin.c, src/stats.c), and the fixed texts of the console (version, HELP).

use super::rows::{Columns, Kind};

use Kind::{Int4, Int8, Numeric, Text};

/// The version SHOW VERSION reports: PgBouncer's release whose console this matches,
/// then pooler's own version (tools parse `PgBouncer X.Y.Z`; pgbouncer_exporter only
/// needs one column named `version`).
pub const VERSION: &str = concat!("PgBouncer 1.25.2 (pooler ", env!("CARGO_PKG_VERSION"), ")");

/// `server_version` in the console's welcome, as PgBouncer's `PACKAGE_VERSION "/bouncer"`.
pub const SERVER_VERSION: &str = "1.25.2/bouncer";

/// Parameters PgBouncer fakes for drivers (`SHOW client_encoding` ...).
pub const FAKE_PARAMS: [(&str, &str); 6] = [
    ("client_encoding", "UTF-8"),
    ("default_transaction_isolation", "read committed"),
    ("standard_conforming_strings", "on"),
    ("datestyle", "ISO"),
    ("timezone", "GMT"),
    ("extra_float_digits", "2"),
];

/// SHOW POOLS.
pub const POOLS: Columns = &[
    ("database", Text),
    ("user", Text),
    ("cl_active", Int4),
    ("cl_waiting", Int4),
    ("cl_active_cancel_req", Int4),
    ("cl_waiting_cancel_req", Int4),
    ("sv_active", Int4),
    ("sv_active_cancel", Int4),
    ("sv_being_canceled", Int4),
    ("sv_idle", Int4),
    ("sv_used", Int4),
    ("sv_tested", Int4),
    ("sv_login", Int4),
    ("maxwait", Int4),
    ("maxwait_us", Int4),
    ("pool_mode", Text),
    ("load_balance_hosts", Text),
];

macro_rules! numeric_columns {
    ($first:literal $(, $name:literal)* $(,)?) => {
        &[($first, Text) $(, ($name, Numeric))*]
    };
}

/// SHOW STATS.
pub const STATS: Columns = numeric_columns!(
    "database",
    "total_server_assignment_count",
    "total_xact_count",
    "total_query_count",
    "total_received",
    "total_sent",
    "total_xact_time",
    "total_query_time",
    "total_wait_time",
    "total_client_parse_count",
    "total_server_parse_count",
    "total_bind_count",
    "total_client_login_count",
    "avg_server_assignment_count",
    "avg_xact_count",
    "avg_query_count",
    "avg_recv",
    "avg_sent",
    "avg_xact_time",
    "avg_query_time",
    "avg_wait_time",
    "avg_client_parse_count",
    "avg_server_parse_count",
    "avg_bind_count",
    "avg_client_login_count",
);

/// SHOW STATS_TOTALS.
pub const STATS_TOTALS: Columns = numeric_columns!(
    "database",
    "server_assignment_count",
    "xact_count",
    "query_count",
    "bytes_received",
    "bytes_sent",
    "xact_time",
    "query_time",
    "wait_time",
    "client_parse_count",
    "server_parse_count",
    "bind_count",
    "client_login_count",
);

/// SHOW STATS_AVERAGES.
pub const STATS_AVERAGES: Columns = numeric_columns!(
    "database",
    "server_assignment_count",
    "xact_count",
    "query_count",
    "bytes_received",
    "bytes_sent",
    "xact_time",
    "query_time",
    "wait_time",
    "avg_client_parse_count",
    "avg_server_parse_count",
    "avg_bind_count",
    "avg_client_login_count",
);

/// SHOW TOTALS.
pub const TOTALS: Columns = &[("name", Text), ("value", Numeric)];

/// Row names of SHOW TOTALS, without the `total_`/`avg_` prefix.
pub const TOTALS_NAMES: [&str; 12] = [
    "server_assignment_count",
    "xact_count",
    "query_count",
    "client_bytes",
    "server_bytes",
    "xact_time",
    "query_time",
    "wait_time",
    "ps_client_parse_count",
    "ps_server_parse_count",
    "ps_bind_count",
    "client_login_count",
];

/// SHOW DATABASES.
pub const DATABASES: Columns = &[
    ("name", Text),
    ("host", Text),
    ("port", Int4),
    ("database", Text),
    ("force_user", Text),
    ("pool_size", Int4),
    ("min_pool_size", Int4),
    ("reserve_pool_size", Int4),
    ("server_lifetime", Int4),
    ("pool_mode", Text),
    ("load_balance_hosts", Text),
    ("max_connections", Int4),
    ("current_connections", Int4),
    ("max_client_connections", Int4),
    ("current_client_connections", Int4),
    ("paused", Int4),
    ("disabled", Int4),
];

/// SHOW USERS.
pub const USERS: Columns = &[
    ("name", Text),
    ("pool_size", Text),
    ("reserve_pool_size", Text),
    ("pool_mode", Text),
    ("max_user_connections", Int4),
    ("current_connections", Int4),
    ("max_user_client_connections", Int4),
    ("current_client_connections", Int4),
];

/// SHOW CONFIG.
pub const CONFIG: Columns = &[
    ("key", Text),
    ("value", Text),
    ("default", Text),
    ("changeable", Text),
];

/// SHOW LISTS.
pub const LISTS: Columns = &[("list", Text), ("items", Int4)];
/// SHOW VERSION.
pub const VERSION_COLUMNS: Columns = &[("version", Text)];
/// SHOW STATE.
pub const STATE: Columns = &[("key", Text), ("value", Text)];
/// SHOW PEERS.
pub const PEERS: Columns = &[
    ("peer_id", Int4),
    ("host", Text),
    ("port", Int4),
    ("pool_size", Int4),
];
/// SHOW PEER_POOLS.
pub const PEER_POOLS: Columns = &[
    ("peer_id", Int4),
    ("cl_active_cancel_req", Int4),
    ("cl_waiting_cancel_req", Int4),
    ("sv_active_cancel", Int4),
    ("sv_login", Int4),
];
/// SHOW MEM.
pub const MEM: Columns = &[
    ("name", Text),
    ("size", Int4),
    ("used", Int4),
    ("free", Int4),
    ("memtotal", Int4),
];
/// SHOW DNS_HOSTS.
pub const DNS_HOSTS: Columns = &[("hostname", Text), ("ttl", Int8), ("addrs", Text)];
/// SHOW DNS_ZONES.
pub const DNS_ZONES: Columns = &[("zonename", Text), ("serial", Int8), ("count", Int4)];
/// SHOW FDS.
pub const FDS: Columns = &[
    ("fd", Int4),
    ("task", Text),
    ("user", Text),
    ("database", Text),
    ("addr", Text),
    ("port", Int4),
    ("cancel", Int8),
    ("link", Int4),
    ("client_encoding", Text),
    ("std_strings", Text),
    ("datestyle", Text),
    ("timezone", Text),
    ("password", Text),
    ("scram_client_key", Kind::Bytea),
    ("scram_server_key", Kind::Bytea),
];

/// The detail of SHOW HELP's notice.
pub const HELP_DETAIL: &str = "\n\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION\n\tSHOW PEERS|PEER_POOLS\n\tSHOW FDS|SOCKETS|ACTIVE_SOCKETS|LISTS|MEM|STATE\n\tSHOW DNS_HOSTS|DNS_ZONES\n\tSHOW HOSTS\n\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS\n\tSET key = arg\n\tRELOAD\n\tPAUSE [<db>]\n\tRESUME [<db>]\n\tDISABLE <db>\n\tENABLE <db>\n\tRECONNECT [<db>]\n\tKILL [<db>]\n\tKILL_CLIENT <client_id>\n\tSUSPEND\n\tSHUTDOWN\n\tSHUTDOWN WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS\n\tWAIT_CLOSE [<db>]";
