//! The extended-protocol flows drivers send that once wedged or hung the pooler in
//! transaction mode, each as its own regression test against a real PostgreSQL: Flush
//! (asyncpg, libpq pipelines), an empty pipeline, pipelines with errors and a delayed
//! Sync, a pipeline larger than the socket buffers, `pgbench -M prepared` with more
//! clients than servers, idle-in-transaction time, and oversized messages.

mod common;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::TestPooler;
use common::raw::{Message, RawClient, tags};
use integration_tests::{PgCluster, PgOptions};
use protocol::pg::encode;

const TRANSACTION_MODE: &str = "pool_mode = transaction\ndefault_pool_size = 1\nmax_prepared_statements = 200\nauth_type = trust\nadmin_users = postgres\n";

async fn setup(general: &str) -> (PgCluster, TestPooler) {
    let pg = PgCluster::start_async(PgOptions::default()).await.unwrap();
    let pooler = TestPooler::start(pg.primary(), general, "\"postgres\" \"\"\n").await;
    (pg, pooler)
}

async fn login(port: u16) -> RawClient {
    let mut client = RawClient::connect(port).await;
    let answer = client
        .startup(&[("user", "postgres"), ("database", "postgres")])
        .await;
    assert_eq!(
        answer.last().map(|m| m.tag),
        Some(b'Z'),
        "login: {}",
        tags(&answer)
    );
    client
}

/// Reads exactly `count` messages.
async fn read_n(client: &mut RawClient, count: usize) -> Vec<Message> {
    let mut messages = Vec::new();
    for _ in 0..count {
        messages.push(client.read_message().await.expect("connection closed"));
    }
    messages
}

fn parse_bind_describe_execute(out: &mut BytesMut, statement: &[u8], sql: &[u8]) {
    encode::parse(out, statement, sql, &[]).unwrap();
    encode::bind(out, b"", statement, &[], &[], &[]).unwrap();
    encode::describe_portal(out, b"").unwrap();
    encode::execute(out, b"", 0).unwrap();
}

