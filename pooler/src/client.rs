//! One accepted connection from start to end: admission, startup packet, cancel
//! forwarding, authentication, the welcome, then the client session.

use std::sync::Arc;

use bytes::BytesMut;
use protocol::pg::{StartupMessage, TransactionStatus, encode, sqlstate};
use tokio_util::sync::CancellationToken;

use crate::cluster::{PoolEntry, Pooler, keepalive};
use crate::config::AuthType;
use crate::login::auth::{ClientAuthMethod, authenticate};
use crate::login::{FirstPacket, LoginError, read_first_packet, startup_parameters};
use crate::net::Stream;
use crate::router::HostGroup;
use crate::server::{ServerCredentials, ServerParams};
use crate::session::params::ClientParams;
use crate::session::routing::SessionRouter;
use crate::session::{ClientSession, SessionError};

/// Serves one accepted connection until it closes.
pub async fn handle(mut stream: Stream, pooler: Arc<Pooler>, shutdown: CancellationToken) {
    let peer = stream.peer_addr();
    let mut input = BytesMut::with_capacity(1024);
    let login_timeout = crate::cluster::nonzero(pooler.config().general.client_login_timeout);
    let login = login(&mut stream, &mut input, &pooler, &shutdown);
    let result = match login_timeout {
        Some(limit) => tokio::time::timeout(limit, login)
            .await
            .unwrap_or_else(|_| {
                Err(LoginError::rejected(
                    sqlstate::PROTOCOL_VIOLATION,
                    "client_login_timeout",
                ))
            }),
        None => login.await,
    };
    match result {
        Ok(Some(Admitted::Console(console))) => {
            crate::admin::ConsoleSession::new(stream, input, pooler, console, shutdown)
                .run()
                .await;
        }
        Ok(Some(Admitted::Pool(welcomed))) => {
            let settings = pooler.session_settings(&welcomed.entry);
            let session = ClientSession::new(
                stream,
                input,
                welcomed.entry.pool.clone(),
                settings,
                welcomed.params,
                Arc::clone(&pooler.statements),
                shutdown,
                welcomed.cancel,
                welcomed.admission,
            )
            .with_registration(welcomed.registration);
            let session = match welcomed.group {
                Some(group) => session.with_router(SessionRouter::new(group)),
                None => session,
            };
            session.run().await;
        }
        Ok(None) => {}
        Err(error) => {
            if let Some(code) = error.sqlstate() {
                let message = error.to_string();
                if pooler.config().general.log_pooler_errors {
                    // Server logins that failed while welcoming the client are server-side.
                    let is_server_side = code == sqlstate::CONNECTION_FAILURE;
                    crate::session::log_pooler_error(&peer, is_server_side, &message);
                }
                let mut out = BytesMut::new();
                crate::session::fatal(&mut out, code, &message);
                let _ = stream.write_all_buf(&mut out).await;
            }
        }
    }
}

