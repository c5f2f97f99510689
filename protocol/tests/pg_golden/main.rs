//! Golden tests: streams captured from PostgreSQL 15 and psql, split at every boundary and decoded.
//!
//! `captured.rs` holds the bytes, `decode.rs` the per-message value checks; this file checks
//! framing under every chunking, the startup phase, renaming and truncation.

mod captured;
mod decode;

use bytes::{Bytes, BytesMut};
use protocol::ProtocolError;
use protocol::pg::backend::{Authentication, BackendMessage};
use protocol::pg::encode;
use protocol::pg::frontend::{FrontendMessage, Target};
use protocol::pg::{
    BackendTag, DEFAULT_MAX_PACKET, Frame, FrameSplitter, FrontendTag, StartupPacket,
    decode_startup, rename_statement, scan_frames,
};

use captured::*;

// ---- helpers ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Frontend,
    Backend,
}

/// Every tagged stream with the side that sent it.
const STREAMS: &[(&str, Side, &[u8])] = &[
    ("login", Side::Backend, LOGIN_REPLY),
    ("simple query", Side::Frontend, SIMPLE_QUERY),
    ("simple query reply", Side::Backend, SIMPLE_QUERY_REPLY),
    ("extended", Side::Frontend, EXTENDED),
    ("extended reply", Side::Backend, EXTENDED_REPLY),
    ("portal", Side::Frontend, PORTAL),
    ("portal reply", Side::Backend, PORTAL_REPLY),
    ("error", Side::Backend, ERROR_REPLY),
    ("fatal", Side::Backend, FATAL_REPLY),
    ("notice", Side::Backend, NOTICE_REPLY),
    ("notify", Side::Backend, NOTIFY_REPLY),
    ("copy out", Side::Backend, COPY_OUT_REPLY),
    ("copy in", Side::Backend, COPY_IN_REPLY),
    ("copy in data", Side::Frontend, COPY_IN_DATA),
    ("copy in done", Side::Backend, COPY_IN_DONE_REPLY),
    ("empty query", Side::Backend, EMPTY_QUERY_REPLY),
    ("copy both", Side::Backend, COPY_BOTH_REPLY),
    ("scram server first", Side::Backend, SCRAM_SERVER_FIRST),
    ("scram client first", Side::Frontend, SCRAM_CLIENT_FIRST),
    (
        "scram server continue",
        Side::Backend,
        SCRAM_SERVER_CONTINUE,
    ),
    ("scram client final", Side::Frontend, SCRAM_CLIENT_FINAL),
    ("scram server final", Side::Backend, SCRAM_SERVER_FINAL),
    ("negotiate reply", Side::Backend, NEGOTIATE_REPLY),
    ("function call", Side::Frontend, FUNCTION_CALL),
    ("function call reply", Side::Backend, FUNCTION_CALL_REPLY),
];

/// Feeds `stream` in the given chunk sizes and collects every frame the splitter returns.
fn split_chunked(stream: &[u8], chunk_sizes: impl IntoIterator<Item = usize>) -> Vec<Frame> {
    let splitter = FrameSplitter::new(DEFAULT_MAX_PACKET);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut rest = stream;
    let mut sizes = chunk_sizes.into_iter();
    while !rest.is_empty() {
        let take = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(take);
        buf.extend_from_slice(chunk);
        rest = tail;
        while let Some(frame) = splitter.split(&mut buf).expect("valid stream") {
            frames.push(frame);
        }
    }
    assert!(buf.is_empty(), "bytes left over");
    frames
}

pub(crate) fn split_whole(stream: &[u8]) -> Vec<Frame> {
    split_chunked(stream, [stream.len()])
}

fn describe(side: Side, frame: &Frame) -> String {
    match side {
        Side::Frontend => format!("{:?}", FrontendMessage::decode(frame).expect("decodes")),
        Side::Backend => format!("{:?}", BackendMessage::decode(frame).expect("decodes")),
    }
}

pub(crate) fn backend(stream: &[u8]) -> Vec<Frame> {
    split_whole(stream)
}

pub(crate) fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("utf-8")
}

// ---- framing ---------------------------------------------------------------------------

#[test]
fn every_stream_splits_identically_at_every_boundary() {
    for (name, side, stream) in STREAMS {
        let whole = split_whole(stream);
        let joined: Vec<u8> = whole.iter().flat_map(|f| f.as_bytes().to_vec()).collect();
        assert_eq!(&joined, stream, "{name}: frames are not verbatim");
        let decoded: Vec<String> = whole.iter().map(|f| describe(*side, f)).collect();
        for cut in 1..stream.len() {
            let frames = split_chunked(stream, [cut, stream.len() - cut]);
            assert_eq!(frames, whole, "{name}: split at {cut}");
        }
        let bytewise = split_chunked(stream, std::iter::repeat(1));
        assert_eq!(bytewise, whole, "{name}: byte at a time");
        let redecoded: Vec<String> = bytewise.iter().map(|f| describe(*side, f)).collect();
        assert_eq!(redecoded, decoded, "{name}");
    }
}

