//! Golden decode checks: captured messages decode to the expected values, and the encoders
//! reproduce the captured bytes exactly where the pooler may originate the same message.

use bytes::BytesMut;
use protocol::pg::backend::{Authentication, BackendMessage, TransactionStatus};
use protocol::pg::encode;
use protocol::pg::frontend::{FrontendMessage, Target, parse_sasl_initial_response};
use protocol::pg::{BackendTag, Severity};

use crate::captured::*;
use crate::{backend, split_whole, text};

#[test]
fn login_sequence_decodes() {
    let frames = backend(LOGIN_REPLY);
    let messages: Vec<_> = frames
        .iter()
        .map(|f| BackendMessage::decode(f).unwrap())
        .collect();
    assert_eq!(
        messages[0],
        BackendMessage::Authentication(Authentication::Ok)
    );
    let params: Vec<(&str, &str)> = messages
        .iter()
        .filter_map(|m| match m {
            BackendMessage::ParameterStatus { name, value } => Some((text(name), text(value))),
            _ => None,
        })
        .collect();
    assert_eq!(params.len(), 13);
    assert!(params.contains(&("client_encoding", "UTF8")));
    assert!(params.contains(&("server_version", "15.20 (Debian 15.20-0+deb12u1)")));
    assert!(matches!(messages[14], BackendMessage::BackendKeyData { key, .. } if key.len() == 4));
    assert_eq!(
        messages[15],
        BackendMessage::ReadyForQuery(TransactionStatus::Idle)
    );
    // Encoders reproduce the server's bytes exactly.
    let mut encoded = BytesMut::new();
    encode::authentication_ok(&mut encoded);
    for (name, value) in &params {
        encode::parameter_status(&mut encoded, name.as_bytes(), value.as_bytes()).unwrap();
    }
    let key_data = &frames[14].as_bytes()[..];
    encoded.extend_from_slice(key_data);
    encode::ready_for_query(&mut encoded, TransactionStatus::Idle);
    assert_eq!(&encoded[..], LOGIN_REPLY);
}

#[test]
fn simple_query_round_trip_decodes() {
    let client = split_whole(SIMPLE_QUERY);
    let Ok(FrontendMessage::Query(query)) = FrontendMessage::decode(&client[0]) else {
        panic!()
    };
    assert_eq!(
        text(query.sql),
        "SELECT 1 AS one, 'x'::text AS two, NULL::int AS three"
    );
    assert_eq!(
        FrontendMessage::decode(&client[1]),
        Ok(FrontendMessage::Terminate)
    );
    let mut encoded = BytesMut::new();
    encode::query(&mut encoded, query.sql).unwrap();
    encode::terminate(&mut encoded);
    assert_eq!(&encoded[..], SIMPLE_QUERY);

    let frames = backend(SIMPLE_QUERY_REPLY);
    let Ok(BackendMessage::RowDescription(rows)) = BackendMessage::decode(&frames[0]) else {
        panic!()
    };
    let fields: Vec<_> = rows.fields().collect();
    let names: Vec<&str> = fields.iter().map(|f| text(f.name)).collect();
    assert_eq!(names, ["one", "two", "three"]);
    assert_eq!(
        fields.iter().map(|f| f.type_oid).collect::<Vec<_>>(),
        [23, 25, 23]
    );
    let Ok(BackendMessage::DataRow(row)) = BackendMessage::decode(&frames[1]) else {
        panic!()
    };
    assert_eq!(
        row.values().collect::<Vec<_>>(),
        [Some(&b"1"[..]), Some(b"x"), None]
    );
    let mut encoded = BytesMut::new();
    encode::row_description(&mut encoded, &fields).unwrap();
    encode::data_row(&mut encoded, &row.values().collect::<Vec<_>>()).unwrap();
    encode::command_complete(&mut encoded, b"SELECT 1").unwrap();
    encode::ready_for_query(&mut encoded, TransactionStatus::Idle);
    assert_eq!(&encoded[..], SIMPLE_QUERY_REPLY);
}

