//! SHOW commands other than the socket lists: PgBouncer master's exact column names,
//! order and types (src/admin.c, src/stats.c), filled from the pools, the registry and
//! the config.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::columns::{
    CONFIG, DATABASES, DNS_HOSTS, DNS_ZONES, FAKE_PARAMS, FDS, HELP_DETAIL, LISTS, MEM, PEER_POOLS,
    PEERS, POOLS, STATE, STATS, STATS_AVERAGES, STATS_TOTALS, TOTALS, TOTALS_NAMES, USERS, VERSION,
    VERSION_COLUMNS,
};
use super::rows::Kind;
use super::rows::{AdminError, Columns, Reply, ResultSet, value};
use super::{Context, sockets};
use crate::admin::PauseMode;
use crate::averages::DatabaseStats;
use crate::cluster::PoolEntry;
use crate::config::{ADMIN_DATABASE, DatabaseConfig, keys};
use crate::pool::PoolCounts;
use crate::stats::StatsTotals;
use Kind::Text;

/// Runs `SHOW what` (also `SELECT what`).
pub fn show(ctx: &Context<'_>, what: &str) -> Result<Reply, AdminError> {
    if let Some((name, v)) = FAKE_PARAMS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(what))
    {
        let columns: Columns = match *name {
            "client_encoding" => &[("client_encoding", Text)],
            "default_transaction_isolation" => &[("default_transaction_isolation", Text)],
            "standard_conforming_strings" => &[("standard_conforming_strings", Text)],
            "datestyle" => &[("datestyle", Text)],
            "timezone" => &[("timezone", Text)],
            _ => &[("extra_float_digits", Text)],
        };
        let mut set = ResultSet::new(columns);
        set.push(vec![value(v)]);
        return Ok(Reply::Rows(set));
    }
    let set = match what.to_ascii_lowercase().as_str() {
        "clients" => sockets::clients(ctx),
        "servers" => sockets::servers(ctx),
        "sockets" => sockets::sockets(ctx, false),
        "active_sockets" => sockets::sockets(ctx, true),
        "config" => config(ctx),
        "databases" => databases(ctx),
        "fds" => {
            if !ctx.is_admin() {
                return Err(AdminError::new("admin access needed"));
            }
            ResultSet::new(FDS)
        }
        "help" => {
            return Ok(Reply::Notice {
                message: "Console usage",
                detail: Some(HELP_DETAIL),
                tag: "SHOW",
            });
        }
        "lists" => lists(ctx),
        "peers" => peers(ctx),
        "peer_pools" => ResultSet::new(PEER_POOLS),
        "pools" => pools(ctx),
        "stats" => stats(ctx, STATS),
        "stats_totals" => stats(ctx, STATS_TOTALS),
        "stats_averages" => stats(ctx, STATS_AVERAGES),
        "totals" => totals(ctx),
        "users" => users(ctx),
        "version" => {
            let mut set = ResultSet::new(VERSION_COLUMNS);
            set.push(vec![value(VERSION)]);
            set
        }
        "mem" => ResultSet::new(MEM),
        "dns_hosts" => ResultSet::new(DNS_HOSTS),
        "dns_zones" => ResultSet::new(DNS_ZONES),
        "state" => state(ctx),
        "hosts" => super::hosts::hosts(ctx),
        _ => return Err(ctx.syntax_error()),
    };
    Ok(Reply::Rows(set))
}

/// Pools sorted by (database, user), as PgBouncer keeps its pool list.
pub fn sorted_pools(ctx: &Context<'_>) -> Vec<Arc<PoolEntry>> {
    let mut pools = ctx.pooler.pools();
    pools.sort_by(|a, b| (&a.database, &a.user).cmp(&(&b.database, &b.user)));
    pools
}

/// Client counts of one pool: (logged in, waiting).
fn client_counts(ctx: &Context<'_>) -> BTreeMap<(String, String), (usize, usize)> {
    let mut counts: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    for client in ctx.pooler.registry.clients() {
        let key = if client.is_console {
            (ADMIN_DATABASE.to_owned(), ADMIN_DATABASE.to_owned())
        } else {
            (client.database.clone(), client.pool_user.clone())
        };
        let entry = counts.entry(key).or_default();
        entry.0 += 1;
        if client.state() == crate::registry::ClientState::Waiting {
            entry.1 += 1;
        }
    }
    counts
}

