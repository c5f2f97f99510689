//! Dispatching held requests: authentication gate, broken transactions, routing, then a
//! local answer, a shared upstream connection, or the client's pinned connection. A request
//! that cannot go yet (no master during a failover, an ordering barrier) stays held.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use protocol::resp::{Request, RespVersion};

use super::connection_log::CloseReason;
use super::pinned::PinnedSession;
use super::replies::SlotTarget;
use super::{ClientConnection, Phase};
use crate::commands::{Special, special};
use crate::config::ReadFrom;
use crate::local::{LocalContext, LocalOutcome, answer, answer_broken_transaction};
use crate::router::{LocalCommand, RouteContext, Routed, Target, route};
use crate::upstream::{MasterRoute, UpstreamRequest};

/// How long a `PUBLISH` waits at most for closed subscribers to be unsubscribed upstream
/// (normally one RESET round trip, about a millisecond; the bound is for a loaded machine).
const CLOSING_SUBSCRIBER_WAIT: Duration = Duration::from_secs(1);
/// The channel of the replicated marker write sent before `WAIT` (no one subscribes to it).
const WAIT_MARKER_CHANNEL: &[u8] = b"__cacheproxy__:wait";

/// Whether a held request left the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Sent or answered.
    Done,
    /// Must wait (for a master, or for older replies).
    Wait,
}

impl ClientConnection {
    /// Dispatches held requests in order until one must wait, then writes pinned commands.
    pub(super) async fn pump(&mut self) {
        loop {
            if self.resubscribe.is_some() && self.pinned.is_none() && self.held.is_empty() {
                // An idle subscriber lost its connection: restore it without waiting for a command.
                if matches!(self.routes.master, MasterRoute::Ready(_)) {
                    let _ = self.open_pinned().await;
                }
            }
            while let Some(&seq) = self.held.front() {
                match self.phase {
                    Phase::Abort => return,
                    Phase::Closing { after } if seq > after => {
                        self.held.clear();
                        break;
                    }
                    _ => {}
                }
                if self.dispatch(seq).await == Step::Wait {
                    break;
                }
                self.held.pop_front();
            }
            if let Some(session) = self.pinned.as_mut()
                && session.flush().await.is_err()
            {
                self.on_pinned_lost();
            }
            self.release_pinned_if_idle();
            let may_decode_more =
                self.held.is_empty() && !self.read_buf.is_empty() && self.phase == Phase::Running;
            if !may_decode_more {
                return;
            }
            self.decode_requests();
            if self.held.is_empty() {
                return;
            }
        }
    }

    async fn dispatch(&mut self, seq: u64) -> Step {
        let Some(request) = self
            .replies
            .slot_mut(seq)
            .and_then(|slot| slot.request.take())
        else {
            return Step::Done;
        };
        let step = self.dispatch_request(seq, &request).await;
        // The registry shows the last command of each batch (per command when state changed).
        if self.is_registry_stale || self.held.len() <= 1 {
            self.refresh_registry(Some(&request));
        }
        if let Some(slot) = self.replies.slot_mut(seq) {
            slot.request = Some(request);
        }
        step
    }

