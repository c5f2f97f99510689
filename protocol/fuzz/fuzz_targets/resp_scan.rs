//! libFuzzer target: RespScanner and RespFramer over arbitrary bytes, fed in chunks whose size
//! comes from the first input byte, must agree and never consume more than they were given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::resp::{RespFramer, RespScanner, Scan};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk_byte, input)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk_byte % 32) + 1;

    let mut scanner = RespScanner::default();
    let mut pending = Vec::new();
    let mut consumed = 0;
    let mut scanned_ends = Vec::new();
    let mut scanner_failed = false;
    'feed: for piece in input.chunks(chunk) {
        pending.extend_from_slice(piece);
        loop {
            let Ok(outcome) = scanner.scan(&pending) else {
                scanner_failed = true;
                break 'feed;
            };
            let (Scan::Complete(n) | Scan::Partial(n)) = outcome;
            assert!(n <= pending.len());
            consumed += n;
            pending.drain(..n);
            if let Scan::Complete(_) = outcome {
                scanned_ends.push(consumed);
            }
            if matches!(outcome, Scan::Partial(_)) || pending.is_empty() {
                break;
            }
        }
    }

    let mut framer = RespFramer::default();
    let mut buf = bytes::BytesMut::new();
    let mut framed_ends = Vec::new();
    let mut framer_failed = false;
    let mut offset = 0;
    'frame: for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match framer.next_frame(&mut buf) {
                Ok(Some(frame)) => {
                    offset += frame.len();
                    framed_ends.push(offset);
                }
                Ok(None) => break,
                Err(_) => {
                    framer_failed = true;
                    break 'frame;
                }
            }
        }
    }
    assert_eq!(scanned_ends, framed_ends);
    assert_eq!(scanner_failed, framer_failed);
});
