//! The `pgbouncer_*` families, built exactly as prometheus-community/pgbouncer_exporter
//! builds them from the console: the same SHOW result sets, column mappings, names,
//! labels and units (collector.go), read in-process instead of over a connection.

use std::collections::BTreeMap;

use prometheus::proto::MetricType;

use super::Families;
use crate::admin::Context;
use crate::admin::rows::{Reply, ResultSet};
use crate::admin::show;

/// How a console column becomes a metric (pgbouncer_exporter's `ColumnMapping`).
struct Mapping {
    column: &'static str,
    metric: &'static str,
    kind: MetricType,
    factor: f64,
    help: &'static str,
}

const fn gauge(column: &'static str, metric: &'static str, help: &'static str) -> Mapping {
    Mapping {
        column,
        metric,
        kind: MetricType::GAUGE,
        factor: 1.0,
        help,
    }
}

const fn counter(
    column: &'static str,
    metric: &'static str,
    factor: f64,
    help: &'static str,
) -> Mapping {
    Mapping {
        column,
        metric,
        kind: MetricType::COUNTER,
        factor,
        help,
    }
}

const DATABASES: (&str, &[&str], &[Mapping]) = (
    "databases",
    &[
        "name",
        "host",
        "port",
        "database",
        "force_user",
        "pool_mode",
    ],
    &[
        gauge(
            "pool_size",
            "pool_size",
            "Maximum number of server connections",
        ),
        gauge(
            "reserve_pool_size",
            "reserve_pool",
            "Maximum number of additional connections for this database",
        ),
        gauge(
            "max_connections",
            "max_connections",
            "Maximum number of allowed connections for this database",
        ),
        gauge(
            "current_connections",
            "current_connections",
            "Current number of connections for this database",
        ),
        gauge(
            "paused",
            "paused",
            "1 if this database is currently paused, else 0",
        ),
        gauge(
            "disabled",
            "disabled",
            "1 if this database is currently disabled, else 0",
        ),
    ],
);

const STATS_TOTALS: (&str, &[&str], &[Mapping]) = (
    "stats_totals",
    &["database"],
    &[
        counter(
            "query_count",
            "queries_pooled_total",
            1.0,
            "Total number of SQL queries pooled",
        ),
        counter(
            "query_time",
            "queries_duration_seconds_total",
            1e-6,
            "Total number of seconds spent by pgbouncer when actively connected to PostgreSQL, executing queries",
        ),
        counter(
            "bytes_received",
            "received_bytes_total",
            1.0,
            "Total volume in bytes of network traffic received by pgbouncer, shown as bytes",
        ),
        counter(
            "bytes_sent",
            "sent_bytes_total",
            1.0,
            "Total volume in bytes of network traffic sent by pgbouncer, shown as bytes",
        ),
        counter(
            "wait_time",
            "client_wait_seconds_total",
            1e-6,
            "Time spent by clients waiting for a server in seconds",
        ),
        counter(
            "xact_count",
            "sql_transactions_pooled_total",
            1.0,
            "Total number of SQL transactions pooled",
        ),
        counter(
            "xact_time",
            "server_in_transaction_seconds_total",
            1e-6,
            "Total number of seconds spent by pgbouncer when connected to PostgreSQL in a transaction, either idle in transaction or executing queries",
        ),
        counter(
            "client_parse_count",
            "client_parses_total",
            1.0,
            "Total number of prepared statement Parse messages received from clients",
        ),
        counter(
            "server_parse_count",
            "server_parses_total",
            1.0,
            "Total number of prepared statement Parse messages sent by pgbouncer to PostgreSQL",
        ),
        counter(
            "bind_count",
            "binds_total",
            1.0,
            "Total number of prepared statements readied for execution with a Bind message",
        ),
        counter(
            "server_assignment_count",
            "server_assignments_total",
            1.0,
            "Total number of times a server connection was assigned to a client",
        ),
        counter(
            "client_login_count",
            "client_logins_total",
            1.0,
            "Total number of client logins",
        ),
    ],
);

const POOLS: (&str, &[&str], &[Mapping]) = (
    "pools",
    &["database", "user"],
    &[
        gauge(
            "cl_active",
            "client_active_connections",
            "Client connections linked to server connection and able to process queries, shown as connection",
        ),
        gauge(
            "cl_waiting",
            "client_waiting_connections",
            "Client connections waiting on a server connection, shown as connection",
        ),
        gauge(
            "cl_active_cancel_req",
            "client_active_cancel_connections",
            "Client connections that have forwarded query cancellations to the server and are waiting for the server response",
        ),
        gauge(
            "cl_waiting_cancel_req",
            "client_waiting_cancel_connections",
            "Client connections that have not forwarded query cancellations to the server yet",
        ),
        gauge(
            "sv_active",
            "server_active_connections",
            "Server connections linked to a client connection, shown as connection",
        ),
        gauge(
            "sv_active_cancel",
            "server_active_cancel_connections",
            "Server connections that are currently forwarding a cancel request.",
        ),
        gauge(
            "sv_being_canceled",
            "server_being_canceled_connections",
            "Servers that normally could become idle but are waiting to do so until all in-flight cancel requests have completed that were sent to cancel a query on this server.",
        ),
        gauge(
            "sv_idle",
            "server_idle_connections",
            "Server connections idle and ready for a client query, shown as connection",
        ),
        gauge(
            "sv_used",
            "server_used_connections",
            "Server connections idle more than server_check_delay, needing server_check_query, shown as connection",
        ),
        gauge(
            "sv_tested",
            "server_testing_connections",
            "Server connections currently running either server_reset_query or server_check_query, shown as connection",
        ),
        gauge(
            "sv_login",
            "server_login_connections",
            "Server connections currently in the process of logging in, shown as connection",
        ),
        gauge(
            "maxwait",
            "client_maxwait_seconds",
            "Age of oldest unserved client connection, shown as second",
        ),
    ],
);

