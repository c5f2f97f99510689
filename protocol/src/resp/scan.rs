//! Resumable RESP2/RESP3 scanner: finds where one top-level value ends, across many reads, without buffering it.
//!
//! The scanner never looks back: a header line is consumed once it is complete, a bulk payload is
//! consumed as it arrives (only its length left is remembered), and open aggregates are a stack of
//! remaining-element counts. So a 100 MB bulk string or a 200k-element array streams through in
//! linear time with O(depth) state, and the caller may forward and drop every consumed byte.

use memchr::memchr;

use super::value::ValueKind;
use crate::ProtocolError;

/// Redis' own input limits (redis:src/server.h, networking.c), applied to every RESP stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RespLimits {
    /// Longest bulk string payload (`proto-max-bulk-len`, default 512 MiB).
    pub max_bulk_len: u64,
    /// Most elements announced by one aggregate header (Redis accepts up to `INT_MAX`).
    pub max_multibulk_len: u64,
    /// Longest line without its CRLF: inline commands, `*`/`$` headers, simple strings and
    /// errors (`PROTO_INLINE_MAX_SIZE`, 64 KiB).
    pub max_inline_len: usize,
    /// Deepest nesting of aggregates and attributes inside one value.
    pub max_depth: usize,
}

impl Default for RespLimits {
    fn default() -> Self {
        Self {
            max_bulk_len: 512 * 1024 * 1024,
            max_multibulk_len: i32::MAX as u64,
            max_inline_len: 64 * 1024,
            max_depth: 128,
        }
    }
}

/// What [`RespScanner::scan`] found in the bytes it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// The current top-level value ends after the first `n` bytes; the scanner is ready for the next one.
    Complete(usize),
    /// The first `n` bytes (possibly 0) belong to the current value and may be forwarded and dropped;
    /// the value goes on. Pass the bytes after them next time.
    Partial(usize),
}

/// How an open aggregate ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenKind {
    /// `* % ~ >` with a count: ends after `remaining` more elements, then counts as one element.
    Counted,
    /// `|` attribute: ends after `remaining` more elements and does not count as an element itself.
    Attribute,
    /// `*? ~? >?` streamed aggregate: ends at `.`; `remaining` counts elements seen.
    Streamed,
    /// `%?` streamed map: like `Streamed`, but must hold an even number of elements.
    StreamedMap,
}

/// One open aggregate on the scanner's stack.
#[derive(Debug, Clone, Copy)]
struct Open {
    kind: OpenKind,
    remaining: u64,
}

/// What the next byte of the stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A type byte and its header line.
    Line,
    /// `remaining` bytes of payload, the last two being CRLF; `is_chunk` for `;` chunks of `$?`.
    Payload { remaining: u64, is_chunk: bool },
    /// The next `;len` chunk header of a streamed string.
    Chunk,
}

/// One complete line: type byte, header without CRLF, and its length with CRLF.
struct HeaderLine<'a> {
    type_byte: u8,
    header: &'a [u8],
    len: usize,
}

/// Resumable scanner over one top-level RESP2/RESP3 value at a time (replies, pushes, requests).
#[derive(Debug, Clone)]
pub struct RespScanner {
    limits: RespLimits,
    open: Vec<Open>,
    expect: Expect,
    kind: Option<ValueKind>,
}

impl Default for RespScanner {
    fn default() -> Self {
        Self::new(RespLimits::default())
    }
}

impl RespScanner {
    /// A scanner at the start of a value, enforcing `limits`.
    pub fn new(limits: RespLimits) -> Self {
        Self {
            limits,
            open: Vec::new(),
            expect: Expect::Line,
            kind: None,
        }
    }

    /// The kind of the top-level value being scanned, or of the one just completed (so after
    /// [`Scan::Complete`] the proxy can tell a push or an error from other replies). `None`
    /// until the value's own first line (past any attribute) has been consumed.
    pub fn kind(&self) -> Option<ValueKind> {
        self.kind
    }

