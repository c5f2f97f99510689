//! Frames across a link: the client's messages relayed to the linked server, the
//! server's replies relayed to the client (with ReadyForQuery bookkeeping), and the
//! messages answered without a server while none is linked.

use bytes::Buf;
use protocol::pg::{
    BackendTag, FrameSplitter, FrontendMessage, FrontendTag, Target, TransactionStatus, encode,
    peek_header,
};

use std::sync::Arc;

use super::exchange::Phase;
use super::prepared::{Statement, parse_name, statement_body};
use super::relay::{ClientFlow, Link};
use super::{ClientSession, SessionError};
use crate::config::PoolMode;

impl ClientSession {
    /// While no server is linked, answers the messages that need none: Flush (nothing
    /// is owed), Sync (nothing is open: ReadyForQuery with the current status) and, when
    /// the pooler keeps the client's statement names, Close (a portal or the unnamed
    /// statement does not outlive the transaction that had the server; a named statement
    /// is the pooler's to forget) and a Parse of a statement a server already completed
    /// (pgbench `-M prepared` prepares synchronously from one thread for all its
    /// clients: waiting for a server there deadlocks against its other clients' open
    /// transactions). Returns whether a whole message that needs a server is next.
    pub(super) fn answer_unlinked(&mut self) -> Result<bool, SessionError> {
        // Most transactions start with a Query or Bind: nothing to answer here.
        let first = self
            .client_in
            .first()
            .copied()
            .and_then(FrontendTag::from_byte);
        if !matches!(
            first,
            Some(FrontendTag::Flush | FrontendTag::Sync | FrontendTag::Close | FrontendTag::Parse)
        ) {
            return self.has_complete_frame();
        }
        let splitter = FrameSplitter::new(self.settings.max_packet_size);
        while self.has_complete_frame()? {
            let tag = self
                .client_in
                .first()
                .copied()
                .and_then(FrontendTag::from_byte);
            let known_statement = match tag {
                Some(FrontendTag::Flush | FrontendTag::Sync) => None,
                Some(FrontendTag::Close) if self.is_renaming() => None,
                Some(FrontendTag::Parse) if self.is_renaming() => match self.known_parse()? {
                    Some(statement) => Some(statement),
                    None => return Ok(true),
                },
                _ => return Ok(true),
            };
            let Some(frame) = splitter
                .split(&mut self.client_in)
                .map_err(SessionError::Protocol)?
            else {
                return Ok(false);
            };
            self.progress += 1;
            match FrontendMessage::decode(&frame).map_err(SessionError::Protocol)? {
                FrontendMessage::Sync => encode::ready_for_query(&mut self.client_out, self.status),
                FrontendMessage::Parse(parse) => {
                    if let Some(statement) = known_statement {
                        crate::stats::PoolStats::add(&self.pool.stats().client_parse_count, 1);
                        self.statements.insert(parse.name, statement);
                        encode::parse_complete(&mut self.client_out);
                    }
                }
                FrontendMessage::Close(close) => {
                    if close.target == Target::Statement && !close.name.is_empty() {
                        self.statements.remove(close.name);
                    }
                    encode::close_complete(&mut self.client_out);
                }
                _ => {}
            }
        }
        Ok(false)
    }

    /// The next message is a Parse of a new client name for a statement a server has
    /// completed before: the pooler answers it, and prepares it where it is used.
    fn known_parse(&self) -> Result<Option<Arc<Statement>>, SessionError> {
        let max = self.settings.max_packet_size;
        let Some(header) = peek_header(&self.client_in, max).map_err(SessionError::Protocol)?
        else {
            return Ok(None);
        };
        let Some(parse) = self.client_in.get(..header.len) else {
            return Ok(None);
        };
        let name = parse_name(parse);
        if name.is_empty() || self.statements.contains(name) {
            return Ok(None);
        }
        let Some(body) = statement_body(parse) else {
            return Ok(None);
        };
        Ok(self.registry.find(body).filter(|s| s.is_valid()))
    }

    /// The first simple Query waiting in `client_in` may not run on a replica.
    fn next_query_needs_primary(&self) -> bool {
        let Some(router) = self.router.as_ref() else {
            return false;
        };
        let mut frames = protocol::pg::scan_frames(&self.client_in, self.settings.max_packet_size);
        let query = frames.find_map(|frame| {
            let (header, offset) = frame.ok()?;
            (header.tag == FrontendTag::Query.as_byte()).then_some((header, offset))
        });
        query.is_some_and(|(header, offset)| {
            let frame = frames.frame_bytes(header, offset);
            !router.stays_on_replica(frame, &self.statements)
        })
    }

    /// Named statements are kept by the pooler (transaction/statement pooling with
    /// `max_prepared_statements`), under server-side names of its own.
    pub(super) fn is_renaming(&self) -> bool {
        self.settings.max_prepared_statements > 0 && self.settings.pool_mode != PoolMode::Session
    }

