//! The pool's background task: closes idle servers past `server_idle_timeout` or
//! `server_lifetime` and keeps `min_pool_size` connections open.

use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::time::Instant;

use super::budget::BudgetMember;
use super::{Shared, is_expired};

/// How often each pool looks at its idle servers.
const MAINTENANCE_INTERVAL: Duration = Duration::from_millis(500);

pub(super) fn spawn<C: Send + 'static>(pool: Weak<Shared<C>>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(MAINTENANCE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(shared) = pool.upgrade() else { return };
            shared.expire_idle(Instant::now());
            shared.launch_connections();
        }
    });
}

impl<C: Send + 'static> Shared<C> {
    /// Closes idle servers that are too old or idle too long, keeping `min_pool_size`.
    fn expire_idle(&self, now: Instant) {
        let closed = {
            let mut inner = self.inner.lock();
            let settings = self.settings.lock();
            let generation = inner.generation;
            let mut keep = inner.total();
            let mut closed = Vec::new();
            let mut i = 0;
            while i < inner.idle.len() {
                let slot = &inner.idle[i];
                let is_old = is_expired(slot, &settings, generation, now);
                let is_idle_too_long = settings
                    .server_idle_timeout
                    .is_some_and(|t| now.duration_since(slot.idle_since) >= t)
                    && keep > settings.min_pool_size;
                if is_old || is_idle_too_long {
                    if let Some(slot) = inner.idle.remove(i) {
                        closed.push(slot);
                    }
                    keep -= 1;
                } else {
                    i += 1;
                }
            }
            closed
        };
        drop(closed);
    }
}

impl<C: Send + 'static> BudgetMember for Shared<C> {
    fn evict_one_idle(&self) -> bool {
        let slot = self.inner.lock().idle.pop_front();
        slot.is_some()
    }

    fn wake(self: Arc<Self>) {
        self.launch_connections();
    }
}
