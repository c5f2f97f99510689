//! Statement renaming by byte splice: only the name changes, every other byte is copied verbatim.
//!
//! A transaction-pooling proxy gives each client statement a per-server-connection name, so
//! Parse, Bind, Describe('S') and Close('S') must carry the new name. Re-encoding would
//! risk changing bytes the proxy does not understand; splicing cannot.

use bytes::{BufMut, Bytes, BytesMut};

use super::frame::{Frame, HEADER_LEN};
use super::frontend::Target;
use super::tag::FrontendTag;
use crate::error::ProtocolError;

/// Largest value the Int32 length field can carry.
const MAX_LENGTH_FIELD: usize = i32::MAX as usize;

/// Where the statement name sits in a frame body.
struct Splice<'a> {
    tag: u8,
    /// Body bytes before the name.
    prefix: &'a [u8],
    /// Body bytes from the name's NUL to the end.
    suffix: &'a [u8],
    /// Value of the new length field.
    length_field: u32,
}

/// Returns a new frame equal to `frame` except that its statement name is `new_name`.
///
/// Works for Parse (the statement being created), Bind (the source statement, the second
/// string), and Describe/Close with a statement target. Fails for portal targets, other
/// message types, a `new_name` containing NUL, a body too short to hold the name, or a
/// result longer than the Int32 length field allows. One allocation, exactly sized.
pub fn rename_statement(frame: &Frame, new_name: &[u8]) -> Result<Bytes, ProtocolError> {
    let splice = locate(frame, new_name)?;
    let mut out = BytesMut::new();
    write_splice(&splice, new_name, &mut out);
    Ok(out.freeze())
}

/// Like [`rename_statement`] but appends the new frame to `out` (no intermediate buffer).
/// On error `out` is left unchanged.
pub fn rename_statement_into(
    frame: &Frame,
    new_name: &[u8],
    out: &mut BytesMut,
) -> Result<(), ProtocolError> {
    let splice = locate(frame, new_name)?;
    write_splice(&splice, new_name, out);
    Ok(())
}

fn locate<'a>(frame: &'a Frame, new_name: &[u8]) -> Result<Splice<'a>, ProtocolError> {
    if memchr::memchr(0, new_name).is_some() {
        return Err(ProtocolError::invalid("statement name contains NUL"));
    }
    let body = frame.body();
    let tag = frame.frontend_tag();
    let prefix_len = match tag {
        Some(FrontendTag::Parse) => 0,
        Some(FrontendTag::Bind) => {
            memchr::memchr(0, body).ok_or(ProtocolError::invalid("Bind portal name"))? + 1
        }
        Some(FrontendTag::Describe | FrontendTag::Close) => {
            match body.first().copied().and_then(Target::from_byte) {
                Some(Target::Statement) => 1,
                Some(Target::Portal) => {
                    return Err(ProtocolError::invalid("rename target is a portal"));
                }
                None => return Err(ProtocolError::invalid("Describe/Close target")),
            }
        }
        _ => return Err(ProtocolError::invalid("message has no statement name")),
    };
    let (prefix, rest) = body
        .split_at_checked(prefix_len)
        .ok_or(ProtocolError::invalid("statement name"))?;
    let old_len = memchr::memchr(0, rest).ok_or(ProtocolError::invalid("statement name"))?;
    let (_, suffix) = rest
        .split_at_checked(old_len)
        .ok_or(ProtocolError::invalid("statement name"))?;
    if matches!(tag, Some(FrontendTag::Describe | FrontendTag::Close)) && suffix != b"\0" {
        return Err(ProtocolError::invalid("Describe/Close length"));
    }
    let body_len = prefix.len() + new_name.len() + suffix.len();
    let length_field = body_len
        .checked_add(HEADER_LEN - 1)
        .filter(|len| *len <= MAX_LENGTH_FIELD)
        .ok_or(ProtocolError::TooLarge {
            what: "packet",
            len: body_len as u64 + HEADER_LEN as u64 - 1,
            max: MAX_LENGTH_FIELD as u64,
        })?;
    Ok(Splice {
        tag: frame.tag(),
        prefix,
        suffix,
        length_field: length_field as u32,
    })
}

fn write_splice(splice: &Splice<'_>, new_name: &[u8], out: &mut BytesMut) {
    out.reserve(splice.length_field as usize + 1);
    out.put_u8(splice.tag);
    out.put_u32(splice.length_field);
    out.extend_from_slice(splice.prefix);
    out.extend_from_slice(new_name);
    out.extend_from_slice(splice.suffix);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: u8, body: &[u8]) -> Frame {
        let mut bytes = vec![tag];
        bytes.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        bytes.extend_from_slice(body);
        Frame::from_bytes(Bytes::from(bytes)).unwrap()
    }

    #[test]
    fn renames_each_kind() {
        let cases = [
            (
                b'P',
                &b"s1\0SELECT 1\0\0\0"[..],
                &b"P\0\0\0\x18pooler_7\0SELECT 1\0\0\0"[..],
            ),
            (
                b'B',
                b"p\0s1\0\0\0\0\0\0\0",
                b"B\0\0\0\x15p\0pooler_7\0\0\0\0\0\0\0",
            ),
            (b'D', b"Ss1\0", b"D\0\0\0\x0eSpooler_7\0"),
            (b'C', b"S\0", b"C\0\0\0\x0eSpooler_7\0"),
        ];
        for (tag, body, expected) in cases {
            let renamed = rename_statement(&frame(tag, body), b"pooler_7").unwrap();
            assert_eq!(&renamed[..], expected);
            let mut out = BytesMut::from(&b"x"[..]);
            rename_statement_into(&frame(tag, body), b"pooler_7", &mut out).unwrap();
            assert_eq!(&out[1..], expected);
        }
    }

    #[test]
    fn rejects_what_it_cannot_rename() {
        let mut out = BytesMut::new();
        for (tag, body, name) in [
            (b'D', &b"Pp1\0"[..], &b"x"[..]),
            (b'C', b"Ss1\0junk", b"x"),
            (b'Q', b"SELECT 1\0", b"x"),
            (b'P', b"s1", b"x"),
            (b'B', b"p\0s1", b"x"),
            (b'P', b"s1\0q\0\0\0", b"a\0b"),
        ] {
            assert!(rename_statement_into(&frame(tag, body), name, &mut out).is_err());
            assert!(out.is_empty());
        }
    }
}
