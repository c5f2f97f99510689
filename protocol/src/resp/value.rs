//! Owned RESP2/RESP3 values for the few replies the proxy must read itself (Sentinel, ROLE,
//! INFO, COMMAND INFO, HELLO): decode one frame, inspect it, encode values the proxy originates.

use bytes::{BufMut, Bytes, BytesMut};
use memchr::memchr;

use super::reply::{self, RespVersion, put_header};
use super::request::parse_redis_integer;
use super::scan::{RespLimits, is_big_number, parse_resp_double, parse_resp_integer};
use crate::ProtocolError;

/// One decoded RESP value. Attributes (`|`) are kept, wrapped around the value they annotate;
/// the `as_*` helpers look through them.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `+text`.
    Simple(Bytes),
    /// `-text` or RESP3 blob error `!len`: the whole line, code included (`ERR …`).
    Error(Bytes),
    /// `:n`.
    Integer(i64),
    /// `$len` bulk string, or a RESP3 streamed string `$?` joined into one.
    Bulk(Bytes),
    /// `$-1`, `*-1` or RESP3 `_`.
    Null,
    /// `*n`.
    Array(Vec<Value>),
    /// RESP3 `%n`, in wire order (duplicate keys kept).
    Map(Vec<(Value, Value)>),
    /// RESP3 `~n`.
    Set(Vec<Value>),
    /// RESP3 `>n` out-of-band message (pub/sub, invalidation).
    Push(Vec<Value>),
    /// RESP3 `#t`/`#f`.
    Boolean(bool),
    /// RESP3 `,x`.
    Double(f64),
    /// RESP3 `(digits`, kept as text.
    BigNumber(Bytes),
    /// RESP3 `=len\r\nfmt:text`.
    Verbatim {
        /// Three-byte format such as `txt` or `mkd`.
        format: [u8; 3],
        /// The text after `fmt:`.
        text: Bytes,
    },
    /// RESP3 `|n` attribute pairs and the value they annotate.
    Attributed {
        /// The attribute map, in wire order.
        attributes: Vec<(Value, Value)>,
        /// The annotated value.
        value: Box<Value>,
    },
}

/// The type of a RESP value as its first byte announces it (attributes aside). A RESP2 null
/// is a `Bulk` (`$-1`) or an `Array` (`*-1`); a RESP3 blob error is an `Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// `+`
    Simple,
    /// `-` or `!`
    Error,
    /// `:`
    Integer,
    /// `$`
    Bulk,
    /// `_`
    Null,
    /// `*`
    Array,
    /// `%`
    Map,
    /// `~`
    Set,
    /// `>`
    Push,
    /// `#`
    Boolean,
    /// `,`
    Double,
    /// `(`
    BigNumber,
    /// `=`
    Verbatim,
}

impl ValueKind {
    pub(crate) fn from_type_byte(type_byte: u8) -> Option<Self> {
        Some(match type_byte {
            b'+' => Self::Simple,
            b'-' | b'!' => Self::Error,
            b':' => Self::Integer,
            b'$' => Self::Bulk,
            b'_' => Self::Null,
            b'*' => Self::Array,
            b'%' => Self::Map,
            b'~' => Self::Set,
            b'>' => Self::Push,
            b'#' => Self::Boolean,
            b',' => Self::Double,
            b'(' => Self::BigNumber,
            b'=' => Self::Verbatim,
            _ => return None,
        })
    }
}

impl Value {
    /// Decodes the value at the start of `buf` with the default limits: `Ok(None)` while it is
    /// incomplete, else the value and its length in bytes.
    ///
    /// Meant for small frames (found with [`super::RespFramer`]): it parses from the start.
    pub fn decode(buf: &[u8]) -> Result<Option<(Value, usize)>, ProtocolError> {
        Self::decode_with_limits(buf, &RespLimits::default())
    }

    /// [`Value::decode`] with explicit limits; nesting beyond `max_depth` is an error, and no
    /// vector is pre-allocated beyond what the bytes present could fill.
    pub fn decode_with_limits(
        buf: &[u8],
        limits: &RespLimits,
    ) -> Result<Option<(Value, usize)>, ProtocolError> {
        let mut decoder = Decoder {
            buf,
            pos: 0,
            limits,
        };
        Ok(decoder.value(0)?.map(|value| (value, decoder.pos)))
    }

