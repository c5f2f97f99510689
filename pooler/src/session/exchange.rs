//! The conversation with a linked server, modelled on the protocol documentation
//! (PostgreSQL "Message Flow", §55.2): what the client's forwarded messages have opened
//! on the server ([`Phase`]), what the server still owes, in order ([`Pending`]), and
//! whether it is discarding messages after an error. The session releases a server only
//! when [`Exchange::is_settled`] and the last ReadyForQuery said idle.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::BytesMut;
use protocol::pg::encode;

use super::prepared::Statement;

/// What the client's forwarded messages have left open on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// Nothing: every extended-protocol message the server got was followed by a Sync
    /// (a Query or FunctionCall ends an extended batch too).
    #[default]
    Settled,
    /// Extended-protocol messages reached the server after its last Sync: until that
    /// Sync it holds the implicit transaction, the unnamed statement and portal, and the
    /// locks parsing took. Flush asks for replies but ends nothing.
    Batch,
    /// COPY FROM STDIN: the server takes CopyData until CopyDone or CopyFail and ignores
    /// Sync and Flush meanwhile. After an extended-protocol COPY the batch still needs
    /// its Sync.
    CopyIn {
        /// Started by an Execute (extended protocol) rather than a simple Query.
        is_extended: bool,
    },
}

/// A reply the client is owed that the pooler produces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synthetic {
    /// For a Parse of a statement the server already has.
    ParseComplete,
    /// For a client Close of a named statement (never forwarded).
    CloseComplete,
}

/// A client's Parse of a named statement, renamed to the pooler's statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedParse {
    /// The pooler's statement (marked valid when the server completes the Parse).
    pub statement: Arc<Statement>,
    /// The client's name for it, forgotten if the Parse fails or is discarded.
    pub client_name: Arc<[u8]>,
    /// The server already holds the statement (the Parse was sent for its error in an
    /// aborted transaction): a failure does not remove it from the server's cache.
    pub is_on_server: bool,
}

/// What the client message forwarded to the server completes with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// ParseComplete.
    Parse {
        /// Set when the pooler renamed the client's named statement (boxed: rare, and it
        /// keeps every queue entry small).
        named: Option<Box<NamedParse>>,
    },
    /// BindComplete.
    Bind {
        /// The pooler's statement when the client's name was renamed (a stale plan
        /// retires it).
        statement: Option<Arc<Statement>>,
    },
    /// RowDescription or NoData.
    Describe,
    /// CommandComplete, EmptyQueryResponse or PortalSuspended.
    Execute,
    /// CloseComplete.
    Close,
    /// ReadyForQuery.
    Sync,
    /// ReadyForQuery (simple query, including COPY).
    Query,
    /// ReadyForQuery (function call).
    FunctionCall,
}

impl Expect {
    /// Answered by a ReadyForQuery.
    fn is_ready_for_query(&self) -> bool {
        matches!(self, Self::Sync | Self::Query | Self::FunctionCall)
    }
}

/// One entry of the outstanding queue, in the order the server will answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// A client message: its replies go to the client.
    Forward(Expect),
    /// A Parse the pooler injected before Bind/Describe: its ParseComplete is swallowed.
    InjectedParse {
        /// The pooler's statement.
        statement: Arc<Statement>,
    },
    /// A Close the pooler injected to evict a statement: CloseComplete is swallowed.
    InjectedClose {
        /// The evicted statement, still on the server if this Close is discarded.
        statement: u64,
    },
    /// A query the pooler injected (parameter SETs): every reply is swallowed.
    InjectedQuery,
    /// A Sync the pooler injected to end a replica's batch before the client's next
    /// Query moves to the primary: its ReadyForQuery is swallowed.
    InjectedSync,
    /// A reply the pooler owes the client, emitted when it reaches the head.
    Synthetic(Synthetic),
    /// The client's CopyDone or CopyFail, sent before the server said its COPY started:
    /// marks which pipelined Syncs the server will ignore as part of the COPY. It has
    /// no reply and leaves the queue when it reaches the head.
    CopyEnd,
}

impl Pending {
    fn is_ready_for_query(&self) -> bool {
        matches!(self, Self::Forward(e) if e.is_ready_for_query())
    }
}

