//! Bounded, deterministic fuzzing of the RESP decoders for stable CI: random and mutated frames
//! through RespScanner, RespFramer, RequestDecoder and Value::decode must never panic, never
//! consume more than they were given, and agree with each other whatever the read boundaries.
//!
//! `FUZZ_ITERATIONS` (default 100000) and `FUZZ_SEED` override the defaults; a failure prints both.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use protocol::ProtocolError;
use protocol::resp::{Request, RequestDecoder, RespFramer, RespLimits, RespScanner, Scan, Value};

/// splitmix64: tiny, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const SEEDS: &[&[u8]] = &[
    b"+OK\r\n",
    b"-ERR wrong\r\n",
    b":-42\r\n",
    b"$5\r\nhello\r\n",
    b"$-1\r\n",
    b"*-1\r\n",
    b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n",
    b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n",
    b"*2\r\n*1\r\n:1\r\n*0\r\n",
    b"%1\r\n+proto\r\n:3\r\n",
    b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
    b"|1\r\n+ttl\r\n:10\r\n$1\r\nv\r\n",
    b"$?\r\n;2\r\nab\r\n;0\r\n",
    b"*?\r\n:1\r\n%?\r\n+a\r\n:1\r\n.\r\n.\r\n",
    b"~1\r\n#t\r\n",
    b",1.5e10\r\n",
    b"(123456789012345678901234567890\r\n",
    b"=7\r\ntxt:abc\r\n",
    b"!3\r\nERR\r\n",
    b"_\r\n",
    b"PING\r\n",
    b"set a \"b \\x41\" 'c\\'d'\r\n",
];

const HUGE_NUMBERS: &[&str] = &[
    "99999999999",
    "2147483647",
    "2147483648",
    "1000000000",
    "536870912",
    "536870913",
    "-1",
    "-2",
    "0",
    "?",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "01",
    "+5",
    "",
];

/// Bytes that matter to the parsers, so random inputs reach deep states.
const ALPHABET: &[u8] = b"*$:+-_#,(!=%~|>.;?0123456789\r\n\r\n \"'\\xtfa";

fn random_input(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(64);
    (0..len)
        .map(|_| {
            if rng.below(4) == 0 {
                rng.next() as u8
            } else {
                *rng.pick(ALPHABET)
            }
        })
        .collect()
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    match rng.below(7) {
        0 if !input.is_empty() => {
            let at = rng.below(input.len());
            input[at] ^= 1 << rng.below(8);
        }
        1 => {
            let digits: Vec<usize> = (0..input.len())
                .filter(|&i| input[i].is_ascii_digit())
                .collect();
            if !digits.is_empty() {
                let at = *rng.pick(&digits);
                input[at] = b'0' + rng.below(10) as u8;
                if rng.below(2) == 0 {
                    input.insert(at, b'0' + rng.below(10) as u8);
                }
            }
        }
        2 => input.truncate(rng.below(input.len() + 1)),
        3 => {
            // Replace the number after a type byte with a huge, negative or malformed one.
            let headers: Vec<usize> = (0..input.len())
                .filter(|&i| b"*$%~>|!=;".contains(&input[i]))
                .collect();
            if !headers.is_empty() {
                let start = *rng.pick(&headers) + 1;
                let end = (start..input.len())
                    .find(|&i| input[i] == b'\r')
                    .unwrap_or(input.len());
                input.splice(start..end, rng.pick(HUGE_NUMBERS).bytes());
            }
        }
        4 => {
            let other = rng.pick(SEEDS);
            let at = rng.below(input.len() + 1);
            input.splice(at..at, other.iter().copied());
        }
        5 if !input.is_empty() => {
            input.remove(rng.below(input.len()));
        }
        _ => {
            let at = rng.below(input.len() + 1);
            input.insert(at, *rng.pick(ALPHABET));
        }
    }
}

/// Frame ends found by feeding `input` in chunks of `chunk` bytes (0 = all at once), and how it ended.
fn scan_all(
    input: &[u8],
    chunk: usize,
    limits: RespLimits,
) -> (Vec<usize>, Result<(), ProtocolError>) {
    let mut scanner = RespScanner::new(limits);
    let mut pending: Vec<u8> = Vec::new();
    let (mut consumed, mut boundaries) = (0, Vec::new());
    let chunk = if chunk == 0 {
        input.len().max(1)
    } else {
        chunk
    };
    for piece in input.chunks(chunk) {
        pending.extend_from_slice(piece);
        loop {
            let outcome = match scanner.scan(&pending) {
                Ok(outcome) => outcome,
                Err(error) => return (boundaries, Err(error)),
            };
            let (Scan::Complete(n) | Scan::Partial(n)) = outcome;
            assert!(
                n <= pending.len(),
                "scanner consumed {n} of {} bytes",
                pending.len()
            );
            consumed += n;
            pending.drain(..n);
            match outcome {
                Scan::Complete(_) => boundaries.push(consumed),
                Scan::Partial(_) => break,
            }
            if pending.is_empty() {
                break;
            }
        }
    }
    (boundaries, Ok(()))
}

fn frame_all(input: &[u8], chunk: usize) -> (Vec<usize>, Result<(), ProtocolError>) {
    let mut framer = RespFramer::default();
    let mut buf = BytesMut::new();
    let (mut consumed, mut boundaries) = (0, Vec::new());
    for piece in input.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match framer.next_frame_len(&buf) {
                Ok(Some(len)) => {
                    assert!(len <= buf.len());
                    consumed += len;
                    boundaries.push(consumed);
                    let _ = buf.split_to(len);
                }
                Ok(None) => break,
                Err(error) => return (boundaries, Err(error)),
            }
        }
    }
    (boundaries, Ok(()))
}

