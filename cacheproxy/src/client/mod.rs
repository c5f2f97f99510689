//! `ClientConnection`: one task per downstream client. Its `run` loop selects over the
//! client socket, replies from shared upstream connections, its pinned connection, route
//! changes and timers; each branch calls a named step. Replies leave in request order.

mod client_command;
pub(crate) mod connection_log;
mod dispatch;
mod pinned;
mod pinned_events;
mod pinned_report;
mod replies;
mod subscriptions;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Read buffer of an idle client: most commands fit; a longer one grows it.
const IDLE_READ_BUFFER: usize = 512;

use bytes::BytesMut;
use protocol::ProtocolError;
use protocol::resp::{RequestDecoder, RespLimits, protocol_error_reason, reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::clients::{ClientControl, Registration};
use crate::error::UpstreamFailure;
use crate::local::{Session, append_info_section, proxy_section};
use crate::metrics::ErrorKind;
use crate::pinning::ClosingSubscriber;
use crate::sentinel::Nudge;
use crate::shared::Shared;
use crate::stats::Stats;
use crate::upstream::{MasterRoute, ReplySender, Routes, UpstreamReply};
use connection_log::{CloseReason, PeerAddr};
use pinned::{PinnedOutput, PinnedSession};
use replies::{Delivery, ReplyQueue, SlotTarget};
use subscriptions::Subscriptions;

/// Stop reading from the client while this much output waits.
const OUT_HIGH_WATER: usize = 4 * 1024 * 1024;
/// Sends of one request before the client gives up (resends after lost connections,
/// `-READONLY`, `-LOADING`).
const MAX_ATTEMPTS: u8 = 3;
/// The reply to commands whose connection died before answering.
const LOST_IN_FAILOVER: &str =
    "ERR connection to master lost during failover; the command may or may not have run";

/// Where the client is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading and answering.
    Running,
    /// No more reading; close once the reply to `after` is written (QUIT, protocol error, EOF).
    Closing { after: u64 },
    /// Shutdown: no more reading; close when everything in flight is answered or at `deadline`.
    Draining { deadline: Instant },
    /// Close now.
    Abort,
}

/// One client connection and everything it owns.
pub struct ClientConnection {
    shared: Arc<Shared>,
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    read_buf: BytesMut,
    decoder: RequestDecoder,
    is_decoder_strict: bool,
    out: BytesMut,
    replies: ReplyQueue,
    /// Requests not yet dispatched, in sequence order.
    held: VecDeque<u64>,
    events_tx: ReplySender,
    events_rx: mpsc::UnboundedReceiver<UpstreamReply>,
    routes_rx: watch::Receiver<Arc<Routes>>,
    routes: Arc<Routes>,
    is_routes_closed: bool,
    session: Session,
    pinned: Option<PinnedSession>,
    pinned_outputs: Vec<PinnedOutput>,
    /// Subscriptions lost with a pinned connection, to restore on the next one.
    resubscribe: Option<Subscriptions>,
    phase: Phase,
    /// Why the connection is ending (the first reason wins), for `log_disconnections`.
    close_reason: Option<CloseReason>,
    /// The client's address, for the connection log lines.
    peer: PeerAddr,
    shutdown: CancellationToken,
    /// The client's entry in `Shared::clients` (removed when dropped).
    registration: Registration,
    /// Requests from other clients' tasks (`CLIENT KILL`, `CLIENT UNBLOCK`).
    control_rx: mpsc::UnboundedReceiver<ClientControl>,
    /// Control requests naming the pinned connection's server-side id: it is not released
    /// while any is in flight.
    controls_in_flight: usize,
    /// The last request `CLIENT REPLY`'s mode was applied to.
    reply_mode_applied_to: Option<u64>,
    /// Set when a subscribed client hangs up: counted until it is unsubscribed upstream.
    closing_subscriber: Option<ClosingSubscriber>,
    /// Counted in `Shared::subscribed_clients`.
    is_counted_subscriber: bool,
    /// Connection state may have changed since the registry was last updated.
    is_registry_stale: bool,
    /// The held `PUBLISH` waits for closing subscribers (wake up again in 1 ms).
    is_publish_waiting: bool,
}