    /// True between values: nothing of a value has been consumed yet.
    pub fn is_idle(&self) -> bool {
        self.open.is_empty() && self.expect == Expect::Line
    }

    /// Forgets any value in progress (after an error, or when the stream is dropped).
    pub fn reset(&mut self) {
        self.open.clear();
        self.expect = Expect::Line;
    }

    /// Scans `buf`, which starts at the first byte not yet reported by an earlier call.
    ///
    /// Returns as soon as the current top-level value ends, so `buf` may hold the following
    /// values too. After an error the stream cannot be resynchronised; the scanner is reset.
    pub fn scan(&mut self, buf: &[u8]) -> Result<Scan, ProtocolError> {
        let outcome = self.scan_inner(buf);
        if outcome.is_err() {
            self.reset();
        }
        outcome
    }

    fn scan_inner(&mut self, buf: &[u8]) -> Result<Scan, ProtocolError> {
        let mut pos = 0usize;
        loop {
            let rest = buf.get(pos..).unwrap_or_default();
            match self.expect {
                Expect::Payload {
                    remaining,
                    is_chunk,
                } => {
                    if rest.is_empty() {
                        return Ok(Scan::Partial(pos));
                    }
                    let take = usize::try_from(remaining).map_or(rest.len(), |r| r.min(rest.len()));
                    check_payload_terminator(rest.get(..take).unwrap_or_default(), remaining)?;
                    pos += take;
                    let remaining = remaining - take as u64;
                    if remaining > 0 {
                        self.expect = Expect::Payload {
                            remaining,
                            is_chunk,
                        };
                        return Ok(Scan::Partial(pos));
                    }
                    if is_chunk {
                        self.expect = Expect::Chunk;
                    } else {
                        self.expect = Expect::Line;
                        if self.finish_value() {
                            return Ok(Scan::Complete(pos));
                        }
                    }
                }
                Expect::Line | Expect::Chunk => {
                    if self.expect == Expect::Line
                        && let Some((type_byte, number, line_len)) =
                            fast_number_line(rest, self.limits.max_inline_len)
                    {
                        pos += line_len;
                        self.note_top_level(type_byte);
                        if self.on_number_line(type_byte, number)? {
                            self.reset();
                            return Ok(Scan::Complete(pos));
                        }
                        continue;
                    }
                    let Some(line) = self.next_line(rest)? else {
                        return Ok(Scan::Partial(pos));
                    };
                    pos += line.len;
                    let is_done = if self.expect == Expect::Chunk {
                        self.on_chunk_header(line.type_byte, line.header)?
                    } else {
                        self.note_top_level(line.type_byte);
                        self.on_line(line.type_byte, line.header)?
                    };
                    if is_done {
                        self.reset();
                        return Ok(Scan::Complete(pos));
                    }
                }
            }
        }
    }

    /// Records the kind of a top-level value from its first line (attributes do not count).
    fn note_top_level(&mut self, type_byte: u8) {
        if self.open.is_empty() && type_byte != b'|' {
            self.kind = ValueKind::from_type_byte(type_byte);
        }
    }

