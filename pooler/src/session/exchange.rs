//! The in-flight exchange with a linked server: what each forwarded or injected message
//! still expects as a reply, so injected replies are swallowed, synthesised ones are
//! emitted at the right point of the client's pipeline, and the server is released
//! exactly when nothing is outstanding.

use std::collections::VecDeque;

use bytes::BytesMut;
use protocol::pg::encode;

/// A reply the client is owed that the pooler produces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synthetic {
    /// For a Parse of a statement the server already has.
    ParseComplete,
    /// For a client Close of a named statement (never forwarded).
    CloseComplete,
}

/// What the client message forwarded to the server completes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// ParseComplete; `statement` is the pooler statement id if it was renamed.
    Parse {
        /// Pooler statement id, forgotten from the server cache if the Parse fails.
        statement: Option<u64>,
    },
    /// BindComplete.
    Bind,
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

/// One entry of the outstanding queue, in the order the server will answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// A client message: its replies go to the client.
    Forward(Expect),
    /// A Parse the pooler injected before Bind/Describe: its ParseComplete is swallowed.
    InjectedParse {
        /// Pooler statement id.
        statement: u64,
    },
    /// A Close the pooler injected to evict a statement: CloseComplete is swallowed.
    InjectedClose,
    /// A query the pooler injected (parameter SETs): every reply is swallowed.
    InjectedQuery,
    /// A reply the pooler owes the client, emitted when it reaches the head.
    Synthetic(Synthetic),
}

/// The outstanding queue of one client/server link.
#[derive(Debug, Default)]
pub struct Exchange {
    queue: VecDeque<Pending>,
    /// After an error in the extended protocol the server ignores everything up to Sync.
    is_skipping_to_sync: bool,
    /// The first error of an injected query, reported when its ReadyForQuery arrives.
    pub injected_error: Option<String>,
    /// The server is in COPY FROM STDIN started by an extended-protocol Execute: it
    /// ignores Sync and Flush until the client's CopyDone or CopyFail.
    is_copy_in_extended: bool,
    /// An extended-protocol batch has started and its Sync has not been forwarded:
    /// the server keeps its unnamed statement and portal for it, so it stays linked.
    is_in_batch: bool,
}

impl Exchange {
    /// Marks the start (Parse, Bind, Describe, Execute, Close, Flush) or the end (Sync,
    /// Query, FunctionCall) of an extended-protocol batch.
    pub fn set_in_batch(&mut self, is_in_batch: bool) {
        self.is_in_batch = is_in_batch;
    }

    /// Inside an extended-protocol batch whose Sync was not forwarded yet.
    pub fn is_in_batch(&self) -> bool {
        self.is_in_batch
    }

    /// Whether a forwarded Sync, Query or FunctionCall still waits for ReadyForQuery.
    pub fn awaits_ready_for_query(&self) -> bool {
        self.ready_for_query_count() > 0
    }

    /// Forwarded Syncs, Queries and FunctionCalls still waiting for ReadyForQuery.
    pub fn ready_for_query_count(&self) -> usize {
        self.queue
            .iter()
            .filter(|p| {
                matches!(
                    p,
                    Pending::Forward(Expect::Sync | Expect::Query | Expect::FunctionCall)
                )
            })
            .count()
    }

    /// Whether every forwarded message got its final reply.
    #[inline]
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty()
    }

    /// The server sent CopyInResponse. In the extended protocol the server ignores every
    /// Sync until CopyDone/CopyFail, including those the client already sent after its
    /// Execute: they will get no ReadyForQuery, so they leave the queue.
    pub fn start_copy_in(&mut self) {
        if self.queue.front() != Some(&Pending::Forward(Expect::Execute)) {
            return; // simple-protocol COPY: the Query entry waits for ReadyForQuery
        }
        self.is_copy_in_extended = true;
        let mut index = 0;
        self.queue.retain(|p| {
            index += 1;
            index == 1 || *p != Pending::Forward(Expect::Sync)
        });
    }

    /// The client ended its COPY data (CopyDone or CopyFail).
    pub fn end_copy_in(&mut self) {
        self.is_copy_in_extended = false;
    }

    /// Whether a Sync from the client now would be ignored by the server.
    pub fn is_copy_in_extended(&self) -> bool {
        self.is_copy_in_extended
    }

    /// Whether the server is discarding messages until the next Sync.
    pub fn is_skipping_to_sync(&self) -> bool {
        self.is_skipping_to_sync
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
    pub fn head(&self) -> Option<Pending> {
        self.queue.front().copied()
    }

    /// Records a message sent to the server (or a synthetic reply owed). A synthetic
    /// reply with nothing ahead of it is written to `client_out` at once.
    pub fn push(&mut self, pending: Pending, client_out: &mut BytesMut) {
        if self.is_skipping_to_sync && !matches!(pending, Pending::Forward(Expect::Sync)) {
            // The server discards it; a synthetic reply would not have been sent either.
            return;
        }
        if let Pending::Synthetic(reply) = pending
            && self.queue.is_empty()
        {
            emit(reply, client_out);
            return;
        }
        self.queue.push_back(pending);
    }

    /// The head got its final reply: pop it and emit synthetic replies now at the head.
    pub fn complete_head(&mut self, client_out: &mut BytesMut) -> Option<Pending> {
        let done = self.queue.pop_front();
        if matches!(done, Some(Pending::Forward(Expect::Sync | Expect::Query))) {
            self.is_skipping_to_sync = false;
        }
        self.flush_synthetic(client_out);
        done
    }

    /// An ErrorResponse in the extended protocol: the failed message and everything up
    /// to the next Sync get no reply. Returns the statements whose Parse failed.
    pub fn fail_to_sync(&mut self, failed_parses: &mut Vec<u64>) {
        while let Some(front) = self.queue.front().copied() {
            match front {
                Pending::Forward(Expect::Sync) => return,
                Pending::Forward(Expect::Parse {
                    statement: Some(id),
                })
                | Pending::InjectedParse { statement: id } => failed_parses.push(id),
                _ => {}
            }
            self.queue.pop_front();
        }
        self.is_skipping_to_sync = true;
    }

    fn flush_synthetic(&mut self, client_out: &mut BytesMut) {
        while let Some(Pending::Synthetic(reply)) = self.queue.front().copied() {
            emit(reply, client_out);
            self.queue.pop_front();
        }
    }

    /// Entries queued after the last one that waits for ReadyForQuery: a batch whose
    /// Sync the client has not sent yet.
    pub fn has_partial_batch(&self) -> bool {
        let is_ready_expect = |p: &Pending| {
            matches!(
                p,
                Pending::Forward(Expect::Sync | Expect::Query | Expect::FunctionCall)
            )
        };
        match self.queue.iter().rposition(is_ready_expect) {
            Some(last) => last + 1 < self.queue.len(),
            None => !self.queue.is_empty(),
        }
    }

    /// Statement ids of forwarded Parses that got no ParseComplete yet.
    pub fn unanswered_parses(&self) -> Vec<u64> {
        self.queue
            .iter()
            .filter_map(|p| match p {
                Pending::Forward(Expect::Parse {
                    statement: Some(id),
                }) => Some(*id),
                _ => None,
            })
            .collect()
    }

    /// Forgets everything (the server is gone).
    pub fn clear(&mut self) {
        self.queue.clear();
        self.is_skipping_to_sync = false;
        self.is_in_batch = false;
        self.injected_error = None;
        self.is_copy_in_extended = false;
    }
}

