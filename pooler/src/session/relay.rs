//! Moving messages across a client/server link: client frames to the server (renaming
//! prepared statements, answering Close locally) and server frames to the client
//! (swallowing replies to injected messages, tracking parameters and ReadyForQuery).

use bytes::BytesMut;
use protocol::pg::backend::ErrorFields;
use protocol::pg::{
    BackendMessage, BackendTag, Frame, FrontendMessage, FrontendTag, Target, TransactionStatus,
    encode, ready_for_query_status, rename_statement_into,
};

use super::SessionError;
use std::sync::Arc;

use super::exchange::{
    Exchange, Expect, ExpectKind, FailedParses, HeadKind, NamedParse, Pending, SkippedStatementOp,
    Synthetic,
};
use super::params::ClientParams;
use super::prepared::{ClientStatements, Statement, StatementRegistry, statement_body};
use crate::server::ServerConnection;
use crate::stats::PoolStats;

/// Everything a relay step touches, borrowed from the session for one batch of frames.
pub struct Link<'a> {
    /// The linked server.
    pub server: &'a mut ServerConnection,
    /// Bytes queued for the server.
    pub server_out: &'a mut BytesMut,
    /// Bytes queued for the client.
    pub client_out: &'a mut BytesMut,
    /// Outstanding replies.
    pub exchange: &'a mut Exchange,
    /// The client's prepared statements.
    pub statements: &'a mut ClientStatements,
    /// The pooler-wide statement registry.
    pub registry: &'a StatementRegistry,
    /// The client's tracked parameters.
    pub params: &'a mut ClientParams,
    /// Counters of the pool.
    pub stats: &'a PoolStats,
    /// Rename named statements (transaction/statement pooling with
    /// `max_prepared_statements > 0`); otherwise pass through.
    pub is_renaming: bool,
    /// Statement pooling: a ReadyForQuery inside a transaction block is refused before
    /// it reaches the client.
    pub is_statement_mode: bool,
    /// The transaction status of the last ReadyForQuery.
    pub transaction_status: TransactionStatus,
    /// `client_out`'s length while a replica transaction may still move to another host
    /// (nothing reached the client yet); `None` otherwise.
    pub retry_base: Option<usize>,
    /// The client is routed across a host group: a server's FATAL is not relayed (the
    /// session reports the lost server itself and keeps the client).
    pub is_routed: bool,
}

/// What the session should do after a client frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFlow {
    /// Keep going.
    Continue,
    /// The client sent Terminate.
    Terminate,
}