    /// The complete line at the start of `rest`, if it is all there.
    fn next_line<'a>(&self, rest: &'a [u8]) -> Result<Option<HeaderLine<'a>>, ProtocolError> {
        // A line may hold max_inline_len bytes plus its type byte, CR and LF.
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
            Some([type_byte, header @ .., b'\r']) => Ok(Some(HeaderLine {
                type_byte: *type_byte,
                header,
                len: lf + 1,
            })),
            _ => Err(ProtocolError::invalid("RESP line terminator")),
        }
    }

    /// Handles one complete header line; true when it completes the top-level value.
    fn on_line(&mut self, type_byte: u8, header: &[u8]) -> Result<bool, ProtocolError> {
        match type_byte {
            b'+' | b'-' => Ok(self.finish_value()),
            b'_' if header.is_empty() => Ok(self.finish_value()),
            b'_' => Err(ProtocolError::invalid("RESP null")),
            b'#' if matches!(header, b"t" | b"f") => Ok(self.finish_value()),
            b'#' => Err(ProtocolError::invalid("RESP boolean")),
            b',' => {
                parse_resp_double(header).ok_or(ProtocolError::invalid("RESP double"))?;
                Ok(self.finish_value())
            }
            b'(' if is_big_number(header) => Ok(self.finish_value()),
            b'(' => Err(ProtocolError::invalid("RESP big number")),
            b'$' if header == b"?" => {
                self.expect = Expect::Chunk;
                Ok(false)
            }
            b'*' | b'~' | b'>' if header == b"?" => self.open(OpenKind::Streamed, 0),
            b'%' if header == b"?" => self.open(OpenKind::StreamedMap, 0),
            b'.' => self.end_streamed_aggregate(header),
            b':' | b'$' | b'!' | b'=' | b'*' | b'~' | b'>' | b'%' | b'|' => {
                match parse_resp_integer(header) {
                    Some(number) => self.on_number_line(type_byte, number),
                    None => Err(ProtocolError::invalid(match type_byte {
                        b':' => "RESP integer",
                        b'$' | b'!' | b'=' => "RESP length",
                        _ => "RESP aggregate count",
                    })),
                }
            }
            _ => Err(ProtocolError::invalid("RESP type byte")),
        }
    }

    /// Handles a line whose header is a number: an integer, a length or a count.
    fn on_number_line(&mut self, type_byte: u8, number: i64) -> Result<bool, ProtocolError> {
        match type_byte {
            b':' => Ok(self.finish_value()),
            b'$' | b'*' if number == -1 => Ok(self.finish_value()),
            b'$' | b'!' | b'=' => {
                let len = self.check_length(number)?;
                self.start_payload(len, false)
            }
            b'*' | b'~' | b'>' => {
                let count = self.check_count(number)?;
                self.open(OpenKind::Counted, count)
            }
            b'%' => {
                let count = self.check_count(number)?;
                self.open(OpenKind::Counted, count.saturating_mul(2))
            }
            b'|' => {
                let count = self.check_count(number)?;
                self.open(OpenKind::Attribute, count.saturating_mul(2))
            }
            _ => Err(ProtocolError::invalid("RESP type byte")),
        }
    }

    /// Handles a `;len` header inside a `$?` streamed string; `;0` ends the string.
    fn on_chunk_header(&mut self, type_byte: u8, header: &[u8]) -> Result<bool, ProtocolError> {
        if type_byte != b';' {
            return Err(ProtocolError::invalid("RESP streamed string chunk"));
        }
        let len = parse_resp_integer(header)
            .ok_or(ProtocolError::invalid("RESP streamed string chunk"))?;
        match self.check_length(len)? {
            0 => {
                self.expect = Expect::Line;
                Ok(self.finish_value())
            }
            len => self.start_payload(len, true),
        }
    }

    fn end_streamed_aggregate(&mut self, header: &[u8]) -> Result<bool, ProtocolError> {
        let is_valid = header.is_empty()
            && self.open.last().is_some_and(|top| match top.kind {
                OpenKind::Streamed => true,
                OpenKind::StreamedMap => top.remaining.is_multiple_of(2),
                OpenKind::Counted | OpenKind::Attribute => false,
            });
        if !is_valid {
            return Err(ProtocolError::invalid("RESP streamed aggregate end"));
        }
        self.open.pop();
        Ok(self.finish_value())
    }

    fn check_length(&self, len: i64) -> Result<u64, ProtocolError> {
        let max = self.limits.max_bulk_len;
        check_limit(len, "RESP length", "RESP bulk string", max)
    }

    fn check_count(&self, count: i64) -> Result<u64, ProtocolError> {
        let max = self.limits.max_multibulk_len;
        check_limit(count, "RESP aggregate count", "RESP aggregate", max)
    }

    fn start_payload(&mut self, len: u64, is_chunk: bool) -> Result<bool, ProtocolError> {
        let remaining = len + 2;
        self.expect = Expect::Payload {
            remaining,
            is_chunk,
        };
        Ok(false)
    }

    /// Opens an aggregate of `count` elements (an element counter for streamed ones).
    fn open(&mut self, kind: OpenKind, count: u64) -> Result<bool, ProtocolError> {
        let is_streamed = matches!(kind, OpenKind::Streamed | OpenKind::StreamedMap);
        if count == 0 && !is_streamed {
            // An empty attribute still annotates the value that follows.
            return Ok(kind == OpenKind::Counted && self.finish_value());
        }
        if self.open.len() >= self.limits.max_depth {
            let (len, max) = (self.open.len() as u64 + 1, self.limits.max_depth as u64);
            return Err(ProtocolError::TooLarge {
                what: "RESP nesting depth",
                len,
                max,
            });
        }
        self.open.push(Open {
            kind,
            remaining: count,
        });
        Ok(false)
    }

    /// Records that one value ended; true when that completes the top-level value.
    fn finish_value(&mut self) -> bool {
        loop {
            let Some(top) = self.open.last_mut() else {
                return true;
            };
            match top.kind {
                OpenKind::Counted => {
                    top.remaining -= 1;
                    if top.remaining > 0 {
                        return false;
                    }
                    // The aggregate itself is now one finished element of its parent.
                    self.open.pop();
                }
                OpenKind::Attribute => {
                    top.remaining -= 1;
                    if top.remaining == 0 {
                        // The annotated value still has to follow.
                        self.open.pop();
                    }
                    return false;
                }
                OpenKind::Streamed | OpenKind::StreamedMap => {
                    top.remaining = top.remaining.wrapping_add(1);
                    return false;
                }
            }
        }
    }
}

