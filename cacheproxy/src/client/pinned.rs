//! `PinnedSession`: a client's private upstream connection while connection state lives
//! (transaction, blocking call, subscriptions, SELECT n, tracking, MONITOR). Tracks that
//! state from what is sent and answered, tells replies from out-of-band frames, and says
//! when the connection can go back to the pool.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use protocol::ProtocolError;
use protocol::resp::{Request, RespScanner, RespVersion, Scan, Value, ValueKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use super::pinned_report::{LostSession, PinnedView};
use super::subscriptions::{PubSubFrame, Subscriptions, classify};
use crate::commands::{Special, special};
use crate::pinning::{Checkin, ClosingSubscriber, PinnedConnection, PinnedPool};
use crate::upstream::connection::STREAM_CHUNK;

/// What a successful reply changes in the client's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    None,
    Select(i64),
    Tracking(bool),
    NoTouch(bool),
    Monitor,
    /// EXEC of a transaction that queued `SELECT db` as its `index`-th command: the
    /// database changes if that element of the reply is `+OK`.
    ExecSelect {
        index: usize,
        db: i64,
    },
}

/// A regular reply the connection owes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    /// For the client's request `seq`, sent at `sent_at`.
    Reply {
        seq: u64,
        effect: Effect,
        sent_at: Instant,
    },
    /// For a command the proxy sent itself (restoring SELECT): dropped.
    Silent,
    /// The client's (un)subscribe command `seq`: its confirmations (or an error) are its
    /// reply, in order with the replies around it.
    Confirmations { seq: u64, sent_at: Instant },
}

/// Where one upstream frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameClass {
    Reply {
        seq: u64,
        effect: Effect,
        is_error: bool,
    },
    /// One confirmation of (un)subscribe command `seq`; the reply ends with the last one.
    Confirmation {
        seq: u64,
        is_last: bool,
    },
    OutOfBand,
    Swallow,
}

/// Something the client must do with upstream output.
#[derive(Debug, PartialEq, Eq)]
pub enum PinnedOutput {
    /// Reply bytes for request `seq` (a chunk until `is_complete`).
    Reply {
        /// The request.
        seq: u64,
        /// Raw bytes.
        bytes: Bytes,
        /// Last chunk.
        is_complete: bool,
    },
    /// A push, Pub/Sub message or MONITOR line: write as it comes.
    OutOfBand(Bytes),
    /// `SELECT n` succeeded.
    Selected(i64),
}

/// True when element `index` of an EXEC reply (`frame`, whole) is `+OK`.
fn exec_element_is_ok(frame: &[u8], index: usize) -> bool {
    match Value::decode(frame) {
        Ok(Some((Value::Array(items), _))) => {
            matches!(items.get(index), Some(Value::Simple(text)) if text.as_ref() == b"OK")
        }
        _ => false,
    }
}

/// A client's pinned connection and the state living on it.
#[derive(Debug)]
pub struct PinnedSession {
    connection: PinnedConnection,
    pool: Arc<PinnedPool>,
    out: BytesMut,
    scanner: RespScanner,
    scanned: usize,
    streaming: Option<FrameClass>,
    awaiting: VecDeque<Awaiting>,
    subscriptions: Subscriptions,
    is_in_multi: bool,
    /// Commands queued in the open transaction, and the last `SELECT` among them.
    multi_queued: usize,
    multi_select: Option<(usize, i64)>,
    /// A `SELECT` ran where its outcome was not seen: RESET before reuse.
    is_db_uncertain: bool,
    is_watching: bool,
    is_tracking: bool,
    is_no_touch: bool,
    is_monitor: bool,
}

impl PinnedSession {
    /// A session on a freshly checked-out connection of `pool`.
    pub fn new(connection: PinnedConnection, pool: Arc<PinnedPool>) -> PinnedSession {
        PinnedSession {
            connection,
            pool,
            out: BytesMut::new(),
            scanner: RespScanner::default(),
            scanned: 0,
            streaming: None,
            awaiting: VecDeque::new(),
            subscriptions: Subscriptions::default(),
            is_in_multi: false,
            multi_queued: 0,
            multi_select: None,
            is_db_uncertain: false,
            is_watching: false,
            is_tracking: false,
            is_no_touch: false,
            is_monitor: false,
        }
    }

    /// The connection-scoped state, for `CLIENT LIST`.
    pub fn view(&self) -> PinnedView {
        PinnedView {
            subscriptions: self.subscriptions.counts(),
            is_in_multi: self.is_in_multi,
            is_tracking: self.is_tracking,
            is_no_touch: self.is_no_touch,
            is_monitor: self.is_monitor,
        }
    }

    /// The master and the server-side id of the connection (`CLIENT UNBLOCK`).
    pub fn upstream(&self) -> (std::net::SocketAddr, Option<i64>) {
        (self.pool.addr(), self.connection.upstream_id)
    }

