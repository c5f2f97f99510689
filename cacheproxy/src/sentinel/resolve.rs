//! One resolution step of the Sentinel client procedure: ask every Sentinel, order the
//! candidate addresses, confirm with `ROLE`. The ordering is pure and unit-tested.

use std::net::SocketAddr;
use std::time::Duration;

use protocol::resp::Value;
use tokio::task::JoinSet;

use crate::config::Credentials;
use crate::error::LinkError;
use crate::link::{ControlLink, describe};

/// What one Sentinel said about the master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelAnswer {
    /// Position of the Sentinel in the watcher's (reordered) list.
    pub index: usize,
    /// `get-master-addr-by-name`; `None` when the Sentinel does not know the master.
    pub master: Option<SocketAddr>,
    /// The Sentinel is leading a failover of this master (`failover_in_progress` flag).
    pub is_failing_over: bool,
    /// The `config-epoch` of the Sentinel's configuration for this master (0 when not
    /// reported). A failover bumps it when the replica is promoted; a higher epoch always
    /// supersedes a lower one (Sentinel's configuration propagation rule).
    pub config_epoch: u64,
    /// While failing over: the master being replaced (`SENTINEL master` still reports it
    /// as `ip`/`port` until the failover ends, while `get-master-addr-by-name` already names
    /// the promoted replica).
    pub failover_from: Option<SocketAddr>,
}

/// A server's answer to `ROLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// `master`.
    Master,
    /// `slave`, with its master and whether the replication link is up.
    Replica {
        /// Master host as the replica knows it.
        master_host: String,
        /// Master port.
        master_port: u16,
        /// Link state `connected`.
        is_connected: bool,
    },
    /// `-BUSY`: running a script or function past `busy-reply-threshold`. A busy server is
    /// alive (it answers); it is not a reason to hold traffic or to look for a new master.
    Busy,
    /// `sentinel` or anything else.
    Other(String),
}

/// Settings of one resolution round.
#[derive(Debug, Clone)]
pub struct ResolveSettings {
    /// Per-query timeout.
    pub timeout: Duration,
    /// Sentinel `AUTH`.
    pub sentinel_credentials: Option<Credentials>,
    /// Redis `AUTH` for ROLE probes.
    pub upstream_credentials: Option<Credentials>,
    /// The master name.
    pub master_name: String,
}

/// Asks every Sentinel at once; unreachable ones come back as errors with their index.
pub async fn ask_sentinels(
    sentinels: &[String],
    settings: &ResolveSettings,
) -> Vec<Result<SentinelAnswer, (usize, LinkError)>> {
    let mut queries = JoinSet::new();
    for (index, addr) in sentinels.iter().enumerate() {
        let addr = addr.clone();
        let settings = settings.clone();
        queries.spawn(async move {
            ask_sentinel(index, &addr, &settings)
                .await
                .map_err(|error| (index, error))
        });
    }
    let mut answers = Vec::with_capacity(sentinels.len());
    while let Some(joined) = queries.join_next().await {
        if let Ok(answer) = joined {
            answers.push(answer);
        }
    }
    answers.sort_by_key(|answer| match answer {
        Ok(answer) => answer.index,
        Err((index, _)) => *index,
    });
    answers
}

async fn ask_sentinel(
    index: usize,
    addr: &str,
    settings: &ResolveSettings,
) -> Result<SentinelAnswer, LinkError> {
    let mut link = ControlLink::connect(
        addr,
        settings.timeout,
        settings.sentinel_credentials.as_ref(),
    )
    .await?;
    let name = settings.master_name.as_bytes();
    link.send(&[
        &[b"SENTINEL", b"get-master-addr-by-name", name],
        &[b"SENTINEL", b"master", name],
    ])
    .await?;
    let addr_reply = link.read_value().await?;
    let master_reply = link.read_value().await?;
    let master = match &addr_reply {
        value if value.is_null() => None,
        Value::Array(items) => match items.as_slice() {
            [host, port] => {
                let host = host.as_str().ok_or_else(|| bad_address(&addr_reply))?;
                let port = port
                    .as_integer()
                    .and_then(|port| u16::try_from(port).ok())
                    .ok_or_else(|| bad_address(&addr_reply))?;
                Some(lookup(host, port).await?)
            }
            _ => return Err(bad_address(&addr_reply)),
        },
        other => return Err(bad_address(other)),
    };
    let field = |name: &str| master_reply.get(name).and_then(Value::as_str);
    let is_failing_over = field("flags")
        .is_some_and(|flags| flags.split(',').any(|flag| flag == "failover_in_progress"));
    let config_epoch = field("config-epoch")
        .and_then(|epoch| epoch.parse().ok())
        .unwrap_or_default();
    let failover_from = match (is_failing_over, field("ip"), field("port")) {
        (true, Some(host), Some(port)) => match port.parse::<u16>() {
            Ok(port) => lookup(host, port).await.ok(),
            Err(_) => None,
        },
        _ => None,
    };
    Ok(SentinelAnswer {
        index,
        master,
        is_failing_over,
        config_epoch,
        failover_from,
    })
}

