//! Bounded, deterministic fuzzing of every pg decoder that stable CI can run.
//!
//! Each test feeds random bytes and mutated valid messages (bit flips, truncations,
//! extensions, corrupted length fields and tags) to one decoder, asserting that it never
//! panics and that every `Ok` is internally consistent (re-encodes to the same bytes,
//! consumed lengths fit, iterators cover the body). `FUZZ_ITERATIONS` (default 20000 per
//! decoder) and `FUZZ_SEED` (default fixed) control the run; a failure prints both along
//! with the offending input. The libfuzzer targets in `fuzz/` call the same decoders.

#[path = "../pg_golden/captured.rs"]
mod captured;
mod harness;

use bytes::BytesMut;
use harness::{
    Rng, backend_corpus, first_frame, frontend_corpus, fuzz, mutate, startup_corpus, tagged_input,
};
use protocol::pg::backend::{Authentication, BackendMessage, ErrorFields, ready_for_query_status};
use protocol::pg::encode;
use protocol::pg::frontend::{
    FrontendMessage, Target, parse_password, parse_sasl_initial_response,
};
use protocol::pg::{
    DEFAULT_MAX_PACKET, Frame, FrameSplitter, HEADER_LEN, MAX_STARTUP_PACKET_LEN, StartupPacket,
    decode_startup, peek_header, rename_statement, rename_statement_into, scan_frames,
};

// ---- framing -----------------------------------------------------------------------------

#[test]
fn fuzz_peek_header() {
    let corpus = backend_corpus();
    fuzz(
        "peek_header",
        |rng| tagged_input(rng, &corpus),
        |rng, input| {
            let max = *rng.pick(&[HEADER_LEN, 16, 1000, DEFAULT_MAX_PACKET]);
            match peek_header(input, max) {
                Ok(Some(header)) => {
                    assert!(header.len >= HEADER_LEN && header.len <= max);
                    assert_eq!(header.body_len() + HEADER_LEN, header.len);
                }
                Ok(None) => assert!(input.len() < HEADER_LEN),
                Err(_) => assert!(input.len() >= HEADER_LEN),
            }
        },
    );
}

