//! libFuzzer target: FrontendMessage decoding, the `p`-message helpers and statement renaming
//! over arbitrary frames (tag = first byte, body = the rest) never panic and stay consistent.
#![no_main]

use bytes::{BufMut, Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use protocol::pg::frontend::{FrontendMessage, parse_password, parse_sasl_initial_response};
use protocol::pg::{Frame, rename_statement, rename_statement_into};

fuzz_target!(|data: &[u8]| {
    let Some((&tag, body)) = data.split_first() else {
        return;
    };
    let mut bytes = BytesMut::with_capacity(body.len() + 5);
    bytes.put_u8(tag);
    bytes.put_u32((body.len() + 4) as u32);
    bytes.put_slice(body);
    let Ok(frame) = Frame::from_bytes(bytes.freeze()) else {
        return;
    };

    if let Ok(message) = FrontendMessage::decode(&frame) {
        assert_eq!(message.tag().as_byte(), tag);
        if let FrontendMessage::Parse(parse) = message {
            assert_eq!(
                parse.param_types().count(),
                usize::from(parse.param_type_count)
            );
        }
    }
    let _ = parse_password(body);
    let _ = parse_sasl_initial_response(body);

    let new_name = b"pooler_s_1";
    let mut out = BytesMut::new();
    let appended = rename_statement_into(&frame, new_name, &mut out);
    match rename_statement(&frame, new_name) {
        Ok(renamed) => {
            assert!(appended.is_ok());
            assert_eq!(&out[..], &renamed[..]);
            let renamed =
                Frame::from_bytes(Bytes::clone(&renamed)).expect("rename yields one frame");
            assert_eq!(renamed.tag(), tag);
        }
        Err(_) => assert!(appended.is_err() && out.is_empty()),
    }
});
