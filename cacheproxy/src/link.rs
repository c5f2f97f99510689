//! `ControlLink`: a one-request-at-a-time RESP connection for the proxy's own traffic
//! (Sentinel queries and events, ROLE probes, COMMAND, handshakes and resets of upstream
//! connections). Never used for client traffic.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use protocol::resp::{RespFramer, Value, encode_command};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};

use crate::config::Credentials;
use crate::error::LinkError;

/// Read buffer size of control links.
const READ_CHUNK: usize = 16 * 1024;

/// A connection the proxy talks to itself, with a timeout on every step.
#[derive(Debug)]
pub struct ControlLink {
    stream: TcpStream,
    buf: BytesMut,
    framer: RespFramer,
    io_timeout: Duration,
}

impl ControlLink {
    /// Connects (within `timeout`, which also bounds every later read) and authenticates.
    pub async fn connect(
        addr: impl ToSocketAddrs,
        timeout: Duration,
        credentials: Option<&Credentials>,
    ) -> Result<ControlLink, LinkError> {
        let stream = connect_stream(addr, timeout).await?;
        let mut link = ControlLink::from_parts(stream, BytesMut::new(), timeout);
        if let Some(credentials) = credentials {
            link.authenticate(credentials).await?;
        }
        Ok(link)
    }

    /// Wraps an open connection whose unread bytes are `buf`.
    pub fn from_parts(stream: TcpStream, buf: BytesMut, io_timeout: Duration) -> ControlLink {
        ControlLink {
            stream,
            buf,
            framer: RespFramer::default(),
            io_timeout,
        }
    }

    /// The socket and any bytes read past the last reply.
    pub fn into_parts(self) -> (TcpStream, BytesMut) {
        (self.stream, self.buf)
    }

    /// `AUTH [user] password`; anything but `+OK` is [`LinkError::Auth`].
    pub async fn authenticate(&mut self, credentials: &Credentials) -> Result<(), LinkError> {
        let reply = self.command(&auth_args(credentials)).await?;
        match reply {
            Value::Simple(_) => Ok(()),
            other => Err(LinkError::Auth(describe(&other))),
        }
    }

    /// Sends one command and reads its reply (an error reply is `Ok(Value::Error)`).
    pub async fn command(&mut self, args: &[&[u8]]) -> Result<Value, LinkError> {
        self.send(&[args]).await?;
        self.read_value().await
    }

    /// Writes several commands in one write, without reading.
    pub async fn send(&mut self, commands: &[&[&[u8]]]) -> Result<(), LinkError> {
        let mut out = BytesMut::new();
        for args in commands {
            encode_command(&mut out, args);
        }
        let write = self.stream.write_all(&out);
        match tokio::time::timeout(self.io_timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(LinkError::Io {
                what: "write",
                source,
            }),
            Err(_) => Err(LinkError::Timeout {
                what: "write",
                after: self.io_timeout,
            }),
        }
    }

    /// Reads the next value within the link's timeout.
    pub async fn read_value(&mut self) -> Result<Value, LinkError> {
        let io_timeout = self.io_timeout;
        match tokio::time::timeout(io_timeout, self.read_value_unbounded()).await {
            Ok(result) => result,
            Err(_) => Err(LinkError::Timeout {
                what: "reply",
                after: io_timeout,
            }),
        }
    }

    /// Sends one encoded request as is and returns its raw reply frame (a client's
    /// command sent on a control connection; the reply is forwarded untouched).
    pub async fn round_trip(&mut self, request: &[u8]) -> Result<Bytes, LinkError> {
        match tokio::time::timeout(self.io_timeout, self.stream.write_all(request)).await {
            Ok(Ok(())) => {}
            Ok(Err(source)) => {
                return Err(LinkError::Io {
                    what: "write",
                    source,
                });
            }
            Err(_) => {
                return Err(LinkError::Timeout {
                    what: "write",
                    after: self.io_timeout,
                });
            }
        }
        let io_timeout = self.io_timeout;
        match tokio::time::timeout(io_timeout, self.read_frame()).await {
            Ok(frame) => Ok(frame?.freeze()),
            Err(_) => Err(LinkError::Timeout {
                what: "reply",
                after: io_timeout,
            }),
        }
    }

    /// Reads the next value however long it takes (Pub/Sub messages).
    pub async fn read_value_unbounded(&mut self) -> Result<Value, LinkError> {
        let frame = self.read_frame().await?;
        match Value::decode(&frame)? {
            Some((value, _)) => Ok(value),
            None => Err(LinkError::unexpected("read", "a frame ended early")),
        }
    }

    async fn read_frame(&mut self) -> Result<BytesMut, LinkError> {
        loop {
            if let Some(len) = self.framer.next_frame_len(&self.buf)? {
                return Ok(self.buf.split_to(len));
            }
            self.buf.reserve(READ_CHUNK);
            let read = self
                .stream
                .read_buf(&mut self.buf)
                .await
                .map_err(|source| LinkError::Io {
                    what: "read",
                    source,
                })?;
            if read == 0 {
                return Err(LinkError::Closed);
            }
        }
    }
}

/// Connects with `TCP_NODELAY` within `timeout`.
pub async fn connect_stream(
    addr: impl ToSocketAddrs,
    timeout: Duration,
) -> Result<TcpStream, LinkError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(source)) => {
            return Err(LinkError::Io {
                what: "connect",
                source,
            });
        }
        Err(_) => {
            return Err(LinkError::Timeout {
                what: "connect",
                after: timeout,
            });
        }
    };
    stream.set_nodelay(true).map_err(|source| LinkError::Io {
        what: "set TCP_NODELAY",
        source,
    })?;
    Ok(stream)
}

/// The arguments of `AUTH [user] password`.
pub fn auth_args(credentials: &Credentials) -> Vec<&[u8]> {
    let mut args: Vec<&[u8]> = vec![b"AUTH"];
    if let Some(user) = &credentials.user {
        args.push(user.as_bytes());
    }
    args.push(credentials.password.as_bytes());
    args
}

/// A short text for a reply in error messages.
pub fn describe(value: &Value) -> String {
    match value.as_bytes() {
        Some(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        None => format!("{:?}", value.kind()),
    }
}
