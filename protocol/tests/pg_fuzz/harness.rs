//! Fuzz harness: seeded PRNG, iteration driver that reports the failing seed, mutations, corpora.

use bytes::BytesMut;
use protocol::pg::encode;
use protocol::pg::{DEFAULT_MAX_PACKET, Frame, FrameSplitter, HEADER_LEN, scan_frames};

use crate::captured;

/// xorshift64*: tiny, deterministic, good enough to drive mutations.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    pub(crate) fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

pub(crate) fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Prints the seed, iteration and input if the current iteration panics.
pub(crate) struct Report<'a> {
    name: &'a str,
    seed: u64,
    iteration: usize,
    input: &'a [u8],
}

impl Drop for Report<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "{} failed: FUZZ_SEED={} iteration {} input {:02x?}",
                self.name, self.seed, self.iteration, self.input
            );
        }
    }
}

/// Runs `check` on `FUZZ_ITERATIONS` inputs made by `make`.
pub(crate) fn fuzz(
    name: &str,
    mut make: impl FnMut(&mut Rng) -> Vec<u8>,
    mut check: impl FnMut(&mut Rng, &[u8]),
) {
    let seed: u64 = env_or("FUZZ_SEED", 0x5eed_c0de_u64);
    let iterations: usize = env_or("FUZZ_ITERATIONS", 20_000);
    // Mix in the test name so each decoder sees a different sequence for the same seed.
    let salt = name
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let mut rng = Rng((seed ^ salt) | 1);
    for iteration in 0..iterations {
        let input = make(&mut rng);
        let _report = Report {
            name,
            seed,
            iteration,
            input: &input,
        };
        check(&mut rng, &input);
    }
}

/// Applies 1..=4 random mutations to a valid message.
pub(crate) fn mutate(rng: &mut Rng, valid: &[u8]) -> Vec<u8> {
    let mut out = valid.to_vec();
    for _ in 0..=rng.below(3) {
        match rng.below(8) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
            2 => out.truncate(rng.below(out.len() + 1)),
            3 => out.extend(rng.bytes(8)),
            4 if out.len() >= HEADER_LEN => {
                // Corrupt the length field of a tagged frame (or of an untagged packet's start).
                let at = rng.below(2);
                let len = u32::from_be_bytes([out[at], out[at + 1], out[at + 2], out[at + 3]]);
                let new = match rng.below(4) {
                    0 => rng.next() as u32,
                    1 => rng.below(9) as u32,
                    2 => len.wrapping_add(rng.below(9) as u32).wrapping_sub(4),
                    _ => u32::MAX - rng.below(4) as u32,
                };
                out[at..at + 4].copy_from_slice(&new.to_be_bytes());
            }
            5 if !out.is_empty() => out[0] = rng.next() as u8,
            6 => {
                let i = rng.below(out.len() + 1);
                out.insert(
                    i,
                    if rng.below(2) == 0 {
                        0
                    } else {
                        rng.next() as u8
                    },
                );
            }
            _ => {
                if !out.is_empty() {
                    let i = rng.below(out.len());
                    out.remove(i);
                }
            }
        }
    }
    out
}

pub(crate) fn frames_of(stream: &[u8]) -> Vec<Vec<u8>> {
    scan_frames(stream, DEFAULT_MAX_PACKET)
        .map(|r| r.expect("valid corpus"))
        .map(|(header, offset)| stream[offset..offset + header.len].to_vec())
        .collect()
}

pub(crate) fn frontend_corpus() -> Vec<Vec<u8>> {
    let mut corpus = Vec::new();
    for stream in [
        captured::SIMPLE_QUERY,
        captured::EXTENDED,
        captured::PORTAL,
        captured::COPY_IN_DATA,
        captured::SCRAM_CLIENT_FIRST,
        captured::SCRAM_CLIENT_FINAL,
        captured::FUNCTION_CALL,
    ] {
        corpus.extend(frames_of(stream));
    }
    let mut buf = BytesMut::new();
    encode::password_message(&mut buf, b"md5abcdef").unwrap();
    encode::copy_fail(&mut buf, b"client went away").unwrap();
    encode::close_portal(&mut buf, b"p").unwrap();
    encode::flush(&mut buf);
    corpus.extend(frames_of(&buf));
    corpus
}

pub(crate) fn backend_corpus() -> Vec<Vec<u8>> {
    let mut corpus = Vec::new();
    for stream in [
        captured::LOGIN_REPLY,
        captured::SIMPLE_QUERY_REPLY,
        captured::EXTENDED_REPLY,
        captured::PORTAL_REPLY,
        captured::ERROR_REPLY,
        captured::NOTICE_REPLY,
        captured::NOTIFY_REPLY,
        captured::COPY_OUT_REPLY,
        captured::COPY_IN_REPLY,
        captured::COPY_BOTH_REPLY,
        captured::EMPTY_QUERY_REPLY,
        captured::SCRAM_SERVER_FIRST,
        captured::SCRAM_SERVER_CONTINUE,
        captured::SCRAM_SERVER_FINAL,
        captured::NEGOTIATE_REPLY,
        captured::FUNCTION_CALL_REPLY,
    ] {
        corpus.extend(frames_of(stream));
    }
    let mut buf = BytesMut::new();
    encode::authentication_md5_password(&mut buf, *b"salt");
    encode::authentication_cleartext_password(&mut buf);
    encode::no_data(&mut buf);
    encode::backend_key_data(&mut buf, 7, &[9; 32]).unwrap();
    corpus.extend(frames_of(&buf));
    corpus
}

pub(crate) fn startup_corpus() -> Vec<&'static [u8]> {
    vec![
        captured::PSQL_STARTUP,
        captured::NEGOTIATE_STARTUP,
        captured::SSL_REQUEST,
        captured::GSSENC_REQUEST,
        captured::CANCEL_REQUEST,
    ]
}

/// Half random bytes (optionally behind a valid tag), half mutated corpus entries.
pub(crate) fn tagged_input(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    if rng.below(4) == 0 {
        let mut out = rng.bytes(40);
        if out.len() >= HEADER_LEN && rng.below(2) == 0 {
            let length_field = (out.len() - 1) as u32;
            out[1..5].copy_from_slice(&length_field.to_be_bytes());
        }
        out
    } else {
        let valid = rng.pick(corpus).clone();
        mutate(rng, &valid)
    }
}

/// The first complete frame of `input`, if any (errors and incomplete input are fine).
pub(crate) fn first_frame(input: &[u8]) -> Option<Frame> {
    FrameSplitter::default()
        .split(&mut BytesMut::from(input))
        .ok()
        .flatten()
}