#[test]
fn extended_pipeline_decodes_and_reencodes() {
    let frames = split_whole(EXTENDED);
    let messages: Vec<_> = frames
        .iter()
        .map(|f| FrontendMessage::decode(f).unwrap())
        .collect();
    let FrontendMessage::Parse(parse) = messages[0] else {
        panic!()
    };
    assert_eq!(
        (parse.name, text(parse.query)),
        (&b"s1"[..], "SELECT $1::int + 1 AS n")
    );
    assert_eq!(parse.param_types().collect::<Vec<_>>(), [23]);
    let FrontendMessage::Bind(bind) = messages[2] else {
        panic!()
    };
    assert_eq!((bind.portal, bind.statement), (&b""[..], &b"s1"[..]));
    assert!(matches!(messages[1], FrontendMessage::Describe(d) if d.target == Target::Statement));
    assert!(matches!(messages[3], FrontendMessage::Describe(d) if d.target == Target::Portal));
    assert!(matches!(messages[4], FrontendMessage::Execute(e) if e.max_rows == 0));
    assert!(matches!(messages[5], FrontendMessage::Close(c) if c.name == b"s1"));
    assert_eq!(messages[6], FrontendMessage::Sync);

    let mut encoded = BytesMut::new();
    encode::parse(&mut encoded, b"s1", parse.query, &[23]).unwrap();
    encode::describe_statement(&mut encoded, b"s1").unwrap();
    encode::bind(&mut encoded, b"", b"s1", &[0], &[Some(b"41")], &[0]).unwrap();
    encode::describe_portal(&mut encoded, b"").unwrap();
    encode::execute(&mut encoded, b"", 0).unwrap();
    encode::close_statement(&mut encoded, b"s1").unwrap();
    encode::sync(&mut encoded);
    assert_eq!(&encoded[..], EXTENDED);

    let tags: Vec<_> = backend(EXTENDED_REPLY)
        .iter()
        .map(|f| f.backend_tag().unwrap())
        .collect();
    use BackendTag::*;
    assert_eq!(
        tags,
        [
            ParseComplete,
            ParameterDescription,
            RowDescription,
            BindComplete,
            RowDescription,
            DataRow,
            CommandComplete,
            CloseComplete,
            ReadyForQuery,
        ]
    );
    let reply = backend(EXTENDED_REPLY);
    let Ok(BackendMessage::ParameterDescription(params)) = BackendMessage::decode(&reply[1]) else {
        panic!()
    };
    assert_eq!(params.types().collect::<Vec<_>>(), [23]);
    let mut synthesized = BytesMut::new();
    encode::parse_complete(&mut synthesized);
    encode::bind_complete(&mut synthesized);
    encode::close_complete(&mut synthesized);
    let expected: Vec<u8> = [&reply[0], &reply[3], &reply[7]]
        .iter()
        .flat_map(|f| f.as_bytes().to_vec())
        .collect();
    assert_eq!(&synthesized[..], &expected[..]);
}

#[test]
fn portal_with_row_limit_suspends() {
    let client = split_whole(PORTAL);
    assert!(matches!(
        FrontendMessage::decode(&client[2]),
        Ok(FrontendMessage::Execute(e)) if e.portal == b"p1" && e.max_rows == 1
    ));
    let reply = backend(PORTAL_REPLY);
    assert_eq!(
        BackendMessage::decode(&reply[3]),
        Ok(BackendMessage::PortalSuspended)
    );
    let mut encoded = BytesMut::new();
    encode::portal_suspended(&mut encoded);
    assert_eq!(&encoded[..], &reply[3].as_bytes()[..]);
}

