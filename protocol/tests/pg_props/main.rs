//! Property tests: every encoder round-trips through random chunking and the decoders, backend
//! decoding agrees with postgres-protocol, and statement renaming changes only the name.

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::Message as Oracle;
use proptest::prelude::*;
use protocol::pg::backend::{Authentication, BackendMessage, FieldDescription, TransactionStatus};
use protocol::pg::encode::{self, ErrorResponse};
use protocol::pg::{DEFAULT_MAX_PACKET, Frame, FrameSplitter, Severity, scan_frames};

// ---- strategies --------------------------------------------------------------------------

/// Bytes without NUL, for string fields.
fn cbytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(1u8..=255, 0..24)
}

/// UTF-8 text without NUL (postgres-protocol insists on UTF-8 for names and tags).
fn ctext() -> impl Strategy<Value = String> {
    "[^\u{0}]{0,16}"
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..48)
}

fn chunks() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(1usize..40, 1..16)
}

fn status() -> impl Strategy<Value = TransactionStatus> {
    prop_oneof![
        Just(TransactionStatus::Idle),
        Just(TransactionStatus::InTransaction),
        Just(TransactionStatus::Failed),
    ]
}

fn severity() -> impl Strategy<Value = Severity> {
    prop_oneof![
        Just(Severity::Error),
        Just(Severity::Fatal),
        Just(Severity::Panic),
        Just(Severity::Warning),
        Just(Severity::Notice),
        Just(Severity::Debug),
        Just(Severity::Info),
        Just(Severity::Log),
    ]
}

/// An owned [`FieldDescription`].
#[derive(Debug, Clone)]
struct Field(String, u32, i16, u32, i16, i32, i16);

impl Field {
    fn view(&self) -> FieldDescription<'_> {
        FieldDescription {
            name: self.0.as_bytes(),
            table_oid: self.1,
            column_id: self.2,
            type_oid: self.3,
            type_size: self.4,
            type_modifier: self.5,
            format: self.6,
        }
    }
}

/// One call of a backend-side encoder.
#[derive(Debug, Clone)]
enum Backend {
    AuthOk,
    AuthCleartext,
    AuthMd5([u8; 4]),
    AuthSasl(Vec<String>),
    AuthSaslContinue(Vec<u8>),
    AuthSaslFinal(Vec<u8>),
    ParameterStatus(String, String),
    KeyData(u32, Vec<u8>),
    ReadyForQuery(TransactionStatus),
    Error(
        bool,
        Severity,
        String,
        String,
        Option<String>,
        Option<String>,
    ),
    RowDescription(Vec<Field>),
    RowDescriptionText(Vec<(String, u32)>),
    DataRow(Vec<Option<Vec<u8>>>),
    CommandComplete(String),
    Empty(u8),
    Negotiate(u16, Vec<String>),
    Notification(u32, String, String),
}

fn backend_spec() -> impl Strategy<Value = Backend> {
    let field = (
        ctext(),
        any::<u32>(),
        any::<i16>(),
        any::<u32>(),
        any::<i16>(),
        any::<i32>(),
        0i16..2,
    )
        .prop_map(|(n, t, c, ty, s, m, f)| Field(n, t, c, ty, s, m, f));
    prop_oneof![
        Just(Backend::AuthOk),
        Just(Backend::AuthCleartext),
        any::<[u8; 4]>().prop_map(Backend::AuthMd5),
        proptest::collection::vec("[A-Z0-9-]{1,20}", 0..4).prop_map(Backend::AuthSasl),
        data().prop_map(Backend::AuthSaslContinue),
        data().prop_map(Backend::AuthSaslFinal),
        (ctext(), ctext()).prop_map(|(n, v)| Backend::ParameterStatus(n, v)),
        (
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 4..=256)
        )
            .prop_map(|(p, k)| Backend::KeyData(p, k)),
        status().prop_map(Backend::ReadyForQuery),
        (
            any::<bool>(),
            severity(),
            "[0-9A-Z]{5}",
            ctext(),
            proptest::option::of(ctext()),
            proptest::option::of(ctext())
        )
            .prop_map(|(n, s, c, m, d, h)| Backend::Error(n, s, c, m, d, h)),
        proptest::collection::vec(field, 0..6).prop_map(Backend::RowDescription),
        proptest::collection::vec((ctext(), any::<u32>()), 0..6)
            .prop_map(Backend::RowDescriptionText),
        proptest::collection::vec(proptest::option::of(data()), 0..8).prop_map(Backend::DataRow),
        ctext().prop_map(Backend::CommandComplete),
        proptest::sample::select(b"I123ns".to_vec()).prop_map(Backend::Empty),
        (
            any::<u16>(),
            proptest::collection::vec("_pq_\\.[a-z_]{1,12}", 0..4)
        )
            .prop_map(|(m, o)| Backend::Negotiate(m, o)),
        (any::<u32>(), ctext(), ctext()).prop_map(|(p, c, m)| Backend::Notification(p, c, m)),
    ]
}