    fn link(&mut self) -> Option<Link<'_>> {
        let is_routed = self.router.is_some() && self.settings.pool_mode != PoolMode::Session;
        let retry_base = self.retry.as_ref().map(|_| self.client_out.len());
        let server = self.server.as_deref_mut()?;
        Some(Link {
            server,
            server_out: &mut self.server_out,
            client_out: &mut self.client_out,
            exchange: &mut self.exchange,
            statements: &mut self.statements,
            registry: &self.registry,
            params: &mut self.params,
            stats: self.pool.stats(),
            is_renaming: self.settings.max_prepared_statements > 0
                && self.settings.pool_mode != PoolMode::Session,
            is_statement_mode: self.settings.pool_mode == PoolMode::Statement,
            transaction_status: self.status,
            retry_base,
            is_routed,
        })
    }

    pub(super) fn relay_client_frames(&mut self) -> Result<(), SessionError> {
        let splitter = FrameSplitter::new(self.settings.max_packet_size);
        // On a replica one transaction at a time: frames after a Sync or Query wait until
        // its ReadyForQuery, so the next transaction is routed on its own.
        let is_one_at_a_time = self.is_on_replica();
        let is_query_for_primary = is_one_at_a_time && self.next_query_needs_primary();
        let mut input = std::mem::take(&mut self.client_in);
        let mut retry = self.retry.take();
        // A read sent to the primary may be followed by pipelined writes: remember the
        // statements forwarded, so read-your-writes tracks them.
        let is_tracking_writes = self.router.as_ref().is_some_and(|r| {
            r.current
                .as_ref()
                .is_some_and(|c| !c.is_replica && !c.is_write)
        });
        let mut forwarded = Vec::new();
        let result = (|| {
            let Some(mut link) = self.link() else {
                return Ok(());
            };
            loop {
                if is_one_at_a_time && link.exchange.awaits_ready_for_query() {
                    break;
                }
                // A write Query after a read batch left open on the replica (asyncpg's
                // Parse/Describe/Flush, then COPY): end that batch here; the Query is
                // routed on its own once the replica is released.
                if is_query_for_primary
                    && input.first() == Some(&FrontendTag::Query.as_byte())
                    && link.exchange.phase() == Phase::Batch
                    && !link.exchange.is_discarding()
                {
                    link.exchange.end_batch(link.server_out, link.client_out);
                    break;
                }
                let Some(frame) = splitter.split(&mut input).map_err(SessionError::Protocol)?
                else {
                    break;
                };
                super::io::check_frame_len(frame.tag(), frame.wire_len())?;
                let answered_before = link.client_out.len();
                if link.client_frame(&frame)? == ClientFlow::Terminate {
                    return Err(SessionError::ClientClosed);
                }
                if let Some(r) = retry.as_mut()
                    && link.client_out.len() == answered_before
                {
                    r.frames.extend_from_slice(frame.as_bytes());
                }
                if is_tracking_writes {
                    forwarded.push(frame);
                }
            }
            Ok(())
        })();
        self.client_in = input;
        self.retry = retry;
        if let Some(router) = self.router.as_mut() {
            for frame in &forwarded {
                router.note_forwarded(frame.as_bytes(), &self.statements);
            }
        }
        result
    }

    fn is_on_replica(&self) -> bool {
        self.settings.pool_mode != PoolMode::Session
            && self
                .router
                .as_ref()
                .and_then(|r| r.current.as_ref())
                .is_some_and(|c| c.is_replica)
    }

    pub(super) fn relay_server_frames(&mut self) -> Result<(), SessionError> {
        let max = self.settings.max_packet_size;
        let relayed_before = self.client_out.len();
        let Some(server) = self.server.as_deref_mut() else {
            return Ok(());
        };
        let mut input = std::mem::take(&mut server.read_buf);
        let mut consumed = 0;
        let mut last_status = None;
        let result = (|| {
            let Some(mut link) = self.link() else {
                return Ok(());
            };
            while let Some(header) =
                peek_header(&input[consumed..], max).map_err(SessionError::ServerProtocol)?
            {
                let end = consumed + header.len;
                let Some(frame) = input.get(consumed..end) else {
                    break;
                };
                if let Some(status) = link.server_frame(frame, BackendTag::from_byte(header.tag))? {
                    last_status = Some(status);
                }
                consumed = end;
            }
            Ok(())
        })();
        input.advance(consumed);
        if let Some(server) = self.server.as_deref_mut() {
            server.read_buf = input;
        }
        if let Some(status) = last_status {
            self.on_ready_for_query(status)?;
        }
        if self.client_out.len() != relayed_before {
            // A server reply reached the client: the transaction can no longer move.
            self.retry = None;
        }
        result
    }

    fn on_ready_for_query(&mut self, status: TransactionStatus) -> Result<(), SessionError> {
        let was_in_transaction = self.status != TransactionStatus::Idle;
        self.status = status;
        let stats = self.pool.stats();
        let query_time = self.last_request_at.elapsed();
        crate::stats::PoolStats::add(&stats.query_time_us, query_time.as_micros() as u64);
        stats.query_histogram.observe(query_time);
        if status == TransactionStatus::Idle {
            crate::stats::PoolStats::add(&stats.xact_count, 1);
            if !was_in_transaction {
                crate::stats::PoolStats::add(&stats.query_count, 1);
            }
        }
        Ok(())
    }
}
