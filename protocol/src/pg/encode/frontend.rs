//! Encoders for messages the pooler sends to a server as a client (startup, auth, injected Parse/Close).

use bytes::{BufMut, BytesMut};

use super::writer::{BodyWriter, fixed_message, message};
use crate::error::ProtocolError;
use crate::pg::frontend::Target;
use crate::pg::startup::{
    CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, MAX_CANCEL_KEY_LEN, MAX_STARTUP_PACKET_LEN,
    MIN_CANCEL_KEY_LEN, ProtocolVersion, SSL_REQUEST_CODE,
};
use crate::pg::tag::FrontendTag;

/// Appends a protocol-3.0 StartupMessage. Names must be non-empty; the packet must stay
/// within PostgreSQL's startup packet limit.
pub fn startup_message(buf: &mut BytesMut, params: &[(&str, &str)]) -> Result<(), ProtocolError> {
    let params_len: usize = params
        .iter()
        .map(|(name, value)| name.len() + value.len() + 2)
        .sum();
    let len = 4 + 4 + params_len + 1;
    if len - 4 > MAX_STARTUP_PACKET_LEN {
        return Err(ProtocolError::TooLarge {
            what: "startup packet",
            len: len as u64,
            max: (MAX_STARTUP_PACKET_LEN + 4) as u64,
        });
    }
    message(buf, None, |body| {
        body.u32(ProtocolVersion::V3_0.code());
        for (name, value) in params {
            body.non_empty_cstr(name.as_bytes(), "startup parameter name")?;
            body.cstr(value.as_bytes(), "startup parameter value")?;
        }
        body.u8(0);
        Ok(())
    })
}

/// Appends an SSLRequest.
pub fn ssl_request(buf: &mut BytesMut) {
    buf.put_u32(8);
    buf.put_u32(SSL_REQUEST_CODE);
}

/// Appends a GSSENCRequest.
pub fn gss_enc_request(buf: &mut BytesMut) {
    buf.put_u32(8);
    buf.put_u32(GSSENC_REQUEST_CODE);
}

/// Appends a CancelRequest; `key` is 4 bytes (protocol 3.0) or up to 256 (3.2).
pub fn cancel_request(buf: &mut BytesMut, pid: u32, key: &[u8]) -> Result<(), ProtocolError> {
    if !(MIN_CANCEL_KEY_LEN..=MAX_CANCEL_KEY_LEN).contains(&key.len()) {
        return Err(ProtocolError::invalid("CancelRequest key length"));
    }
    message(buf, None, |body| {
        body.u32(CANCEL_REQUEST_CODE);
        body.u32(pid);
        body.bytes(key);
        Ok(())
    })
}

/// Appends a simple Query.
pub fn query(buf: &mut BytesMut, sql: &[u8]) -> Result<(), ProtocolError> {
    message(buf, Some(FrontendTag::Query.as_byte()), |body| {
        body.cstr(sql, "Query text")
    })
}

/// Appends a PasswordMessage (cleartext password or `md5…` hash).
pub fn password_message(buf: &mut BytesMut, password: &[u8]) -> Result<(), ProtocolError> {
    message(buf, Some(FrontendTag::Password.as_byte()), |body| {
        body.cstr(password, "password")
    })
}

/// Appends a SASLInitialResponse choosing `mechanism` with the client-first-message `data`.
pub fn sasl_initial_response(
    buf: &mut BytesMut,
    mechanism: &str,
    data: &[u8],
) -> Result<(), ProtocolError> {
    message(buf, Some(FrontendTag::Password.as_byte()), |body| {
        body.non_empty_cstr(mechanism.as_bytes(), "SASL mechanism name")?;
        body.value(Some(data))
    })
}

/// Appends a SASLResponse carrying the client-final-message.
pub fn sasl_response(buf: &mut BytesMut, data: &[u8]) -> Result<(), ProtocolError> {
    message(buf, Some(FrontendTag::Password.as_byte()), |body| {
        body.bytes(data);
        Ok(())
    })
}

/// Appends a Parse creating statement `name` (at most 65535 parameter types; 0 = unspecified).
pub fn parse(
    buf: &mut BytesMut,
    name: &[u8],
    query: &[u8],
    param_types: &[u32],
) -> Result<(), ProtocolError> {
    message(buf, Some(FrontendTag::Parse.as_byte()), |body| {
        body.cstr(name, "Parse statement name")?;
        body.cstr(query, "Parse query text")?;
        body.count_u16(param_types.len(), "Parse parameter count")?;
        for type_oid in param_types {
            body.u32(*type_oid);
        }
        Ok(())
    })
}