    async fn dispatch_request(&mut self, seq: u64, request: &Request) -> Step {
        if self
            .reply_mode_applied_to
            .is_none_or(|applied| seq > applied)
        {
            self.reply_mode_applied_to = Some(seq);
            self.apply_reply_mode(seq);
        }
        let may_wait_for_subscribers = self.shared.closing_subscribers.load(Ordering::Relaxed) > 0
            || self.shared.subscribed_clients.load(Ordering::Relaxed) > 0;
        if may_wait_for_subscribers && self.publish_must_wait(seq, request).await {
            return Step::Wait;
        }
        if !self.session.is_authenticated
            && !matches!(
                special(request.name()),
                Some(Special::Auth | Special::Hello | Special::Quit | Special::Reset)
            )
        {
            self.reply_error(seq, "NOAUTH Authentication required.");
            return Step::Done;
        }
        let mut local = BytesMut::new();
        if answer_broken_transaction(request, &mut self.session, &mut local).is_some() {
            self.replies.complete(seq, &local, &mut self.out);
            return Step::Done;
        }
        let routed = {
            let config = self.shared.config.load();
            let context = RouteContext {
                is_pinned: self.pinned.is_some()
                    || self.session.db != 0
                    || self.resubscribe.is_some(),
                read_from: config.read_from,
                has_replica: !self.routes.replicas.is_empty(),
                enable_monitor: config.enable_monitor,
            };
            route(request, &self.shared.commands.load(), &context)
        };
        if !matches!(
            routed.target,
            Target::Master | Target::Replica | Target::Info
        ) {
            self.is_registry_stale = true;
        }
        if matches!(
            routed.target,
            Target::Local(_) | Target::Client(_) | Target::Control
        ) && let Some(step) = self.refuse_in_subscribed_context(seq, request)
        {
            return step;
        }
        match routed.target {
            Target::Local(command) => self.answer_local(seq, command, request),
            Target::Client(command) => self.answer_client(seq, command, request),
            Target::Control => self.send_control(seq, request),
            Target::Reject(line) => {
                self.reply_error(seq, &line);
                Step::Done
            }
            Target::Master | Target::Info | Target::Replica => {
                self.send_shared(seq, request, &routed)
            }
            Target::Pinned(_) => self.send_pinned(seq, request).await,
        }
    }

    fn answer_local(&mut self, seq: u64, command: LocalCommand, request: &Request) -> Step {
        let changes_connection = matches!(command, LocalCommand::Hello | LocalCommand::Reset);
        if changes_connection && self.replies.has_pending_before(seq) {
            return Step::Wait;
        }
        if command == LocalCommand::Hello
            && let Err(line) = self.switch_pinned_protocol(request)
        {
            self.reply_error(seq, line);
            return Step::Done;
        }
        let config = self.shared.config.load_full();
        let version = self.shared.server_version.load_full();
        let context = LocalContext {
            config: &config,
            server_version: &version,
        };
        let mut reply = BytesMut::new();
        let outcome = answer(command, request, &mut self.session, &context, &mut reply);
        self.replies.complete(seq, &reply, &mut self.out);
        match outcome {
            LocalOutcome::Replied => {}
            LocalOutcome::Close => self.close(Phase::Closing { after: seq }, CloseReason::Quit),
            LocalOutcome::Reset => {
                if let Some(session) = self.pinned.take() {
                    // db -1 forces a RESET of the connection before it is reused.
                    session.release(-1);
                }
                self.resubscribe = None;
            }
        }
        self.refresh_decoder_limits();
        Step::Done
    }

    /// A command the proxy answers itself, from a RESP2 client in Pub/Sub mode: refused
    /// with Redis' own error (after earlier replies, so that the state is settled), except
    /// the ones Redis allows there (PING, QUIT, RESET; HELLO says it itself).
    fn refuse_in_subscribed_context(&mut self, seq: u64, request: &Request) -> Option<Step> {
        let is_subscribed = |session: &Option<PinnedSession>| {
            session
                .as_ref()
                .is_some_and(PinnedSession::is_in_subscribed_context)
        };
        let is_allowed = matches!(
            special(request.name()),
            Some(Special::Ping | Special::Quit | Special::Reset | Special::Hello)
        );
        if is_allowed || !is_subscribed(&self.pinned) {
            return None;
        }
        if self.replies.has_pending_before(seq) {
            return Some(Step::Wait);
        }
        if !is_subscribed(&self.pinned) {
            return None;
        }
        let mut name = String::from_utf8_lossy(request.name()).to_ascii_lowercase();
        if name == "client"
            && let Some(sub) = request.arg(1)
        {
            name = format!(
                "{name}|{}",
                String::from_utf8_lossy(sub).to_ascii_lowercase()
            );
        }
        self.reply_error(
            seq,
            &format!(
                "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
            ),
        );
        Some(Step::Done)
    }

