//! Error types at the crate's boundaries: startup, configuration, control links and upstream failures.

use std::io;
use std::time::Duration;

use protocol::ProtocolError;

/// Why the proxy could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The configured listen address.
        addr: String,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

/// Why a control connection (Sentinel query, ROLE probe, COMMAND fetch, pinned reset) failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Connecting, reading or writing failed.
    #[error("{what}: {source}")]
    Io {
        /// The step that failed ("connect", "read" …).
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The peer did not answer in time.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// The step that timed out.
        what: &'static str,
        /// The limit that was exceeded.
        after: Duration,
    },
    /// The peer closed the connection.
    #[error("connection closed by peer")]
    Closed,
    /// The peer sent bytes that are not RESP.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// `AUTH` (or `HELLO … AUTH`) was refused.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The reply did not have the expected shape.
    #[error("unexpected reply to {command}: {detail}")]
    Unexpected {
        /// The command that got the reply.
        command: &'static str,
        /// What was wrong with it.
        detail: String,
    },
}

impl LinkError {
    /// Shorthand for an [`LinkError::Unexpected`] reply.
    pub fn unexpected(command: &'static str, detail: impl Into<String>) -> Self {
        LinkError::Unexpected {
            command,
            detail: detail.into(),
        }
    }
}

/// Why a request sent to a shared upstream connection got no reply.
///
/// The variant decides what the client may do: [`UpstreamFailure::is_retryable`] says whether
/// resending cannot run the command twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// The request was never written (its connection was retired by a topology change):
    /// any command may be resent.
    NotSent,
    /// The request was written but the connection was lost before its reply: the command may
    /// or may not have run.
    Lost,
    /// No reply within `upstream_timeout`; the connection was closed. May or may not have run.
    Timeout(Duration),
    /// The request waited in a disconnected connection until `failover_timeout` expired
    /// without being written.
    Unreachable(String),
}

impl UpstreamFailure {
    /// True when the request was certainly not executed, so resending is always safe.
    pub fn is_retryable(&self) -> bool {
        matches!(self, UpstreamFailure::NotSent)
    }
}
