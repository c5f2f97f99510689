//! Frontend and startup specs for the property tests: our encoders, postgres-protocol's
//! encoders as an oracle, and the renaming property.

use bytes::BytesMut;
use postgres_protocol::IsNull;
use postgres_protocol::message::frontend as oracle;
use proptest::prelude::*;
use protocol::pg::encode;
use protocol::pg::frontend::{
    FrontendMessage, Target, parse_password, parse_sasl_initial_response,
};
use protocol::pg::{Frame, StartupPacket, decode_startup, rename_statement, rename_statement_into};

use super::{cbytes, ctext, data};

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![Just(Target::Statement), Just(Target::Portal)]
}

/// One call of a frontend-side (pooler → server) encoder.
#[derive(Debug, Clone)]
pub(crate) enum Front {
    Query(String),
    Parse(String, String, Vec<u32>),
    Bind(String, String, Vec<i16>, Vec<Option<Vec<u8>>>, Vec<i16>),
    Describe(Target, String),
    Close(Target, String),
    Execute(String, u32),
    Sync,
    Flush,
    Terminate,
    Password(Vec<u8>),
    SaslInitial(String, Vec<u8>),
    SaslResponse(Vec<u8>),
    CopyData(Vec<u8>),
    CopyDone,
    CopyFail(String),
}

pub(crate) fn frontend_spec() -> impl Strategy<Value = Front> {
    let formats = || proptest::collection::vec(0i16..2, 0..4);
    prop_oneof![
        ctext().prop_map(Front::Query),
        (
            ctext(),
            ctext(),
            proptest::collection::vec(any::<u32>(), 0..6)
        )
            .prop_map(|(n, q, t)| Front::Parse(n, q, t)),
        (
            ctext(),
            ctext(),
            formats(),
            proptest::collection::vec(proptest::option::of(data()), 0..5),
            formats()
        )
            .prop_map(|(p, s, f, v, r)| Front::Bind(p, s, f, v, r)),
        (target(), ctext()).prop_map(|(t, n)| Front::Describe(t, n)),
        (target(), ctext()).prop_map(|(t, n)| Front::Close(t, n)),
        (ctext(), 0u32..=i32::MAX as u32).prop_map(|(p, m)| Front::Execute(p, m)),
        Just(Front::Sync),
        Just(Front::Flush),
        Just(Front::Terminate),
        cbytes().prop_map(Front::Password),
        ("[A-Z0-9-]{1,20}", data()).prop_map(|(m, d)| Front::SaslInitial(m, d)),
        data().prop_map(Front::SaslResponse),
        data().prop_map(Front::CopyData),
        Just(Front::CopyDone),
        ctext().prop_map(Front::CopyFail),
    ]
}

impl Front {
    pub(crate) fn encode(&self, buf: &mut BytesMut) {
        match self {
            Self::Query(q) => encode::query(buf, q.as_bytes()).unwrap(),
            Self::Parse(n, q, t) => encode::parse(buf, n.as_bytes(), q.as_bytes(), t).unwrap(),
            Self::Bind(p, s, f, v, r) => {
                let values: Vec<Option<&[u8]>> = v.iter().map(Option::as_deref).collect();
                encode::bind(buf, p.as_bytes(), s.as_bytes(), f, &values, r).unwrap()
            }
            Self::Describe(Target::Statement, n) => {
                encode::describe_statement(buf, n.as_bytes()).unwrap()
            }
            Self::Describe(Target::Portal, n) => {
                encode::describe_portal(buf, n.as_bytes()).unwrap()
            }
            Self::Close(Target::Statement, n) => {
                encode::close_statement(buf, n.as_bytes()).unwrap()
            }
            Self::Close(Target::Portal, n) => encode::close_portal(buf, n.as_bytes()).unwrap(),
            Self::Execute(p, m) => encode::execute(buf, p.as_bytes(), *m).unwrap(),
            Self::Sync => encode::sync(buf),
            Self::Flush => encode::flush(buf),
            Self::Terminate => encode::terminate(buf),
            Self::Password(p) => encode::password_message(buf, p).unwrap(),
            Self::SaslInitial(m, d) => encode::sasl_initial_response(buf, m, d).unwrap(),
            Self::SaslResponse(d) => encode::sasl_response(buf, d).unwrap(),
            Self::CopyData(d) => encode::copy_data(buf, d).unwrap(),
            Self::CopyDone => encode::copy_done(buf),
            Self::CopyFail(m) => encode::copy_fail(buf, m.as_bytes()).unwrap(),
        }
    }

