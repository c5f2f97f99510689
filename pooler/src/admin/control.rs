//! Control commands (admin users only): PAUSE, RESUME, SUSPEND, DISABLE, ENABLE,
//! RECONNECT, KILL, KILL_CLIENT, SHUTDOWN, RELOAD, WAIT_CLOSE and SET, with PgBouncer's
//! checks, in its order, and its messages (src/admin.c).

use std::sync::Arc;
use std::time::Duration;

use protocol::pg::sqlstate;

use super::columns::FAKE_PARAMS;
use super::rows::{AdminError, Reply};
use super::{Context, PauseMode, ShutdownMode};
use crate::cluster::PoolEntry;
use crate::config::ADMIN_DATABASE;

/// How often PAUSE and WAIT_CLOSE look whether they are done.
const POLL: Duration = Duration::from_millis(25);

/// What killed clients are told by KILL (PgBouncer's `kill_pool`).
pub const DATABASE_REMOVED: &str = "database removed";
/// What KILL_CLIENT tells the client.
pub const ADMIN_FORCED_DISCONNECT: &str = "admin forced disconnect";

/// Runs control command `name` (lower case) with `arg`; `None` if `name` is not one.
pub async fn run(ctx: &Context<'_>, name: &str, arg: &str) -> Option<Result<Reply, AdminError>> {
    Some(match name {
        "disable" => disable(ctx, arg, true),
        "enable" => disable(ctx, arg, false),
        "kill" => kill(ctx, arg),
        "kill_client" => kill_client(ctx, arg),
        "pause" => pause(ctx, arg).await,
        "reconnect" => reconnect(ctx, arg),
        "reload" => reload(ctx, arg),
        "resume" => resume(ctx, arg),
        "shutdown" => shutdown(ctx, arg),
        "suspend" => suspend(ctx, arg),
        "wait_close" => wait_close(ctx, arg).await,
        _ => return None,
    })
}

fn require_admin(ctx: &Context<'_>) -> Result<(), AdminError> {
    if ctx.is_admin() {
        Ok(())
    } else {
        Err(AdminError::new("admin access needed"))
    }
}

/// PgBouncer's `find_or_register_database`: a listed database or one the `*` entry
/// provides; the admin database is found too.
fn check_database(ctx: &Context<'_>, name: &str) -> Result<(), AdminError> {
    if name == ADMIN_DATABASE || ctx.config.database(name).is_some() {
        Ok(())
    } else {
        Err(AdminError::new(format!("no such database: {name}")))
    }
}

fn pools_of(ctx: &Context<'_>, database: Option<&str>) -> Vec<Arc<PoolEntry>> {
    ctx.pooler
        .pools()
        .into_iter()
        .filter(|p| database.is_none_or(|db| p.database == db))
        .collect()
}

fn tag(name: &str) -> Result<Reply, AdminError> {
    Ok(Reply::Tag(name.to_owned()))
}

