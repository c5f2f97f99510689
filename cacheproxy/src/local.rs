//! Commands the proxy answers itself (PING, ECHO, QUIT, HELLO, AUTH, RESET, CLIENT
//! SETNAME/GETNAME, SELECT 0 …), the per-client `Session` they change, proxy-side
//! authentication, and the `# Proxy` section added to `INFO`.

use bytes::{Bytes, BytesMut};
use protocol::resp::{Request, RespVersion, Value, reply};
use subtle::ConstantTimeEq;

use crate::commands::{PubSubKind, Special, special};
use crate::config::Config;
use crate::router::LocalCommand;
use crate::shared::Shared;
use crate::topology::MasterState;

/// A transaction whose pinned connection was lost (failover); answered locally until it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokenTransaction {
    /// Lost inside MULTI: queued commands fail, EXEC gets EXECABORT.
    MultiLost,
    /// Lost while WATCHing: the next EXEC must fail as if a watched key changed.
    WatchLost,
    /// MULTI after a lost WATCH: commands are queued locally, EXEC returns null.
    WatchLostInMulti,
}

/// `CLIENT REPLY` mode, honoured by the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyMode {
    /// Every command is answered.
    On,
    /// No command is answered.
    Off,
    /// The next command is not answered.
    SkipNext,
}

/// Connection-level state of one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Client id (HELLO `id`).
    pub id: u64,
    /// Negotiated protocol.
    pub protocol: RespVersion,
    /// `CLIENT SETNAME`.
    pub name: Option<Bytes>,
    /// AUTH done (or not required).
    pub is_authenticated: bool,
    /// Selected database (non-zero only while pinned).
    pub db: i64,
    /// A transaction lost in a failover.
    pub broken: Option<BrokenTransaction>,
    /// The authenticated user (`default` until AUTH names another).
    pub user: Bytes,
    /// `CLIENT REPLY`.
    pub reply_mode: ReplyMode,
    /// `CLIENT NO-EVICT on` (a flag only: the proxy's clients are not evicted by the server).
    pub is_no_evict: bool,
    /// `CLIENT SETINFO LIB-NAME`.
    pub lib_name: Option<Bytes>,
    /// `CLIENT SETINFO LIB-VER`.
    pub lib_ver: Option<Bytes>,
}

impl Session {
    /// A new client's session.
    pub fn new(id: u64, config: &Config) -> Session {
        Session {
            id,
            protocol: RespVersion::Resp2,
            name: None,
            is_authenticated: !config.requires_client_auth(),
            db: 0,
            broken: None,
            user: Bytes::from_static(b"default"),
            reply_mode: ReplyMode::On,
            is_no_evict: false,
            lib_name: None,
            lib_ver: None,
        }
    }
}

/// What the client must do after a local answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalOutcome {
    /// Nothing more.
    Replied,
    /// Close after the reply (`QUIT`).
    Close,
    /// `RESET`: drop pinned state and subscriptions too.
    Reset,
}

/// Values local answers need besides the session.
#[derive(Debug, Clone, Copy)]
pub struct LocalContext<'a> {
    /// Current configuration.
    pub config: &'a Config,
    /// Master `redis_version` for HELLO.
    pub server_version: &'a str,
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
const NO_PASSWORD: &str = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";

