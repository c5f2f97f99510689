//! Sentinel Pub/Sub: `+switch-master` and the failover events → `SentinelEvent`, and one
//! subscriber task per Sentinel that nudges the watcher (events are an accelerator only).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{Nudge, ResolveHandle};
use crate::error::LinkError;
use crate::link::ControlLink;
use crate::shared::Shared;

/// An event about the watched master, reduced to what the watcher does with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SentinelEvent {
    /// A failover of the master started or moved on (`+try-failover` … `+failover-state-reconf-slaves`):
    /// hold new commands until the outcome is known. Holds the event name.
    FailoverStep(String),
    /// A Sentinel considers the master down (`+sdown`/`+odown` of the master).
    MasterDown(String),
    /// The master is back up (`-sdown`/`-odown`).
    MasterUp,
    /// A failover ended or was aborted.
    FailoverEnded(String),
    /// `+switch-master`: the Sentinel's new master address.
    SwitchMaster {
        /// New master host as announced.
        host: String,
        /// New master port.
        port: u16,
    },
    /// A replica (or the old master) changed state: refresh the replica list.
    ReplicasChanged,
}

impl SentinelEvent {
    /// True for events that mean "stop sending to the current master for now".
    pub fn is_hold(&self) -> bool {
        matches!(
            self,
            SentinelEvent::FailoverStep(_) | SentinelEvent::MasterDown(_)
        )
    }
}

/// Channels the subscribers listen to (the channel name is the event name).
pub const CHANNELS: &[&str] = &[
    "+switch-master",
    "+sdown",
    "-sdown",
    "+odown",
    "-odown",
    "+try-failover",
    "+elected-leader",
    "+failover-state-select-slave",
    "+selected-slave",
    "+failover-state-send-slaveof-noone",
    "+failover-state-wait-promotion",
    "+promoted-slave",
    "+failover-state-reconf-slaves",
    "+failover-end",
    "+failover-end-for-timeout",
    "-failover-abort-not-elected",
    "-failover-abort-no-good-slave",
    "-failover-abort-slave-timeout",
    "+convert-to-slave",
    "+slave",
    "+reboot",
    "+role-change",
    "-role-change",
    "+slave-reconf-done",
];

const FAILOVER_STEPS: &[&str] = &[
    "+try-failover",
    "+elected-leader",
    "+failover-state-select-slave",
    "+selected-slave",
    "+failover-state-send-slaveof-noone",
    "+failover-state-wait-promotion",
    "+promoted-slave",
    "+failover-state-reconf-slaves",
];

/// Parses one event message; `None` when it is about another master or irrelevant.
pub fn parse_event(channel: &str, payload: &str, master_name: &str) -> Option<SentinelEvent> {
    let tokens: Vec<&str> = payload.split_ascii_whitespace().collect();
    if channel == "+switch-master" {
        return match tokens.as_slice() {
            [name, _old_ip, _old_port, new_ip, new_port, ..] if *name == master_name => {
                Some(SentinelEvent::SwitchMaster {
                    host: (*new_ip).to_owned(),
                    port: new_port.parse().ok()?,
                })
            }
            _ => None,
        };
    }
    // Instance details: `<type> <name> <ip> <port> [@ <master-name> <master-ip> <master-port>]`.
    let instance_type = *tokens.first()?;
    let concerns = match tokens.iter().position(|token| *token == "@") {
        Some(at) => tokens.get(at + 1).copied(),
        None if instance_type == "master" => tokens.get(1).copied(),
        None => None,
    };
    if concerns != Some(master_name) {
        return None;
    }
    let is_master = instance_type == "master";
    Some(match channel {
        step if FAILOVER_STEPS.contains(&step) => SentinelEvent::FailoverStep(step.to_owned()),
        "+sdown" | "+odown" if is_master => SentinelEvent::MasterDown(channel.to_owned()),
        "-sdown" | "-odown" if is_master => SentinelEvent::MasterUp,
        "+failover-end"
        | "+failover-end-for-timeout"
        | "-failover-abort-not-elected"
        | "-failover-abort-no-good-slave"
        | "-failover-abort-slave-timeout" => SentinelEvent::FailoverEnded(channel.to_owned()),
        _ if instance_type == "sentinel" => return None,
        _ => SentinelEvent::ReplicasChanged,
    })
}