/// Serves one accepted client until it leaves or the proxy shuts down.
pub async fn serve(socket: TcpStream, shared: Arc<Shared>, shutdown: CancellationToken) {
    let _ = socket.set_nodelay(true);
    ClientConnection::new(socket, shared, shutdown).run().await;
}

/// Decoder limits: Redis' stricter ones before authentication.
fn decoder_limits(is_strict: bool) -> RespLimits {
    let limits = RespLimits::default();
    if is_strict {
        RespLimits {
            max_multibulk_len: 10,
            max_bulk_len: 16 * 1024,
            ..limits
        }
    } else {
        limits
    }
}

impl ClientConnection {
    fn new(socket: TcpStream, shared: Arc<Shared>, shutdown: CancellationToken) -> Self {
        let id = shared.next_client_id.fetch_add(1, Ordering::Relaxed);
        let peer = PeerAddr(socket.peer_addr().ok());
        let local = socket.local_addr().ok();
        let config = shared.config.load();
        connection_log::log_connected(&config, peer, id);
        let session = Session::new(id, &config);
        drop(config);
        let (reader, writer) = socket.into_split();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (registration, control_rx) =
            shared
                .clients
                .register(id, peer.0, local, events_tx.clone());
        let mut routes_rx = shared.routes.clone();
        let routes = routes_rx.borrow_and_update().clone();
        let replies = ReplyQueue::with_metrics(Arc::clone(&shared.metrics));
        Stats::add(&shared.stats.clients, 1);
        Stats::bump(&shared.stats.clients_total);
        let is_decoder_strict = !session.is_authenticated;
        ClientConnection {
            shared,
            reader,
            writer,
            read_buf: BytesMut::new(),
            decoder: RequestDecoder::new(decoder_limits(is_decoder_strict)),
            is_decoder_strict,
            out: BytesMut::new(),
            replies,
            held: VecDeque::new(),
            events_tx,
            events_rx,
            routes_rx,
            routes,
            is_routes_closed: false,
            session,
            pinned: None,
            pinned_outputs: Vec::new(),
            resubscribe: None,
            phase: Phase::Running,
            close_reason: None,
            peer,
            shutdown,
            registration,
            control_rx,
            controls_in_flight: 0,
            reply_mode_applied_to: None,
            closing_subscriber: None,
            is_counted_subscriber: false,
            is_registry_stale: true,
            is_publish_waiting: false,
        }
    }

    async fn run(mut self) {
        let mut events = Vec::new();
        loop {
            if self.is_done() {
                break;
            }
            let config = self.shared.config.load();
            let can_read = self.phase == Phase::Running
                && self.replies.len() < config.max_pipeline
                && self.out.len() < OUT_HIGH_WATER;
            drop(config);
            let wake_at = self.next_wakeup();
            let is_writing = !self.out.is_empty();
            if can_read {
                self.reserve_read_buffer();
            }
            tokio::select! {
                biased;
                () = self.shutdown.cancelled(), if self.phase == Phase::Running => self.begin_drain(),
                _ = self.events_rx.recv_many(&mut events, 64) => {
                    for event in events.drain(..) {
                        self.on_upstream_reply(event);
                    }
                }
                read = read_pinned(&mut self.pinned) => self.on_pinned_read(read),
                written = self.writer.write_buf(&mut self.out), if is_writing => {
                    if written.is_err() {
                        self.close(Phase::Abort, CloseReason::WriteFailed);
                    }
                }
                read = self.reader.read_buf(&mut self.read_buf), if can_read => self.on_client_read(read),
                changed = self.routes_rx.changed(), if !self.is_routes_closed => match changed {
                    Ok(()) => self.on_routes_changed(),
                    Err(_) => self.is_routes_closed = true,
                },
                () = sleep_until(wake_at) => {}
            }
            self.check_pinned_stall();
            self.pump().await;
        }
        self.finish().await;
    }

