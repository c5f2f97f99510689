//! Replies as Redis sends them: framing at every split, decoded values, streaming, errors.

use bytes::{Bytes, BytesMut};
use protocol::ProtocolError;
use protocol::resp::{RespFramer, RespLimits, RespScanner, Scan, Value};

use super::{bulk, feedings, simple};

/// Replies as Redis 7 sends them, each one complete frame.
const REPLY_FIXTURES: &[&[u8]] = &[
    b"+OK\r\n",
    b"-ERR unknown command 'foo', with args beginning with: \r\n",
    b":1000\r\n",
    b":-42\r\n",
    b"$5\r\nvalue\r\n",
    b"$0\r\n\r\n",
    b"$-1\r\n",
    b"*-1\r\n",
    b"*0\r\n",
    b"_\r\n",
    b"#t\r\n",
    b"#f\r\n",
    b",3.14\r\n",
    b",inf\r\n",
    b",-inf\r\n",
    b"(3492890328409238509324850943850943825024385\r\n",
    b"=15\r\ntxt:Some string\r\n",
    b"!21\r\nSYNTAX invalid syntax\r\n",
    b"~2\r\n+a\r\n+b\r\n",
    // SENTINEL get-master-addr-by-name
    b"*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n",
    // Nested arrays (ROLE on a master).
    b"*3\r\n$6\r\nmaster\r\n:3129659\r\n*2\r\n*3\r\n$9\r\n127.0.0.1\r\n$4\r\n9001\r\n$7\r\n3129242\r\n*3\r\n$9\r\n127.0.0.1\r\n$4\r\n9002\r\n$7\r\n3129543\r\n",
    b"*2\r\n*3\r\n:1\r\n:2\r\n:3\r\n*2\r\n+Foo\r\n-Bar\r\n",
    // HELLO 3 (captured from redis-server 7.0.15)
    b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:3\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n",
    // RESP3 pub/sub message
    b">3\r\n$7\r\nmessage\r\n$7\r\nchannel\r\n$5\r\nhello\r\n",
    // Attribute before a top-level value (RESP3 spec example).
    b"|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n*2\r\n:2039123\r\n:9543892\r\n",
    // Attribute on an array element.
    b"*2\r\n:1\r\n|1\r\n+ttl\r\n:3600\r\n:2\r\n",
    // Empty attribute, then the value.
    b"|0\r\n+OK\r\n",
    // Streamed string and aggregates.
    b"$?\r\n;4\r\nHell\r\n;5\r\no wor\r\n;1\r\nd\r\n;0\r\n",
    b"*?\r\n:1\r\n:2\r\n:3\r\n.\r\n",
    b"%?\r\n+a\r\n:1\r\n+b\r\n:2\r\n.\r\n",
    b"~?\r\n*?\r\n.\r\n$?\r\n;0\r\n.\r\n",
    // Captured from redis-server 7.0.15 in RESP3 (`DEBUG PROTOCOL <type>`, LRANGE, tracking, pub/sub).
    b"|1\r\n$14\r\nkey-popularity\r\n*2\r\n$7\r\nkey:123\r\n:90\r\n$39\r\nSome real reply following the attribute\r\n",
    b"(1234567999999999999999999999999999999\r\n",
    b"=29\r\ntxt:This is a verbatim\nstring\r\n",
    b",3.141\r\n",
    b"%3\r\n:0\r\n#f\r\n:1\r\n#t\r\n:2\r\n#f\r\n",
    b"~3\r\n:0\r\n:1\r\n:2\r\n",
    b"*3\r\n$1\r\na\r\n$4\r\nb\r\nc\r\n$0\r\n\r\n",
    b"%0\r\n",
    b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n",
    b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",
];

/// Feeds `chunks` to a scanner the way a forwarding proxy does (keeping only unconsumed bytes)
/// and returns the end offset of every complete frame, or the first error.
fn scan_boundaries<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<usize>, ProtocolError> {
    let mut scanner = RespScanner::default();
    let mut pending: Vec<u8> = Vec::new();
    let mut consumed = 0;
    let mut boundaries = Vec::new();
    for chunk in chunks {
        pending.extend_from_slice(chunk);
        loop {
            match scanner.scan(&pending)? {
                Scan::Complete(n) => {
                    assert!(n <= pending.len());
                    consumed += n;
                    pending.drain(..n);
                    boundaries.push(consumed);
                    if pending.is_empty() {
                        break;
                    }
                }
                Scan::Partial(n) => {
                    assert!(n <= pending.len());
                    consumed += n;
                    pending.drain(..n);
                    break;
                }
            }
        }
    }
    Ok(boundaries)
}

