//! Encoders for the messages a daemon originates; each appends one message to a `BytesMut`.
//!
//! Length fields are written as a placeholder and patched once the body is known. Encoders
//! whose input can be invalid (a NUL inside a string field, a count or length that does not
//! fit its field) return an error and leave the buffer exactly as it was; encoders of
//! fixed-size messages cannot fail. Forwarded messages are never re-encoded: these exist
//! only for messages the pooler itself sends.

mod frontend;
mod writer;

use bytes::{BufMut, BytesMut};

use super::backend::{FieldDescription, Severity, TransactionStatus, auth_code, field};
use super::startup::ProtocolVersion;
use super::tag::BackendTag;
use crate::error::ProtocolError;
use writer::{fixed_message, message};

pub use frontend::{
    bind, cancel_request, close_portal, close_statement, copy_data, copy_done, copy_fail,
    describe_portal, describe_statement, execute, flush, gss_enc_request, parse, password_message,
    query, sasl_initial_response, sasl_response, ssl_request, startup_message, sync, terminate,
};

/// An ErrorResponse or NoticeResponse the pooler sends on its own behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorResponse<'a> {
    /// Written to both `S` and `V`, as PostgreSQL 9.6+ does.
    pub severity: Severity,
    /// Five-character SQLSTATE, see [`super::sqlstate`].
    pub sqlstate: &'a str,
    /// Primary message (`M`).
    pub message: &'a str,
    /// Optional detail (`D`).
    pub detail: Option<&'a str>,
    /// Optional hint (`H`).
    pub hint: Option<&'a str>,
}

impl<'a> ErrorResponse<'a> {
    /// An `ERROR` with just a code and message.
    pub const fn error(sqlstate: &'a str, message: &'a str) -> Self {
        Self {
            severity: Severity::Error,
            sqlstate,
            message,
            detail: None,
            hint: None,
        }
    }

    /// A `FATAL` with just a code and message (the connection is closed afterwards).
    pub const fn fatal(sqlstate: &'a str, message: &'a str) -> Self {
        Self {
            severity: Severity::Fatal,
            ..Self::error(sqlstate, message)
        }
    }
}

/// Appends an ErrorResponse with fields S, V, C, M and, when present, D and H.
pub fn error_response(buf: &mut BytesMut, error: &ErrorResponse<'_>) -> Result<(), ProtocolError> {
    error_fields(buf, BackendTag::ErrorResponse, error)
}

/// Appends a NoticeResponse with the same fields as [`error_response`].
pub fn notice_response(
    buf: &mut BytesMut,
    notice: &ErrorResponse<'_>,
) -> Result<(), ProtocolError> {
    error_fields(buf, BackendTag::NoticeResponse, notice)
}

fn error_fields(
    buf: &mut BytesMut,
    tag: BackendTag,
    error: &ErrorResponse<'_>,
) -> Result<(), ProtocolError> {
    message(buf, Some(tag.as_byte()), |body| {
        let severity = error.severity.as_str().as_bytes();
        body.error_field(field::SEVERITY, severity)?;
        body.error_field(field::SEVERITY_NONLOCALIZED, severity)?;
        body.error_field(field::CODE, error.sqlstate.as_bytes())?;
        body.error_field(field::MESSAGE, error.message.as_bytes())?;
        if let Some(detail) = error.detail {
            body.error_field(field::DETAIL, detail.as_bytes())?;
        }
        if let Some(hint) = error.hint {
            body.error_field(field::HINT, hint.as_bytes())?;
        }
        body.u8(0);
        Ok(())
    })
}

/// Appends AuthenticationOk.
pub fn authentication_ok(buf: &mut BytesMut) {
    authentication_code(buf, auth_code::OK);
}

/// Appends AuthenticationCleartextPassword.
pub fn authentication_cleartext_password(buf: &mut BytesMut) {
    authentication_code(buf, auth_code::CLEARTEXT_PASSWORD);
}

fn authentication_code(buf: &mut BytesMut, code: u32) {
    buf.reserve(9);
    buf.put_u8(BackendTag::Authentication.as_byte());
    buf.put_u32(8);
    buf.put_u32(code);
}

/// Appends AuthenticationMD5Password with `salt`.
pub fn authentication_md5_password(buf: &mut BytesMut, salt: [u8; 4]) {
    buf.reserve(13);
    buf.put_u8(BackendTag::Authentication.as_byte());
    buf.put_u32(12);
    buf.put_u32(auth_code::MD5_PASSWORD);
    buf.put_slice(&salt);
}

