//! `CLIENT` subcommands answered from the proxy's client registry (ID, INFO, LIST, KILL,
//! UNBLOCK, NO-EVICT, REPLY, GETREDIR, TRACKINGINFO), requests from other clients' tasks
//! (kill, unblock), commands sent on a control connection (`SCRIPT KILL`, `FUNCTION KILL`),
//! and the client's line in the registry.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use protocol::resp::{Request, RespVersion, encode_command, reply};

use super::connection_log::CloseReason;
use super::dispatch::Step;
use super::{ClientConnection, Phase};
use crate::clients::{ClientControl, ClientEntry, UnblockMode};
use crate::error::LinkError;
use crate::link::ControlLink;
use crate::local::ReplyMode;
use crate::router::ClientCommand;
use crate::upstream::{MasterRoute, ReplySender, UpstreamReply};

const SYNTAX_ERROR: &str = "ERR syntax error";
const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";

/// One `CLIENT KILL` filter set (new form), or the old `CLIENT KILL addr:port` form.
#[derive(Debug, Default)]
struct KillFilter {
    id: Option<u64>,
    kind: Option<String>,
    addr: Option<String>,
    laddr: Option<String>,
    user: Option<Vec<u8>>,
    max_age: Option<u64>,
    skip_me: bool,
}

impl KillFilter {
    fn parse(request: &Request) -> Result<KillFilter, &'static str> {
        let mut filter = KillFilter {
            skip_me: true,
            ..KillFilter::default()
        };
        let mut index = 2;
        while index < request.argc() {
            let (Some(name), Some(value)) = (request.arg(index), request.arg(index + 1)) else {
                return Err(SYNTAX_ERROR);
            };
            let text = String::from_utf8_lossy(value).into_owned();
            match name.to_ascii_lowercase().as_slice() {
                b"id" => match text.parse::<u64>() {
                    Ok(id) if id > 0 => filter.id = Some(id),
                    _ => return Err("ERR client-id should be greater than 0"),
                },
                b"type" => match text.to_ascii_lowercase().as_str() {
                    kind @ ("normal" | "pubsub" | "master" | "replica" | "slave") => {
                        filter.kind = Some(kind.replace("slave", "replica"));
                    }
                    _ => return Err("ERR Unknown client type"),
                },
                b"addr" => filter.addr = Some(text),
                b"laddr" => filter.laddr = Some(text),
                b"user" => filter.user = Some(value.to_vec()),
                b"maxage" => filter.max_age = Some(text.parse().map_err(|_| NOT_AN_INTEGER)?),
                b"skipme" => match text.to_ascii_lowercase().as_str() {
                    "yes" => filter.skip_me = true,
                    "no" => filter.skip_me = false,
                    _ => return Err(SYNTAX_ERROR),
                },
                _ => return Err(SYNTAX_ERROR),
            }
            index += 2;
        }
        Ok(filter)
    }

    fn matches(&self, entry: &ClientEntry, own_id: u64, now: Instant) -> bool {
        let shown = |addr: Option<SocketAddr>| addr.map(|addr| addr.to_string());
        let state = entry.state();
        !(self.skip_me && entry.id == own_id)
            && self.id.is_none_or(|id| id == entry.id)
            && self.kind.as_deref().is_none_or(|kind| kind == state.kind())
            && self
                .addr
                .as_ref()
                .is_none_or(|addr| shown(entry.addr).as_ref() == Some(addr))
            && self
                .laddr
                .as_ref()
                .is_none_or(|laddr| shown(entry.laddr).as_ref() == Some(laddr))
            && self
                .user
                .as_deref()
                .is_none_or(|user| user == state.user.as_ref())
            && self.max_age.is_none_or(|max_age| {
                now.saturating_duration_since(entry.created).as_secs() >= max_age
            })
    }
}

impl ClientConnection {
    /// Answers a `CLIENT` subcommand of [`ClientCommand`].
    pub(super) fn answer_client(
        &mut self,
        seq: u64,
        command: ClientCommand,
        request: &Request,
    ) -> Step {
        let mut out = BytesMut::new();
        match command {
            ClientCommand::Id => reply::integer(&mut out, self.session.id as i64),
            ClientCommand::Info => {
                self.refresh_registry(Some(request));
                let mut line = self.registration.entry().line(Instant::now());
                line.push('\n');
                reply::verbatim(&mut out, *b"txt", line.as_bytes(), self.session.protocol);
            }
            ClientCommand::List => {
                self.refresh_registry(Some(request));
                self.client_list(request, &mut out);
            }
            ClientCommand::Kill => self.client_kill(seq, request, &mut out),
            ClientCommand::Unblock => {
                if let Some(error) = self.client_unblock(seq, request) {
                    reply::error(&mut out, error);
                } else {
                    return Step::Done;
                }
            }
            ClientCommand::NoEvict => match on_off(request) {
                Some(is_on) => {
                    self.session.is_no_evict = is_on;
                    reply::simple(&mut out, "OK");
                }
                None => reply::error(&mut out, SYNTAX_ERROR),
            },
            ClientCommand::Reply => return self.client_reply(seq, request),
            ClientCommand::GetRedir => reply::integer(&mut out, -1),
            ClientCommand::TrackingInfo => tracking_off_info(&mut out, self.session.protocol),
        }
        self.replies.complete(seq, &out, &mut self.out);
        Step::Done
    }

