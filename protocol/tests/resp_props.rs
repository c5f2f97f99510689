//! Property tests: random RESP2/RESP3 value trees and requests under random read boundaries,
//! round trips through encode/decode, and `redis_protocol` as an oracle for frame lengths and values.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use protocol::resp::{
    Request, RequestDecoder, RespFramer, RespScanner, RespVersion, Scan, Value, encode_command,
};
use redis_protocol::resp2::types::OwnedFrame as Resp2Frame;
use redis_protocol::resp3::types::OwnedFrame as Resp3Frame;

fn bytes_up_to(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

/// Text of a simple string: anything but CR and LF.
fn line_text() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(
        any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
        0..16,
    )
    .prop_map(Bytes::from)
}

/// Error text the oracle accepts (it wants UTF-8 for `-` lines).
fn error_text() -> impl Strategy<Value = Bytes> {
    "[ -~]{0,24}".prop_map(Bytes::from)
}

fn resp2_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        line_text().prop_map(Value::Simple),
        error_text().prop_map(Value::Error),
        any::<i64>().prop_map(Value::Integer),
        bytes_up_to(40).prop_map(Value::Bulk),
        Just(Value::Null),
    ]
}

fn resp2_value() -> impl Strategy<Value = Value> {
    resp2_leaf().prop_recursive(4, 64, 8, |inner| {
        prop::collection::vec(inner, 0..8).prop_map(Value::Array)
    })
}

/// Map keys and set members: scalars the oracle can hash, made unique by their encoding.
fn key_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        bytes_up_to(12).prop_map(Value::Bulk),
        line_text().prop_map(Value::Simple),
        any::<i64>().prop_map(Value::Integer),
    ]
}

fn dedup_by_encoding<T>(items: Vec<T>, key: impl Fn(&T) -> &Value) -> Vec<T> {
    let mut seen = std::collections::HashSet::new();
    items
        .into_iter()
        .filter(|item| {
            let mut buf = BytesMut::new();
            key(item).encode(&mut buf, RespVersion::Resp3);
            seen.insert(buf)
        })
        .collect()
}

fn resp3_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        resp2_leaf(),
        // Errors with CR/LF travel as blob errors.
        ("[ -~]{0,8}", "[ -~]{0,8}")
            .prop_map(|(a, b)| Value::Error(Bytes::from(format!("{a}\r\n{b}")))),
        any::<bool>().prop_map(Value::Boolean),
        prop_oneof![
            any::<f64>().prop_filter("finite", |d| d.is_finite()),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY)
        ]
        .prop_map(Value::Double),
        "-?[1-9][0-9]{0,40}".prop_map(|digits| Value::BigNumber(Bytes::from(digits))),
        (
            prop::sample::select(vec![*b"txt", *b"mkd"]),
            bytes_up_to(24)
        )
            .prop_map(|(format, text)| Value::Verbatim { format, text }),
    ]
}

/// RESP3 trees; attributes only when `with_attributes` (the oracle models them differently).
fn resp3_value(with_attributes: bool) -> impl Strategy<Value = Value> {
    resp3_leaf().prop_recursive(4, 64, 6, move |inner| {
        let pairs = prop::collection::vec((key_leaf(), inner.clone()), 0..6).prop_map(|p| dedup_by_encoding(p, |(k, _)| k)).boxed();
        let aggregates = prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(key_leaf(), 0..6).prop_map(|m| Value::Set(dedup_by_encoding(m, |v| v))),
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Push),
            pairs.clone().prop_map(Value::Map),
        ];
        if with_attributes {
            prop_oneof![
                4 => aggregates,
                1 => (pairs, inner).prop_map(|(attributes, value)| Value::Attributed { attributes, value: Box::new(value) }),
            ]
            .boxed()
        } else {
            aggregates.boxed()
        }
    })
}

fn encode(value: &Value, version: RespVersion) -> Vec<u8> {
    let mut buf = BytesMut::new();
    value.encode(&mut buf, version);
    buf.to_vec()
}

