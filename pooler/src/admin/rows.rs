//! Console replies: result sets typed with PgBouncer's column letters, command tags,
//! notices and errors, encoded with `protocol::pg::encode`.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use protocol::ProtocolError;
use protocol::pg::encode::{self, ErrorResponse};
use protocol::pg::{Severity, TransactionStatus, sqlstate};

/// A column type, as PgBouncer's `pktbuf_write_RowDescription` letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `s`: text (OID 25).
    Text,
    /// `i`: int4 (OID 23).
    Int4,
    /// `q`: int8 (OID 20).
    Int8,
    /// `N`: numeric (OID 1700).
    Numeric,
    /// `T`: a timestamp, sent as text (OID 25).
    Timestamp,
    /// `b`: bytea (OID 17).
    Bytea,
}

impl Kind {
    /// The type OID in RowDescription.
    pub fn type_oid(self) -> u32 {
        match self {
            Kind::Text | Kind::Timestamp => 25,
            Kind::Int4 => 23,
            Kind::Int8 => 20,
            Kind::Numeric => 1700,
            Kind::Bytea => 17,
        }
    }
}

/// A column list: `(name, type)`.
pub type Columns = &'static [(&'static str, Kind)];

/// One result set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultSet {
    /// Column names and types.
    pub columns: Columns,
    /// Rows of text values; `None` is NULL.
    pub rows: Vec<Vec<Option<String>>>,
}

impl ResultSet {
    /// An empty result set with `columns`.
    pub fn new(columns: Columns) -> Self {
        Self {
            columns,
            rows: Vec::new(),
        }
    }

    /// Appends a row.
    pub fn push(&mut self, row: Vec<Option<String>>) {
        self.rows.push(row);
    }
}

/// What a command answers.
#[derive(Debug)]
pub enum Reply {
    /// Rows, then tag `SHOW`.
    Rows(ResultSet),
    /// Just a command tag (`PAUSE`, `SET key=value`, ...).
    Tag(String),
    /// A NOTICE, then a command tag.
    Notice {
        /// Message.
        message: &'static str,
        /// Detail, if any.
        detail: Option<&'static str>,
        /// The tag after it.
        tag: &'static str,
    },
    /// No answer: the connection ends (immediate SHUTDOWN).
    Nothing,
}

/// A console error: ERROR with this SQLSTATE and message; the connection stays.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AdminError {
    /// SQLSTATE (08P01 unless PgBouncer uses another).
    pub sqlstate: &'static str,
    /// PgBouncer's wording.
    pub message: String,
}

impl AdminError {
    /// An 08P01 error.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            sqlstate: sqlstate::PROTOCOL_VIOLATION,
            message: message.into(),
        }
    }
}

/// Shorthand for a non-NULL value.
pub fn value(v: impl ToString) -> Option<String> {
    Some(v.to_string())
}

/// Encodes `reply` followed by ReadyForQuery.
pub fn encode_reply(out: &mut BytesMut, reply: &Reply) -> Result<(), ProtocolError> {
    match reply {
        Reply::Rows(set) => {
            let columns: Vec<(&str, u32)> = set
                .columns
                .iter()
                .map(|(name, kind)| (*name, kind.type_oid()))
                .collect();
            encode::row_description_text(out, &columns)?;
            for row in &set.rows {
                let values: Vec<Option<&[u8]>> = row
                    .iter()
                    .map(|v| v.as_deref().map(str::as_bytes))
                    .collect();
                encode::data_row(out, &values)?;
            }
            encode::command_complete(out, b"SHOW")?;
        }
        Reply::Tag(tag) => encode::command_complete(out, tag.as_bytes())?,
        Reply::Notice {
            message,
            detail,
            tag,
        } => {
            let notice = ErrorResponse {
                severity: Severity::Notice,
                sqlstate: "00000",
                message,
                detail: *detail,
                hint: None,
            };
            encode::notice_response(out, &notice)?;
            encode::command_complete(out, tag.as_bytes())?;
        }
        Reply::Nothing => return Ok(()),
    }
    encode::ready_for_query(out, TransactionStatus::Idle);
    Ok(())
}

/// Encodes `error` followed by ReadyForQuery.
pub fn encode_error(out: &mut BytesMut, error: &AdminError) -> Result<(), ProtocolError> {
    encode::error_response(out, &ErrorResponse::error(error.sqlstate, &error.message))?;
    encode::ready_for_query(out, TransactionStatus::Idle);
    Ok(())
}

/// Formats a time as PgBouncer's `T` columns (`YYYY-MM-DD HH:MM:SS TZ`), in UTC.
pub fn timestamp(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_formatted_like_pgbouncer() {
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(timestamp(at), "2023-11-14 22:13:20 UTC");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(timestamp(leap), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn type_oids() {
        assert_eq!(Kind::Numeric.type_oid(), 1700);
        assert_eq!(Kind::Timestamp.type_oid(), 25);
    }
}