#[test]
fn fuzz_frame_splitter_and_scanner() {
    let corpus = backend_corpus();
    let make = |rng: &mut Rng| {
        let mut stream = Vec::new();
        for _ in 0..=rng.below(5) {
            let frame = rng.pick(&corpus).clone();
            stream.extend(if rng.below(3) == 0 {
                mutate(rng, &frame)
            } else {
                frame
            });
        }
        stream
    };
    fuzz("frame_splitter", make, |rng, input| {
        let max = *rng.pick(&[64, 1000, DEFAULT_MAX_PACKET]);
        let splitter = FrameSplitter::new(max);
        let mut buf = BytesMut::new();
        let mut frames: Vec<Frame> = Vec::new();
        let mut fed = 0;
        let mut failed = false;
        while fed < input.len() && !failed {
            let take = (1 + rng.below(24)).min(input.len() - fed);
            buf.extend_from_slice(&input[fed..fed + take]);
            fed += take;
            loop {
                match splitter.split(&mut buf) {
                    Ok(Some(frame)) => frames.push(frame),
                    Ok(None) => break,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
        }
        let consumed: usize = frames.iter().map(Frame::wire_len).sum();
        assert_eq!(consumed + buf.len(), fed);
        let joined: Vec<u8> = frames.iter().flat_map(|f| f.as_bytes().to_vec()).collect();
        assert_eq!(&joined[..], &input[..consumed]);
        for frame in &frames {
            assert!(frame.wire_len() >= HEADER_LEN && frame.wire_len() <= max);
            assert_eq!(
                Frame::from_bytes(frame.as_bytes().clone()).as_ref(),
                Ok(frame)
            );
        }
        // The in-place scanner sees the same frames and stops at the same place.
        let mut scanner = scan_frames(input, max);
        let headers: Vec<_> = scanner
            .by_ref()
            .take_while(Result::is_ok)
            .map(Result::unwrap)
            .collect();
        assert_eq!(headers.len(), frames.len());
        assert_eq!(scanner.complete_len(), consumed);
        for ((header, offset), frame) in headers.iter().zip(&frames) {
            assert_eq!(scanner.frame_bytes(*header, *offset), &frame.as_bytes()[..]);
        }
    });
}

// ---- startup -----------------------------------------------------------------------------

#[test]
fn fuzz_decode_startup() {
    let corpus = startup_corpus();
    let make = |rng: &mut Rng| {
        if rng.below(4) == 0 {
            return rng.bytes(24);
        }
        let valid = rng.pick(&corpus).to_vec();
        mutate(rng, &valid)
    };
    fuzz("decode_startup", make, |_, input| {
        match decode_startup(input) {
            Ok(Some((packet, used))) => {
                assert!((8..=MAX_STARTUP_PACKET_LEN + 4).contains(&used) && used <= input.len());
                assert_eq!(
                    decode_startup(&input[..used]),
                    Ok(Some((packet.clone(), used)))
                );
                if let StartupPacket::Startup(message) = &packet {
                    assert_eq!(message.major, 3);
                    let pairs: Vec<(&str, &str)> = message
                        .params
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    let mut again = BytesMut::new();
                    if message.minor == 0 && encode::startup_message(&mut again, &pairs).is_ok() {
                        assert_eq!(&again[..], &input[..used]);
                    }
                }
            }
            Ok(None) => {
                if let Some(field) = input.first_chunk::<4>() {
                    assert!(input.len() < u32::from_be_bytes(*field) as usize);
                }
            }
            Err(_) => {}
        }
    });
}

// ---- messages ----------------------------------------------------------------------------

/// Re-encodes a decoded client message where an encoder exists; must give the same bytes.
fn reencode_frontend(message: &FrontendMessage<'_>) -> Option<BytesMut> {
    let mut buf = BytesMut::new();
    let result = match message {
        FrontendMessage::Query(q) => encode::query(&mut buf, q.sql),
        FrontendMessage::Parse(p) => encode::parse(
            &mut buf,
            p.name,
            p.query,
            &p.param_types().collect::<Vec<_>>(),
        ),
        FrontendMessage::Describe(d) if d.target == Target::Statement => {
            encode::describe_statement(&mut buf, d.name)
        }
        FrontendMessage::Describe(d) => encode::describe_portal(&mut buf, d.name),
        FrontendMessage::Close(c) if c.target == Target::Statement => {
            encode::close_statement(&mut buf, c.name)
        }
        FrontendMessage::Close(c) => encode::close_portal(&mut buf, c.name),
        FrontendMessage::Execute(e) => encode::execute(&mut buf, e.portal, e.max_rows),
        FrontendMessage::Sync => {
            encode::sync(&mut buf);
            Ok(())
        }
        FrontendMessage::Flush => {
            encode::flush(&mut buf);
            Ok(())
        }
        FrontendMessage::Terminate => {
            encode::terminate(&mut buf);
            Ok(())
        }
        FrontendMessage::CopyData(d) => encode::copy_data(&mut buf, d),
        FrontendMessage::CopyDone => {
            encode::copy_done(&mut buf);
            Ok(())
        }
        FrontendMessage::CopyFail(m) => encode::copy_fail(&mut buf, m),
        FrontendMessage::Bind(_)
        | FrontendMessage::Password(_)
        | FrontendMessage::FunctionCall(_) => return None,
    };
    result.expect("decoded fields are encodable");
    Some(buf)
}

#[test]
fn fuzz_frontend_decode() {
    let corpus = frontend_corpus();
    fuzz(
        "frontend_decode",
        |rng| tagged_input(rng, &corpus),
        |_, input| {
            let Some(frame) = first_frame(input) else {
                return;
            };
            let Ok(message) = FrontendMessage::decode(&frame) else {
                return;
            };
            assert_eq!(message.tag().as_byte(), frame.tag());
            if let Some(again) = reencode_frontend(&message) {
                assert_eq!(&again[..], &frame.as_bytes()[..], "{message:?}");
            }
            match message {
                FrontendMessage::Parse(p) => {
                    assert_eq!(p.param_types().count(), usize::from(p.param_type_count))
                }
                FrontendMessage::Bind(b) => {
                    assert_eq!(
                        b.portal.len() + b.statement.len() + 2 + b.parameters().len(),
                        frame.body().len()
                    )
                }
                FrontendMessage::Password(body) => {
                    if let Ok(password) = parse_password(body) {
                        assert_eq!(password.len() + 1, body.len());
                    }
                    if let Ok((mechanism, Some(data))) = parse_sasl_initial_response(body) {
                        let mut again = BytesMut::new();
                        if encode::sasl_initial_response(&mut again, mechanism, data).is_ok() {
                            assert_eq!(&again[..], &frame.as_bytes()[..]);
                        }
                    }
                }
                _ => {}
            }
        },
    );
}

/// Re-encodes a decoded server message where an encoder exists; must give the same bytes.
fn reencode_backend(message: &BackendMessage<'_>) -> Option<BytesMut> {
    let mut buf = BytesMut::new();
    let result = match message {
        BackendMessage::Authentication(Authentication::Ok) => {
            encode::authentication_ok(&mut buf);
            Ok(())
        }
        BackendMessage::Authentication(Authentication::CleartextPassword) => {
            encode::authentication_cleartext_password(&mut buf);
            Ok(())
        }
        BackendMessage::Authentication(Authentication::Md5Password { salt }) => {
            encode::authentication_md5_password(&mut buf, *salt);
            Ok(())
        }
        BackendMessage::Authentication(Authentication::Sasl { mechanisms }) => {
            let names: Option<Vec<&str>> =
                mechanisms.map(|m| std::str::from_utf8(m).ok()).collect();
            encode::authentication_sasl(&mut buf, &names?)
        }
        BackendMessage::Authentication(Authentication::SaslContinue(d)) => {
            encode::authentication_sasl_continue(&mut buf, d)
        }
        BackendMessage::Authentication(Authentication::SaslFinal(d)) => {
            encode::authentication_sasl_final(&mut buf, d)
        }
        BackendMessage::ParameterStatus { name, value } => {
            encode::parameter_status(&mut buf, name, value)
        }
        BackendMessage::BackendKeyData { pid, key } => {
            encode::backend_key_data(&mut buf, *pid, key)
        }
        BackendMessage::ReadyForQuery(status) => {
            encode::ready_for_query(&mut buf, *status);
            Ok(())
        }
        BackendMessage::CommandComplete { tag } => encode::command_complete(&mut buf, tag),
        BackendMessage::RowDescription(rows) => {
            encode::row_description(&mut buf, &rows.fields().collect::<Vec<_>>())
        }
        BackendMessage::DataRow(row) => {
            encode::data_row(&mut buf, &row.values().collect::<Vec<_>>())
        }
        BackendMessage::EmptyQueryResponse => {
            encode::empty_query_response(&mut buf);
            Ok(())
        }
        BackendMessage::ParseComplete => {
            encode::parse_complete(&mut buf);
            Ok(())
        }
        BackendMessage::BindComplete => {
            encode::bind_complete(&mut buf);
            Ok(())
        }
        BackendMessage::CloseComplete => {
            encode::close_complete(&mut buf);
            Ok(())
        }
        BackendMessage::NoData => {
            encode::no_data(&mut buf);
            Ok(())
        }
        BackendMessage::PortalSuspended => {
            encode::portal_suspended(&mut buf);
            Ok(())
        }
        BackendMessage::NotificationResponse {
            pid,
            channel,
            payload,
        } => encode::notification_response(&mut buf, *pid, channel, payload),
        BackendMessage::NegotiateProtocolVersion { newest, options } if newest.major == 3 => {
            let names: Option<Vec<&str>> = options.map(|o| std::str::from_utf8(o).ok()).collect();
            encode::negotiate_protocol_version(&mut buf, newest.minor, &names?)
        }
        _ => return None,
    };
    result.ok().map(|()| buf)
}

#[test]
fn fuzz_backend_decode() {
    let corpus = backend_corpus();
    fuzz(
        "backend_decode",
        |rng| tagged_input(rng, &corpus),
        |_, input| {
            let _ = ready_for_query_status(input);
            let Some(frame) = first_frame(input) else {
                return;
            };
            let Ok(message) = BackendMessage::decode(&frame) else {
                return;
            };
            assert_eq!(message.tag().as_byte(), frame.tag());
            if let Some(again) = reencode_backend(&message) {
                assert_eq!(&again[..], &frame.as_bytes()[..], "{message:?}");
            }
            match message {
                BackendMessage::ErrorResponse(fields) | BackendMessage::NoticeResponse(fields) => {
                    check_error_fields(fields, frame.body())
                }
                BackendMessage::CopyInResponse(c)
                | BackendMessage::CopyOutResponse(c)
                | BackendMessage::CopyBothResponse(c) => {
                    assert_eq!(c.column_formats().count(), c.column_count());
                    assert_eq!(3 + 2 * c.column_count(), frame.body().len());
                }
                BackendMessage::ParameterDescription(p) => {
                    assert_eq!(2 + 4 * p.types().count(), frame.body().len())
                }
                _ => {}
            }
        },
    );
}

/// Rebuilds the body from the iterated fields: it must be the original body.
fn check_error_fields(fields: ErrorFields<'_>, body: &[u8]) {
    let mut rebuilt = Vec::new();
    for (code, value) in fields {
        assert_ne!(code, 0);
        assert!(!value.contains(&0));
        rebuilt.push(code);
        rebuilt.extend_from_slice(value);
        rebuilt.push(0);
    }
    rebuilt.push(0);
    assert_eq!(rebuilt, body);
    let _ = (
        fields.severity(),
        fields.code(),
        fields.message(),
        fields.detail(),
        fields.hint(),
    );
}

#[test]
fn fuzz_error_fields() {
    let corpus: Vec<Vec<u8>> = backend_corpus()
        .into_iter()
        .filter(|f| f[0] == b'E' || f[0] == b'N')
        .map(|f| f[HEADER_LEN..].to_vec())
        .collect();
    let make = |rng: &mut Rng| {
        if rng.below(4) == 0 {
            return rng.bytes(32);
        }
        let valid = rng.pick(&corpus).clone();
        mutate(rng, &valid)
    };
    fuzz("error_fields", make, |_, input| {
        if let Ok(fields) = ErrorFields::new(input) {
            check_error_fields(fields, input);
        }
    });
}

#[test]
fn fuzz_rename_statement() {
    let corpus: Vec<Vec<u8>> = frontend_corpus()
        .into_iter()
        .filter(|f| matches!(f[0], b'P' | b'B' | b'D' | b'C'))
        .collect();
    fuzz(
        "rename_statement",
        |rng| tagged_input(rng, &corpus),
        |rng, input| {
            let Some(frame) = first_frame(input) else {
                return;
            };
            let mut new_name = rng.bytes(12);
            if rng.below(3) != 0 {
                new_name.retain(|b| *b != 0);
            }
            let mut out = BytesMut::from(&b"xy"[..]);
            let into = rename_statement_into(&frame, &new_name, &mut out);
            match rename_statement(&frame, &new_name) {
                Ok(renamed) => {
                    assert!(into.is_ok());
                    assert_eq!(&out[2..], &renamed[..]);
                    let renamed = Frame::from_bytes(renamed).expect("rename yields one frame");
                    assert_eq!(renamed.tag(), frame.tag());
                    assert_eq!(
                        renamed.wire_len() + frame.body().len(),
                        frame.wire_len() + renamed.body().len()
                    );
                    let name = match FrontendMessage::decode(&renamed) {
                        Ok(FrontendMessage::Parse(p)) => p.name,
                        Ok(FrontendMessage::Bind(b)) => b.statement,
                        Ok(FrontendMessage::Describe(d)) => d.name,
                        Ok(FrontendMessage::Close(c)) => c.name,
                        // Parse renames only look at the name, so a bad tail stays bad.
                        _ => return assert!(FrontendMessage::decode(&frame).is_err()),
                    };
                    assert_eq!(name, &new_name[..]);
                }
                Err(_) => {
                    assert!(into.is_err());
                    assert_eq!(&out[..], b"xy");
                }
            }
        },
    );
}
