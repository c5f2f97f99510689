//! The differential protocol tester: the same random client scripts sent to PostgreSQL
//! directly and through the pooler, many clients at once, and every answer compared,
//! message by message, after normalising what legitimately differs (ParameterStatus,
//! error positions, statement names the pooler renames, table OIDs of two databases).
//! A hang, a missing or extra message, another client's rows or a wrong transaction
//! status all show up as a difference, reported with the seed, the client, the step
//! and the messages sent.

pub mod generate;

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use generate::{Script, StepEnd};

/// Longest wait for an answer through either endpoint before the step counts as hung.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// Silence after a Flush step that ends PostgreSQL's answer on the direct run.
const FLUSH_QUIET: Duration = Duration::from_millis(250);

/// One backend message, normalised for comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The message tag.
    pub tag: u8,
    /// The body, or for errors and notices a normalised summary.
    pub body: Vec<u8>,
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = String::from_utf8_lossy(&self.body);
        let shown: String = text.chars().take(120).collect();
        write!(f, "{} {:?}", self.tag as char, shown)
    }
}

/// What one client received for each step; `None` once the connection ended.
pub type Transcript = Vec<Option<Vec<Answer>>>;

/// A connection that speaks raw messages.
pub struct Wire {
    stream: TcpStream,
    buf: BytesMut,
}

impl Wire {
    /// Connects to `port` and logs in as `user` to `database` (trust).
    pub async fn connect(port: u16, user: &str, database: &str) -> Result<Wire, String> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect to {port}: {e}"))?;
        stream.set_nodelay(true).unwrap();
        let mut wire = Wire {
            stream,
            buf: BytesMut::new(),
        };
        let mut startup = BytesMut::new();
        protocol::pg::encode::startup_message(
            &mut startup,
            &[("user", user), ("database", database)],
        )
        .unwrap();
        wire.send(&startup).await?;
        loop {
            match wire.read(ANSWER_TIMEOUT).await? {
                Some((b'Z', _)) => return Ok(wire),
                Some((b'E', body)) => {
                    return Err(format!("login failed: {}", String::from_utf8_lossy(&body)));
                }
                Some(_) => {}
                None => return Err("closed during login".into()),
            }
        }
    }

    /// Writes `bytes`.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| format!("write: {e}"))
    }

    /// One message, `Ok(None)` at end of file, an error after `limit` of silence.
    pub async fn read(&mut self, limit: Duration) -> Result<Option<(u8, Vec<u8>)>, String> {
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                if self.buf.len() > len {
                    let tag = self.buf.get_u8();
                    self.buf.advance(4);
                    return Ok(Some((tag, self.buf.split_to(len - 4).to_vec())));
                }
            }
            let mut chunk = [0u8; 16384];
            match tokio::time::timeout(limit, self.stream.read(&mut chunk)).await {
                Err(_) => return Err(format!("no answer within {limit:?}")),
                Ok(Ok(0)) | Ok(Err(_)) => return Ok(None),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// Runs `script` on `wire`: each step, then (for synced steps) an empty Query whose
/// answer marks the end. `counts` gives, for flushed steps, how many messages to read
/// (from the direct run); `None` on the direct run, which reads until quiet instead.
pub async fn run_script(
    wire: &mut Wire,
    script: &Script,
    counts: Option<&Transcript>,
) -> Result<Transcript, String> {
    let mut transcript = Transcript::new();
    for (index, step) in script.steps.iter().enumerate() {
        let mut bytes = step.bytes.clone();
        if step.end == StepEnd::Synced {
            protocol::pg::encode::query(&mut bytes, b"").unwrap();
        }
        if wire.send(&bytes).await.is_err() {
            transcript.push(None);
            return Ok(transcript);
        }
        let answers = match (step.end, counts) {
            (StepEnd::Synced, _) => read_to_marker(wire).await,
            (StepEnd::Flushed, None) => read_until_quiet(wire).await,
            (StepEnd::Flushed, Some(direct)) => {
                let expected = direct
                    .get(index)
                    .and_then(|a| a.as_ref())
                    .map_or(0, Vec::len);
                read_count(wire, expected).await
            }
        }
        .map_err(|e| format!("client {} step {index}: {e}", script.client))?;
        let is_closed = answers.is_none();
        transcript.push(answers);
        if is_closed {
            break;
        }
    }
    Ok(transcript)
}

async fn read_to_marker(wire: &mut Wire) -> Result<Option<Vec<Answer>>, String> {
    let mut answers = Vec::new();
    loop {
        let Some((tag, body)) = wire.read(ANSWER_TIMEOUT).await? else {
            return Ok(None);
        };
        if tag == b'I' {
            // The marker: its ReadyForQuery tells the transaction status after the step.
            return match wire.read(ANSWER_TIMEOUT).await? {
                Some((b'Z', status)) => {
                    answers.push(Answer {
                        tag: b'Z',
                        body: status,
                    });
                    Ok(Some(answers))
                }
                _ => Ok(None),
            };
        }
        if let Some(answer) = normalise(tag, body) {
            answers.push(answer);
        }
    }
}

async fn read_until_quiet(wire: &mut Wire) -> Result<Option<Vec<Answer>>, String> {
    let mut answers = Vec::new();
    loop {
        match wire.read(FLUSH_QUIET).await {
            Err(_) => return Ok(Some(answers)),
            Ok(None) => return Ok(None),
            Ok(Some((tag, body))) => answers.extend(normalise(tag, body)),
        }
    }
}

async fn read_count(wire: &mut Wire, count: usize) -> Result<Option<Vec<Answer>>, String> {
    let mut answers = Vec::new();
    while answers.len() < count {
        match wire.read(ANSWER_TIMEOUT).await? {
            None => return Ok(None),
            Some((tag, body)) => answers.extend(normalise(tag, body)),
        }
    }
    Ok(Some(answers))
}

/// What may legitimately differ between a direct connection and one through the pooler
/// is removed: ParameterStatus (the pooler syncs parameters), error and notice fields
/// other than severity, SQLSTATE and message, the server-side name in messages about
/// a prepared statement, and the table OID / column number of RowDescription (two
/// databases).
pub fn normalise(tag: u8, body: Vec<u8>) -> Option<Answer> {
    match tag {
        b'S' => None,
        b'E' | b'N' => {
            let mut summary = Vec::new();
            for (code, value) in error_fields(&body) {
                if matches!(code, b'S' | b'C' | b'M') {
                    summary.push(code);
                    summary.extend_from_slice(normalise_names(&value).as_bytes());
                    summary.push(b'|');
                }
            }
            Some(Answer { tag, body: summary })
        }
        b'T' => Some(Answer {
            tag,
            body: zero_table_oids(body),
        }),
        _ => Some(Answer { tag, body }),
    }
}

fn error_fields(body: &[u8]) -> Vec<(u8, String)> {
    let mut fields = Vec::new();
    let mut rest = body;
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

/// `prepared statement "POOLER_12"` and `prepared statement "s3"` both read
/// `prepared statement "?"`.
fn normalise_names(message: &str) -> String {
    let marker = "prepared statement \"";
    let Some(start) = message.find(marker) else {
        return message.to_owned();
    };
    let name_start = start + marker.len();
    let Some(len) = message[name_start..].find('"') else {
        return message.to_owned();
    };
    format!(
        "{}?{}",
        &message[..name_start],
        &message[name_start + len..]
    )
}

fn zero_table_oids(mut body: Vec<u8>) -> Vec<u8> {
    let Some(count) = body.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]])) else {
        return body;
    };
    let mut at = 2;
    for _ in 0..count {
        let Some(nul) = body[at..].iter().position(|&b| b == 0) else {
            break;
        };
        at += nul + 1;
        if let Some(field) = body.get_mut(at..at + 6) {
            field.fill(0); // table OID (4) and column number (2)
        }
        at += 18;
    }
    body
}