/// Appends a Bind of `statement` into `portal`; `None` values are NULL.
pub fn bind(
    buf: &mut BytesMut,
    portal: &[u8],
    statement: &[u8],
    param_formats: &[i16],
    params: &[Option<&[u8]>],
    result_formats: &[i16],
) -> Result<(), ProtocolError> {
    message(buf, Some(FrontendTag::Bind.as_byte()), |body| {
        body.cstr(portal, "Bind portal name")?;
        body.cstr(statement, "Bind statement name")?;
        write_formats(body, param_formats, "Bind parameter format count")?;
        body.count_u16(params.len(), "Bind parameter count")?;
        for value in params {
            body.value(*value)?;
        }
        write_formats(body, result_formats, "Bind result format count")
    })
}

fn write_formats(
    body: &mut BodyWriter<'_>,
    formats: &[i16],
    what: &'static str,
) -> Result<(), ProtocolError> {
    body.count_u16(formats.len(), what)?;
    for format in formats {
        body.u16(*format as u16);
    }
    Ok(())
}

/// Appends a Describe of statement `name`.
pub fn describe_statement(buf: &mut BytesMut, name: &[u8]) -> Result<(), ProtocolError> {
    target_name(buf, FrontendTag::Describe, Target::Statement, name)
}

/// Appends a Describe of portal `name`.
pub fn describe_portal(buf: &mut BytesMut, name: &[u8]) -> Result<(), ProtocolError> {
    target_name(buf, FrontendTag::Describe, Target::Portal, name)
}

/// Appends a Close of statement `name`.
pub fn close_statement(buf: &mut BytesMut, name: &[u8]) -> Result<(), ProtocolError> {
    target_name(buf, FrontendTag::Close, Target::Statement, name)
}

/// Appends a Close of portal `name`.
pub fn close_portal(buf: &mut BytesMut, name: &[u8]) -> Result<(), ProtocolError> {
    target_name(buf, FrontendTag::Close, Target::Portal, name)
}

fn target_name(
    buf: &mut BytesMut,
    tag: FrontendTag,
    target: Target,
    name: &[u8],
) -> Result<(), ProtocolError> {
    message(buf, Some(tag.as_byte()), |body| {
        body.u8(target.as_byte());
        body.cstr(name, "Describe/Close name")
    })
}

/// Appends an Execute of `portal`; `max_rows` 0 means all rows.
pub fn execute(buf: &mut BytesMut, portal: &[u8], max_rows: u32) -> Result<(), ProtocolError> {
    message(buf, Some(FrontendTag::Execute.as_byte()), |body| {
        body.cstr(portal, "Execute portal name")?;
        body.u32(max_rows);
        Ok(())
    })
}

/// Appends a Sync.
pub fn sync(buf: &mut BytesMut) {
    fixed_message(buf, FrontendTag::Sync.as_byte());
}

/// Appends a Flush.
pub fn flush(buf: &mut BytesMut) {
    fixed_message(buf, FrontendTag::Flush.as_byte());
}

/// Appends a Terminate.
pub fn terminate(buf: &mut BytesMut) {
    fixed_message(buf, FrontendTag::Terminate.as_byte());
}

/// Appends a CopyData (either direction uses the same `d` layout).
pub fn copy_data(buf: &mut BytesMut, data: &[u8]) -> Result<(), ProtocolError> {
    message(buf, Some(FrontendTag::CopyData.as_byte()), |body| {
        body.bytes(data);
        Ok(())
    })
}

/// Appends a CopyDone (either direction uses the same `c` layout).
pub fn copy_done(buf: &mut BytesMut) {
    fixed_message(buf, FrontendTag::CopyDone.as_byte());
}

/// Appends a CopyFail, e.g. to abort a server-side COPY FROM STDIN when the client vanished.
pub fn copy_fail(buf: &mut BytesMut, reason: &[u8]) -> Result<(), ProtocolError> {
    message(buf, Some(FrontendTag::CopyFail.as_byte()), |body| {
        body.cstr(reason, "CopyFail message")
    })
}