/// Encodes like `Value::encode`, but as RESP3 streamed strings and aggregates wherever `choices`
/// says so (bit by bit), to cover `$?`, `;len`, `*?`, `%?` and `.`.
fn encode_streamed(value: &Value, buf: &mut Vec<u8>, choices: &mut u64) {
    let mut pick = || {
        *choices = choices.rotate_left(1) ^ 0x9e37_79b9;
        *choices & 1 == 1
    };
    match value {
        Value::Bulk(payload) if pick() => {
            buf.extend_from_slice(b"$?\r\n");
            for chunk in payload.chunks(3) {
                buf.extend_from_slice(format!(";{}\r\n", chunk.len()).as_bytes());
                buf.extend_from_slice(chunk);
                buf.extend_from_slice(b"\r\n");
            }
            buf.extend_from_slice(b";0\r\n");
        }
        Value::Array(items) | Value::Set(items) | Value::Push(items) if pick() => {
            let type_byte = match value {
                Value::Array(_) => b'*',
                Value::Set(_) => b'~',
                _ => b'>',
            };
            buf.extend_from_slice(&[type_byte, b'?', b'\r', b'\n']);
            for item in items {
                encode_streamed(item, buf, choices);
            }
            buf.extend_from_slice(b".\r\n");
        }
        Value::Map(pairs) => {
            buf.extend_from_slice(format!("%{}\r\n", pairs.len()).as_bytes());
            for (key, item) in pairs {
                encode_streamed(key, buf, choices);
                encode_streamed(item, buf, choices);
            }
        }
        Value::Array(items) => {
            buf.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
            for item in items {
                encode_streamed(item, buf, choices);
            }
        }
        other => buf.extend_from_slice(&encode(other, RespVersion::Resp3)),
    }
}

/// Feeds `stream` in chunks of the given sizes (cycled) the way a forwarding proxy does and
/// returns the end offset of every frame.
fn scan_boundaries(stream: &[u8], chunk_sizes: &[usize]) -> Vec<usize> {
    let mut scanner = RespScanner::default();
    let mut pending = Vec::new();
    let (mut fed, mut consumed) = (0, 0);
    let mut boundaries = Vec::new();
    for size in chunk_sizes.iter().cycle() {
        if fed >= stream.len() {
            break;
        }
        let end = (fed + size).min(stream.len());
        pending.extend_from_slice(&stream[fed..end]);
        fed = end;
        while !pending.is_empty() {
            match scanner.scan(&pending).expect("valid stream") {
                Scan::Complete(n) => {
                    consumed += n;
                    pending.drain(..n);
                    boundaries.push(consumed);
                }
                Scan::Partial(n) => {
                    consumed += n;
                    pending.drain(..n);
                    break;
                }
            }
        }
    }
    assert!(scanner.is_idle(), "scanner left mid-value");
    boundaries
}

fn framer_lengths(stream: &[u8], chunk_sizes: &[usize]) -> Vec<usize> {
    let mut framer = RespFramer::default();
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut lengths = Vec::new();
    for size in chunk_sizes.iter().cycle() {
        if fed >= stream.len() {
            break;
        }
        let end = (fed + size).min(stream.len());
        buf.extend_from_slice(&stream[fed..end]);
        fed = end;
        while let Some(frame) = framer.next_frame(&mut buf).expect("valid stream") {
            lengths.push(frame.len());
        }
    }
    lengths
}

/// Checks that the scanner and the framer find exactly the frames `frames` concatenate to.
fn check_boundaries(frames: &[Vec<u8>], chunk_sizes: &[usize]) -> Result<(), TestCaseError> {
    let stream = frames.concat();
    let mut end = 0;
    let expected: Vec<usize> = frames
        .iter()
        .map(|f| {
            end += f.len();
            end
        })
        .collect();
    prop_assert_eq!(scan_boundaries(&stream, chunk_sizes), expected);
    let lengths: Vec<usize> = frames.iter().map(Vec::len).collect();
    prop_assert_eq!(framer_lengths(&stream, chunk_sizes), lengths);
    Ok(())
}