/// The first difference between the direct and the pooled transcripts of `script`.
pub fn first_difference(
    script: &Script,
    direct: &Transcript,
    pooled: &Transcript,
) -> Option<String> {
    for (index, step) in script.steps.iter().enumerate() {
        let (want, got) = (direct.get(index), pooled.get(index));
        if want == got {
            if want.is_none() || matches!(want, Some(None)) {
                return None;
            }
            continue;
        }
        let show = |t: Option<&Option<Vec<Answer>>>| match t {
            None => "(not run)".to_owned(),
            Some(None) => "(connection closed)".to_owned(),
            Some(Some(answers)) => answers.iter().map(|a| format!("\n      {a}")).collect(),
        };
        let context: String = (index.saturating_sub(2)..index)
            .map(|i| {
                let sent: String = script.steps[i]
                    .description
                    .iter()
                    .map(|d| format!("\n      {d}"))
                    .collect();
                format!("{sent}\n    answered:{}", show(direct.get(i)))
            })
            .collect();
        return Some(format!(
            "client {} step {index}:\n    before:{context}\n    sent:{}\n    direct:{}\n    pooler:{}",
            script.client,
            step.description
                .iter()
                .map(|d| format!("\n      {d}"))
                .collect::<String>(),
            show(want),
            show(got),
        ));
    }
    None
}
