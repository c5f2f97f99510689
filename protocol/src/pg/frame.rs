//! Header-only framing of tagged messages: peek, split zero-copy, or scan a read buffer in place.
//!
//! A frame is `tag:u8 | length:u32 (counts itself, not the tag) | body`. Nothing here looks
//! at the body, so this is the per-message cost of forwarding.

use bytes::{Bytes, BytesMut};

use crate::error::ProtocolError;

pub use super::tag::{BackendTag, FrontendTag};

/// Bytes before the body: the tag byte and the 4-byte length field.
pub const HEADER_LEN: usize = 5;

/// Default limit on a whole frame (PgBouncer's `max_packet_size` default, i.e. `i32::MAX`).
pub const DEFAULT_MAX_PACKET: usize = 2_147_483_647;

/// The decoded 5-byte header of a tagged message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The raw type byte; map it with [`FrontendTag::from_byte`] or [`BackendTag::from_byte`].
    pub tag: u8,
    /// Whole frame length including the tag byte (1 + the length field).
    pub len: usize,
}

impl FrameHeader {
    /// Length of the body (frame length minus the 5 header bytes).
    #[inline]
    pub const fn body_len(&self) -> usize {
        self.len.saturating_sub(HEADER_LEN)
    }
}

/// Reads the header at the start of `buf`.
///
/// Returns `Ok(None)` when fewer than 5 bytes are buffered. Fails when the length field is
/// below 4 (it counts itself) or the whole frame would exceed `max_len`; the caller must
/// then drop the connection, because the stream can no longer be framed.
#[inline]
pub fn peek_header(buf: &[u8], max_len: usize) -> Result<Option<FrameHeader>, ProtocolError> {
    let Some(([tag, a, b, c, d], _)) = buf.split_first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let field = u32::from_be_bytes([*a, *b, *c, *d]);
    if field < 4 {
        return Err(ProtocolError::invalid("message length"));
    }
    let len = u64::from(field) + 1;
    if len > max_len as u64 {
        return Err(ProtocolError::TooLarge {
            what: "packet",
            len,
            max: max_len as u64,
        });
    }
    // `len <= max_len` so it fits in usize.
    Ok(Some(FrameHeader {
        tag: *tag,
        len: len as usize,
    }))
}

/// One complete tagged message (header included) sharing the read buffer's memory.
///
/// Invariant: at least 5 bytes, and the length field matches the byte count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    bytes: Bytes,
}

impl Frame {
    /// Wraps bytes holding exactly one frame; fails if the header disagrees with the length.
    pub fn from_bytes(bytes: Bytes) -> Result<Self, ProtocolError> {
        match peek_header(&bytes, usize::MAX)? {
            Some(header) if header.len == bytes.len() => Ok(Self { bytes }),
            _ => Err(ProtocolError::invalid("frame length")),
        }
    }

    /// The raw type byte.
    #[inline]
    pub fn tag(&self) -> u8 {
        self.bytes.first().copied().unwrap_or_default()
    }

    /// The body after the 5-byte header.
    #[inline]
    pub fn body(&self) -> &[u8] {
        self.bytes.get(HEADER_LEN..).unwrap_or_default()
    }

    /// Whole frame length on the wire, header included.
    #[inline]
    pub fn wire_len(&self) -> usize {
        self.bytes.len()
    }

    /// The whole frame, header included, for forwarding verbatim.
    #[inline]
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Gives back the whole frame, header included.
    #[inline]
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// The tag read as a client message type.
    #[inline]
    pub fn frontend_tag(&self) -> Option<FrontendTag> {
        FrontendTag::from_byte(self.tag())
    }

    /// The tag read as a server message type.
    #[inline]
    pub fn backend_tag(&self) -> Option<BackendTag> {
        BackendTag::from_byte(self.tag())
    }
}

/// Cuts complete frames off the front of a read buffer without copying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSplitter {
    max_len: usize,
}

impl Default for FrameSplitter {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_PACKET)
    }
}

impl FrameSplitter {
    /// A splitter that rejects frames longer than `max_len` bytes (header included).
    pub const fn new(max_len: usize) -> Self {
        Self { max_len }
    }

    /// The configured frame limit.
    pub const fn max_len(&self) -> usize {
        self.max_len
    }

    /// Removes and returns the first frame of `buf` if it is complete.
    ///
    /// `Ok(None)` means "read more"; `buf` is then untouched. The frame shares `buf`'s
    /// allocation (`split_to(..).freeze()`), so this never copies the body.
    #[inline]
    pub fn split(&self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        match peek_header(buf, self.max_len)? {
            Some(header) if header.len <= buf.len() => Ok(Some(Frame {
                bytes: buf.split_to(header.len).freeze(),
            })),
            _ => Ok(None),
        }
    }
}

/// Walks the complete frames of a byte slice, yielding each header and its offset.
///
/// Lets a forwarder peek at tags (e.g. find ReadyForQuery) and then forward the whole
/// complete prefix ([`FrameScanner::complete_len`]) in one write. Stops after the first error.
#[derive(Debug, Clone)]
pub struct FrameScanner<'a> {
    buf: &'a [u8],
    pos: usize,
    max_len: usize,
    is_failed: bool,
}

