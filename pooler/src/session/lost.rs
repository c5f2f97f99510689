//! A routed client whose server died mid-transaction (primary failover, crash) keeps its
//! connection: the request in flight gets an error in-band, and a transaction block that
//! was lost is answered as PostgreSQL answers an aborted transaction (`25P02` until the
//! client ends it; `COMMIT` completes as `ROLLBACK`), so a lost transaction can never
//! look committed.

use bytes::BytesMut;
use protocol::pg::encode::{self, ErrorResponse};
use protocol::pg::{FrameSplitter, FrontendTag, TransactionStatus, sqlstate};

use super::exchange::Exchange;
use super::prepared::{bind_statement_name, parse_name, parse_query, statement_body, until_nul};
use super::{ClientSession, SessionError};
use crate::config::PoolMode;

/// What the client is owed after its server was lost.
#[derive(Debug, Default)]
pub(super) struct LostTransaction {
    /// The client was inside a transaction block: it is aborted until the client ends it.
    is_aborted_block: bool,
    /// The lost request was extended-protocol: ignore messages up to its Sync.
    is_skipping_to_sync: bool,
    /// The current extended-protocol batch ends the aborted block (COMMIT, ROLLBACK…).
    is_ending: bool,
    /// The error already reported for the current batch.
    is_reported: bool,
}

const LOST_MESSAGE: &str =
    "server connection lost during the transaction; it may or may not have been committed";
const ABORTED_MESSAGE: &str =
    "current transaction is aborted, commands ignored until end of transaction block";

impl ClientSession {
    /// After the linked server was lost: keeps the client when it is routed, pooled
    /// per transaction and the failure can be reported in-band. Returns false when the
    /// session must end instead (as PgBouncer does).
    pub(super) fn survive_server_loss(&mut self, error: &SessionError) -> bool {
        let is_lost = matches!(
            error,
            SessionError::ServerClosed(_) | SessionError::ServerRetryable(_)
        );
        if !is_lost || self.router.is_none() || self.settings.pool_mode == PoolMode::Session {
            return false;
        }
        if let Some(router) = self.router.as_mut()
            && let Some(current) = router.current.take()
            && matches!(error, SessionError::ServerClosed(_))
        {
            router.group.report_failure(current.lease.host());
        }
        let was_in_block = self.status != TransactionStatus::Idle;
        let in_flight = self.exchange.ready_for_query_count();
        let has_partial_batch = self.exchange.has_partial_batch();
        // Named statements whose Parse never got an answer do not exist for the client.
        for (name, id) in self.exchange.unanswered_parses().client_names {
            self.statements.remove_if(&name, id);
        }
        self.server = None;
        self.cancel.unlink();
        self.retry = None;
        self.exchange = Exchange::default();
        self.server_out.clear();
        let after = if was_in_block {
            TransactionStatus::Failed
        } else {
            TransactionStatus::Idle
        };
        let mut is_reported = false;
        for _ in 0..in_flight {
            self.send_error(sqlstate::CONNECTION_FAILURE, LOST_MESSAGE);
            encode::ready_for_query(&mut self.client_out, after);
            is_reported = true;
        }
        if has_partial_batch {
            // The client is mid-batch: the rest of it is ignored up to its Sync.
            self.send_error(sqlstate::CONNECTION_FAILURE, LOST_MESSAGE);
            is_reported = true;
        }
        self.status = after;
        if was_in_block || has_partial_batch {
            self.lost = Some(LostTransaction {
                is_aborted_block: was_in_block,
                is_skipping_to_sync: has_partial_batch,
                is_ending: false,
                is_reported,
            });
        }
        tracing::warn!(
            in_block = was_in_block,
            "server lost mid-transaction; client kept"
        );
        true
    }

    /// Answers client frames locally while a lost transaction is being ended; leaves
    /// the first frame of the next transaction in `client_in`.
    pub(super) fn answer_lost_transaction(&mut self) -> Result<(), SessionError> {
        let splitter = FrameSplitter::new(self.settings.max_packet_size);
        while let Some(lost) = self.lost.as_mut() {
            let Some(tag) = self.client_in.first().copied() else {
                return Ok(());
            };
            if !lost.is_aborted_block && !lost.is_skipping_to_sync {
                self.lost = None;
                return Ok(());
            }
            let Some(frame) = splitter
                .split(&mut self.client_in)
                .map_err(SessionError::Protocol)?
            else {
                return Ok(());
            };
            let mut out = BytesMut::new();
            let lost = self.lost.as_mut().expect("checked above");
            match FrontendTag::from_byte(tag) {
                Some(FrontendTag::Terminate) => return Err(SessionError::ClientClosed),
                Some(FrontendTag::Sync) => {
                    let status = if lost.is_ending || !lost.is_aborted_block {
                        self.status = TransactionStatus::Idle;
                        self.lost = None;
                        TransactionStatus::Idle
                    } else {
                        lost.is_skipping_to_sync = false;
                        lost.is_reported = false;
                        TransactionStatus::Failed
                    };
                    encode::ready_for_query(&mut out, status);
                }
                _ if lost.is_skipping_to_sync => {}
                Some(FrontendTag::Query) => {
                    let sql = until_nul(frame.as_bytes().get(5..).unwrap_or_default());
                    if is_transaction_end(sql) {
                        encode::command_complete(&mut out, b"ROLLBACK")
                            .map_err(SessionError::Protocol)?;
                        encode::ready_for_query(&mut out, TransactionStatus::Idle);
                        self.status = TransactionStatus::Idle;
                        self.lost = None;
                    } else {
                        aborted_error(&mut out, lost)?;
                        encode::ready_for_query(&mut out, TransactionStatus::Failed);
                    }
                }
                Some(FrontendTag::Parse) => {
                    lost.is_ending |= is_transaction_end(parse_query(frame.as_bytes()));
                    self.remember_statement(&frame)?;
                    encode::parse_complete(&mut out);
                }
                Some(FrontendTag::Bind) => {
                    let name = bind_statement_name(frame.as_bytes());
                    let query = self.statements.get(name).map(|s| s.parse.clone());
                    let lost = self.lost.as_mut().expect("checked above");
                    if let Some(parse) = query {
                        lost.is_ending |= is_transaction_end(parse_query(&parse));
                    }
                    if lost.is_ending {
                        encode::bind_complete(&mut out);
                    } else {
                        aborted_error(&mut out, lost)?;
                        lost.is_skipping_to_sync = true;
                    }
                }
                Some(FrontendTag::Describe) if lost.is_ending => encode::no_data(&mut out),
                Some(FrontendTag::Execute) if lost.is_ending => {
                    encode::command_complete(&mut out, b"ROLLBACK")
                        .map_err(SessionError::Protocol)?;
                }
                Some(FrontendTag::Close) => encode::close_complete(&mut out),
                // The rest of a COPY the lost server was receiving: ignored, as
                // PostgreSQL ignores copy messages outside a COPY.
                Some(
                    FrontendTag::Flush
                    | FrontendTag::CopyData
                    | FrontendTag::CopyDone
                    | FrontendTag::CopyFail,
                ) => {}
                Some(FrontendTag::FunctionCall) | None => {
                    aborted_error(&mut out, lost)?;
                    encode::ready_for_query(&mut out, TransactionStatus::Failed);
                }
                _ => {
                    aborted_error(&mut out, lost)?;
                    lost.is_skipping_to_sync = true;
                }
            }
            self.client_out.extend_from_slice(&out);
        }
        Ok(())
    }