/// Answers `command` into `out`.
pub fn answer(
    command: LocalCommand,
    request: &Request,
    session: &mut Session,
    context: &LocalContext<'_>,
    out: &mut BytesMut,
) -> LocalOutcome {
    let argc = request.argc();
    match command {
        LocalCommand::Ping => match (argc, request.arg(1)) {
            (1, _) => reply::simple(out, "PONG"),
            (2, Some(message)) => reply::bulk(out, message),
            _ => wrong_arity(out, "ping"),
        },
        LocalCommand::Echo => match (argc, request.arg(1)) {
            (2, Some(message)) => reply::bulk(out, message),
            _ => wrong_arity(out, "echo"),
        },
        LocalCommand::Quit => {
            reply::simple(out, "OK");
            return LocalOutcome::Close;
        }
        LocalCommand::Hello => hello(request, session, context, out),
        LocalCommand::Auth => auth(request, session, context.config, out),
        LocalCommand::Reset => {
            let (lib_name, lib_ver) = (session.lib_name.take(), session.lib_ver.take());
            *session = Session::new(session.id, context.config);
            session.lib_name = lib_name;
            session.lib_ver = lib_ver;
            reply::simple(out, "RESET");
            return LocalOutcome::Reset;
        }
        LocalCommand::SelectZero => {
            session.db = 0;
            reply::simple(out, "OK");
        }
        LocalCommand::ClientSetName => match request.arg(2) {
            Some(name) if argc == 3 => set_name(session, name, out),
            _ => wrong_arity(out, "client|setname"),
        },
        LocalCommand::ClientGetName => match &session.name {
            Some(name) => reply::bulk(out, name),
            None => reply::null(out, session.protocol),
        },
        LocalCommand::ClientSetInfo => set_info(request, session, out),
        LocalCommand::ClientTrackingOff | LocalCommand::Unwatch => {
            reply::simple(out, "OK");
        }
        LocalCommand::ExecWithoutMulti => reply::error(out, "ERR EXEC without MULTI"),
        LocalCommand::DiscardWithoutMulti => reply::error(out, "ERR DISCARD without MULTI"),
        LocalCommand::UnsubscribeNone(kind) => {
            unsubscribe_none(request, kind, session.protocol, out)
        }
    }
    LocalOutcome::Replied
}

fn wrong_arity(out: &mut BytesMut, name: &str) {
    reply::error(
        out,
        &format!("ERR wrong number of arguments for '{name}' command"),
    );
}

fn set_name(session: &mut Session, name: &[u8], out: &mut BytesMut) {
    if name.iter().any(|byte| !(b'!'..=b'~').contains(byte)) {
        reply::error(
            out,
            "ERR Client names cannot contain spaces, newlines or special characters.",
        );
        return;
    }
    session.name = (!name.is_empty()).then(|| Bytes::copy_from_slice(name));
    reply::simple(out, "OK");
}

fn set_info(request: &Request, session: &mut Session, out: &mut BytesMut) {
    let (Some(attribute), Some(value), 4) = (request.arg(2), request.arg(3), request.argc()) else {
        return wrong_arity(out, "client|setinfo");
    };
    let value = (!value.is_empty()).then(|| Bytes::copy_from_slice(value));
    if attribute.eq_ignore_ascii_case(b"lib-name") {
        session.lib_name = value;
    } else if attribute.eq_ignore_ascii_case(b"lib-ver") {
        session.lib_ver = value;
    } else {
        let text = format!(
            "ERR Unrecognized option '{}'",
            String::from_utf8_lossy(attribute)
        );
        return reply::error(out, &text);
    }
    reply::simple(out, "OK");
}

/// True when (user, password) matches `requirepass` (user absent or `default`) or `users`.
pub fn check_credentials(config: &Config, user: Option<&[u8]>, password: &[u8]) -> bool {
    let is_default = user.is_none_or(|user| user == b"default");
    if is_default {
        return match &config.requirepass {
            Some(expected) => bool::from(expected.as_bytes().ct_eq(password)),
            None => !config.requires_client_auth() && user.is_some(),
        };
    }
    config
        .client_users()
        .unwrap_or_default()
        .iter()
        .any(|(name, expected)| {
            let user = user.unwrap_or_default();
            name.as_bytes() == user && bool::from(expected.as_bytes().ct_eq(password))
        })
}

fn auth(request: &Request, session: &mut Session, config: &Config, out: &mut BytesMut) {
    let (user, password) = match (request.argc(), request.arg(1), request.arg(2)) {
        (2, Some(password), _) => (None, password),
        (3, Some(user), Some(password)) => (Some(user), password),
        _ => return wrong_arity(out, "auth"),
    };
    if user.is_none() && !config.requires_client_auth() {
        return reply::error(out, NO_PASSWORD);
    }
    if check_credentials(config, user, password) {
        session.is_authenticated = true;
        session.user = Bytes::copy_from_slice(user.unwrap_or(b"default"));
        reply::simple(out, "OK");
    } else {
        reply::error(out, WRONGPASS);
    }
}