    /// Before a local `HELLO`: a pinned connection switches protocol itself (keeping its
    /// SELECT, WATCH, subscriptions …), or the error line when it cannot.
    fn switch_pinned_protocol(&mut self, request: &Request) -> Result<(), &'static str> {
        let wanted = match request.arg(1) {
            Some(b"3") => RespVersion::Resp3,
            Some(b"2") => RespVersion::Resp2,
            // No version, or an invalid one: answered by `hello()` without a switch.
            _ => self.session.protocol,
        };
        let Some(session) = self.pinned.as_mut() else {
            if self.resubscribe.is_some() && wanted != self.session.protocol {
                return Err(
                    "ERR cacheproxy cannot switch protocols while subscriptions are being restored after a failover",
                );
            }
            return Ok(());
        };
        let view = session.view();
        let is_subscribed = view.subscriptions.iter().any(|count| *count > 0);
        if is_subscribed && self.session.protocol == RespVersion::Resp2 {
            return Err(
                "ERR Can't execute 'hello': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            );
        }
        if wanted == self.session.protocol {
            return Ok(());
        }
        if view.is_in_multi {
            return Err(
                "ERR cacheproxy cannot switch protocols inside MULTI (the server would switch only at EXEC)",
            );
        }
        session.switch_protocol(wanted);
        Ok(())
    }

    /// True when `request` is a `PUBLISH` that must wait (up to 1 s) for closed
    /// subscribers to be unsubscribed upstream, as Redis never counts a closed subscriber.
    /// While anyone is subscribed, a `PUBLISH` first yields once: the I/O driver then runs
    /// and a subscriber whose hang-up arrived before the `PUBLISH` is counted as closing.
    async fn publish_must_wait(&mut self, seq: u64, request: &Request) -> bool {
        self.is_publish_waiting = false;
        let closing = || self.shared.closing_subscribers.load(Ordering::Acquire) > 0;
        let subscribed = || self.shared.subscribed_clients.load(Ordering::Acquire) > 0;
        if !closing() && !subscribed() {
            return false;
        }
        let name = request.name();
        let is_publish =
            name.eq_ignore_ascii_case(b"publish") || name.eq_ignore_ascii_case(b"spublish");
        if !is_publish {
            return false;
        }
        if !closing() {
            tokio::task::yield_now().await;
        }
        let must_wait = (closing() || self.shared.clients.has_hung_up_subscriber())
            && self
                .replies
                .slot(seq)
                .is_some_and(|slot| slot.queued_at.elapsed() < CLOSING_SUBSCRIBER_WAIT);
        self.is_publish_waiting = must_wait;
        must_wait
    }

    /// True while a request may still wait for a master (`failover_timeout` not reached).
    pub(super) fn may_wait(&self, seq: u64) -> bool {
        let limit = self.shared.config.load().failover_timeout;
        let queued_at = self
            .replies
            .slot(seq)
            .map_or_else(Instant::now, |slot| slot.queued_at);
        queued_at.elapsed() < limit
    }

    pub(super) fn reply_no_master(&mut self, seq: u64, reason: &str) -> Step {
        let limit = self.shared.config.load().failover_timeout;
        self.reply_error(
            seq,
            &format!("ERR no master available after waiting {limit:?}: {reason}"),
        );
        Step::Done
    }