fn emit(reply: Synthetic, client_out: &mut BytesMut) {
    match reply {
        Synthetic::ParseComplete => encode::parse_complete(client_out),
        Synthetic::CloseComplete => encode::close_complete(client_out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_synthetic_reply_waits_for_the_replies_ahead_of_it() {
        let mut exchange = Exchange::default();
        let mut out = BytesMut::new();
        exchange.push(Pending::Forward(Expect::Bind), &mut out);
        exchange.push(Pending::Synthetic(Synthetic::CloseComplete), &mut out);
        exchange.push(Pending::Forward(Expect::Sync), &mut out);
        assert!(out.is_empty());
        exchange.complete_head(&mut out);
        assert_eq!(&out[..], b"3\0\0\0\x04");
        assert_eq!(exchange.head(), Some(Pending::Forward(Expect::Sync)));
    }

    #[test]
    fn a_synthetic_reply_with_nothing_ahead_goes_out_at_once() {
        let mut exchange = Exchange::default();
        let mut out = BytesMut::new();
        exchange.push(Pending::Synthetic(Synthetic::ParseComplete), &mut out);
        assert_eq!(&out[..], b"1\0\0\0\x04");
        assert!(exchange.is_idle());
    }

    #[test]
    fn an_error_skips_to_sync_and_drops_owed_synthetic_replies() {
        let mut exchange = Exchange::default();
        let mut out = BytesMut::new();
        exchange.push(Pending::InjectedParse { statement: 7 }, &mut out);
        exchange.push(Pending::Forward(Expect::Bind), &mut out);
        exchange.push(Pending::Synthetic(Synthetic::ParseComplete), &mut out);
        exchange.push(Pending::Forward(Expect::Sync), &mut out);
        let mut failed = Vec::new();
        exchange.fail_to_sync(&mut failed);
        assert_eq!(failed, vec![7]);
        assert_eq!(exchange.head(), Some(Pending::Forward(Expect::Sync)));
        exchange.complete_head(&mut out);
        assert!(out.is_empty());
        assert!(exchange.is_idle());
    }

    #[test]
    fn syncs_sent_before_an_extended_copy_in_started_get_no_reply() {
        let mut exchange = Exchange::default();
        let mut out = BytesMut::new();
        exchange.push(Pending::Forward(Expect::Execute), &mut out);
        exchange.push(Pending::Forward(Expect::Sync), &mut out);
        exchange.start_copy_in();
        assert_eq!(exchange.len(), 1);
        assert!(exchange.is_copy_in_extended());
        exchange.end_copy_in();
        exchange.push(Pending::Forward(Expect::Sync), &mut out);
        assert_eq!(exchange.len(), 2);
    }

    #[test]
    fn messages_after_an_error_are_ignored_until_sync() {
        let mut exchange = Exchange::default();
        let mut out = BytesMut::new();
        exchange.push(Pending::Forward(Expect::Execute), &mut out);
        exchange.fail_to_sync(&mut Vec::new());
        exchange.push(Pending::Forward(Expect::Bind), &mut out);
        exchange.push(Pending::Synthetic(Synthetic::CloseComplete), &mut out);
        exchange.push(Pending::Forward(Expect::Sync), &mut out);
        assert_eq!(exchange.len(), 1);
        assert!(out.is_empty());
    }
}