/// The highest `config-epoch` among the answers that name a master.
pub fn newest_epoch(answers: &[SentinelAnswer]) -> Option<u64> {
    answers
        .iter()
        .filter(|answer| answer.master.is_some())
        .map(|answer| answer.config_epoch)
        .max()
}

/// True when a Sentinel is failing `candidate` over: it must not be (re)confirmed even
/// though it still answers `ROLE master`. Without the failing-over Sentinel's view of the
/// old address, the master confirmed last (`current`) is assumed to be the one replaced.
pub fn is_being_replaced(
    answers: &[SentinelAnswer],
    candidate: SocketAddr,
    current: Option<SocketAddr>,
) -> bool {
    answers
        .iter()
        .filter(|answer| answer.is_failing_over)
        .any(|answer| match answer.failover_from {
            Some(from) => from == candidate,
            None => Some(candidate) == current,
        })
}

fn bad_address(reply: &Value) -> LinkError {
    LinkError::unexpected("SENTINEL get-master-addr-by-name", describe(reply))
}

/// Resolves `host:port` to its first address.
pub async fn lookup(host: &str, port: u16) -> Result<SocketAddr, LinkError> {
    tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| LinkError::Io {
            what: "resolve host",
            source,
        })?
        .next()
        .ok_or_else(|| LinkError::unexpected("resolve host", format!("{host} has no address")))
}

/// Connects to `addr` and asks `ROLE`.
pub async fn probe_role(
    addr: SocketAddr,
    timeout: Duration,
    credentials: Option<&Credentials>,
) -> Result<Role, LinkError> {
    let mut link = ControlLink::connect(addr, timeout, credentials).await?;
    let reply = link.command(&[b"ROLE"]).await?;
    parse_role(&reply)
}

/// Parses a `ROLE` reply.
pub fn parse_role(reply: &Value) -> Result<Role, LinkError> {
    if reply.is_error()
        && reply
            .as_bytes()
            .is_some_and(|text| text.starts_with(b"BUSY"))
    {
        return Ok(Role::Busy);
    }
    let items = reply
        .as_array()
        .ok_or_else(|| LinkError::unexpected("ROLE", describe(reply)))?;
    match items.first().and_then(Value::as_str) {
        Some("master") => Ok(Role::Master),
        Some("slave") => {
            let master_host = items.get(1).and_then(Value::as_str).unwrap_or_default();
            let master_port = items
                .get(2)
                .and_then(Value::as_integer)
                .and_then(|port| u16::try_from(port).ok())
                .unwrap_or_default();
            let state = items.get(3).and_then(Value::as_str).unwrap_or_default();
            Ok(Role::Replica {
                master_host: master_host.to_owned(),
                master_port,
                is_connected: state == "connected",
            })
        }
        Some(other) => Ok(Role::Other(other.to_owned())),
        None => Err(LinkError::unexpected("ROLE", describe(reply))),
    }
}