    fn send_shared(&mut self, seq: u64, request: &Request, routed: &Routed) -> Step {
        let (queued_at, prefer_master) = match self.replies.slot_mut(seq) {
            Some(slot) => (slot.queued_at, slot.prefer_master),
            None => return Step::Done,
        };
        let to_replica = routed.target == Target::Replica && !prefer_master;
        for _ in 0..2 {
            let routes = Arc::clone(&self.routes);
            let (handle, target) = if to_replica && !routes.replicas.is_empty() {
                let index = (self.session.id % routes.replicas.len() as u64) as usize;
                match routes.replicas.get(index) {
                    Some(handle) => (handle, SlotTarget::Replica),
                    None => return Step::Wait,
                }
            } else {
                if to_replica && self.shared.config.load().read_from == ReadFrom::Replica {
                    self.reply_error(
                        seq,
                        "ERR no healthy replica available (read_from = replica)",
                    );
                    return Step::Done;
                }
                match &routes.master {
                    MasterRoute::Ready(pools) => {
                        match pools.shared_for(self.session.protocol, self.session.id) {
                            Some(handle) => (handle, SlotTarget::Master(pools.addr)),
                            None => return Step::Wait,
                        }
                    }
                    MasterRoute::Unavailable(reason) => {
                        if self.may_wait(seq) {
                            return Step::Wait;
                        }
                        let reason = Arc::clone(reason);
                        return self.reply_no_master(seq, &reason);
                    }
                }
            };
            let upstream_request = UpstreamRequest {
                bytes: request.as_bytes().clone(),
                seq,
                reply_to: self.events_tx.clone(),
                queued_at,
            };
            if handle.send(upstream_request).is_ok() {
                if let Some(slot) = self.replies.slot_mut(seq) {
                    slot.target = target;
                    slot.is_read_only = routed.is_read_only;
                    slot.is_info = routed.target == Target::Info;
                }
                return Step::Done;
            }
            // The connection was retired by a topology change: take the newest routes.
            self.routes = self.routes_rx.borrow_and_update().clone();
        }
        Step::Wait
    }

    async fn send_pinned(&mut self, seq: u64, request: &Request) -> Step {
        if let MasterRoute::Unavailable(reason) = &self.routes.master {
            // Hold pinned traffic too: a write must not reach a master being failed over.
            if self.may_wait(seq) {
                return Step::Wait;
            }
            let reason = Arc::clone(reason);
            return self.reply_no_master(seq, &reason);
        }
        if self.pinned.is_none() {
            if self.replies.has_pending_before(seq) {
                return Step::Wait;
            }
            if let Err(error) = self.open_pinned().await {
                self.reply_error(seq, &format!("ERR {error}"));
                return Step::Done;
            }
        }
        let Some(session) = self.pinned.as_mut() else {
            return Step::Wait;
        };
        if special(request.name()) == Some(Special::Wait) && !session.view().is_in_multi {
            // WAIT counts the replicas that acknowledged this connection's last write; the
            // client's writes may have gone over shared connections, so the pinned
            // connection first makes a replicated write of its own (the offset then covers
            // every write the client saw acknowledged).
            session.send_silent(&Request::from_args(&[b"PUBLISH", WAIT_MARKER_CHANNEL, b""]));
        }
        let has_slot = session.send(request, seq);
        if let Some(slot) = self.replies.slot_mut(seq) {
            slot.target = SlotTarget::Pinned;
        }
        if !has_slot {
            self.replies.complete(seq, b"", &mut self.out);
        }
        Step::Done
    }

    /// Checks out a pinned connection and restores the client's database and subscriptions on it.
    pub(super) async fn open_pinned(&mut self) -> Result<(), String> {
        let MasterRoute::Ready(pools) = &self.routes.master else {
            return Err("no master available".to_owned());
        };
        let pool = Arc::clone(&pools.pinned);
        let connection = pool
            .checkout(self.session.protocol)
            .await
            .map_err(|error| error.to_string())?;
        let mut session = PinnedSession::new(connection, pool);
        if self.session.db != 0 {
            let db = self.session.db.to_string();
            session.send_silent(&Request::from_args(&[b"SELECT", db.as_bytes()]));
        }
        if let Some(subscriptions) = self.resubscribe.take() {
            session.resubscribe(&subscriptions);
        }
        self.pinned = Some(session);
        Ok(())
    }
}