    /// An idle client holds almost no buffer memory, so thousands of idle connections
    /// stay cheap; a busy one reads in 16 KiB chunks.
    fn reserve_read_buffer(&mut self) {
        let is_idle = self.read_buf.is_empty() && self.out.is_empty() && self.replies.is_empty();
        if is_idle {
            if self.read_buf.capacity() > IDLE_READ_BUFFER {
                self.read_buf = BytesMut::new();
            }
            if self.out.capacity() > 0 {
                self.out = BytesMut::new();
            }
            self.read_buf.reserve(IDLE_READ_BUFFER);
        } else if self.read_buf.capacity() - self.read_buf.len() < 4 * 1024 {
            self.read_buf.reserve(16 * 1024);
        }
    }

    fn is_done(&self) -> bool {
        match self.phase {
            Phase::Running => false,
            Phase::Abort => true,
            Phase::Closing { after } => {
                !self.replies.has_pending_before(after + 1) && self.out.is_empty()
            }
            Phase::Draining { deadline } => {
                (self.replies.is_empty() && self.out.is_empty()) || Instant::now() >= deadline
            }
        }
    }

    /// Moves to a closing `phase`, remembering the first reason for the log.
    fn close(&mut self, phase: Phase, reason: CloseReason) {
        self.phase = phase;
        self.close_reason.get_or_insert(reason);
    }

    fn begin_drain(&mut self) {
        let deadline = Instant::now() + self.shared.config.load().shutdown_timeout;
        self.close(Phase::Draining { deadline }, CloseReason::Shutdown);
        // Long-lived pinned state (subscriptions, blocked calls) never drains by itself.
        if self.pinned.is_some() || self.resubscribe.is_some() {
            self.close(Phase::Abort, CloseReason::Shutdown);
        }
    }

    /// When the loop must wake up without I/O: a held request's failover deadline, a retry
    /// of lost subscriptions, or the drain deadline.
    fn next_wakeup(&mut self) -> Option<Instant> {
        let now = Instant::now();
        let mut wake: Option<Instant> = None;
        let mut consider = |at: Instant| wake = Some(wake.map_or(at, |current| current.min(at)));
        if let Some(&seq) = self.held.front()
            && let Some(slot) = self.replies.slot_mut(seq)
        {
            let deadline = slot.queued_at + self.shared.config.load().failover_timeout;
            consider(if deadline > now {
                deadline
            } else {
                now + Duration::from_millis(100)
            });
        }
        if self.resubscribe.is_some() && self.pinned.is_none() {
            consider(now + Duration::from_millis(200));
        }
        if self.is_pinned_stalled_check_due() {
            consider(now + Duration::from_millis(100));
        }
        if let Phase::Draining { deadline } = self.phase {
            consider(deadline);
        }
        if self.is_publish_waiting && !self.held.is_empty() {
            // A PUBLISH waits for a closed subscriber's RESET.
            consider(now + Duration::from_millis(1));
        }
        wake
    }

    fn on_client_read(&mut self, read: std::io::Result<usize>) {
        match read {
            Ok(0) | Err(_) => {
                let reason = if read.is_ok() {
                    CloseReason::ClientClosed
                } else {
                    CloseReason::ReadFailed
                };
                if self
                    .pinned
                    .as_ref()
                    .is_some_and(PinnedSession::is_subscribed)
                {
                    // Counted from now: a PUBLISH must not reach this subscriber any more.
                    self.closing_subscriber
                        .get_or_insert_with(|| ClosingSubscriber::new(&self.shared));
                }
                // Like Redis, a client that hung up gets nothing more; pending shared
                // replies are still awaited so their upstream slots drain in order.
                let phase = if self.pinned.is_some() || self.replies.is_empty() {
                    Phase::Abort
                } else {
                    Phase::Closing {
                        after: self.replies.next_seq().saturating_sub(1),
                    }
                };
                self.close(phase, reason);
            }
            Ok(_) => self.decode_requests(),
        }
    }