/// Starts a [`FrameScanner`] at the beginning of `buf`.
#[inline]
pub fn scan_frames(buf: &[u8], max_len: usize) -> FrameScanner<'_> {
    FrameScanner::new(buf, max_len)
}

impl<'a> FrameScanner<'a> {
    /// Scans `buf`, rejecting frames longer than `max_len`.
    #[inline]
    pub const fn new(buf: &'a [u8], max_len: usize) -> Self {
        Self {
            buf,
            pos: 0,
            max_len,
            is_failed: false,
        }
    }

    /// Bytes covered by the complete frames yielded so far.
    #[inline]
    pub const fn complete_len(&self) -> usize {
        self.pos
    }

    /// The bytes after the last yielded frame (a partial frame, or garbage after an error).
    #[inline]
    pub fn remaining(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// Header of the incomplete frame that follows the complete ones, if its 5 header bytes
    /// are present and valid: tells a forwarder how many more bytes that frame needs.
    pub fn pending_header(&self) -> Option<FrameHeader> {
        match peek_header(self.remaining(), self.max_len) {
            Ok(Some(header)) if header.len > self.remaining().len() => Some(header),
            _ => None,
        }
    }

    /// Frame of the header at `offset` of the scanned slice (as yielded by the iterator).
    #[inline]
    pub fn frame_bytes(&self, header: FrameHeader, offset: usize) -> &'a [u8] {
        self.buf
            .get(offset..offset.saturating_add(header.len))
            .unwrap_or_default()
    }
}

impl Iterator for FrameScanner<'_> {
    type Item = Result<(FrameHeader, usize), ProtocolError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.is_failed {
            return None;
        }
        let rest = self.remaining();
        match peek_header(rest, self.max_len) {
            Ok(Some(header)) if header.len <= rest.len() => {
                let offset = self.pos;
                self.pos += header.len;
                Some(Ok((header, offset)))
            }
            Ok(_) => None,
            Err(error) => {
                self.is_failed = true;
                Some(Err(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_header_handles_short_bad_and_large() {
        assert_eq!(peek_header(b"Z\0\0\0", 100), Ok(None));
        assert_eq!(
            peek_header(b"Z\0\0\0\x05I", 100),
            Ok(Some(FrameHeader { tag: b'Z', len: 6 }))
        );
        assert!(peek_header(b"Z\0\0\0\x03", 100).is_err());
        assert!(matches!(
            peek_header(b"D\xff\xff\xff\xff", DEFAULT_MAX_PACKET),
            Err(ProtocolError::TooLarge { what: "packet", .. })
        ));
        assert!(peek_header(b"D\0\0\0\x10", 16).is_err());
        assert_eq!(
            peek_header(b"D\0\0\0\x10", 17),
            Ok(Some(FrameHeader { tag: b'D', len: 17 }))
        );
    }

    #[test]
    fn splitter_is_zero_copy_and_waits_for_more() {
        let mut buf = BytesMut::from(&b"Z\0\0\0\x05IS\0\0\0\x04Z\0"[..]);
        let base = buf.as_ptr();
        let splitter = FrameSplitter::default();
        let first = splitter.split(&mut buf).unwrap().unwrap();
        assert_eq!(first.as_bytes().as_ptr(), base);
        assert_eq!(first.backend_tag(), Some(BackendTag::ReadyForQuery));
        assert_eq!(first.body(), b"I");
        let second = splitter.split(&mut buf).unwrap().unwrap();
        assert_eq!(second.frontend_tag(), Some(FrontendTag::Sync));
        assert_eq!(second.body(), b"");
        assert_eq!(splitter.split(&mut buf), Ok(None));
        assert_eq!(&buf[..], b"Z\0");
    }

    #[test]
    fn scanner_reports_complete_prefix_and_pending_frame() {
        let buf = b"1\0\0\0\x042\0\0\0\x04D\0\0\0\x10abc";
        let mut scanner = scan_frames(buf, DEFAULT_MAX_PACKET);
        let tags: Vec<u8> = scanner.by_ref().map(|r| r.unwrap().0.tag).collect();
        assert_eq!(tags, b"12");
        assert_eq!(scanner.complete_len(), 10);
        assert_eq!(
            scanner.pending_header(),
            Some(FrameHeader { tag: b'D', len: 17 })
        );
        let mut bad = scan_frames(b"1\0\0\0\x04Z\0\0\0\x01", 100);
        assert!(bad.next().unwrap().is_ok());
        assert!(bad.next().unwrap().is_err());
        assert!(bad.next().is_none());
        assert_eq!(bad.complete_len(), 5);
    }

    #[test]
    fn frame_from_bytes_checks_length() {
        assert!(Frame::from_bytes(Bytes::from_static(b"S\0\0\0\x04")).is_ok());
        assert!(Frame::from_bytes(Bytes::from_static(b"S\0\0\0\x05")).is_err());
        assert!(Frame::from_bytes(Bytes::from_static(b"S\0\0\0\x04x")).is_err());
        assert!(Frame::from_bytes(Bytes::from_static(b"S\0")).is_err());
    }
}