/// Checks the CRLF that ends a payload, where `chunk` is the next part of a payload that
/// still has `remaining` bytes (CRLF included), possibly split anywhere.
fn check_payload_terminator(chunk: &[u8], remaining: u64) -> Result<(), ProtocolError> {
    let data_left = remaining.saturating_sub(2);
    for (offset, byte) in chunk
        .iter()
        .enumerate()
        .skip(usize::try_from(data_left).unwrap_or(usize::MAX))
    {
        // Index into CRLF of this byte: 0 for CR, 1 for LF.
        let crlf_index = offset as u64 + 2 - remaining;
        let expected = if crlf_index == 0 { b'\r' } else { b'\n' };
        if *byte != expected {
            return Err(ProtocolError::invalid("CRLF after RESP bulk payload"));
        }
    }
    Ok(())
}

/// A non-negative length or count within `max`.
fn check_limit(
    number: i64,
    invalid: &'static str,
    what: &'static str,
    max: u64,
) -> Result<u64, ProtocolError> {
    let len = u64::try_from(number).map_err(|_| ProtocolError::invalid(invalid))?;
    if len > max {
        return Err(ProtocolError::TooLarge { what, len, max });
    }
    Ok(len)
}

/// Fast path for the most common lines (`*3`, `$5`, `:1`): a numeric header of at most 18
/// digits and at most `max_header_len` bytes, with its CRLF present. Returns the type byte, the
/// number and the line length; `None` leaves the line to the general path, which gives the
/// same result for it.
fn fast_number_line(rest: &[u8], max_header_len: usize) -> Option<(u8, i64, usize)> {
    let (&type_byte, header) = rest.split_first()?;
    if !matches!(
        type_byte,
        b':' | b'$' | b'*' | b'%' | b'~' | b'>' | b'|' | b'!' | b'='
    ) {
        return None;
    }
    let (is_negative, digits_start) = if header.first() == Some(&b'-') {
        (true, 1)
    } else {
        (false, 0)
    };
    let mut value: i64 = 0;
    let mut index = digits_start;
    while let Some(&byte) = header.get(index) {
        match byte {
            b'0'..=b'9' if index - digits_start < 18 => {
                value = value * 10 + i64::from(byte - b'0');
                index += 1;
            }
            b'\r'
                if index > digits_start
                    && index <= max_header_len
                    && header.get(index + 1) == Some(&b'\n') =>
            {
                return Some((
                    type_byte,
                    if is_negative { -value } else { value },
                    index + 3,
                ));
            }
            _ => return None,
        }
    }
    None
}