    fn client_list(&self, request: &Request, out: &mut BytesMut) {
        let mut kind = None;
        let mut ids: Option<Vec<u64>> = None;
        let mut index = 2;
        while let Some(option) = request.arg(index) {
            if option.eq_ignore_ascii_case(b"type") && request.argc() == index + 2 {
                let text = String::from_utf8_lossy(request.arg(index + 1).unwrap_or_default())
                    .to_ascii_lowercase();
                if !matches!(
                    text.as_str(),
                    "normal" | "pubsub" | "master" | "replica" | "slave"
                ) {
                    let error = format!("ERR Unknown client type '{text}'");
                    return reply::error(out, &error);
                }
                kind = Some(text);
                index += 2;
            } else if option.eq_ignore_ascii_case(b"id") && request.argc() > index + 1 {
                let mut parsed = Vec::new();
                for arg in request.args().skip(index + 1) {
                    match std::str::from_utf8(arg)
                        .ok()
                        .and_then(|text| text.parse().ok())
                    {
                        Some(id) if id > 0 => parsed.push(id),
                        _ => return reply::error(out, "ERR Invalid client ID"),
                    }
                }
                ids = Some(parsed);
                index = request.argc();
            } else {
                return reply::error(out, SYNTAX_ERROR);
            }
        }
        let now = Instant::now();
        let mut text = String::new();
        for entry in self.shared.clients.all() {
            let is_listed = ids.as_ref().is_none_or(|ids| ids.contains(&entry.id))
                && kind
                    .as_deref()
                    .is_none_or(|kind| kind == entry.state().kind());
            if is_listed {
                text.push_str(&entry.line(now));
                text.push('\n');
            }
        }
        reply::verbatim(out, *b"txt", text.as_bytes(), self.session.protocol);
    }

    fn client_kill(&mut self, seq: u64, request: &Request, out: &mut BytesMut) {
        let own_id = self.session.id;
        let now = Instant::now();
        if request.argc() == 3 {
            // Old form: CLIENT KILL addr:port, the caller included.
            let addr = String::from_utf8_lossy(request.arg(2).unwrap_or_default()).into_owned();
            let target = self.shared.clients.all().into_iter().find(|entry| {
                entry.addr.map(|shown| shown.to_string()).as_deref() == Some(addr.as_str())
            });
            match target {
                Some(entry) => {
                    self.kill(&entry, seq);
                    reply::simple(out, "OK");
                }
                None => reply::error(out, "ERR No such client"),
            }
            return;
        }
        let filter = match KillFilter::parse(request) {
            Ok(filter) if request.argc() > 3 => filter,
            Ok(_) => return reply::error(out, SYNTAX_ERROR),
            Err(error) => return reply::error(out, error),
        };
        let mut killed = 0;
        for entry in self.shared.clients.all() {
            if filter.matches(&entry, own_id, now) {
                self.kill(&entry, seq);
                killed += 1;
            }
        }
        reply::integer(out, killed);
    }

    /// Kills `entry`: another client closes at once; the caller closes after this reply.
    fn kill(&mut self, entry: &ClientEntry, seq: u64) {
        if entry.id == self.session.id {
            self.close(Phase::Closing { after: seq }, CloseReason::Killed);
        } else {
            entry.control(ClientControl::Kill);
        }
    }

