//! Encoders for the RESP2/RESP3 replies and commands the proxy originates itself (errors, PONG, HELLO …).
//!
//! Every encoder appends to a `BytesMut`. Types that RESP2 lacks are downgraded the way Redis
//! downgrades them for a RESP2 client (maps become flat arrays, booleans integers, doubles bulk strings).

use bytes::{BufMut, BytesMut};

/// The protocol a downstream client negotiated (`HELLO 2` / `HELLO 3`; RESP2 until it says otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RespVersion {
    /// RESP2, every connection's starting protocol.
    #[default]
    Resp2,
    /// RESP3, after a successful `HELLO 3`.
    Resp3,
}

/// Appends `value` in decimal.
pub(crate) fn put_decimal(buf: &mut BytesMut, value: i64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut rest = value.unsigned_abs();
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        buf.put_u8(b'-');
    }
    buf.put_slice(&digits[start..]);
}

/// Appends a type byte, a decimal number and CRLF: the header of every length-prefixed type.
pub(crate) fn put_header(buf: &mut BytesMut, type_byte: u8, value: i64) {
    buf.reserve(24);
    buf.put_u8(type_byte);
    put_decimal(buf, value);
    buf.put_slice(b"\r\n");
}

fn put_len_header(buf: &mut BytesMut, type_byte: u8, len: usize) {
    put_header(buf, type_byte, i64::try_from(len).unwrap_or(i64::MAX));
}

/// Appends a line with CR and LF replaced by spaces, as Redis does for error texts, so a
/// message can never break the framing.
fn put_sanitized_line(buf: &mut BytesMut, type_byte: u8, text: &[u8]) {
    buf.reserve(text.len() + 3);
    buf.put_u8(type_byte);
    for chunk in text.split_inclusive(|&byte| byte == b'\r' || byte == b'\n') {
        match chunk.split_last() {
            Some((&last, body)) if last == b'\r' || last == b'\n' => {
                buf.put_slice(body);
                buf.put_u8(b' ');
            }
            _ => buf.put_slice(chunk),
        }
    }
    buf.put_slice(b"\r\n");
}

/// `+text` (status reply such as `OK` or `PONG`); CR/LF in `text` become spaces.
pub fn simple(buf: &mut BytesMut, text: &str) {
    simple_bytes(buf, text.as_bytes());
}

/// `+text` from raw bytes; CR/LF become spaces.
pub fn simple_bytes(buf: &mut BytesMut, text: &[u8]) {
    put_sanitized_line(buf, b'+', text);
}

/// `-line`, where `line` is the whole error including its code (`"ERR unknown command …"`).
/// CR/LF become spaces, as Redis does.
pub fn error(buf: &mut BytesMut, line: &str) {
    error_bytes(buf, line.as_bytes());
}

/// `-line` from raw bytes; CR/LF become spaces.
pub fn error_bytes(buf: &mut BytesMut, line: &[u8]) {
    put_sanitized_line(buf, b'-', line);
}

/// `:n`.
pub fn integer(buf: &mut BytesMut, value: i64) {
    put_header(buf, b':', value);
}

/// `$len` + payload: a bulk string.
pub fn bulk(buf: &mut BytesMut, payload: &[u8]) {
    buf.reserve(payload.len() + 16);
    put_len_header(buf, b'$', payload.len());
    buf.put_slice(payload);
    buf.put_slice(b"\r\n");
}

/// A null bulk string: `$-1` in RESP2, `_` in RESP3.
pub fn null(buf: &mut BytesMut, version: RespVersion) {
    buf.put_slice(match version {
        RespVersion::Resp2 => b"$-1\r\n",
        RespVersion::Resp3 => b"_\r\n",
    });
}