/// The addresses to confirm with `ROLE`, best first.
///
/// Only answers with the newest `config-epoch` count: a Sentinel that has not yet learned
/// of a failover still names the old master with the previous epoch, and that old master
/// answers `ROLE master` when it comes back until Sentinel demotes it. Among those answers,
/// normally the address a strict majority of answering Sentinels report comes first. During
/// a failover (`is_holding`, a Sentinel leading one, or no majority), addresses other than
/// `current` come first: the leader announces the promoted replica before the others, and
/// the old master keeps answering `ROLE master` until it is demoted.
pub fn order_candidates(
    answers: &[SentinelAnswer],
    current: Option<SocketAddr>,
    is_holding: bool,
) -> Vec<SocketAddr> {
    let newest = newest_epoch(answers);
    let answers: Vec<&SentinelAnswer> = answers
        .iter()
        .filter(|answer| Some(answer.config_epoch) == newest)
        .collect();
    let mut votes: Vec<(SocketAddr, usize, usize)> = Vec::new();
    for answer in &answers {
        let Some(addr) = answer.master else { continue };
        match votes.iter_mut().find(|(known, _, _)| *known == addr) {
            Some((_, count, _)) => *count += 1,
            None => votes.push((addr, 1, answer.index)),
        }
    }
    let answered: usize = votes.iter().map(|(_, count, _)| count).sum();
    let is_failing_over = answers.iter().any(|answer| answer.is_failing_over);
    let majority = votes
        .iter()
        .find(|(_, count, _)| count * 2 > answered)
        .map(|(addr, _, _)| *addr);
    let prefer_new = is_holding || is_failing_over || majority.is_none();
    votes.sort_by_key(|(addr, count, index)| {
        let rank = if prefer_new {
            usize::from(Some(*addr) == current)
        } else {
            usize::from(Some(*addr) != majority)
        };
        (rank, usize::MAX - count, *index)
    });
    votes.into_iter().map(|(addr, _, _)| addr).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn answer(index: usize, port: Option<u16>, is_failing_over: bool) -> SentinelAnswer {
        SentinelAnswer {
            index,
            master: port.map(addr),
            is_failing_over,
            config_epoch: 0,
            failover_from: None,
        }
    }

    fn at_epoch(answer: SentinelAnswer, config_epoch: u64) -> SentinelAnswer {
        SentinelAnswer {
            config_epoch,
            ..answer
        }
    }

    #[test]
    fn an_older_config_epoch_never_wins() {
        // The leader promoted 2 (epoch 5) and still leads the failover; the others have not
        // heard of it and name the old master 1 (epoch 4), which answers ROLE master again
        // once it is back. Whatever the proxy confirmed last, 1 is no candidate.
        let answers = [
            at_epoch(answer(0, Some(1), false), 4),
            at_epoch(answer(1, Some(2), true), 5),
            at_epoch(answer(2, Some(1), false), 4),
        ];
        for current in [Some(addr(1)), Some(addr(2)), None] {
            for is_holding in [false, true] {
                assert_eq!(
                    order_candidates(&answers, current, is_holding),
                    vec![addr(2)]
                );
            }
        }
        assert_eq!(newest_epoch(&answers), Some(5));
        // A Sentinel that does not know the master does not count.
        let unknown = [
            answer(0, None, false),
            at_epoch(answer(1, Some(1), false), 3),
        ];
        assert_eq!(newest_epoch(&unknown), Some(3));
        assert_eq!(newest_epoch(&[answer(0, None, false)]), None);
    }

    #[test]
    fn only_the_master_being_failed_over_is_held() {
        let leader = |port: u16, from: Option<u16>| SentinelAnswer {
            failover_from: from.map(addr),
            ..answer(0, Some(port), true)
        };
        // Before the promotion the leader still names the old master: hold it.
        assert!(is_being_replaced(
            &[leader(1, Some(1))],
            addr(1),
            Some(addr(2))
        ));
        // After it, the promoted replica is the answer and may be confirmed, even when it
        // is already the current master; the old one may not.
        assert!(!is_being_replaced(
            &[leader(2, Some(1))],
            addr(2),
            Some(addr(2))
        ));
        assert!(is_being_replaced(
            &[leader(2, Some(1))],
            addr(1),
            Some(addr(2))
        ));
        // Without the old address, the current master is assumed to be the one replaced.
        assert!(is_being_replaced(
            &[leader(2, None)],
            addr(1),
            Some(addr(1))
        ));
        assert!(!is_being_replaced(
            &[leader(2, None)],
            addr(2),
            Some(addr(1))
        ));
        // No failover, nothing held.
        assert!(!is_being_replaced(
            &[answer(0, Some(1), false)],
            addr(1),
            Some(addr(1))
        ));
    }

    #[test]
    fn majority_wins_when_stable() {
        let answers = [
            answer(0, Some(2), false),
            answer(1, Some(1), false),
            answer(2, Some(1), false),
        ];
        assert_eq!(
            order_candidates(&answers, Some(addr(1)), false),
            vec![addr(1), addr(2)]
        );
        // A lying first Sentinel does not win over the majority.
        assert_eq!(
            order_candidates(&answers, None, false),
            vec![addr(1), addr(2)]
        );
    }

    #[test]
    fn the_new_address_comes_first_during_a_failover() {
        // The leader already names the promoted replica; the others still name the old master.
        let answers = [
            answer(0, Some(1), false),
            answer(1, Some(2), true),
            answer(2, Some(1), false),
        ];
        assert_eq!(
            order_candidates(&answers, Some(addr(1)), false),
            vec![addr(2), addr(1)]
        );
        let quiet = [
            answer(0, Some(1), false),
            answer(1, Some(2), false),
            answer(2, Some(1), false),
        ];
        assert_eq!(
            order_candidates(&quiet, Some(addr(1)), true),
            vec![addr(2), addr(1)]
        );
    }

    #[test]
    fn unknown_and_missing_answers() {
        assert!(order_candidates(&[answer(0, None, false)], None, false).is_empty());
        let split = [answer(0, Some(1), false), answer(1, Some(2), false)];
        assert_eq!(
            order_candidates(&split, Some(addr(1)), false),
            vec![addr(2), addr(1)]
        );
    }

    #[test]
    fn parses_role_replies() {
        use bytes::Bytes;
        let bulk = |text: &'static str| Value::Bulk(Bytes::from_static(text.as_bytes()));
        let master = Value::Array(vec![
            bulk("master"),
            Value::Integer(10),
            Value::Array(vec![]),
        ]);
        assert_eq!(parse_role(&master).unwrap(), Role::Master);
        let busy = Value::Error(bytes::Bytes::from_static(
            b"BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
        ));
        assert_eq!(parse_role(&busy).unwrap(), Role::Busy);
        let replica = Value::Array(vec![
            bulk("slave"),
            bulk("127.0.0.1"),
            Value::Integer(6379),
            bulk("connected"),
            Value::Integer(10),
        ]);
        assert_eq!(
            parse_role(&replica).unwrap(),
            Role::Replica {
                master_host: "127.0.0.1".to_owned(),
                master_port: 6379,
                is_connected: true
            }
        );
        assert!(parse_role(&Value::Integer(1)).is_err());
        assert!(parse_role(&Value::Array(vec![])).is_err());
    }
}
