//! Borrowed, bounds-checked views of server messages; nothing is copied out of the frame body.

use super::body::{BodyReader, CStrList, empty, single_cstr};
use super::frame::Frame;
use super::rows::read_value;
use super::startup::{MAX_CANCEL_KEY_LEN, MIN_CANCEL_KEY_LEN, ProtocolVersion};
use super::tag::BackendTag;
use crate::error::ProtocolError;

pub use super::notice::{ErrorFieldIter, ErrorFields, Severity, field};
pub use super::rows::{
    CopyResponse, DataRow, FieldDescription, FieldIter, ParameterDescription, RowDescription,
    ValueIter,
};

/// Transaction state carried by ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionStatus {
    /// `I`: not in a transaction block.
    Idle,
    /// `T`: in a transaction block.
    InTransaction,
    /// `E`: in a failed transaction block (commands rejected until rollback).
    Failed,
}

impl TransactionStatus {
    /// Maps the wire byte; `None` for anything but `I`, `T`, `E`.
    #[inline]
    pub const fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            b'I' => Some(Self::Idle),
            b'T' => Some(Self::InTransaction),
            b'E' => Some(Self::Failed),
            _ => None,
        }
    }

    /// The wire byte.
    #[inline]
    pub const fn as_byte(self) -> u8 {
        match self {
            Self::Idle => b'I',
            Self::InTransaction => b'T',
            Self::Failed => b'E',
        }
    }
}

/// Reads the status of a ReadyForQuery body (exactly one byte) without building a message.
#[inline]
pub fn ready_for_query_status(body: &[u8]) -> Result<TransactionStatus, ProtocolError> {
    match body {
        [byte] => TransactionStatus::from_byte(*byte)
            .ok_or(ProtocolError::invalid("ReadyForQuery status")),
        _ => Err(ProtocolError::invalid("ReadyForQuery length")),
    }
}

/// Authentication request codes (the Int32 after the `R` header).
pub(crate) mod auth_code {
    pub(crate) const OK: u32 = 0;
    pub(crate) const CLEARTEXT_PASSWORD: u32 = 3;
    pub(crate) const MD5_PASSWORD: u32 = 5;
    pub(crate) const SASL: u32 = 10;
    pub(crate) const SASL_CONTINUE: u32 = 11;
    pub(crate) const SASL_FINAL: u32 = 12;
}

