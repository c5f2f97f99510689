//! Bounds-checked cursor over a message body: every read either succeeds or names what was short.

use crate::error::ProtocolError;

/// Reads big-endian integers and NUL-terminated strings from the front of a borrowed body.
///
/// Every method checks the remaining length first, so no input can make it panic.
#[derive(Clone, Copy)]
pub(crate) struct BodyReader<'a> {
    rest: &'a [u8],
}

impl<'a> BodyReader<'a> {
    /// Starts reading at the first byte of `body`.
    #[inline]
    pub(crate) const fn new(body: &'a [u8]) -> Self {
        Self { rest: body }
    }

    /// The bytes not read yet.
    #[inline]
    pub(crate) const fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// Reads one byte.
    #[inline]
    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, ProtocolError> {
        let (&first, rest) = self
            .rest
            .split_first()
            .ok_or(ProtocolError::invalid(what))?;
        self.rest = rest;
        Ok(first)
    }

    /// Reads a big-endian `u16`.
    #[inline]
    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, ProtocolError> {
        self.array::<2>(what).map(u16::from_be_bytes)
    }

    /// Reads a big-endian `u32`.
    #[inline]
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, ProtocolError> {
        self.array::<4>(what).map(u32::from_be_bytes)
    }

    /// Reads exactly `N` bytes into an array.
    #[inline]
    pub(crate) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], ProtocolError> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(ProtocolError::invalid(what))?;
        self.rest = rest;
        Ok(*head)
    }

    /// Reads a big-endian `i32`.
    #[inline]
    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, ProtocolError> {
        self.u32(what).map(|v| v as i32)
    }

    /// Reads a big-endian `i16`.
    #[inline]
    pub(crate) fn i16(&mut self, what: &'static str) -> Result<i16, ProtocolError> {
        self.u16(what).map(|v| v as i16)
    }

    /// Reads exactly `len` bytes.
    #[inline]
    pub(crate) fn bytes(
        &mut self,
        len: usize,
        what: &'static str,
    ) -> Result<&'a [u8], ProtocolError> {
        let (head, rest) = self
            .rest
            .split_at_checked(len)
            .ok_or(ProtocolError::invalid(what))?;
        self.rest = rest;
        Ok(head)
    }

    /// Reads a NUL-terminated string and returns it without the NUL.
    #[inline]
    pub(crate) fn cstr(&mut self, what: &'static str) -> Result<&'a [u8], ProtocolError> {
        let end = memchr::memchr(0, self.rest).ok_or(ProtocolError::invalid(what))?;
        let (value, rest) = self.rest.split_at(end);
        self.rest = rest.get(1..).unwrap_or_default();
        Ok(value)
    }

    /// Fails unless every byte has been read: PostgreSQL rejects trailing garbage too.
    #[inline]
    pub(crate) fn finish(self, what: &'static str) -> Result<(), ProtocolError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(ProtocolError::invalid(what))
        }
    }
}

/// Reads a body that must be exactly one NUL-terminated string, returned without the NUL.
#[inline]
pub(crate) fn single_cstr<'a>(
    body: &'a [u8],
    what: &'static str,
) -> Result<&'a [u8], ProtocolError> {
    let mut reader = BodyReader::new(body);
    let value = reader.cstr(what)?;
    reader.finish(what)?;
    Ok(value)
}

/// Fails unless `body` is empty (Sync, Flush, ParseComplete, ...).
#[inline]
pub(crate) fn empty(body: &[u8], what: &'static str) -> Result<(), ProtocolError> {
    BodyReader::new(body).finish(what)
}

/// Iterator over a validated run of NUL-terminated strings (SASL mechanism names,
/// NegotiateProtocolVersion options, ...). Validation happens when the view is built, so
/// iteration cannot fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CStrList<'a> {
    /// Concatenated `name\0` entries, without any list terminator.
    rest: &'a [u8],
    remaining: usize,
}

impl<'a> CStrList<'a> {
    /// Builds the list from `count` entries that were checked to be NUL-terminated.
    pub(crate) const fn from_validated(rest: &'a [u8], count: usize) -> Self {
        Self {
            rest,
            remaining: count,
        }
    }

    /// Number of entries not yet yielded.
    #[inline]
    pub const fn len(&self) -> usize {
        self.remaining
    }

    /// True when no entry is left.
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.remaining == 0
    }
}

impl<'a> Iterator for CStrList<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.remaining == 0 {
            return None;
        }
        let mut reader = BodyReader::new(self.rest);
        let value = reader.cstr("string list").ok()?;
        self.rest = reader.rest();
        self.remaining -= 1;
        Some(value)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for CStrList<'_> {}

/// Iterator over a validated run of big-endian `u32` values (type OIDs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OidList<'a> {
    /// The remaining 4-byte values; always a multiple of 4 bytes long.
    rest: &'a [u8],
}

impl<'a> OidList<'a> {
    /// Wraps a slice whose length was checked to be a multiple of 4.
    pub(crate) const fn from_validated(rest: &'a [u8]) -> Self {
        Self { rest }
    }

    /// The value at `index`, if present.
    #[inline]
    pub fn get(&self, index: usize) -> Option<u32> {
        let start = index.checked_mul(4)?;
        let chunk = self.rest.get(start..start.checked_add(4)?)?;
        chunk
            .first_chunk::<4>()
            .map(|bytes| u32::from_be_bytes(*bytes))
    }
}

impl Iterator for OidList<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        let (head, rest) = self.rest.split_first_chunk::<4>()?;
        self.rest = rest;
        Some(u32::from_be_bytes(*head))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = self.rest.len() / 4;
        (len, Some(len))
    }
}

impl ExactSizeIterator for OidList<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reads_and_rejects_short_input() {
        let mut reader = BodyReader::new(b"\x00\x01\x00\x00\x00\x02ab\0c");
        assert_eq!(reader.u16("a"), Ok(1));
        assert_eq!(reader.u32("b"), Ok(2));
        assert_eq!(reader.cstr("c"), Ok(&b"ab"[..]));
        assert!(reader.cstr("d").is_err());
        assert_eq!(reader.bytes(1, "e"), Ok(&b"c"[..]));
        assert!(reader.u8("f").is_err());
        assert!(reader.finish("g").is_ok());
    }

    #[test]
    fn single_cstr_requires_exact_terminator() {
        assert_eq!(single_cstr(b"x\0", "q"), Ok(&b"x"[..]));
        assert!(single_cstr(b"x", "q").is_err());
        assert!(single_cstr(b"x\0y", "q").is_err());
    }
}
