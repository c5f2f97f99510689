//! pooler against misbehaving clients, over raw sockets: malformed frames after login,
//! oversized length fields, garbage instead of a startup packet, SSLRequest. Each must
//! cost only the offending connection.

mod common;

use bytes::{BufMut, BytesMut};
use common::TestPooler;
use common::raw::{Message, RawClient, data_values, tags};
use integration_tests::PgCluster;

const USERLIST: &str = "\"postgres\" \"\"\n";
const LOGIN: &[(&str, &str)] = &[("user", "postgres"), ("database", "postgres")];

/// Logs in over a raw socket and checks a query works.
async fn logged_in(port: u16) -> RawClient {
    let mut raw = RawClient::connect(port).await;
    let messages = raw.startup(LOGIN).await;
    assert_eq!(
        messages.last().map(|m| m.tag),
        Some(b'Z'),
        "login failed: {}",
        describe(&messages)
    );
    raw
}

/// Asserts the pooler still serves a fresh tokio-postgres client.
async fn still_serving(pooler: &TestPooler) {
    let client = pooler
        .connect("postgres", None, "postgres")
        .await
        .expect("pooler no longer accepts clients");
    let row = client.query_one("SELECT 41 + 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
}

fn describe(messages: &[Message]) -> String {
    messages
        .iter()
        .map(|m| format!("{}{:?} ", m.tag as char, m.fields()))
        .collect()
}

/// The single ErrorResponse among `messages`, which must be the last thing sent.
fn final_error(messages: &[Message]) -> &Message {
    let last = messages
        .last()
        .unwrap_or_else(|| panic!("connection closed without an ErrorResponse"));
    assert_eq!(
        last.tag,
        b'E',
        "expected an ErrorResponse last: {}",
        describe(messages)
    );
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frame_after_login_closes_only_that_client() {
    let pg = PgCluster::start(Default::default()).unwrap();
    let pooler = TestPooler::start(
        pg.primary(),
        "pool_mode = transaction\ndefault_pool_size = 1\nauth_type = trust\n",
        USERLIST,
    )
    .await;
    let mut bystander = logged_in(pooler.port).await;
    assert_eq!(
        data_values(&bystander.simple_query("SELECT 1").await),
        ["1"]
    );

    let mut offender = logged_in(pooler.port).await;
    // Parse whose body is one byte: an empty statement name and nothing else.
    let mut frame = BytesMut::new();
    frame.put_u8(b'P');
    frame.put_u32(5);
    frame.put_u8(0);
    protocol::pg::encode::sync(&mut frame);
    offender.send(&frame).await.unwrap();
    let messages = offender.read_until_closed().await;
    let error = final_error(&messages);
    assert_eq!(
        error.field(b'C').as_deref(),
        Some("08P01"),
        "{}",
        describe(&messages)
    );

    // A frame with a tag no frontend message has.
    let mut offender = logged_in(pooler.port).await;
    offender.send(&[b'x', 0, 0, 0, 4]).await.unwrap();
    let messages = offender.read_until_closed().await;
    assert_eq!(
        final_error(&messages).field(b'C').as_deref(),
        Some("08P01"),
        "{}",
        describe(&messages)
    );

    // A frame whose length field is below the minimum of 4.
    let mut offender = logged_in(pooler.port).await;
    offender.send(&[b'Q', 0, 0, 0, 2]).await.unwrap();
    let messages = offender.read_until_closed().await;
    assert_eq!(
        final_error(&messages).field(b'C').as_deref(),
        Some("08P01"),
        "{}",
        describe(&messages)
    );

    // The concurrent client never noticed.
    assert_eq!(
        data_values(&bystander.simple_query("SELECT 2").await),
        ["2"]
    );
    still_serving(&pooler).await;
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_packet_is_refused_without_crashing() {
    let pg = PgCluster::start(Default::default()).unwrap();
    let pooler = TestPooler::start(
        pg.primary(),
        "pool_mode = transaction\ndefault_pool_size = 1\nauth_type = trust\nmax_packet_size = 1024\n",
        USERLIST,
    )
    .await;
    let mut bystander = logged_in(pooler.port).await;

    // A Query just under the limit is fine.
    let mut small = logged_in(pooler.port).await;
    let sql = format!("SELECT '{}'", "x".repeat(900));
    assert_eq!(
        data_values(&small.simple_query(&sql).await),
        ["x".repeat(900)]
    );

    // A 1 MB Query: the header alone must be enough to refuse it.
    let mut offender = logged_in(pooler.port).await;
    let mut query = BytesMut::new();
    protocol::pg::encode::query(
        &mut query,
        format!("SELECT '{}'", "y".repeat(1 << 20)).as_bytes(),
    )
    .unwrap();
    offender.send(&query[..5]).await.unwrap();
    // The rest may not be read at all: the pooler may close as soon as it saw the header.
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        offender.send(&query[5..]),
    )
    .await;
    let messages = offender.read_until_closed().await;
    let error = final_error(&messages);
    assert_eq!(
        error.field(b'C').as_deref(),
        Some("08P01"),
        "{}",
        describe(&messages)
    );

    // A startup packet over the limit is refused too.
    let mut raw = RawClient::connect(pooler.port).await;
    let long_name = "z".repeat(2000);
    let messages = raw
        .startup(&[
            ("user", "postgres"),
            ("database", "postgres"),
            ("application_name", &long_name),
        ])
        .await;
    let _ = messages; // accepted or refused: either way the pooler must go on serving

    assert_eq!(
        data_values(&bystander.simple_query("SELECT 3").await),
        ["3"]
    );
    still_serving(&pooler).await;
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_a_startup_packet_is_refused() {
    let pg = PgCluster::start(Default::default()).unwrap();
    let pooler = TestPooler::start(
        pg.primary(),
        "pool_mode = transaction\nauth_type = trust\n",
        USERLIST,
    )
    .await;
    let mut bystander = logged_in(pooler.port).await;

    // An HTTP request: its first four bytes read as a length of ~1.2 GB.
    let mut raw = RawClient::connect(pooler.port).await;
    let _ = raw.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    let messages = raw.read_until_closed().await;
    final_error(&messages);

    // A well-framed packet with an unknown protocol code.
    let mut raw = RawClient::connect(pooler.port).await;
    raw.send(&[0, 0, 0, 8, 0x12, 0x34, 0x56, 0x78])
        .await
        .unwrap();
    let messages = raw.read_until_closed().await;
    final_error(&messages);

    // A length below the minimum, then random bytes.
    let mut raw = RawClient::connect(pooler.port).await;
    let _ = raw.send(&[0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef]).await;
    let messages = raw.read_until_closed().await;
    final_error(&messages);

    // A client that connects and closes at once, and one that sends half a header.
    drop(RawClient::connect(pooler.port).await);
    let mut raw = RawClient::connect(pooler.port).await;
    raw.send(&[0, 0]).await.unwrap();
    drop(raw);

    assert_eq!(
        data_values(&bystander.simple_query("SELECT 4").await),
        ["4"]
    );
    still_serving(&pooler).await;
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_request_is_declined_and_login_follows() {
    let pg = PgCluster::start(Default::default()).unwrap();
    let pooler = TestPooler::start(
        pg.primary(),
        "pool_mode = transaction\nauth_type = trust\n",
        USERLIST,
    )
    .await;
    let mut raw = RawClient::connect(pooler.port).await;
    let mut request = BytesMut::new();
    protocol::pg::encode::ssl_request(&mut request);
    raw.send(&request).await.unwrap();
    assert_eq!(
        raw.read_byte().await,
        Some(b'N'),
        "SSLRequest answered with 'N' (no TLS configured)"
    );
    let messages = raw.startup(LOGIN).await;
    assert_eq!(
        messages.last().map(|m| m.tag),
        Some(b'Z'),
        "login after SSLRequest: {}",
        describe(&messages)
    );
    assert!(
        messages.iter().any(|m| m.tag == b'K'),
        "BackendKeyData sent: {}",
        tags(&messages)
    );
    assert_eq!(data_values(&raw.simple_query("SELECT 5").await), ["5"]);

    // GSSENCRequest is declined the same way.
    let mut raw = RawClient::connect(pooler.port).await;
    let mut request = BytesMut::new();
    protocol::pg::encode::gss_enc_request(&mut request);
    raw.send(&request).await.unwrap();
    assert_eq!(
        raw.read_byte().await,
        Some(b'N'),
        "GSSENCRequest answered with 'N'"
    );
    let messages = raw.startup(LOGIN).await;
    assert_eq!(
        messages.last().map(|m| m.tag),
        Some(b'Z'),
        "login after GSSENCRequest: {}",
        describe(&messages)
    );

    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_v2_startup_gets_pgbouncers_error() {
    let pg = PgCluster::start(Default::default()).unwrap();
    let pooler = TestPooler::start(
        pg.primary(),
        "pool_mode = transaction\nauth_type = trust\n",
        USERLIST,
    )
    .await;
    // A protocol 2.0 startup packet.
    let mut raw = RawClient::connect(pooler.port).await;
    let mut packet = BytesMut::new();
    packet.put_u32(4 + 4 + 5 + 9 + 1);
    packet.put_u32(0x0002_0000);
    packet.put_slice(b"user\0postgres\0\0");
    raw.send(&packet).await.unwrap();
    let messages = raw.read_until_closed().await;
    let error = final_error(&messages);
    assert_eq!(
        error.field(b'M').as_deref(),
        Some("old V2 protocol not supported"),
        "{}",
        describe(&messages)
    );

    still_serving(&pooler).await;
    pooler.stop().await;
}