    /// The same message written by postgres-protocol's encoders.
    pub(crate) fn encode_with_postgres_protocol(&self, buf: &mut BytesMut) {
        match self {
            Self::Query(q) => oracle::query(q, buf).unwrap(),
            Self::Parse(n, q, t) => oracle::parse(n, q, t.iter().copied(), buf).unwrap(),
            Self::Bind(p, s, f, v, r) => {
                let serialize = |value: &Option<Vec<u8>>, out: &mut BytesMut| {
                    Ok(match value {
                        Some(bytes) => {
                            out.extend_from_slice(bytes);
                            IsNull::No
                        }
                        None => IsNull::Yes,
                    })
                };
                let result = oracle::bind(
                    p,
                    s,
                    f.iter().copied(),
                    v,
                    serialize,
                    r.iter().copied(),
                    buf,
                );
                assert!(result.is_ok());
            }
            Self::Describe(t, n) => oracle::describe(t.as_byte(), n, buf).unwrap(),
            Self::Close(t, n) => oracle::close(t.as_byte(), n, buf).unwrap(),
            Self::Execute(p, m) => oracle::execute(p, *m as i32, buf).unwrap(),
            Self::Sync => oracle::sync(buf),
            Self::Flush => oracle::flush(buf),
            Self::Terminate => oracle::terminate(buf),
            Self::Password(p) => oracle::password_message(p, buf).unwrap(),
            Self::SaslInitial(m, d) => oracle::sasl_initial_response(m, d, buf).unwrap(),
            Self::SaslResponse(d) => oracle::sasl_response(d, buf).unwrap(),
            Self::CopyData(d) => oracle::CopyData::new(&d[..]).unwrap().write(buf),
            Self::CopyDone => oracle::copy_done(buf),
            Self::CopyFail(m) => oracle::copy_fail(m, buf).unwrap(),
        }
    }

    /// Decodes `frame` with this crate and compares with the spec.
    pub(crate) fn check(&self, frame: &Frame) {
        let message = FrontendMessage::decode(frame).expect("own encoding decodes");
        match (self, message) {
            (Self::Query(q), FrontendMessage::Query(got)) => assert_eq!(q.as_bytes(), got.sql),
            (Self::Parse(n, q, t), FrontendMessage::Parse(got)) => {
                assert_eq!((n.as_bytes(), q.as_bytes()), (got.name, got.query));
                assert_eq!(usize::from(got.param_type_count), t.len());
                assert!(got.param_types().eq(t.iter().copied()));
            }
            (Self::Bind(p, s, ..), FrontendMessage::Bind(got)) => {
                assert_eq!((p.as_bytes(), s.as_bytes()), (got.portal, got.statement))
            }
            (Self::Describe(t, n), FrontendMessage::Describe(got)) => {
                assert_eq!((*t, n.as_bytes()), (got.target, got.name))
            }
            (Self::Close(t, n), FrontendMessage::Close(got)) => {
                assert_eq!((*t, n.as_bytes()), (got.target, got.name))
            }
            (Self::Execute(p, m), FrontendMessage::Execute(got)) => {
                assert_eq!((p.as_bytes(), *m), (got.portal, got.max_rows))
            }
            (Self::Sync, FrontendMessage::Sync)
            | (Self::Flush, FrontendMessage::Flush)
            | (Self::Terminate, FrontendMessage::Terminate)
            | (Self::CopyDone, FrontendMessage::CopyDone) => {}
            (Self::Password(p), FrontendMessage::Password(body)) => {
                assert_eq!(parse_password(body), Ok(p.as_slice()))
            }
            (Self::SaslInitial(m, d), FrontendMessage::Password(body)) => {
                assert_eq!(
                    parse_sasl_initial_response(body),
                    Ok((m.as_str(), Some(d.as_slice())))
                )
            }
            (Self::SaslResponse(d), FrontendMessage::Password(body))
            | (Self::CopyData(d), FrontendMessage::CopyData(body)) => {
                assert_eq!(d.as_slice(), body)
            }
            (Self::CopyFail(m), FrontendMessage::CopyFail(got)) => assert_eq!(m.as_bytes(), got),
            (spec, other) => panic!("{spec:?} decoded as {other:?}"),
        }
    }
}

/// One untagged startup-phase packet.
#[derive(Debug, Clone)]
pub(crate) enum Startup {
    Params(Vec<(String, String)>),
    Ssl,
    GssEnc,
    Cancel(u32, Vec<u8>),
}

pub(crate) fn startup_spec() -> impl Strategy<Value = Startup> {
    prop_oneof![
        proptest::collection::vec(("[a-z_.]{1,12}", ctext()), 0..8).prop_map(Startup::Params),
        Just(Startup::Ssl),
        Just(Startup::GssEnc),
        (
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 4..=256)
        )
            .prop_map(|(p, k)| Startup::Cancel(p, k)),
    ]
}

