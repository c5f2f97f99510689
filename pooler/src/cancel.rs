//! Cancel requests: each client gets its own (pid, key); a CancelRequest carrying it is
//! forwarded, on a fresh connection, to the server running that client's query, and only
//! to that one: a server with a cancel in flight is not handed to another client until
//! PostgreSQL has acted on it (PgBouncer's "being canceled" servers).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use rand::RngExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

/// Longest time a cancel connection may take to be closed by PostgreSQL (which closes
/// it once it has signalled the backend); the server waiting on it is closed after that.
pub const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

/// Cancel requests forwarded to one server connection that PostgreSQL has not finished
/// yet. The server's next client could otherwise be the one canceled.
#[derive(Debug, Default)]
pub struct CancelsInFlight {
    count: AtomicUsize,
    finished: Notify,
}

impl CancelsInFlight {
    fn begin(self: &Arc<Self>) -> InFlight {
        self.count.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(self))
    }

    /// Waits until no cancel is in flight; false if one is still running after `limit`
    /// (the caller closes the server instead of reusing it).
    pub async fn wait_finished(&self, limit: Duration) -> bool {
        if self.count.load(Ordering::SeqCst) == 0 {
            return true;
        }
        let wait = async {
            loop {
                let finished = self.finished.notified();
                tokio::pin!(finished);
                finished.as_mut().enable();
                if self.count.load(Ordering::SeqCst) == 0 {
                    return;
                }
                finished.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}

/// One cancel in flight; finished when dropped.
struct InFlight(Arc<CancelsInFlight>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::SeqCst);
        self.0.finished.notify_waiters();
    }
}

use crate::net::KeepaliveOptions;
use crate::pool::PooledServer;
use crate::server::{ServerConnection, ServerEndpoint};

/// Where a client's cancel goes while it is linked to a server.
#[derive(Debug, Clone)]
struct CancelTarget {
    endpoint: Arc<ServerEndpoint>,
    pid: u32,
    key: Bytes,
    in_flight: Arc<CancelsInFlight>,
}

#[derive(Debug, Default)]
struct Slot {
    target: Mutex<Option<CancelTarget>>,
}

/// A client's BackendKeyData as the pooler issued it: (pid, secret key).
type CancelKey = (u32, [u8; 4]);

/// Every logged-in client's cancel key.
#[derive(Debug, Default)]
pub struct CancelRegistry {
    clients: Mutex<HashMap<CancelKey, Arc<Slot>>>,
}

/// A client's registration; unregisters on drop.
#[derive(Debug)]
pub struct CancelHandle {
    registry: Arc<CancelRegistry>,
    slot: Arc<Slot>,
    /// The pid the client was given in BackendKeyData.
    pub pid: u32,
    /// The secret key the client was given.
    pub key: [u8; 4],
}

impl CancelRegistry {
    /// Gives a new client a unique random (pid, key).
    pub fn register(self: &Arc<Self>) -> CancelHandle {
        let mut rng = rand::rng();
        let slot = Arc::new(Slot::default());
        let mut clients = self.clients.lock();
        loop {
            let pid: u32 = rng.random_range(1..=i32::MAX as u32);
            let key: [u8; 4] = rng.random();
            if let std::collections::hash_map::Entry::Vacant(e) = clients.entry((pid, key)) {
                e.insert(Arc::clone(&slot));
                return CancelHandle {
                    registry: Arc::clone(self),
                    slot,
                    pid,
                    key,
                };
            }
        }
    }

    /// Forwards a CancelRequest to the server the client is linked to, if any. Unknown
    /// keys are ignored silently, as PostgreSQL does.
    pub async fn cancel(&self, pid: u32, key: &[u8], keepalive: &KeepaliveOptions) {
        let Ok(key) = <[u8; 4]>::try_from(key) else {
            return;
        };
        // Counted in flight under the slot's lock: the session unlinks under the same
        // lock, so it either sees this cancel when it releases the server, or the
        // cancel finds no server.
        let (target, _in_flight) = {
            let clients = self.clients.lock();
            let Some(slot) = clients.get(&(pid, key)) else {
                return;
            };
            let target = slot.target.lock();
            let Some(target) = target.as_ref() else {
                return;
            };
            (target.clone(), target.in_flight.begin())
        };
        let mut out = BytesMut::with_capacity(16 + target.key.len());
        if protocol::pg::encode::cancel_request(&mut out, target.pid, &target.key).is_err() {
            return;
        }
        let forward = async {
            let mut stream = target.endpoint.connect(keepalive).await?;
            stream.write_all(&out).await?;
            // PostgreSQL closes the connection once it has signalled the backend.
            let mut rest = [0u8; 64];
            while stream.read(&mut rest).await? > 0 {}
            Ok::<_, std::io::Error>(())
        };
        match tokio::time::timeout(CANCEL_TIMEOUT, forward).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("cancel request to {} failed: {e}", target.endpoint),
            Err(_) => tracing::warn!(
                "cancel request to {} not finished after {}s",
                target.endpoint,
                CANCEL_TIMEOUT.as_secs()
            ),
        }
    }
}

impl CancelHandle {
    /// The client is now running on `server`.
    pub fn link(&self, server: &PooledServer<ServerConnection>) {
        let target = server.cancel_key.as_ref().map(|(pid, key)| CancelTarget {
            endpoint: Arc::clone(&server.endpoint),
            pid: *pid,
            key: key.clone(),
            in_flight: Arc::clone(&server.cancels),
        });
        *self.slot.target.lock() = target;
    }

    /// The client released its server. Before the server goes to anyone else, wait for
    /// the cancels already on their way to it ([`CancelsInFlight::wait_finished`]).
    pub fn unlink(&self) {
        *self.slot.target.lock() = None;
    }
}

impl Drop for CancelHandle {
    fn drop(&mut self) {
        self.registry.clients.lock().remove(&(self.pid, self.key));
    }
}
