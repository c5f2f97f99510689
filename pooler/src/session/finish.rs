//! How a session ends: tell the client why (PgBouncer's FATAL messages, logged as
//! `pooler error: …` under `log_pooler_errors`), and give the server back clean
//! (ROLLBACK, reset query) or close it.

use std::time::Duration;

use bytes::BytesMut;
use protocol::pg::encode::{self, ErrorResponse};
use protocol::pg::{Severity, TransactionStatus, sqlstate};

use super::{ClientSession, SessionError};
use crate::config::PoolMode;
use crate::pool::PoolError;

/// How long cleaning a server after its client left may take before it is closed.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(5);

impl ClientSession {
    pub(super) async fn finish(&mut self, result: Result<(), SessionError>) {
        let error = result.err();
        if let Some(SessionError::ServerClosed(_)) = &error {
            crate::stats::PoolStats::add(&self.pool.stats().server_lost_count, 1);
        }
        if let Some(error) = &error
            && let Some((code, message)) = client_message(error)
        {
            if self.settings.is_logging_pooler_errors {
                let peer = self.client.peer_addr();
                log_pooler_error(&peer, is_server_side(error), &message);
            }
            let mut out = std::mem::take(&mut self.client_out);
            let frame = ErrorResponse {
                severity: Severity::Fatal,
                sqlstate: &code,
                message: &message,
                detail: None,
                hint: None,
            };
            if encode::error_response(&mut out, &frame).is_ok() {
                let write = self.client.write_all_buf(&mut out);
                let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
            }
        }
        if self.settings.is_logging_disconnections {
            let reason = match &error {
                None | Some(SessionError::ClientClosed) => "client close request".to_owned(),
                Some(e) => e.to_string(),
            };
            tracing::info!(pool = %self.pool.name(), "closing because: {reason}");
        }
        self.cancel.unlink();
        self.return_server().await;
    }

    /// The client is gone: reuse its server if it can be made clean, else close it.
    async fn return_server(&mut self) {
        let Some(mut server) = self.server.take() else {
            return;
        };
        // Mid-batch, the server holds an implicit transaction that a ROLLBACK sent now
        // would commit instead: only a settled server can be cleaned.
        let is_quiet = self.exchange.is_settled() && self.server_out.is_empty();
        if !is_quiet || server.is_close_needed() {
            return; // dropped: closed, the server rolls back whatever was open
        }
        if !server
            .cancels
            .wait_finished(crate::cancel::CANCEL_TIMEOUT)
            .await
        {
            return; // a cancel still on its way could hit the cleanup or the next client
        }
        let max = self.settings.max_packet_size;
        let is_session = self.settings.pool_mode == PoolMode::Session;
        let reset = self
            .settings
            .server_reset_query
            .clone()
            .filter(|_| is_session || self.settings.is_reset_query_always);
        let cleanup = async {
            if self.status != TransactionStatus::Idle {
                let result = server.simple_query("ROLLBACK", max).await.ok()?;
                if result.status != Some(TransactionStatus::Idle) {
                    return None;
                }
            }
            if let Some(sql) = reset.as_deref() {
                let result = server.simple_query(sql, max).await.ok()?;
                if result.status != Some(TransactionStatus::Idle) {
                    return None;
                }
                server.statements.clear();
            }
            Some(())
        };
        if let Ok(Some(())) = tokio::time::timeout(CLEANUP_TIMEOUT, cleanup).await {
            server.checkin();
        }
    }
}

/// The SQLSTATE and message a client gets for `error`, or `None` to close silently.
fn client_message(error: &SessionError) -> Option<(String, String)> {
    let (code, message) = match error {
        SessionError::ClientClosed | SessionError::ClientIo(_) => return None,
        SessionError::ServerClosed(_) | SessionError::ServerRetryable(_) => {
            (sqlstate::CONNECTION_FAILURE, error.to_string())
        }
        SessionError::Pool(PoolError::ServerLogin(failure)) => {
            let code = failure.sqlstate.clone();
            let code = code.unwrap_or_else(|| sqlstate::CONNECTION_FAILURE.to_owned());
            return Some((code, failure.message.clone()));
        }
        SessionError::Pool(PoolError::Closed(reason)) => {
            (sqlstate::ADMIN_SHUTDOWN, (*reason).to_owned())
        }
        SessionError::Shutdown => (sqlstate::ADMIN_SHUTDOWN, error.to_string()),
        SessionError::Stalled(_) => (sqlstate::INTERNAL_ERROR, error.to_string()),
        SessionError::Pool(_)
        | SessionError::Protocol(_)
        | SessionError::ServerProtocol(_)
        | SessionError::ServerParameter(_)
        | SessionError::Fatal(_) => (sqlstate::PROTOCOL_VIOLATION, error.to_string()),
    };
    Some((code.to_owned(), message))
}

/// True when `error` comes from a server (lost, refused the login, broke the protocol)
/// rather than from the client or the pooler's own limits.
fn is_server_side(error: &SessionError) -> bool {
    matches!(
        error,
        SessionError::ServerClosed(_)
            | SessionError::ServerRetryable(_)
            | SessionError::ServerProtocol(_)
            | SessionError::ServerParameter(_)
            | SessionError::Pool(PoolError::ServerLogin(_) | PoolError::LoginRetry(_))
    )
}

/// Logs an error the pooler sends to a client (`log_pooler_errors`) as PgBouncer does:
/// `pooler error: <message>`, at warn level when a server failed (`is_server_side`), at
/// info level otherwise. `message` is the text the client gets, which never holds a
/// password.
pub fn log_pooler_error(peer: &dyn std::fmt::Display, is_server_side: bool, message: &str) {
    if is_server_side {
        tracing::warn!(%peer, "pooler error: {message}");
    } else {
        tracing::info!(%peer, "pooler error: {message}");
    }
}

/// Writes a FATAL ErrorResponse into `out` (login-phase errors before a session exists).
pub fn fatal(out: &mut BytesMut, code: &str, message: &str) {
    let frame = ErrorResponse {
        severity: Severity::Fatal,
        sqlstate: code,
        message,
        detail: None,
        hint: None,
    };
    let _ = encode::error_response(out, &frame);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::pool::ConnectFailure;

    #[test]
    fn only_server_failures_are_logged_as_server_side() {
        let refused = Arc::new(ConnectFailure {
            sqlstate: Some("28P01".to_owned()),
            message: "password authentication failed".to_owned(),
        });
        let server_side = [
            SessionError::ServerClosed(std::io::Error::other("reset")),
            SessionError::ServerParameter("bad".to_owned()),
            SessionError::Pool(PoolError::ServerLogin(Arc::clone(&refused))),
            SessionError::Pool(PoolError::LoginRetry(refused)),
        ];
        assert!(server_side.iter().all(is_server_side));
        let pooler_side = [
            SessionError::ClientClosed,
            SessionError::Pool(PoolError::QueryWaitTimeout),
            SessionError::Pool(PoolError::Closed("database removed")),
            SessionError::Fatal("client_idle_timeout"),
            SessionError::Shutdown,
        ];
        assert!(!pooler_side.iter().any(is_server_side));
    }
}
