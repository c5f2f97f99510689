//! One shared upstream connection: a task that writes requests from many clients pipelined
//! (batched into few writes) and hands each reply, found with the resumable scanner, back
//! to its client through a FIFO of in-flight requests. Large replies stream in chunks.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use protocol::resp::{RespScanner, RespVersion, Scan, ValueKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{ReplySender, UpstreamHandle, UpstreamReply, UpstreamRequest, handshake};
use crate::error::UpstreamFailure;
use crate::sentinel::Nudge;
use crate::shared::Shared;
use crate::stats::Stats;
use crate::topology::MasterState;

/// Reply bytes of one value forwarded before the value is complete.
pub const STREAM_CHUNK: usize = 64 * 1024;
/// Stop taking new requests while this much is waiting to be written.
const OUT_HIGH_WATER: usize = 1024 * 1024;
/// Stop taking new requests while this many await replies.
const MAX_IN_FLIGHT: usize = 16 * 1024;
/// Requests taken from the channel per wake-up.
const BATCH: usize = 256;
/// How often timeouts of in-flight and queued requests are checked.
const TICK: Duration = Duration::from_millis(100);
/// While a failover holds traffic, a master connection whose oldest request waited this long
/// is treated as lost: a stalled (e.g. SIGSTOPped) master would otherwise answer after the
/// replica's promotion, acknowledging writes that its demotion then discards.
pub const STALLED_DURING_FAILOVER: Duration = Duration::from_millis(250);

/// Which kind of server the connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamRole {
    /// The master: losing it means re-resolving the master.
    Master,
    /// A replica.
    Replica,
}

/// What one connection task is for.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionSpec {
    /// Server address.
    pub addr: SocketAddr,
    /// Master or replica.
    pub role: UpstreamRole,
    /// Protocol spoken upstream (clients of that protocol use it).
    pub protocol: RespVersion,
    /// Connect only when the first request arrives.
    pub is_lazy: bool,
}

/// A request written upstream, waiting for its reply.
struct InFlight {
    seq: u64,
    reply_to: ReplySender,
    sent_at: Instant,
}

/// Why `serve` returned.
enum Ended {
    /// Retired by the manager (topology epoch changed) or shutdown.
    Cancelled,
    /// Every sender is gone and nothing is in flight.
    Unused,
    /// The connection broke; reconnect after re-resolution.
    Lost(String),
}

/// Starts a connection task; it ends when `cancel` fires or every handle is dropped.
pub fn spawn(
    spec: ConnectionSpec,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) -> UpstreamHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = ConnectionTask {
        spec,
        shared,
        cancel,
        rx,
        queued: VecDeque::new(),
    };
    tokio::spawn(task.run());
    UpstreamHandle { tx }
}

struct ConnectionTask {
    spec: ConnectionSpec,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    rx: mpsc::UnboundedReceiver<UpstreamRequest>,
    /// Requests taken from the channel while disconnected, written on reconnect.
    queued: VecDeque<UpstreamRequest>,
}