    /// Appends the value in `version`'s wire form. For RESP2, RESP3-only types are downgraded
    /// as Redis does and attributes are dropped; CR/LF in simple strings become spaces.
    pub fn encode(&self, buf: &mut BytesMut, version: RespVersion) {
        match self {
            Value::Simple(text) => reply::simple_bytes(buf, text),
            Value::Error(line)
                if version == RespVersion::Resp3
                    && line.iter().any(|&b| b == b'\r' || b == b'\n') =>
            {
                reply::blob_error(buf, line, version)
            }
            Value::Error(line) => reply::error_bytes(buf, line),
            Value::Integer(value) => reply::integer(buf, *value),
            Value::Bulk(payload) => reply::bulk(buf, payload),
            Value::Null => reply::null(buf, version),
            Value::Array(items) => encode_all(buf, b'*', items, version),
            Value::Set(items) => encode_all(
                buf,
                if version == RespVersion::Resp3 {
                    b'~'
                } else {
                    b'*'
                },
                items,
                version,
            ),
            Value::Push(items) => encode_all(
                buf,
                if version == RespVersion::Resp3 {
                    b'>'
                } else {
                    b'*'
                },
                items,
                version,
            ),
            Value::Map(pairs) => {
                reply::map_header(buf, pairs.len(), version);
                encode_pairs(buf, pairs, version);
            }
            Value::Boolean(value) => reply::boolean(buf, *value, version),
            Value::Double(value) => reply::double(buf, *value, version),
            Value::BigNumber(digits) => reply::big_number(buf, digits, version),
            Value::Verbatim { format, text } => reply::verbatim(buf, *format, text, version),
            Value::Attributed { attributes, value } => {
                if version == RespVersion::Resp3 {
                    reply::attribute_header(buf, attributes.len());
                    encode_pairs(buf, attributes, version);
                }
                value.encode(buf, version);
            }
        }
    }

    /// The kind of the value (through attributes).
    pub fn kind(&self) -> ValueKind {
        match self.without_attributes() {
            Value::Simple(_) => ValueKind::Simple,
            Value::Error(_) => ValueKind::Error,
            Value::Integer(_) => ValueKind::Integer,
            Value::Bulk(_) => ValueKind::Bulk,
            // `without_attributes` never returns `Attributed`.
            Value::Null | Value::Attributed { .. } => ValueKind::Null,
            Value::Array(_) => ValueKind::Array,
            Value::Map(_) => ValueKind::Map,
            Value::Set(_) => ValueKind::Set,
            Value::Push(_) => ValueKind::Push,
            Value::Boolean(_) => ValueKind::Boolean,
            Value::Double(_) => ValueKind::Double,
            Value::BigNumber(_) => ValueKind::BigNumber,
            Value::Verbatim { .. } => ValueKind::Verbatim,
        }
    }

    /// The value without its attributes.
    pub fn without_attributes(&self) -> &Value {
        let mut value = self;
        while let Value::Attributed { value: inner, .. } = value {
            value = inner;
        }
        value
    }

    /// The bytes of a simple string, bulk string, error, big number or verbatim text.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self.without_attributes() {
            Value::Simple(bytes)
            | Value::Bulk(bytes)
            | Value::Error(bytes)
            | Value::BigNumber(bytes) => Some(bytes),
            Value::Verbatim { text, .. } => Some(text),
            _ => None,
        }
    }

    /// [`Value::as_bytes`] if it is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()?).ok()
    }

    /// The elements of an array, set or push.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self.without_attributes() {
            Value::Array(items) | Value::Set(items) | Value::Push(items) => Some(items),
            _ => None,
        }
    }

    /// The pairs of a RESP3 map (a RESP2 map is a flat array: see [`Value::get`]).
    pub fn as_map(&self) -> Option<&[(Value, Value)]> {
        match self.without_attributes() {
            Value::Map(pairs) => Some(pairs),
            _ => None,
        }
    }

    /// An integer, or a simple/bulk string holding a decimal integer (Sentinel replies send
    /// ports as bulk strings).
    pub fn as_integer(&self) -> Option<i64> {
        match self.without_attributes() {
            Value::Integer(value) => Some(*value),
            Value::Simple(text) | Value::Bulk(text) => parse_redis_integer(text),
            _ => None,
        }
    }

    /// The value for `key` in a RESP3 map or in a RESP2 flat `[key, value, …]` array (HELLO,
    /// `SENTINEL masters` entries). Keys compare as bytes.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let key = key.as_bytes();
        match self.without_attributes() {
            Value::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| k.as_bytes() == Some(key))
                .map(|(_, v)| v),
            Value::Array(items) => items.chunks_exact(2).find_map(|pair| match pair {
                [k, v] if k.as_bytes() == Some(key) => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    /// True for an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self.without_attributes(), Value::Error(_))
    }

    /// True for a null of any protocol version.
    pub fn is_null(&self) -> bool {
        matches!(self.without_attributes(), Value::Null)
    }
}

fn encode_all(buf: &mut BytesMut, type_byte: u8, items: &[Value], version: RespVersion) {
    put_header(
        buf,
        type_byte,
        i64::try_from(items.len()).unwrap_or(i64::MAX),
    );
    for item in items {
        item.encode(buf, version);
    }
}