async fn login(
    stream: &mut Stream,
    input: &mut BytesMut,
    pooler: &Arc<Pooler>,
    shutdown: &CancellationToken,
) -> Result<Option<Admitted>, LoginError> {
    let message = match read_first_packet(stream, input).await? {
        FirstPacket::Cancel(cancel) => {
            let keepalive = keepalive(&pooler.config());
            pooler
                .cancels
                .cancel(cancel.pid, &cancel.key, &keepalive)
                .await;
            return Ok(None);
        }
        FirstPacket::Startup(message) => message,
    };
    if crate::admin::is_console_login(&message) {
        let console = crate::admin::login(stream, input, pooler, shutdown, &message).await?;
        return Ok(Some(Admitted::Console(console)));
    }
    let admission = pooler.admit_client()?;
    if shutdown.is_cancelled() {
        return Err(LoginError::rejected(
            sqlstate::ADMIN_SHUTDOWN,
            "pooler is shutting down",
        ));
    }
    let config = pooler.config();
    let user = message
        .user()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| LoginError::rejected(sqlstate::PROTOCOL_VIOLATION, "no username supplied"))?
        .to_owned();
    let database = message
        .database()
        .filter(|d| !d.is_empty())
        .unwrap_or(&user)
        .to_owned();
    if pooler.console.is_database_disabled(&database) {
        return Err(LoginError::rejected(
            sqlstate::PROTOCOL_VIOLATION,
            format!("database \"{database}\" is disabled"),
        ));
    }
    let g = &config.general;
    let tracked = startup_parameters(
        &message,
        &g.ignore_startup_parameters,
        &g.track_extra_parameters,
    )?;
    let mut out = BytesMut::with_capacity(512);
    negotiate(&message, &mut out)?;

    let method = match g.auth_type {
        AuthType::Any | AuthType::Trust => ClientAuthMethod::Trust,
        AuthType::Plain => ClientAuthMethod::Plain,
        AuthType::Md5 => ClientAuthMethod::Md5,
        _ => ClientAuthMethod::Scram,
    };
    let (secret, is_from_auth_query) = match pooler.secret(&user) {
        Some(secret) => (Some(secret), false),
        None => match crate::login::auth_query::lookup(pooler, &database, &user).await? {
            crate::login::auth_query::Lookup::Found(secret) => (secret, true),
            crate::login::auth_query::Lookup::NotConfigured => (None, false),
        },
    };
    if secret.is_none() && g.auth_type != AuthType::Any {
        return Err(LoginError::auth("password authentication failed"));
    }
    if !out.is_empty() {
        stream
            .write_all_buf(&mut out)
            .await
            .map_err(LoginError::Io)?;
    }
    let keys = authenticate(
        stream,
        input,
        method,
        &user,
        secret.as_ref(),
        g.scram_iterations,
    )
    .await?;
    let learned = secret.as_ref().filter(|_| is_from_auth_query);
    let entry = pooler.pool_for(&database, &user, learned)?;
    let mut admission = admission;
    pooler.admit_to_pool(&mut admission, &entry)?;
    if let Some(keys) = keys {
        let mut credentials = entry.credentials.lock();
        if matches!(*credentials, ServerCredentials::None) {
            *credentials = ServerCredentials::ScramKeys(keys);
        }
    }
    let group = pooler.group_for(&entry);
    if entry.host.is_some() && group.is_none() {
        // KILL removed the pool between lookup and here: never serve it unrouted.
        return Err(LoginError::rejected(
            sqlstate::ADMIN_SHUTDOWN,
            "database removed, reconnect",
        ));
    }
    // A client waiting for the first server login (its welcome) is covered by
    // query_timeout like a client waiting for a server, as PgBouncer's janitor does.
    let query_timeout = pooler.session_settings(&entry).query_timeout;
    let welcome = welcome_params(&entry, group.as_deref());
    let welcome = match query_timeout {
        Some(limit) => tokio::time::timeout(limit, welcome)
            .await
            .unwrap_or(Err(SessionError::Fatal("query_timeout"))),
        None => welcome.await,
    };
    let welcome = welcome.map_err(|e| match e {
        SessionError::Pool(crate::pool::PoolError::ServerLogin(f)) => {
            let message = f.message.clone();
            LoginError::Rejected {
                sqlstate: sqlstate::CONNECTION_FAILURE,
                message,
            }
        }
        SessionError::Fatal(reason) => LoginError::rejected(sqlstate::PROTOCOL_VIOLATION, reason),
        other => LoginError::rejected(sqlstate::CONNECTION_FAILURE, other.to_string()),
    })?;
    let params = ClientParams::new(&welcome, &tracked, &g.track_extra_parameters);
    let cancel = pooler.cancels.register();
    write_welcome(&mut out, &welcome, &params, &cancel)?;
    stream
        .write_all_buf(&mut out)
        .await
        .map_err(LoginError::Io)?;
    if g.log_connections {
        tracing::info!(peer = %stream.peer_addr(), "login attempt: db={database} user={user}");
    }
    crate::stats::PoolStats::add(&entry.pool.stats().client_login_count, 1);
    let registration = register(stream, pooler, &entry, &user, &database, &params);
    Ok(Some(Admitted::Pool(Welcomed {
        entry,
        params,
        cancel,
        admission,
        registration,
        group,
    })))
}

