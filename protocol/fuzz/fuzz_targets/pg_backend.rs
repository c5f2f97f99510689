//! libFuzzer target: BackendMessage decoding over arbitrary frames (tag = first byte, body =
//! the rest) never panics, and every validated view iterates without failing.
#![no_main]

use bytes::{BufMut, BytesMut};
use libfuzzer_sys::fuzz_target;
use protocol::pg::Frame;
use protocol::pg::backend::{Authentication, BackendMessage, ready_for_query_status};

fuzz_target!(|data: &[u8]| {
    let Some((&tag, body)) = data.split_first() else {
        return;
    };
    let _ = ready_for_query_status(body);
    let mut bytes = BytesMut::with_capacity(body.len() + 5);
    bytes.put_u8(tag);
    bytes.put_u32((body.len() + 4) as u32);
    bytes.put_slice(body);
    let Ok(frame) = Frame::from_bytes(bytes.freeze()) else {
        return;
    };
    let Ok(message) = BackendMessage::decode(&frame) else {
        return;
    };
    assert_eq!(message.tag().as_byte(), tag);
    match message {
        BackendMessage::ErrorResponse(fields) | BackendMessage::NoticeResponse(fields) => {
            let covered: usize = fields.into_iter().map(|(_, value)| value.len() + 2).sum();
            assert_eq!(covered + 1, body.len());
            let _ = (fields.severity(), fields.code(), fields.message());
        }
        BackendMessage::RowDescription(rows) => {
            assert_eq!(rows.fields().count(), usize::from(rows.field_count()));
        }
        BackendMessage::DataRow(row) => {
            assert_eq!(row.values().count(), usize::from(row.column_count()));
        }
        BackendMessage::ParameterDescription(params) => {
            assert_eq!(params.types().count() * 4 + 2, body.len());
        }
        BackendMessage::Authentication(Authentication::Sasl { mechanisms }) => {
            let expected = mechanisms.len();
            assert_eq!(mechanisms.count(), expected);
        }
        BackendMessage::NegotiateProtocolVersion { options, .. } => {
            let expected = options.len();
            assert_eq!(options.count(), expected);
        }
        _ => {}
    }
});
