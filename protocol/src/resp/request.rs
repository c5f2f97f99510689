//! Client requests: `RequestDecoder` splits multibulk and inline commands off a read buffer into
//! `Request`s that keep their wire bytes for forwarding, with Redis' own protocol-error texts.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use memchr::memchr2;

use super::inline::{InlineLine, decode_inline};
use super::reply::put_header;
use super::scan::RespLimits;
use crate::ProtocolError;

/// Where a command's keys are, as `COMMAND INFO` reports it (legacy range spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeySpec {
    /// Index of the first key (the command name is 0); 0 means the command has no keys.
    pub first: i32,
    /// Index of the last key; negative counts from the end (-1 = last argument).
    pub last: i32,
    /// Distance between keys (2 for `MSET k v k v`).
    pub step: i32,
}

impl KeySpec {
    /// A command without key arguments.
    pub const NONE: KeySpec = KeySpec {
        first: 0,
        last: 0,
        step: 0,
    };
}

/// Byte range of one argument inside [`Request::as_bytes`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ArgSpan {
    start: u32,
    len: u32,
}

impl ArgSpan {
    /// Offsets past `u32::MAX` cannot occur for decoded requests (the decoder rejects them);
    /// for a built one they yield an empty argument rather than a panic.
    fn new(start: usize, len: usize) -> Self {
        Self {
            start: u32::try_from(start).unwrap_or(u32::MAX),
            len: u32::try_from(len).unwrap_or(0),
        }
    }
}

/// How many argument spans a request holds before it allocates (covers `SET k v EX 10`).
const INLINE_SPANS: usize = 5;

/// Argument spans, inline for short commands so decoding allocates only the `Bytes` split.
#[derive(Debug, Clone)]
enum ArgSpans {
    Inline {
        len: u8,
        spans: [ArgSpan; INLINE_SPANS],
    },
    Heap(Vec<ArgSpan>),
}

impl Default for ArgSpans {
    fn default() -> Self {
        Self::Inline {
            len: 0,
            spans: [ArgSpan::default(); INLINE_SPANS],
        }
    }
}

impl ArgSpans {
    fn push(&mut self, span: ArgSpan) {
        match self {
            Self::Inline { len, spans } => {
                if let Some(slot) = spans.get_mut(usize::from(*len)) {
                    *slot = span;
                    *len += 1;
                } else {
                    // Grows with the arguments actually received, never with the announced count.
                    let mut heap = Vec::with_capacity(INLINE_SPANS * 4);
                    heap.extend_from_slice(spans);
                    heap.push(span);
                    *self = Self::Heap(heap);
                }
            }
            Self::Heap(heap) => heap.push(span),
        }
    }

    fn as_slice(&self) -> &[ArgSpan] {
        match self {
            Self::Inline { len, spans } => spans.get(..usize::from(*len)).unwrap_or_default(),
            Self::Heap(heap) => heap,
        }
    }
}

/// One client command: its wire bytes (always RESP multibulk, also for inline commands) and
/// where each argument lies in them. Cheap to clone; forward [`Request::as_bytes`] unchanged.
#[derive(Debug, Clone)]
pub struct Request {
    bytes: Bytes,
    spans: ArgSpans,
}

impl PartialEq for Request {
    fn eq(&self, other: &Self) -> bool {
        // The spans are derived from the bytes.
        self.bytes == other.bytes
    }
}

impl Eq for Request {}

impl Request {
    /// Builds a request from its arguments (commands the proxy sends itself: PING, ROLE, SENTINEL …).
    pub fn from_args(args: &[&[u8]]) -> Request {
        let payload: usize = args.iter().map(|arg| arg.len() + 16).sum();
        let mut buf = BytesMut::with_capacity(payload + 16);
        put_header(
            &mut buf,
            b'*',
            i64::try_from(args.len()).unwrap_or(i64::MAX),
        );
        let mut spans = ArgSpans::default();
        for arg in args {
            put_header(&mut buf, b'$', i64::try_from(arg.len()).unwrap_or(i64::MAX));
            spans.push(ArgSpan::new(buf.len(), arg.len()));
            buf.put_slice(arg);
            buf.put_slice(b"\r\n");
        }
        Request {
            bytes: buf.freeze(),
            spans,
        }
    }

    /// The command name as sent (any case); empty only for a request without arguments.
    pub fn name(&self) -> &[u8] {
        self.arg(0).unwrap_or_default()
    }

