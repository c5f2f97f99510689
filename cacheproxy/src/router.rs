//! Routing: (command, command table, client state, read policy) → `Target`. Pure logic, no I/O.

use protocol::resp::Request;

use crate::commands::table::refusal;
use crate::commands::{CommandFlags, CommandKind, CommandTable, PubSubKind, Special, special};
use crate::config::ReadFrom;

/// Why a command needs the client's own upstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinCause {
    /// `MULTI` or `WATCH` starts a transaction.
    Transaction,
    /// A blocking command (`BLPOP`, `XREAD … BLOCK`, `WAIT` …).
    Blocking,
    /// `SUBSCRIBE`, `PSUBSCRIBE`, `SSUBSCRIBE`.
    Subscribe,
    /// `SELECT n` with n ≠ 0.
    Select,
    /// `CLIENT TRACKING on`.
    Tracking,
    /// `MONITOR` (only when enabled).
    Monitor,
    /// `CLIENT NO-TOUCH on`.
    NoTouch,
    /// The client is already pinned: everything goes to its connection.
    Session,
}

/// Commands answered by the proxy itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalCommand {
    /// `PING [message]`.
    Ping,
    /// `ECHO message`.
    Echo,
    /// `QUIT`: `+OK`, then close.
    Quit,
    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`.
    Hello,
    /// `AUTH [user] password` against the proxy's own users.
    Auth,
    /// `RESET`.
    Reset,
    /// `SELECT 0` while unpinned (shared connections are on db 0).
    SelectZero,
    /// `CLIENT SETNAME name`.
    ClientSetName,
    /// `CLIENT GETNAME`.
    ClientGetName,
    /// `CLIENT SETINFO …` (library name/version; accepted and ignored).
    ClientSetInfo,
    /// `CLIENT TRACKING off` while not tracking.
    ClientTrackingOff,
    /// `EXEC` outside a transaction.
    ExecWithoutMulti,
    /// `DISCARD` outside a transaction.
    DiscardWithoutMulti,
    /// `UNWATCH` while nothing is watched.
    Unwatch,
    /// An unsubscribe command while not subscribed.
    UnsubscribeNone(PubSubKind),
}

/// `CLIENT` subcommands answered from the proxy's own view of its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCommand {
    /// `CLIENT ID`: the proxy-side id.
    Id,
    /// `CLIENT INFO`: the client's own line.
    Info,
    /// `CLIENT LIST [TYPE t] [ID id …]`: the proxy's clients.
    List,
    /// `CLIENT KILL …`: disconnects proxy clients.
    Kill,
    /// `CLIENT UNBLOCK id [TIMEOUT|ERROR]`: a proxy client's blocked call.
    Unblock,
    /// `CLIENT NO-EVICT on|off`: a flag only (the proxy's shared connections are never evicted).
    NoEvict,
    /// `CLIENT REPLY ON|OFF|SKIP`: honoured by the proxy.
    Reply,
    /// `CLIENT GETREDIR` while unpinned: `-1`.
    GetRedir,
    /// `CLIENT TRACKINGINFO` while unpinned: tracking is off.
    TrackingInfo,
}

/// Where one command goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A shared connection to the master.
    Master,
    /// A shared connection to a replica.
    Replica,
    /// The master, with the proxy's `# Proxy` section appended to the reply.
    Info,
    /// The client's pinned connection (checked out first if it has none).
    Pinned(PinCause),
    /// Answered by the proxy.
    Local(LocalCommand),
    /// Answered by the proxy from its client registry (some on a control connection).
    Client(ClientCommand),
    /// Sent on a one-off control connection to the master, never queued behind other
    /// clients' commands (`SCRIPT KILL`, `FUNCTION KILL`).
    Control,
    /// Refused: the error line to send (without the leading `-`).
    Reject(String),
}

/// A routing decision plus whether the command may be resent after a lost connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// Where it goes.
    pub target: Target,
    /// True for read-only, non-blocking commands: resending cannot change data.
    pub is_read_only: bool,
}

/// The client and proxy state routing depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteContext {
    /// The client holds a pinned connection.
    pub is_pinned: bool,
    /// The read policy.
    pub read_from: ReadFrom,
    /// At least one healthy replica is known.
    pub has_replica: bool,
    /// `MONITOR` is allowed.
    pub enable_monitor: bool,
}

/// Decides where `request` goes.
pub fn route(request: &Request, table: &CommandTable, context: &RouteContext) -> Routed {
    let spec = table.lookup(request);
    let special = special(request.name());
    let kind = match (special, spec) {
        // XREAD/XREADGROUP carry the `blocking` flag but block only with BLOCK.
        (Some(Special::StreamRead), Some(spec)) if !has_block_option(request) => {
            if spec.flags.contains(CommandFlags::WRITE) {
                Some(CommandKind::Write)
            } else {
                Some(CommandKind::Read)
            }
        }
        (_, spec) => spec.map(|spec| spec.kind()),
    };
    let is_read_only = kind == Some(CommandKind::Read);
    let target = match special {
        Some(special) => route_special(special, request, context),
        None => None,
    };
    let target = target.unwrap_or_else(|| {
        if context.is_pinned {
            return Target::Pinned(PinCause::Session);
        }
        match kind {
            Some(CommandKind::Blocking) => Target::Pinned(PinCause::Blocking),
            Some(CommandKind::Read) => read_target(context),
            _ => Target::Master,
        }
    });
    let is_read_only = is_read_only && matches!(target, Target::Master | Target::Replica);
    Routed {
        target,
        is_read_only,
    }
}

