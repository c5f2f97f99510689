//! `Topology`: the master (or why there is none right now) and the healthy replicas, as the
//! Sentinel watcher last confirmed them, published on a `watch` channel.

use std::net::SocketAddr;
use std::sync::Arc;

/// Whether commands may be sent to a master now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterState {
    /// The master at this address answered `ROLE master` on the last check.
    Ready(SocketAddr),
    /// No usable master: a failover is in progress or nothing could be confirmed. New
    /// commands wait (up to `failover_timeout`) for the next `Ready`.
    Unavailable {
        /// The master before this state began, if any.
        last: Option<SocketAddr>,
        /// Why, for error replies and logs.
        reason: Arc<str>,
    },
}

/// The upstream servers as last confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// The master, or why there is none.
    pub master: MasterState,
    /// Replicas that are healthy and replicate from the master.
    pub replicas: Arc<[SocketAddr]>,
    /// Bumped whenever a different master is confirmed (the first one is epoch 1).
    /// Connections of an older epoch are retired.
    pub epoch: u64,
    /// Bumped after every resolution, even when nothing changed: a connection that lost
    /// its upstream waits for the next generation before reconnecting.
    pub generation: u64,
}

impl Topology {
    /// The state before anything was resolved.
    pub fn initial() -> Topology {
        Topology {
            master: MasterState::Unavailable {
                last: None,
                reason: Arc::from("the master has not been resolved yet"),
            },
            replicas: Arc::from(Vec::new()),
            epoch: 0,
            generation: 0,
        }
    }

    /// The master's address when it is ready.
    pub fn master_addr(&self) -> Option<SocketAddr> {
        match self.master {
            MasterState::Ready(addr) => Some(addr),
            MasterState::Unavailable { .. } => None,
        }
    }
}