impl Backend {
    fn encode(&self, buf: &mut BytesMut) {
        match self {
            Self::AuthOk => encode::authentication_ok(buf),
            Self::AuthCleartext => encode::authentication_cleartext_password(buf),
            Self::AuthMd5(salt) => encode::authentication_md5_password(buf, *salt),
            Self::AuthSasl(m) => {
                let names: Vec<&str> = m.iter().map(String::as_str).collect();
                encode::authentication_sasl(buf, &names).unwrap()
            }
            Self::AuthSaslContinue(d) => encode::authentication_sasl_continue(buf, d).unwrap(),
            Self::AuthSaslFinal(d) => encode::authentication_sasl_final(buf, d).unwrap(),
            Self::ParameterStatus(n, v) => {
                encode::parameter_status(buf, n.as_bytes(), v.as_bytes()).unwrap()
            }
            Self::KeyData(p, k) => encode::backend_key_data(buf, *p, k).unwrap(),
            Self::ReadyForQuery(s) => encode::ready_for_query(buf, *s),
            Self::Error(is_notice, severity, code, message, detail, hint) => {
                let error = ErrorResponse {
                    severity: *severity,
                    sqlstate: code,
                    message,
                    detail: detail.as_deref(),
                    hint: hint.as_deref(),
                };
                if *is_notice {
                    encode::notice_response(buf, &error).unwrap()
                } else {
                    encode::error_response(buf, &error).unwrap()
                }
            }
            Self::RowDescription(fields) => {
                let views: Vec<_> = fields.iter().map(Field::view).collect();
                encode::row_description(buf, &views).unwrap()
            }
            Self::RowDescriptionText(columns) => {
                let cols: Vec<(&str, u32)> =
                    columns.iter().map(|(n, t)| (n.as_str(), *t)).collect();
                encode::row_description_text(buf, &cols).unwrap()
            }
            Self::DataRow(values) => {
                let views: Vec<Option<&[u8]>> = values.iter().map(Option::as_deref).collect();
                encode::data_row(buf, &views).unwrap()
            }
            Self::CommandComplete(tag) => encode::command_complete(buf, tag.as_bytes()).unwrap(),
            Self::Empty(b'I') => encode::empty_query_response(buf),
            Self::Empty(b'1') => encode::parse_complete(buf),
            Self::Empty(b'2') => encode::bind_complete(buf),
            Self::Empty(b'3') => encode::close_complete(buf),
            Self::Empty(b'n') => encode::no_data(buf),
            Self::Empty(_) => encode::portal_suspended(buf),
            Self::Negotiate(minor, options) => {
                let names: Vec<&str> = options.iter().map(String::as_str).collect();
                encode::negotiate_protocol_version(buf, *minor, &names).unwrap()
            }
            Self::Notification(p, c, m) => {
                encode::notification_response(buf, *p, c.as_bytes(), m.as_bytes()).unwrap()
            }
        }
    }