/// Appends AuthenticationSASL offering `mechanisms` (e.g. `["SCRAM-SHA-256"]`).
pub fn authentication_sasl(buf: &mut BytesMut, mechanisms: &[&str]) -> Result<(), ProtocolError> {
    message(buf, Some(BackendTag::Authentication.as_byte()), |body| {
        body.u32(auth_code::SASL);
        for mechanism in mechanisms {
            body.non_empty_cstr(mechanism.as_bytes(), "SASL mechanism name")?;
        }
        body.u8(0);
        Ok(())
    })
}

/// Appends AuthenticationSASLContinue carrying the server-first-message.
pub fn authentication_sasl_continue(buf: &mut BytesMut, data: &[u8]) -> Result<(), ProtocolError> {
    message(buf, Some(BackendTag::Authentication.as_byte()), |body| {
        body.u32(auth_code::SASL_CONTINUE);
        body.bytes(data);
        Ok(())
    })
}

/// Appends AuthenticationSASLFinal carrying the server-final-message.
pub fn authentication_sasl_final(buf: &mut BytesMut, data: &[u8]) -> Result<(), ProtocolError> {
    message(buf, Some(BackendTag::Authentication.as_byte()), |body| {
        body.u32(auth_code::SASL_FINAL);
        body.bytes(data);
        Ok(())
    })
}

/// Appends ParameterStatus.
pub fn parameter_status(
    buf: &mut BytesMut,
    name: &[u8],
    value: &[u8],
) -> Result<(), ProtocolError> {
    message(buf, Some(BackendTag::ParameterStatus.as_byte()), |body| {
        body.cstr(name, "ParameterStatus name")?;
        body.cstr(value, "ParameterStatus value")
    })
}

/// Appends BackendKeyData; `key` must be 4 bytes (protocol 3.0) or up to 256 (3.2).
pub fn backend_key_data(buf: &mut BytesMut, pid: u32, key: &[u8]) -> Result<(), ProtocolError> {
    let valid = super::startup::MIN_CANCEL_KEY_LEN..=super::startup::MAX_CANCEL_KEY_LEN;
    if !valid.contains(&key.len()) {
        return Err(ProtocolError::invalid("BackendKeyData key length"));
    }
    message(buf, Some(BackendTag::BackendKeyData.as_byte()), |body| {
        body.u32(pid);
        body.bytes(key);
        Ok(())
    })
}

/// Appends ReadyForQuery.
pub fn ready_for_query(buf: &mut BytesMut, status: TransactionStatus) {
    buf.extend_from_slice(&[
        BackendTag::ReadyForQuery.as_byte(),
        0,
        0,
        0,
        5,
        status.as_byte(),
    ]);
}

