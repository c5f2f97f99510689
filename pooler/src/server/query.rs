//! Queries the pooler itself runs on a server (connect_query, auth_query, reset and
//! parameter SETs, ROLLBACK): send a simple Query, collect rows until ReadyForQuery.

use bytes::BytesMut;
use protocol::ProtocolError;
use protocol::pg::backend::ErrorFields;
use protocol::pg::{BackendMessage, Frame, FrameSplitter, TransactionStatus, encode};

use super::ServerConnection;
use super::connector::ServerTarget;
use crate::pool::ConnectFailure;

/// Why a query the pooler ran on a server failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The socket failed or closed.
    #[error("server connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The server sent bytes that break the protocol.
    #[error("server sent a malformed message: {0}")]
    Protocol(#[from] ProtocolError),
    /// The server answered with an ErrorResponse.
    #[error("{message}")]
    Server {
        /// SQLSTATE.
        sqlstate: String,
        /// The server's message.
        message: String,
    },
    /// Authentication towards the server cannot proceed.
    #[error("{0}")]
    Auth(String),
    /// A message that does not belong at this point.
    #[error("unexpected server message: {0}")]
    Unexpected(&'static str),
}

impl QueryError {
    pub(crate) fn from_fields(fields: &ErrorFields<'_>) -> Self {
        let text = |v: Option<&[u8]>| String::from_utf8_lossy(v.unwrap_or_default()).into_owned();
        Self::Server {
            sqlstate: text(fields.code()),
            message: text(fields.message()),
        }
    }

    pub(crate) fn into_connect_failure(self, target: &ServerTarget) -> ConnectFailure {
        match self {
            Self::Server { sqlstate, message } => ConnectFailure {
                sqlstate: Some(sqlstate),
                message,
            },
            // The pooler cannot answer the server's authentication request with the
            // secret it holds: retrying cannot help, so waiting clients are told at once,
            // in PgBouncer's words (the log line says which method and secret).
            Self::Auth(reason) => {
                tracing::error!(
                    "server {} ({}): cannot log in as {}: {reason}",
                    target.endpoint,
                    target.database,
                    target.user
                );
                ConnectFailure {
                    sqlstate: Some(protocol::pg::sqlstate::PROTOCOL_VIOLATION.to_owned()),
                    message: "server login failed: wrong password type".to_owned(),
                }
            }
            other => ConnectFailure {
                sqlstate: None,
                message: format!("server {} ({}): {other}", target.endpoint, target.database),
            },
        }
    }
}

/// Rows and the final status of a simple query.
#[derive(Debug, Default)]
pub struct QueryResult {
    /// Data rows, text format, NULL as `None`.
    pub rows: Vec<Vec<Option<String>>>,
    /// CommandComplete tags, in order.
    pub tags: Vec<String>,
    /// Transaction status from the final ReadyForQuery.
    pub status: Option<TransactionStatus>,
}

impl ServerConnection {
    /// Reads one whole frame, waiting for more bytes as needed.
    pub async fn read_frame(&mut self, max_packet_size: usize) -> Result<Frame, QueryError> {
        let splitter = FrameSplitter::new(max_packet_size);
        loop {
            if let Some(frame) = splitter.split(&mut self.read_buf)? {
                return Ok(frame);
            }
            if self.stream.read_into(&mut self.read_buf).await? == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
        }
    }

    /// Runs `sql` with the simple query protocol and waits for ReadyForQuery. The first
    /// ErrorResponse is returned as an error after ReadyForQuery arrived, so the
    /// connection stays usable.
    pub async fn simple_query(
        &mut self,
        sql: &str,
        max_packet_size: usize,
    ) -> Result<QueryResult, QueryError> {
        let mut out = BytesMut::with_capacity(sql.len() + 6);
        encode::query(&mut out, sql.as_bytes())?;
        self.stream.write_all_buf(&mut out).await?;
        let mut result = QueryResult::default();
        let mut error = None;
        loop {
            let frame = self.read_frame(max_packet_size).await?;
            match BackendMessage::decode(&frame)? {
                BackendMessage::DataRow(row) => {
                    let values = row
                        .values()
                        .map(|v| v.map(|b| String::from_utf8_lossy(b).into_owned()))
                        .collect::<Vec<_>>();
                    result.rows.push(values);
                }
                BackendMessage::CommandComplete { tag } => {
                    result.tags.push(String::from_utf8_lossy(tag).into_owned());
                }
                BackendMessage::ErrorResponse(fields) => {
                    error.get_or_insert_with(|| QueryError::from_fields(&fields));
                }
                BackendMessage::ParameterStatus { name, value } => {
                    self.params.set(
                        &String::from_utf8_lossy(name),
                        &String::from_utf8_lossy(value),
                    );
                }
                BackendMessage::ReadyForQuery(status) => {
                    result.status = Some(status);
                    return match error {
                        Some(e) => Err(e),
                        None => Ok(result),
                    };
                }
                _ => {}
            }
        }
    }
}

/// Quotes `value` as a SQL string literal that is safe whatever
/// `standard_conforming_strings` is (`E'...'` with `\` and `'` doubled).
pub fn quote_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    out.push_str("E'");
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}
