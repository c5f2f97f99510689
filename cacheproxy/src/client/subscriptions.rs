//! `Subscriptions`: the channels, patterns and shard channels a pinned client is subscribed
//! to, tracked from the server's confirmations, so the proxy knows when Pub/Sub state ends
//! and can re-subscribe on a new master after a failover.

use std::collections::{HashSet, VecDeque};

use bytes::Bytes;
use protocol::resp::{Request, Value};

use crate::commands::PubSubKind;

/// Confirmations still expected for one (un)subscribe command.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    kind: PubSubKind,
    /// `None` for an argument-less unsubscribe: one per current subscription (at least one),
    /// known when its first confirmation arrives.
    remaining: Option<usize>,
    /// Sent by the proxy itself (re-subscription): confirmations are not forwarded.
    is_silent: bool,
}

/// What one confirmation answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirmed {
    /// A command the proxy sent itself (re-subscription): not forwarded.
    pub is_silent: bool,
    /// The last confirmation its command gets.
    pub is_last: bool,
    /// A command was waiting for it (else it is unsolicited).
    pub was_expected: bool,
}

/// A Pub/Sub frame recognised by its first element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PubSubFrame {
    /// `message`, `pmessage`, `smessage`.
    Message,
    /// A (un)subscribe confirmation.
    Confirmation {
        /// The namespace.
        kind: PubSubKind,
        /// Subscribe (true) or unsubscribe.
        is_subscribe: bool,
        /// The channel or pattern (null for an unsubscribe with nothing subscribed).
        name: Option<Bytes>,
    },
    /// Anything else (a `pong` array, a regular reply).
    Other,
}

/// Classifies a decoded frame.
pub fn classify(value: &Value) -> PubSubFrame {
    let Some(items) = value.as_array() else {
        return PubSubFrame::Other;
    };
    let Some(first) = items.first().and_then(Value::as_bytes) else {
        return PubSubFrame::Other;
    };
    let (kind, is_subscribe) = match first.to_ascii_lowercase().as_slice() {
        b"message" | b"pmessage" | b"smessage" => return PubSubFrame::Message,
        b"subscribe" => (PubSubKind::Channel, true),
        b"unsubscribe" => (PubSubKind::Channel, false),
        b"psubscribe" => (PubSubKind::Pattern, true),
        b"punsubscribe" => (PubSubKind::Pattern, false),
        b"ssubscribe" => (PubSubKind::Shard, true),
        b"sunsubscribe" => (PubSubKind::Shard, false),
        _ => return PubSubFrame::Other,
    };
    if items.len() != 3 {
        return PubSubFrame::Other;
    }
    let name = items
        .get(1)
        .and_then(Value::as_bytes)
        .map(Bytes::copy_from_slice);
    PubSubFrame::Confirmation {
        kind,
        is_subscribe,
        name,
    }
}

/// Current subscriptions and confirmations still expected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscriptions {
    channels: HashSet<Bytes>,
    patterns: HashSet<Bytes>,
    shard_channels: HashSet<Bytes>,
    expected: VecDeque<Expected>,
    /// What the subscriptions will be once every command sent is confirmed (the server
    /// decides what a pipelined command after them may do: RESP2 Pub/Sub mode).
    predicted: [HashSet<Bytes>; 3],
}

impl Subscriptions {
    fn set(&mut self, kind: PubSubKind) -> &mut HashSet<Bytes> {
        match kind {
            PubSubKind::Channel => &mut self.channels,
            PubSubKind::Pattern => &mut self.patterns,
            PubSubKind::Shard => &mut self.shard_channels,
        }
    }

    /// True when nothing is subscribed and no confirmation is pending.
    pub fn is_idle(&self) -> bool {
        self.channels.is_empty()
            && self.patterns.is_empty()
            && self.shard_channels.is_empty()
            && self.expected.is_empty()
    }

