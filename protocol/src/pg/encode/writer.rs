//! Message writer: placeholder length, checked body writes, length patch or rollback.

use bytes::{BufMut, BytesMut};

use crate::error::ProtocolError;

/// Largest value the Int32 length field can carry.
const MAX_LENGTH_FIELD: usize = i32::MAX as usize;

/// Appends one message: optional tag, a length placeholder, the body written by `write_body`,
/// then patches the length. On any error the buffer is truncated back to where it was.
pub(super) fn message<F>(
    buf: &mut BytesMut,
    tag: Option<u8>,
    write_body: F,
) -> Result<(), ProtocolError>
where
    F: FnOnce(&mut BodyWriter<'_>) -> Result<(), ProtocolError>,
{
    let start = buf.len();
    if let Some(tag) = tag {
        buf.put_u8(tag);
    }
    let length_at = buf.len();
    buf.put_u32(0);
    let result = write_body(&mut BodyWriter { buf }).and_then(|()| patch_length(buf, length_at));
    if result.is_err() {
        buf.truncate(start);
    }
    result
}

fn patch_length(buf: &mut BytesMut, length_at: usize) -> Result<(), ProtocolError> {
    let len = buf.len().saturating_sub(length_at);
    if len > MAX_LENGTH_FIELD {
        return Err(ProtocolError::TooLarge {
            what: "message",
            len: len as u64,
            max: MAX_LENGTH_FIELD as u64,
        });
    }
    let field = buf
        .get_mut(length_at..length_at.saturating_add(4))
        .ok_or(ProtocolError::invalid("length placeholder"))?;
    field.copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Appends a tagged message with an empty body.
#[inline]
pub(super) fn fixed_message(buf: &mut BytesMut, tag: u8) {
    buf.extend_from_slice(&[tag, 0, 0, 0, 4]);
}

/// Typed appends to a message body; the string and count writers validate their input.
pub(super) struct BodyWriter<'b> {
    buf: &'b mut BytesMut,
}

impl BodyWriter<'_> {
    pub(super) fn u8(&mut self, value: u8) {
        self.buf.put_u8(value);
    }

    pub(super) fn u16(&mut self, value: u16) {
        self.buf.put_u16(value);
    }

    pub(super) fn u32(&mut self, value: u32) {
        self.buf.put_u32(value);
    }

    pub(super) fn bytes(&mut self, value: &[u8]) {
        self.buf.extend_from_slice(value);
    }

    /// Writes `value` and a NUL; a NUL inside `value` would end the string early.
    pub(super) fn cstr(&mut self, value: &[u8], what: &'static str) -> Result<(), ProtocolError> {
        if memchr::memchr(0, value).is_some() {
            return Err(ProtocolError::invalid(what));
        }
        self.buf.extend_from_slice(value);
        self.buf.put_u8(0);
        Ok(())
    }

    /// Like [`BodyWriter::cstr`] for strings inside an empty-string-terminated list.
    pub(super) fn non_empty_cstr(
        &mut self,
        value: &[u8],
        what: &'static str,
    ) -> Result<(), ProtocolError> {
        if value.is_empty() {
            return Err(ProtocolError::invalid(what));
        }
        self.cstr(value, what)
    }

    /// Writes an error/notice field: its code byte then its value as a string.
    pub(super) fn error_field(&mut self, code: u8, value: &[u8]) -> Result<(), ProtocolError> {
        self.u8(code);
        self.cstr(value, "error field value")
    }

    /// Writes a count that must fit an Int16 count field (read unsigned by PostgreSQL).
    pub(super) fn count_u16(
        &mut self,
        count: usize,
        what: &'static str,
    ) -> Result<(), ProtocolError> {
        let count = u16::try_from(count).map_err(|_| ProtocolError::invalid(what))?;
        self.u16(count);
        Ok(())
    }

    /// Writes an `Int32 length` + bytes value; `None` is written as length -1 (NULL).
    pub(super) fn value(&mut self, value: Option<&[u8]>) -> Result<(), ProtocolError> {
        match value {
            None => self.u32(u32::MAX),
            Some(bytes) => {
                let len = i32::try_from(bytes.len()).map_err(|_| ProtocolError::TooLarge {
                    what: "value",
                    len: bytes.len() as u64,
                    max: MAX_LENGTH_FIELD as u64,
                })?;
                self.u32(len as u32);
                self.bytes(bytes);
            }
        }
        Ok(())
    }
}