    /// True when the command name equals `upper`, ignoring ASCII case (`is_command("GET")`).
    pub fn is_command(&self, upper: &str) -> bool {
        self.name().eq_ignore_ascii_case(upper.as_bytes())
    }

    /// Number of arguments, the command name included.
    pub fn argc(&self) -> usize {
        self.spans.as_slice().len()
    }

    /// Argument `index` (0 is the command name).
    pub fn arg(&self, index: usize) -> Option<&[u8]> {
        self.spans
            .as_slice()
            .get(index)
            .map(|span| self.span_bytes(*span))
    }

    /// Argument `index` as a zero-copy `Bytes`.
    pub fn arg_bytes(&self, index: usize) -> Option<Bytes> {
        let span = *self.spans.as_slice().get(index)?;
        let start = span.start as usize;
        let end = start.checked_add(span.len as usize)?;
        (end <= self.bytes.len()).then(|| self.bytes.slice(start..end))
    }

    /// All arguments, the command name first.
    pub fn args(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.spans
            .as_slice()
            .iter()
            .map(|span| self.span_bytes(*span))
    }

    /// The key arguments named by `spec`, skipping indexes beyond the actual arguments.
    pub fn keys(&self, spec: KeySpec) -> impl Iterator<Item = &[u8]> + '_ {
        let argc = self.argc() as i64;
        let first = i64::from(spec.first);
        let last = if spec.last < 0 {
            argc + i64::from(spec.last)
        } else {
            i64::from(spec.last)
        };
        let last = last.min(argc - 1);
        let (start, end, step) = if first <= 0 || spec.step <= 0 || last < first {
            (0, 0, 1)
        } else {
            (first as usize, last as usize + 1, spec.step as usize)
        };
        (start..end)
            .step_by(step)
            .filter_map(|index| self.arg(index))
    }

    /// The multibulk wire form, to forward upstream unchanged.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The multibulk wire form, by value.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    fn span_bytes(&self, span: ArgSpan) -> &[u8] {
        let start = span.start as usize;
        self.bytes
            .get(start..start + span.len as usize)
            .unwrap_or_default()
    }
}

/// Appends a command as a RESP multibulk array of bulk strings.
pub fn encode_command(buf: &mut BytesMut, args: &[&[u8]]) {
    let payload: usize = args.iter().map(|arg| arg.len() + 16).sum();
    buf.reserve(payload + 16);
    put_header(buf, b'*', i64::try_from(args.len()).unwrap_or(i64::MAX));
    for arg in args {
        put_header(buf, b'$', i64::try_from(arg.len()).unwrap_or(i64::MAX));
        buf.put_slice(arg);
        buf.put_slice(b"\r\n");
    }
}

/// Splits client requests off a read buffer, like Redis' `processInputBuffer`: a request
/// starting with `*` is multibulk, anything else an inline line.
///
/// Resumable: after `Ok(None)` it remembers what it already validated, so calling it again
/// after more bytes arrived costs only the new bytes. Between such calls the caller may only
/// append to the buffer.
#[derive(Debug, Clone, Default)]
pub struct RequestDecoder {
    limits: RespLimits,
    /// Arguments of the multibulk request in progress still to come; 0 between requests.
    args_left: u64,
    /// Bytes of the request in progress already validated.
    pos: usize,
    /// Payload length of the argument whose `$` header was read but whose payload is not in yet.
    bulk_len: Option<usize>,
    spans: ArgSpans,
    /// Bytes of an incomplete inline line already searched for its newline.
    inline_scanned: usize,
}