    /// Subscribed channels, patterns and shard channels (`CLIENT LIST` sub/psub/ssub).
    pub fn counts(&self) -> [usize; 3] {
        [
            self.channels.len(),
            self.patterns.len(),
            self.shard_channels.len(),
        ]
    }

    /// True while confirmations are expected.
    pub fn is_expecting(&self) -> bool {
        !self.expected.is_empty()
    }

    /// True when, once every command sent so far is confirmed, something is subscribed.
    pub fn will_be_subscribed(&self) -> bool {
        self.predicted.iter().any(|set| !set.is_empty())
    }

    /// Records a sent (un)subscribe command with `names` arguments (the channel or
    /// pattern names, for the prediction).
    pub fn on_command_names<'a>(
        &mut self,
        kind: PubSubKind,
        is_subscribe: bool,
        names: impl Iterator<Item = &'a [u8]>,
        is_silent: bool,
    ) {
        let index = kind as usize;
        let mut count = 0;
        for name in names {
            count += 1;
            if is_subscribe {
                self.predicted[index].insert(Bytes::copy_from_slice(name));
            } else {
                self.predicted[index].remove(name);
            }
        }
        if count == 0 && !is_subscribe {
            self.predicted[index].clear();
        }
        self.on_command(kind, is_subscribe, count, is_silent);
    }

    /// Records a sent (un)subscribe command with `names` arguments.
    pub fn on_command(
        &mut self,
        kind: PubSubKind,
        is_subscribe: bool,
        names: usize,
        is_silent: bool,
    ) {
        let remaining = if names == 0 && !is_subscribe {
            None
        } else {
            Some(names.max(1))
        };
        self.expected.push_back(Expected {
            kind,
            remaining,
            is_silent,
        });
    }

    /// Applies a confirmation; says whether it answers a silent (proxy-sent) command and
    /// whether it is the last one its command gets.
    pub fn on_confirmation(
        &mut self,
        kind: PubSubKind,
        is_subscribe: bool,
        name: Option<Bytes>,
    ) -> Confirmed {
        let current = self.set(kind).len();
        if let Some(name) = name {
            if is_subscribe {
                self.set(kind).insert(name);
            } else {
                self.set(kind).remove(&name);
            }
        }
        let Some(front) = self.expected.front_mut() else {
            return Confirmed {
                is_silent: false,
                is_last: false,
                was_expected: false,
            };
        };
        let is_silent = front.is_silent;
        let remaining = front.remaining.get_or_insert(current.max(1));
        *remaining = remaining.saturating_sub(1);
        let is_last = *remaining == 0;
        if is_last {
            self.expected.pop_front();
            self.settle_prediction();
        }
        Confirmed {
            is_silent,
            is_last,
            was_expected: true,
        }
    }

    /// Gives up on the oldest expected confirmation (the server answered its command with
    /// an error instead); true when it was silent.
    pub fn on_error(&mut self) -> bool {
        let is_silent = self
            .expected
            .pop_front()
            .is_some_and(|expected| expected.is_silent);
        self.settle_prediction();
        is_silent
    }

    /// With nothing pending, the prediction is what the server confirmed.
    fn settle_prediction(&mut self) {
        if self.expected.is_empty() {
            self.predicted = [
                self.channels.clone(),
                self.patterns.clone(),
                self.shard_channels.clone(),
            ];
        }
    }

    /// The commands that restore every subscription on a new connection, and the state to
    /// expect their confirmations with.
    pub fn resubscribe(&self) -> (Vec<Request>, Subscriptions) {
        let mut commands = Vec::new();
        let mut fresh = Subscriptions::default();
        for (kind, name, set) in [
            (PubSubKind::Channel, b"SUBSCRIBE".as_slice(), &self.channels),
            (
                PubSubKind::Pattern,
                b"PSUBSCRIBE".as_slice(),
                &self.patterns,
            ),
            (
                PubSubKind::Shard,
                b"SSUBSCRIBE".as_slice(),
                &self.shard_channels,
            ),
        ] {
            if set.is_empty() {
                continue;
            }
            let mut args: Vec<&[u8]> = vec![name];
            args.extend(set.iter().map(Bytes::as_ref));
            commands.push(Request::from_args(&args));
            fresh.on_command_names(kind, true, set.iter().map(Bytes::as_ref), true);
        }
        (commands, fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confirmation(kind: &'static str, name: Option<&'static str>, count: i64) -> Value {
        Value::Array(vec![
            Value::Bulk(Bytes::from_static(kind.as_bytes())),
            name.map_or(Value::Null, |name| {
                Value::Bulk(Bytes::from_static(name.as_bytes()))
            }),
            Value::Integer(count),
        ])
    }

    fn apply(subscriptions: &mut Subscriptions, value: &Value) -> bool {
        match classify(value) {
            PubSubFrame::Confirmation {
                kind,
                is_subscribe,
                name,
            } => {
                subscriptions
                    .on_confirmation(kind, is_subscribe, name)
                    .is_silent
            }
            other => panic!("not a confirmation: {other:?}"),
        }
    }

    #[test]
    fn tracks_subscribe_and_unsubscribe_all() {
        let mut subs = Subscriptions::default();
        subs.on_command(PubSubKind::Channel, true, 2, false);
        assert!(!subs.is_idle());
        apply(&mut subs, &confirmation("subscribe", Some("a"), 1));
        apply(&mut subs, &confirmation("subscribe", Some("b"), 2));
        assert!(!subs.is_expecting());
        subs.on_command(PubSubKind::Pattern, true, 1, false);
        apply(&mut subs, &confirmation("psubscribe", Some("p*"), 3));
        // UNSUBSCRIBE without arguments: one confirmation per channel; patterns stay.
        subs.on_command(PubSubKind::Channel, false, 0, false);
        apply(&mut subs, &confirmation("unsubscribe", Some("a"), 2));
        assert!(subs.is_expecting());
        apply(&mut subs, &confirmation("unsubscribe", Some("b"), 1));
        assert!(!subs.is_expecting());
        assert!(!subs.is_idle());
        subs.on_command(PubSubKind::Pattern, false, 0, false);
        apply(&mut subs, &confirmation("punsubscribe", Some("p*"), 0));
        assert!(subs.is_idle());
        // With nothing subscribed, Redis still sends one confirmation with a null name.
        subs.on_command(PubSubKind::Channel, false, 0, false);
        apply(&mut subs, &confirmation("unsubscribe", None, 0));
        assert!(subs.is_idle());
    }

    #[test]
    fn resubscription_is_silent() {
        let mut subs = Subscriptions::default();
        subs.on_command(PubSubKind::Channel, true, 1, false);
        apply(&mut subs, &confirmation("subscribe", Some("news"), 1));
        subs.on_command(PubSubKind::Shard, true, 1, false);
        apply(&mut subs, &confirmation("ssubscribe", Some("s1"), 1));
        let (commands, mut fresh) = subs.resubscribe();
        assert_eq!(commands.len(), 2);
        assert!(commands[0].is_command("SUBSCRIBE"));
        assert!(apply(
            &mut fresh,
            &confirmation("subscribe", Some("news"), 1)
        ));
        assert!(apply(
            &mut fresh,
            &confirmation("ssubscribe", Some("s1"), 1)
        ));
        assert!(!fresh.is_expecting());
    }

    #[test]
    fn classifies_messages_and_other_arrays() {
        let message = Value::Push(vec![
            Value::Bulk(Bytes::from_static(b"message")),
            Value::Bulk(Bytes::from_static(b"ch")),
            Value::Bulk(Bytes::from_static(b"hi")),
        ]);
        assert_eq!(classify(&message), PubSubFrame::Message);
        let pong = Value::Array(vec![
            Value::Bulk(Bytes::from_static(b"pong")),
            Value::Bulk(Bytes::new()),
        ]);
        assert_eq!(classify(&pong), PubSubFrame::Other);
        assert_eq!(classify(&Value::Integer(1)), PubSubFrame::Other);
    }
}
