//! Logging in to the console database `pgbouncer`: who may (admin_users, stats_users,
//! user `pgbouncer` over the Unix socket from the same Unix user, everyone with
//! `auth_type = any`), how they authenticate, and the console's welcome.

use std::sync::Arc;

use bytes::BytesMut;
use protocol::pg::{StartupMessage, TransactionStatus, encode, sqlstate};
use tokio_util::sync::CancellationToken;

use super::Access;
use super::columns::SERVER_VERSION;
use crate::cancel::CancelHandle;
use crate::cluster::Pooler;
use crate::config::{ADMIN_DATABASE, AuthType};
use crate::login::LoginError;
use crate::login::auth::{ClientAuthMethod, authenticate};
use crate::net::Stream;
use crate::registry::{ClientRegistration, Endpoint, NewClient};

/// A client that logged in to the console.
#[derive(Debug)]
pub struct ConsoleLogin {
    /// Admin (every command) or stats (SHOW only).
    pub access: Access,
    /// Its entry in SHOW CLIENTS.
    pub registration: ClientRegistration,
    /// Its BackendKeyData registration.
    pub cancel: CancelHandle,
}

/// Whether a startup packet asks for the console database.
pub fn is_console_login(message: &StartupMessage) -> bool {
    let user = message.user().unwrap_or_default();
    message.database().filter(|d| !d.is_empty()).unwrap_or(user) == ADMIN_DATABASE
}

/// The peer's (uid, pid) over a Unix socket.
fn peer_credentials(stream: &Stream) -> Option<(u32, u32)> {
    match stream {
        Stream::Unix(s) => s.peer_cred().ok().map(|c| {
            let pid = c.pid().and_then(|p| u32::try_from(p).ok()).unwrap_or(0);
            (c.uid(), pid)
        }),
        Stream::Tcp(_) => None,
    }
}

/// Authenticates a console client and sends the welcome. The console is exempt from
/// `max_client_conn`.
pub async fn login(
    stream: &mut Stream,
    input: &mut BytesMut,
    pooler: &Arc<Pooler>,
    shutdown: &CancellationToken,
    message: &StartupMessage,
) -> Result<ConsoleLogin, LoginError> {
    if shutdown.is_cancelled() {
        return Err(LoginError::rejected(
            sqlstate::ADMIN_SHUTDOWN,
            "pooler is shutting down",
        ));
    }
    let config = pooler.config();
    let g = &config.general;
    let user = message
        .user()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| LoginError::rejected(sqlstate::PROTOCOL_VIOLATION, "no username supplied"))?
        .to_owned();
    let tracked = crate::login::startup_parameters(
        message,
        &g.ignore_startup_parameters,
        &g.track_extra_parameters,
    )?;
    let mut out = BytesMut::with_capacity(512);
    if let Some(negotiation) = message.negotiation() {
        let options: Vec<&str> = negotiation
            .unsupported_options
            .iter()
            .map(String::as_str)
            .collect();
        encode::negotiate_protocol_version(&mut out, negotiation.newest_minor, &options)
            .map_err(LoginError::Protocol)?;
    }
    let is_listed = |list: &[String]| list.contains(&user);
    let peer = peer_credentials(stream);
    let is_own_user = peer.is_some_and(|(uid, _)| uid == nix::unistd::getuid().as_raw())
        && user == ADMIN_DATABASE;
    let access = if is_own_user {
        if g.log_connections {
            tracing::info!("pgbouncer access from unix socket");
        }
        Access::Admin
    } else if g.auth_type == AuthType::Any {
        if is_listed(&g.admin_users) {
            Access::Admin
        } else {
            Access::Stats
        }
    } else {
        let secret = pooler
            .secret(&user)
            .ok_or_else(|| LoginError::auth("password authentication failed"))?;
        if !out.is_empty() {
            stream
                .write_all_buf(&mut out)
                .await
                .map_err(LoginError::Io)?;
        }
        let method = match g.auth_type {
            AuthType::Trust => ClientAuthMethod::Trust,
            AuthType::Plain => ClientAuthMethod::Plain,
            AuthType::Md5 => ClientAuthMethod::Md5,
            _ => ClientAuthMethod::Scram,
        };
        authenticate(
            stream,
            input,
            method,
            &user,
            Some(&secret),
            g.scram_iterations,
        )
        .await?;
        if is_listed(&g.admin_users) {
            Access::Admin
        } else if is_listed(&g.stats_users) {
            Access::Stats
        } else {
            return Err(LoginError::rejected(
                sqlstate::PROTOCOL_VIOLATION,
                "not allowed",
            ));
        }
    };
    let cancel = pooler.cancels.register();
    encode::authentication_ok(&mut out);
    for (name, value) in [
        ("server_version", SERVER_VERSION),
        ("client_encoding", "UTF8"),
        ("server_encoding", "UTF8"),
        ("DateStyle", "ISO"),
        ("TimeZone", "GMT"),
        ("standard_conforming_strings", "on"),
        ("is_superuser", "on"),
    ] {
        encode::parameter_status(&mut out, name.as_bytes(), value.as_bytes())
            .map_err(LoginError::Protocol)?;
    }
    encode::backend_key_data(&mut out, cancel.pid, &cancel.key).map_err(LoginError::Protocol)?;
    encode::ready_for_query(&mut out, TransactionStatus::Idle);
    stream
        .write_all_buf(&mut out)
        .await
        .map_err(LoginError::Io)?;
    if g.log_connections {
        tracing::info!(peer = %stream.peer_addr(), "login attempt: db={ADMIN_DATABASE} user={user}");
    }
    let application_name = tracked
        .iter()
        .find(|(name, _)| name == "application_name")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let (remote, local) = endpoints(stream, g.listen_port);
    let registration = pooler.registry.register_client(NewClient {
        user,
        database: ADMIN_DATABASE.to_owned(),
        pool_user: ADMIN_DATABASE.to_owned(),
        remote,
        local,
        remote_pid: peer.map_or(0, |(_, pid)| pid),
        application_name,
        is_console: true,
    });
    Ok(ConsoleLogin {
        access,
        registration,
        cancel,
    })
}

/// Remote and local ends of a client socket for SHOW CLIENTS (`unix` and the listen
/// port for Unix sockets, as PgBouncer prints them).
pub fn endpoints(stream: &Stream, listen_port: u16) -> (Endpoint, Endpoint) {
    match stream {
        Stream::Tcp(s) => {
            let unix = || Endpoint::Unix("unix".to_owned(), listen_port);
            (
                s.peer_addr().map_or_else(|_| unix(), Endpoint::Tcp),
                s.local_addr().map_or_else(|_| unix(), Endpoint::Tcp),
            )
        }
        Stream::Unix(_) => (
            Endpoint::Unix("unix".to_owned(), listen_port),
            Endpoint::Unix("unix".to_owned(), listen_port),
        ),
    }
}