    /// Splits complete requests off the read buffer into held slots. Before
    /// authentication only one request is decoded at a time, since AUTH changes the limits.
    fn decode_requests(&mut self) {
        while self.phase == Phase::Running {
            if self.is_decoder_strict && !self.held.is_empty() {
                return;
            }
            match self.decoder.decode(&mut self.read_buf) {
                Ok(Some(request)) => {
                    if request.is_command("POST") || request.is_command("HOST:") {
                        // Redis' cross-protocol scripting defence: close without a reply.
                        self.close(Phase::Abort, CloseReason::CrossProtocol);
                        return;
                    }
                    Stats::bump(&self.shared.stats.commands);
                    let seq = self.replies.push(Some(request), Instant::now());
                    self.held.push_back(seq);
                }
                Ok(None) => return,
                Err(error) => {
                    self.shared.metrics.error(ErrorKind::Protocol);
                    let reason = self.protocol_error_text(&error);
                    let seq = self.replies.push(None, Instant::now());
                    let mut line = BytesMut::new();
                    reply::error(&mut line, &format!("ERR Protocol error: {reason}"));
                    self.replies.complete(seq, &line, &mut self.out);
                    self.close(Phase::Closing { after: seq }, CloseReason::ProtocolError);
                    return;
                }
            }
        }
    }