#[test]
fn scanner_agrees_with_splitter_on_every_prefix() {
    for (name, _, stream) in STREAMS {
        let whole = split_whole(stream);
        for end in 0..=stream.len() {
            let mut scanner = scan_frames(&stream[..end], DEFAULT_MAX_PACKET);
            let headers: Vec<_> = scanner.by_ref().map(|r| r.expect("valid")).collect();
            let complete: usize = whole
                .iter()
                .map(Frame::wire_len)
                .scan(0, |sum, len| {
                    *sum += len;
                    Some(*sum)
                })
                .take_while(|sum| *sum <= end)
                .last()
                .unwrap_or(0);
            assert_eq!(scanner.complete_len(), complete, "{name} prefix {end}");
            for ((header, offset), frame) in headers.iter().zip(&whole) {
                assert_eq!(header.tag, frame.tag());
                assert_eq!(header.len, frame.wire_len());
                assert_eq!(scanner.frame_bytes(*header, *offset), &frame.as_bytes()[..]);
            }
        }
    }
}

#[test]
fn pooler_finds_ready_for_query_by_tag() {
    let mut scanner = scan_frames(SIMPLE_QUERY_REPLY, DEFAULT_MAX_PACKET);
    let last = scanner
        .by_ref()
        .filter_map(Result::ok)
        .last()
        .expect("frames");
    assert_eq!(
        BackendTag::from_byte(last.0.tag),
        Some(BackendTag::ReadyForQuery)
    );
    assert_eq!(scanner.complete_len(), SIMPLE_QUERY_REPLY.len());
}

// ---- startup phase ---------------------------------------------------------------------

#[test]
fn startup_packets_decode_and_wait_for_more() {
    let (packet, used) = decode_startup(PSQL_STARTUP).unwrap().unwrap();
    assert_eq!(used, PSQL_STARTUP.len());
    let StartupPacket::Startup(startup) = packet else {
        panic!("not a startup")
    };
    assert_eq!((startup.major, startup.minor), (3, 0));
    assert_eq!(startup.user(), Some("postgres"));
    assert_eq!(startup.database(), Some("test"));
    assert_eq!(startup.get("application_name"), Some("psql"));
    assert_eq!(startup.negotiation(), None);
    let mut encoded = BytesMut::new();
    let params: Vec<(&str, &str)> = startup
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    encode::startup_message(&mut encoded, &params).unwrap();
    assert_eq!(&encoded[..], PSQL_STARTUP);

    for (bytes, expected) in [
        (SSL_REQUEST, StartupPacket::SslRequest),
        (GSSENC_REQUEST, StartupPacket::GssEncRequest),
    ] {
        assert_eq!(decode_startup(bytes), Ok(Some((expected, 8))));
    }
    let mut ssl = BytesMut::new();
    encode::ssl_request(&mut ssl);
    assert_eq!(&ssl[..], SSL_REQUEST);

    for packet in [
        PSQL_STARTUP,
        SSL_REQUEST,
        GSSENC_REQUEST,
        CANCEL_REQUEST,
        NEGOTIATE_STARTUP,
    ] {
        for end in 0..packet.len() {
            assert_eq!(decode_startup(&packet[..end]), Ok(None), "prefix {end}");
        }
        // A following packet in the same buffer is not consumed.
        let mut two = packet.to_vec();
        two.extend_from_slice(SSL_REQUEST);
        assert_eq!(decode_startup(&two).unwrap().unwrap().1, packet.len());
    }
}

#[test]
fn cancel_request_matches_backend_key_data() {
    let frames = backend(LOGIN_REPLY);
    let key_data = frames
        .iter()
        .find(|f| f.backend_tag() == Some(BackendTag::BackendKeyData));
    let Ok(BackendMessage::BackendKeyData { pid, key }) =
        BackendMessage::decode(key_data.expect("K"))
    else {
        panic!("no BackendKeyData")
    };
    let Some((StartupPacket::Cancel(cancel), 16)) = decode_startup(CANCEL_REQUEST).unwrap() else {
        panic!("not a cancel")
    };
    assert_eq!((cancel.pid, &cancel.key[..]), (pid, key));
    let mut encoded = BytesMut::new();
    encode::cancel_request(&mut encoded, pid, key).unwrap();
    assert_eq!(&encoded[..], CANCEL_REQUEST);
    let mut key_data_encoded = BytesMut::new();
    encode::backend_key_data(&mut key_data_encoded, pid, key).unwrap();
    assert_eq!(&key_data_encoded[..], &key_data.unwrap().as_bytes()[..]);
}