fn from_resp2(frame: Resp2Frame) -> Value {
    match frame {
        Resp2Frame::SimpleString(text) => Value::Simple(text.into()),
        Resp2Frame::Error(text) => Value::Error(text.into()),
        Resp2Frame::Integer(value) => Value::Integer(value),
        Resp2Frame::BulkString(payload) => Value::Bulk(payload.into()),
        Resp2Frame::Array(items) => Value::Array(items.into_iter().map(from_resp2).collect()),
        Resp2Frame::Null => Value::Null,
    }
}

/// True when the oracle's frame holds the same value (its maps and sets are unordered).
fn same_as_resp3(mine: &Value, theirs: &Resp3Frame) -> bool {
    let same_items = |items: &[Value], data: &[Resp3Frame]| {
        items.len() == data.len() && items.iter().zip(data).all(|(a, b)| same_as_resp3(a, b))
    };
    match (mine, theirs) {
        (Value::Simple(a), Resp3Frame::SimpleString { data, .. }) => a.as_ref() == data.as_slice(),
        (Value::Error(a), Resp3Frame::SimpleError { data, .. }) => a.as_ref() == data.as_bytes(),
        (Value::Error(a), Resp3Frame::BlobError { data, .. }) => a.as_ref() == data.as_slice(),
        (Value::Integer(a), Resp3Frame::Number { data, .. }) => a == data,
        (Value::Bulk(a), Resp3Frame::BlobString { data, .. }) => a.as_ref() == data.as_slice(),
        (Value::Null, Resp3Frame::Null) => true,
        (Value::Boolean(a), Resp3Frame::Boolean { data, .. }) => a == data,
        (Value::Double(a), Resp3Frame::Double { data, .. }) => a == data,
        (Value::BigNumber(a), Resp3Frame::BigNumber { data, .. }) => a.as_ref() == data.as_slice(),
        (
            Value::Verbatim { format, text },
            Resp3Frame::VerbatimString {
                data,
                format: theirs,
                ..
            },
        ) => {
            let theirs = match theirs {
                redis_protocol::resp3::types::VerbatimStringFormat::Text => b"txt",
                redis_protocol::resp3::types::VerbatimStringFormat::Markdown => b"mkd",
            };
            format == theirs && text.as_ref() == data.as_slice()
        }
        (Value::Array(items), Resp3Frame::Array { data, .. }) => same_items(items, data),
        (Value::Push(items), Resp3Frame::Push { data, .. }) => same_items(items, data),
        (Value::Set(items), Resp3Frame::Set { data, .. }) => {
            items.len() == data.len()
                && items
                    .iter()
                    .all(|item| data.iter().any(|t| same_as_resp3(item, t)))
        }
        (Value::Map(pairs), Resp3Frame::Map { data, .. }) => {
            pairs.len() == data.len()
                && pairs.iter().all(|(k, v)| {
                    data.iter()
                        .any(|(tk, tv)| same_as_resp3(k, tk) && same_as_resp3(v, tv))
                })
        }
        _ => false,
    }
}