/// What a login leads to.
enum Admitted {
    /// A client of a pool.
    Pool(Welcomed),
    /// An admin console client.
    Console(crate::admin::ConsoleLogin),
}

/// A client that logged in and got its welcome.
struct Welcomed {
    entry: Arc<PoolEntry>,
    params: ClientParams,
    cancel: crate::cancel::CancelHandle,
    admission: crate::cluster::ClientSlot,
    registration: crate::registry::ClientRegistration,
    /// The host group when the database is read/write split.
    group: Option<Arc<HostGroup>>,
}

/// Lists a logged-in client for SHOW CLIENTS and KILL_CLIENT.
fn register(
    stream: &Stream,
    pooler: &Pooler,
    entry: &PoolEntry,
    user: &str,
    database: &str,
    params: &ClientParams,
) -> crate::registry::ClientRegistration {
    let (remote, local) = crate::admin::endpoints(stream, pooler.config().general.listen_port);
    let remote_pid = match stream {
        Stream::Unix(s) => s
            .peer_cred()
            .ok()
            .and_then(|c| c.pid())
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(0),
        Stream::Tcp(_) => 0,
    };
    pooler.registry.register_client(crate::registry::NewClient {
        user: user.to_owned(),
        database: database.to_owned(),
        pool_user: entry.user.clone(),
        remote,
        local,
        remote_pid,
        application_name: params
            .get("application_name")
            .unwrap_or_default()
            .to_owned(),
        is_console: false,
    })
}

fn negotiate(message: &StartupMessage, out: &mut BytesMut) -> Result<(), LoginError> {
    if let Some(negotiation) = message.negotiation() {
        let options: Vec<&str> = negotiation
            .unsupported_options
            .iter()
            .map(String::as_str)
            .collect();
        encode::negotiate_protocol_version(out, negotiation.newest_minor, &options)
            .map_err(LoginError::Protocol)?;
    }
    Ok(())
}

/// How long the first login of a host group waits for the health checks to find roles.
const WELCOME_ROLE_WAIT: std::time::Duration = crate::router::monitor::PROBE_TIMEOUT;

/// The server parameters new clients of `entry` are welcomed with, learned from a real
/// server login the first time.
/// For a host group, the hosts are tried primary first, once their roles are known.
async fn welcome_params(
    entry: &PoolEntry,
    group: Option<&HostGroup>,
) -> Result<ServerParams, SessionError> {
    if let Some(params) = entry.welcome.lock().clone() {
        return Ok(params);
    }
    let server = match group {
        Some(group) => {
            group.wait_first_check(WELCOME_ROLE_WAIT).await;
            let mut last_error = None;
            let mut found = None;
            for host in group.welcome_order() {
                match host.pool.checkout().wait().await {
                    Ok(server) => {
                        found = Some(server);
                        break;
                    }
                    Err(e) => last_error = Some(e),
                }
            }
            match (found, last_error) {
                (Some(server), _) => server,
                (None, Some(e)) => return Err(e.into()),
                (None, None) => return Err(SessionError::Fatal("no server in the host list")),
            }
        }
        None => entry.pool.checkout().wait().await?,
    };
    let params = server.params.clone();
    server.checkin();
    *entry.welcome.lock() = Some(params.clone());
    Ok(params)
}

fn write_welcome(
    out: &mut BytesMut,
    welcome: &ServerParams,
    params: &ClientParams,
    cancel: &crate::cancel::CancelHandle,
) -> Result<(), LoginError> {
    encode::authentication_ok(out);
    for (name, value) in welcome.iter() {
        let value = params.get(name).unwrap_or(value);
        encode::parameter_status(out, name.as_bytes(), value.as_bytes())
            .map_err(LoginError::Protocol)?;
    }
    for (name, value) in params.iter() {
        if welcome.get(name).is_none() && name != "search_path" {
            encode::parameter_status(out, name.as_bytes(), value.as_bytes())
                .map_err(LoginError::Protocol)?;
        }
    }
    encode::backend_key_data(out, cancel.pid, &cancel.key).map_err(LoginError::Protocol)?;
    encode::ready_for_query(out, TransactionStatus::Idle);
    Ok(())
}