impl Link<'_> {
    /// Relays one client frame.
    pub fn client_frame(&mut self, frame: &Frame) -> Result<ClientFlow, SessionError> {
        let tag = frame
            .frontend_tag()
            .ok_or(SessionError::protocol("unknown message type"))?;
        match tag {
            FrontendTag::Terminate => return Ok(ClientFlow::Terminate),
            FrontendTag::Password => {
                return Err(SessionError::protocol("password message after login"));
            }
            // The server discards everything but Sync after an extended-protocol error
            // (and copy messages outside a COPY): so does the pooler, which keeps
            // the client's statement names as PostgreSQL keeps them.
            FrontendTag::Sync => {}
            _ if self.exchange.is_discarding() => return Ok(ClientFlow::Continue),
            _ => {}
        }
        let expect = match tag {
            FrontendTag::Query => {
                self.exchange.on_query_forwarded();
                Some(Expect::Query)
            }
            FrontendTag::FunctionCall => {
                self.exchange.on_query_forwarded();
                Some(Expect::FunctionCall)
            }
            FrontendTag::Sync => self.exchange.on_sync_forwarded(),
            FrontendTag::Execute => {
                self.exchange.on_extended_forwarded();
                Some(Expect::Execute)
            }
            FrontendTag::CopyDone | FrontendTag::CopyFail => {
                self.exchange.on_copy_end_forwarded(self.client_out);
                None
            }
            FrontendTag::Flush | FrontendTag::CopyData => None,
            FrontendTag::Parse | FrontendTag::Bind | FrontendTag::Describe | FrontendTag::Close => {
                return self.statement_frame(frame).map(|()| ClientFlow::Continue);
            }
            FrontendTag::Terminate | FrontendTag::Password => unreachable!("handled above"),
        };
        self.server_out.extend_from_slice(frame.as_bytes());
        if let Some(expect) = expect {
            self.exchange
                .push(Pending::Forward(expect), self.client_out);
        }
        Ok(ClientFlow::Continue)
    }

    fn statement_frame(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let message = FrontendMessage::decode(frame).map_err(SessionError::Protocol)?;
        let (expect, name) = match message {
            FrontendMessage::Parse(parse) => {
                PoolStats::add(&self.stats.client_parse_count, 1);
                if self.is_renaming && !parse.name.is_empty() {
                    return self.client_parse(frame, parse.name);
                }
                (Expect::Parse { named: None }, None)
            }
            FrontendMessage::Bind(bind) => {
                PoolStats::add(&self.stats.bind_count, 1);
                (Expect::Bind { statement: None }, Some(bind.statement))
            }
            FrontendMessage::Describe(d) => (
                Expect::Describe,
                (d.target == Target::Statement).then_some(d.name),
            ),
            FrontendMessage::Close(c) => {
                if self.is_renaming && c.target == Target::Statement && !c.name.is_empty() {
                    self.statements.remove(c.name);
                    self.exchange.push(
                        Pending::Synthetic(Synthetic::CloseComplete),
                        self.client_out,
                    );
                    return Ok(());
                }
                (Expect::Close, None)
            }
            _ => return Err(SessionError::protocol("unexpected statement message")),
        };
        let mut expect = expect;
        match name {
            Some(name) if self.is_renaming && !name.is_empty() => {
                let Some(statement) = self.statements.get(name).cloned() else {
                    return self.unknown_statement(frame, name);
                };
                if !self.server.statements.touch(statement.id) {
                    self.prepare_on_server(&statement, None);
                }
                let server_name = Statement::server_name(statement.id);
                rename_statement_into(frame, server_name.as_bytes(), self.server_out)
                    .map_err(SessionError::Protocol)?;
                if let Expect::Bind { statement: bound } = &mut expect {
                    *bound = Some(statement);
                }
            }
            _ => self.server_out.extend_from_slice(frame.as_bytes()),
        }
        self.exchange.on_extended_forwarded();
        self.exchange
            .push(Pending::Forward(expect), self.client_out);
        Ok(())
    }

    /// A Bind or Describe of a statement name the client never prepared (or closed):
    /// sent on under a name no server has, so PostgreSQL answers it with its own error
    /// (`26000 prepared statement "…" does not exist`, naming the client's statement)
    /// in the right place of the pipeline, and the server skips to Sync as it must.
    fn unknown_statement(&mut self, frame: &Frame, name: &[u8]) -> Result<(), SessionError> {
        let expect = match frame.frontend_tag() {
            Some(FrontendTag::Bind) => Expect::Bind { statement: None },
            _ => Expect::Describe,
        };
        // The client's own name, unchanged: the pooler never creates server statements
        // under client names, so the server does not have it either.
        rename_statement_into(frame, name, self.server_out).map_err(SessionError::Protocol)?;
        self.exchange.on_extended_forwarded();
        self.exchange
            .push(Pending::Forward(expect), self.client_out);
        Ok(())
    }

    fn client_parse(&mut self, frame: &Frame, name: &[u8]) -> Result<(), SessionError> {
        let body = statement_body(frame.as_bytes()).ok_or(SessionError::protocol("Parse"))?;
        let statement = self
            .registry
            .intern(frame, body)
            .map_err(SessionError::Protocol)?;
        if !self.statements.insert(name, statement.clone()) {
            return Err(SessionError::Fatal(
                "prepared statement name is already in use",
            ));
        }
        if !self.server.statements.touch(statement.id) {
            self.prepare_on_server(&statement, Some(name));
        } else if self.is_aborted_for(&statement) {
            // PostgreSQL refuses a Parse in an aborted transaction block before it
            // looks at the name: sent as is, it gets exactly that error.
            self.server_out.extend_from_slice(&statement.parse);
            self.exchange.on_extended_forwarded();
            let named = Box::new(NamedParse {
                statement,
                client_name: name.into(),
                is_on_server: true,
            });
            self.exchange.push(
                Pending::Forward(Expect::Parse { named: Some(named) }),
                self.client_out,
            );
        } else {
            self.exchange.push(
                Pending::Synthetic(Synthetic::ParseComplete),
                self.client_out,
            );
        }
        Ok(())
    }

    /// The transaction block is aborted (the last ReadyForQuery said so, and nothing
    /// sent since could have ended it) and `statement` does not end it: PostgreSQL
    /// would refuse its Parse.
    fn is_aborted_for(&self, statement: &Statement) -> bool {
        self.transaction_status == TransactionStatus::Failed
            && self.exchange.is_settled()
            && !super::lost::is_transaction_exit(super::prepared::parse_query(&statement.parse))
    }

    /// Sends `statement`'s Parse, evicting the least recently used one if the server's
    /// cache is full. `client_name`: the client's Parse, whose ParseComplete it gets;
    /// `None` when the pooler injects the Parse (lazy re-Parse before Bind/Describe on
    /// another server), whose ParseComplete is swallowed.
    fn prepare_on_server(&mut self, statement: &Arc<Statement>, client_name: Option<&[u8]>) {
        if let Some(evicted) = self.server.statements.insert(statement.id) {
            let name = Statement::server_name(evicted);
            if encode::close_statement(self.server_out, name.as_bytes()).is_ok() {
                self.exchange.push(
                    Pending::InjectedClose { statement: evicted },
                    self.client_out,
                );
            }
        }
        self.server_out.extend_from_slice(&statement.parse);
        self.exchange.on_extended_forwarded();
        PoolStats::add(&self.stats.server_parse_count, 1);
        let pending = match client_name {
            None => Pending::InjectedParse {
                statement: Arc::clone(statement),
            },
            Some(name) => Pending::Forward(Expect::Parse {
                named: Some(Box::new(NamedParse {
                    statement: Arc::clone(statement),
                    client_name: name.into(),
                    is_on_server: false,
                })),
            }),
        };
        self.exchange.push(pending, self.client_out);
    }

    /// Handles one server frame; returns the transaction status when it was a
    /// ReadyForQuery.
    pub fn server_frame(
        &mut self,
        frame: &[u8],
        tag: Option<BackendTag>,
    ) -> Result<Option<TransactionStatus>, SessionError> {
        let head = self.exchange.head_kind();
        let is_swallowed = head == HeadKind::InjectedQuery;
        let body = frame.get(5..).unwrap_or_default();
        if head == HeadKind::InjectedSync && tag == Some(BackendTag::ReadyForQuery) {
            let status = ready_for_query_status(body).map_err(SessionError::ServerProtocol)?;
            self.exchange.complete_head(self.client_out);
            return Ok(Some(status));
        }
        match tag {
            Some(BackendTag::ReadyForQuery) => {
                let status = ready_for_query_status(body).map_err(SessionError::ServerProtocol)?;
                if self.is_statement_mode && !is_swallowed && status != TransactionStatus::Idle {
                    return Err(SessionError::Fatal(
                        "transaction blocks not allowed in statement pooling mode",
                    ));
                }
                if !is_swallowed {
                    self.client_out.extend_from_slice(frame);
                }
                self.exchange.complete_head(self.client_out);
                if is_swallowed && let Some(error) = self.exchange.injected_error.take() {
                    return Err(SessionError::ServerParameter(error));
                }
                return Ok(Some(status));
            }
            Some(BackendTag::ErrorResponse) => {
                let is_fatal_here = self.is_routed && is_fatal(body);
                if is_fatal_here
                    || (self.retry_base == Some(self.client_out.len()) && is_retryable(body))
                {
                    return Err(SessionError::ServerRetryable(error_message(body)));
                }
                if is_swallowed {
                    let fields = ErrorFields::new(body).map_err(SessionError::ServerProtocol)?;
                    let message = String::from_utf8_lossy(fields.message().unwrap_or_default());
                    self.exchange
                        .injected_error
                        .get_or_insert_with(|| message.into_owned());
                    return Ok(None);
                }
                self.client_out.extend_from_slice(frame);
                if let Some(Pending::Forward(Expect::Bind {
                    statement: Some(statement),
                })) = self.exchange.head()
                    && is_stale_plan(body)
                {
                    // Its result type changed (ALTER TABLE): drivers prepare it again
                    // under a new name, which must reach the server as a new statement.
                    self.registry.retire(statement);
                }
                let failed = self.exchange.on_error();
                self.forget_failed_parses(&failed);
            }
            Some(BackendTag::ParseComplete) => {
                match self.exchange.head() {
                    Some(Pending::InjectedParse { statement }) => statement.mark_valid(),
                    Some(Pending::Forward(Expect::Parse { named })) => {
                        if let Some(named) = named {
                            named.statement.mark_valid();
                        }
                        self.client_out.extend_from_slice(frame);
                    }
                    _ => self.client_out.extend_from_slice(frame),
                }
                self.exchange.complete_head(self.client_out);
            }
            Some(BackendTag::CloseComplete) => {
                if head != HeadKind::InjectedClose {
                    self.client_out.extend_from_slice(frame);
                }
                self.exchange.complete_head(self.client_out);
            }
            Some(BackendTag::BindComplete | BackendTag::NoData) => {
                self.client_out.extend_from_slice(frame);
                self.exchange.complete_head(self.client_out);
            }
            Some(BackendTag::RowDescription) => {
                self.client_out.extend_from_slice(frame);
                if head == HeadKind::Forward(ExpectKind::Describe) {
                    self.exchange.complete_head(self.client_out);
                }
            }
            Some(
                BackendTag::CommandComplete
                | BackendTag::EmptyQueryResponse
                | BackendTag::PortalSuspended,
            ) => {
                if tag == Some(BackendTag::CommandComplete) {
                    self.on_command_complete(body);
                }
                if !is_swallowed {
                    self.client_out.extend_from_slice(frame);
                }
                if head == HeadKind::Forward(ExpectKind::Execute) {
                    PoolStats::add(&self.stats.query_count, 1);
                    self.exchange.complete_head(self.client_out);
                }
            }
            Some(BackendTag::ParameterStatus) => {
                let message = BackendMessage::decode_body(BackendTag::ParameterStatus, body)
                    .map_err(SessionError::ServerProtocol)?;
                if let BackendMessage::ParameterStatus { name, value } = message {
                    let (name, value) = (
                        String::from_utf8_lossy(name),
                        String::from_utf8_lossy(value),
                    );
                    self.server.params.set(&name, &value);
                    if !is_swallowed {
                        self.params.set_reported(&name, &value);
                    }
                }
                if !is_swallowed {
                    self.client_out.extend_from_slice(frame);
                }
            }
            Some(BackendTag::CopyInResponse) => {
                self.exchange.on_copy_in_started();
                self.client_out.extend_from_slice(frame);
            }
            _ => {
                if !is_swallowed {
                    self.client_out.extend_from_slice(frame);
                }
            }
        }
        Ok(None)
    }

    /// Parses that failed or were discarded after an error: the server does not hold
    /// their statements and the client's names were never created.
    pub fn forget_failed_parses(&mut self, failed: &FailedParses) {
        // Undone in reverse order of sending, the skipped operations give back what the
        // server holds: prepared-then-evicted is not there, evicted-then-prepared is.
        for op in failed.skipped.iter().rev() {
            match *op {
                SkippedStatementOp::Parse(id) => self.server.statements.remove(id),
                SkippedStatementOp::Close(id) => self.server.statements.restore(id),
            }
        }
        for (name, id) in &failed.client_names {
            self.statements.remove_if(name, *id);
        }
    }

    /// `DEALLOCATE ALL` / `DISCARD ALL` dropped every prepared statement on the server.
    fn on_command_complete(&mut self, tag: &[u8]) {
        let tag = tag.strip_suffix(b"\0").unwrap_or(tag);
        if tag == b"DISCARD ALL" || tag == b"DEALLOCATE ALL" {
            self.server.statements.clear();
            self.statements.clear();
        }
    }
}

/// An error a replica gives that another host would not: FATAL (shutdown, crash,
/// terminated backend), a recovery conflict (`40001` on a standby) or an operator
/// intervention (`57P0x`).
fn is_retryable(body: &[u8]) -> bool {
    let Ok(fields) = ErrorFields::new(body) else {
        return false;
    };
    let code = fields.get(b'C').unwrap_or_default();
    fields.severity() == Some(b"FATAL") || code == b"40001" || code.starts_with(b"57P")
}

/// PostgreSQL's error for a prepared statement whose result columns changed.
fn is_stale_plan(body: &[u8]) -> bool {
    ErrorFields::new(body).is_ok_and(|f| {
        f.get(b'C') == Some(b"0A000")
            && f.message() == Some(b"cached plan must not change result type")
    })
}

fn is_fatal(body: &[u8]) -> bool {
    ErrorFields::new(body).is_ok_and(|f| f.severity() == Some(b"FATAL"))
}

fn error_message(body: &[u8]) -> String {
    ErrorFields::new(body)
        .ok()
        .and_then(|f| f.message())
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .unwrap_or_default()
}