/// Random read sizes, biased to small ones so lines and CRLFs get split.
fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(
        prop_oneof![3 => 1..4usize, 2 => 1..32usize, 1 => 1..512usize],
        1..16,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn resp2_values_round_trip_and_match_the_oracle(values in prop::collection::vec(resp2_value(), 1..6), sizes in chunk_sizes()) {
        let frames: Vec<Vec<u8>> = values.iter().map(|v| encode(v, RespVersion::Resp2)).collect();
        for (value, frame) in values.iter().zip(&frames) {
            prop_assert_eq!(Value::decode(frame), Ok(Some((value.clone(), frame.len()))));
            let (theirs, len) = redis_protocol::resp2::decode::decode(frame).expect("oracle accepts").expect("complete");
            prop_assert_eq!(len, frame.len());
            prop_assert_eq!(&from_resp2(theirs), value);
        }
        check_boundaries(&frames, &sizes)?;
    }

    #[test]
    fn resp3_values_round_trip_and_match_the_oracle(values in prop::collection::vec(resp3_value(false), 1..6), sizes in chunk_sizes()) {
        let frames: Vec<Vec<u8>> = values.iter().map(|v| encode(v, RespVersion::Resp3)).collect();
        for (value, frame) in values.iter().zip(&frames) {
            prop_assert_eq!(Value::decode(frame), Ok(Some((value.clone(), frame.len()))));
            let (theirs, len) = redis_protocol::resp3::decode::complete::decode(frame).expect("oracle accepts").expect("complete");
            prop_assert_eq!(len, frame.len());
            prop_assert!(same_as_resp3(value, &theirs), "{:?} vs oracle {:?}", value, theirs);
        }
        check_boundaries(&frames, &sizes)?;
    }

    #[test]
    fn attributed_and_streamed_values_round_trip(values in prop::collection::vec(resp3_value(true), 1..6), seed in any::<u64>(), sizes in chunk_sizes()) {
        let mut frames = Vec::new();
        for value in &values {
            let frame = encode(value, RespVersion::Resp3);
            prop_assert_eq!(Value::decode(&frame), Ok(Some((value.clone(), frame.len()))));
            frames.push(frame);
            let mut streamed = Vec::new();
            let mut choices = seed;
            encode_streamed(value, &mut streamed, &mut choices);
            prop_assert_eq!(Value::decode(&streamed), Ok(Some((value.clone(), streamed.len()))));
            frames.push(streamed);
        }
        check_boundaries(&frames, &sizes)?;
    }

    #[test]
    fn resp3_values_downgrade_to_valid_resp2(values in prop::collection::vec(resp3_value(true), 1..4), sizes in chunk_sizes()) {
        let frames: Vec<Vec<u8>> = values.iter().map(|v| encode(v, RespVersion::Resp2)).collect();
        for frame in &frames {
            let (_, len) = redis_protocol::resp2::decode::decode(frame).expect("oracle accepts RESP2").expect("complete");
            prop_assert_eq!(len, frame.len());
        }
        check_boundaries(&frames, &sizes)?;
    }

    #[test]
    fn requests_round_trip_under_random_chunking(
        requests in prop::collection::vec((prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 1..7), any::<bool>()), 1..8),
        sizes in chunk_sizes(),
    ) {
        let mut stream = Vec::new();
        for (args, is_inline) in &requests {
            if *is_inline {
                // Every byte as \xHH inside double quotes survives sdssplitargs.
                for arg in args {
                    stream.push(b'"');
                    for byte in arg {
                        stream.extend_from_slice(format!("\\x{byte:02x}").as_bytes());
                    }
                    stream.extend_from_slice(b"\" ");
                }
                stream.extend_from_slice(b"\r\n");
            } else {
                let slices: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                let mut buf = BytesMut::new();
                encode_command(&mut buf, &slices);
                let (theirs, len) = redis_protocol::resp2::decode::decode(&buf).expect("oracle").expect("complete");
                prop_assert_eq!(len, buf.len());
                prop_assert_eq!(from_resp2(theirs), Value::Array(args.iter().map(|a| Value::Bulk(Bytes::copy_from_slice(a))).collect()));
                stream.extend_from_slice(&buf);
            }
        }
        let mut decoder = RequestDecoder::default();
        let mut buf = BytesMut::new();
        let mut decoded: Vec<Request> = Vec::new();
        let mut fed = 0;
        for size in sizes.iter().cycle() {
            if fed >= stream.len() {
                break;
            }
            let end = (fed + size).min(stream.len());
            buf.extend_from_slice(&stream[fed..end]);
            fed = end;
            while let Some(request) = decoder.decode(&mut buf).expect("valid requests") {
                decoded.push(request);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert!(decoder.is_idle());
        prop_assert_eq!(decoded.len(), requests.len());
        for (request, (args, _)) in decoded.iter().zip(&requests) {
            let got: Vec<&[u8]> = request.args().collect();
            let want: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(request, &Request::from_args(&want));
            // The forwarded bytes are one scanner frame.
            prop_assert_eq!(RespScanner::default().scan(request.as_bytes()), Ok(Scan::Complete(request.as_bytes().len())));
        }
    }
}
