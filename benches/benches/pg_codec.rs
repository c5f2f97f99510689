//! PostgreSQL codec costs on the pooler's hot path: splitting a server's result stream
//! into frames, peeking tags, and renaming a statement in a Bind.

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use protocol::pg::{
    Frame, FrameSplitter, TransactionStatus, encode, peek_header, rename_statement_into,
};
use std::hint::black_box;

/// RowDescription, `rows` DataRows, CommandComplete, ReadyForQuery.
fn result_stream(rows: usize) -> BytesMut {
    let mut buf = BytesMut::new();
    encode::row_description_text(&mut buf, &[("aid", 23), ("abalance", 23)]).unwrap();
    for i in 0..rows {
        let a = i.to_string();
        encode::data_row(&mut buf, &[Some(a.as_bytes()), Some(b"0")]).unwrap();
    }
    encode::command_complete(&mut buf, b"SELECT 1").unwrap();
    encode::ready_for_query(&mut buf, TransactionStatus::Idle);
    buf
}

fn split_frames(c: &mut Criterion) {
    let stream = result_stream(10_000);
    let frames = 10_003u64;
    let mut group = c.benchmark_group("pg_frames");
    group.throughput(Throughput::Elements(frames));
    group.bench_function("FrameSplitter::split (zero-copy Bytes)", |b| {
        let splitter = FrameSplitter::new(1 << 30);
        b.iter(|| {
            let mut buf = stream.clone();
            let mut n = 0;
            while let Some(frame) = splitter.split(&mut buf).unwrap() {
                n += frame.tag() as usize;
            }
            black_box(n)
        })
    });
    group.bench_function("peek_header scan (the relay loop)", |b| {
        b.iter(|| {
            let buf = &stream[..];
            let (mut at, mut n) = (0, 0);
            while let Some(h) = peek_header(&buf[at..], 1 << 30).unwrap() {
                n += h.tag as usize;
                at += h.len;
                if at >= buf.len() {
                    break;
                }
            }
            black_box(n)
        })
    });
    group.finish();
}

fn rename(c: &mut Criterion) {
    let mut buf = BytesMut::new();
    encode::bind(&mut buf, b"", b"s1", &[0], &[Some(b"42")], &[0]).unwrap();
    let frame = Frame::from_bytes(buf.freeze()).unwrap();
    let mut out = BytesMut::with_capacity(1 << 20);
    c.bench_function("rename_statement_into (Bind)", |b| {
        b.iter(|| {
            out.clear();
            rename_statement_into(black_box(&frame), b"POOLER_12345", &mut out).unwrap();
            black_box(out.len())
        })
    });
}

criterion_group!(benches, split_frames, rename);
criterion_main!(benches);
