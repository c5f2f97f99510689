//! RAII loans: [`Waiting`] leaves the queue when dropped, [`PooledServer`] goes back to
//! the pool (or is closed) when dropped, so every timeout and cancellation is safe.

use std::ops::{Deref, DerefMut};
use std::time::Duration;
use tokio::time::Instant;

use tokio::sync::oneshot;

use super::inner::{Handoff, Slot};
use super::{Pool, PoolError, PoolSettings};

enum WaitState<C> {
    Ready(Slot<C>),
    Failed(PoolError),
    Queued {
        id: u64,
        rx: oneshot::Receiver<Handoff<C>>,
    },
    Done,
}

/// A client's place in a pool's queue.
///
/// N.B. call and await [`Waiting::wait`]; dropping a `Waiting` at any point is safe (it
/// leaves the queue and returns a server handed over in the meantime).
pub struct Waiting<C: Send + 'static> {
    pool: Pool<C>,
    state: WaitState<C>,
    since: Instant,
    settings: Option<PoolSettings>,
}

impl<C: Send + 'static> Waiting<C> {
    pub(super) fn ready(pool: Pool<C>, slot: Slot<C>, since: Instant) -> Self {
        Self {
            pool,
            state: WaitState::Ready(slot),
            since,
            settings: None,
        }
    }

    pub(super) fn failed(pool: Pool<C>, error: PoolError) -> Self {
        Self {
            pool,
            state: WaitState::Failed(error),
            since: Instant::now(),
            settings: None,
        }
    }

    pub(super) fn queued(
        pool: Pool<C>,
        id: u64,
        rx: oneshot::Receiver<Handoff<C>>,
        since: Instant,
        settings: PoolSettings,
    ) -> Self {
        Self {
            pool,
            state: WaitState::Queued { id, rx },
            since,
            settings: Some(settings),
        }
    }

    /// Whether a server was available at once (no waiting needed).
    pub fn is_ready(&self) -> bool {
        matches!(self.state, WaitState::Ready(_))
    }

    /// Waits for a server: until one is handed over, the pool fails the waiters, or
    /// `query_wait_timeout` passes. Triggers the reserve pool after
    /// `reserve_pool_timeout`.
    pub async fn wait(mut self) -> Result<PooledServer<C>, PoolError> {
        match std::mem::replace(&mut self.state, WaitState::Done) {
            WaitState::Ready(slot) => return Ok(self.loan(slot)),
            WaitState::Failed(error) => return Err(error),
            WaitState::Done => return Err(PoolError::Closed("pool wait reused")),
            queued @ WaitState::Queued { .. } => self.state = queued,
        }
        let settings = self.settings.take().unwrap_or_default();
        let reserve_at = settings
            .reserve_pool_timeout
            .filter(|_| settings.reserve_pool_size > 0)
            .map(|t| self.since + t);
        let deadline = settings.query_wait_timeout.map(|t| self.since + t);
        let mut is_reserve_pending = reserve_at.is_some();
        loop {
            let WaitState::Queued { rx, .. } = &mut self.state else {
                return Err(PoolError::Closed("pool wait state lost"));
            };
            tokio::select! {
                handoff = rx => {
                    self.state = WaitState::Done;
                    return match handoff {
                        Ok(Ok(slot)) => Ok(self.loan(slot)),
                        Ok(Err(error)) => Err(error),
                        Err(_) => Err(PoolError::Closed("pool closed")),
                    };
                }
                () = sleep_until(reserve_at), if is_reserve_pending => {
                    is_reserve_pending = false;
                    self.pool.launch_reserve();
                }
                () = sleep_until(deadline), if deadline.is_some() => {
                    return Err(PoolError::QueryWaitTimeout);
                }
            }
        }
    }

    fn loan(&self, slot: Slot<C>) -> PooledServer<C> {
        PooledServer {
            pool: self.pool.clone(),
            slot: Some(slot),
            waited: self.since.elapsed(),
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl<C: Send + 'static> Drop for Waiting<C> {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.state, WaitState::Done) {
            WaitState::Queued { id, mut rx } => {
                let was_queued = self.pool.shared.inner.lock().remove_waiter(id);
                if !was_queued && let Ok(Ok(slot)) = rx.try_recv() {
                    // Handed over after we gave up: give it back.
                    self.pool.checkin(slot);
                }
            }
            WaitState::Ready(slot) => self.pool.checkin(slot),
            WaitState::Failed(_) | WaitState::Done => {}
        }
    }
}

/// A server lent to a client.
///
/// N.B. call [`PooledServer::checkin`] only when the server is idle and clean (no
/// transaction, nothing in flight). Dropping it otherwise closes the connection: a
/// server in an unknown state is never handed to another client.
pub struct PooledServer<C: Send + 'static> {
    pool: Pool<C>,
    slot: Option<Slot<C>>,
    /// How long the client waited for it.
    pub waited: Duration,
}

impl<C: Send + 'static> PooledServer<C> {
    /// Gives the server back for reuse.
    pub fn checkin(mut self) {
        if let Some(slot) = self.slot.take() {
            self.pool.checkin(slot);
        }
    }

    /// The pool it came from.
    pub fn pool(&self) -> &Pool<C> {
        &self.pool
    }

    /// Whether a RECONNECT or a lifetime expiry asks for this server to be closed when
    /// released (`close_needed`).
    pub fn is_close_needed(&self) -> bool {
        let Some(slot) = &self.slot else { return true };
        let generation = self.pool.shared.inner.lock().generation;
        slot.generation != generation
    }

    /// When the connection was opened.
    pub fn created_at(&self) -> Instant {
        self.slot
            .as_ref()
            .map(|s| s.created_at)
            .unwrap_or_else(Instant::now)
    }

    /// When the server was last released (before this loan).
    pub fn idle_since(&self) -> Instant {
        self.slot
            .as_ref()
            .map(|s| s.idle_since)
            .unwrap_or_else(Instant::now)
    }
}

impl<C: Send + 'static> Deref for PooledServer<C> {
    type Target = C;
    fn deref(&self) -> &C {
        // The slot is only taken by checkin(self) and drop.
        &self
            .slot
            .as_ref()
            .expect("PooledServer used after checkin")
            .conn
    }
}

impl<C: Send + 'static> DerefMut for PooledServer<C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self
            .slot
            .as_mut()
            .expect("PooledServer used after checkin")
            .conn
    }
}

impl<C: Send + 'static> Drop for PooledServer<C> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.pool.discard(slot);
        }
    }
}
