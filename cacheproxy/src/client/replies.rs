//! `ReplyQueue`: one slot per client request in arrival order, so replies reach the client
//! in request order whichever upstream answers first. The head slot streams straight to
//! the output; later slots buffer until they become the head.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use protocol::resp::Request;

use crate::metrics::{CommandId, Metrics};

/// Where a slot's request was last sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotTarget {
    /// Not sent yet (held, or answered locally).
    Unsent,
    /// A shared master connection.
    Master(SocketAddr),
    /// A shared replica connection.
    Replica,
    /// The client's pinned connection.
    Pinned,
}

/// One request awaiting its reply.
#[derive(Debug)]
pub struct Slot {
    /// The request (taken out while it is being dispatched; `None` for protocol errors).
    pub request: Option<Request>,
    /// When the request arrived; bounds waiting for a master.
    pub queued_at: Instant,
    /// Where it was sent.
    pub target: SlotTarget,
    /// Read-only: may be resent after a lost connection.
    pub is_read_only: bool,
    /// Resends so far.
    pub attempts: u8,
    /// `INFO`: collect the whole reply to add the `# Proxy` section.
    pub is_info: bool,
    /// A replica answered `-LOADING`/`-MASTERDOWN`: send it to the master instead.
    pub prefer_master: bool,
    /// `CLIENT REPLY OFF|SKIP`: the reply is consumed but never written.
    pub is_silenced: bool,
    /// The command's series in `/metrics`.
    command: CommandId,
    /// The first bytes of the reply were counted (error prefix, keyspace hit/miss).
    is_reply_counted: bool,
    has_streamed: bool,
    is_complete: bool,
    buffer: BytesMut,
}

/// What [`ReplyQueue::deliver`] did with the bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Written or buffered in order.
    Queued,
    /// An `INFO` reply is complete: rewrite it and pass it to [`ReplyQueue::complete`].
    Collected(BytesMut),
}

/// The client's reply slots, oldest first.
#[derive(Debug, Default)]
pub struct ReplyQueue {
    /// Sequence number of the front slot.
    base: u64,
    slots: VecDeque<Slot>,
    /// Where replies are counted (`None` in unit tests).
    metrics: Option<Arc<Metrics>>,
}

impl ReplyQueue {
    /// An empty queue that counts every completed reply in `metrics`.
    pub fn with_metrics(metrics: Arc<Metrics>) -> Self {
        ReplyQueue {
            metrics: Some(metrics),
            ..ReplyQueue::default()
        }
    }

    /// Adds a slot for a new request; returns its sequence number.
    pub fn push(&mut self, request: Option<Request>, queued_at: Instant) -> u64 {
        let command = request
            .as_ref()
            .map_or(CommandId::other(), |request| CommandId::of(request.name()));
        self.slots.push_back(Slot {
            request,
            queued_at,
            target: SlotTarget::Unsent,
            is_read_only: false,
            attempts: 0,
            is_info: false,
            prefer_master: false,
            is_silenced: false,
            command,
            is_reply_counted: false,
            has_streamed: false,
            is_complete: false,
            buffer: BytesMut::new(),
        });
        self.base + self.slots.len() as u64 - 1
    }

    /// Slots not yet flushed.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when every reply has been written to the output.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Sequence number the next pushed slot will get.
    pub fn next_seq(&self) -> u64 {
        self.base + self.slots.len() as u64
    }

    /// True when a request older than `seq` has not been fully answered (an ordering barrier).
    pub fn has_pending_before(&self, seq: u64) -> bool {
        seq > self.base
    }

    /// The slot of `seq`, if not flushed yet.
    pub fn slot(&self, seq: u64) -> Option<&Slot> {
        let index = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        self.slots.get(index)
    }

    /// The slot of `seq` for changes, if not flushed yet.
    pub fn slot_mut(&mut self, seq: u64) -> Option<&mut Slot> {
        let index = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        self.slots.get_mut(index)
    }

    /// True when part of `seq`'s reply already reached the client (it cannot be resent).
    pub fn has_streamed(&self, seq: u64) -> bool {
        seq.checked_sub(self.base)
            .and_then(|index| usize::try_from(index).ok())
            .and_then(|index| self.slots.get(index))
            .is_some_and(|slot| slot.has_streamed)
    }

    /// Forgets a partial reply buffered for `seq` before it is resent.
    pub fn clear_partial(&mut self, seq: u64) {
        if let Some(slot) = self.slot_mut(seq) {
            slot.buffer.clear();
        }
    }