fn pool_counts(ctx: &Context<'_>, entry: &PoolEntry) -> PoolCounts {
    entry.pool.counts(ctx.config.general.server_check_delay)
}

fn load_balance_hosts(db: Option<&DatabaseConfig>) -> Option<String> {
    db.filter(|db| db.hosts.len() > 1)
        .map(|db| db.load_balance_hosts.as_str().to_owned())
}

fn pools(ctx: &Context<'_>) -> ResultSet {
    let mut set = ResultSet::new(POOLS);
    let clients = client_counts(ctx);
    let mut rows: Vec<(String, String, Vec<Option<String>>)> = Vec::new();
    let admin_key = (ADMIN_DATABASE.to_owned(), ADMIN_DATABASE.to_owned());
    let (admin_clients, _) = clients.get(&admin_key).copied().unwrap_or_default();
    let mut admin_row = vec![
        value(ADMIN_DATABASE),
        value(ADMIN_DATABASE),
        value(admin_clients),
    ];
    admin_row.extend(std::iter::repeat_n(value(0), 12));
    admin_row.extend([value("statement"), None]);
    rows.push((admin_key.0.clone(), admin_key.1.clone(), admin_row));
    // The host pools of a read/write-split entry are one row, as in PgBouncer.
    let mut merged: BTreeMap<(String, String), PoolCounts> = BTreeMap::new();
    for entry in sorted_pools(ctx) {
        let counts = pool_counts(ctx, &entry);
        let key = (entry.database.clone(), entry.user.clone());
        merged
            .entry(key)
            .and_modify(|m| m.merge(&counts))
            .or_insert(counts);
    }
    for (key, counts) in merged {
        let entry = (&key.0, &key.1);
        let (logged_in, waiting) = clients.get(&key).copied().unwrap_or_default();
        let mode = ctx.config.pool_settings(entry.0, entry.1).pool_mode;
        let db = ctx.config.database(entry.0);
        let wait = counts.max_wait;
        rows.push((
            key.0.clone(),
            key.1.clone(),
            vec![
                value(entry.0),
                value(entry.1),
                value(logged_in.saturating_sub(waiting)),
                value(waiting),
                value(0),
                value(0),
                value(counts.active),
                value(0),
                value(0),
                value(counts.idle),
                value(counts.used),
                value(0),
                value(counts.connecting),
                value(wait.as_secs()),
                value(wait.subsec_micros()),
                value(mode),
                load_balance_hosts(db.as_deref()),
            ],
        ));
    }
    rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    set.rows = rows.into_iter().map(|(_, _, row)| row).collect();
    set
}