    /// True while a reply is owed (a blocked command, or one in flight).
    pub fn is_awaiting(&self) -> bool {
        self.awaiting
            .iter()
            .any(|awaiting| !matches!(awaiting, Awaiting::Silent))
    }

    /// Switches the connection to `protocol` (`HELLO n` without the client's credentials
    /// or name, which the proxy keeps); its reply is dropped, later frames are read in
    /// the new protocol.
    pub fn switch_protocol(&mut self, protocol: RespVersion) {
        let version: &[u8] = match protocol {
            RespVersion::Resp2 => b"2",
            RespVersion::Resp3 => b"3",
        };
        self.send_silent(&Request::from_args(&[b"HELLO", version]));
        self.connection.protocol = protocol;
    }

    /// True in RESP2 Pub/Sub mode, where the server accepts only (un)subscribe commands,
    /// PING, QUIT and RESET (subscriptions held or being confirmed).
    pub fn is_in_subscribed_context(&self) -> bool {
        self.connection.protocol == RespVersion::Resp2 && self.subscriptions.will_be_subscribed()
    }

    /// True while subscribed (its close must be waited for before `PUBLISH` counts).
    pub fn is_subscribed(&self) -> bool {
        !self.subscriptions.is_idle()
    }

    /// The topology epoch of the connection's master.
    pub fn epoch(&self) -> u64 {
        self.pool.epoch()
    }