/// Keeps a subscription open on Sentinel `addr` until `shutdown`, reconnecting with backoff.
pub async fn run_subscriber(
    addr: String,
    shared: Arc<Shared>,
    resolver: ResolveHandle,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let outcome = tokio::select! {
            outcome = subscribe_once(&addr, &shared, &resolver) => outcome,
            () = shutdown.cancelled() => return,
        };
        if let Err(error) = outcome {
            debug!(sentinel = %addr, %error, "sentinel event subscription lost");
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

async fn subscribe_once(
    addr: &str,
    shared: &Shared,
    resolver: &ResolveHandle,
) -> Result<(), LinkError> {
    let (timeout, credentials, master_name) = {
        let config = shared.config.load();
        (
            config.connect_timeout,
            config.sentinel_credentials(),
            config.master_name.clone(),
        )
    };
    let mut link = ControlLink::connect(addr, timeout, credentials.as_ref()).await?;
    let mut subscribe: Vec<&[u8]> = vec![b"SUBSCRIBE"];
    subscribe.extend(CHANNELS.iter().map(|channel| channel.as_bytes()));
    link.send(&[&subscribe]).await?;
    // The confirmations prove the link works before the watcher is told to catch up.
    for _ in CHANNELS {
        let confirmation = link.read_value().await?;
        if confirmation.is_error() {
            return Err(LinkError::unexpected(
                "SUBSCRIBE",
                crate::link::describe(&confirmation),
            ));
        }
    }
    resolver.nudge(Nudge::SubscriberConnected);
    loop {
        let message = link.read_value_unbounded().await?;
        let Some([kind, channel, payload]) = message.as_array() else {
            continue;
        };
        if kind.as_bytes() != Some(b"message".as_slice()) {
            continue;
        }
        let (Some(channel), Some(payload)) = (channel.as_str(), payload.as_str()) else {
            continue;
        };
        if let Some(event) = parse_event(channel, payload, &master_name) {
            debug!(sentinel = %addr, ?event, "sentinel event");
            resolver.nudge(Nudge::Event(event));
        }
    }
}

/// Test helper: a message value as a Sentinel would send it.
#[cfg(test)]
fn message(channel: &str, payload: &str) -> protocol::resp::Value {
    use bytes::Bytes;
    use protocol::resp::Value;
    Value::Array(vec![
        Value::Bulk(Bytes::from_static(b"message")),
        Value::Bulk(Bytes::copy_from_slice(channel.as_bytes())),
        Value::Bulk(Bytes::copy_from_slice(payload.as_bytes())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_events_that_matter() {
        let name = "mymaster";
        assert_eq!(
            parse_event(
                "+switch-master",
                "mymaster 127.0.0.1 6379 127.0.0.1 6380",
                name
            ),
            Some(SentinelEvent::SwitchMaster {
                host: "127.0.0.1".to_owned(),
                port: 6380
            })
        );
        assert_eq!(
            parse_event("+switch-master", "other 1.1.1.1 1 2.2.2.2 2", name),
            None
        );
        assert_eq!(
            parse_event("+try-failover", "master mymaster 127.0.0.1 6379", name),
            Some(SentinelEvent::FailoverStep("+try-failover".to_owned()))
        );
        assert_eq!(
            parse_event(
                "+selected-slave",
                "slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379",
                name
            ),
            Some(SentinelEvent::FailoverStep("+selected-slave".to_owned()))
        );
        assert!(
            parse_event("+sdown", "master mymaster 127.0.0.1 6379", name)
                .unwrap()
                .is_hold()
        );
        assert_eq!(
            parse_event(
                "+sdown",
                "slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379",
                name
            ),
            Some(SentinelEvent::ReplicasChanged)
        );
        assert_eq!(
            parse_event("-odown", "master mymaster 127.0.0.1 6379", name),
            Some(SentinelEvent::MasterUp)
        );
        assert_eq!(
            parse_event(
                "-failover-abort-no-good-slave",
                "master mymaster 127.0.0.1 6379",
                name
            ),
            Some(SentinelEvent::FailoverEnded(
                "-failover-abort-no-good-slave".to_owned()
            ))
        );
        assert_eq!(
            parse_event(
                "+sdown",
                "sentinel 1.2.3.4:26379 1.2.3.4 26379 @ mymaster 127.0.0.1 6379",
                name
            ),
            None
        );
        assert_eq!(
            parse_event("+odown", "master other 1.1.1.1 1 #quorum 2/2", name),
            None
        );
        assert_eq!(parse_event("+sdown", "", name), None);
        assert_eq!(
            parse_event("+switch-master", "mymaster a b c notaport", name),
            None
        );
    }

    #[test]
    fn message_shape_is_what_the_subscriber_reads() {
        let value = message("+sdown", "master mymaster 127.0.0.1 6379");
        let Some([kind, channel, payload]) = value.as_array() else {
            panic!("three elements");
        };
        assert_eq!(kind.as_bytes(), Some(b"message".as_slice()));
        let event = parse_event(
            channel.as_str().unwrap(),
            payload.as_str().unwrap(),
            "mymaster",
        );
        assert_eq!(event, Some(SentinelEvent::MasterDown("+sdown".to_owned())));
    }
}