type Decoded = (Vec<Request>, Result<(), ProtocolError>);

fn decode_requests(input: &[u8], chunk: usize, limits: RespLimits) -> Decoded {
    let mut decoder = RequestDecoder::new(limits);
    let mut buf = BytesMut::new();
    let mut requests = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Some(request)) => {
                    assert!(buf.len() < before);
                    // What is forwarded must be one well-formed frame.
                    assert_eq!(
                        RespScanner::default().scan(request.as_bytes()),
                        Ok(Scan::Complete(request.as_bytes().len()))
                    );
                    requests.push(request);
                }
                Ok(None) => break,
                Err(error) => return (requests, Err(error)),
            }
        }
    }
    (requests, Ok(()))
}

fn check_input(rng: &mut Rng, input: &[u8]) {
    let limits = RespLimits::default();
    let chunk = 1 + rng.below(8);

    let one_shot = scan_all(input, 0, limits);
    assert_eq!(
        scan_all(input, chunk, limits),
        one_shot,
        "scanner in chunks of {chunk}"
    );
    assert_eq!(
        frame_all(input, chunk),
        one_shot,
        "framer in chunks of {chunk}"
    );

    match Value::decode(input) {
        Ok(Some((_, len))) => {
            assert!(len <= input.len());
            assert_eq!(
                one_shot.0.first(),
                Some(&len),
                "Value::decode and the scanner disagree"
            );
        }
        // Value::decode checks more (verbatim format), but never less.
        Err(_) => {}
        Ok(None) => assert!(
            one_shot.0.is_empty(),
            "scanner found a frame Value::decode calls incomplete"
        ),
    }

    let requests = decode_requests(input, input.len(), limits);
    assert_eq!(
        decode_requests(input, chunk, limits),
        requests,
        "requests in chunks of {chunk}"
    );

    // Tiny limits reach every limit check; only safety is asserted here.
    let tiny = RespLimits {
        max_bulk_len: 4,
        max_multibulk_len: 3,
        max_inline_len: 8,
        max_depth: 2,
    };
    let _ = scan_all(input, chunk, tiny);
    let _ = decode_requests(input, chunk, tiny);
    let _ = Value::decode_with_limits(input, &tiny);
}

/// Prints how to replay the failing case when a check panics.
struct ReplayHint<'a> {
    seed: u64,
    iteration: u64,
    input: &'a [u8],
}

impl Drop for ReplayHint<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "fuzz failure: FUZZ_SEED={} iteration {} input {:?}",
                self.seed,
                self.iteration,
                String::from_utf8_lossy(self.input)
            );
        }
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn random_and_mutated_inputs_never_break_the_decoders() {
    let seed = env_u64("FUZZ_SEED", 0x5eed_2e5b);
    let iterations = env_u64("FUZZ_ITERATIONS", 100_000);
    let mut rng = Rng(seed);
    for iteration in 0..iterations {
        let mut input = if rng.below(4) == 0 {
            random_input(&mut rng)
        } else {
            rng.pick(SEEDS).to_vec()
        };
        for _ in 0..=rng.below(4) {
            mutate(&mut rng, &mut input);
        }
        let _hint = ReplayHint {
            seed,
            iteration,
            input: &input,
        };
        let mut case_rng = Rng(rng.next());
        check_input(&mut case_rng, &input);
    }
}

#[test]
fn huge_announced_lengths_neither_allocate_nor_wait_long() {
    let cases: &[&[u8]] = &[
        b"*1000000000\r\n",
        b"*2147483647\r\n",
        b"*2147483647\r\n$3\r\nGET\r\n",
        b"%1073741823\r\n+a\r\n",
        b"|1073741823\r\n",
        b"~2147483647\r\n:1\r\n",
        b"$536870912\r\nabc",
        b"*1\r\n$536870912\r\nabc",
        b"$99999999999\r\n",
        b"*99999999999999999999\r\n",
    ];
    for case in cases {
        let started = Instant::now();
        let _ = scan_all(case, 0, RespLimits::default());
        let _ = frame_all(case, 1);
        let decoded = Value::decode(case);
        assert!(matches!(decoded, Ok(None) | Err(_)), "{decoded:?}");
        let mut buf = BytesMut::from(*case);
        let request = RequestDecoder::default().decode(&mut buf);
        // Cases not starting with '*' are (harmless) inline commands.
        assert!(
            matches!(request, Ok(None) | Err(_)) || case[0] != b'*',
            "{request:?}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "{:?} took {:?}",
            case,
            started.elapsed()
        );
    }
    let mut buf = BytesMut::from(&b"*1000000000\r\n"[..]);
    assert_eq!(RequestDecoder::default().decode(&mut buf), Ok(None));
}

#[test]
fn deep_nesting_is_bounded_not_a_stack_overflow() {
    for unit in [
        b"*1\r\n".as_slice(),
        b"%1\r\n",
        b">1\r\n",
        b"*?\r\n",
        b"|1\r\n",
    ] {
        let input = unit.repeat(100_000);
        assert!(Value::decode(&input).is_err());
        assert!(scan_all(&input, 0, RespLimits::default()).1.is_err());
    }
    // Chained attributes do not nest for the scanner (each ends before the next), but the
    // owned decoder nests the annotated value and so bounds the chain.
    let chained = b"|1\r\n+a\r\n+b\r\n".repeat(100_000);
    assert!(Value::decode(&chained).is_err());
    assert_eq!(
        scan_all(&chained, 0, RespLimits::default()),
        (vec![], Ok(()))
    );
}
