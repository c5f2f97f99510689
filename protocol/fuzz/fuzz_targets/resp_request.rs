//! libFuzzer target: RequestDecoder over arbitrary bytes must give the same requests and the
//! same error whether fed at once or in chunks, and every request must re-decode to itself.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use protocol::resp::{Request, RequestDecoder};

fn decode_all(input: &[u8], chunk: usize) -> (Vec<Request>, bool) {
    let mut decoder = RequestDecoder::default();
    let mut buf = BytesMut::new();
    let mut requests = Vec::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(request)) => requests.push(request),
                Ok(None) => break,
                Err(_) => return (requests, true),
            }
        }
    }
    (requests, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk_byte, input)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk_byte % 32) + 1;
    let whole = decode_all(input, input.len().max(1));
    let chunked = decode_all(input, chunk);
    assert_eq!(whole, chunked);
    for request in &whole.0 {
        let mut again = BytesMut::from(request.as_bytes().as_ref());
        let reparsed = RequestDecoder::default().decode(&mut again);
        assert_eq!(reparsed.ok().flatten().as_ref(), Some(request));
        let args: Vec<&[u8]> = request.args().collect();
        assert_eq!(&Request::from_args(&args), request);
    }
});
