//! Captured RESP2/RESP3 byte sequences, split at every byte boundary and fed byte by byte:
//! frame boundaries, decoded values and Redis' protocol-error texts must match the one-shot result.
//!
//! `replies.rs` covers what Redis sends, `requests.rs` what clients send; this file holds
//! the ways a stream is fed and the value helpers both use.

mod replies;
mod requests;

use bytes::Bytes;
use protocol::resp::Value;

/// Every way the tests feed `stream`: whole, byte by byte, and split in two at each offset.
pub(crate) fn feedings(stream: &[u8]) -> Vec<(String, Vec<&[u8]>)> {
    let mut ways = vec![
        ("one shot".to_owned(), vec![stream]),
        ("byte by byte".to_owned(), stream.chunks(1).collect()),
    ];
    for at in 0..=stream.len() {
        let (head, tail) = stream.split_at(at);
        ways.push((format!("split at {at}"), vec![head, tail]));
    }
    ways
}

pub(crate) fn bulk(text: &str) -> Value {
    Value::Bulk(Bytes::copy_from_slice(text.as_bytes()))
}

pub(crate) fn simple(text: &str) -> Value {
    Value::Simple(Bytes::copy_from_slice(text.as_bytes()))
}