fn stats_rows(ctx: &Context<'_>) -> Vec<(String, DatabaseStats)> {
    let mut rows = ctx.pooler.periods.by_database(&ctx.pooler.pools());
    rows.push((ADMIN_DATABASE.to_owned(), DatabaseStats::default()));
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

fn stats(ctx: &Context<'_>, columns: Columns) -> ResultSet {
    let mut set = ResultSet::new(columns);
    for (database, stats) in stats_rows(ctx) {
        let mut row = vec![value(database)];
        let numbers: Vec<u64> = if std::ptr::eq(columns, STATS) {
            stats
                .totals
                .as_array()
                .into_iter()
                .chain(stats.averages.as_array())
                .collect()
        } else if std::ptr::eq(columns, STATS_TOTALS) {
            stats.totals.as_array().to_vec()
        } else {
            stats.averages.as_array().to_vec()
        };
        row.extend(numbers.into_iter().map(value));
        set.push(row);
    }
    set
}

fn totals(ctx: &Context<'_>) -> ResultSet {
    let mut set = ResultSet::new(TOTALS);
    let overall = ctx.pooler.periods.overall(&ctx.pooler.pools());
    let mut push = |prefix: &str, numbers: &StatsTotals| {
        for (name, n) in TOTALS_NAMES.iter().zip(numbers.as_array()) {
            set.push(vec![value(format!("{prefix}_{name}")), value(n)]);
        }
    };
    push("total", &overall.totals);
    push("avg", &overall.averages);
    set
}

/// Server connections per database: lent, idle and being opened.
fn server_connections(ctx: &Context<'_>) -> BTreeMap<String, usize> {
    let mut by_db: BTreeMap<String, usize> = BTreeMap::new();
    for entry in ctx.pooler.pools() {
        let c = pool_counts(ctx, &entry);
        *by_db.entry(entry.database.clone()).or_default() +=
            c.active + c.idle + c.used + c.connecting;
    }
    by_db
}

fn host_text(db: &DatabaseConfig) -> Option<String> {
    if db.hosts.is_empty() {
        return None;
    }
    let hosts: Vec<String> = db
        .hosts
        .iter()
        .map(|h| match h.port {
            Some(port) if h.host.contains(':') => format!("[{}]:{port}", h.host),
            Some(port) => format!("{}:{port}", h.host),
            None => h.host.clone(),
        })
        .collect();
    Some(hosts.join(","))
}

/// Names of the databases SHOW DATABASES lists: configured ones plus those made from
/// the `*` entry that have a pool, plus the admin database.
pub fn database_names(ctx: &Context<'_>) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = ctx.config.databases.keys().cloned().collect();
    names.extend(ctx.pooler.pools().iter().map(|p| p.database.clone()));
    names.insert(ADMIN_DATABASE.to_owned());
    names
}

fn databases(ctx: &Context<'_>) -> ResultSet {
    let mut set = ResultSet::new(DATABASES);
    let g = &ctx.config.general;
    let servers = server_connections(ctx);
    let mut clients: BTreeMap<String, usize> = BTreeMap::new();
    for client in ctx.pooler.registry.clients() {
        *clients.entry(client.database.clone()).or_default() += 1;
    }
    let console = &ctx.pooler.console;
    for name in database_names(ctx) {
        let client_count = clients.get(&name).copied().unwrap_or(0);
        if name == ADMIN_DATABASE {
            set.push(vec![
                value(ADMIN_DATABASE),
                None,
                value(g.listen_port),
                value(ADMIN_DATABASE),
                value(ADMIN_DATABASE),
                value(2),
                value(0),
                value(0),
                value(g.server_lifetime.as_secs()),
                value("statement"),
                None,
                value(g.max_db_connections),
                value(0),
                value(g.max_db_client_connections),
                value(client_count),
                value(0),
                value(0),
            ]);
            continue;
        }
        let Some(db) = ctx.config.database(&name) else {
            continue;
        };
        let settings = ctx
            .config
            .pool_settings(&name, db.user.as_deref().unwrap_or(""));
        set.push(vec![
            value(&name),
            host_text(&db),
            value(db.port),
            value(db.server_dbname()),
            db.user.clone(),
            value(db.pool_size.unwrap_or(g.default_pool_size)),
            value(db.min_pool_size.unwrap_or(g.min_pool_size)),
            value(db.reserve_pool_size.unwrap_or(g.reserve_pool_size)),
            value(settings.server_lifetime.as_secs()),
            db.pool_mode.map(|m| m.to_string()),
            load_balance_hosts(Some(&db)),
            value(settings.max_db_connections),
            value(servers.get(&name).copied().unwrap_or(0)),
            value(settings.max_db_client_connections),
            value(client_count),
            value(u8::from(console.is_database_flagged_paused(&name))),
            value(u8::from(console.is_database_disabled(&name))),
        ]);
    }
    set
}

/// Names SHOW USERS lists: auth_file users, `[users]`, pool users and `pgbouncer`.
pub fn user_names(ctx: &Context<'_>) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = ctx.pooler.secret_users().into_iter().collect();
    names.extend(ctx.config.users.keys().cloned());
    names.extend(ctx.pooler.pools().iter().map(|p| p.user.clone()));
    names.extend(ctx.config.databases.values().filter_map(|d| d.user.clone()));
    names.insert(ADMIN_DATABASE.to_owned());
    names
}

fn users(ctx: &Context<'_>) -> ResultSet {
    let mut set = ResultSet::new(USERS);
    let g = &ctx.config.general;
    let mut servers: BTreeMap<String, usize> = BTreeMap::new();
    for entry in ctx.pooler.pools() {
        let c = pool_counts(ctx, &entry);
        *servers.entry(entry.user.clone()).or_default() +=
            c.active + c.idle + c.used + c.connecting;
    }
    let mut clients: BTreeMap<String, usize> = BTreeMap::new();
    for client in ctx.pooler.registry.clients() {
        *clients.entry(client.user.clone()).or_default() += 1;
    }
    let padded = |n: Option<u32>| value(n.map(|n| format!("{n:9}")).unwrap_or_default());
    for name in user_names(ctx) {
        let user = ctx.config.users.get(&name);
        let positive = |n: Option<u32>| n.filter(|n| *n > 0);
        set.push(vec![
            value(&name),
            padded(user.and_then(|u| u.pool_size)),
            padded(user.and_then(|u| u.reserve_pool_size)),
            user.and_then(|u| u.pool_mode).map(|m| m.to_string()),
            value(
                positive(user.and_then(|u| u.max_user_connections))
                    .unwrap_or(g.max_user_connections),
            ),
            value(servers.get(&name).copied().unwrap_or(0)),
            value(
                positive(user.and_then(|u| u.max_user_client_connections))
                    .unwrap_or(g.max_user_client_connections),
            ),
            value(clients.get(&name).copied().unwrap_or(0)),
        ]);
    }
    set
}

fn config(ctx: &Context<'_>) -> ResultSet {
    let mut set = ResultSet::new(CONFIG);
    for spec in keys::KEYS {
        let raw = ctx.config.settings.get(spec.name).cloned().flatten();
        set.push(vec![
            value(spec.name),
            keys::display_value(spec, raw.as_deref()),
            keys::display_value(spec, spec.default),
            value(if spec.reload == keys::Reload::Online {
                "yes"
            } else {
                "no"
            }),
        ]);
    }
    set
}

fn lists(ctx: &Context<'_>) -> ResultSet {
    let mut set = ResultSet::new(LISTS);
    let clients = ctx.pooler.registry.clients();
    let pool_clients = clients.iter().filter(|c| !c.is_console).count();
    let login_clients = ctx.pooler.client_count().saturating_sub(pool_clients);
    let servers = ctx.pooler.registry.servers().len();
    let rows: [(&str, usize); 14] = [
        ("databases", database_names(ctx).len()),
        ("users", user_names(ctx).len()),
        ("peers", ctx.config.peers.len()),
        ("pools", ctx.pooler.pools().len() + 1),
        ("peer_pools", 0),
        ("free_clients", 0),
        ("used_clients", clients.len() + login_clients),
        ("login_clients", login_clients),
        ("free_servers", 0),
        ("used_servers", servers),
        ("dns_names", 0),
        ("dns_zones", 0),
        ("dns_queries", 0),
        ("dns_pending", 0),
    ];
    for (name, n) in rows {
        set.push(vec![value(name), value(n)]);
    }
    set
}

fn peers(ctx: &Context<'_>) -> ResultSet {
    let mut set = ResultSet::new(PEERS);
    for peer in ctx.config.peers.values() {
        set.push(vec![
            value(peer.peer_id),
            value(&peer.host),
            value(peer.port),
            value(
                peer.pool_size
                    .unwrap_or(ctx.config.general.default_pool_size),
            ),
        ]);
    }
    set
}

fn state(ctx: &Context<'_>) -> ResultSet {
    let mut set = ResultSet::new(STATE);
    let mode = ctx.pooler.console.mode();
    let yes_no = |b: bool| value(if b { "yes" } else { "no" });
    set.push(vec![value("active"), yes_no(mode == PauseMode::Running)]);
    set.push(vec![value("paused"), yes_no(mode == PauseMode::Paused)]);
    set.push(vec![
        value("suspended"),
        yes_no(mode == PauseMode::Suspended),
    ]);
    set
}