fn encode_pairs(buf: &mut BytesMut, pairs: &[(Value, Value)], version: RespVersion) {
    for (key, value) in pairs {
        key.encode(buf, version);
        value.encode(buf, version);
    }
}

/// Every element takes at least 3 bytes (`_\r\n`), which caps what an announced count may reserve.
const MIN_ELEMENT_LEN: usize = 3;

/// Recursive-descent parser over a buffer that may end early (`Ok(None)`).
struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    limits: &'a RespLimits,
}

/// Parsed, incomplete (`None`) or invalid.
type Step<T> = Result<Option<T>, ProtocolError>;

/// Unwraps a `Step`, returning `Ok(None)` from the caller while the input is incomplete.
macro_rules! ready {
    ($step:expr) => {
        match $step? {
            Some(value) => value,
            None => return Ok(None),
        }
    };
}

impl<'a> Decoder<'a> {
    fn value(&mut self, depth: usize) -> Step<Value> {
        let (type_byte, header) = ready!(self.line());
        let value = match type_byte {
            b'+' => Value::Simple(Bytes::copy_from_slice(header)),
            b'-' => Value::Error(Bytes::copy_from_slice(header)),
            b':' => Value::Integer(
                parse_resp_integer(header).ok_or(ProtocolError::invalid("RESP integer"))?,
            ),
            b'_' if header.is_empty() => Value::Null,
            b'_' => return Err(ProtocolError::invalid("RESP null")),
            b'#' => match header {
                b"t" => Value::Boolean(true),
                b"f" => Value::Boolean(false),
                _ => return Err(ProtocolError::invalid("RESP boolean")),
            },
            b',' => Value::Double(
                parse_resp_double(header).ok_or(ProtocolError::invalid("RESP double"))?,
            ),
            b'(' if is_big_number(header) => Value::BigNumber(Bytes::copy_from_slice(header)),
            b'(' => return Err(ProtocolError::invalid("RESP big number")),
            b'$' if header == b"?" => Value::Bulk(ready!(self.streamed_string())),
            b'$' => match self.length(header, true)? {
                None => Value::Null,
                Some(len) => Value::Bulk(Bytes::copy_from_slice(ready!(self.payload(len)))),
            },
            b'!' => {
                let len = self.length(header, false)?.unwrap_or_default();
                Value::Error(Bytes::copy_from_slice(ready!(self.payload(len))))
            }
            b'=' => {
                let len = self.length(header, false)?.unwrap_or_default();
                match ready!(self.payload(len)) {
                    [f0, f1, f2, b':', text @ ..] => Value::Verbatim {
                        format: [*f0, *f1, *f2],
                        text: Bytes::copy_from_slice(text),
                    },
                    _ => return Err(ProtocolError::invalid("RESP verbatim string")),
                }
            }
            b'*' | b'~' | b'>' | b'%' | b'|' => ready!(self.aggregate(type_byte, header, depth)),
            _ => return Err(ProtocolError::invalid("RESP type byte")),
        };
        Ok(Some(value))
    }

    /// The elements after an aggregate or attribute header.
    fn aggregate(&mut self, type_byte: u8, header: &[u8], depth: usize) -> Step<Value> {
        let is_streamed = header == b"?" && type_byte != b'|';
        let items = if is_streamed {
            ready!(self.streamed_items(depth))
        } else {
            let Some(count) = self.count(header, type_byte == b'*')? else {
                return Ok(Some(Value::Null));
            };
            let is_paired = matches!(type_byte, b'%' | b'|');
            ready!(self.items(
                if is_paired {
                    count.saturating_mul(2)
                } else {
                    count
                },
                depth
            ))
        };
        Ok(Some(match type_byte {
            b'*' => Value::Array(items),
            b'~' => Value::Set(items),
            b'>' => Value::Push(items),
            b'%' => Value::Map(ready!(into_pairs(items))),
            _ => {
                let attributes = ready!(into_pairs(items));
                // The annotated value nests one level deeper, so chained attributes stay bounded.
                let inner = self.enter(depth)?;
                let value = Box::new(ready!(self.value(inner)));
                Value::Attributed { attributes, value }
            }
        }))
    }

    /// The next line as (type byte, header without CRLF).
    fn line(&mut self) -> Step<(u8, &'a [u8])> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let window_len = rest.len().min(self.limits.max_inline_len.saturating_add(3));
        let Some(lf) = memchr(b'\n', rest.get(..window_len).unwrap_or_default()) else {
            if window_len < rest.len() {
                return Err(ProtocolError::TooLarge {
                    what: "RESP line",
                    len: rest.len() as u64,
                    max: self.limits.max_inline_len as u64,
                });
            }
            return Ok(None);
        };
        match rest.get(..lf) {
            Some([type_byte, header @ .., b'\r']) => {
                self.pos += lf + 1;
                Ok(Some((*type_byte, header)))
            }
            _ => Err(ProtocolError::invalid("RESP line terminator")),
        }
    }

