//! Client requests: pipelined and inline commands at every split, Redis' error texts, accessors.

use bytes::BytesMut;
use protocol::ProtocolError;
use protocol::resp::{RequestDecoder, protocol_error_reason};

use super::feedings;

/// Every request of `chunks`, as argument lists, or the first error.
fn decode_requests<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
    let mut decoder = RequestDecoder::default();
    let mut buf = BytesMut::new();
    let mut requests = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(request) = decoder.decode(&mut buf)? {
            // The forwarded form must itself be a well-formed multibulk of the same arguments.
            let mut again = BytesMut::from(request.as_bytes().as_ref());
            let reparsed = RequestDecoder::default()
                .decode(&mut again)?
                .expect("complete");
            assert_eq!(
                reparsed.args().collect::<Vec<_>>(),
                request.args().collect::<Vec<_>>()
            );
            requests.push(request.args().map(<[u8]>::to_vec).collect());
        }
    }
    Ok(requests)
}

fn args(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|arg| arg.as_bytes().to_vec()).collect()
}

#[test]
fn pipelined_and_inline_requests_at_every_split() {
    let stream: &[u8] =
        b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n\
PING\r\n\r\nset a \"b c\"\r\n*0\r\n*-1\r\n  get   key  \n\
echo \"\\x41\\n\\\"q\\\"\" 'it\\'s' \"\"\r\n\
*1\r\n$4\r\nPING\r\nx\"y z\" w\r\n";
    let expected = vec![
        args(&["SET", "key", "value"]),
        args(&["GET", "key"]),
        args(&["PING"]),
        args(&["set", "a", "b c"]),
        args(&["get", "key"]),
        args(&["echo", "A\n\"q\"", "it's", ""]),
        args(&["PING"]),
        args(&["xy z", "w"]),
    ];
    for (how, chunks) in feedings(stream) {
        assert_eq!(decode_requests(chunks), Ok(expected.clone()), "{how}");
    }
}

#[test]
fn inline_commands_become_multibulk() {
    let mut buf = BytesMut::from(&b"set a \"b c\"\r\n"[..]);
    let request = RequestDecoder::default()
        .decode(&mut buf)
        .expect("valid")
        .expect("complete");
    assert_eq!(
        request.as_bytes().as_ref(),
        b"*3\r\n$3\r\nset\r\n$1\r\na\r\n$3\r\nb c\r\n"
    );
    assert!(request.is_command("SET"));
    assert!(buf.is_empty());
}

/// A malformed request stream and Redis' reason text, however it is split.
fn assert_request_error(stream: &[u8], reason: &str) {
    let check = |outcome: Result<Vec<Vec<Vec<u8>>>, ProtocolError>, how: &str| match outcome {
        Err(error) => assert_eq!(protocol_error_reason(&error), reason, "{how} {stream:?}"),
        Ok(requests) => panic!("{how} {stream:?} decoded to {requests:?}"),
    };
    if stream.len() > 1000 {
        return check(decode_requests([stream]), "one shot");
    }
    for (how, chunks) in feedings(stream) {
        check(decode_requests(chunks), &how);
    }
}

#[test]
fn malformed_requests_give_redis_error_texts() {
    assert_request_error(b"*abc\r\n", "invalid multibulk length");
    assert_request_error(b"*01\r\n", "invalid multibulk length");
    assert_request_error(b"*3000000000\r\n", "invalid multibulk length");
    assert_request_error(b"*1\n$4\r\nPING\r\n", "invalid multibulk length");
    assert_request_error(b"*1\r\n+foo\r\n", "expected '$', got '+'");
    assert_request_error(b"*2\r\n$3\r\nGET\r\n:1\r\n", "expected '$', got ':'");
    assert_request_error(b"*1\r\n\r\n", "expected '$', got ' '");
    assert_request_error(b"*1\r\n$-1\r\n", "invalid bulk length");
    assert_request_error(b"*1\r\n$abc\r\n", "invalid bulk length");
    assert_request_error(b"*1\r\n$600000000\r\n", "invalid bulk length");
    assert_request_error(b"*1\r\n$99999999999\r\n", "invalid bulk length");
    assert_request_error(b"set a \"b\r\n", "unbalanced quotes in request");
    assert_request_error(b"set a \"b\"c\r\n", "unbalanced quotes in request");
    assert_request_error(b"set 'a\r\n", "unbalanced quotes in request");
    assert_request_error(b"set 'a'b\n", "unbalanced quotes in request");
    assert_request_error(&vec![b'a'; 70_000], "too big inline request");
    let mut count = b"*".to_vec();
    count.extend(std::iter::repeat_n(b'1', 70_000));
    assert_request_error(&count, "too big mbulk count string");
    let mut length = b"*1\r\n$".to_vec();
    length.extend(std::iter::repeat_n(b'1', 70_000));
    assert_request_error(&length, "too big bulk count string");
}