impl ConnectionTask {
    async fn run(mut self) {
        if self.spec.is_lazy {
            tokio::select! {
                request = self.rx.recv() => match request {
                    Some(request) => self.queued.push_back(request),
                    None => return,
                },
                () = self.cancel.cancelled() => return,
            }
        }
        let mut backoff = Duration::from_millis(20);
        loop {
            let outcome = match handshake(
                self.spec.addr,
                self.spec.protocol,
                &self.shared.config.load(),
            )
            .await
            {
                Ok((stream, buf)) => {
                    backoff = Duration::from_millis(20);
                    Stats::add(&self.shared.stats.upstream_connections, 1);
                    let ended = self.serve(stream, buf).await;
                    Stats::add(&self.shared.stats.upstream_connections, -1);
                    ended
                }
                Err(error) => Ended::Lost(format!("connect: {error}")),
            };
            match outcome {
                Ended::Cancelled | Ended::Unused => return,
                Ended::Lost(reason) => {
                    debug!(upstream = %self.spec.addr, %reason, "upstream connection lost");
                    self.shared
                        .resolver
                        .nudge(Nudge::UpstreamLost(self.spec.addr));
                    if !self.wait_for_resolution(&reason, backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// Waits until the watcher re-resolved after the loss (the master must be confirmed
    /// again before reconnecting), expiring queued requests meanwhile. False when retired.
    async fn wait_for_resolution(&mut self, reason: &str, backoff: Duration) -> bool {
        let mut topology = self.shared.topology.clone();
        let lost_generation = topology.borrow_and_update().generation;
        let earliest = tokio::time::Instant::now() + backoff;
        let mut ticker = tokio::time::interval(TICK);
        let mut is_closed = false;
        loop {
            let is_resolved = {
                let current = topology.borrow();
                current.generation > lost_generation
                    && match self.spec.role {
                        UpstreamRole::Master => {
                            current.master == MasterState::Ready(self.spec.addr)
                        }
                        UpstreamRole::Replica => current.replicas.contains(&self.spec.addr),
                    }
            };
            if is_resolved && tokio::time::Instant::now() >= earliest {
                return true;
            }
            tokio::select! {
                () = self.cancel.cancelled() => {
                    self.retire();
                    return false;
                }
                changed = topology.changed() => {
                    if changed.is_err() {
                        self.retire();
                        return false;
                    }
                }
                request = self.rx.recv(), if !is_closed => match request {
                    Some(request) => self.queued.push_back(request),
                    None if self.queued.is_empty() => return false,
                    None => is_closed = true,
                },
                _ = ticker.tick() => {
                    self.expire_queued(reason);
                    if is_closed && self.queued.is_empty() {
                        return false;
                    }
                }
            }
        }
    }

    /// Fails queued requests that waited longer than `failover_timeout`.
    fn expire_queued(&mut self, reason: &str) {
        let limit = self.shared.config.load().failover_timeout;
        while let Some(front) = self.queued.front() {
            if front.queued_at.elapsed() < limit {
                break;
            }
            if let Some(request) = self.queued.pop_front() {
                let failure = UpstreamFailure::Unreachable(format!("{}: {reason}", self.spec.addr));
                let _ = request.reply_to.send(UpstreamReply::Failed {
                    seq: request.seq,
                    failure,
                });
            }
        }
    }

    /// Hands every unsent request back as `NotSent` and refuses new ones.
    fn retire(&mut self) {
        self.rx.close();
        while let Ok(request) = self.rx.try_recv() {
            self.queued.push_back(request);
        }
        for request in self.queued.drain(..) {
            let _ = request.reply_to.send(UpstreamReply::Failed {
                seq: request.seq,
                failure: UpstreamFailure::NotSent,
            });
        }
    }

    async fn serve(&mut self, mut stream: TcpStream, mut inbuf: BytesMut) -> Ended {
        let (mut reader, mut writer) = stream.split();
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let mut out = BytesMut::with_capacity(16 * 1024);
        let mut replies = ReplyScanner::default();
        let mut batch: Vec<UpstreamRequest> = Vec::with_capacity(BATCH);
        let mut is_unused = false;
        let now = Instant::now();
        for request in self.queued.drain(..) {
            push_request(&mut out, &mut in_flight, request, now);
        }
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let can_take =
                !is_unused && out.len() < OUT_HIGH_WATER && in_flight.len() < MAX_IN_FLIGHT;
            if is_unused && in_flight.is_empty() && out.is_empty() {
                return Ended::Unused;
            }
            inbuf.reserve(16 * 1024);
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => {
                    fail_all(&mut in_flight, &UpstreamFailure::Lost);
                    self.retire();
                    return Ended::Cancelled;
                }
                read = reader.read_buf(&mut inbuf) => {
                    let outcome = match read {
                        Ok(0) => Err("closed by the server".to_owned()),
                        Ok(_) => replies.dispatch(&mut inbuf, &mut in_flight),
                        Err(error) => Err(format!("read: {error}")),
                    };
                    if let Err(reason) = outcome {
                        fail_all(&mut in_flight, &UpstreamFailure::Lost);
                        return Ended::Lost(reason);
                    }
                }
                written = writer.write_buf(&mut out), if !out.is_empty() => {
                    if let Err(error) = written {
                        fail_all(&mut in_flight, &UpstreamFailure::Lost);
                        return Ended::Lost(format!("write: {error}"));
                    }
                }
                count = self.rx.recv_many(&mut batch, BATCH), if can_take => {
                    if count == 0 {
                        is_unused = true;
                    }
                    let now = Instant::now();
                    for request in batch.drain(..) {
                        push_request(&mut out, &mut in_flight, request, now);
                    }
                }
                _ = ticker.tick(), if !in_flight.is_empty() => {
                    let limit = self.shared.config.load().upstream_timeout;
                    let age = in_flight.front().map(|oldest| oldest.sent_at.elapsed()).unwrap_or_default();
                    if !limit.is_zero() && age > limit {
                        fail_all(&mut in_flight, &UpstreamFailure::Timeout(limit));
                        return Ended::Lost(format!("no reply within {limit:?}"));
                    }
                    if age > STALLED_DURING_FAILOVER && self.is_failover_holding() {
                        fail_all(&mut in_flight, &UpstreamFailure::Lost);
                        return Ended::Lost("the master stalled while a failover is in progress".to_owned());
                    }
                }
            }
        }
    }
}

impl ConnectionTask {
    /// True when this is a master connection and the watcher holds traffic (failover).
    fn is_failover_holding(&self) -> bool {
        self.spec.role == UpstreamRole::Master
            && matches!(
                self.shared.topology.borrow().master,
                MasterState::Unavailable { .. }
            )
    }
}

fn push_request(
    out: &mut BytesMut,
    in_flight: &mut VecDeque<InFlight>,
    request: UpstreamRequest,
    now: Instant,
) {
    out.extend_from_slice(request.bytes.as_ref());
    in_flight.push_back(InFlight {
        seq: request.seq,
        reply_to: request.reply_to,
        sent_at: now,
    });
}

fn fail_all(in_flight: &mut VecDeque<InFlight>, failure: &UpstreamFailure) {
    for request in in_flight.drain(..) {
        let _ = request.reply_to.send(UpstreamReply::Failed {
            seq: request.seq,
            failure: failure.clone(),
        });
    }
}

/// Splits the read buffer into replies for the in-flight FIFO.
#[derive(Default)]
struct ReplyScanner {
    scanner: RespScanner,
    /// Bytes at the front of the buffer already scanned as part of the current value.
    scanned: usize,
}

impl ReplyScanner {
    fn dispatch(
        &mut self,
        inbuf: &mut BytesMut,
        in_flight: &mut VecDeque<InFlight>,
    ) -> Result<(), String> {
        loop {
            let unscanned = inbuf.get(self.scanned..).unwrap_or_default();
            if unscanned.is_empty() {
                return Ok(());
            }
            let scan = self
                .scanner
                .scan(unscanned)
                .map_err(|error| format!("protocol error from the server: {error}"))?;
            let is_push = self.scanner.kind() == Some(ValueKind::Push);
            match scan {
                Scan::Complete(len) => {
                    let total = self.scanned + len;
                    self.scanned = 0;
                    let bytes = inbuf.split_to(total).freeze();
                    if is_push {
                        // Out-of-band data on a shared connection belongs to nobody.
                        continue;
                    }
                    let Some(request) = in_flight.pop_front() else {
                        return Err("a reply arrived with no request in flight".to_owned());
                    };
                    let _ = request.reply_to.send(UpstreamReply::Data {
                        seq: request.seq,
                        bytes,
                        is_complete: true,
                    });
                }
                Scan::Partial(len) => {
                    self.scanned += len;
                    if self.scanned >= STREAM_CHUNK {
                        let bytes = inbuf.split_to(self.scanned).freeze();
                        self.scanned = 0;
                        if let (Some(request), false) = (in_flight.front(), is_push) {
                            let _ = request.reply_to.send(UpstreamReply::Data {
                                seq: request.seq,
                                bytes,
                                is_complete: false,
                            });
                        }
                    }
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use tokio::sync::mpsc;

    use super::*;

    fn in_flight(seqs: &[u64]) -> (VecDeque<InFlight>, mpsc::UnboundedReceiver<UpstreamReply>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queue = seqs
            .iter()
            .map(|seq| InFlight {
                seq: *seq,
                reply_to: tx.clone(),
                sent_at: Instant::now(),
            })
            .collect();
        (queue, rx)
    }

    #[test]
    fn replies_go_to_their_requests_in_order() {
        let (mut queue, mut rx) = in_flight(&[7, 8, 9]);
        let mut scanner = ReplyScanner::default();
        let mut inbuf = BytesMut::from(&b"+OK\r\n$3\r\nabc\r\n:4"[..]);
        scanner.dispatch(&mut inbuf, &mut queue).unwrap();
        inbuf.extend_from_slice(b"2\r\n");
        scanner.dispatch(&mut inbuf, &mut queue).unwrap();
        let mut got = Vec::new();
        while let Ok(UpstreamReply::Data {
            seq,
            bytes,
            is_complete,
        }) = rx.try_recv()
        {
            got.push((seq, bytes, is_complete));
        }
        assert_eq!(
            got,
            vec![
                (7, Bytes::from_static(b"+OK\r\n"), true),
                (8, Bytes::from_static(b"$3\r\nabc\r\n"), true),
                (9, Bytes::from_static(b":42\r\n"), true),
            ]
        );
        assert!(queue.is_empty());
    }

    #[test]
    fn large_replies_stream_in_chunks() {
        let (mut queue, mut rx) = in_flight(&[1]);
        let mut scanner = ReplyScanner::default();
        let payload = vec![b'x'; 3 * STREAM_CHUNK];
        let mut wire = format!("${}\r\n", payload.len()).into_bytes();
        wire.extend_from_slice(&payload);
        wire.extend_from_slice(b"\r\n");
        let mut inbuf = BytesMut::new();
        let mut total = 0;
        let mut chunks = 0;
        for piece in wire.chunks(STREAM_CHUNK / 2 + 3) {
            inbuf.extend_from_slice(piece);
            scanner.dispatch(&mut inbuf, &mut queue).unwrap();
            while let Ok(UpstreamReply::Data { bytes, .. }) = rx.try_recv() {
                total += bytes.len();
                chunks += 1;
            }
        }
        assert_eq!(total, wire.len());
        assert!(chunks > 2, "streamed in {chunks} chunks");
        assert!(queue.is_empty());
    }

    #[test]
    fn unsolicited_replies_and_garbage_are_errors() {
        let (mut queue, _rx) = in_flight(&[]);
        let mut scanner = ReplyScanner::default();
        let mut inbuf = BytesMut::from(&b"+OK\r\n"[..]);
        assert!(scanner.dispatch(&mut inbuf, &mut queue).is_err());
        let (mut queue, _rx) = in_flight(&[1]);
        let mut scanner = ReplyScanner::default();
        let mut inbuf = BytesMut::from(&b"?what\r\n"[..]);
        assert!(scanner.dispatch(&mut inbuf, &mut queue).is_err());
        // RESP3 pushes are skipped, not matched to a request.
        let (mut queue, mut rx) = in_flight(&[1]);
        let mut scanner = ReplyScanner::default();
        let mut inbuf = BytesMut::from(&b">2\r\n$1\r\na\r\n$1\r\nb\r\n:1\r\n"[..]);
        scanner.dispatch(&mut inbuf, &mut queue).unwrap();
        assert!(matches!(
            rx.try_recv(),
            Ok(UpstreamReply::Data { seq: 1, .. })
        ));
    }
}