/// Frame lengths found by a `RespFramer` over a buffer that grows by `chunks`.
fn framer_lengths<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<usize>, ProtocolError> {
    Ok(framer_frames(chunks)?
        .into_iter()
        .map(|(len, _)| len)
        .collect())
}

/// Frames found by a `RespFramer` over a buffer that grows by `chunks`, with their values.
fn framer_frames<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<(usize, Value)>, ProtocolError> {
    let mut framer = RespFramer::default();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(frame) = framer.next_frame(&mut buf)? {
            let (value, len) = Value::decode(&frame)?.expect("a framed value is complete");
            assert_eq!(len, frame.len());
            frames.push((len, value));
        }
    }
    Ok(frames)
}

fn assert_stream_boundaries(stream: &[u8], expected: &[usize]) {
    let one_shot = framer_frames([stream]);
    let lengths: Vec<usize> = expected
        .iter()
        .scan(0, |prev, &end| Some(end - std::mem::replace(prev, end)))
        .collect();
    assert_eq!(framer_lengths([stream]), Ok(lengths));
    for (how, chunks) in feedings(stream) {
        let boundaries = scan_boundaries(chunks.iter().copied());
        assert_eq!(boundaries.as_deref(), Ok(expected), "{how}");
        assert_eq!(framer_frames(chunks), one_shot, "framer {how}");
    }
}

#[test]
fn each_reply_fixture_is_one_frame_at_every_split() {
    for fixture in REPLY_FIXTURES {
        assert_stream_boundaries(fixture, &[fixture.len()]);
        let decoded = Value::decode(fixture).unwrap_or_else(|e| panic!("{e} for {fixture:?}"));
        let (value, len) = decoded.unwrap_or_else(|| panic!("incomplete {fixture:?}"));
        assert_eq!(len, fixture.len(), "{fixture:?}");
        let mut scanner = RespScanner::default();
        assert_eq!(scanner.scan(fixture), Ok(Scan::Complete(len)));
        if !value.is_null() {
            assert_eq!(scanner.kind(), Some(value.kind()), "{fixture:?}");
        }
        // Every proper prefix is incomplete, never an error.
        for cut in 0..fixture.len() {
            assert_eq!(
                Value::decode(&fixture[..cut]),
                Ok(None),
                "{fixture:?} cut at {cut}"
            );
        }
    }
}

#[test]
fn pipelined_replies_split_at_every_boundary() {
    let stream: Vec<u8> = REPLY_FIXTURES.concat();
    let expected: Vec<usize> = REPLY_FIXTURES
        .iter()
        .scan(0, |end, f| Some(*end + f.len()).inspect(|e| *end = *e))
        .collect();
    assert_stream_boundaries(&stream, &expected);
}

fn decode_all(frame: &[u8]) -> Value {
    match Value::decode(frame) {
        Ok(Some((value, len))) if len == frame.len() => value,
        other => panic!("{other:?} for {frame:?}"),
    }
}

