//! What a pinned session reports about itself: its connection-scoped state for `CLIENT
//! LIST` (`PinnedView`) and what it leaves for the client to repair when lost (`LostSession`).

use super::subscriptions::Subscriptions;

/// What a lost session leaves behind for the client to repair.
#[derive(Debug)]
pub struct LostSession {
    /// Requests that will get no reply.
    pub unanswered: Vec<u64>,
    /// A transaction was open.
    pub was_in_multi: bool,
    /// Keys were watched.
    pub was_watching: bool,
    /// Subscriptions to restore.
    pub subscriptions: Subscriptions,
    /// Tracking or MONITOR was on: the client cannot be repaired.
    pub is_unrecoverable: bool,
}

/// What `CLIENT LIST` shows of a pinned connection's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PinnedView {
    /// Channel, pattern and shard-channel subscriptions.
    pub subscriptions: [usize; 3],
    /// Inside MULTI.
    pub is_in_multi: bool,
    /// `CLIENT TRACKING on`.
    pub is_tracking: bool,
    /// `CLIENT NO-TOUCH on`.
    pub is_no_touch: bool,
    /// `MONITOR`.
    pub is_monitor: bool,
}
