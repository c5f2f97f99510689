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
use super::exchange::{Exchange, Expect, Pending, Synthetic};
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
            FrontendTag::Parse
            | FrontendTag::Bind
            | FrontendTag::Describe
            | FrontendTag::Execute
            | FrontendTag::Close
            | FrontendTag::Flush => self.exchange.set_in_batch(true),
            FrontendTag::Sync | FrontendTag::Query | FrontendTag::FunctionCall => {
                self.exchange.set_in_batch(false);
            }
            _ => {}
        }
        let expect = match tag {
            FrontendTag::Query => Some(Expect::Query),
            FrontendTag::Execute => Some(Expect::Execute),
            FrontendTag::Sync if self.exchange.is_copy_in_extended() => None,
            FrontendTag::Sync => Some(Expect::Sync),
            FrontendTag::FunctionCall => Some(Expect::FunctionCall),
            FrontendTag::CopyDone | FrontendTag::CopyFail => {
                self.exchange.end_copy_in();
                None
            }
            FrontendTag::Flush | FrontendTag::CopyData => None,
            FrontendTag::Terminate => return Ok(ClientFlow::Terminate),
            FrontendTag::Password => {
                return Err(SessionError::protocol("password message after login"));
            }
            FrontendTag::Parse | FrontendTag::Bind | FrontendTag::Describe | FrontendTag::Close => {
                return self.statement_frame(frame).map(|()| ClientFlow::Continue);
            }
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
                (Expect::Parse { statement: None }, None)
            }
            FrontendMessage::Bind(bind) => {
                PoolStats::add(&self.stats.bind_count, 1);
                (Expect::Bind, Some(bind.statement))
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
        match name {
            Some(name) if self.is_renaming && !name.is_empty() => {
                let statement = self
                    .statements
                    .get(name)
                    .cloned()
                    .ok_or(SessionError::Fatal("prepared statement did not exist"))?;
                if !self.server.statements.touch(statement.id) {
                    self.prepare_on_server(&statement, true);
                }
                let server_name = Statement::server_name(statement.id);
                rename_statement_into(frame, server_name.as_bytes(), self.server_out)
                    .map_err(SessionError::Protocol)?;
            }
            _ => self.server_out.extend_from_slice(frame.as_bytes()),
        }
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
        if self.server.statements.touch(statement.id) {
            self.exchange.push(
                Pending::Synthetic(Synthetic::ParseComplete),
                self.client_out,
            );
        } else {
            self.prepare_on_server(&statement, false);
        }
        Ok(())
    }

    /// Sends `statement`'s Parse, evicting the least recently used one if the server's
    /// cache is full. `is_injected`: the client did not send this Parse (lazy re-Parse
    /// before Bind/Describe on another server), so its ParseComplete is swallowed.
    fn prepare_on_server(&mut self, statement: &Statement, is_injected: bool) {
        if let Some(evicted) = self.server.statements.insert(statement.id) {
            let name = Statement::server_name(evicted);
            if encode::close_statement(self.server_out, name.as_bytes()).is_ok() {
                self.exchange.push(Pending::InjectedClose, self.client_out);
            }
        }
        if self.exchange.is_skipping_to_sync() {
            // The server ignores this Parse until Sync: do not believe it has it.
            self.server.statements.remove(statement.id);
        }
        self.server_out.extend_from_slice(&statement.parse);
        PoolStats::add(&self.stats.server_parse_count, 1);
        let pending = if is_injected {
            Pending::InjectedParse {
                statement: statement.id,
            }
        } else {
            Pending::Forward(Expect::Parse {
                statement: Some(statement.id),
            })
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
        let head = self.exchange.head();
        let is_swallowed = matches!(head, Some(Pending::InjectedQuery));
        let body = frame.get(5..).unwrap_or_default();
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
                if !matches!(
                    head,
                    None | Some(Pending::Forward(Expect::Query | Expect::FunctionCall))
                ) {
                    let mut failed = Vec::new();
                    self.exchange.fail_to_sync(&mut failed);
                    for id in failed {
                        self.server.statements.remove(id);
                    }
                }
            }
            Some(BackendTag::ParseComplete) => {
                if !matches!(head, Some(Pending::InjectedParse { .. })) {
                    self.client_out.extend_from_slice(frame);
                }
                self.exchange.complete_head(self.client_out);
            }
            Some(BackendTag::CloseComplete) => {
                if head != Some(Pending::InjectedClose) {
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
                if head == Some(Pending::Forward(Expect::Describe)) {
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
                if head == Some(Pending::Forward(Expect::Execute)) {
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
                self.exchange.start_copy_in();
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