    /// Decodes `frame` with this crate and compares with the spec.
    fn check(&self, frame: &Frame) {
        let message = BackendMessage::decode(frame).expect("own encoding decodes");
        match (self, message) {
            (Self::AuthOk, BackendMessage::Authentication(Authentication::Ok))
            | (
                Self::AuthCleartext,
                BackendMessage::Authentication(Authentication::CleartextPassword),
            ) => {}
            (
                Self::AuthMd5(s),
                BackendMessage::Authentication(Authentication::Md5Password { salt }),
            ) => {
                assert_eq!(*s, salt)
            }
            (
                Self::AuthSasl(m),
                BackendMessage::Authentication(Authentication::Sasl { mechanisms }),
            ) => {
                assert!(mechanisms.eq(m.iter().map(String::as_bytes)))
            }
            (
                Self::AuthSaslContinue(d),
                BackendMessage::Authentication(Authentication::SaslContinue(got)),
            )
            | (
                Self::AuthSaslFinal(d),
                BackendMessage::Authentication(Authentication::SaslFinal(got)),
            ) => {
                assert_eq!(d.as_slice(), got)
            }
            (Self::ParameterStatus(n, v), BackendMessage::ParameterStatus { name, value }) => {
                assert_eq!((n.as_bytes(), v.as_bytes()), (name, value))
            }
            (Self::KeyData(p, k), BackendMessage::BackendKeyData { pid, key }) => {
                assert_eq!((*p, k.as_slice()), (pid, key))
            }
            (Self::ReadyForQuery(s), BackendMessage::ReadyForQuery(got)) => assert_eq!(*s, got),
            (Self::Error(is_notice, severity, code, message, detail, hint), decoded) => {
                let fields = match decoded {
                    BackendMessage::ErrorResponse(f) if !is_notice => f,
                    BackendMessage::NoticeResponse(f) if *is_notice => f,
                    other => panic!("{other:?}"),
                };
                assert_eq!(fields.parsed_severity(), Some(*severity));
                assert_eq!(fields.get(b'S'), Some(severity.as_str().as_bytes()));
                assert_eq!(fields.code(), Some(code.as_bytes()));
                assert_eq!(fields.message(), Some(message.as_bytes()));
                assert_eq!(fields.detail(), detail.as_deref().map(str::as_bytes));
                assert_eq!(fields.hint(), hint.as_deref().map(str::as_bytes));
            }
            (Self::RowDescription(fields), BackendMessage::RowDescription(rows)) => {
                assert!(rows.fields().eq(fields.iter().map(Field::view)));
            }
            (Self::RowDescriptionText(columns), BackendMessage::RowDescription(rows)) => {
                assert_eq!(usize::from(rows.field_count()), columns.len());
                for (field, (name, type_oid)) in rows.fields().zip(columns) {
                    assert_eq!((field.name, field.type_oid), (name.as_bytes(), *type_oid));
                    assert_eq!((field.format, field.type_modifier), (0, -1));
                }
            }
            (Self::DataRow(values), BackendMessage::DataRow(row)) => {
                assert!(row.values().eq(values.iter().map(Option::as_deref)));
            }
            (Self::CommandComplete(t), BackendMessage::CommandComplete { tag }) => {
                assert_eq!(t.as_bytes(), tag)
            }
            (Self::Empty(tag), message) => assert_eq!(message.tag().as_byte(), *tag),
            (
                Self::Negotiate(minor, names),
                BackendMessage::NegotiateProtocolVersion { newest, options },
            ) => {
                assert_eq!((newest.major, newest.minor), (3, *minor));
                assert!(options.eq(names.iter().map(String::as_bytes)));
            }
            (
                Self::Notification(p, c, m),
                BackendMessage::NotificationResponse {
                    pid,
                    channel,
                    payload,
                },
            ) => {
                assert_eq!((*p, c.as_bytes(), m.as_bytes()), (pid, channel, payload))
            }
            (spec, other) => panic!("{spec:?} decoded as {other:?}"),
        }
    }

