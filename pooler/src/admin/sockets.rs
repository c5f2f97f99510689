//! SHOW CLIENTS, SERVERS, SOCKETS and ACTIVE_SOCKETS: one row per connection from the
//! registry, with PgBouncer's shared socket header (`ssssssisiTTiiississii`).

use std::sync::Arc;

use super::Context;
use super::rows::{Columns, Kind, ResultSet, timestamp, value};
use super::show::sorted_pools;
use crate::config::ADMIN_DATABASE;
use crate::registry::{ClientInfo, ClientState, Endpoint, ServerInfo, ServerState};

use Kind::{Int4, Text, Timestamp};

/// SHOW CLIENTS and SHOW SERVERS.
pub const SOCKETS_STD: Columns = &[
    ("type", Text),
    ("user", Text),
    ("database", Text),
    ("replication", Text),
    ("state", Text),
    ("addr", Text),
    ("port", Int4),
    ("local_addr", Text),
    ("local_port", Int4),
    ("connect_time", Timestamp),
    ("request_time", Timestamp),
    ("wait", Int4),
    ("wait_us", Int4),
    ("close_needed", Int4),
    ("ptr", Text),
    ("link", Text),
    ("remote_pid", Int4),
    ("tls", Text),
    ("application_name", Text),
    ("prepared_statements", Int4),
    ("id", Int4),
];

/// SHOW SOCKETS and SHOW ACTIVE_SOCKETS: the standard header plus buffer positions.
pub const SOCKETS_DEBUG: Columns = &[
    ("type", Text),
    ("user", Text),
    ("database", Text),
    ("replication", Text),
    ("state", Text),
    ("addr", Text),
    ("port", Int4),
    ("local_addr", Text),
    ("local_port", Int4),
    ("connect_time", Timestamp),
    ("request_time", Timestamp),
    ("wait", Int4),
    ("wait_us", Int4),
    ("close_needed", Int4),
    ("ptr", Text),
    ("link", Text),
    ("remote_pid", Int4),
    ("tls", Text),
    ("application_name", Text),
    ("prepared_statements", Int4),
    ("id", Int4),
    ("recv_pos", Int4),
    ("pkt_pos", Int4),
    ("pkt_remain", Int4),
    ("send_pos", Int4),
    ("send_remain", Int4),
    ("pkt_avail", Int4),
    ("send_avail", Int4),
];

/// A stand-in for PgBouncer's `%p` object address: unique per connection and the same
/// in a client's `ptr` and its server's `link`.
fn pointer(id: u64) -> String {
    format!("0x{:012x}", 0x7f00_0000_0000u64 | id)
}

fn endpoint(e: &Endpoint) -> (Option<String>, Option<String>) {
    match e {
        Endpoint::Tcp(addr) => (value(addr.ip()), value(addr.port())),
        Endpoint::Unix(_, port) => (value("unix"), value(port)),
    }
}

/// The pools in PgBouncer's order, the admin pool among them.
fn pool_keys(ctx: &Context<'_>) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = sorted_pools(ctx)
        .iter()
        .map(|p| (p.database.clone(), p.user.clone()))
        .collect();
    keys.push((ADMIN_DATABASE.to_owned(), ADMIN_DATABASE.to_owned()));
    keys.sort();
    keys
}

fn client_pool(client: &ClientInfo) -> (String, String) {
    if client.is_console {
        (ADMIN_DATABASE.to_owned(), ADMIN_DATABASE.to_owned())
    } else {
        (client.database.clone(), client.pool_user.clone())
    }
}

fn client_row(
    ctx: &Context<'_>,
    client: &ClientInfo,
    state: &str,
    debug: bool,
) -> Vec<Option<String>> {
    let registry = &ctx.pooler.registry;
    let waited = registry.waited_us(client);
    let linked = client.linked_server();
    let (addr, port) = endpoint(&client.remote);
    let (local_addr, local_port) = endpoint(&client.local);
    let state = if state == "active" && linked == 0 {
        "idle"
    } else {
        state
    };
    let mut row = vec![
        value("C"),
        value(&client.user),
        value(&client.database),
        value("none"),
        value(state),
        addr,
        port,
        local_addr,
        local_port,
        value(timestamp(client.connected_at)),
        value(timestamp(registry.client_request_time(client))),
        value(waited / 1_000_000),
        value(waited % 1_000_000),
        value(0),
        value(pointer(client.id)),
        value(if linked == 0 {
            String::new()
        } else {
            pointer(linked)
        }),
        value(client.remote_pid),
        value(""),
        value(&client.application_name),
        value(client.prepared_statements()),
        value(client.id),
    ];
    if debug {
        row.extend(std::iter::repeat_n(value(0), 7));
    }
    row
}