#[test]
fn decoded_values_match_the_captures() {
    let hello = decode_all(REPLY_FIXTURES[22]);
    assert_eq!(hello.get("proto").and_then(Value::as_integer), Some(3));
    assert_eq!(hello.get("role").and_then(Value::as_str), Some("master"));
    assert_eq!(
        hello.get("modules").and_then(Value::as_array),
        Some([].as_slice())
    );
    assert_eq!(hello.as_map().map(<[_]>::len), Some(7));

    let mut framer = RespFramer::default();
    assert_eq!(
        framer.next_frame_len(REPLY_FIXTURES[23]),
        Ok(Some(REPLY_FIXTURES[23].len()))
    );
    assert_eq!(framer.kind(), Some(protocol::resp::ValueKind::Push));
    assert_eq!(
        framer.next_frame_len(REPLY_FIXTURES[24]),
        Ok(Some(REPLY_FIXTURES[24].len()))
    );
    assert_eq!(
        framer.kind(),
        Some(protocol::resp::ValueKind::Array),
        "attributes do not count"
    );
    let push = decode_all(REPLY_FIXTURES[23]);
    assert_eq!(
        push,
        Value::Push(vec![bulk("message"), bulk("channel"), bulk("hello")])
    );

    let attributed = decode_all(REPLY_FIXTURES[24]);
    let Value::Attributed { attributes, value } = &attributed else {
        panic!("{attributed:?}")
    };
    assert_eq!(attributes[0].0, simple("key-popularity"));
    assert_eq!(
        attributes[0].1,
        Value::Map(vec![
            (bulk("a"), Value::Double(0.1923)),
            (bulk("b"), Value::Double(0.0012))
        ])
    );
    assert_eq!(
        **value,
        Value::Array(vec![Value::Integer(2039123), Value::Integer(9543892)])
    );
    assert_eq!(attributed.as_array().map(<[_]>::len), Some(2));

    assert_eq!(decode_all(REPLY_FIXTURES[27]), bulk("Hello word"));
    assert_eq!(
        decode_all(REPLY_FIXTURES[28]),
        Value::Array(vec![
            Value::Integer(1),
            Value::Integer(2),
            Value::Integer(3)
        ])
    );
    assert_eq!(
        decode_all(REPLY_FIXTURES[29]),
        Value::Map(vec![
            (simple("a"), Value::Integer(1)),
            (simple("b"), Value::Integer(2))
        ])
    );
    assert_eq!(
        decode_all(REPLY_FIXTURES[30]),
        Value::Set(vec![Value::Array(vec![]), bulk("")])
    );
    for null in [b"$-1\r\n".as_slice(), b"*-1\r\n", b"_\r\n"] {
        assert!(decode_all(null).is_null());
    }
    assert_eq!(
        decode_all(b"(3492890328409238509324850943850943825024385\r\n").as_str(),
        Some("3492890328409238509324850943850943825024385")
    );
    assert_eq!(
        decode_all(b"=15\r\ntxt:Some string\r\n"),
        Value::Verbatim {
            format: *b"txt",
            text: Bytes::from_static(b"Some string")
        }
    );
    assert!(decode_all(REPLY_FIXTURES[1]).is_error());
    assert_eq!(
        decode_all(b"!21\r\nSYNTAX invalid syntax\r\n").as_str(),
        Some("SYNTAX invalid syntax")
    );
    let attributed = decode_all(REPLY_FIXTURES[31]);
    let Value::Attributed { attributes, value } = &attributed else {
        panic!("{attributed:?}")
    };
    let popularity = Value::Array(vec![bulk("key:123"), Value::Integer(90)]);
    assert_eq!(attributes, &vec![(bulk("key-popularity"), popularity)]);
    assert_eq!(
        attributed.as_str(),
        Some("Some real reply following the attribute")
    );
    assert_eq!(value.kind(), protocol::resp::ValueKind::Bulk);
    assert_eq!(
        decode_all(REPLY_FIXTURES[33]),
        Value::Verbatim {
            format: *b"txt",
            text: Bytes::from_static(b"This is a verbatim\nstring")
        }
    );
    let map = decode_all(REPLY_FIXTURES[35]);
    let flags: Vec<_> = (0..3).map(|i| map.as_map().map(|m| m[i].clone())).collect();
    assert_eq!(flags[1], Some((Value::Integer(1), Value::Boolean(true))));
    assert_eq!(
        decode_all(REPLY_FIXTURES[37]),
        Value::Array(vec![bulk("a"), bulk("b\r\nc"), bulk("")])
    );
    let invalidate = decode_all(REPLY_FIXTURES[39]);
    assert_eq!(invalidate.kind(), protocol::resp::ValueKind::Push);
    assert_eq!(
        invalidate.as_array().map(|items| items[0].as_str()),
        Some(Some("invalidate"))
    );
    let master = decode_all(REPLY_FIXTURES[19]);
    let address = master.as_array().expect("array");
    assert_eq!(
        (address[0].as_str(), address[1].as_integer()),
        (Some("127.0.0.1"), Some(6379))
    );
}

#[test]
fn captured_pipelined_replies_with_pushes() {
    // redis-server 7.0.15, RESP3 with CLIENT TRACKING on: SET's reply, then an invalidation
    // push; after SUBSCRIBE, a published message pushed ahead of a PONG.
    let stream: &[u8] = b"+OK\r\n>2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n\
>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n+PONG\r\n";
    assert_stream_boundaries(stream, &[5, 37, 73, 80]);
    let mut scanner = RespScanner::default();
    let mut kinds = Vec::new();
    let mut rest = stream;
    while let Ok(Scan::Complete(n)) = scanner.scan(rest) {
        kinds.push(scanner.kind());
        rest = &rest[n..];
    }
    use protocol::resp::ValueKind::{Push, Simple};
    assert_eq!(kinds, [Some(Simple), Some(Push), Some(Push), Some(Simple)]);
}