#[test]
fn negotiation_matches_what_postgres_sent() {
    let Some((StartupPacket::Startup(startup), _)) = decode_startup(NEGOTIATE_STARTUP).unwrap()
    else {
        panic!("not a startup")
    };
    assert_eq!(startup.minor, 2);
    let negotiation = startup.negotiation().expect("needs negotiation");
    assert_eq!(negotiation.unsupported_options, ["_pq_.test_option"]);
    let options: Vec<&str> = negotiation
        .unsupported_options
        .iter()
        .map(String::as_str)
        .collect();
    let mut encoded = BytesMut::new();
    encode::negotiate_protocol_version(&mut encoded, negotiation.newest_minor, &options).unwrap();
    let frames = backend(NEGOTIATE_REPLY);
    assert_eq!(&encoded[..], &frames[0].as_bytes()[..]);
    let Ok(BackendMessage::NegotiateProtocolVersion { newest, options }) =
        BackendMessage::decode(&frames[0])
    else {
        panic!("not v")
    };
    assert_eq!((newest.major, newest.minor), (3, 0));
    assert_eq!(options.collect::<Vec<_>>(), [&b"_pq_.test_option"[..]]);
}

// ---- statement renaming on captured frames ---------------------------------------------

#[test]
fn rename_statement_on_captured_pipeline() {
    for frame in split_whole(EXTENDED) {
        let renamed = rename_statement(&frame, b"pooler_s_42");
        let original = FrontendMessage::decode(&frame).unwrap();
        let statement_target = match original {
            FrontendMessage::Parse(_) | FrontendMessage::Bind(_) => true,
            FrontendMessage::Describe(d) => d.target == Target::Statement,
            FrontendMessage::Close(c) => c.target == Target::Statement,
            _ => false,
        };
        let Ok(renamed) = renamed else {
            assert!(!statement_target, "{original:?} should rename");
            continue;
        };
        let renamed = Frame::from_bytes(renamed).expect("valid frame");
        let new_name = &b"pooler_s_42"[..];
        match (original, FrontendMessage::decode(&renamed).unwrap()) {
            (FrontendMessage::Parse(old), FrontendMessage::Parse(new)) => {
                assert_eq!(new.name, new_name);
                assert_eq!(
                    (new.query, new.param_type_count),
                    (old.query, old.param_type_count)
                );
                assert!(new.param_types().eq(old.param_types()));
            }
            (FrontendMessage::Bind(old), FrontendMessage::Bind(new)) => {
                assert_eq!((new.portal, new.statement), (old.portal, new_name));
                assert_eq!(new.parameters(), old.parameters());
            }
            (FrontendMessage::Describe(old), FrontendMessage::Describe(new)) => {
                assert_eq!((new.target, new.name), (old.target, new_name));
            }
            (FrontendMessage::Close(old), FrontendMessage::Close(new)) => {
                assert_eq!((new.target, new.name), (old.target, new_name));
            }
            (old, new) => panic!("{old:?} became {new:?}"),
        }
    }
}

// ---- truncation ------------------------------------------------------------------------

/// Message types whose every strict body prefix is invalid (the rest have a free-form tail).
fn strict_prefix(side: Side, tag: u8) -> bool {
    match side {
        Side::Frontend => !matches!(
            FrontendTag::from_byte(tag),
            Some(
                FrontendTag::Bind
                    | FrontendTag::CopyData
                    | FrontendTag::Password
                    | FrontendTag::FunctionCall
            )
        ),
        Side::Backend => !matches!(BackendTag::from_byte(tag), Some(BackendTag::CopyData)),
    }
}

#[test]
fn truncated_bodies_are_errors_not_panics() {
    for (name, side, stream) in STREAMS {
        for frame in split_whole(stream) {
            let body = frame.body();
            for end in 0..body.len() {
                let prefix = &body[..end];
                let result = match side {
                    Side::Frontend => {
                        FrontendMessage::decode_parts(frame.tag(), prefix).map(|_| ())
                    }
                    Side::Backend => BackendMessage::decode_parts(frame.tag(), prefix).map(|_| ()),
                };
                let is_sasl_data = *side == Side::Backend
                    && matches!(
                        BackendMessage::decode(&frame),
                        Ok(BackendMessage::Authentication(
                            Authentication::SaslContinue(_) | Authentication::SaslFinal(_)
                        ))
                    )
                    && end >= 4;
                if strict_prefix(*side, frame.tag()) && !is_sasl_data {
                    assert!(
                        matches!(result, Err(ProtocolError::Invalid { .. })),
                        "{name}: {:?} accepted a {end}-byte prefix",
                        frame.tag() as char
                    );
                }
            }
            // A frame whose length field claims more than is present is never complete.
            let bytes = frame.as_bytes();
            let mut truncated = BytesMut::from(&bytes[..bytes.len() - 1]);
            assert_eq!(FrameSplitter::default().split(&mut truncated), Ok(None));
        }
    }
    assert!(Frame::from_bytes(Bytes::from_static(b"Z\0\0\0\x05")).is_err());
}
