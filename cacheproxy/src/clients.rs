//! The registry of connected clients: each client's proxy-side id, addresses, a snapshot of
//! its connection state and a control channel, for `CLIENT LIST/INFO/KILL/UNBLOCK`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::upstream::{ReplySender, UpstreamReply};

/// How `CLIENT UNBLOCK` ends the blocked call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnblockMode {
    /// As if the timeout expired.
    Timeout,
    /// With `-UNBLOCKED client unblocked via CLIENT UNBLOCK`.
    Error,
}

impl UnblockMode {
    /// The argument Redis expects.
    pub fn as_arg(self) -> &'static [u8] {
        match self {
            UnblockMode::Timeout => b"TIMEOUT",
            UnblockMode::Error => b"ERROR",
        }
    }
}

/// A request from one client's task to another's.
#[derive(Debug)]
pub enum ClientControl {
    /// Close the connection now (`CLIENT KILL`).
    Kill,
    /// Unblock the client's blocked call; the integer reply goes to `reply_to` for `seq`.
    Unblock {
        /// How.
        mode: UnblockMode,
        /// The asking client's channel.
        reply_to: ReplySender,
        /// The asking client's request.
        seq: u64,
    },
}

/// What `CLIENT LIST` shows of a client besides its addresses and age.
#[derive(Debug, Clone)]
pub struct ClientState {
    /// `CLIENT SETNAME`.
    pub name: Option<Bytes>,
    /// The authenticated user.
    pub user: Bytes,
    /// Selected database.
    pub db: i64,
    /// 2 or 3.
    pub resp: u8,
    /// Channel, pattern and shard-channel subscriptions.
    pub subscriptions: [usize; 3],
    /// Inside MULTI.
    pub is_in_multi: bool,
    /// `CLIENT TRACKING on`.
    pub is_tracking: bool,
    /// `MONITOR`.
    pub is_monitor: bool,
    /// `CLIENT NO-EVICT on`.
    pub is_no_evict: bool,
    /// `CLIENT NO-TOUCH on`.
    pub is_no_touch: bool,
    /// The last command, lowercase (`container|sub` for subcommands).
    pub last_command: String,
    /// When the last command arrived.
    pub last_active: Instant,
    /// `CLIENT SETINFO LIB-NAME`.
    pub lib_name: Option<Bytes>,
    /// `CLIENT SETINFO LIB-VER`.
    pub lib_ver: Option<Bytes>,
}

impl ClientState {
    fn new(now: Instant) -> ClientState {
        ClientState {
            name: None,
            user: Bytes::from_static(b"default"),
            db: 0,
            resp: 2,
            subscriptions: [0; 3],
            is_in_multi: false,
            is_tracking: false,
            is_monitor: false,
            is_no_evict: false,
            is_no_touch: false,
            last_command: "NULL".to_owned(),
            last_active: now,
            lib_name: None,
            lib_ver: None,
        }
    }

    /// `pubsub` when subscribed, else `normal` (`CLIENT LIST TYPE`, `CLIENT KILL TYPE`).
    pub fn kind(&self) -> &'static str {
        if self.subscriptions.iter().any(|count| *count > 0) {
            "pubsub"
        } else {
            "normal"
        }
    }

    fn flags(&self) -> String {
        let mut flags = String::new();
        if self.is_monitor {
            flags.push('O');
        }
        if self.kind() == "pubsub" {
            flags.push('P');
        }
        if self.is_in_multi {
            flags.push('x');
        }
        if self.is_tracking {
            flags.push('t');
        }
        if self.is_no_evict {
            flags.push('e');
        }
        if self.is_no_touch {
            flags.push('T');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        flags
    }
}

/// One registered client.
#[derive(Debug)]
pub struct ClientEntry {
    /// Proxy-side id (`CLIENT ID`, `HELLO`'s `id`).
    pub id: u64,
    /// The client's address.
    pub addr: Option<SocketAddr>,
    /// The proxy's address the client connected to.
    pub laddr: Option<SocketAddr>,
    /// When it connected.
    pub created: Instant,
    control: mpsc::UnboundedSender<ClientControl>,
    /// The client's event channel: a `Control` event makes it read `control` (an extra
    /// channel polled in its loop would cost every command a waker registration).
    wake: ReplySender,
    state: Mutex<ClientState>,
}

impl ClientEntry {
    /// The state snapshot, for reading or updating.
    pub fn state(&self) -> MutexGuard<'_, ClientState> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Asks the client's task to do something; false when it is gone.
    pub fn control(&self, message: ClientControl) -> bool {
        self.control.send(message).is_ok() && self.wake.send(UpstreamReply::Control).is_ok()
    }