#[test]
fn large_array_reply_streams_in_chunks() {
    let count = 20_000;
    let mut stream = format!("*{count}\r\n").into_bytes();
    for index in 0..count {
        let member = format!("member:{index}");
        stream.extend_from_slice(format!("${}\r\n{member}\r\n", member.len()).as_bytes());
    }
    stream.extend_from_slice(b"+OK\r\n");
    let expected = [stream.len() - 5, stream.len()];
    for chunk_len in [1, 2, 3, 7, 100, 4096, 16 * 1024] {
        assert_eq!(
            scan_boundaries(stream.chunks(chunk_len)).as_deref(),
            Ok(expected.as_slice()),
            "chunks of {chunk_len}"
        );
    }
    assert_eq!(
        framer_lengths(stream.chunks(16 * 1024)),
        Ok(vec![expected[0], 5])
    );
    let (value, _) = Value::decode(&stream).expect("valid").expect("complete");
    assert_eq!(value.as_array().map(<[_]>::len), Some(count));
}

#[test]
fn large_bulk_is_consumed_as_it_arrives() {
    let payload = vec![b'x'; 1 << 20];
    let mut stream = format!("${}\r\n", payload.len()).into_bytes();
    stream.extend_from_slice(&payload);
    stream.extend_from_slice(b"\r\n");
    let mut scanner = RespScanner::default();
    let mut offset = 0;
    for chunk in stream.chunks(10_000) {
        match scanner.scan(chunk).expect("valid") {
            // Nothing is held back: every byte of every read is forwarded at once.
            Scan::Partial(n) => assert_eq!(n, chunk.len()),
            Scan::Complete(n) => assert_eq!(offset + n, stream.len()),
        }
        offset += chunk.len();
    }
    assert!(scanner.is_idle());
}

/// A malformed reply stream and the error it must give, however it is split.
fn assert_reply_error(stream: &[u8], expected: &ProtocolError) {
    for (how, chunks) in feedings(stream) {
        assert_eq!(
            scan_boundaries(chunks).as_ref(),
            Err(expected),
            "{how} {stream:?}"
        );
    }
    assert!(
        Value::decode(stream).is_err(),
        "Value::decode accepted {stream:?}"
    );
}

#[test]
fn malformed_replies_are_rejected_at_every_split() {
    let invalid = ProtocolError::invalid;
    assert_reply_error(b"$-2\r\n", &invalid("RESP length"));
    assert_reply_error(b"$3\r\nfooXY", &invalid("CRLF after RESP bulk payload"));
    assert_reply_error(b"$3\r\nfoo\rX", &invalid("CRLF after RESP bulk payload"));
    assert_reply_error(b":12a\r\n", &invalid("RESP integer"));
    assert_reply_error(b":99999999999999999999\r\n", &invalid("RESP integer"));
    assert_reply_error(b"#x\r\n", &invalid("RESP boolean"));
    assert_reply_error(b"*-2\r\n", &invalid("RESP aggregate count"));
    assert_reply_error(b"%-1\r\n", &invalid("RESP aggregate count"));
    assert_reply_error(b",abc\r\n", &invalid("RESP double"));
    assert_reply_error(b"(12x\r\n", &invalid("RESP big number"));
    assert_reply_error(b"_x\r\n", &invalid("RESP null"));
    assert_reply_error(b"?\r\n", &invalid("RESP type byte"));
    assert_reply_error(b"+OK\n", &invalid("RESP line terminator"));
    assert_reply_error(b"$?\r\n:1\r\n", &invalid("RESP streamed string chunk"));
    assert_reply_error(
        b"%?\r\n+a\r\n.\r\n",
        &invalid("RESP streamed aggregate end"),
    );
    assert_reply_error(
        b"$99999999999\r\n",
        &ProtocolError::TooLarge {
            what: "RESP bulk string",
            len: 99_999_999_999,
            max: 512 * 1024 * 1024,
        },
    );
    assert_reply_error(
        b"*2147483648\r\n",
        &ProtocolError::TooLarge {
            what: "RESP aggregate",
            len: 2_147_483_648,
            max: i32::MAX as u64,
        },
    );
    let nested = "*1\r\n".repeat(129);
    assert_reply_error(
        nested.as_bytes(),
        &ProtocolError::TooLarge {
            what: "RESP nesting depth",
            len: 129,
            max: 128,
        },
    );
}

#[test]
fn huge_announced_counts_wait_without_allocating() {
    let mut scanner = RespScanner::default();
    assert_eq!(scanner.scan(b"*2147483647\r\n"), Ok(Scan::Partial(13)));
    assert_eq!(Value::decode(b"*2147483647\r\n:1\r\n"), Ok(None));
    let mut framer = RespFramer::new(RespLimits::default());
    assert_eq!(framer.next_frame_len(b"$536870912\r\nabc"), Ok(None));
}