#[test]
fn errors_and_notices_decode() {
    let error = backend(ERROR_REPLY);
    let Ok(BackendMessage::ErrorResponse(fields)) = BackendMessage::decode(&error[0]) else {
        panic!()
    };
    assert_eq!(fields.severity(), Some(&b"ERROR"[..]));
    assert_eq!(fields.code(), Some(&b"42601"[..]));
    assert_eq!(
        fields.message(),
        Some(&b"syntax error at or near \"SELEC\""[..])
    );
    assert_eq!(fields.get(b'P'), Some(&b"1"[..]));
    assert_eq!(fields.into_iter().count(), 8);

    let fatal = backend(FATAL_REPLY);
    let Ok(BackendMessage::ErrorResponse(fields)) = BackendMessage::decode(&fatal[0]) else {
        panic!()
    };
    assert_eq!(fields.parsed_severity(), Some(Severity::Fatal));
    assert_eq!(fields.code(), Some(&b"28000"[..]));

    let notice = backend(NOTICE_REPLY);
    let Ok(BackendMessage::NoticeResponse(fields)) = BackendMessage::decode(&notice[0]) else {
        panic!()
    };
    assert_eq!(
        (fields.code(), fields.message()),
        (Some(&b"00000"[..]), Some(&b"hello 42"[..]))
    );
    assert_eq!(
        BackendMessage::decode(&notice[1]),
        Ok(BackendMessage::CommandComplete { tag: b"DO" })
    );
}

#[test]
fn notification_decodes_and_reencodes() {
    let frames = backend(NOTIFY_REPLY);
    let Ok(BackendMessage::NotificationResponse {
        pid,
        channel,
        payload,
    }) = BackendMessage::decode(&frames[2])
    else {
        panic!()
    };
    assert_eq!((channel, payload), (&b"chan"[..], &b"payload-1"[..]));
    let mut encoded = BytesMut::new();
    encode::notification_response(&mut encoded, pid, channel, payload).unwrap();
    assert_eq!(&encoded[..], &frames[2].as_bytes()[..]);
}

#[test]
fn copy_streams_decode() {
    let out = backend(COPY_OUT_REPLY);
    let Ok(BackendMessage::CopyOutResponse(copy)) = BackendMessage::decode(&out[0]) else {
        panic!()
    };
    assert_eq!(
        (copy.format, copy.column_formats().collect::<Vec<_>>()),
        (0, vec![0, 0])
    );
    assert_eq!(
        BackendMessage::decode(&out[1]),
        Ok(BackendMessage::CopyData(b"1\tr1\n"))
    );
    assert_eq!(
        BackendMessage::decode(&out[3]),
        Ok(BackendMessage::CopyDone)
    );
    assert_eq!(
        BackendMessage::decode(&out[4]),
        Ok(BackendMessage::CommandComplete { tag: b"COPY 2" })
    );
    let copy_in = backend(COPY_IN_REPLY);
    assert!(matches!(
        BackendMessage::decode(&copy_in[0]),
        Ok(BackendMessage::CopyInResponse(c)) if c.column_count() == 2
    ));
    let data = split_whole(COPY_IN_DATA);
    assert_eq!(
        FrontendMessage::decode(&data[1]),
        Ok(FrontendMessage::CopyData(b"2\ttwo\n"))
    );
    assert_eq!(
        FrontendMessage::decode(&data[2]),
        Ok(FrontendMessage::CopyDone)
    );
    let mut encoded = BytesMut::new();
    encode::copy_data(&mut encoded, b"1\tone\n").unwrap();
    encode::copy_data(&mut encoded, b"2\ttwo\n").unwrap();
    encode::copy_done(&mut encoded);
    assert_eq!(&encoded[..], COPY_IN_DATA);
    let both = backend(COPY_BOTH_REPLY);
    assert!(matches!(
        BackendMessage::decode(&both[0]),
        Ok(BackendMessage::CopyBothResponse(c)) if c.format == 0 && c.column_count() == 0
    ));
    let empty = backend(EMPTY_QUERY_REPLY);
    assert_eq!(
        BackendMessage::decode(&empty[0]),
        Ok(BackendMessage::EmptyQueryResponse)
    );
    let mut encoded = BytesMut::new();
    encode::empty_query_response(&mut encoded);
    encode::ready_for_query(&mut encoded, TransactionStatus::Idle);
    assert_eq!(&encoded[..], EMPTY_QUERY_REPLY);
}

