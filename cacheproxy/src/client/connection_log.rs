//! PgBouncer-style connection logging (`log_connections`, `log_disconnections`): one info
//! line when a client connects and one, with the reason, when it goes away. The lines carry
//! only the peer address, the client id and a fixed reason text: never a command argument,
//! so no password or `AUTH` argument can reach the log.

use std::fmt;
use std::net::SocketAddr;

use tracing::info;

use crate::config::Config;

/// Why a client connection ended, for the `client closed` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed its side of the connection.
    ClientClosed,
    /// Reading from the client failed (e.g. connection reset).
    ReadFailed,
    /// Writing to the client failed.
    WriteFailed,
    /// The client sent `QUIT`.
    Quit,
    /// The client sent bytes that are not RESP.
    ProtocolError,
    /// The client sent an HTTP request (`POST`, `Host:`), Redis' cross-protocol defence.
    CrossProtocol,
    /// A reply was cut off when its upstream connection was lost.
    ReplyInterrupted,
    /// The client's pinned connection was lost with state the client must rebuild
    /// (client tracking, MONITOR).
    PinnedLost,
    /// The proxy is shutting down.
    Shutdown,
    /// `max_clients` connections were already open.
    MaxClients,
    /// Another client (or the client itself) sent `CLIENT KILL`.
    Killed,
}

impl CloseReason {
    /// The `reason=` text.
    pub fn text(self) -> &'static str {
        match self {
            CloseReason::ClientClosed => "client closed the connection",
            CloseReason::Killed => "killed by CLIENT KILL",
            CloseReason::ReadFailed => "read error",
            CloseReason::WriteFailed => "write error",
            CloseReason::Quit => "QUIT",
            CloseReason::ProtocolError => "protocol error",
            CloseReason::CrossProtocol => "cross-protocol request (HTTP)",
            CloseReason::ReplyInterrupted => "upstream connection lost mid-reply",
            CloseReason::PinnedLost => "pinned upstream connection lost",
            CloseReason::Shutdown => "shutdown",
            CloseReason::MaxClients => "max number of clients reached",
        }
    }
}

/// The peer address, or `unknown` when the OS could not tell.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub Option<SocketAddr>);

impl fmt::Display for PeerAddr {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(formatter),
            None => formatter.write_str("unknown"),
        }
    }
}

/// The `client connected` line.
pub fn connected_line(peer: PeerAddr, id: u64) -> String {
    format!("client connected: addr={peer} id={id}")
}

/// The `client closed` line (`id` is absent for clients refused before they got one).
pub fn closed_line(peer: PeerAddr, id: Option<u64>, reason: CloseReason) -> String {
    match id {
        Some(id) => format!(
            "client closed: addr={peer} id={id} reason={}",
            reason.text()
        ),
        None => format!("client closed: addr={peer} reason={}", reason.text()),
    }
}

/// Logs a new client when `log_connections` is on.
pub fn log_connected(config: &Config, peer: PeerAddr, id: u64) {
    if config.log_connections {
        info!("{}", connected_line(peer, id));
    }
}

/// Logs a client that went away when `log_disconnections` is on.
pub fn log_closed(config: &Config, peer: PeerAddr, id: Option<u64>, reason: CloseReason) {
    if config.log_disconnections {
        info!("{}", closed_line(peer, id, reason));
    }
}

#[cfg(test)]
#[path = "connection_log_tests.rs"]
mod tests;