impl RequestDecoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: RespLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// True when no request is partly decoded (`buf` starts at a request boundary).
    pub fn is_idle(&self) -> bool {
        self.args_left == 0 && self.inline_scanned == 0
    }

    /// Forgets a request in progress.
    pub fn reset(&mut self) {
        *self = Self::new(self.limits);
    }

    /// Splits exactly one request off the front of `buf`, skipping empty inline lines and
    /// `*0`/`*-1` headers as Redis does. `Ok(None)` means more bytes are needed.
    ///
    /// Errors carry Redis' reason text (see [`super::protocol_error_reason`]); the connection
    /// must be closed after replying, and the decoder is reset.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        let outcome = self.decode_inner(buf);
        if outcome.is_err() {
            self.reset();
        }
        outcome
    }

    fn decode_inner(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        while self.args_left == 0 {
            let Some(&first) = buf.first() else {
                return Ok(None);
            };
            if first != b'*' {
                match decode_inline(buf, &self.limits, &mut self.inline_scanned)? {
                    InlineLine::Incomplete => return Ok(None),
                    InlineLine::Empty => continue,
                    InlineLine::Request(request) => return Ok(Some(request)),
                }
            }
            let Some((count, next)) = self.read_number(buf, 0, Line::MultibulkCount)? else {
                return Ok(None);
            };
            if count <= 0 {
                buf.advance(next);
                continue;
            }
            let count = count as u64;
            if count > self.limits.max_multibulk_len {
                return Err(ProtocolError::TooLarge {
                    what: INVALID_MULTIBULK_LENGTH,
                    len: count,
                    max: self.limits.max_multibulk_len,
                });
            }
            self.args_left = count;
            self.pos = next;
        }
        while self.args_left > 0 {
            let len = match self.bulk_len {
                Some(len) => len,
                None => {
                    let Some(len) = self.read_bulk_header(buf)? else {
                        return Ok(None);
                    };
                    len
                }
            };
            let end = self.pos.saturating_add(len).saturating_add(2);
            if end > u32::MAX as usize {
                return Err(ProtocolError::TooLarge {
                    what: "request",
                    len: end as u64,
                    max: u64::from(u32::MAX),
                });
            }
            if buf.len() < end {
                return Ok(None);
            }
            if buf.get(end - 2..end) != Some(b"\r\n".as_slice()) {
                // Redis skips these two bytes unchecked; a stray byte here means a broken client.
                return Err(ProtocolError::invalid("bulk string not terminated by CRLF"));
            }
            self.spans.push(ArgSpan::new(self.pos, len));
            self.pos = end;
            self.bulk_len = None;
            self.args_left -= 1;
        }
        let bytes = buf.split_to(self.pos).freeze();
        self.pos = 0;
        Ok(Some(Request {
            bytes,
            spans: std::mem::take(&mut self.spans),
        }))
    }

    /// Reads the `$len` header at `self.pos`; on success the payload starts at `self.pos`.
    fn read_bulk_header(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        let Some(&type_byte) = buf.get(self.pos) else {
            return Ok(None);
        };
        if type_byte != b'$' {
            return Err(expected_dollar(type_byte));
        }
        let Some((len, next)) = self.read_number(buf, self.pos, Line::BulkLength)? else {
            return Ok(None);
        };
        if len < 0 {
            return Err(ProtocolError::invalid(INVALID_BULK_LENGTH));
        }
        let len = len as u64;
        if len > self.limits.max_bulk_len {
            return Err(ProtocolError::TooLarge {
                what: INVALID_BULK_LENGTH,
                len,
                max: self.limits.max_bulk_len,
            });
        }
        let len = usize::try_from(len).map_err(|_| ProtocolError::invalid(INVALID_BULK_LENGTH))?;
        self.pos = next;
        self.bulk_len = Some(len);
        Ok(Some(len))
    }

    /// Reads the `*n` or `$n` line at `line_start` as Redis does: the number ends at the first
    /// CR, must be a strict decimal (`string2ll`), and a line with no CR in more than
    /// `max_inline_len` bytes is too big. Returns the number and the offset after the line.
    fn read_number(
        &self,
        buf: &[u8],
        line_start: usize,
        line: Line,
    ) -> Result<Option<(i64, usize)>, ProtocolError> {
        let digits_start = line_start + 1;
        let max = self.limits.max_inline_len;
        if let Some((number, cr)) = fast_redis_integer(buf.get(digits_start..).unwrap_or_default())
            && cr < max
        {
            return Ok(Some((number, digits_start + cr + 2)));
        }
        let window_end = buf
            .len()
            .min(line_start.saturating_add(max).saturating_add(1));
        let window = buf.get(digits_start..window_end).unwrap_or_default();
        // Redis finds the CR with strchr, which stops at a NUL byte: a NUL hides the line end.
        let found = memchr2(b'\r', 0, window).map(|index| digits_start + index);
        let Some(cr) = found.filter(|&index| buf.get(index) == Some(&b'\r')) else {
            let waiting = buf.len().saturating_sub(line_start);
            if waiting > max {
                return Err(ProtocolError::TooLarge {
                    what: line.too_big(),
                    len: waiting as u64,
                    max: max as u64,
                });
            }
            return Ok(None);
        };
        let Some(&after_cr) = buf.get(cr + 1) else {
            return Ok(None);
        };
        let digits = buf.get(digits_start..cr).unwrap_or_default();
        match parse_redis_integer(digits) {
            Some(number) if after_cr == b'\n' => Ok(Some((number, cr + 2))),
            _ => Err(ProtocolError::invalid(line.invalid())),
        }
    }
}