/// A new client logs in and the console answers, each within `limit`.
async fn assert_responsive(port: u16, limit: Duration) {
    let started = Instant::now();
    let mut console = RawClient::connect(port).await;
    console
        .startup(&[("user", "postgres"), ("database", "pgbouncer")])
        .await;
    let answer = console.simple_query("SHOW POOLS").await;
    assert_eq!(answer.last().map(|m| m.tag), Some(b'Z'));
    let console_time = started.elapsed();
    let started = Instant::now();
    login(port).await;
    let login_time = started.elapsed();
    assert!(
        console_time < limit && login_time < limit,
        "console {console_time:?}, login {login_time:?} (limit {limit:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_is_answered_and_keeps_the_server_until_sync() {
    let (_pg, pooler) = setup(TRANSACTION_MODE).await;
    let mut client = login(pooler.port).await;
    // asyncpg's prepare: Parse + Describe + Flush; then Bind/Execute/Sync.
    let mut out = BytesMut::new();
    parse_bind_describe_execute(&mut out, b"", b"SELECT 1");
    encode::flush(&mut out);
    client.send(&out).await.unwrap();
    assert_eq!(tags(&read_n(&mut client, 4).await), "12TD");
    assert_eq!(tags(&read_n(&mut client, 1).await), "C");
    // The server stays with this client (its implicit transaction is open): another
    // client waits, and is served as soon as the Sync ends the batch.
    let mut other = login(pooler.port).await;
    let waiting = tokio::spawn(async move { other.simple_query("SELECT 2").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the server was released mid-batch");
    assert_responsive(pooler.port, Duration::from_millis(100)).await;
    let mut sync = BytesMut::new();
    encode::sync(&mut sync);
    client.send(&sync).await.unwrap();
    assert_eq!(tags(&client.read_until_ready().await), "Z");
    assert_eq!(tags(&waiting.await.unwrap()), "TDCZ");
    // A lone Flush, and Parse + Flush of a named statement.
    let mut out = BytesMut::new();
    encode::flush(&mut out);
    encode::parse(&mut out, b"s1", b"SELECT $1::int + 1", &[]).unwrap();
    encode::describe_statement(&mut out, b"s1").unwrap();
    encode::flush(&mut out);
    client.send(&out).await.unwrap();
    assert_eq!(tags(&read_n(&mut client, 3).await), "1tT");
    let mut out = BytesMut::new();
    encode::bind(&mut out, b"", b"s1", &[], &[Some(b"41")], &[]).unwrap();
    encode::execute(&mut out, b"", 0).unwrap();
    encode::sync(&mut out);
    client.send(&out).await.unwrap();
    let answer = client.read_until_ready().await;
    assert_eq!(tags(&answer), "2DCZ");
    assert_eq!(common::raw::data_values(&answer), ["42"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_pipeline_leaves_the_pool_usable() {
    let (_pg, pooler) = setup(TRANSACTION_MODE).await;
    let mut client = login(pooler.port).await;
    // psycopg's empty `with conn.pipeline(): pass`: Sync, then Flush.
    let mut out = BytesMut::new();
    encode::sync(&mut out);
    encode::flush(&mut out);
    client.send(&out).await.unwrap();
    assert_eq!(tags(&client.read_until_ready().await), "Z");
    let next = tokio::time::timeout(Duration::from_secs(5), async {
        let mut next = login(pooler.port).await;
        next.simple_query("SELECT 1").await
    })
    .await
    .expect("the next client could not log in and query");
    assert_eq!(tags(&next), "TDCZ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_with_errors_delayed_syncs_and_full_buffers_are_answered() {
    let (_pg, pooler) = setup(TRANSACTION_MODE).await;
    let mut client = login(pooler.port).await;
    // An error inside: everything after it up to Sync is skipped, then work goes on.
    let mut out = BytesMut::new();
    parse_bind_describe_execute(&mut out, b"", b"SELECT 1/0");
    parse_bind_describe_execute(&mut out, b"", b"SELECT 2");
    encode::sync(&mut out);
    parse_bind_describe_execute(&mut out, b"", b"SELECT 3");
    encode::sync(&mut out);
    client.send(&out).await.unwrap();
    let mut answer = client.read_until_ready().await; // up to the error
    answer.extend(client.read_until_ready().await);
    answer.extend(client.read_until_ready().await);
    // 1/0 is folded while planning: PostgreSQL fails the Bind.
    assert_eq!(tags(&answer), "1EZ12TDCZ");
    // A delayed Sync: results arrive on Flush, the Sync comes later.
    let mut out = BytesMut::new();
    parse_bind_describe_execute(&mut out, b"", b"SELECT 4");
    encode::flush(&mut out);
    client.send(&out).await.unwrap();
    assert_eq!(tags(&read_n(&mut client, 5).await), "12TDC");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut sync = BytesMut::new();
    encode::sync(&mut sync);
    client.send(&sync).await.unwrap();
    assert_eq!(tags(&client.read_until_ready().await), "Z");
    // A pipeline of 20,000 statements written while the answers are read (as libpq
    // does): both directions far exceed the socket buffers.
    let mut out = BytesMut::new();
    encode::parse(&mut out, b"big", b"SELECT $1::text", &[]).unwrap();
    let value = vec![b'x'; 200];
    for _ in 0..20_000 {
        encode::bind(&mut out, b"", b"big", &[], &[Some(&value)], &[]).unwrap();
        encode::execute(&mut out, b"", 0).unwrap();
    }
    encode::sync(&mut out);
    let (mut reader, mut writer) = client.stream.into_split();
    let write = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        writer.write_all(&out).await.unwrap();
        writer
    });
    let mut rows = 0;
    let mut buf = BytesMut::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    'read: loop {
        use bytes::Buf;
        use tokio::io::AsyncReadExt;
        while buf.len() >= 5 {
            let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
            if buf.len() <= len {
                break;
            }
            let tag = buf[0];
            buf.advance(len + 1);
            match tag {
                b'D' => rows += 1,
                b'Z' => break 'read,
                b'E' => panic!("error in the large pipeline"),
                _ => {}
            }
        }
        assert!(
            Instant::now() < deadline,
            "large pipeline stalled after {rows} rows"
        );
        let n = tokio::time::timeout(Duration::from_secs(20), reader.read_buf(&mut buf))
            .await
            .expect("large pipeline stalled")
            .unwrap();
        assert!(n > 0, "closed after {rows} rows");
    }
    write.await.unwrap();
    assert_eq!(rows, 20_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_runs_multi_statement_transactions_in_every_mode_with_more_clients_than_servers() {
    let (_pg, pooler) = setup(TRANSACTION_MODE).await;
    let script = pooler.dir.path().join("tx.sql");
    std::fs::write(&script, "BEGIN;\nSELECT 1;\nSELECT :client_id;\nEND;\n").unwrap();
    let script = script.to_str().unwrap().to_owned();
    for mode in ["simple", "extended", "prepared"] {
        let script = script.clone();
        let port = pooler.port;
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new(integration_tests::pg_tool("pgbench").unwrap())
                .args([
                    "-n",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-U",
                    "postgres",
                ])
                .args([
                    "-M", mode, "-c", "4", "-j", "2", "-t", "200", "-f", &script, "postgres",
                ])
                .output()
                .unwrap()
        });
        let output = tokio::time::timeout(Duration::from_secs(60), output)
            .await
            .unwrap_or_else(|_| panic!("pgbench -M {mode} made no progress"))
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("actually processed: 800"),
            "pgbench -M {mode}:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_transaction_time_does_not_count_query_time() {
    let general = format!("{TRANSACTION_MODE}idle_transaction_timeout = 2\n");
    let (_pg, pooler) = setup(&general).await;
    let client = pooler.connect("postgres", None, "postgres").await.unwrap();
    client.batch_execute("BEGIN").await.unwrap();
    client.batch_execute("SELECT pg_sleep(2.2)").await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    client.batch_execute("SELECT 1").await.unwrap();
    client.batch_execute("COMMIT").await.unwrap();
    // Idle in a transaction past the limit still ends the client.
    client.batch_execute("BEGIN").await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let error = client.batch_execute("SELECT 1").await.unwrap_err();
    assert!(
        common::error_message(&error).contains("idle transaction timeout") || client.is_closed(),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_close_gets_a_protocol_error_and_harms_nobody() {
    let (_pg, pooler) = setup(TRANSACTION_MODE).await;
    let mut bystander = login(pooler.port).await;
    let mut client = login(pooler.port).await;
    let mut out = BytesMut::new();
    encode::close_statement(&mut out, &vec![b'x'; 16 * 1024]).unwrap();
    encode::sync(&mut out);
    client.send(&out).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), client.read_until_closed())
        .await
        .expect("no answer to an oversized Close");
    let error = answer
        .iter()
        .find(|m| m.tag == b'E')
        .expect("an ErrorResponse");
    assert_eq!(error.field(b'C').as_deref(), Some("08P01"));
    assert_eq!(error.field(b'S').as_deref(), Some("FATAL"));
    assert_eq!(tags(&bystander.simple_query("SELECT 1").await), "TDCZ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_clients_never_slow_down_logins_or_the_console() {
    let general = format!("{TRANSACTION_MODE}default_pool_size = 2\n");
    let (_pg, pooler) = setup(&general).await;
    let mut misbehaving = Vec::new();
    // Holds a server mid-batch after a Flush and never sends Sync.
    let mut holder = login(pooler.port).await;
    let mut out = BytesMut::new();
    parse_bind_describe_execute(&mut out, b"", b"SELECT 1");
    encode::flush(&mut out);
    holder.send(&out).await.unwrap();
    read_n(&mut holder, 5).await;
    misbehaving.push(holder);
    // Sends half a message and stalls.
    let mut stalled = login(pooler.port).await;
    stalled.send(b"Q\0\0\x10\0SELE").await.unwrap();
    misbehaving.push(stalled);
    // Pipelines large results and never reads them.
    let mut greedy = login(pooler.port).await;
    let mut out = BytesMut::new();
    for _ in 0..200 {
        encode::query(&mut out, b"SELECT repeat('x', 100000)").unwrap();
    }
    greedy.send(&out).await.unwrap();
    misbehaving.push(greedy);
    // Sends garbage after login.
    let mut garbage = login(pooler.port).await;
    garbage.send(&[0xff; 64]).await.unwrap();
    misbehaving.push(garbage);
    // Opens a connection and never sends a startup packet.
    let silent = tokio::net::TcpStream::connect(("127.0.0.1", pooler.port))
        .await
        .unwrap();
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        assert_responsive(pooler.port, Duration::from_millis(100)).await;
        slowest = slowest.max(started.elapsed());
    }
    println!("slowest console query + login among misbehaving clients: {slowest:?}");
    drop(silent);
    drop(misbehaving);
}