/// An Authentication* request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authentication<'a> {
    /// AuthenticationOk (0).
    Ok,
    /// AuthenticationCleartextPassword (3).
    CleartextPassword,
    /// AuthenticationMD5Password (5) with its salt.
    Md5Password {
        /// The 4-byte salt.
        salt: [u8; 4],
    },
    /// AuthenticationSASL (10): the offered mechanism names.
    Sasl {
        /// Mechanism names in server preference order.
        mechanisms: CStrList<'a>,
    },
    /// AuthenticationSASLContinue (11): server-first-message.
    SaslContinue(&'a [u8]),
    /// AuthenticationSASLFinal (12): server-final-message.
    SaslFinal(&'a [u8]),
    /// Any other request (Kerberos 2, SCM 6, GSS 7/8, SSPI 9, ...); the body is not checked.
    Unsupported(u32),
}

/// A decoded server message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendMessage<'a> {
    /// `R`.
    Authentication(Authentication<'a>),
    /// `K`: the cancel key of the session.
    BackendKeyData {
        /// Backend process id.
        pid: u32,
        /// Secret key: 4 bytes in protocol 3.0, up to 256 in 3.2.
        key: &'a [u8],
    },
    /// `S`: a run-time parameter's current value.
    ParameterStatus {
        /// Parameter name.
        name: &'a [u8],
        /// Parameter value.
        value: &'a [u8],
    },
    /// `Z`.
    ReadyForQuery(TransactionStatus),
    /// `E`.
    ErrorResponse(ErrorFields<'a>),
    /// `N`.
    NoticeResponse(ErrorFields<'a>),
    /// `C`.
    CommandComplete {
        /// Command tag such as `SELECT 1`, without its NUL.
        tag: &'a [u8],
    },
    /// `G`.
    CopyInResponse(CopyResponse<'a>),
    /// `H`.
    CopyOutResponse(CopyResponse<'a>),
    /// `W`.
    CopyBothResponse(CopyResponse<'a>),
    /// `d`: the raw COPY payload.
    CopyData(&'a [u8]),
    /// `c`.
    CopyDone,
    /// `1`.
    ParseComplete,
    /// `2`.
    BindComplete,
    /// `3`.
    CloseComplete,
    /// `n`.
    NoData,
    /// `s`.
    PortalSuspended,
    /// `I`.
    EmptyQueryResponse,
    /// `T`.
    RowDescription(RowDescription<'a>),
    /// `D`.
    DataRow(DataRow<'a>),
    /// `t`.
    ParameterDescription(ParameterDescription<'a>),
    /// `A`: LISTEN/NOTIFY delivery.
    NotificationResponse {
        /// Process id of the notifying backend.
        pid: u32,
        /// Channel name.
        channel: &'a [u8],
        /// Payload string.
        payload: &'a [u8],
    },
    /// `V`: the function result; `None` is NULL.
    FunctionCallResponse(Option<&'a [u8]>),
    /// `v`: the server speaks an older minor version or ignored `_pq_.` options.
    NegotiateProtocolVersion {
        /// Newest version the server supports. PostgreSQL sends the whole version code
        /// (`3 << 16 | minor`) although its documentation says "minor version".
        newest: ProtocolVersion,
        /// Options the server did not recognise.
        options: CStrList<'a>,
    },
}

impl<'a> BackendMessage<'a> {
    /// Decodes a server frame. Unknown tags, truncated bodies and trailing bytes are errors.
    #[inline]
    pub fn decode(frame: &'a Frame) -> Result<Self, ProtocolError> {
        Self::decode_parts(frame.tag(), frame.body())
    }

    /// Decodes a message given its type byte and body (header already removed).
    #[inline]
    pub fn decode_parts(tag: u8, body: &'a [u8]) -> Result<Self, ProtocolError> {
        let tag =
            BackendTag::from_byte(tag).ok_or(ProtocolError::invalid("backend message type"))?;
        Self::decode_body(tag, body)
    }

    /// The message type.
    pub const fn tag(&self) -> BackendTag {
        match self {
            Self::Authentication(_) => BackendTag::Authentication,
            Self::BackendKeyData { .. } => BackendTag::BackendKeyData,
            Self::ParameterStatus { .. } => BackendTag::ParameterStatus,
            Self::ReadyForQuery(_) => BackendTag::ReadyForQuery,
            Self::ErrorResponse(_) => BackendTag::ErrorResponse,
            Self::NoticeResponse(_) => BackendTag::NoticeResponse,
            Self::CommandComplete { .. } => BackendTag::CommandComplete,
            Self::CopyInResponse(_) => BackendTag::CopyInResponse,
            Self::CopyOutResponse(_) => BackendTag::CopyOutResponse,
            Self::CopyBothResponse(_) => BackendTag::CopyBothResponse,
            Self::CopyData(_) => BackendTag::CopyData,
            Self::CopyDone => BackendTag::CopyDone,
            Self::ParseComplete => BackendTag::ParseComplete,
            Self::BindComplete => BackendTag::BindComplete,
            Self::CloseComplete => BackendTag::CloseComplete,
            Self::NoData => BackendTag::NoData,
            Self::PortalSuspended => BackendTag::PortalSuspended,
            Self::EmptyQueryResponse => BackendTag::EmptyQueryResponse,
            Self::RowDescription(_) => BackendTag::RowDescription,
            Self::DataRow(_) => BackendTag::DataRow,
            Self::ParameterDescription(_) => BackendTag::ParameterDescription,
            Self::NotificationResponse { .. } => BackendTag::NotificationResponse,
            Self::FunctionCallResponse(_) => BackendTag::FunctionCallResponse,
            Self::NegotiateProtocolVersion { .. } => BackendTag::NegotiateProtocolVersion,
        }
    }

    /// Decodes the body of a message whose type is already known.
    pub fn decode_body(tag: BackendTag, body: &'a [u8]) -> Result<Self, ProtocolError> {
        Ok(match tag {
            BackendTag::Authentication => Self::Authentication(decode_authentication(body)?),
            BackendTag::BackendKeyData => {
                let mut reader = BodyReader::new(body);
                let pid = reader.u32("BackendKeyData process id")?;
                let key = reader.rest();
                if !(MIN_CANCEL_KEY_LEN..=MAX_CANCEL_KEY_LEN).contains(&key.len()) {
                    return Err(ProtocolError::invalid("BackendKeyData key length"));
                }
                Self::BackendKeyData { pid, key }
            }
            BackendTag::ParameterStatus => {
                let mut reader = BodyReader::new(body);
                let name = reader.cstr("ParameterStatus name")?;
                let value = reader.cstr("ParameterStatus value")?;
                reader.finish("ParameterStatus length")?;
                Self::ParameterStatus { name, value }
            }
            BackendTag::ReadyForQuery => Self::ReadyForQuery(ready_for_query_status(body)?),
            BackendTag::ErrorResponse => Self::ErrorResponse(ErrorFields::new(body)?),
            BackendTag::NoticeResponse => Self::NoticeResponse(ErrorFields::new(body)?),
            BackendTag::CommandComplete => Self::CommandComplete {
                tag: single_cstr(body, "CommandComplete tag")?,
            },
            BackendTag::CopyInResponse => Self::CopyInResponse(CopyResponse::new(body)?),
            BackendTag::CopyOutResponse => Self::CopyOutResponse(CopyResponse::new(body)?),
            BackendTag::CopyBothResponse => Self::CopyBothResponse(CopyResponse::new(body)?),
            BackendTag::CopyData => Self::CopyData(body),
            BackendTag::CopyDone => empty_message(body, Self::CopyDone, "CopyDone length")?,
            BackendTag::ParseComplete => {
                empty_message(body, Self::ParseComplete, "ParseComplete length")?
            }
            BackendTag::BindComplete => {
                empty_message(body, Self::BindComplete, "BindComplete length")?
            }
            BackendTag::CloseComplete => {
                empty_message(body, Self::CloseComplete, "CloseComplete length")?
            }
            BackendTag::NoData => empty_message(body, Self::NoData, "NoData length")?,
            BackendTag::PortalSuspended => {
                empty_message(body, Self::PortalSuspended, "PortalSuspended length")?
            }
            BackendTag::EmptyQueryResponse => {
                empty_message(body, Self::EmptyQueryResponse, "EmptyQueryResponse length")?
            }
            BackendTag::RowDescription => Self::RowDescription(RowDescription::new(body)?),
            BackendTag::DataRow => Self::DataRow(DataRow::new(body)?),
            BackendTag::ParameterDescription => {
                Self::ParameterDescription(ParameterDescription::new(body)?)
            }
            BackendTag::NotificationResponse => {
                let mut reader = BodyReader::new(body);
                let pid = reader.u32("NotificationResponse process id")?;
                let channel = reader.cstr("NotificationResponse channel")?;
                let payload = reader.cstr("NotificationResponse payload")?;
                reader.finish("NotificationResponse length")?;
                Self::NotificationResponse {
                    pid,
                    channel,
                    payload,
                }
            }
            BackendTag::FunctionCallResponse => {
                let mut reader = BodyReader::new(body);
                let value = read_value(&mut reader)?;
                reader.finish("FunctionCallResponse length")?;
                Self::FunctionCallResponse(value)
            }
            BackendTag::NegotiateProtocolVersion => decode_negotiate(body)?,
        })
    }
}

#[inline]
fn empty_message<'a>(
    body: &[u8],
    message: BackendMessage<'a>,
    what: &'static str,
) -> Result<BackendMessage<'a>, ProtocolError> {
    empty(body, what).map(|()| message)
}

fn decode_authentication(body: &[u8]) -> Result<Authentication<'_>, ProtocolError> {
    let mut reader = BodyReader::new(body);
    let code = reader.u32("Authentication request code")?;
    let request = match code {
        auth_code::OK => Authentication::Ok,
        auth_code::CLEARTEXT_PASSWORD => Authentication::CleartextPassword,
        auth_code::MD5_PASSWORD => Authentication::Md5Password {
            salt: reader.array("AuthenticationMD5Password salt")?,
        },
        auth_code::SASL => {
            let list = reader.rest();
            let mut count = 0;
            while reader.cstr("AuthenticationSASL mechanism")? != b"" {
                count += 1;
            }
            let list_len = list.len().saturating_sub(reader.rest().len() + 1);
            Authentication::Sasl {
                mechanisms: CStrList::from_validated(
                    list.get(..list_len).unwrap_or_default(),
                    count,
                ),
            }
        }
        auth_code::SASL_CONTINUE => return Ok(Authentication::SaslContinue(reader.rest())),
        auth_code::SASL_FINAL => return Ok(Authentication::SaslFinal(reader.rest())),
        other => return Ok(Authentication::Unsupported(other)),
    };
    reader.finish("Authentication length")?;
    Ok(request)
}

fn decode_negotiate(body: &[u8]) -> Result<BackendMessage<'_>, ProtocolError> {
    let mut reader = BodyReader::new(body);
    let newest = ProtocolVersion::from_code(reader.u32("NegotiateProtocolVersion version")?);
    let count = reader.u32("NegotiateProtocolVersion option count")?;
    let list = reader.rest();
    // Each option needs at least its NUL, so a count above the body length is a lie that
    // would otherwise make us loop for nothing.
    if count as usize > list.len() {
        return Err(ProtocolError::invalid(
            "NegotiateProtocolVersion option count",
        ));
    }
    for _ in 0..count {
        reader.cstr("NegotiateProtocolVersion option")?;
    }
    reader.finish("NegotiateProtocolVersion length")?;
    Ok(BackendMessage::NegotiateProtocolVersion {
        newest,
        options: CStrList::from_validated(list, count as usize),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_authentication_requests() {
        let decode = |body: &'static [u8]| BackendMessage::decode_parts(b'R', body);
        assert_eq!(
            decode(b"\0\0\0\0"),
            Ok(BackendMessage::Authentication(Authentication::Ok))
        );
        assert_eq!(
            decode(b"\0\0\0\x05abcd"),
            Ok(BackendMessage::Authentication(
                Authentication::Md5Password { salt: *b"abcd" }
            ))
        );
        let Ok(BackendMessage::Authentication(Authentication::Sasl { mechanisms })) =
            decode(b"\0\0\0\x0aSCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0")
        else {
            panic!()
        };
        assert_eq!(
            mechanisms.collect::<Vec<_>>(),
            [&b"SCRAM-SHA-256-PLUS"[..], b"SCRAM-SHA-256"]
        );
        assert!(decode(b"\0\0\0\x0aSCRAM-SHA-256\0").is_err());
        assert!(decode(b"\0\0\0\x0aSCRAM-SHA-256\0\0x").is_err());
        assert!(decode(b"\0\0\0\x05abc").is_err());
        assert!(decode(b"\0\0\0\0x").is_err());
        assert_eq!(
            decode(b"\0\0\0\x07"),
            Ok(BackendMessage::Authentication(Authentication::Unsupported(
                7
            )))
        );
    }

    #[test]
    fn decodes_small_messages() {
        assert_eq!(
            ready_for_query_status(b"T"),
            Ok(TransactionStatus::InTransaction)
        );
        assert!(ready_for_query_status(b"X").is_err());
        assert!(ready_for_query_status(b"II").is_err());
        assert_eq!(
            BackendMessage::decode_parts(b'K', b"\0\0\0\x01abcd"),
            Ok(BackendMessage::BackendKeyData {
                pid: 1,
                key: b"abcd"
            })
        );
        assert!(BackendMessage::decode_parts(b'K', b"\0\0\0\x01abc").is_err());
        let Ok(BackendMessage::NegotiateProtocolVersion { newest, options }) =
            BackendMessage::decode_parts(b'v', b"\0\x03\0\0\0\0\0\x01_pq_.x\0")
        else {
            panic!()
        };
        assert_eq!(newest, ProtocolVersion::V3_0);
        assert_eq!(options.collect::<Vec<_>>(), [&b"_pq_.x"[..]]);
        assert!(BackendMessage::decode_parts(b'v', b"\0\x03\0\0\xff\xff\xff\xff").is_err());
        assert_eq!(
            BackendMessage::decode_parts(b'V', b"\xff\xff\xff\xff"),
            Ok(BackendMessage::FunctionCallResponse(None))
        );
        assert!(BackendMessage::decode_parts(b'?', b"").is_err());
    }
}