fn server_state(ctx: &Context<'_>, server: &ServerInfo) -> &'static str {
    match server.state() {
        ServerState::New => "new",
        ServerState::Active => "active",
        ServerState::Idle => {
            let delay = ctx.config.general.server_check_delay;
            let idle = ctx.pooler.registry.server_idle_us(server);
            if u128::from(idle) > delay.as_micros() {
                "used"
            } else {
                "idle"
            }
        }
    }
}

fn server_row(
    ctx: &Context<'_>,
    server: &ServerInfo,
    state: &str,
    debug: bool,
) -> Vec<Option<String>> {
    let registry = &ctx.pooler.registry;
    let linked = server.linked_client();
    let details = server.details();
    let (addr, port) = details.map_or((None, None), |d| endpoint(&d.remote));
    let (local_addr, local_port) = match details.and_then(|d| d.local) {
        Some(local) => (value(local.ip()), value(local.port())),
        None => (value("unix"), value(0)),
    };
    let application_name = registry
        .client(linked)
        .map(|c| c.application_name.clone())
        .unwrap_or_default();
    let mut row = vec![
        value("S"),
        value(&server.user),
        value(&server.database),
        value("none"),
        value(state),
        addr,
        port,
        local_addr,
        local_port,
        value(timestamp(server.connected_at)),
        value(timestamp(registry.server_request_time(server))),
        value(0),
        value(0),
        value(u8::from(server.is_close_needed())),
        value(pointer(server.id)),
        value(if linked == 0 {
            String::new()
        } else {
            pointer(linked)
        }),
        value(details.map_or(0, |d| d.backend_pid)),
        value(""),
        value(application_name),
        value(server.prepared_statements()),
        value(server.id),
    ];
    if debug {
        row.extend(std::iter::repeat_n(value(0), 7));
    }
    row
}

fn clients_of(
    clients: &[Arc<ClientInfo>],
    key: &(String, String),
    waiting: bool,
) -> Vec<Arc<ClientInfo>> {
    clients
        .iter()
        .filter(|c| client_pool(c) == *key && (c.state() == ClientState::Waiting) == waiting)
        .cloned()
        .collect()
}

/// SHOW CLIENTS: per pool, active (or idle) clients, then waiting ones.
pub fn clients(ctx: &Context<'_>) -> ResultSet {
    let mut set = ResultSet::new(SOCKETS_STD);
    let clients = ctx.pooler.registry.clients();
    for key in pool_keys(ctx) {
        for c in clients_of(&clients, &key, false) {
            set.push(client_row(ctx, &c, "active", false));
        }
        for c in clients_of(&clients, &key, true) {
            set.push(client_row(ctx, &c, "waiting", false));
        }
    }
    set
}

const SERVER_STATE_ORDER: [&str; 5] = ["active", "idle", "used", "tested", "new"];

/// SHOW SERVERS: per pool, servers by state in PgBouncer's list order.
pub fn servers(ctx: &Context<'_>) -> ResultSet {
    let mut set = ResultSet::new(SOCKETS_STD);
    for (server, state) in ordered_servers(ctx) {
        set.push(server_row(ctx, &server, state, false));
    }
    set
}

fn ordered_servers(ctx: &Context<'_>) -> Vec<(Arc<ServerInfo>, &'static str)> {
    let servers = ctx.pooler.registry.servers();
    let mut ordered = Vec::with_capacity(servers.len());
    for key in pool_keys(ctx) {
        for wanted in SERVER_STATE_ORDER {
            for server in &servers {
                if server.database == key.0 && server.user == key.1 {
                    let state = server_state(ctx, server);
                    if state == wanted {
                        ordered.push((Arc::clone(server), state));
                    }
                }
            }
        }
    }
    ordered
}

/// SHOW SOCKETS (every connection) and SHOW ACTIVE_SOCKETS (those with buffered data:
/// pooler does not expose its buffers, so none).
pub fn sockets(ctx: &Context<'_>, is_active_only: bool) -> ResultSet {
    let mut set = ResultSet::new(SOCKETS_DEBUG);
    if is_active_only {
        return set;
    }
    let clients = ctx.pooler.registry.clients();
    let servers = ordered_servers(ctx);
    for key in pool_keys(ctx) {
        for c in clients_of(&clients, &key, false) {
            set.push(client_row(ctx, &c, "cl_active", true));
        }
        for c in clients_of(&clients, &key, true) {
            set.push(client_row(ctx, &c, "cl_waiting", true));
        }
        for (server, state) in servers
            .iter()
            .filter(|(s, _)| s.database == key.0 && s.user == key.1)
        {
            let state = match *state {
                "active" => "sv_active",
                "idle" => "sv_idle",
                "used" => "sv_used",
                "tested" => "sv_tested",
                _ => "sv_login",
            };
            set.push(server_row(ctx, server, state, true));
        }
    }
    set
}