fn hello(request: &Request, session: &mut Session, context: &LocalContext<'_>, out: &mut BytesMut) {
    let mut protocol = session.protocol;
    if let Some(version) = request.arg(1) {
        protocol = match std::str::from_utf8(version)
            .ok()
            .and_then(|text| text.parse::<i64>().ok())
        {
            Some(2) => RespVersion::Resp2,
            Some(3) => RespVersion::Resp3,
            Some(_) => return reply::error(out, "NOPROTO unsupported protocol version"),
            None => {
                return reply::error(
                    out,
                    "ERR Protocol version is not an integer or out of range",
                );
            }
        };
    }
    let mut credentials = None;
    let mut name = None;
    let mut index = 2;
    while let Some(option) = request.arg(index) {
        let has = |count: usize| index + count < request.argc();
        if option.eq_ignore_ascii_case(b"AUTH") && has(2) {
            credentials = request.arg(index + 1).zip(request.arg(index + 2));
            index += 3;
        } else if option.eq_ignore_ascii_case(b"SETNAME") && has(1) {
            name = request.arg(index + 1);
            index += 2;
        } else {
            let text = format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(option)
            );
            return reply::error(out, &text);
        }
    }
    if let Some((user, password)) = credentials {
        if !check_credentials(context.config, Some(user), password) {
            return reply::error(out, WRONGPASS);
        }
        session.is_authenticated = true;
        session.user = Bytes::copy_from_slice(user);
    }
    if !session.is_authenticated {
        return reply::error(
            out,
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        );
    }
    if let Some(name) = name {
        let mut ignored = BytesMut::new();
        set_name(session, name, &mut ignored);
        if ignored.first() == Some(&b'-') {
            out.extend_from_slice(&ignored);
            return;
        }
    }
    session.protocol = protocol;
    reply::map_header(out, 7, protocol);
    reply::bulk(out, b"server");
    reply::bulk(out, b"redis");
    reply::bulk(out, b"version");
    reply::bulk(out, context.server_version.as_bytes());
    reply::bulk(out, b"proto");
    reply::integer(out, if protocol == RespVersion::Resp3 { 3 } else { 2 });
    reply::bulk(out, b"id");
    reply::integer(out, i64::try_from(session.id).unwrap_or(i64::MAX));
    reply::bulk(out, b"mode");
    reply::bulk(out, b"standalone");
    reply::bulk(out, b"role");
    reply::bulk(out, b"master");
    reply::bulk(out, b"modules");
    reply::array_header(out, 0);
}

fn unsubscribe_none(
    request: &Request,
    kind: PubSubKind,
    protocol: RespVersion,
    out: &mut BytesMut,
) {
    let command: &[u8] = match kind {
        PubSubKind::Channel => b"unsubscribe",
        PubSubKind::Pattern => b"punsubscribe",
        PubSubKind::Shard => b"sunsubscribe",
    };
    let mut names: Vec<Option<&[u8]>> = request.args().skip(1).map(Some).collect();
    if names.is_empty() {
        names.push(None);
    }
    for name in names {
        reply::push_header(out, 3, protocol);
        reply::bulk(out, command);
        match name {
            Some(name) => reply::bulk(out, name),
            None => reply::null(out, protocol),
        }
        reply::integer(out, 0);
    }
}