pub(crate) fn check_startup(spec: &Startup, sizes: &[usize]) {
    let mut ours = BytesMut::new();
    let mut theirs = BytesMut::new();
    match spec {
        Startup::Params(params) => {
            let pairs: Vec<(&str, &str)> = params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            encode::startup_message(&mut ours, &pairs).unwrap();
            oracle::startup_message(pairs.iter().copied(), &mut theirs).unwrap();
        }
        Startup::Ssl => {
            encode::ssl_request(&mut ours);
            oracle::ssl_request(&mut theirs);
        }
        Startup::GssEnc => encode::gss_enc_request(&mut ours),
        Startup::Cancel(pid, key) => {
            encode::cancel_request(&mut ours, *pid, key).unwrap();
            if let Ok(key) = <[u8; 4]>::try_from(key.as_slice()) {
                oracle::cancel_request(*pid as i32, i32::from_be_bytes(key), &mut theirs);
            }
        }
    }
    if !theirs.is_empty() {
        assert_eq!(ours, theirs);
    }
    // Grow the buffer chunk by chunk: incomplete until the last byte arrives.
    let mut end = 0;
    for size in sizes.iter().cycle() {
        end = (end + size).min(ours.len());
        let decoded = decode_startup(&ours[..end]).unwrap();
        if end < ours.len() {
            assert_eq!(decoded, None);
            continue;
        }
        let (packet, used) = decoded.expect("complete");
        assert_eq!(used, ours.len());
        match (spec, packet) {
            (Startup::Params(params), StartupPacket::Startup(message)) => {
                assert_eq!(&message.params, params);
                assert_eq!((message.major, message.minor), (3, 0));
                for (key, _) in params {
                    let last = params
                        .iter()
                        .rev()
                        .find(|(k, _)| k == key)
                        .map(|(_, v)| v.as_str());
                    assert_eq!(message.get(key), last);
                }
            }
            (Startup::Ssl, StartupPacket::SslRequest)
            | (Startup::GssEnc, StartupPacket::GssEncRequest) => {}
            (Startup::Cancel(pid, key), StartupPacket::Cancel(cancel)) => {
                assert_eq!((*pid, key.as_slice()), (cancel.pid, &cancel.key[..]))
            }
            (spec, packet) => panic!("{spec:?} decoded as {packet:?}"),
        }
        break;
    }
}

/// A message that carries a statement name, with NUL-free byte names.
#[derive(Debug, Clone)]
pub(crate) enum Renamable {
    Parse(Vec<u8>, Vec<u8>, Vec<u32>),
    Bind(Vec<u8>, Vec<u8>, Vec<Option<Vec<u8>>>),
    Describe(Target, Vec<u8>),
    Close(Target, Vec<u8>),
}

pub(crate) fn renamable_spec() -> impl Strategy<Value = Renamable> {
    prop_oneof![
        (
            cbytes(),
            cbytes(),
            proptest::collection::vec(any::<u32>(), 0..4)
        )
            .prop_map(|(n, q, t)| Renamable::Parse(n, q, t)),
        (
            cbytes(),
            cbytes(),
            proptest::collection::vec(proptest::option::of(data()), 0..4)
        )
            .prop_map(|(p, s, v)| Renamable::Bind(p, s, v)),
        (target(), cbytes()).prop_map(|(t, n)| Renamable::Describe(t, n)),
        (target(), cbytes()).prop_map(|(t, n)| Renamable::Close(t, n)),
    ]
}

impl Renamable {
    /// Encodes the message with `name` in place of its statement name (if it has one).
    fn encode(&self, name: Option<&[u8]>, buf: &mut BytesMut) {
        match self {
            Self::Parse(n, q, t) => encode::parse(buf, name.unwrap_or(n), q, t).unwrap(),
            Self::Bind(p, s, v) => {
                let values: Vec<Option<&[u8]>> = v.iter().map(Option::as_deref).collect();
                encode::bind(buf, p, name.unwrap_or(s), &[1], &values, &[0, 1]).unwrap()
            }
            Self::Describe(Target::Statement, n) => {
                encode::describe_statement(buf, name.unwrap_or(n)).unwrap()
            }
            Self::Describe(Target::Portal, n) => encode::describe_portal(buf, n).unwrap(),
            Self::Close(Target::Statement, n) => {
                encode::close_statement(buf, name.unwrap_or(n)).unwrap()
            }
            Self::Close(Target::Portal, n) => encode::close_portal(buf, n).unwrap(),
        }
    }
}

pub(crate) fn check_rename(spec: &Renamable, new_name: &[u8]) {
    let mut original = BytesMut::new();
    spec.encode(None, &mut original);
    let frame = Frame::from_bytes(original.freeze()).unwrap();
    let is_portal = matches!(
        spec,
        Renamable::Describe(Target::Portal, _) | Renamable::Close(Target::Portal, _)
    );
    let mut appended = BytesMut::from(&b"prefix"[..]);
    let renamed = rename_statement(&frame, new_name);
    let into = rename_statement_into(&frame, new_name, &mut appended);
    if is_portal {
        assert!(renamed.is_err() && into.is_err());
        assert_eq!(&appended[..], b"prefix");
        return;
    }
    let renamed = renamed.unwrap();
    into.unwrap();
    assert_eq!(&appended[6..], &renamed[..]);
    // Exactly the bytes our encoder writes with the new name: nothing else moved.
    let mut expected = BytesMut::new();
    spec.encode(Some(new_name), &mut expected);
    assert_eq!(&renamed[..], &expected[..]);
    let renamed = Frame::from_bytes(renamed).unwrap();
    let name = match FrontendMessage::decode(&renamed).unwrap() {
        FrontendMessage::Parse(p) => p.name,
        FrontendMessage::Bind(b) => b.statement,
        FrontendMessage::Describe(d) => d.name,
        FrontendMessage::Close(c) => c.name,
        other => panic!("{other:?}"),
    };
    assert_eq!(name, new_name);
}