/// A null array (e.g. a timed-out `BLPOP`): `*-1` in RESP2, `_` in RESP3.
pub fn null_array(buf: &mut BytesMut, version: RespVersion) {
    buf.put_slice(match version {
        RespVersion::Resp2 => b"*-1\r\n",
        RespVersion::Resp3 => b"_\r\n",
    });
}

/// `*n`: the caller appends `n` elements.
pub fn array_header(buf: &mut BytesMut, len: usize) {
    put_len_header(buf, b'*', len);
}

/// A map of `pairs` entries: `%n` in RESP3, a flat `*2n` array in RESP2. The caller appends
/// key, value, key, value …
pub fn map_header(buf: &mut BytesMut, pairs: usize, version: RespVersion) {
    match version {
        RespVersion::Resp2 => put_len_header(buf, b'*', pairs.saturating_mul(2)),
        RespVersion::Resp3 => put_len_header(buf, b'%', pairs),
    }
}

/// A set of `len` members: `~n` in RESP3, `*n` in RESP2.
pub fn set_header(buf: &mut BytesMut, len: usize, version: RespVersion) {
    let type_byte = if version == RespVersion::Resp3 {
        b'~'
    } else {
        b'*'
    };
    put_len_header(buf, type_byte, len);
}

/// An out-of-band push of `len` elements (pub/sub message): `>n` in RESP3, `*n` in RESP2.
pub fn push_header(buf: &mut BytesMut, len: usize, version: RespVersion) {
    let type_byte = if version == RespVersion::Resp3 {
        b'>'
    } else {
        b'*'
    };
    put_len_header(buf, type_byte, len);
}

/// An attribute of `pairs` entries (`|n`, RESP3 only; the caller must skip it for RESP2),
/// followed by the pairs and then the value it annotates.
pub fn attribute_header(buf: &mut BytesMut, pairs: usize) {
    put_len_header(buf, b'|', pairs);
}

/// `#t`/`#f` in RESP3, `:1`/`:0` in RESP2.
pub fn boolean(buf: &mut BytesMut, value: bool, version: RespVersion) {
    buf.put_slice(match (version, value) {
        (RespVersion::Resp3, true) => b"#t\r\n",
        (RespVersion::Resp3, false) => b"#f\r\n",
        (RespVersion::Resp2, true) => b":1\r\n",
        (RespVersion::Resp2, false) => b":0\r\n",
    });
}

/// `,value` in RESP3, a bulk string in RESP2. Uses the shortest text that reads back as the
/// same `f64`, plus Redis' `inf`, `-inf` and `nan`.
pub fn double(buf: &mut BytesMut, value: f64, version: RespVersion) {
    let text = if value.is_nan() {
        "nan".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        // `{:?}` keeps exponents short (1e300, not 301 digits) and round-trips exactly.
        format!("{value:?}")
    };
    match version {
        RespVersion::Resp3 => {
            buf.put_u8(b',');
            buf.put_slice(text.as_bytes());
            buf.put_slice(b"\r\n");
        }
        RespVersion::Resp2 => bulk(buf, text.as_bytes()),
    }
}

/// `(digits` in RESP3, a bulk string in RESP2. `digits` must be an optionally signed decimal.
pub fn big_number(buf: &mut BytesMut, digits: &[u8], version: RespVersion) {
    match version {
        RespVersion::Resp3 => put_sanitized_line(buf, b'(', digits),
        RespVersion::Resp2 => bulk(buf, digits),
    }
}

/// A verbatim string `=len\r\nfmt:text` in RESP3 (`format` is three bytes such as `txt` or
/// `mkd`), the bare text as a bulk string in RESP2.
pub fn verbatim(buf: &mut BytesMut, format: [u8; 3], text: &[u8], version: RespVersion) {
    match version {
        RespVersion::Resp3 => {
            buf.reserve(text.len() + 20);
            put_len_header(buf, b'=', text.len().saturating_add(4));
            buf.put_slice(&format);
            buf.put_u8(b':');
            buf.put_slice(text);
            buf.put_slice(b"\r\n");
        }
        RespVersion::Resp2 => bulk(buf, text),
    }
}