    fn length(&self, header: &[u8], is_nullable: bool) -> Result<Option<usize>, ProtocolError> {
        match parse_resp_integer(header) {
            Some(-1) if is_nullable => Ok(None),
            Some(len) if len >= 0 => {
                if len as u64 > self.limits.max_bulk_len {
                    return Err(ProtocolError::TooLarge {
                        what: "RESP bulk string",
                        len: len as u64,
                        max: self.limits.max_bulk_len,
                    });
                }
                Ok(Some(
                    usize::try_from(len).map_err(|_| ProtocolError::invalid("RESP length"))?,
                ))
            }
            _ => Err(ProtocolError::invalid("RESP length")),
        }
    }

    fn count(&self, header: &[u8], is_nullable: bool) -> Result<Option<usize>, ProtocolError> {
        match parse_resp_integer(header) {
            Some(-1) if is_nullable => Ok(None),
            Some(count) if count >= 0 => {
                if count as u64 > self.limits.max_multibulk_len {
                    return Err(ProtocolError::TooLarge {
                        what: "RESP aggregate",
                        len: count as u64,
                        max: self.limits.max_multibulk_len,
                    });
                }
                Ok(Some(usize::try_from(count).map_err(|_| {
                    ProtocolError::invalid("RESP aggregate count")
                })?))
            }
            _ => Err(ProtocolError::invalid("RESP aggregate count")),
        }
    }

    /// `len` payload bytes followed by CRLF.
    fn payload(&mut self, len: usize) -> Step<&'a [u8]> {
        let end = self.pos.saturating_add(len);
        let Some(terminator) = self.buf.get(end..end.saturating_add(2)) else {
            return Ok(None);
        };
        if terminator != b"\r\n" {
            return Err(ProtocolError::invalid("CRLF after RESP bulk payload"));
        }
        let payload = self.buf.get(self.pos..end).unwrap_or_default();
        self.pos = end + 2;
        Ok(Some(payload))
    }

    /// The `;len` chunks of a `$?` string up to `;0`, joined.
    fn streamed_string(&mut self) -> Step<Bytes> {
        let mut joined = BytesMut::new();
        loop {
            let (type_byte, header) = ready!(self.line());
            if type_byte != b';' {
                return Err(ProtocolError::invalid("RESP streamed string chunk"));
            }
            let len = self.length(header, false)?.unwrap_or_default();
            if len == 0 {
                return Ok(Some(joined.freeze()));
            }
            joined.put_slice(ready!(self.payload(len)));
        }
    }

    fn enter(&self, depth: usize) -> Result<usize, ProtocolError> {
        if depth >= self.limits.max_depth {
            return Err(ProtocolError::TooLarge {
                what: "RESP nesting depth",
                len: depth as u64 + 1,
                max: self.limits.max_depth as u64,
            });
        }
        Ok(depth + 1)
    }

    fn items(&mut self, count: usize, depth: usize) -> Step<Vec<Value>> {
        let inner = self.enter(depth)?;
        let available = self.buf.len().saturating_sub(self.pos) / MIN_ELEMENT_LEN;
        let mut items = Vec::with_capacity(count.min(available));
        for _ in 0..count {
            items.push(ready!(self.value(inner)));
        }
        Ok(Some(items))
    }

    /// Elements of a `*? ~? >? %?` aggregate up to its `.` line.
    fn streamed_items(&mut self, depth: usize) -> Step<Vec<Value>> {
        let inner = self.enter(depth)?;
        let mut items = Vec::new();
        loop {
            match self.buf.get(self.pos) {
                None => return Ok(None),
                Some(b'.') => {
                    let (_, header) = ready!(self.line());
                    if !header.is_empty() {
                        return Err(ProtocolError::invalid("RESP streamed aggregate end"));
                    }
                    return Ok(Some(items));
                }
                Some(_) => items.push(ready!(self.value(inner))),
            }
        }
    }
}

/// Pairs up a flat `[k, v, k, v …]` list; an odd count is invalid.
fn into_pairs(items: Vec<Value>) -> Step<Vec<(Value, Value)>> {
    if !items.len().is_multiple_of(2) {
        return Err(ProtocolError::invalid("RESP map element count"));
    }
    let mut pairs = Vec::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(key), Some(value)) = (items.next(), items.next()) {
        pairs.push((key, value));
    }
    Ok(Some(pairs))
}
