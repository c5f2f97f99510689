//! `TcpProxy`: a TCP forwarder placed between a daemon and a server to inject network
//! faults (latency, stalls, refused or cut connections). Process faults (SIGSTOP,
//! SIGKILL) live on the node handles: [`crate::PgNode::pause`], [`crate::RedisServer::kill`]…

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;

/// Timeout for connecting to the upstream.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a stalled forwarder checks whether it may continue.
const STALL_POLL: Duration = Duration::from_millis(5);

#[derive(Debug)]
struct ProxyShared {
    upstream: Mutex<SocketAddr>,
    delay: Mutex<Duration>,
    is_refusing: AtomicBool,
    is_stalled: AtomicBool,
    is_closing: AtomicBool,
    next_id: AtomicU64,
    /// Both sockets of every open connection, to cut them on demand.
    connections: Mutex<HashMap<u64, (TcpStream, TcpStream)>>,
}

impl ProxyShared {
    fn connections(&self) -> MutexGuard<'_, HashMap<u64, (TcpStream, TcpStream)>> {
        self.connections
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn delay(&self) -> Duration {
        *self
            .delay
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// A TCP proxy on 127.0.0.1 forwarding every accepted connection to an upstream.
///
/// Point the daemon under test at [`TcpProxy::addr`] instead of the server, then inject
/// faults. The listener is bound once at start (no port race). Drop closes every
/// connection and stops the threads.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    shared: Arc<ProxyShared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl TcpProxy {
    /// Starts forwarding `127.0.0.1:<free port>` to `upstream`.
    pub fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the proxy listener")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(ProxyShared {
            upstream: Mutex::new(upstream),
            delay: Mutex::new(Duration::ZERO),
            is_refusing: AtomicBool::new(false),
            is_stalled: AtomicBool::new(false),
            is_closing: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            connections: Mutex::new(HashMap::new()),
        });
        let accept_shared = Arc::clone(&shared);
        let accept_thread = std::thread::Builder::new()
            .name(format!("tcp-proxy-{}", addr.port()))
            .spawn(move || accept_loop(&listener, &accept_shared))?;
        Ok(Self {
            addr,
            shared,
            accept_thread: Some(accept_thread),
        })
    }

    /// The proxy's listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Sends new connections to `upstream` (open ones keep their server).
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self
            .shared
            .upstream
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = upstream;
    }

    /// Adds `delay` before forwarding each chunk of data, in both directions.
    pub fn set_delay(&self, delay: Duration) {
        *self
            .shared
            .delay
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = delay;
    }

    /// While true, new connections are accepted and closed at once (the server looks
    /// down); open connections are unaffected.
    pub fn set_refusing(&self, is_refusing: bool) {
        self.shared.is_refusing.store(is_refusing, Ordering::SeqCst);
    }

    /// While true, no byte is forwarded in either direction and connections stay open
    /// (a black hole: peers wait until their own timeouts fire).
    pub fn set_stalled(&self, is_stalled: bool) {
        self.shared.is_stalled.store(is_stalled, Ordering::SeqCst);
    }

    /// Closes every open connection on both sides (peers see a reset or EOF).
    pub fn cut_all(&self) {
        for (_, (client, server)) in self.shared.connections().drain() {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
    }

    /// Number of connections currently forwarded.
    pub fn connection_count(&self) -> usize {
        self.shared.connections().len()
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.shared.is_closing.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        self.cut_all();
        if let Some(thread) = self.accept_thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<ProxyShared>) {
    for client in listener.incoming() {
        if shared.is_closing.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        if shared.is_refusing.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let connection_shared = Arc::clone(shared);
        let _ = std::thread::Builder::new()
            .name("tcp-proxy-conn".to_owned())
            .spawn(move || serve_connection(client, &connection_shared));
    }
}

fn serve_connection(client: TcpStream, shared: &Arc<ProxyShared>) {
    let upstream = *shared
        .upstream
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let Ok(server) = TcpStream::connect_timeout(&upstream, UPSTREAM_CONNECT_TIMEOUT) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let clones = (
        client.try_clone(),
        server.try_clone(),
        client.try_clone(),
        server.try_clone(),
    );
    let (Ok(client_read), Ok(server_write), Ok(client_record), Ok(server_record)) = clones else {
        return;
    };
    shared
        .connections()
        .insert(id, (client_record, server_record));
    let upstream_shared = Arc::clone(shared);
    let to_server = std::thread::Builder::new()
        .name("tcp-proxy-up".to_owned())
        .spawn(move || forward(client_read, server_write, &upstream_shared));
    forward(server, client, shared);
    if let Ok(thread) = to_server {
        let _ = thread.join();
    }
    shared.connections().remove(&id);
}

/// Copies `from` to `to` until EOF or an error, honouring delay and stall, then shuts
/// down both directions so the other forwarder ends too.
fn forward(mut from: TcpStream, mut to: TcpStream, shared: &ProxyShared) {
    let mut buffer = vec![0_u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let delay = shared.delay();
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        while shared.is_stalled.load(Ordering::SeqCst) && !shared.is_closing.load(Ordering::SeqCst)
        {
            std::thread::sleep(STALL_POLL);
        }
        if to
            .write_all(buffer.get(..read).unwrap_or_default())
            .is_err()
        {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    use super::TcpProxy;

    fn echo_server() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut reader = stream.try_clone().unwrap();
                    let mut writer = stream;
                    let _ = std::io::copy(&mut reader, &mut writer);
                });
            }
        });
        addr
    }

    fn round_trip(stream: &mut TcpStream) -> std::io::Result<[u8; 4]> {
        stream.write_all(b"ping")?;
        let mut reply = [0_u8; 4];
        stream.read_exact(&mut reply)?;
        Ok(reply)
    }

    #[test]
    fn forwards_delays_and_cuts() {
        let proxy = TcpProxy::start(echo_server()).unwrap();
        let mut stream = TcpStream::connect(proxy.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(&round_trip(&mut stream).unwrap(), b"ping");

        proxy.set_delay(Duration::from_millis(100));
        let started = Instant::now();
        round_trip(&mut stream).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(200));
        proxy.set_delay(Duration::ZERO);

        assert_eq!(proxy.connection_count(), 1);
        proxy.cut_all();
        assert!(round_trip(&mut stream).is_err());

        proxy.set_refusing(true);
        let mut refused = TcpStream::connect(proxy.addr()).unwrap();
        refused
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        assert!(round_trip(&mut refused).is_err());
    }
}