/// Answers a command of a client whose transaction was lost in a failover; `None` when
/// the command should be routed normally. Clears `session.broken` when the transaction ends.
pub fn answer_broken_transaction(
    request: &Request,
    session: &mut Session,
    out: &mut BytesMut,
) -> Option<()> {
    let broken = session.broken?;
    let command = special(request.name());
    if matches!(command, Some(Special::Quit | Special::Reset)) {
        return None;
    }
    match (broken, command) {
        (
            BrokenTransaction::MultiLost | BrokenTransaction::WatchLostInMulti,
            Some(Special::Multi),
        ) => {
            reply::error(out, "ERR MULTI calls can not be nested");
        }
        (
            BrokenTransaction::MultiLost | BrokenTransaction::WatchLostInMulti,
            Some(Special::Watch),
        ) => {
            reply::error(out, "ERR WATCH inside MULTI is not allowed");
        }
        (_, Some(Special::Discard)) if broken != BrokenTransaction::WatchLost => {
            session.broken = None;
            reply::simple(out, "OK");
        }
        (BrokenTransaction::MultiLost, Some(Special::Exec)) => {
            session.broken = None;
            reply::error(
                out,
                "EXECABORT Transaction discarded because of previous errors.",
            );
        }
        (BrokenTransaction::WatchLostInMulti, Some(Special::Exec)) => {
            session.broken = None;
            reply::null_array(out, session.protocol);
        }
        (BrokenTransaction::MultiLost, _) => reply::error(
            out,
            "ERR connection to master lost during failover; the transaction will be discarded",
        ),
        (BrokenTransaction::WatchLostInMulti, _) => reply::simple(out, "QUEUED"),
        (BrokenTransaction::WatchLost, Some(Special::Multi)) => {
            session.broken = Some(BrokenTransaction::WatchLostInMulti);
            reply::simple(out, "OK");
        }
        (BrokenTransaction::WatchLost, Some(Special::Watch)) => reply::simple(out, "OK"),
        (BrokenTransaction::WatchLost, Some(Special::Unwatch)) => {
            session.broken = None;
            reply::simple(out, "OK");
        }
        (BrokenTransaction::WatchLost, Some(Special::Exec)) => {
            reply::error(out, "ERR EXEC without MULTI")
        }
        (BrokenTransaction::WatchLost, Some(Special::Discard)) => {
            reply::error(out, "ERR DISCARD without MULTI");
        }
        (BrokenTransaction::WatchLost, _) => return None,
    }
    Some(())
}

/// The `# Proxy` section of `INFO`.
pub fn proxy_section(shared: &Shared) -> String {
    let stats = shared.stats.snapshot();
    let topology = shared.topology.borrow().clone();
    let (master, state) = match &topology.master {
        MasterState::Ready(addr) => (addr.to_string(), "ready".to_owned()),
        MasterState::Unavailable { last, reason } => (
            last.map_or_else(|| "none".to_owned(), |addr| addr.to_string()),
            format!("unavailable ({reason})"),
        ),
    };
    let table = if shared.commands.load().is_live() {
        "live"
    } else {
        "builtin"
    };
    format!(
        "# Proxy\r\nproxy_version:{}\r\nproxy_master:{master}\r\nproxy_master_state:{state}\r\n\
         proxy_epoch:{}\r\nproxy_failovers:{}\r\nproxy_replicas:{}\r\nproxy_clients:{}\r\n\
         proxy_clients_total:{}\r\nproxy_upstream_connections:{}\r\nproxy_pinned_connections:{}\r\n\
         proxy_pinned_in_use:{}\r\nproxy_commands:{}\r\nproxy_upstream_errors:{}\r\nproxy_retries:{}\r\n\
         proxy_command_table:{table}\r\n",
        env!("CARGO_PKG_VERSION"),
        topology.epoch,
        stats.failovers,
        topology.replicas.len(),
        stats.clients,
        stats.clients_total,
        stats.upstream_connections,
        stats.pinned_connections,
        stats.pinned_in_use,
        stats.commands,
        stats.upstream_errors,
        stats.retries,
    )
}

/// `INFO`'s reply with `section` appended; error and unexpected replies stay as they are.
pub fn append_info_section(original: &[u8], section: &str) -> BytesMut {
    let mut out = BytesMut::new();
    match Value::decode(original) {
        Ok(Some((Value::Bulk(text), _))) => {
            reply::bulk(&mut out, &joined(&text, section));
        }
        Ok(Some((Value::Verbatim { format, text }, _))) => {
            reply::verbatim(
                &mut out,
                format,
                &joined(&text, section),
                RespVersion::Resp3,
            );
        }
        _ => out.extend_from_slice(original),
    }
    out
}

fn joined(text: &[u8], section: &str) -> Vec<u8> {
    let mut joined = text.to_vec();
    if !joined.is_empty() && !joined.ends_with(b"\r\n") {
        joined.extend_from_slice(b"\r\n");
    }
    if !joined.is_empty() {
        joined.extend_from_slice(b"\r\n");
    }
    joined.extend_from_slice(section.as_bytes());
    joined
}

#[cfg(test)]
#[path = "local_tests.rs"]
mod tests;
