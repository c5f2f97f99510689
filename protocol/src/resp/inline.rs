//! Inline commands (`PING\r\n`, `set a "b c"\n`): Redis' `processInlineBuffer` and `sdssplitargs`,
//! turned into multibulk requests so they can share an upstream connection.

use bytes::{Buf, BytesMut};
use memchr::{memchr, memchr2};

use super::request::Request;
use super::scan::RespLimits;
use crate::ProtocolError;

/// What one inline line turned into.
#[derive(Debug)]
pub(crate) enum InlineLine {
    /// No newline yet.
    Incomplete,
    /// A line without arguments, consumed and ignored (as Redis ignores it).
    Empty,
    /// A command, its line consumed from the buffer.
    Request(Request),
}

/// Decodes the inline line at the front of `buf`. `scanned` remembers how much of an
/// incomplete line was already searched for its newline, so a slow line costs linear time.
pub(crate) fn decode_inline(
    buf: &mut BytesMut,
    limits: &RespLimits,
    scanned: &mut usize,
) -> Result<InlineLine, ProtocolError> {
    let search_from = (*scanned).min(buf.len());
    let found =
        memchr2(b'\n', 0, buf.get(search_from..).unwrap_or_default()).map(|i| search_from + i);
    // Redis finds the newline with strchr, which stops at a NUL byte: a line holding a NUL
    // never ends, and only the size limit below closes the connection.
    let (newline, scanned_to) = match found {
        Some(index) if buf.get(index) == Some(&b'\n') => (Some(index), 0),
        Some(nul) => (None, nul),
        None => (None, buf.len()),
    };
    let Some(newline) = newline else {
        // Like Redis, only a line still without newline past the limit is an error.
        if buf.len() > limits.max_inline_len {
            *scanned = 0;
            return Err(ProtocolError::TooLarge {
                what: "too big inline request",
                len: buf.len() as u64,
                max: limits.max_inline_len as u64,
            });
        }
        *scanned = scanned_to;
        return Ok(InlineLine::Incomplete);
    };
    *scanned = 0;
    let line = buf.get(..newline).unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let args = split_args(line)?;
    buf.advance(newline + 1);
    if args.is_empty() {
        return Ok(InlineLine::Empty);
    }
    let arg_slices: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    Ok(InlineLine::Request(Request::from_args(&arg_slices)))
}

/// C's `isspace` in the "C" locale.
fn is_c_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn hex_value(byte: Option<&u8>) -> Option<u8> {
    match byte? {
        digit @ b'0'..=b'9' => Some(digit - b'0'),
        letter @ b'a'..=b'f' => Some(letter - b'a' + 10),
        letter @ b'A'..=b'F' => Some(letter - b'A' + 10),
        _ => None,
    }
}

/// The bytes of an escape `\c` inside double quotes.
fn unescape(byte: u8) -> u8 {
    match byte {
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'b' => 0x08,
        b'a' => 0x07,
        other => other,
    }
}

fn unbalanced_quotes() -> ProtocolError {
    ProtocolError::invalid("unbalanced quotes in request")
}

/// Redis' `sdssplitargs`: splits on whitespace; `"…"` supports `\n \r \t \b \a \xHH` and `\c`
/// for any other `c`; `'…'` supports only `\'`; a closing quote must be followed by whitespace
/// or the end; a quote inside a word opens a quoted part of that word. The line is a C string
/// to Redis, so it ends at the first NUL byte (`decode_inline` never passes one).
pub(crate) fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
    let line = memchr(0, line)
        .and_then(|nul| line.get(..nul))
        .unwrap_or(line);
    let mut args = Vec::new();
    let mut pos = 0;
    loop {
        while line.get(pos).is_some_and(|&byte| is_c_space(byte)) {
            pos += 1;
        }
        if pos >= line.len() {
            return Ok(args);
        }
        let (arg, next) = split_one_arg(line, pos)?;
        args.push(arg);
        pos = next;
    }
}

/// Reads one argument starting at `pos` (not whitespace); returns it and where scanning goes on.
fn split_one_arg(line: &[u8], mut pos: usize) -> Result<(Vec<u8>, usize), ProtocolError> {
    let mut arg = Vec::new();
    let mut in_double_quotes = false;
    let mut in_single_quotes = false;
    loop {
        let current = line.get(pos).copied();
        let next = line.get(pos + 1).copied();
        let mut is_done = false;
        if in_double_quotes {
            match current {
                None => return Err(unbalanced_quotes()),
                Some(b'\\') if next == Some(b'x') => {
                    match (hex_value(line.get(pos + 2)), hex_value(line.get(pos + 3))) {
                        (Some(high), Some(low)) => {
                            arg.push(high * 16 + low);
                            pos += 3;
                        }
                        // Not a valid \xHH: an ordinary escape of 'x'.
                        _ => {
                            arg.push(b'x');
                            pos += 1;
                        }
                    }
                }
                Some(b'\\') if next.is_some() => {
                    arg.push(unescape(next.unwrap_or_default()));
                    pos += 1;
                }
                Some(b'"') => {
                    if next.is_some_and(|byte| !is_c_space(byte)) {
                        return Err(unbalanced_quotes());
                    }
                    is_done = true;
                }
                Some(byte) => arg.push(byte),
            }
        } else if in_single_quotes {
            match current {
                None => return Err(unbalanced_quotes()),
                Some(b'\\') if next == Some(b'\'') => {
                    arg.push(b'\'');
                    pos += 1;
                }
                Some(b'\'') => {
                    if next.is_some_and(|byte| !is_c_space(byte)) {
                        return Err(unbalanced_quotes());
                    }
                    is_done = true;
                }
                Some(byte) => arg.push(byte),
            }
        } else {
            match current {
                // Unquoted words end only at these (not at \v or \f, unlike the blank skipping).
                None | Some(b' ' | b'\n' | b'\r' | b'\t') => is_done = true,
                Some(b'"') => in_double_quotes = true,
                Some(b'\'') => in_single_quotes = true,
                Some(byte) => arg.push(byte),
            }
        }
        if pos < line.len() {
            pos += 1;
        }
        if is_done {
            return Ok((arg, pos));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_args;

    fn split(line: &[u8]) -> Option<Vec<Vec<u8>>> {
        split_args(line).ok()
    }

    #[test]
    fn follows_sdssplitargs_edge_cases() {
        let args = |list: &[&[u8]]| Some(list.iter().map(|a| a.to_vec()).collect::<Vec<_>>());
        assert_eq!(split(b""), args(&[]));
        assert_eq!(split(b" \x0b\x0c\t "), args(&[]));
        // \v and \f separate words only as leading blanks, not inside an unquoted word.
        assert_eq!(split(b"\x0ba\x0bb c"), args(&[b"a\x0bb", b"c"]));
        assert_eq!(split(b"\"\\x41\\xzz\\q\\\\\""), args(&[b"Axzzq\\"]));
        assert_eq!(split(b"\"\\n\\r\\t\\b\\a\""), args(&[b"\n\r\t\x08\x07"]));
        assert_eq!(split(b"'a\\'b\\n'"), args(&[b"a'b\\n"]));
        assert_eq!(split(b"a\"b c\"d"), None);
        assert_eq!(split(b"a\"b c\"\x0bd"), args(&[b"ab c", b"d"]));
        assert_eq!(split(b"\"abc\\"), None);
        assert_eq!(split(b"'abc"), None);
        // Redis sees a C string: a NUL ends the line.
        assert_eq!(split(b"get k\0ignored \"unbalanced"), args(&[b"get", b"k"]));
        assert_eq!(split(b"\"a\0\""), None);
    }
}