/// What the head of the queue waits for, without its payload: cheap to copy and
/// compare for every server message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadKind {
    /// Nothing is owed.
    Nothing,
    /// A forwarded message's reply.
    Forward(ExpectKind),
    /// An injected Parse's ParseComplete.
    InjectedParse,
    /// An injected Close's CloseComplete.
    InjectedClose,
    /// An injected query's replies.
    InjectedQuery,
    /// An injected Sync's ReadyForQuery.
    InjectedSync,
    /// A synthetic reply or a copy-end marker (never at the head for long).
    Local,
}

/// [`Expect`] without its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectKind {
    /// ParseComplete.
    Parse,
    /// BindComplete.
    Bind,
    /// RowDescription or NoData.
    Describe,
    /// CommandComplete, EmptyQueryResponse or PortalSuspended.
    Execute,
    /// CloseComplete.
    Close,
    /// ReadyForQuery.
    ReadyForQuery,
}

/// Statements whose Parse failed or was discarded: the server does not have them and
/// the client's name for them does not exist.
#[derive(Debug, Default)]
pub struct FailedParses {
    /// Pooler statement ids the server does not hold.
    pub statements: Vec<u64>,
    /// Client names that were never created, with the statement id each would name.
    pub client_names: Vec<(Arc<[u8]>, u64)>,
    /// Statements whose eviction (an injected Close) the server discarded: it still
    /// holds them.
    pub still_held: Vec<u64>,
    /// The Parses and Closes the server discarded, in the order they were sent: undone
    /// in reverse, they give the server's statements back (a statement prepared and
    /// evicted in one batch was never there; one evicted and prepared again still is).
    pub skipped: Vec<SkippedStatementOp>,
}

/// A statement Parse or Close the server discarded after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkippedStatementOp {
    /// A Parse of this pooler statement id (the server does not hold it because of it).
    Parse(u64),
    /// A Close of this id (the server still holds it).
    Close(u64),
}

/// The conversation of one client/server link.
#[derive(Debug, Default)]
pub struct Exchange {
    queue: VecDeque<Pending>,
    phase: Phase,
    /// An extended-protocol message failed: the server discards what it reads until the
    /// next Sync (a Sync already queued ends it; see [`Exchange::is_discarding`]).
    is_skipping_to_sync: bool,
    /// The first error of an injected query, reported when its ReadyForQuery arrives.
    pub injected_error: Option<String>,
}

impl Exchange {
    /// What the client's messages have left open on the server.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Nothing owed and nothing open: the server holds no state of this client but its
    /// transaction status (which the caller checks from ReadyForQuery).
    #[inline]
    pub fn is_settled(&self) -> bool {
        self.queue.is_empty() && self.phase == Phase::Settled
    }

    /// Every forwarded message got its final reply (something may still be open).
    #[inline]
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether the server would discard a message sent now: an extended-protocol error
    /// is being skipped and no Sync that ends the skip has been forwarded yet.
    pub fn is_discarding(&self) -> bool {
        self.is_skipping_to_sync && !self.queue.front().is_some_and(Pending::is_ready_for_query)
    }

    /// The client's extended-protocol message reached the server.
    pub fn on_extended_forwarded(&mut self) {
        if self.phase == Phase::Settled {
            self.phase = Phase::Batch;
        }
    }

    /// The client's Sync was forwarded: what it is owed (`None` during COPY FROM STDIN,
    /// when the server ignores it).
    pub fn on_sync_forwarded(&mut self) -> Option<Expect> {
        match self.phase {
            Phase::CopyIn { .. } => None,
            Phase::Settled | Phase::Batch => {
                self.phase = Phase::Settled;
                Some(Expect::Sync)
            }
        }
    }

    /// The pooler ends the client's open batch itself (a Sync whose ReadyForQuery is
    /// swallowed), so the client's next Query can be routed elsewhere.
    pub fn end_batch(&mut self, server_out: &mut BytesMut, client_out: &mut BytesMut) {
        encode::sync(server_out);
        self.phase = Phase::Settled;
        self.push(Pending::InjectedSync, client_out);
    }