    /// Parses the same bytes with postgres-protocol and compares with the spec.
    fn cross_check(&self, frame: &Frame) {
        let mut buf = BytesMut::from(&frame.as_bytes()[..]);
        let parsed = Oracle::parse(&mut buf);
        match self {
            // postgres-protocol knows neither NegotiateProtocolVersion nor keys other than 4 bytes.
            Self::Negotiate(..) => return assert!(parsed.is_err()),
            Self::KeyData(_, key) if key.len() != 4 => return assert!(parsed.is_err()),
            _ => {}
        }
        let parsed = parsed.expect("postgres-protocol parses").expect("complete");
        assert!(buf.is_empty());
        match (self, parsed) {
            (Self::AuthOk, Oracle::AuthenticationOk)
            | (Self::AuthCleartext, Oracle::AuthenticationCleartextPassword)
            | (Self::Empty(b'I'), Oracle::EmptyQueryResponse)
            | (Self::Empty(b'1'), Oracle::ParseComplete)
            | (Self::Empty(b'2'), Oracle::BindComplete)
            | (Self::Empty(b'3'), Oracle::CloseComplete)
            | (Self::Empty(b'n'), Oracle::NoData)
            | (Self::Empty(b's'), Oracle::PortalSuspended) => {}
            (Self::AuthMd5(s), Oracle::AuthenticationMd5Password(body)) => {
                assert_eq!(*s, body.salt())
            }
            (Self::AuthSasl(m), Oracle::AuthenticationSasl(body)) => {
                let got: Vec<&str> = body.mechanisms().collect().unwrap();
                assert_eq!(got, m.iter().map(String::as_str).collect::<Vec<_>>());
            }
            (Self::AuthSaslContinue(d), Oracle::AuthenticationSaslContinue(body)) => {
                assert_eq!(d.as_slice(), body.data())
            }
            (Self::AuthSaslFinal(d), Oracle::AuthenticationSaslFinal(body)) => {
                assert_eq!(d.as_slice(), body.data())
            }
            (Self::ParameterStatus(n, v), Oracle::ParameterStatus(body)) => {
                assert_eq!(
                    (n.as_str(), v.as_str()),
                    (body.name().unwrap(), body.value().unwrap())
                )
            }
            (Self::KeyData(p, k), Oracle::BackendKeyData(body)) => {
                assert_eq!(*p as i32, body.process_id());
                assert_eq!(k.as_slice(), body.secret_key().to_be_bytes());
            }
            (Self::ReadyForQuery(s), Oracle::ReadyForQuery(body)) => {
                assert_eq!(s.as_byte(), body.status())
            }
            (Self::Error(false, ..), Oracle::ErrorResponse(body)) => {
                self.check_oracle_fields(body.fields())
            }
            (Self::Error(true, ..), Oracle::NoticeResponse(body)) => {
                self.check_oracle_fields(body.fields())
            }
            (
                Self::RowDescription(_) | Self::RowDescriptionText(_),
                Oracle::RowDescription(body),
            ) => {
                let ours = BackendMessage::decode(frame).unwrap();
                let BackendMessage::RowDescription(rows) = ours else {
                    panic!()
                };
                let theirs: Vec<_> = body.fields().collect().unwrap();
                assert_eq!(theirs.len(), rows.fields().count());
                for (a, b) in rows.fields().zip(theirs) {
                    assert_eq!(a.name, b.name().as_bytes());
                    assert_eq!(
                        (a.table_oid, a.column_id, a.type_oid),
                        (b.table_oid(), b.column_id(), b.type_oid())
                    );
                    assert_eq!(
                        (a.type_size, a.type_modifier, a.format),
                        (b.type_size(), b.type_modifier(), b.format())
                    );
                }
            }
            (Self::DataRow(values), Oracle::DataRow(body)) => {
                let ranges: Vec<_> = body.ranges().collect().unwrap();
                let theirs: Vec<Option<&[u8]>> = ranges
                    .into_iter()
                    .map(|r| r.map(|r| &body.buffer()[r]))
                    .collect();
                assert_eq!(
                    theirs,
                    values.iter().map(Option::as_deref).collect::<Vec<_>>()
                );
            }
            (Self::CommandComplete(t), Oracle::CommandComplete(body)) => {
                assert_eq!(t.as_str(), body.tag().unwrap())
            }
            (Self::Notification(p, c, m), Oracle::NotificationResponse(body)) => {
                assert_eq!(*p as i32, body.process_id());
                assert_eq!(
                    (c.as_str(), m.as_str()),
                    (body.channel().unwrap(), body.message().unwrap())
                );
            }
            (spec, _) => panic!("postgres-protocol disagrees on {spec:?}"),
        }
    }