    /// Queues `request` (client request `seq`). Every request gets its reply in order:
    /// (un)subscribe commands get their confirmations as their reply.
    pub fn send(&mut self, request: &Request, seq: u64) -> bool {
        let mut effect = Effect::None;
        let is_in_multi = self.is_in_multi;
        let subscription = match special(request.name()) {
            Some(Special::Subscribe(kind)) if !is_in_multi => Some((kind, true)),
            Some(Special::Unsubscribe(kind)) if !is_in_multi => Some((kind, false)),
            _ => None,
        };
        if let Some((kind, is_subscribe)) = subscription {
            self.subscriptions
                .on_command_names(kind, is_subscribe, request.args().skip(1), false);
            self.out.extend_from_slice(request.as_bytes());
            self.awaiting.push_back(Awaiting::Confirmations {
                seq,
                sent_at: Instant::now(),
            });
            return true;
        }
        let special = special(request.name());
        if self.is_in_subscribed_context() && special != Some(Special::Ping) {
            // RESP2 Pub/Sub mode: the server refuses it with an error; no state changes.
            self.out.extend_from_slice(request.as_bytes());
            self.awaiting.push_back(Awaiting::Reply {
                seq,
                effect,
                sent_at: Instant::now(),
            });
            return true;
        }
        match special {
            Some(Special::Multi) if !is_in_multi => {
                self.is_in_multi = true;
                self.multi_queued = 0;
                self.multi_select = None;
            }
            // Refused inside MULTI (nested MULTI, WATCH): not queued.
            Some(Special::Multi) => {}
            Some(Special::Watch) if is_in_multi => {}
            Some(Special::Exec) if is_in_multi => {
                if let Some((index, db)) = self.multi_select.take() {
                    effect = Effect::ExecSelect { index, db };
                }
                self.is_in_multi = false;
                self.is_watching = false;
            }
            // Without MULTI they are errors and WATCHed keys stay watched.
            Some(Special::Discard) if is_in_multi => {
                self.multi_select = None;
                self.is_in_multi = false;
                self.is_watching = false;
            }
            Some(Special::Select) if is_in_multi => {
                // Runs at EXEC; until its outcome is seen the connection's db is uncertain.
                self.is_db_uncertain = true;
                if let Some(db) = request
                    .arg(1)
                    .and_then(|arg| std::str::from_utf8(arg).ok()?.parse().ok())
                {
                    self.multi_select = Some((self.multi_queued, db));
                }
                self.multi_queued += 1;
            }
            _ if is_in_multi => self.multi_queued += 1,
            Some(Special::Watch) if !is_in_multi => self.is_watching = true,
            Some(Special::Unwatch) if !is_in_multi => self.is_watching = false,
            Some(Special::Select) if !is_in_multi => {
                if let Some(db) = request
                    .arg(1)
                    .and_then(|arg| std::str::from_utf8(arg).ok()?.parse().ok())
                {
                    effect = Effect::Select(db);
                }
            }
            Some(Special::Monitor) => effect = Effect::Monitor,
            Some(Special::Client) => {
                let is_on = request
                    .arg(2)
                    .is_some_and(|arg| arg.eq_ignore_ascii_case(b"on"));
                match request.arg(1) {
                    Some(sub) if sub.eq_ignore_ascii_case(b"tracking") => {
                        effect = Effect::Tracking(is_on);
                    }
                    Some(sub) if sub.eq_ignore_ascii_case(b"no-touch") => {
                        effect = Effect::NoTouch(is_on);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        self.out.extend_from_slice(request.as_bytes());
        self.awaiting.push_back(Awaiting::Reply {
            seq,
            effect,
            sent_at: Instant::now(),
        });
        true
    }

    /// Queues a command of the proxy's own whose reply is dropped (`SELECT db`).
    pub fn send_silent(&mut self, request: &Request) {
        self.out.extend_from_slice(request.as_bytes());
        self.awaiting.push_back(Awaiting::Silent);
    }

    /// Restores `subscriptions` (after a failover) without forwarding the confirmations.
    pub fn resubscribe(&mut self, subscriptions: &Subscriptions) {
        let (commands, expected) = subscriptions.resubscribe();
        for command in &commands {
            self.out.extend_from_slice(command.as_bytes());
        }
        self.subscriptions = expected;
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.connection.stream.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Reads more upstream bytes (cancel safe).
    pub async fn read(&mut self) -> std::io::Result<usize> {
        self.connection.buf.reserve(16 * 1024);
        self.connection
            .stream
            .read_buf(&mut self.connection.buf)
            .await
    }

    /// Turns the bytes read so far into outputs.
    pub fn take_outputs(&mut self, outputs: &mut Vec<PinnedOutput>) -> Result<(), ProtocolError> {
        loop {
            let unscanned = self.connection.buf.get(self.scanned..).unwrap_or_default();
            if unscanned.is_empty() {
                return Ok(());
            }
            match self.scanner.scan(unscanned)? {
                Scan::Complete(len) => {
                    let total = self.scanned + len;
                    self.scanned = 0;
                    let frame = self.connection.buf.split_to(total).freeze();
                    let class = match self.streaming.take() {
                        Some(class) => class,
                        None => self.classify_frame(&frame),
                    };
                    self.emit(class, frame, true, outputs);
                }
                Scan::Partial(len) => {
                    self.scanned += len;
                    if self.scanned >= STREAM_CHUNK {
                        let class = match self.streaming {
                            Some(class) => class,
                            None => self.classify_prefix(),
                        };
                        self.streaming = Some(class);
                        let chunk = self.connection.buf.split_to(self.scanned).freeze();
                        self.scanned = 0;
                        self.emit(class, chunk, false, outputs);
                    }
                    return Ok(());
                }
            }
        }
    }

    fn emit(
        &mut self,
        class: FrameClass,
        bytes: Bytes,
        is_complete: bool,
        outputs: &mut Vec<PinnedOutput>,
    ) {
        match class {
            FrameClass::Swallow => {}
            FrameClass::OutOfBand => outputs.push(PinnedOutput::OutOfBand(bytes)),
            FrameClass::Confirmation { seq, is_last } => outputs.push(PinnedOutput::Reply {
                seq,
                bytes,
                is_complete: is_complete && is_last,
            }),
            FrameClass::Reply {
                seq,
                effect,
                is_error,
            } => {
                outputs.push(PinnedOutput::Reply {
                    seq,
                    bytes: bytes.clone(),
                    is_complete,
                });
                if is_complete && !is_error {
                    match effect {
                        Effect::None => {}
                        Effect::Select(db) => outputs.push(PinnedOutput::Selected(db)),
                        Effect::Tracking(is_on) => self.is_tracking = is_on,
                        Effect::NoTouch(is_on) => self.is_no_touch = is_on,
                        Effect::Monitor => self.is_monitor = true,
                        Effect::ExecSelect { index, db } => {
                            if exec_element_is_ok(&bytes, index) {
                                outputs.push(PinnedOutput::Selected(db));
                            }
                        }
                    }
                }
            }
        }
    }

    fn protocol(&self) -> RespVersion {
        self.connection.protocol
    }

    /// Classifies a whole frame, decoding it when it may be a Pub/Sub frame.
    fn classify_frame(&mut self, frame: &[u8]) -> FrameClass {
        let kind = self.scanner.kind();
        if self.is_monitor {
            return FrameClass::OutOfBand;
        }
        let may_be_pubsub = kind == Some(ValueKind::Push)
            || (kind == Some(ValueKind::Array)
                && self.protocol() == RespVersion::Resp2
                && !self.subscriptions.is_idle());
        if may_be_pubsub && let Ok(Some((value, _))) = Value::decode(frame) {
            match classify(&value) {
                PubSubFrame::Message => return FrameClass::OutOfBand,
                PubSubFrame::Confirmation {
                    kind,
                    is_subscribe,
                    name,
                } => {
                    let confirmed = self.subscriptions.on_confirmation(kind, is_subscribe, name);
                    if confirmed.is_silent {
                        return FrameClass::Swallow;
                    }
                    return match self.awaiting.front() {
                        Some(&Awaiting::Confirmations { seq, .. }) if confirmed.was_expected => {
                            if confirmed.is_last {
                                self.awaiting.pop_front();
                            }
                            FrameClass::Confirmation {
                                seq,
                                is_last: confirmed.is_last,
                            }
                        }
                        _ => FrameClass::OutOfBand,
                    };
                }
                PubSubFrame::Other if kind == Some(ValueKind::Push) => {
                    return FrameClass::OutOfBand;
                }
                PubSubFrame::Other => {}
            }
        }
        let is_error = kind == Some(ValueKind::Error);
        let answers_subscription =
            matches!(self.awaiting.front(), Some(Awaiting::Confirmations { .. }));
        if is_error
            && (answers_subscription || self.awaiting.is_empty())
            && self.subscriptions.is_expecting()
        {
            // An error answering a subscribe command instead of its confirmations.
            let is_silent = self.subscriptions.on_error();
            if is_silent || !answers_subscription {
                return FrameClass::Swallow;
            }
        }
        if self.awaiting.is_empty() {
            return FrameClass::OutOfBand;
        }
        self.next_reply(is_error)
    }

    /// Classifies a large frame from its type alone (it streams before it is complete).
    fn classify_prefix(&mut self) -> FrameClass {
        let kind = self.scanner.kind();
        let is_out_of_band = self.is_monitor
            || kind == Some(ValueKind::Push)
            || (kind == Some(ValueKind::Array)
                && self.protocol() == RespVersion::Resp2
                && !self.subscriptions.is_idle())
            || self.awaiting.is_empty();
        if is_out_of_band {
            return FrameClass::OutOfBand;
        }
        self.next_reply(kind == Some(ValueKind::Error))
    }

    fn next_reply(&mut self, is_error: bool) -> FrameClass {
        match self.awaiting.pop_front() {
            Some(Awaiting::Reply { seq, effect, .. }) => FrameClass::Reply {
                seq,
                effect,
                is_error,
            },
            Some(Awaiting::Confirmations { seq, .. }) => {
                FrameClass::Confirmation { seq, is_last: true }
            }
            Some(Awaiting::Silent) => FrameClass::Swallow,
            None => FrameClass::OutOfBand,
        }
    }

    /// How long the oldest unanswered request has waited (zero when none).
    pub fn oldest_wait(&self) -> Duration {
        self.awaiting
            .iter()
            .find_map(|awaiting| match awaiting {
                Awaiting::Reply { sent_at, .. } | Awaiting::Confirmations { sent_at, .. } => {
                    Some(sent_at.elapsed())
                }
                Awaiting::Silent => None,
            })
            .unwrap_or_default()
    }

    /// True when no state lives on the connection any more (with the client on `db`).
    pub fn is_releasable(&self, db: i64) -> bool {
        db == 0
            && self.awaiting.is_empty()
            && self.out.is_empty()
            && !self.is_in_multi
            && !self.is_watching
            && !self.is_tracking
            && !self.is_no_touch
            && !self.is_monitor
            && self.subscriptions.is_idle()
            && self.scanner.is_idle()
            && self.scanned == 0
            && self.streaming.is_none()
    }

    /// Gives the connection back to its pool, reset if state may remain (including a
    /// database a transaction may have selected).
    pub fn release(self, db: i64) {
        self.release_closing(db, None);
    }

    /// [`PinnedSession::release`] for a closing client; `closing` counts it until its
    /// subscriptions are gone upstream.
    pub fn release_closing(self, db: i64, closing: Option<ClosingSubscriber>) {
        let state =
            if self.is_releasable(db) && self.connection.buf.is_empty() && !self.is_db_uncertain {
                Checkin::Clean
            } else if self.awaiting.is_empty() && self.scanner.is_idle() && self.streaming.is_none()
            {
                Checkin::Dirty
            } else {
                Checkin::Busy
            };
        let PinnedSession {
            connection, pool, ..
        } = self;
        pool.checkin(connection, state, closing);
    }

    /// Closes the connection and reports what was lost with it.
    pub fn into_lost(self) -> LostSession {
        // A reply being streamed was popped before the ones still awaited.
        let streaming = match self.streaming {
            Some(FrameClass::Reply { seq, .. }) => Some(seq),
            _ => None,
        };
        let unanswered = streaming
            .into_iter()
            .chain(self.awaiting.iter().filter_map(|awaiting| match awaiting {
                Awaiting::Reply { seq, .. } | Awaiting::Confirmations { seq, .. } => Some(*seq),
                Awaiting::Silent => None,
            }))
            .collect();
        LostSession {
            unanswered,
            was_in_multi: self.is_in_multi,
            was_watching: self.is_watching,
            subscriptions: self.subscriptions,
            is_unrecoverable: self.is_tracking || self.is_monitor,
        }
    }
}