    /// Starts `CLIENT UNBLOCK`; `Some(error)` when the request is malformed.
    fn client_unblock(&mut self, seq: u64, request: &Request) -> Option<&'static str> {
        if request.argc() < 3 {
            return Some("ERR wrong number of arguments for 'client|unblock' command");
        }
        if request.argc() > 4 {
            return Some(SYNTAX_ERROR);
        }
        let id = std::str::from_utf8(request.arg(2).unwrap_or_default())
            .ok()
            .and_then(|text| text.parse::<i64>().ok());
        let Some(id) = id else {
            return Some(NOT_AN_INTEGER);
        };
        let mode = match request.arg(3) {
            None => UnblockMode::Timeout,
            Some(arg) if arg.eq_ignore_ascii_case(b"timeout") => UnblockMode::Timeout,
            Some(arg) if arg.eq_ignore_ascii_case(b"error") => UnblockMode::Error,
            Some(_) => return Some("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"),
        };
        let target = u64::try_from(id)
            .ok()
            .filter(|id| *id != self.session.id)
            .and_then(|id| self.shared.clients.get(id));
        let asked = target.is_some_and(|entry| {
            entry.control(ClientControl::Unblock {
                mode,
                reply_to: self.events_tx.clone(),
                seq,
            })
        });
        if !asked {
            self.replies.complete(seq, b":0\r\n", &mut self.out);
        }
        None
    }

    /// `CLIENT REPLY ON|OFF|SKIP`: only `ON` is answered.
    fn client_reply(&mut self, seq: u64, request: &Request) -> Step {
        let mode = match request.arg(2) {
            Some(arg) if request.argc() == 3 && arg.eq_ignore_ascii_case(b"on") => ReplyMode::On,
            Some(arg) if request.argc() == 3 && arg.eq_ignore_ascii_case(b"off") => ReplyMode::Off,
            Some(arg) if request.argc() == 3 && arg.eq_ignore_ascii_case(b"skip") => {
                ReplyMode::SkipNext
            }
            _ => {
                self.reply_error(seq, SYNTAX_ERROR);
                return Step::Done;
            }
        };
        self.session.reply_mode = mode;
        if let Some(slot) = self.replies.slot_mut(seq) {
            slot.is_silenced = mode != ReplyMode::On;
        }
        self.replies.complete(seq, b"+OK\r\n", &mut self.out);
        Step::Done
    }

    /// Marks `seq`'s reply silenced if `CLIENT REPLY OFF|SKIP` says so.
    pub(super) fn apply_reply_mode(&mut self, seq: u64) {
        let is_silenced = match self.session.reply_mode {
            ReplyMode::On => false,
            ReplyMode::Off => true,
            ReplyMode::SkipNext => {
                self.session.reply_mode = ReplyMode::On;
                true
            }
        };
        if is_silenced && let Some(slot) = self.replies.slot_mut(seq) {
            slot.is_silenced = true;
        }
    }

    /// A request from another client's task.
    pub(super) fn on_control(&mut self, message: ClientControl) {
        match message {
            ClientControl::Kill => self.close(Phase::Abort, CloseReason::Killed),
            ClientControl::Unblock {
                mode,
                reply_to,
                seq,
            } => self.unblock(mode, reply_to, seq),
        }
    }

    /// Unblocks this client's blocked call on its pinned connection. The connection is not
    /// released while the control request is in flight, so its server-side id can never
    /// belong to another client when the server acts on it.
    fn unblock(&mut self, mode: UnblockMode, reply_to: ReplySender, seq: u64) {
        let upstream = self
            .pinned
            .as_ref()
            .filter(|session| session.is_awaiting())
            .map(|session| session.upstream());
        let Some((addr, Some(upstream_id))) = upstream else {
            let _ = reply_to.send(UpstreamReply::Data {
                seq,
                bytes: Bytes::from_static(b":0\r\n"),
                is_complete: true,
            });
            return;
        };
        self.controls_in_flight += 1;
        let mut request = BytesMut::new();
        let id = upstream_id.to_string();
        encode_command(
            &mut request,
            &[b"CLIENT", b"UNBLOCK", id.as_bytes(), mode.as_arg()],
        );
        let done_tx = self.events_tx.clone();
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            let bytes = control_round_trip(&shared, addr, &request).await;
            let _ = reply_to.send(UpstreamReply::Data {
                seq,
                bytes,
                is_complete: true,
            });
            let _ = done_tx.send(UpstreamReply::ControlDone);
        });
    }

    /// Sends `request` on a one-off connection to the master (`SCRIPT KILL`): never queued
    /// behind a running script on a shared or pinned connection.
    pub(super) fn send_control(&mut self, seq: u64, request: &Request) -> Step {
        let addr = match &self.routes.master {
            MasterRoute::Ready(pools) => pools.addr,
            MasterRoute::Unavailable(_) if self.may_wait(seq) => return Step::Wait,
            MasterRoute::Unavailable(reason) => {
                let reason = Arc::clone(reason);
                return self.reply_no_master(seq, &reason);
            }
        };
        let shared = Arc::clone(&self.shared);
        let reply_to = self.events_tx.clone();
        let bytes = request.as_bytes().clone();
        tokio::spawn(async move {
            let bytes = control_round_trip(&shared, addr, &bytes).await;
            let _ = reply_to.send(UpstreamReply::Data {
                seq,
                bytes,
                is_complete: true,
            });
        });
        Step::Done
    }

    /// Updates the client's line in the registry: the last command and its time after
    /// every command (`last`); the connection state only when it may have changed (a
    /// command that was not plain shared traffic, a read from the pinned connection).
    pub(super) fn refresh_registry(&mut self, last: Option<&Request>) {
        let is_stale = std::mem::take(&mut self.is_registry_stale) || self.pinned.is_some();
        let view = if is_stale {
            let view = self
                .pinned
                .as_ref()
                .map(|session| session.view())
                .unwrap_or_default();
            self.count_as_subscriber(view.subscriptions.iter().any(|count| *count > 0));
            Some(view)
        } else {
            None
        };
        let mut state = self.registration.entry().state();
        if let Some(last) = last {
            state.last_active = self
                .replies
                .slot(self.replies.next_seq().saturating_sub(1))
                .map_or_else(Instant::now, |slot| slot.queued_at);
            state.last_command.clear();
            push_command_name(&mut state.last_command, last);
        }
        let Some(view) = view else {
            return;
        };
        state.name.clone_from(&self.session.name);
        state.user.clone_from(&self.session.user);
        state.db = self.session.db;
        state.resp = if self.session.protocol == RespVersion::Resp3 {
            3
        } else {
            2
        };
        state.subscriptions = view.subscriptions;
        state.is_in_multi = view.is_in_multi;
        state.is_tracking = view.is_tracking;
        state.is_monitor = view.is_monitor;
        state.is_no_touch = view.is_no_touch;
        state.is_no_evict = self.session.is_no_evict;
        state.lib_name.clone_from(&self.session.lib_name);
        state.lib_ver.clone_from(&self.session.lib_ver);
    }
}