async fn pause(ctx: &Context<'_>, arg: &str) -> Result<Reply, AdminError> {
    require_admin(ctx)?;
    let console = &ctx.pooler.console;
    if console.mode() != PauseMode::Running {
        return Err(AdminError::new("already suspended/paused"));
    }
    let database = if arg.is_empty() {
        tracing::info!("PAUSE command issued");
        console.set_mode(PauseMode::Paused);
        None
    } else {
        tracing::info!("PAUSE '{arg}' command issued");
        check_database(ctx, arg)?;
        if arg == ADMIN_DATABASE {
            return Err(AdminError::new(format!("cannot pause admin db: {arg}")));
        }
        console.set_database_paused(arg, true);
        Some(arg)
    };
    let pools = pools_of(ctx, database);
    pools.iter().for_each(|p| p.pool.pause());
    // PgBouncer answers once every server is released (per pool mode) and closed.
    let check_delay = ctx.config.general.server_check_delay;
    while pools.iter().any(|p| p.pool.counts(check_delay).active > 0) {
        if ctx.client.is_killed() {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    pools.iter().for_each(|p| p.pool.reconnect());
    tag("PAUSE")
}

fn resume(ctx: &Context<'_>, arg: &str) -> Result<Reply, AdminError> {
    require_admin(ctx)?;
    let console = &ctx.pooler.console;
    if arg.is_empty() {
        tracing::info!("RESUME command issued");
        if console.is_shutting_down() {
            return Err(AdminError::new("pooler is shutting down"));
        }
        if console.mode() == PauseMode::Running {
            return Err(AdminError::new("pooler is not paused/suspended"));
        }
        console.set_mode(PauseMode::Running);
        for entry in pools_of(ctx, None) {
            if !console.is_database_paused(&entry.database) {
                entry.pool.resume();
            }
        }
    } else {
        tracing::info!("RESUME '{arg}' command issued");
        check_database(ctx, arg)?;
        if !console.is_database_flagged_paused(arg) {
            return Err(AdminError::new(format!("database {arg} is not paused")));
        }
        console.set_database_paused(arg, false);
        if !console.is_database_paused(arg) {
            pools_of(ctx, Some(arg))
                .iter()
                .for_each(|p| p.pool.resume());
        }
    }
    tag("RESUME")
}

fn suspend(ctx: &Context<'_>, arg: &str) -> Result<Reply, AdminError> {
    if !arg.is_empty() {
        return Err(ctx.syntax_error());
    }
    require_admin(ctx)?;
    let console = &ctx.pooler.console;
    if console.mode() != PauseMode::Running {
        return Err(AdminError::new("already suspended/paused"));
    }
    if console.paused_database_count() > 0 {
        return Err(AdminError::new("cannot suspend with paused databases"));
    }
    tracing::info!("SUSPEND command issued");
    console.set_mode(PauseMode::Suspended);
    pools_of(ctx, None).iter().for_each(|p| p.pool.pause());
    tag("SUSPEND")
}

/// Undoes SUSPEND when the console that issued it disconnects, as PgBouncer does.
pub fn resume_after_suspend(ctx: &Context<'_>) {
    let console = &ctx.pooler.console;
    if console.mode() == PauseMode::Suspended {
        tracing::info!("admin disappeared when suspended, doing RESUME");
        console.set_mode(PauseMode::Running);
        for entry in pools_of(ctx, None) {
            if !console.is_database_paused(&entry.database) {
                entry.pool.resume();
            }
        }
    }
}

fn disable(ctx: &Context<'_>, arg: &str, is_disable: bool) -> Result<Reply, AdminError> {
    require_admin(ctx)?;
    if arg.is_empty() {
        return Err(AdminError::new("a database is required"));
    }
    let (verb, tag_name) = if is_disable {
        ("disable", "DISABLE")
    } else {
        ("enable", "ENABLE")
    };
    tracing::info!("{tag_name} '{arg}' command issued");
    check_database(ctx, arg)?;
    if arg == ADMIN_DATABASE {
        return Err(AdminError::new(format!("cannot {verb} admin db: {arg}")));
    }
    ctx.pooler.console.set_database_disabled(arg, is_disable);
    tag(tag_name)
}

fn mark_servers_close_needed(ctx: &Context<'_>, database: Option<&str>) {
    for server in ctx.pooler.registry.servers() {
        if database.is_none_or(|db| server.database == db) {
            server.mark_close_needed();
        }
    }
}

fn reconnect(ctx: &Context<'_>, arg: &str) -> Result<Reply, AdminError> {
    require_admin(ctx)?;
    let database = if arg.is_empty() {
        tracing::info!("RECONNECT command issued");
        None
    } else {
        tracing::info!("RECONNECT '{arg}' command issued");
        check_database(ctx, arg)?;
        if arg == ADMIN_DATABASE {
            return Err(AdminError::new(format!("cannot reconnect admin db: {arg}")));
        }
        Some(arg)
    };
    mark_servers_close_needed(ctx, database);
    pools_of(ctx, database)
        .iter()
        .for_each(|p| p.pool.reconnect());
    tag("RECONNECT")
}

fn kill(ctx: &Context<'_>, arg: &str) -> Result<Reply, AdminError> {
    require_admin(ctx)?;
    let console = &ctx.pooler.console;
    if console.mode() != PauseMode::Running {
        return Err(AdminError::new("already suspended/paused"));
    }
    let databases: Vec<String> = if arg.is_empty() {
        tracing::info!("KILL command issued");
        let mut names: Vec<String> = pools_of(ctx, None)
            .iter()
            .map(|p| p.database.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    } else {
        tracing::info!("KILL '{arg}' command issued");
        check_database(ctx, arg)?;
        if arg == ADMIN_DATABASE {
            return Err(AdminError::new(format!("cannot kill admin db: {arg}")));
        }
        vec![arg.to_owned()]
    };
    for database in &databases {
        console.set_database_paused(database, true);
        for client in ctx.pooler.registry.clients() {
            if !client.is_console && client.database == *database {
                client.kill(DATABASE_REMOVED);
            }
        }
        mark_servers_close_needed(ctx, Some(database));
        for entry in ctx.pooler.remove_pools(database) {
            entry.pool.close(DATABASE_REMOVED);
        }
    }
    tag("KILL")
}

/// `sscanf("%llu")`: optional blanks, optional `+`, then digits (the rest is ignored).
fn parse_client_id(arg: &str) -> Option<u64> {
    let trimmed = arg.trim_start();
    let trimmed = trimmed.strip_prefix('+').unwrap_or(trimmed);
    let end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    trimmed.get(..end).and_then(|digits| digits.parse().ok())
}

fn kill_client(ctx: &Context<'_>, arg: &str) -> Result<Reply, AdminError> {
    require_admin(ctx)?;
    let id =
        parse_client_id(arg).ok_or_else(|| AdminError::new("invalid client pointer supplied"))?;
    let client = ctx
        .pooler
        .registry
        .client(id)
        .ok_or_else(|| AdminError::new("client not found"))?;
    client.kill(ADMIN_FORCED_DISCONNECT);
    tag("KILL_CLIENT")
}

fn shutdown(ctx: &Context<'_>, arg: &str) -> Result<Reply, AdminError> {
    let mode = if arg.is_empty() {
        ShutdownMode::Immediate
    } else if arg.eq_ignore_ascii_case("WAIT_FOR_CLIENTS") {
        ShutdownMode::WaitForClients
    } else if arg.eq_ignore_ascii_case("WAIT_FOR_SERVERS") {
        ShutdownMode::WaitForServers
    } else {
        return Err(ctx.syntax_error());
    };
    require_admin(ctx)?;
    ctx.pooler.console.request_shutdown(mode);
    match mode {
        ShutdownMode::Immediate => {
            tracing::info!("SHUTDOWN command issued");
            // No reply: the connection stays open until the process exits.
            Ok(Reply::Nothing)
        }
        ShutdownMode::WaitForServers => {
            tracing::info!("SHUTDOWN WAIT_FOR_SERVERS command issued");
            tag("SHUTDOWN")
        }
        ShutdownMode::WaitForClients => {
            tracing::info!("SHUTDOWN WAIT_FOR_CLIENTS command issued");
            tag("SHUTDOWN")
        }
    }
}

fn reload(ctx: &Context<'_>, arg: &str) -> Result<Reply, AdminError> {
    if !arg.is_empty() {
        return Err(ctx.syntax_error());
    }
    require_admin(ctx)?;
    tracing::info!("RELOAD command issued");
    match crate::reload::reload_from_source(ctx.pooler) {
        Ok(()) => tag("RELOAD"),
        Err(e) => {
            tracing::error!("RELOAD Failed, see logs for more details: {e}");
            Err(AdminError {
                sqlstate: sqlstate::CONFIG_FILE_ERROR,
                message: "RELOAD failed, see logs for additional details".to_owned(),
            })
        }
    }
}

async fn wait_close(ctx: &Context<'_>, arg: &str) -> Result<Reply, AdminError> {
    require_admin(ctx)?;
    let database = if arg.is_empty() {
        tracing::info!("WAIT_CLOSE command issued");
        None
    } else {
        tracing::info!("WAIT_CLOSE '{arg}' command issued");
        check_database(ctx, arg)?;
        if arg == ADMIN_DATABASE {
            return Err(AdminError::new(format!("cannot wait in admin db: {arg}")));
        }
        Some(arg)
    };
    let registry = &ctx.pooler.registry;
    while registry
        .servers()
        .iter()
        .any(|s| s.is_close_needed() && database.is_none_or(|db| s.database == db))
    {
        if ctx.client.is_killed() {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    tag("WAIT_CLOSE")
}

/// `SET key = value`: the driver parameters PgBouncer fakes are ignored with a notice;
/// anything else is an admin-only `[pgbouncer]` change.
pub fn set(ctx: &Context<'_>, key: &str, value: &str) -> Result<Reply, AdminError> {
    if FAKE_PARAMS
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case(key))
    {
        return Ok(Reply::Notice {
            message: "SET ignored",
            detail: None,
            tag: "SET",
        });
    }
    require_admin(ctx)?;
    let mut config = crate::config::Config::clone(&ctx.config);
    match config.set_general(key, value) {
        Ok(_) => {
            ctx.pooler.update_config(config);
            Ok(Reply::Tag(format!("SET {key}={value}")))
        }
        Err(e) => {
            tracing::error!("SET {key} failed: {e}");
            Err(AdminError::new("SET failed"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_client_id;

    #[test]
    fn client_ids_parse_like_sscanf() {
        assert_eq!(parse_client_id("42"), Some(42));
        assert_eq!(parse_client_id(" 7abc"), Some(7));
        assert_eq!(parse_client_id("abc"), None);
        assert_eq!(parse_client_id(""), None);
    }
}