    /// A named Parse answered locally still creates the client's statement, so later
    /// Binds find it (it is prepared lazily on the next server).
    fn remember_statement(&mut self, frame: &protocol::pg::Frame) -> Result<(), SessionError> {
        let bytes = frame.as_bytes();
        let name = parse_name(bytes);
        if name.is_empty() || self.settings.max_prepared_statements == 0 {
            return Ok(());
        }
        let body = statement_body(bytes).ok_or(SessionError::protocol("Parse"))?;
        let statement = self
            .registry
            .intern(frame, body)
            .map_err(SessionError::Protocol)?;
        self.statements.insert(name, statement);
        Ok(())
    }

    fn send_error(&mut self, code: &str, message: &str) {
        let _ = encode::error_response(&mut self.client_out, &ErrorResponse::error(code, message));
    }
}

/// The lost server's error the first time, then PostgreSQL's aborted-transaction error.
fn aborted_error(out: &mut BytesMut, lost: &mut LostTransaction) -> Result<(), SessionError> {
    let error = if lost.is_reported {
        ErrorResponse::error(sqlstate::IN_FAILED_SQL_TRANSACTION, ABORTED_MESSAGE)
    } else {
        ErrorResponse::error(sqlstate::CONNECTION_FAILURE, LOST_MESSAGE)
    };
    lost.is_reported = true;
    encode::error_response(out, &error).map_err(SessionError::Protocol)
}

/// `COMMIT`, `END`, `ROLLBACK`, `ABORT` (not `ROLLBACK TO SAVEPOINT`), any case, with
/// optional `WORK`/`TRANSACTION` and `;`.
pub fn is_transaction_end(sql: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(sql) else {
        return false;
    };
    let mut words = text
        .split(|c: char| c.is_whitespace() || c == ';')
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase);
    let Some(first) = words.next() else {
        return false;
    };
    let rest: Vec<String> = words.collect();
    let is_plain =
        rest.is_empty() || (rest.len() == 1 && (rest[0] == "work" || rest[0] == "transaction"));
    matches!(first.as_str(), "commit" | "end" | "rollback" | "abort") && is_plain
}

/// PostgreSQL's `IsTransactionExitStmt`: the statements an aborted transaction block
/// still accepts (`COMMIT`/`END`, `ROLLBACK`/`ABORT`, `ROLLBACK TO SAVEPOINT`,
/// `PREPARE TRANSACTION`).
pub fn is_transaction_exit(sql: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(sql) else {
        return false;
    };
    let mut words = text
        .split(|c: char| c.is_whitespace() || c == ';')
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase);
    match words.next().as_deref() {
        Some("commit" | "end" | "rollback" | "abort") => true,
        Some("prepare") => words.next().as_deref() == Some("transaction"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{is_transaction_end, is_transaction_exit};

    #[test]
    fn statements_an_aborted_block_accepts_are_recognised() {
        for sql in [
            "COMMIT",
            "end",
            "ROLLBACK TO SAVEPOINT a",
            "abort",
            "PREPARE TRANSACTION 'x'",
        ] {
            assert!(is_transaction_exit(sql.as_bytes()), "{sql}");
        }
        for sql in ["SELECT 1", "PREPARE p AS SELECT 1", "SAVEPOINT a", ""] {
            assert!(!is_transaction_exit(sql.as_bytes()), "{sql}");
        }
    }

    #[test]
    fn transaction_ends_are_recognised() {
        for sql in [
            "COMMIT",
            "end;",
            "ROLLBACK WORK",
            "abort transaction",
            " commit ; ",
        ] {
            assert!(is_transaction_end(sql.as_bytes()), "{sql}");
        }
        for sql in [
            "ROLLBACK TO SAVEPOINT a",
            "SELECT 1",
            "COMMIT PREPARED 'x'",
            "",
        ] {
            assert!(!is_transaction_end(sql.as_bytes()), "{sql}");
        }
    }
}