impl ClientConnection {
    /// Keeps `Shared::subscribed_clients` in step with this client.
    pub(super) fn count_as_subscriber(&mut self, is_subscribed: bool) {
        if is_subscribed != self.is_counted_subscriber {
            self.is_counted_subscriber = is_subscribed;
            let id = self.session.id;
            if is_subscribed {
                self.shared
                    .subscribed_clients
                    .fetch_add(1, Ordering::AcqRel);
                // A duplicate descriptor: PUBLISH peeks at it (see `has_hung_up_subscriber`).
                let probe = socket2::SockRef::from(self.reader.as_ref())
                    .try_clone()
                    .ok();
                self.shared.clients.set_hangup_probe(id, probe);
            } else {
                self.shared
                    .subscribed_clients
                    .fetch_sub(1, Ordering::AcqRel);
                self.shared.clients.set_hangup_probe(id, None);
            }
        }
    }
}

/// One request on a fresh control connection to `addr`; the raw reply, or an error reply.
async fn control_round_trip(
    shared: &crate::shared::Shared,
    addr: SocketAddr,
    request: &[u8],
) -> Bytes {
    let config = shared.config.load_full();
    let result: Result<Bytes, LinkError> = async {
        let credentials = config.upstream_credentials();
        let mut link =
            ControlLink::connect(addr, config.connect_timeout, credentials.as_ref()).await?;
        link.round_trip(request).await
    }
    .await;
    result.unwrap_or_else(|error| {
        let mut out = BytesMut::new();
        reply::error(
            &mut out,
            &format!("ERR cannot reach the master {addr}: {error}"),
        );
        out.freeze()
    })
}

/// `container|sub` for commands with subcommands Redis lists that way, else the name.
fn push_command_name(into: &mut String, request: &Request) {
    let push_lowercase = |into: &mut String, bytes: &[u8]| {
        into.extend(
            bytes
                .iter()
                .map(|byte| char::from(byte.to_ascii_lowercase())),
        );
    };
    let name = request.name();
    push_lowercase(into, name);
    let has_sub = [
        "client", "config", "script", "function", "object", "memory", "xinfo", "command",
    ]
    .iter()
    .any(|container| name.eq_ignore_ascii_case(container.as_bytes()));
    if has_sub && let Some(sub) = request.arg(1) {
        into.push('|');
        push_lowercase(into, sub);
    }
}

fn on_off(request: &Request) -> Option<bool> {
    match request.arg(2) {
        Some(arg) if request.argc() == 3 && arg.eq_ignore_ascii_case(b"on") => Some(true),
        Some(arg) if request.argc() == 3 && arg.eq_ignore_ascii_case(b"off") => Some(false),
        _ => None,
    }
}

/// `CLIENT TRACKINGINFO` of a client without tracking.
fn tracking_off_info(out: &mut BytesMut, protocol: RespVersion) {
    reply::map_header(out, 3, protocol);
    reply::bulk(out, b"flags");
    reply::set_header(out, 1, protocol);
    reply::bulk(out, b"off");
    reply::bulk(out, b"redirect");
    reply::integer(out, -1);
    reply::bulk(out, b"prefixes");
    reply::array_header(out, 0);
}
