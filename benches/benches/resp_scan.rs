//! RESP costs on the cacheproxy's hot path: decoding pipelined requests, and scanning
//! one large array reply that arrives in 16 KiB reads (must stay linear).

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use protocol::resp::{RequestDecoder, RespScanner, Scan, encode_command, reply};
use std::hint::black_box;

fn pipelined_requests(c: &mut Criterion) {
    let mut wire = BytesMut::new();
    for i in 0..1000 {
        let key = format!("key:{i}");
        encode_command(
            &mut wire,
            &[b"SET", key.as_bytes(), b"value-of-some-length"],
        );
    }
    let mut group = c.benchmark_group("resp_requests");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("RequestDecoder, 1000 pipelined SET", |b| {
        b.iter(|| {
            let mut decoder = RequestDecoder::default();
            let mut buf = wire.clone();
            let mut n = 0;
            while let Some(request) = decoder.decode(&mut buf).unwrap() {
                n += request.argc();
            }
            black_box(n)
        })
    });
    group.finish();
}

fn large_reply_in_chunks(c: &mut Criterion) {
    let mut wire = BytesMut::new();
    reply::array_header(&mut wire, 200_000);
    for i in 0..200_000 {
        reply::bulk(&mut wire, format!("element-{i}").as_bytes());
    }
    let mut group = c.benchmark_group("resp_large_reply");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("RespScanner, 200k-element array in 16 KiB reads", |b| {
        b.iter(|| {
            let mut scanner = RespScanner::default();
            let mut start = 0;
            let mut end = 0;
            loop {
                end = (end + 16 * 1024).min(wire.len());
                match scanner.scan(&wire[start..end]).unwrap() {
                    Scan::Complete(n) => break black_box(start + n),
                    Scan::Partial(n) => start += n,
                }
            }
        })
    });
    group.finish();
}

criterion_group!(benches, pipelined_requests, large_reply_in_chunks);
criterion_main!(benches);