#[test]
fn huge_announced_request_counts_wait_without_allocating() {
    let mut decoder = RequestDecoder::default();
    let mut buf = BytesMut::from(&b"*2147483647\r\n$3\r\nGET\r\n"[..]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert_eq!(
        buf.len(),
        22,
        "nothing consumed before the request is complete"
    );
    let mut buf = BytesMut::from(&b"*1\r\n$536870912\r\nabc"[..]);
    assert_eq!(RequestDecoder::default().decode(&mut buf), Ok(None));
}

#[test]
fn request_accessors_and_key_specs() {
    let request =
        protocol::resp::Request::from_args(&[b"mset", b"k1", b"v1", b"k2", b"v2", b"k3", b"v3"]);
    assert!(request.is_command("MSET"));
    assert!(!request.is_command("MSETNX"));
    assert_eq!(request.argc(), 7);
    assert_eq!(request.arg(6), Some(b"v3".as_slice()));
    assert_eq!(request.arg(7), None);
    assert_eq!(request.arg_bytes(1).as_deref(), Some(b"k1".as_slice()));
    let keys = |first, last, step| -> Vec<&[u8]> {
        request
            .keys(protocol::resp::KeySpec { first, last, step })
            .collect()
    };
    assert_eq!(keys(1, -1, 2), [b"k1", b"k2", b"k3"]);
    assert_eq!(keys(1, 1, 1), [b"k1"]);
    assert_eq!(keys(1, -2, 1).len(), 5);
    assert_eq!(keys(0, 0, 0), Vec::<&[u8]>::new());
    assert_eq!(keys(5, 100, 1), [b"k3", b"v3"]);
    assert_eq!(keys(3, 2, 1), Vec::<&[u8]>::new());
    assert_eq!(keys(1, -100, 1), Vec::<&[u8]>::new());
    assert_eq!(keys(1, -1, 0), Vec::<&[u8]>::new());
    let empty = protocol::resp::Request::from_args(&[]);
    assert_eq!(
        (empty.name(), empty.argc(), empty.as_bytes().as_ref()),
        (b"".as_slice(), 0, b"*0\r\n".as_slice())
    );
    let mut wire = BytesMut::new();
    protocol::resp::encode_command(
        &mut wire,
        &[b"SENTINEL", b"get-master-addr-by-name", b"mymaster"],
    );
    assert_eq!(
        wire.as_ref(),
        b"*3\r\n$8\r\nSENTINEL\r\n$23\r\nget-master-addr-by-name\r\n$8\r\nmymaster\r\n"
    );
    assert_eq!(
        wire.as_ref(),
        protocol::resp::Request::from_args(&[b"SENTINEL", b"get-master-addr-by-name", b"mymaster"])
            .as_bytes()
            .as_ref()
    );
}

#[test]
fn nul_bytes_hide_the_line_end_as_in_redis() {
    // Redis searches line ends with strchr, which stops at NUL: such a line never completes
    // (redis-server 7.0.15 answers nothing) until the size limit closes the connection.
    for stream in [
        b"PING\0\r\n*1\r\n$4\r\nPING\r\n".as_slice(),
        b"*1\0\r\n$4\r\nPING\r\n",
    ] {
        for (how, chunks) in feedings(stream) {
            assert_eq!(decode_requests(chunks), Ok(vec![]), "{how} {stream:?}");
        }
    }
    let mut padded = b"PING\0\r\n".to_vec();
    padded.resize(70_000, b'x');
    assert_request_error(&padded, "too big inline request");
}
