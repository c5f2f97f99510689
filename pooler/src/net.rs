//! Sockets: one stream type over TCP and Unix sockets, and the socket options we set.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest, ReadBuf, Ready};
use tokio::net::{TcpStream, UnixStream};

/// A connected byte stream to a client or a server, over TCP or a Unix socket.
///
/// An enum rather than `Box<dyn ...>` so the per-message read/write path has no
/// indirect calls and `try_write` is available on both kinds.
#[derive(Debug)]
pub enum Stream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A Unix-domain socket connection.
    Unix(UnixStream),
}

/// Where a peer is: its address for logs and the admin console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAddr {
    /// A TCP peer.
    Tcp(std::net::SocketAddr),
    /// A Unix-socket peer (no address).
    Unix,
}

impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerAddr::Tcp(addr) => write!(f, "{addr}"),
            PeerAddr::Unix => f.write_str("unix"),
        }
    }
}

impl Stream {
    /// The remote end, for logs.
    pub fn peer_addr(&self) -> PeerAddr {
        match self {
            Stream::Tcp(s) => s.peer_addr().map(PeerAddr::Tcp).unwrap_or(PeerAddr::Unix),
            Stream::Unix(_) => PeerAddr::Unix,
        }
    }

    /// Writes as much of `buf` as the socket takes without waiting, and drops what was
    /// written from `buf`. Saves a trip through the event loop in the common case where
    /// the socket is writable.
    pub fn try_write_buf(&self, buf: &mut BytesMut) -> io::Result<()> {
        while !buf.is_empty() {
            let written = match self {
                Stream::Tcp(s) => s.try_write(buf),
                Stream::Unix(s) => s.try_write(buf),
            };
            match written {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => buf.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes part of `buf` (waiting until the socket is writable) and drops what was
    /// written. Cancel safe: if dropped before completion nothing was written.
    pub async fn write_some(&mut self, buf: &mut BytesMut) -> io::Result<()> {
        let n = self.write(buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf.advance(n);
        Ok(())
    }

    /// Writes all of `buf` and clears it.
    pub async fn write_all_buf(&mut self, buf: &mut BytesMut) -> io::Result<()> {
        while !buf.is_empty() {
            self.write_some(buf).await?;
        }
        Ok(())
    }

    /// Waits until the socket is ready for `interest`. Takes `&self`, so one `select!`
    /// can watch both directions of a socket.
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        match self {
            Stream::Tcp(s) => s.ready(interest).await,
            Stream::Unix(s) => s.ready(interest).await,
        }
    }

    /// Reads what is available without waiting; `Ok(None)` if nothing is, `Ok(Some(0))`
    /// if the peer closed.
    ///
    /// A read that does not fill the buffer has drained the socket, so tokio's cached
    /// readiness is cleared right away (by reporting `WouldBlock` to `try_io`, which
    /// clears only if no new readiness event arrived meanwhile). Without this, the next
    /// wait would return at once and cost one `recv` that fails with EAGAIN per message.
    pub fn try_read_into(&self, buf: &mut BytesMut) -> io::Result<Option<usize>> {
        self.try_read_into_sized(buf, READ_CHUNK)
    }

    /// [`Stream::try_read_into`] growing `buf` by `chunk` bytes when it is nearly full:
    /// client sockets use small chunks so idle clients hold little memory.
    pub fn try_read_into_sized(
        &self,
        buf: &mut BytesMut,
        chunk: usize,
    ) -> io::Result<Option<usize>> {
        if buf.capacity() - buf.len() < chunk / 4 {
            buf.reserve(chunk);
        }
        let space = buf.capacity() - buf.len();
        let mut got = None;
        let result = match self {
            Stream::Tcp(s) => s.try_io(Interest::READABLE, || {
                let n = s.try_read_buf(buf)?;
                got = Some(n);
                if n > 0 && n < space {
                    Err(io::ErrorKind::WouldBlock.into())
                } else {
                    Ok(n)
                }
            }),
            Stream::Unix(s) => s.try_io(Interest::READABLE, || {
                let n = s.try_read_buf(buf)?;
                got = Some(n);
                if n > 0 && n < space {
                    Err(io::ErrorKind::WouldBlock.into())
                } else {
                    Ok(n)
                }
            }),
        };
        match (result, got) {
            (Ok(n), _) => Ok(Some(n)),
            (Err(e), Some(n)) if e.kind() == io::ErrorKind::WouldBlock => Ok(Some(n)),
            (Err(e), _) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            (Err(e), _) => Err(e),
        }
    }

    /// Reads more bytes into `buf`; `Ok(0)` means the peer closed. Cancel safe.
    pub async fn read_into(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(READ_CHUNK);
        }
        self.read_buf(buf).await
    }
}

/// How much a server read buffer grows by when it runs out of room.
pub const READ_CHUNK: usize = 16 * 1024;

/// How much a client read buffer grows by (PgBouncer's `pkt_buf` default).
pub const CLIENT_READ_CHUNK: usize = 4 * 1024;

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// TCP keepalive settings (`tcp_keepalive`, `tcp_keepidle`, `tcp_keepintvl`, `tcp_keepcnt`).
#[derive(Debug, Clone, Copy, Default)]
pub struct KeepaliveOptions {
    /// Whether keepalive is on at all.
    pub is_enabled: bool,
    /// Idle time before the first probe; `None` keeps the OS default.
    pub idle: Option<Duration>,
    /// Interval between probes; `None` keeps the OS default.
    pub interval: Option<Duration>,
    /// Probes before the connection is dropped; `None` keeps the OS default.
    pub retries: Option<u32>,
    /// `TCP_USER_TIMEOUT`; `None` keeps the OS default.
    pub user_timeout: Option<Duration>,
}

/// Sets `TCP_NODELAY` and keepalive on a TCP stream. Failures are logged, not fatal:
/// a socket without keepalive still works.
pub fn tune_tcp(stream: &TcpStream, keepalive: &KeepaliveOptions) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("set TCP_NODELAY failed: {e}");
    }
    let sock = socket2::SockRef::from(stream);
    if keepalive.is_enabled {
        let mut ka = socket2::TcpKeepalive::new();
        if let Some(idle) = keepalive.idle {
            ka = ka.with_time(idle);
        }
        if let Some(interval) = keepalive.interval {
            ka = ka.with_interval(interval);
        }
        if let Some(retries) = keepalive.retries {
            ka = ka.with_retries(retries);
        }
        if let Err(e) = sock.set_tcp_keepalive(&ka) {
            tracing::debug!("set keepalive failed: {e}");
        }
    }
    if let Some(timeout) = keepalive.user_timeout
        && let Err(e) = sock.set_tcp_user_timeout(Some(timeout))
    {
        tracing::debug!("set TCP_USER_TIMEOUT failed: {e}");
    }
}

/// Reads until `buf` holds at least `n` bytes. `UnexpectedEof` if the peer closes first.
pub async fn read_at_least(stream: &mut Stream, buf: &mut BytesMut, n: usize) -> io::Result<()> {
    while buf.len() < n {
        if stream.read_into(buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}

/// Writes `bytes` completely (used on login paths where batching does not matter).
pub async fn send(stream: &mut Stream, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes).await
}

/// Readable and/or writable, or `None` when neither is wanted.
pub fn interest(readable: bool, writable: bool) -> Option<Interest> {
    match (readable, writable) {
        (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
        (true, false) => Some(Interest::READABLE),
        (false, true) => Some(Interest::WRITABLE),
        (false, false) => None,
    }
}