#[test]
fn scram_exchange_decodes_and_reencodes() {
    let first = backend(SCRAM_SERVER_FIRST);
    let Ok(BackendMessage::Authentication(Authentication::Sasl { mechanisms })) =
        BackendMessage::decode(&first[0])
    else {
        panic!()
    };
    assert_eq!(mechanisms.collect::<Vec<_>>(), [&b"SCRAM-SHA-256"[..]]);
    let mut encoded = BytesMut::new();
    encode::authentication_sasl(&mut encoded, &["SCRAM-SHA-256"]).unwrap();
    assert_eq!(&encoded[..], SCRAM_SERVER_FIRST);

    let client_first = split_whole(SCRAM_CLIENT_FIRST);
    let Ok(FrontendMessage::Password(body)) = FrontendMessage::decode(&client_first[0]) else {
        panic!()
    };
    let (mechanism, data) = parse_sasl_initial_response(body).unwrap();
    let data = data.expect("client-first-message");
    assert_eq!(mechanism, "SCRAM-SHA-256");
    assert!(data.starts_with(b"n,,n=,r="));
    let mut encoded = BytesMut::new();
    encode::sasl_initial_response(&mut encoded, mechanism, data).unwrap();
    assert_eq!(&encoded[..], SCRAM_CLIENT_FIRST);

    let server_continue = backend(SCRAM_SERVER_CONTINUE);
    let Ok(BackendMessage::Authentication(Authentication::SaslContinue(server_first))) =
        BackendMessage::decode(&server_continue[0])
    else {
        panic!()
    };
    assert!(server_first.ends_with(b",i=4096"));
    let mut encoded = BytesMut::new();
    encode::authentication_sasl_continue(&mut encoded, server_first).unwrap();
    assert_eq!(&encoded[..], SCRAM_SERVER_CONTINUE);

    let client_final = split_whole(SCRAM_CLIENT_FINAL);
    let Ok(FrontendMessage::Password(final_message)) = FrontendMessage::decode(&client_final[0])
    else {
        panic!()
    };
    assert!(final_message.starts_with(b"c=biws,r="));
    let mut encoded = BytesMut::new();
    encode::sasl_response(&mut encoded, final_message).unwrap();
    assert_eq!(&encoded[..], SCRAM_CLIENT_FINAL);

    let last = backend(SCRAM_SERVER_FINAL);
    let Ok(BackendMessage::Authentication(Authentication::SaslFinal(server_final))) =
        BackendMessage::decode(&last[0])
    else {
        panic!()
    };
    assert!(server_final.starts_with(b"v="));
    let mut encoded = BytesMut::new();
    encode::authentication_sasl_final(&mut encoded, server_final).unwrap();
    assert_eq!(&encoded[..], &last[0].as_bytes()[..]);
    assert_eq!(
        BackendMessage::decode(&last[1]),
        Ok(BackendMessage::Authentication(Authentication::Ok))
    );
}

#[test]
fn function_call_decodes() {
    let client = split_whole(FUNCTION_CALL);
    assert!(
        matches!(FrontendMessage::decode(&client[0]), Ok(FrontendMessage::FunctionCall(b)) if b.len() == 10)
    );
    assert_eq!(
        FrontendMessage::decode(&client[1]),
        Ok(FrontendMessage::Flush)
    );
    let mut flush = BytesMut::new();
    encode::flush(&mut flush);
    assert_eq!(&flush[..], &client[1].as_bytes()[..]);
    let reply = backend(FUNCTION_CALL_REPLY);
    let Ok(BackendMessage::FunctionCallResponse(Some(pid))) = BackendMessage::decode(&reply[0])
    else {
        panic!()
    };
    assert!(pid.iter().all(u8::is_ascii_digit));
}