    /// The `CLIENT LIST` line (without the trailing newline), in Redis 7.2's field order.
    pub fn line(&self, now: Instant) -> String {
        let state = self.state().clone();
        let show =
            |addr: Option<SocketAddr>| addr.map_or_else(String::new, |addr| addr.to_string());
        let text = |bytes: &Option<Bytes>| {
            bytes.as_ref().map_or_else(String::new, |bytes| {
                String::from_utf8_lossy(bytes).into_owned()
            })
        };
        let mut line = String::with_capacity(320);
        let _ = write!(
            line,
            "id={} addr={} laddr={} fd=-1 name={} age={} idle={} flags={} db={} sub={} psub={} \
             ssub={} multi={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 \
             omem=0 tot-mem=0 events=r cmd={} user={} redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            show(self.addr),
            show(self.laddr),
            text(&state.name),
            now.saturating_duration_since(self.created).as_secs(),
            now.saturating_duration_since(state.last_active).as_secs(),
            state.flags(),
            state.db,
            state.subscriptions[0],
            state.subscriptions[1],
            state.subscriptions[2],
            if state.is_in_multi { 0 } else { -1 },
            state.last_command,
            String::from_utf8_lossy(&state.user),
            state.resp,
            text(&state.lib_name),
            text(&state.lib_ver),
        );
        line
    }
}

/// Probes of at most this many subscribers are checked per `PUBLISH`; with more, a
/// subscriber that hung up microseconds before may still be counted once.
const MAX_PROBED_SUBSCRIBERS: usize = 64;

/// Every connected client, by id.
#[derive(Debug, Default)]
pub struct ClientRegistry {
    clients: Mutex<BTreeMap<u64, Arc<ClientEntry>>>,
    /// A duplicate of each subscribed client's socket, to see a hang-up its task has not
    /// handled yet.
    hangup_probes: Mutex<BTreeMap<u64, socket2::Socket>>,
}

impl ClientRegistry {
    fn clients(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<ClientEntry>>> {
        self.clients
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Registers a client; it stays listed until the returned guard drops.
    pub fn register(
        self: &Arc<Self>,
        id: u64,
        addr: Option<SocketAddr>,
        laddr: Option<SocketAddr>,
        wake: ReplySender,
    ) -> (Registration, mpsc::UnboundedReceiver<ClientControl>) {
        let now = Instant::now();
        let (control, receiver) = mpsc::unbounded_channel();
        let entry = Arc::new(ClientEntry {
            id,
            addr,
            laddr,
            created: now,
            control,
            wake,
            state: Mutex::new(ClientState::new(now)),
        });
        self.clients().insert(id, Arc::clone(&entry));
        let registration = Registration {
            registry: Arc::clone(self),
            entry,
        };
        (registration, receiver)
    }

    /// The client with `id`, if connected.
    pub fn get(&self, id: u64) -> Option<Arc<ClientEntry>> {
        self.clients().get(&id).cloned()
    }

    /// Every connected client, by id.
    pub fn all(&self) -> Vec<Arc<ClientEntry>> {
        self.clients().values().cloned().collect()
    }

    fn probes(&self) -> MutexGuard<'_, BTreeMap<u64, socket2::Socket>> {
        self.hangup_probes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Watches (or stops watching) client `id`'s socket for a hang-up.
    pub fn set_hangup_probe(&self, id: u64, probe: Option<socket2::Socket>) {
        match probe {
            Some(probe) => self.probes().insert(id, probe),
            None => self.probes().remove(&id),
        };
    }

    /// True when a subscribed client's socket reached end-of-file (it hung up) before its
    /// task noticed. Reads nothing: `MSG_PEEK`, on a non-blocking socket.
    pub fn has_hung_up_subscriber(&self) -> bool {
        let probes = self.probes();
        if probes.len() > MAX_PROBED_SUBSCRIBERS {
            return false;
        }
        let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
        probes
            .values()
            .any(|probe| matches!(probe.peek(&mut byte), Ok(0)))
    }
}

/// A client's place in the registry; dropping it (the client's task ended, however) removes it.
#[derive(Debug)]
pub struct Registration {
    registry: Arc<ClientRegistry>,
    entry: Arc<ClientEntry>,
}

impl Registration {
    /// The client's entry.
    pub fn entry(&self) -> &ClientEntry {
        &self.entry
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.clients().remove(&self.entry.id);
        self.registry.probes().remove(&self.entry.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_lists_and_unlists_a_client() {
        let registry = Arc::new(ClientRegistry::default());
        let addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let (wake, _events) = mpsc::unbounded_channel();
        let (registration, _control) = registry.register(7, Some(addr), None, wake);
        {
            let mut state = registration.entry().state();
            state.name = Some(Bytes::from_static(b"worker"));
            state.subscriptions[1] = 2;
            state.is_no_evict = true;
        }
        let line = registry.get(7).unwrap().line(Instant::now());
        assert!(line.starts_with("id=7 addr=127.0.0.1:5000 laddr= fd=-1 name=worker age=0"));
        assert!(
            line.contains(" flags=Pe db=0 sub=0 psub=2 ssub=0 multi=-1 "),
            "{line}"
        );
        assert!(line.contains(" user=default redir=-1 resp=2 "), "{line}");
        assert_eq!(registry.all().len(), 1);
        drop(registration);
        assert!(registry.get(7).is_none());
    }
}
