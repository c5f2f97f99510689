//! libFuzzer target: Value::decode over arbitrary bytes must agree with the scanner on frame
//! length, and a decoded value must re-encode to bytes that decode to the same value.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use protocol::resp::{RespScanner, RespVersion, Scan, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(Some((value, len))) = Value::decode(data) else {
        return;
    };
    assert!(len <= data.len());
    assert_eq!(RespScanner::default().scan(data), Ok(Scan::Complete(len)));
    for version in [RespVersion::Resp2, RespVersion::Resp3] {
        let mut buf = BytesMut::new();
        value.encode(&mut buf, version);
        let Ok(Some((again, again_len))) = Value::decode(&buf) else {
            panic!("re-encoded {version:?} value does not decode: {buf:?}");
        };
        assert_eq!(again_len, buf.len());
        // NaN is never equal to itself; RESP2 downgrades types, and CR/LF in simple strings become spaces.
        if version == RespVersion::Resp3 && !has_nan_or_line_break(&value) {
            assert_eq!(again, value);
        }
    }
});

fn has_nan_or_line_break(value: &Value) -> bool {
    match value {
        Value::Double(number) => number.is_nan(),
        Value::Simple(text) => text.iter().any(|&b| b == b'\r' || b == b'\n'),
        Value::Array(items) | Value::Set(items) | Value::Push(items) => {
            items.iter().any(has_nan_or_line_break)
        }
        Value::Map(pairs) => pairs
            .iter()
            .any(|(k, v)| has_nan_or_line_break(k) || has_nan_or_line_break(v)),
        Value::Attributed { attributes, value } => {
            has_nan_or_line_break(value)
                || attributes
                    .iter()
                    .any(|(k, v)| has_nan_or_line_break(k) || has_nan_or_line_break(v))
        }
        _ => false,
    }
}
