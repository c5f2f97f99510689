//! Cancel requests: each client gets its own (pid, key); a CancelRequest carrying it is
//! forwarded, on a fresh connection, to the server running that client's query, and only
//! to that one.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use rand::RngExt;
use tokio::io::AsyncWriteExt;

use crate::net::KeepaliveOptions;
use crate::pool::PooledServer;
use crate::server::{ServerConnection, ServerEndpoint};

/// Where a client's cancel goes while it is linked to a server.
#[derive(Debug, Clone)]
struct CancelTarget {
    endpoint: Arc<ServerEndpoint>,
    pid: u32,
    key: Bytes,
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
        let target = {
            let clients = self.clients.lock();
            clients
                .get(&(pid, key))
                .and_then(|slot| slot.target.lock().clone())
        };
        let Some(target) = target else { return };
        let mut out = BytesMut::with_capacity(16 + target.key.len());
        if protocol::pg::encode::cancel_request(&mut out, target.pid, &target.key).is_err() {
            return;
        }
        match target.endpoint.connect(keepalive).await {
            Ok(mut stream) => {
                let _ = stream.write_all(&out).await;
                let _ = stream.shutdown().await;
            }
            Err(e) => tracing::warn!("cancel request to {} failed: {e}", target.endpoint),
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
        });
        *self.slot.target.lock() = target;
    }

    /// The client released its server.
    pub fn unlink(&self) {
        *self.slot.target.lock() = None;
    }
}

impl Drop for CancelHandle {
    fn drop(&mut self) {
        self.registry.clients.lock().remove(&(self.pid, self.key));
    }
}
