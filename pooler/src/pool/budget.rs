//! Connection budgets shared by several pools: `max_db_connections` (all pools of a
//! database) and `max_user_connections` (all pools of a user).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

/// A pool, as seen by a budget it draws from.
pub trait BudgetMember: Send + Sync {
    /// Closes one idle server to give its place to a starving pool; false if none.
    fn evict_one_idle(&self) -> bool;
    /// A place was freed: try opening the connections that were refused.
    fn wake(self: Arc<Self>);
}

/// A cap on server connections shared by pools. `max == 0` means unlimited.
pub struct Budget {
    name: String,
    max: AtomicUsize,
    current: AtomicUsize,
    members: Mutex<Vec<Weak<dyn BudgetMember>>>,
    starving: Mutex<Vec<Weak<dyn BudgetMember>>>,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("name", &self.name)
            .field("max", &self.max.load(Ordering::Relaxed))
            .field("current", &self.current.load(Ordering::Relaxed))
            .finish()
    }
}

/// One place taken in a [`Budget`]; given back on drop.
pub struct BudgetPermit {
    budget: Arc<Budget>,
}

impl std::fmt::Debug for BudgetPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetPermit")
            .field("budget", &self.budget.name)
            .finish()
    }
}

impl Budget {
    /// A budget of `max` connections (0 = unlimited) named for logs.
    pub fn new(name: impl Into<String>, max: usize) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            max: AtomicUsize::new(max),
            current: AtomicUsize::new(0),
            members: Mutex::new(Vec::new()),
            starving: Mutex::new(Vec::new()),
        })
    }

    /// Changes the cap (RELOAD). Connections above a lowered cap close as they retire.
    pub fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
    }

    /// Connections currently counted.
    pub fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    /// The cap (0 = unlimited).
    pub fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }

    pub(crate) fn register(&self, member: Weak<dyn BudgetMember>) {
        let mut members = self.members.lock();
        members.retain(|m| m.strong_count() > 0);
        members.push(member);
    }

    /// Whether some pool is waiting for a place.
    pub fn has_starving_pools(&self) -> bool {
        !self.starving.lock().is_empty()
    }

    /// Takes a place, or records `requester` as starving and evicts an idle server of
    /// another pool so a place frees up. Must not be called with a pool lock held.
    pub(crate) fn try_acquire(
        self: &Arc<Self>,
        requester: Weak<dyn BudgetMember>,
    ) -> Option<BudgetPermit> {
        let taken = self
            .current
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                let max = self.max.load(Ordering::Relaxed);
                (max == 0 || n < max).then_some(n + 1)
            });
        if taken.is_ok() {
            return Some(BudgetPermit {
                budget: Arc::clone(self),
            });
        }
        {
            let mut starving = self.starving.lock();
            if !starving.iter().any(|m| Weak::ptr_eq(m, &requester)) {
                starving.push(requester.clone());
            }
        }
        let members: Vec<_> = self
            .members
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for member in members {
            let is_requester = Weak::ptr_eq(&Arc::downgrade(&member), &requester);
            if !is_requester && member.evict_one_idle() {
                break;
            }
        }
        None
    }
}

impl Drop for BudgetPermit {
    fn drop(&mut self) {
        self.budget.current.fetch_sub(1, Ordering::AcqRel);
        let next = {
            let mut starving = self.budget.starving.lock();
            if starving.is_empty() {
                None
            } else {
                Some(starving.remove(0))
            }
        };
        if let Some(member) = next.and_then(|m| m.upgrade()) {
            // Woken from a fresh task: this drop may run under another pool's lock.
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move { member.wake() });
            }
        }
    }
}
