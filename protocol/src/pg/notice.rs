//! ErrorResponse / NoticeResponse bodies: field codes, severities and a validated field view.

use super::body::BodyReader;
use crate::error::ProtocolError;

/// Field codes of ErrorResponse and NoticeResponse (PostgreSQL "Error and Notice Message Fields").
pub mod field {
    /// `S`: severity, possibly localized.
    pub const SEVERITY: u8 = b'S';
    /// `V`: severity, never localized (PostgreSQL 9.6+).
    pub const SEVERITY_NONLOCALIZED: u8 = b'V';
    /// `C`: SQLSTATE code.
    pub const CODE: u8 = b'C';
    /// `M`: primary message.
    pub const MESSAGE: u8 = b'M';
    /// `D`: detail.
    pub const DETAIL: u8 = b'D';
    /// `H`: hint.
    pub const HINT: u8 = b'H';
    /// `P`: cursor position in the query text.
    pub const POSITION: u8 = b'P';
    /// `p`: position in an internally generated query.
    pub const INTERNAL_POSITION: u8 = b'p';
    /// `q`: the internally generated query.
    pub const INTERNAL_QUERY: u8 = b'q';
    /// `W`: context (call stack).
    pub const WHERE: u8 = b'W';
    /// `s`: schema name.
    pub const SCHEMA: u8 = b's';
    /// `t`: table name.
    pub const TABLE: u8 = b't';
    /// `c`: column name.
    pub const COLUMN: u8 = b'c';
    /// `d`: data type name.
    pub const DATA_TYPE: u8 = b'd';
    /// `n`: constraint name.
    pub const CONSTRAINT: u8 = b'n';
    /// `F`: source file.
    pub const FILE: u8 = b'F';
    /// `L`: source line.
    pub const LINE: u8 = b'L';
    /// `R`: source routine.
    pub const ROUTINE: u8 = b'R';
}

/// Message severity as written in the `S` and `V` fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// `ERROR`: the current command failed; the session survives.
    Error,
    /// `FATAL`: the session ends.
    Fatal,
    /// `PANIC`: every session ends.
    Panic,
    /// `WARNING` (notice).
    Warning,
    /// `NOTICE` (notice).
    Notice,
    /// `DEBUG` (notice).
    Debug,
    /// `INFO` (notice).
    Info,
    /// `LOG` (notice).
    Log,
}

impl Severity {
    /// The non-localized spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Error => "ERROR",
            Self::Fatal => "FATAL",
            Self::Panic => "PANIC",
            Self::Warning => "WARNING",
            Self::Notice => "NOTICE",
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Log => "LOG",
        }
    }

    /// Parses the non-localized spelling; `None` for anything else.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Some(match bytes {
            b"ERROR" => Self::Error,
            b"FATAL" => Self::Fatal,
            b"PANIC" => Self::Panic,
            b"WARNING" => Self::Warning,
            b"NOTICE" => Self::Notice,
            b"DEBUG" => Self::Debug,
            b"INFO" => Self::Info,
            b"LOG" => Self::Log,
            _ => return None,
        })
    }
}

/// The fields of an ErrorResponse or NoticeResponse, checked when built so that iteration
/// cannot fail. Values are raw bytes in the server encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorFields<'a> {
    /// `code value\0` entries, without the final terminating NUL.
    rest: &'a [u8],
}

impl<'a> ErrorFields<'a> {
    /// Validates a body: `(code:u8 value\0)*` then a single NUL as the last byte.
    pub fn new(body: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut reader = BodyReader::new(body);
        loop {
            let before = reader.rest();
            if reader.u8("error field code")? == 0 {
                reader.finish("error fields terminator")?;
                let fields_len = body.len().saturating_sub(before.len());
                return Ok(Self {
                    rest: body.get(..fields_len).unwrap_or_default(),
                });
            }
            reader.cstr("error field value")?;
        }
    }

    /// The value of the first field with code `code` (see [`field`]).
    pub fn get(&self, code: u8) -> Option<&'a [u8]> {
        self.into_iter()
            .find(|(field_code, _)| *field_code == code)
            .map(|(_, value)| value)
    }

    /// The severity: the never-localized `V` field if present, else `S`.
    pub fn severity(&self) -> Option<&'a [u8]> {
        self.get(field::SEVERITY_NONLOCALIZED)
            .or_else(|| self.get(field::SEVERITY))
    }

    /// [`ErrorFields::severity`] parsed, when it is one of the known spellings.
    pub fn parsed_severity(&self) -> Option<Severity> {
        self.severity().and_then(Severity::from_bytes)
    }

    /// The SQLSTATE (`C`).
    pub fn code(&self) -> Option<&'a [u8]> {
        self.get(field::CODE)
    }

    /// The primary message (`M`).
    pub fn message(&self) -> Option<&'a [u8]> {
        self.get(field::MESSAGE)
    }

    /// The detail (`D`).
    pub fn detail(&self) -> Option<&'a [u8]> {
        self.get(field::DETAIL)
    }

    /// The hint (`H`).
    pub fn hint(&self) -> Option<&'a [u8]> {
        self.get(field::HINT)
    }
}

impl<'a> IntoIterator for ErrorFields<'a> {
    type Item = (u8, &'a [u8]);
    type IntoIter = ErrorFieldIter<'a>;

    fn into_iter(self) -> ErrorFieldIter<'a> {
        ErrorFieldIter { rest: self.rest }
    }
}

/// Iterator over `(field code, value)` pairs of validated [`ErrorFields`].
#[derive(Debug, Clone)]
pub struct ErrorFieldIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for ErrorFieldIter<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let mut reader = BodyReader::new(self.rest);
        let code = reader.u8("error field code").ok()?;
        let value = reader.cstr("error field value").ok()?;
        self.rest = reader.rest();
        Some((code, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_and_reads_fields() {
        let body = b"SERREUR\0VERROR\0C42601\0Msyntax error\0\0";
        let fields = ErrorFields::new(body).unwrap();
        assert_eq!(fields.severity(), Some(&b"ERROR"[..]));
        assert_eq!(fields.parsed_severity(), Some(Severity::Error));
        assert_eq!(fields.code(), Some(&b"42601"[..]));
        assert_eq!(fields.message(), Some(&b"syntax error"[..]));
        assert_eq!(fields.hint(), None);
        assert_eq!(fields.into_iter().count(), 4);
        assert!(ErrorFields::new(b"").is_err());
        assert!(ErrorFields::new(b"Mx\0").is_err());
        assert!(ErrorFields::new(b"Mx\0\0\0").is_err());
        assert!(ErrorFields::new(b"Mx").is_err());
        assert_eq!(ErrorFields::new(b"\0").unwrap().into_iter().count(), 0);
    }
}