    /// A Query or FunctionCall was forwarded: it ends an open batch like a Sync.
    pub fn on_query_forwarded(&mut self) {
        if self.phase == Phase::Batch {
            self.phase = Phase::Settled;
        }
    }

    /// The client ended its COPY data (CopyDone or CopyFail). Pipelined before the
    /// server said its COPY started, it is queued as a marker for
    /// [`Exchange::on_copy_in_started`].
    pub fn on_copy_end_forwarded(&mut self, client_out: &mut BytesMut) {
        match self.phase {
            Phase::CopyIn { is_extended } => {
                self.phase = if is_extended {
                    Phase::Batch
                } else {
                    Phase::Settled
                };
            }
            Phase::Settled | Phase::Batch => self.push(Pending::CopyEnd, client_out),
        }
    }

    /// The server sent CopyInResponse for the head (an Execute or a Query). Until the
    /// client's CopyDone/CopyFail it ignores Sync and Flush: the Syncs the client
    /// pipelined before its copy end get no ReadyForQuery and leave the queue. If the
    /// copy end is not here yet, the session is in COPY until it comes.
    pub fn on_copy_in_started(&mut self) {
        let is_extended = self.queue.front() == Some(&Pending::Forward(Expect::Execute));
        let end = self.queue.iter().position(|p| *p == Pending::CopyEnd);
        let mut index = 0;
        self.queue.retain(|p| {
            index += 1;
            let is_inside_copy = end.is_none_or(|end| index <= end);
            index == 1 || !(is_inside_copy && *p == Pending::Forward(Expect::Sync))
        });
        match end {
            None => self.phase = Phase::CopyIn { is_extended },
            Some(_) => {
                self.queue.retain(|p| *p != Pending::CopyEnd);
                let has_sync_after = self.queue.iter().skip(1).any(Pending::is_ready_for_query);
                if is_extended && !has_sync_after {
                    self.phase = Phase::Batch; // the Syncs that would have ended it were ignored
                }
            }
        }
    }

    /// Whether a forwarded Sync, Query or FunctionCall still waits for ReadyForQuery.
    pub fn awaits_ready_for_query(&self) -> bool {
        self.queue.iter().any(Pending::is_ready_for_query)
    }

    /// Forwarded Syncs, Queries and FunctionCalls still waiting for ReadyForQuery.
    pub fn ready_for_query_count(&self) -> usize {
        self.queue.iter().filter(|p| p.is_ready_for_query()).count()
    }

    /// Number of entries still outstanding.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is outstanding (same as [`Exchange::is_idle`]).
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The entry the next server reply belongs to.
    #[inline]
    pub fn head(&self) -> Option<&Pending> {
        self.queue.front()
    }

    /// What the next server reply belongs to, without its payload.
    #[inline]
    pub fn head_kind(&self) -> HeadKind {
        match self.queue.front() {
            None => HeadKind::Nothing,
            Some(Pending::Forward(expect)) => HeadKind::Forward(match expect {
                Expect::Parse { .. } => ExpectKind::Parse,
                Expect::Bind { .. } => ExpectKind::Bind,
                Expect::Describe => ExpectKind::Describe,
                Expect::Execute => ExpectKind::Execute,
                Expect::Close => ExpectKind::Close,
                Expect::Sync | Expect::Query | Expect::FunctionCall => ExpectKind::ReadyForQuery,
            }),
            Some(Pending::InjectedParse { .. }) => HeadKind::InjectedParse,
            Some(Pending::InjectedClose { .. }) => HeadKind::InjectedClose,
            Some(Pending::InjectedQuery) => HeadKind::InjectedQuery,
            Some(Pending::InjectedSync) => HeadKind::InjectedSync,
            Some(Pending::Synthetic(_) | Pending::CopyEnd) => HeadKind::Local,
        }
    }

    /// Records a message sent to the server (or a synthetic reply owed). A synthetic
    /// reply with nothing ahead of it is written to `client_out` at once. The caller
    /// does not send what [`Exchange::is_discarding`] says the server would discard.
    pub fn push(&mut self, pending: Pending, client_out: &mut BytesMut) {
        if self.queue.is_empty() {
            match pending {
                Pending::Synthetic(reply) => return emit(reply, client_out),
                Pending::CopyEnd => return, // no COPY can start any more
                _ => {}
            }
        }
        self.queue.push_back(pending);
    }

