//! A raw PostgreSQL wire-protocol client for tests that must send what no driver sends:
//! hand-built startup packets, malformed frames, oversized lengths, garbage.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one read may wait before the test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One backend message: its tag byte and body.
#[derive(Debug, Clone)]
pub struct Message {
    /// Tag byte (`b'E'`, `b'Z'`…).
    pub tag: u8,
    /// Body after the length field.
    pub body: Vec<u8>,
}

impl Message {
    /// The ErrorResponse/NoticeResponse fields as (code, text) pairs.
    pub fn fields(&self) -> Vec<(u8, String)> {
        let mut fields = Vec::new();
        let mut rest = self.body.as_slice();
        while let Some((&code, tail)) = rest.split_first() {
            if code == 0 {
                break;
            }
            let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
            fields.push((code, String::from_utf8_lossy(&tail[..end]).into_owned()));
            rest = tail.get(end + 1..).unwrap_or_default();
        }
        fields
    }

    /// One field of an ErrorResponse (`b'C'` SQLSTATE, `b'M'` message, `b'S'` severity).
    pub fn field(&self, code: u8) -> Option<String> {
        self.fields()
            .into_iter()
            .find(|(c, _)| *c == code)
            .map(|(_, text)| text)
    }
}

/// A TCP connection speaking raw protocol bytes.
pub struct RawClient {
    /// The socket.
    pub stream: TcpStream,
    buf: BytesMut,
}

impl RawClient {
    /// Connects to 127.0.0.1:`port`.
    pub async fn connect(port: u16) -> RawClient {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream.set_nodelay(true).unwrap();
        RawClient {
            stream,
            buf: BytesMut::new(),
        }
    }

    /// Writes `bytes`; errors (the peer already closed) are returned, not panicked on.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Reads one more chunk into the buffer; false on EOF or connection reset.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout(READ_TIMEOUT, self.stream.read(&mut chunk)).await {
            Err(_) => panic!(
                "no answer within {READ_TIMEOUT:?}; buffered: {:?}",
                self.buf
            ),
            Ok(Ok(0)) | Ok(Err(_)) => false,
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Reads a single byte (the answer to SSLRequest); None on EOF.
    pub async fn read_byte(&mut self) -> Option<u8> {
        if self.buf.is_empty() && !self.fill().await {
            return None;
        }
        Some(self.buf.get_u8())
    }

    /// Reads one backend message; None on EOF/reset (a partial message is dropped).
    pub async fn read_message(&mut self) -> Option<Message> {
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                assert!(len >= 4, "bad length {len} from the pooler");
                if self.buf.len() > len {
                    let tag = self.buf.get_u8();
                    self.buf.advance(4);
                    let body = self.buf.split_to(len - 4).to_vec();
                    return Some(Message { tag, body });
                }
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Reads messages until one with tag `Z` (ReadyForQuery) or `E` arrives, or EOF.
    pub async fn read_until_ready(&mut self) -> Vec<Message> {
        let mut messages = Vec::new();
        while let Some(message) = self.read_message().await {
            let done = matches!(message.tag, b'Z' | b'E');
            messages.push(message);
            if done {
                break;
            }
        }
        messages
    }

    /// Reads everything until the peer closes; panics if it does not close in time.
    pub async fn read_until_closed(&mut self) -> Vec<Message> {
        let mut messages = Vec::new();
        while let Some(message) = self.read_message().await {
            messages.push(message);
        }
        messages
    }

    /// Sends a protocol-3.0 StartupMessage with `params` and reads up to ReadyForQuery
    /// or the first ErrorResponse.
    pub async fn startup(&mut self, params: &[(&str, &str)]) -> Vec<Message> {
        let mut buf = BytesMut::new();
        protocol::pg::encode::startup_message(&mut buf, params).unwrap();
        self.send(&buf).await.unwrap();
        self.read_until_ready().await
    }

    /// Runs one simple Query and reads up to ReadyForQuery; returns the messages.
    pub async fn simple_query(&mut self, sql: &str) -> Vec<Message> {
        let mut buf = BytesMut::new();
        protocol::pg::encode::query(&mut buf, sql.as_bytes()).unwrap();
        self.send(&buf).await.unwrap();
        let mut messages = Vec::new();
        while let Some(message) = self.read_message().await {
            let done = message.tag == b'Z';
            messages.push(message);
            if done {
                break;
            }
        }
        messages
    }
}

/// The first column of every DataRow in `messages`, as text.
pub fn data_values(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .filter(|m| m.tag == b'D')
        .map(|m| {
            let len = i32::from_be_bytes([m.body[2], m.body[3], m.body[4], m.body[5]]);
            String::from_utf8_lossy(&m.body[6..6 + len as usize]).into_owned()
        })
        .collect()
}

/// The tags of `messages` as a string (`"RSSKZ"`), for assertion messages.
pub fn tags(messages: &[Message]) -> String {
    messages.iter().map(|m| m.tag as char).collect()
}