    fn protocol_error_text(&self, error: &ProtocolError) -> &'static str {
        let reason = protocol_error_reason(error);
        match (self.is_decoder_strict, error) {
            (true, ProtocolError::TooLarge { .. }) if reason == "invalid multibulk length" => {
                "unauthenticated multibulk length"
            }
            (true, ProtocolError::TooLarge { .. }) if reason == "invalid bulk length" => {
                "unauthenticated bulk length"
            }
            _ => reason,
        }
    }

    /// Switches decoder limits after authentication changed. A fresh decoder re-reads a
    /// partial request from the buffer start, which still holds all of it.
    fn refresh_decoder_limits(&mut self) {
        let is_strict = !self.session.is_authenticated;
        if is_strict != self.is_decoder_strict {
            self.decoder = RequestDecoder::new(decoder_limits(is_strict));
            self.is_decoder_strict = is_strict;
        }
    }

    fn on_upstream_reply(&mut self, event: UpstreamReply) {
        match event {
            UpstreamReply::Data {
                seq,
                bytes,
                is_complete,
            } => self.on_shared_data(seq, &bytes, is_complete),
            UpstreamReply::Failed { seq, failure } => self.on_shared_failure(seq, failure),
            UpstreamReply::Control => {
                while let Ok(message) = self.control_rx.try_recv() {
                    self.on_control(message);
                }
            }
            UpstreamReply::ControlDone => {
                self.controls_in_flight = self.controls_in_flight.saturating_sub(1);
            }
        }
    }

    fn on_shared_data(&mut self, seq: u64, bytes: &[u8], is_complete: bool) {
        let is_whole_error =
            is_complete && bytes.first() == Some(&b'-') && !self.replies.has_streamed(seq);
        if is_whole_error && let Some(slot) = self.replies.slot_mut(seq) {
            let can_retry = slot.attempts < MAX_ATTEMPTS;
            match slot.target {
                SlotTarget::Master(addr) if bytes.starts_with(b"-READONLY") => {
                    // The "master" is a replica now: the write did not run; find the master.
                    self.shared.resolver.nudge(Nudge::Readonly(addr));
                    if can_retry {
                        return self.requeue(seq);
                    }
                }
                SlotTarget::Replica
                    if bytes.starts_with(b"-LOADING") || bytes.starts_with(b"-MASTERDOWN") =>
                {
                    slot.prefer_master = true;
                    if can_retry {
                        return self.requeue(seq);
                    }
                }
                _ => {}
            }
        }
        if let Delivery::Collected(whole) =
            self.replies.deliver(seq, bytes, is_complete, &mut self.out)
        {
            let rewritten = append_info_section(&whole, &proxy_section(&self.shared));
            self.replies.complete(seq, &rewritten, &mut self.out);
        }
    }

    fn on_shared_failure(&mut self, seq: u64, failure: UpstreamFailure) {
        if self.replies.has_streamed(seq) {
            // Part of the reply is already out: the stream cannot be repaired.
            self.close(Phase::Abort, CloseReason::ReplyInterrupted);
            return;
        }
        let Some(slot) = self.replies.slot_mut(seq) else {
            return;
        };
        let may_resend = failure.is_retryable()
            || (slot.is_read_only
                && matches!(failure, UpstreamFailure::Lost | UpstreamFailure::Timeout(_)));
        let to_replica = slot.target == SlotTarget::Replica;
        if may_resend && slot.attempts < MAX_ATTEMPTS {
            if !failure.is_retryable() {
                Stats::bump(&self.shared.stats.retries);
            }
            return self.requeue(seq);
        }
        Stats::bump(&self.shared.stats.upstream_errors);
        self.shared.metrics.error(ErrorKind::of_failure(&failure));
        let server = if to_replica { "replica" } else { "master" };
        let text = match failure {
            UpstreamFailure::NotSent => {
                "ERR the command could not be sent to the master".to_owned()
            }
            UpstreamFailure::Lost if to_replica => {
                "ERR connection to replica lost; the command may or may not have run".to_owned()
            }
            UpstreamFailure::Lost => LOST_IN_FAILOVER.to_owned(),
            UpstreamFailure::Timeout(limit) => format!(
                "ERR upstream timeout: no reply from the {server} within {limit:?}; the command may or may not have run"
            ),
            UpstreamFailure::Unreachable(reason) => format!("ERR no master reachable: {reason}"),
        };
        self.reply_error(seq, &text);
    }

    /// Puts `seq` back among the held requests, in order, to be sent again.
    fn requeue(&mut self, seq: u64) {
        if let Some(slot) = self.replies.slot_mut(seq) {
            slot.attempts += 1;
            slot.target = SlotTarget::Unsent;
        }
        self.replies.clear_partial(seq);
        let position = self.held.partition_point(|&held| held < seq);
        self.held.insert(position, seq);
    }

    fn reply_error(&mut self, seq: u64, line: &str) {
        let mut encoded = BytesMut::new();
        reply::error(&mut encoded, line);
        self.replies.complete(seq, &encoded, &mut self.out);
    }

    fn on_routes_changed(&mut self) {
        self.routes = self.routes_rx.borrow_and_update().clone();
        let is_stale = self
            .pinned
            .as_ref()
            .is_some_and(|session| session.epoch() != self.routes.epoch);
        if is_stale && matches!(self.routes.master, MasterRoute::Ready(_)) {
            self.on_pinned_lost();
        }
    }

    async fn finish(mut self) {
        if let Some(session) = self.pinned.take() {
            if self.controls_in_flight > 0 {
                // Its server-side id is in a CLIENT UNBLOCK in flight: close it, never reuse it.
                drop(session.into_lost());
            } else {
                let closing = self.closing_subscriber.take().or_else(|| {
                    session
                        .is_subscribed()
                        .then(|| ClosingSubscriber::new(&self.shared))
                });
                session.release_closing(self.session.db, closing);
            }
        }
        if self.phase != Phase::Abort && !self.out.is_empty() {
            let _ = tokio::time::timeout(Duration::from_secs(1), self.writer.write_all(&self.out))
                .await;
        }
        self.count_as_subscriber(false);
        let _ = self.writer.shutdown().await;
        Stats::add(&self.shared.stats.clients, -1);
        // A loop that ended without a recorded reason was draining for shutdown.
        let reason = self.close_reason.unwrap_or(CloseReason::Shutdown);
        let config = self.shared.config.load();
        connection_log::log_closed(&config, self.peer, Some(self.session.id), reason);
    }
}

async fn read_pinned(pinned: &mut Option<PinnedSession>) -> std::io::Result<usize> {
    match pinned {
        Some(session) => session.read().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}