    /// Adds reply bytes for `seq`, writing whatever is now in order to `out`.
    pub fn deliver(
        &mut self,
        seq: u64,
        data: &[u8],
        is_complete: bool,
        out: &mut BytesMut,
    ) -> Delivery {
        let Some(index) = seq
            .checked_sub(self.base)
            .and_then(|index| usize::try_from(index).ok())
        else {
            return Delivery::Queued;
        };
        let Some(slot) = self.slots.get_mut(index) else {
            return Delivery::Queued;
        };
        if slot.is_complete {
            return Delivery::Queued;
        }
        if slot.is_info {
            slot.buffer.extend_from_slice(data);
            if is_complete {
                slot.is_info = false;
                return Delivery::Collected(std::mem::take(&mut slot.buffer));
            }
            return Delivery::Queued;
        }
        if let Some(metrics) = &self.metrics {
            if !slot.is_reply_counted && !data.is_empty() {
                slot.is_reply_counted = true;
                metrics.reply_started(slot.command, data);
            }
            if is_complete {
                metrics.reply_completed(slot.command, slot.queued_at.elapsed());
            }
        }
        if slot.is_silenced {
            slot.is_complete |= is_complete;
        } else if index == 0 {
            out.extend_from_slice(data);
            slot.has_streamed |= !is_complete;
        } else {
            slot.buffer.extend_from_slice(data);
        }
        if is_complete {
            slot.is_complete = true;
            self.flush(out);
        }
        Delivery::Queued
    }

    /// Completes `seq` with a whole reply (local answers, errors, rewritten `INFO`).
    pub fn complete(&mut self, seq: u64, reply: &[u8], out: &mut BytesMut) {
        if let Some(slot) = self.slot_mut(seq) {
            slot.is_info = false;
        }
        self.deliver(seq, reply, true, out);
    }

    /// Moves completed slots at the front to `out`, and starts streaming the new head.
    fn flush(&mut self, out: &mut BytesMut) {
        while let Some(front) = self.slots.front_mut() {
            if front.is_complete {
                out.extend_from_slice(&front.buffer);
                self.slots.pop_front();
                self.base += 1;
                continue;
            }
            if !front.buffer.is_empty() && !front.is_info {
                out.extend_from_slice(&front.buffer);
                front.buffer.clear();
                front.has_streamed = true;
            }
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_leave_in_request_order() {
        let mut queue = ReplyQueue::default();
        let now = Instant::now();
        let first = queue.push(None, now);
        let second = queue.push(None, now);
        let third = queue.push(None, now);
        let mut out = BytesMut::new();
        queue.deliver(third, b":3\r\n", true, &mut out);
        queue.deliver(second, b"$2\r\n", false, &mut out);
        assert!(out.is_empty());
        assert!(queue.has_pending_before(second));
        queue.deliver(first, b":1\r\n", true, &mut out);
        assert_eq!(&out[..], b":1\r\n$2\r\n");
        assert!(queue.has_streamed(second));
        queue.deliver(second, b"hi\r\n", true, &mut out);
        assert_eq!(&out[..], b":1\r\n$2\r\nhi\r\n:3\r\n");
        assert!(queue.is_empty());
        assert_eq!(queue.next_seq(), 3);
    }

    #[test]
    fn info_replies_are_collected_for_rewriting() {
        let mut queue = ReplyQueue::default();
        let seq = queue.push(None, Instant::now());
        queue.slot_mut(seq).unwrap().is_info = true;
        let mut out = BytesMut::new();
        assert_eq!(
            queue.deliver(seq, b"$3\r\n", false, &mut out),
            Delivery::Queued
        );
        let Delivery::Collected(whole) = queue.deliver(seq, b"abc\r\n", true, &mut out) else {
            panic!("collected");
        };
        assert_eq!(&whole[..], b"$3\r\nabc\r\n");
        assert!(out.is_empty());
        queue.complete(seq, b"$4\r\nabcd\r\n", &mut out);
        assert_eq!(&out[..], b"$4\r\nabcd\r\n");
    }

    #[test]
    fn silenced_replies_keep_their_place_but_are_not_written() {
        let mut queue = ReplyQueue::default();
        let now = Instant::now();
        let first = queue.push(None, now);
        let silenced = queue.push(None, now);
        let third = queue.push(None, now);
        queue.slot_mut(silenced).unwrap().is_silenced = true;
        let mut out = BytesMut::new();
        queue.deliver(third, b":3\r\n", true, &mut out);
        queue.deliver(silenced, b"$2\r\n", false, &mut out);
        queue.deliver(silenced, b"hi\r\n", true, &mut out);
        assert!(out.is_empty());
        queue.deliver(first, b":1\r\n", true, &mut out);
        assert_eq!(&out[..], b":1\r\n:3\r\n");
        assert!(queue.is_empty());
    }

    #[test]
    fn stale_and_duplicate_deliveries_are_ignored() {
        let mut queue = ReplyQueue::default();
        let seq = queue.push(None, Instant::now());
        let mut out = BytesMut::new();
        queue.deliver(seq, b"+OK\r\n", true, &mut out);
        queue.deliver(seq, b"+AGAIN\r\n", true, &mut out);
        queue.deliver(99, b"+NO\r\n", true, &mut out);
        assert_eq!(&out[..], b"+OK\r\n");
    }
}
