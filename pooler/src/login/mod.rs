//! A new client connection up to its first query: the startup packet (SSL/GSS refusal,
//! cancel requests, protocol negotiation), parameter checks, authentication and the
//! welcome (AuthenticationOk, ParameterStatus, BackendKeyData, ReadyForQuery).

pub mod auth;
pub mod auth_query;
mod startup;

use protocol::ProtocolError;
use protocol::pg::sqlstate;

pub use startup::{FirstPacket, read_first_packet, startup_parameters};

/// Why a login failed; each maps to the FATAL error PgBouncer sends.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The client went away.
    #[error("client closed the connection during login")]
    ClientGone,
    /// Socket error.
    #[error("client connection failed: {0}")]
    Io(std::io::Error),
    /// A malformed or oversized startup-phase packet.
    #[error("protocol error: {0}")]
    Protocol(ProtocolError),
    /// Authentication failed.
    #[error("{0}")]
    Auth(&'static str),
    /// Anything else PgBouncer rejects at login, with its SQLSTATE.
    #[error("{message}")]
    Rejected {
        /// SQLSTATE.
        sqlstate: &'static str,
        /// PgBouncer's wording.
        message: String,
    },
}

impl LoginError {
    pub(crate) fn auth(message: &'static str) -> Self {
        Self::Auth(message)
    }

    pub(crate) fn rejected(sqlstate: &'static str, message: impl Into<String>) -> Self {
        Self::Rejected {
            sqlstate,
            message: message.into(),
        }
    }

    /// The SQLSTATE sent to the client (`None`: just close).
    pub fn sqlstate(&self) -> Option<&'static str> {
        match self {
            Self::ClientGone | Self::Io(_) => None,
            Self::Protocol(_) => Some(sqlstate::PROTOCOL_VIOLATION),
            Self::Auth(_) => Some(sqlstate::PROTOCOL_VIOLATION),
            Self::Rejected { sqlstate, .. } => Some(sqlstate),
        }
    }
}