fn read_target(context: &RouteContext) -> Target {
    match (context.read_from, context.has_replica) {
        (ReadFrom::Master, _) => Target::Master,
        (_, true) => Target::Replica,
        (ReadFrom::ReplicaPreferred, false) => Target::Master,
        (ReadFrom::Replica, false) => {
            Target::Reject("ERR no healthy replica available (read_from = replica)".to_owned())
        }
    }
}

/// Targets of specially handled commands; `None` falls through to flag-based routing.
fn route_special(special: Special, request: &Request, context: &RouteContext) -> Option<Target> {
    let pinned_or = |unpinned: Target| {
        if context.is_pinned {
            Target::Pinned(PinCause::Session)
        } else {
            unpinned
        }
    };
    Some(match special {
        Special::Refused(reason) => Target::Reject(refusal(request.name(), reason)),
        Special::Quit => Target::Local(LocalCommand::Quit),
        Special::Reset => Target::Local(LocalCommand::Reset),
        Special::Auth => Target::Local(LocalCommand::Auth),
        Special::Hello => Target::Local(LocalCommand::Hello),
        Special::Client => return route_client(request, context),
        Special::Ping => pinned_or(Target::Local(LocalCommand::Ping)),
        Special::Echo => pinned_or(Target::Local(LocalCommand::Echo)),
        Special::Multi | Special::Watch => pinned_or(Target::Pinned(PinCause::Transaction)),
        Special::Exec => pinned_or(Target::Local(LocalCommand::ExecWithoutMulti)),
        Special::Discard => pinned_or(Target::Local(LocalCommand::DiscardWithoutMulti)),
        Special::Unwatch => pinned_or(Target::Local(LocalCommand::Unwatch)),
        Special::Subscribe(_) => pinned_or(Target::Pinned(PinCause::Subscribe)),
        Special::Unsubscribe(kind) => pinned_or(Target::Local(LocalCommand::UnsubscribeNone(kind))),
        Special::Select => {
            if request.argc() != 2 {
                Target::Reject("ERR wrong number of arguments for 'select' command".to_owned())
            } else if context.is_pinned {
                Target::Pinned(PinCause::Session)
            } else if request.arg(1) == Some(b"0".as_slice()) {
                Target::Local(LocalCommand::SelectZero)
            } else {
                Target::Pinned(PinCause::Select)
            }
        }
        Special::Info => pinned_or(Target::Info),
        Special::Monitor if context.enable_monitor => pinned_or(Target::Pinned(PinCause::Monitor)),
        Special::Monitor => Target::Reject(refusal(
            request.name(),
            "MONITOR is disabled (set enable_monitor = true)",
        )),
        Special::StreamRead if has_block_option(request) => {
            pinned_or(Target::Pinned(PinCause::Blocking))
        }
        Special::StreamRead => return None,
        Special::Script => pinned_or(Target::Master),
        Special::ScriptAdmin
            if request
                .arg(1)
                .is_some_and(|sub| sub.eq_ignore_ascii_case(b"kill")) =>
        {
            Target::Control
        }
        Special::ScriptAdmin | Special::Wait => return None,
    })
}

/// `CLIENT` subcommands: some change connection state and must not reach a shared connection.
fn route_client(request: &Request, context: &RouteContext) -> Option<Target> {
    let sub = request.arg(1).unwrap_or_default().to_ascii_lowercase();
    let target = match sub.as_slice() {
        b"setname" => Target::Local(LocalCommand::ClientSetName),
        b"getname" => Target::Local(LocalCommand::ClientGetName),
        b"setinfo" => Target::Local(LocalCommand::ClientSetInfo),
        b"id" => Target::Client(ClientCommand::Id),
        b"info" => Target::Client(ClientCommand::Info),
        b"list" => Target::Client(ClientCommand::List),
        b"kill" => Target::Client(ClientCommand::Kill),
        b"unblock" => Target::Client(ClientCommand::Unblock),
        b"no-evict" => Target::Client(ClientCommand::NoEvict),
        b"reply" => Target::Client(ClientCommand::Reply),
        _ if context.is_pinned => Target::Pinned(PinCause::Session),
        b"getredir" => Target::Client(ClientCommand::GetRedir),
        b"trackinginfo" => Target::Client(ClientCommand::TrackingInfo),
        // `off` is every connection's default: the server validates it on a shared one.
        b"no-touch"
            if request
                .arg(2)
                .is_some_and(|arg| arg.eq_ignore_ascii_case(b"on")) =>
        {
            Target::Pinned(PinCause::NoTouch)
        }
        b"tracking" => {
            let is_on = request
                .arg(2)
                .is_some_and(|arg| arg.eq_ignore_ascii_case(b"on"));
            let has_redirect = request
                .args()
                .skip(3)
                .any(|arg| arg.eq_ignore_ascii_case(b"redirect"));
            if has_redirect {
                Target::Reject(refusal(
                    b"client|tracking",
                    "REDIRECT names a proxy-side client id; use RESP3 (HELLO 3) tracking instead",
                ))
            } else if is_on {
                Target::Pinned(PinCause::Tracking)
            } else {
                Target::Local(LocalCommand::ClientTrackingOff)
            }
        }
        _ => return None,
    };
    Some(target)
}

/// True when an `XREAD`/`XREADGROUP` has a `BLOCK` option before `STREAMS`.
fn has_block_option(request: &Request) -> bool {
    request
        .args()
        .skip(1)
        .take_while(|arg| !arg.eq_ignore_ascii_case(b"streams"))
        .any(|arg| arg.eq_ignore_ascii_case(b"block"))
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