    /// The head got its final reply: pop it and emit synthetic replies now at the head.
    #[inline]
    pub fn complete_head(&mut self, client_out: &mut BytesMut) {
        if let Some(
            Pending::Forward(Expect::Sync | Expect::Query | Expect::FunctionCall)
            | Pending::InjectedSync,
        ) = self.queue.pop_front()
        {
            self.is_skipping_to_sync = false;
        }
        if matches!(
            self.queue.front(),
            Some(Pending::Synthetic(_) | Pending::CopyEnd)
        ) {
            self.flush_synthetic(client_out);
        }
    }

    /// An ErrorResponse. In the extended protocol the failed message and everything up
    /// to the next Sync get no reply; a failed Sync (its commit) or a simple Query skips
    /// nothing. A COPY FROM STDIN ends. Returns the Parses that will never complete.
    pub fn on_error(&mut self) -> FailedParses {
        let mut failed = FailedParses::default();
        if let Phase::CopyIn { is_extended } = self.phase {
            self.phase = if is_extended {
                Phase::Batch
            } else {
                Phase::Settled
            };
        }
        let is_extended = match self.queue.front() {
            None | Some(Pending::InjectedQuery | Pending::InjectedSync) => return failed,
            Some(p) => !p.is_ready_for_query(),
        };
        if !is_extended {
            return failed;
        }
        while let Some(front) = self.queue.front() {
            match front {
                p if p.is_ready_for_query() => break,
                Pending::Forward(Expect::Parse { named: Some(named) }) => {
                    if !named.is_on_server {
                        failed.statements.push(named.statement.id);
                        failed
                            .skipped
                            .push(SkippedStatementOp::Parse(named.statement.id));
                    }
                    failed
                        .client_names
                        .push((Arc::clone(&named.client_name), named.statement.id));
                }
                Pending::InjectedParse { statement } => {
                    failed.statements.push(statement.id);
                    failed.skipped.push(SkippedStatementOp::Parse(statement.id));
                }
                Pending::InjectedClose { statement } => {
                    failed.still_held.push(*statement);
                    failed.skipped.push(SkippedStatementOp::Close(*statement));
                }
                _ => {}
            }
            self.queue.pop_front();
        }
        self.is_skipping_to_sync = true;
        failed
    }

    fn flush_synthetic(&mut self, client_out: &mut BytesMut) {
        loop {
            match self.queue.front() {
                Some(Pending::Synthetic(reply)) => emit(*reply, client_out),
                Some(Pending::CopyEnd) => {} // no COPY started: the server ignored it
                _ => return,
            }
            self.queue.pop_front();
        }
    }

    /// Entries queued after the last one that waits for ReadyForQuery: a batch whose
    /// Sync the client has not sent yet.
    pub fn has_partial_batch(&self) -> bool {
        match self.queue.iter().rposition(Pending::is_ready_for_query) {
            Some(last) => last + 1 < self.queue.len(),
            None => !self.queue.is_empty() || self.phase != Phase::Settled,
        }
    }

    /// Statement ids and client names of forwarded Parses that got no ParseComplete yet.
    pub fn unanswered_parses(&self) -> FailedParses {
        let mut unanswered = FailedParses::default();
        for pending in &self.queue {
            if let Pending::Forward(Expect::Parse { named: Some(named) }) = pending {
                let id = named.statement.id;
                if !named.is_on_server {
                    unanswered.statements.push(id);
                    unanswered.skipped.push(SkippedStatementOp::Parse(id));
                }
                unanswered
                    .client_names
                    .push((Arc::clone(&named.client_name), id));
            }
        }
        unanswered
    }
}

fn emit(reply: Synthetic, client_out: &mut BytesMut) {
    match reply {
        Synthetic::ParseComplete => encode::parse_complete(client_out),
        Synthetic::CloseComplete => encode::close_complete(client_out),
    }
}

#[cfg(test)]
mod tests;