    fn check_oracle_fields(&self, fields: postgres_protocol::message::backend::ErrorFields<'_>) {
        let Self::Error(_, severity, code, message, detail, hint) = self else {
            unreachable!()
        };
        let got: Vec<(u8, Vec<u8>)> = fields
            .map(|f| Ok((f.type_(), f.value_bytes().to_vec())))
            .collect()
            .unwrap();
        let mut expected = vec![
            (b'S', severity.as_str().as_bytes().to_vec()),
            (b'V', severity.as_str().as_bytes().to_vec()),
            (b'C', code.as_bytes().to_vec()),
            (b'M', message.as_bytes().to_vec()),
        ];
        expected.extend(detail.iter().map(|d| (b'D', d.as_bytes().to_vec())));
        expected.extend(hint.iter().map(|h| (b'H', h.as_bytes().to_vec())));
        assert_eq!(got, expected);
    }
}

/// Feeds `stream` through a splitter in the given (cycled) chunk sizes.
fn split_chunked(stream: &[u8], sizes: &[usize]) -> Vec<Frame> {
    let splitter = FrameSplitter::new(DEFAULT_MAX_PACKET);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut rest = stream;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at((*size).min(rest.len()));
        buf.extend_from_slice(chunk);
        rest = tail;
        while let Some(frame) = splitter.split(&mut buf).unwrap() {
            frames.push(frame);
        }
    }
    assert!(buf.is_empty());
    frames
}

mod frontend_props;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn backend_encoders_round_trip_under_chunking(
        specs in proptest::collection::vec(backend_spec(), 1..10),
        sizes in chunks(),
    ) {
        let mut stream = BytesMut::new();
        for spec in &specs {
            spec.encode(&mut stream);
        }
        let frames = split_chunked(&stream, &sizes);
        prop_assert_eq!(frames.len(), specs.len());
        let scanned: Vec<_> = scan_frames(&stream, DEFAULT_MAX_PACKET).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(scanned.len(), specs.len());
        for (spec, frame) in specs.iter().zip(&frames) {
            spec.check(frame);
            spec.cross_check(frame);
        }
    }

    #[test]
    fn frontend_encoders_round_trip_under_chunking(
        specs in proptest::collection::vec(frontend_props::frontend_spec(), 1..10),
        sizes in chunks(),
    ) {
        let mut stream = BytesMut::new();
        let mut oracle = BytesMut::new();
        for spec in &specs {
            spec.encode(&mut stream);
            spec.encode_with_postgres_protocol(&mut oracle);
        }
        prop_assert_eq!(&stream[..], &oracle[..]);
        let frames = split_chunked(&stream, &sizes);
        prop_assert_eq!(frames.len(), specs.len());
        for (spec, frame) in specs.iter().zip(&frames) {
            spec.check(frame);
        }
    }

    #[test]
    fn startup_encoders_round_trip(spec in frontend_props::startup_spec(), sizes in chunks()) {
        frontend_props::check_startup(&spec, &sizes);
    }

    #[test]
    fn rename_changes_only_the_name(
        message in frontend_props::renamable_spec(),
        new_name in cbytes(),
    ) {
        frontend_props::check_rename(&message, &new_name);
    }
}
