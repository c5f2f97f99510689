//! The pool's synchronous bookkeeping: idle servers, FIFO waiters and counts, under one
//! short mutex that is never held across an `.await`.

use std::collections::VecDeque;
use tokio::time::Instant;

use tokio::sync::oneshot;

use super::PoolError;

/// A server connection with the facts the pool needs about it.
#[derive(Debug)]
pub struct Slot<C> {
    /// The connection itself.
    pub conn: C,
    /// When the connection was opened (for `server_lifetime`).
    pub created_at: Instant,
    /// When it was last checked in (for `server_idle_timeout` and `server_check_delay`).
    pub idle_since: Instant,
    /// Pool generation it was opened in; older ones are closed on check-in (RECONNECT).
    pub generation: u64,
    /// Places taken in `max_db_connections` / `max_user_connections`; freed on drop.
    pub permits: Vec<super::BudgetPermit>,
}

/// What a waiting client receives: a server, or why it will not get one.
pub type Handoff<C> = Result<Slot<C>, PoolError>;

/// A client queued for a server.
#[derive(Debug)]
pub struct WaiterEntry<C> {
    /// Identifies the entry so a cancelled waiter can remove itself.
    pub id: u64,
    /// When the client started waiting (FIFO order, `maxwait`, reserve pool trigger).
    pub since: Instant,
    /// Where the server is handed over.
    pub tx: oneshot::Sender<Handoff<C>>,
}

/// Counts and queues of one pool. Every method is O(1) amortised (waiter removal by id
/// is O(n) but runs only when a waiter gives up).
#[derive(Debug)]
pub struct Inner<C> {
    /// Servers ready for use; the back is the most recently used (LIFO reuse).
    pub idle: VecDeque<Slot<C>>,
    /// Clients waiting for a server, oldest first.
    pub waiters: VecDeque<WaiterEntry<C>>,
    /// Servers lent to clients.
    pub active: usize,
    /// Server connections being opened.
    pub connecting: usize,
    /// While paused, no server is handed out (PAUSE, SIGUSR1).
    pub is_paused: bool,
    /// Bumped by RECONNECT: servers of an older generation are closed when released.
    pub generation: u64,
    /// The last login failure and when it happened (`server_login_retry`).
    pub login_failure: Option<(Instant, PoolError)>,
    /// A server of the current generation logged in (PgBouncer's `welcome_msg_ready`):
    /// until one does, a login the server refuses fails every waiting client at once
    /// rather than leaving them to the retry loop. Cleared by RECONNECT.
    pub is_login_verified: bool,
    next_waiter_id: u64,
}

impl<C> Default for Inner<C> {
    fn default() -> Self {
        Self {
            idle: VecDeque::new(),
            waiters: VecDeque::new(),
            active: 0,
            connecting: 0,
            is_paused: false,
            generation: 0,
            login_failure: None,
            is_login_verified: false,
            next_waiter_id: 0,
        }
    }
}

impl<C> Inner<C> {
    /// Every server of this pool: idle, lent out, or being opened.
    pub fn total(&self) -> usize {
        self.idle.len() + self.active + self.connecting
    }

    /// Whether the pool has a logged-in server of the current generation, so a failed
    /// login is not the whole story (PgBouncer's `kill_pool_logins` guard).
    pub fn has_working_server(&self) -> bool {
        self.is_login_verified && self.idle.len() + self.active > 0
    }

    /// Queues a waiter and returns its id.
    pub fn enqueue(&mut self, since: Instant, tx: oneshot::Sender<Handoff<C>>) -> u64 {
        let id = self.next_waiter_id;
        self.next_waiter_id += 1;
        self.waiters.push_back(WaiterEntry { id, since, tx });
        id
    }

    /// Removes a waiter that gave up; false if it was already served.
    pub fn remove_waiter(&mut self, id: u64) -> bool {
        match self.waiters.iter().position(|w| w.id == id) {
            Some(i) => {
                self.waiters.remove(i);
                true
            }
            None => false,
        }
    }

    /// Hands `slot` to the oldest waiter still listening; gives it back if nobody is.
    pub fn hand_to_waiter(&mut self, mut slot: Slot<C>) -> Option<Slot<C>> {
        while let Some(waiter) = self.waiters.pop_front() {
            match waiter.tx.send(Ok(slot)) {
                Ok(()) => {
                    self.active += 1;
                    return None;
                }
                // The waiter was dropped between its last poll and its Drop, which
                // removes it under this lock: try the next one.
                Err(Ok(back)) => slot = back,
                Err(Err(_)) => {
                    unreachable_handoff();
                    return None;
                }
            }
        }
        Some(slot)
    }

    /// Fails every waiter with `error` (login failure, database killed, shutdown).
    pub fn fail_waiters(&mut self, error: &PoolError) {
        for waiter in self.waiters.drain(..) {
            let _ = waiter.tx.send(Err(error.clone()));
        }
    }

    /// When the oldest waiter started waiting.
    pub fn oldest_wait(&self) -> Option<Instant> {
        self.waiters.front().map(|w| w.since)
    }
}

/// `hand_to_waiter` only ever sends `Ok`, so a returned `Err` always carries the slot.
#[cold]
fn unreachable_handoff() {
    debug_assert!(false, "hand_to_waiter sent an error value");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(n: u32) -> Slot<u32> {
        let now = Instant::now();
        Slot {
            conn: n,
            created_at: now,
            idle_since: now,
            generation: 0,
            permits: Vec::new(),
        }
    }

    #[test]
    fn waiters_are_served_in_fifo_order() {
        let mut inner = Inner::<u32>::default();
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        inner.enqueue(Instant::now(), tx1);
        inner.enqueue(Instant::now(), tx2);
        assert!(inner.hand_to_waiter(slot(7)).is_none());
        assert_eq!(rx1.try_recv().unwrap().unwrap().conn, 7);
        assert!(rx2.try_recv().is_err());
        assert_eq!(inner.active, 1);
    }

    #[test]
    fn a_dropped_waiter_is_skipped() {
        let mut inner = Inner::<u32>::default();
        let (tx1, rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        inner.enqueue(Instant::now(), tx1);
        inner.enqueue(Instant::now(), tx2);
        drop(rx1);
        assert!(inner.hand_to_waiter(slot(1)).is_none());
        assert_eq!(rx2.try_recv().unwrap().unwrap().conn, 1);
    }

    #[test]
    fn with_no_waiter_the_slot_comes_back() {
        let mut inner = Inner::<u32>::default();
        assert_eq!(inner.hand_to_waiter(slot(3)).unwrap().conn, 3);
        assert_eq!(inner.active, 0);
    }

    #[test]
    fn removing_a_waiter_by_id() {
        let mut inner = Inner::<u32>::default();
        let (tx, _rx) = oneshot::channel();
        let id = inner.enqueue(Instant::now(), tx);
        assert!(inner.remove_waiter(id));
        assert!(!inner.remove_waiter(id));
        assert!(inner.waiters.is_empty());
    }
}