const INVALID_MULTIBULK_LENGTH: &str = "invalid multibulk length";
const INVALID_BULK_LENGTH: &str = "invalid bulk length";

/// Which header line a number is read from, for Redis' error texts.
#[derive(Debug, Clone, Copy)]
enum Line {
    MultibulkCount,
    BulkLength,
}

impl Line {
    fn too_big(self) -> &'static str {
        match self {
            Line::MultibulkCount => "too big mbulk count string",
            Line::BulkLength => "too big bulk count string",
        }
    }

    fn invalid(self) -> &'static str {
        match self {
            Line::MultibulkCount => INVALID_MULTIBULK_LENGTH,
            Line::BulkLength => INVALID_BULK_LENGTH,
        }
    }
}

/// Fast path of [`parse_redis_integer`] for the usual short header: at most 18 digits, then
/// CRLF. Returns the number and the offset of the CR; `None` leaves the line to the general
/// path, which gives the same result for it.
fn fast_redis_integer(text: &[u8]) -> Option<(i64, usize)> {
    let (is_negative, first_digit) = if text.first() == Some(&b'-') {
        (true, 1)
    } else {
        (false, 0)
    };
    match text.get(first_digit) {
        Some(b'1'..=b'9') => {}
        Some(b'0') if !is_negative && text.get(1..3) == Some(b"\r\n".as_slice()) => {
            return Some((0, 1));
        }
        _ => return None,
    }
    let mut value: i64 = 0;
    for (index, &byte) in text.iter().enumerate().skip(first_digit).take(19) {
        match byte {
            b'0'..=b'9' if index - first_digit < 18 => value = value * 10 + i64::from(byte - b'0'),
            b'\r' if text.get(index + 1) == Some(&b'\n') => {
                return Some((if is_negative { -value } else { value }, index));
            }
            _ => return None,
        }
    }
    None
}

/// Redis' `string2ll`: `0`, or `-`? then a non-zero digit and more digits, fitting `i64`, under 21 bytes.
pub(crate) fn parse_redis_integer(text: &[u8]) -> Option<i64> {
    if text.is_empty() || text.len() >= 21 {
        return None;
    }
    if text == b"0" {
        return Some(0);
    }
    let (is_negative, digits) = match text {
        [b'-', digits @ ..] => (true, digits),
        digits => (false, digits),
    };
    let (first, rest) = digits.split_first()?;
    if !(b'1'..=b'9').contains(first) || !rest.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut magnitude = u64::from(first - b'0');
    for &digit in rest {
        magnitude = magnitude
            .checked_mul(10)?
            .checked_add(u64::from(digit - b'0'))?;
    }
    if is_negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Length of "expected '$', got 'X'".
const EXPECTED_DOLLAR_LEN: usize = 21;

/// Redis' "expected '$', got '%c'" for every ASCII byte, built at compile time because
/// [`ProtocolError`] holds `&'static str`. CR and LF become spaces as in Redis' error replies.
static EXPECTED_DOLLAR: [[u8; EXPECTED_DOLLAR_LEN]; 128] = expected_dollar_table();

const fn expected_dollar_table() -> [[u8; EXPECTED_DOLLAR_LEN]; 128] {
    let prefix = b"expected '$', got '";
    let mut table = [[0u8; EXPECTED_DOLLAR_LEN]; 128];
    let mut byte = 0;
    while byte < 128 {
        let mut index = 0;
        while index < prefix.len() {
            table[byte][index] = prefix[index];
            index += 1;
        }
        table[byte][prefix.len()] = if byte == b'\r' as usize || byte == b'\n' as usize {
            b' '
        } else {
            byte as u8
        };
        table[byte][prefix.len() + 1] = b'\'';
        byte += 1;
    }
    table
}

/// The error for an argument that does not start with `$`. A non-ASCII byte is shown as `?`
/// (Redis emits the raw byte, which a `&str` cannot hold).
fn expected_dollar(got: u8) -> ProtocolError {
    let what = EXPECTED_DOLLAR
        .get(usize::from(got))
        .and_then(|text| std::str::from_utf8(text).ok())
        .unwrap_or("expected '$', got '?'");
    ProtocolError::invalid(what)
}