/// Parses a RESP integer: optional sign, then 1 to 19 digits, within `i64`.
pub(crate) fn parse_resp_integer(text: &[u8]) -> Option<i64> {
    let (is_negative, digits) = match text {
        [b'-', digits @ ..] => (true, digits),
        [b'+', digits @ ..] => (false, digits),
        digits => (false, digits),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut value: i64 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        let digit = i64::from(digit - b'0');
        value = value.checked_mul(10)?;
        value = if is_negative {
            value.checked_sub(digit)?
        } else {
            value.checked_add(digit)?
        };
    }
    Some(value)
}

/// Parses a RESP3 double (`1.5`, `-2e10`, `inf`, `-inf`, `nan`).
pub(crate) fn parse_resp_double(text: &[u8]) -> Option<f64> {
    std::str::from_utf8(text).ok()?.parse::<f64>().ok()
}

/// True for a RESP3 big number: optional sign and at least one digit.
pub(crate) fn is_big_number(text: &[u8]) -> bool {
    let digits = text
        .strip_prefix(b"-")
        .or_else(|| text.strip_prefix(b"+"))
        .unwrap_or(text);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

/// Whole-frame splitter over a growing buffer that starts at a frame boundary.
///
/// It remembers how far it already scanned, so each call only looks at the new bytes.
#[derive(Debug, Clone, Default)]
pub struct RespFramer {
    scanner: RespScanner,
    scanned: usize,
}

impl RespFramer {
    /// A framer enforcing `limits`.
    pub fn new(limits: RespLimits) -> Self {
        Self {
            scanner: RespScanner::new(limits),
            scanned: 0,
        }
    }

    /// Length of the complete frame at the start of `buf`, or `None` until all of it is there.
    ///
    /// Between calls `buf` may only grow at its end; after `Some(len)` the next call's `buf`
    /// must start at the next frame (e.g. after `split_to(len)`).
    pub fn next_frame_len(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        let Some(unscanned) = buf.get(self.scanned..) else {
            self.reset();
            return Err(ProtocolError::invalid(
                "RESP framer buffer (it shrank between calls)",
            ));
        };
        match self.scanner.scan(unscanned) {
            Ok(Scan::Complete(n)) => {
                let frame_len = self.scanned + n;
                self.scanned = 0;
                Ok(Some(frame_len))
            }
            Ok(Scan::Partial(n)) => {
                self.scanned += n;
                Ok(None)
            }
            Err(error) => {
                self.reset();
                Err(error)
            }
        }
    }

    /// Splits the next complete frame off the front of `buf`, or returns `None` until it is all there.
    pub fn next_frame(
        &mut self,
        buf: &mut bytes::BytesMut,
    ) -> Result<Option<bytes::Bytes>, ProtocolError> {
        Ok(self
            .next_frame_len(buf)?
            .map(|len| buf.split_to(len).freeze()))
    }

    /// The kind of the frame in progress or just returned (see [`RespScanner::kind`]).
    pub fn kind(&self) -> Option<ValueKind> {
        self.scanner.kind()
    }

    /// Forgets a frame in progress.
    pub fn reset(&mut self) {
        self.scanner.reset();
        self.scanned = 0;
    }
}