/// pgbouncer_exporter's SHOW LISTS rows and their metric names.
const LISTS: [(&str, &str, &str); 11] = [
    ("databases", "databases", "Count of databases"),
    ("users", "users", "Count of users"),
    ("pools", "pools", "Count of pools"),
    ("free_clients", "free_clients", "Count of free clients"),
    ("used_clients", "used_clients", "Count of used clients"),
    (
        "login_clients",
        "login_clients",
        "Count of clients in login state",
    ),
    ("free_servers", "free_servers", "Count of free servers"),
    ("used_servers", "used_servers", "Count of used servers"),
    (
        "dns_names",
        "cached_dns_names",
        "Count of DNS names in the cache",
    ),
    (
        "dns_zones",
        "cached_dns_zones",
        "Count of DNS zones in the cache",
    ),
    (
        "dns_queries",
        "in_flight_dns_queries",
        "Count of in-flight DNS queries",
    ),
];

fn result_set(ctx: &Context<'_>, what: &str) -> ResultSet {
    match show::show(ctx, what) {
        Ok(Reply::Rows(set)) => set,
        _ => ResultSet::new(&[]),
    }
}

fn column(set: &ResultSet, row: &[Option<String>], name: &str) -> Option<String> {
    let index = set.columns.iter().position(|(n, _)| *n == name)?;
    row.get(index).cloned().flatten()
}

/// pgbouncer_exporter's `queryNamespaceMapping`: label columns plus one metric per
/// mapped column of every row.
fn namespace(families: &mut Families, ctx: &Context<'_>, spec: &(&str, &[&str], &[Mapping])) {
    let (namespace, label_columns, mappings) = spec;
    let set = result_set(ctx, namespace);
    for row in &set.rows {
        let values: Vec<String> = label_columns
            .iter()
            .map(|c| column(&set, row, c).unwrap_or_default())
            .collect();
        let pairs: Vec<(&str, &str)> = label_columns
            .iter()
            .copied()
            .zip(values.iter().map(String::as_str))
            .collect();
        for m in mappings.iter() {
            let Some(v) = column(&set, row, m.column).and_then(|v| v.parse::<f64>().ok()) else {
                continue;
            };
            let name = format!("pgbouncer_{namespace}_{}", m.metric);
            families.add(&name, m.help, m.kind, &pairs, v * m.factor);
            if *namespace == "stats_totals" {
                // Exporters before the switch to SHOW STATS_TOTALS named these
                // `pgbouncer_stats_*`; many dashboards still do.
                let legacy = format!("pgbouncer_stats_{}", m.metric);
                families.add(&legacy, m.help, m.kind, &pairs, v * m.factor);
            }
        }
    }
}

/// Adds every `pgbouncer_*` family.
pub(super) fn exporter_families(families: &mut Families, ctx: &Context<'_>) {
    families.add(
        "pgbouncer_up",
        "The pgbouncer scrape succeeded",
        MetricType::GAUGE,
        &[],
        1.0,
    );
    families.add(
        "pgbouncer_version_info",
        "The pgbouncer version info",
        MetricType::GAUGE,
        &[("version", crate::admin::columns::VERSION)],
        1.0,
    );
    let lists = result_set(ctx, "lists");
    for row in &lists.rows {
        let (Some(list), Some(items)) = (column(&lists, row, "list"), column(&lists, row, "items"))
        else {
            continue;
        };
        if let (Some((_, metric, help)), Ok(v)) = (
            LISTS.iter().find(|(l, _, _)| *l == list),
            items.parse::<f64>(),
        ) {
            families.add(
                &format!("pgbouncer_{metric}"),
                help,
                MetricType::GAUGE,
                &[],
                v,
            );
        }
    }
    let g = &ctx.config.general;
    families.add(
        "pgbouncer_config_max_client_connections",
        "Config maximum number of client connections",
        MetricType::GAUGE,
        &[],
        f64::from(g.max_client_conn),
    );
    families.add(
        "pgbouncer_config_max_user_connections",
        "Config maximum number of server connections per user",
        MetricType::GAUGE,
        &[],
        f64::from(g.max_user_connections),
    );
    for spec in [&DATABASES, &STATS_TOTALS, &POOLS] {
        namespace(families, ctx, spec);
    }
    let clients = result_set(ctx, "clients");
    let mut counts: BTreeMap<[String; 4], u64> = BTreeMap::new();
    for row in &clients.rows {
        let key = ["database", "user", "state", "application_name"]
            .map(|c| column(&clients, row, c).unwrap_or_default());
        *counts.entry(key).or_default() += 1;
    }
    for ([database, user, state, application_name], n) in counts {
        families.add(
            "pgbouncer_client_connections",
            "Client connections by database, user, state and application_name",
            MetricType::GAUGE,
            &[
                ("database", &database),
                ("user", &user),
                ("state", &state),
                ("application_name", &application_name),
            ],
            n as f64,
        );
    }
}
