//! libFuzzer target: FrameSplitter fed in chunks (size from the first input byte), FrameScanner
//! and peek_header over arbitrary bytes must agree, never panic and never lose or invent bytes.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use protocol::pg::{Frame, FrameSplitter, HEADER_LEN, peek_header, scan_frames};

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(control % 32) + 1;
    let max_len = if control & 0x80 == 0 { 1 << 20 } else { 64 };

    if let Ok(Some(header)) = peek_header(input, max_len) {
        assert!(header.len >= HEADER_LEN && header.len <= max_len);
    }

    let splitter = FrameSplitter::new(max_len);
    let mut buf = BytesMut::new();
    let mut frames: Vec<Frame> = Vec::new();
    let mut fed = 0;
    'feed: for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        fed += piece.len();
        loop {
            match splitter.split(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
    let consumed: usize = frames.iter().map(Frame::wire_len).sum();
    assert_eq!(consumed + buf.len(), fed);
    let mut offset = 0;
    for frame in &frames {
        assert_eq!(
            &input[offset..offset + frame.wire_len()],
            &frame.as_bytes()[..]
        );
        offset += frame.wire_len();
    }

    let mut scanner = scan_frames(input, max_len);
    let complete = scanner.by_ref().take_while(Result::is_ok).count();
    assert_eq!(complete, frames.len());
    assert_eq!(scanner.complete_len(), consumed);
});