/// Appends RowDescription for `fields` (at most 65535).
pub fn row_description(
    buf: &mut BytesMut,
    fields: &[FieldDescription<'_>],
) -> Result<(), ProtocolError> {
    message(buf, Some(BackendTag::RowDescription.as_byte()), |body| {
        body.count_u16(fields.len(), "RowDescription field count")?;
        for field in fields {
            body.cstr(field.name, "RowDescription field name")?;
            body.u32(field.table_oid);
            body.u16(field.column_id as u16);
            body.u32(field.type_oid);
            body.u16(field.type_size as u16);
            body.u32(field.type_modifier as u32);
            body.u16(field.format as u16);
        }
        Ok(())
    })
}

/// Appends RowDescription for text-format columns given as `(name, type OID)`, with no
/// source table and the type size of the common built-in types (-1 otherwise).
pub fn row_description_text(
    buf: &mut BytesMut,
    columns: &[(&str, u32)],
) -> Result<(), ProtocolError> {
    message(buf, Some(BackendTag::RowDescription.as_byte()), |body| {
        body.count_u16(columns.len(), "RowDescription field count")?;
        for (name, type_oid) in columns {
            body.cstr(name.as_bytes(), "RowDescription field name")?;
            body.u32(0);
            body.u16(0);
            body.u32(*type_oid);
            body.u16(builtin_type_size(*type_oid) as u16);
            body.u32(u32::MAX); // type modifier -1
            body.u16(0);
        }
        Ok(())
    })
}

/// `pg_type.typlen` of common fixed-width built-in types; -1 (varlena) otherwise.
const fn builtin_type_size(type_oid: u32) -> i16 {
    match type_oid {
        16 | 18 => 1,                // bool, char
        21 => 2,                     // int2
        23 | 26 | 28 | 700 => 4,     // int4, oid, xid, float4
        20 | 701 | 1114 | 1184 => 8, // int8, float8, timestamp, timestamptz
        _ => -1,
    }
}

/// Appends DataRow; `None` is SQL NULL.
pub fn data_row(buf: &mut BytesMut, values: &[Option<&[u8]>]) -> Result<(), ProtocolError> {
    message(buf, Some(BackendTag::DataRow.as_byte()), |body| {
        body.count_u16(values.len(), "DataRow column count")?;
        for value in values {
            body.value(*value)?;
        }
        Ok(())
    })
}

/// Appends CommandComplete with a tag such as `SELECT 1` or `SHOW`.
pub fn command_complete(buf: &mut BytesMut, tag: &[u8]) -> Result<(), ProtocolError> {
    message(buf, Some(BackendTag::CommandComplete.as_byte()), |body| {
        body.cstr(tag, "CommandComplete tag")
    })
}

/// Appends EmptyQueryResponse.
pub fn empty_query_response(buf: &mut BytesMut) {
    fixed_message(buf, BackendTag::EmptyQueryResponse.as_byte());
}

/// Appends ParseComplete (e.g. answering a Parse the server already knows).
pub fn parse_complete(buf: &mut BytesMut) {
    fixed_message(buf, BackendTag::ParseComplete.as_byte());
}

/// Appends BindComplete.
pub fn bind_complete(buf: &mut BytesMut) {
    fixed_message(buf, BackendTag::BindComplete.as_byte());
}

/// Appends CloseComplete (e.g. answering a Close for a statement the server never saw).
pub fn close_complete(buf: &mut BytesMut) {
    fixed_message(buf, BackendTag::CloseComplete.as_byte());
}

/// Appends NoData.
pub fn no_data(buf: &mut BytesMut) {
    fixed_message(buf, BackendTag::NoData.as_byte());
}

/// Appends PortalSuspended.
pub fn portal_suspended(buf: &mut BytesMut) {
    fixed_message(buf, BackendTag::PortalSuspended.as_byte());
}

/// Appends NegotiateProtocolVersion. The version field carries `3 << 16 | newest_minor`,
/// which is what PostgreSQL sends and what libpq checks.
pub fn negotiate_protocol_version(
    buf: &mut BytesMut,
    newest_minor: u16,
    unsupported: &[&str],
) -> Result<(), ProtocolError> {
    message(
        buf,
        Some(BackendTag::NegotiateProtocolVersion.as_byte()),
        |body| {
            let version = ProtocolVersion {
                major: 3,
                minor: newest_minor,
            };
            body.u32(version.code());
            let count = u32::try_from(unsupported.len())
                .map_err(|_| ProtocolError::invalid("NegotiateProtocolVersion option count"))?;
            body.u32(count);
            for option in unsupported {
                body.cstr(option.as_bytes(), "NegotiateProtocolVersion option")?;
            }
            Ok(())
        },
    )
}

/// Appends NotificationResponse (LISTEN/NOTIFY delivery).
pub fn notification_response(
    buf: &mut BytesMut,
    pid: u32,
    channel: &[u8],
    payload: &[u8],
) -> Result<(), ProtocolError> {
    message(
        buf,
        Some(BackendTag::NotificationResponse.as_byte()),
        |body| {
            body.u32(pid);
            body.cstr(channel, "NotificationResponse channel")?;
            body.cstr(payload, "NotificationResponse payload")
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_response_matches_postgres_layout() {
        let mut buf = BytesMut::new();
        let error = ErrorResponse {
            hint: Some("h"),
            ..ErrorResponse::fatal("28P01", "bad")
        };
        error_response(&mut buf, &error).unwrap();
        assert_eq!(&buf[..], b"E\0\0\0\x22SFATAL\0VFATAL\0C28P01\0Mbad\0Hh\0\0");
    }

    #[test]
    fn invalid_input_leaves_buffer_untouched() {
        let mut buf = BytesMut::from(&b"keep"[..]);
        assert!(parameter_status(&mut buf, b"a\0b", b"v").is_err());
        assert!(authentication_sasl(&mut buf, &[""]).is_err());
        assert!(backend_key_data(&mut buf, 1, b"abc").is_err());
        assert!(data_row(&mut buf, &vec![None; 70_000]).is_err());
        assert_eq!(&buf[..], b"keep");
    }

    #[test]
    fn fixed_messages() {
        let mut buf = BytesMut::new();
        authentication_ok(&mut buf);
        ready_for_query(&mut buf, TransactionStatus::Idle);
        parse_complete(&mut buf);
        assert_eq!(&buf[..], b"R\0\0\0\x08\0\0\0\0Z\0\0\0\x05I1\0\0\0\x04");
    }
}