/// A blob error `!len` (RESP3), whose text may contain CR/LF; in RESP2 a `-` line with CR/LF
/// replaced by spaces.
pub fn blob_error(buf: &mut BytesMut, line: &[u8], version: RespVersion) {
    match version {
        RespVersion::Resp3 => {
            buf.reserve(line.len() + 16);
            put_len_header(buf, b'!', line.len());
            buf.put_slice(line);
            buf.put_slice(b"\r\n");
        }
        RespVersion::Resp2 => error_bytes(buf, line),
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};

    use super::RespVersion::{Resp2, Resp3};
    use super::*;

    #[test]
    fn reply_encoders_match_redis_bytes() {
        fn enc(write: impl Fn(&mut BytesMut)) -> Bytes {
            let mut buf = BytesMut::new();
            write(&mut buf);
            buf.freeze()
        }
        let cases = [
            (enc(|b| simple(b, "PONG")), "+PONG\r\n"),
            (
                enc(|b| error(b, "ERR bad\r\nthing\n")),
                "-ERR bad  thing \r\n",
            ),
            (enc(|b| integer(b, i64::MIN)), ":-9223372036854775808\r\n"),
            (enc(|b| integer(b, 0)), ":0\r\n"),
            (enc(|b| bulk(b, b"a\r\nb")), "$4\r\na\r\nb\r\n"),
            (enc(|b| null(b, Resp2)), "$-1\r\n"),
            (enc(|b| null(b, Resp3)), "_\r\n"),
            (enc(|b| null_array(b, Resp2)), "*-1\r\n"),
            (enc(|b| null_array(b, Resp3)), "_\r\n"),
            (enc(|b| array_header(b, 3)), "*3\r\n"),
            (enc(|b| map_header(b, 7, Resp2)), "*14\r\n"),
            (enc(|b| map_header(b, 7, Resp3)), "%7\r\n"),
            (enc(|b| set_header(b, 2, Resp2)), "*2\r\n"),
            (enc(|b| set_header(b, 2, Resp3)), "~2\r\n"),
            (enc(|b| push_header(b, 3, Resp2)), "*3\r\n"),
            (enc(|b| push_header(b, 3, Resp3)), ">3\r\n"),
            (enc(|b| attribute_header(b, 1)), "|1\r\n"),
            (enc(|b| boolean(b, true, Resp2)), ":1\r\n"),
            (enc(|b| boolean(b, false, Resp3)), "#f\r\n"),
            (enc(|b| double(b, 3.5, Resp3)), ",3.5\r\n"),
            (enc(|b| double(b, 1e300, Resp3)), ",1e300\r\n"),
            (enc(|b| double(b, f64::NEG_INFINITY, Resp3)), ",-inf\r\n"),
            (enc(|b| double(b, f64::NAN, Resp3)), ",nan\r\n"),
            (enc(|b| double(b, 3.5, Resp2)), "$3\r\n3.5\r\n"),
            (
                enc(|b| verbatim(b, *b"txt", b"Some text", Resp3)),
                "=13\r\ntxt:Some text\r\n",
            ),
            (
                enc(|b| verbatim(b, *b"txt", b"Some text", Resp2)),
                "$9\r\nSome text\r\n",
            ),
            (
                enc(|b| big_number(b, b"-12345678901234567890", Resp3)),
                "(-12345678901234567890\r\n",
            ),
            (
                enc(|b| blob_error(b, b"ERR a\nb", Resp3)),
                "!7\r\nERR a\nb\r\n",
            ),
            (enc(|b| blob_error(b, b"ERR a\nb", Resp2)), "-ERR a b\r\n"),
        ];
        for (index, (encoded, expected)) in cases.iter().enumerate() {
            assert_eq!(encoded, expected, "case {index}");
        }
    }
}
