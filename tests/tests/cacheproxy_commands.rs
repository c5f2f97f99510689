//! cacheproxy end to end: data types through redis-rs and redis-cli, local answers,
//! refusals, INFO, inline commands, protocol errors, large replies and client AUTH, against a
//! real master + replica + 3 Sentinels.

mod cacheproxy_support;

use std::collections::HashMap;

use cacheproxy_support::{RawClient, TestProxy, redis_cli, redis_cli_stdin};
use integration_tests::{RedisOptions, RedisSet};
use redis::AsyncCommands;
use tokio::io::AsyncReadExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_through_the_proxy() {
    let set = RedisSet::start_async(RedisOptions::default())
        .await
        .unwrap();
    let proxy = TestProxy::in_front_of(&set, |_| {}).await;
    let mut db = proxy.connection().await;

    // Strings.
    let _: () = db.set("greeting", "hello").await.unwrap();
    let value: String = db.get("greeting").await.unwrap();
    assert_eq!(value, "hello");
    let counter: i64 = db.incr("counter", 5).await.unwrap();
    assert_eq!(counter, 5);
    let _: () = redis::cmd("MSET")
        .arg(&["a", "1", "b", "2"])
        .query_async(&mut db)
        .await
        .unwrap();
    let values: Vec<Option<String>> = db.mget(&["a", "b", "missing"]).await.unwrap();
    assert_eq!(
        values,
        vec![Some("1".to_owned()), Some("2".to_owned()), None]
    );
    let _: () = db.expire("a", 100).await.unwrap();
    let ttl: i64 = db.ttl("a").await.unwrap();
    assert!((1..=100).contains(&ttl));

    // Hashes.
    let _: () = db
        .hset_multiple("user:1", &[("name", "ada"), ("lang", "rust")])
        .await
        .unwrap();
    let name: String = db.hget("user:1", "name").await.unwrap();
    assert_eq!(name, "ada");
    let all: HashMap<String, String> = db.hgetall("user:1").await.unwrap();
    assert_eq!(all.len(), 2);

    // Lists.
    let _: () = db.rpush("queue", &["x", "y", "z"]).await.unwrap();
    let items: Vec<String> = db.lrange("queue", 0, -1).await.unwrap();
    assert_eq!(items, vec!["x", "y", "z"]);
    let first: String = db.lpop("queue", None).await.unwrap();
    assert_eq!(first, "x");

    // Sets.
    let _: () = db.sadd("tags", &["red", "green", "red"]).await.unwrap();
    let size: usize = db.scard("tags").await.unwrap();
    assert_eq!(size, 2);
    let is_member: bool = db.sismember("tags", "green").await.unwrap();
    assert!(is_member);

    // Sorted sets.
    let _: () = db
        .zadd_multiple("scores", &[(1.5, "ann"), (3.0, "bob"), (2.0, "cy")])
        .await
        .unwrap();
    let ranked: Vec<(String, f64)> = db.zrange_withscores("scores", 0, -1).await.unwrap();
    assert_eq!(ranked.first().map(|(name, _)| name.as_str()), Some("ann"));
    assert_eq!(ranked.len(), 3);
    let score: f64 = db.zscore("scores", "bob").await.unwrap();
    assert!((score - 3.0).abs() < f64::EPSILON);

    // Streams (raw commands: the workspace's redis crate has no stream helpers).
    let id: String = redis::cmd("XADD")
        .arg(&["events", "*", "kind", "login"])
        .query_async(&mut db)
        .await
        .unwrap();
    assert!(id.contains('-'));
    let _: String = redis::cmd("XADD")
        .arg(&["events", "*", "kind", "logout"])
        .query_async(&mut db)
        .await
        .unwrap();
    let length: usize = redis::cmd("XLEN")
        .arg("events")
        .query_async(&mut db)
        .await
        .unwrap();
    assert_eq!(length, 2);
    let range: redis::Value = redis::cmd("XRANGE")
        .arg(&["events", "-", "+"])
        .query_async(&mut db)
        .await
        .unwrap();
    assert!(matches!(range, redis::Value::Array(ref entries) if entries.len() == 2));
    let read: redis::Value = redis::cmd("XREAD")
        .arg(&["COUNT", "10", "STREAMS", "events", "0"])
        .query_async(&mut db)
        .await
        .unwrap();
    assert!(!matches!(read, redis::Value::Nil));

    // Local answers, unknown and refused commands; the connection stays usable.
    let pong: String = redis::cmd("PING").query_async(&mut db).await.unwrap();
    assert_eq!(pong, "PONG");
    let echoed: String = redis::cmd("ECHO")
        .arg("hi there")
        .query_async(&mut db)
        .await
        .unwrap();
    assert_eq!(echoed, "hi there");
    let unknown: redis::RedisResult<()> = redis::cmd("NOSUCHCOMMAND")
        .arg("x")
        .query_async(&mut db)
        .await;
    let text = format!("{:?}", unknown.unwrap_err());
    assert!(text.contains("unknown command"), "{text}");
    let refused: redis::RedisResult<()> = redis::cmd("SHUTDOWN").query_async(&mut db).await;
    let text = format!("{:?}", refused.unwrap_err());
    assert!(
        text.contains("shutdown") && text.contains("not allowed"),
        "{text}"
    );
    let info: String = redis::cmd("INFO").query_async(&mut db).await.unwrap();
    assert!(
        info.contains("# Server") && info.contains("# Proxy"),
        "{info}"
    );
    assert!(info.contains(&format!("proxy_master:{}", set.master_addr().unwrap())));
    let _: () = redis::cmd("CLIENT")
        .arg(&["SETNAME", "tester"])
        .query_async(&mut db)
        .await
        .unwrap();
    let name: String = redis::cmd("CLIENT")
        .arg("GETNAME")
        .query_async(&mut db)
        .await
        .unwrap();
    assert_eq!(name, "tester");

    // A multi-megabyte reply streams through.
    let big = "v".repeat(1000);
    let mut pipe = redis::pipe();
    for _ in 0..5000 {
        pipe.rpush("biglist", &big).ignore();
    }
    let _: () = pipe.query_async(&mut db).await.unwrap();
    let everything: Vec<String> = db.lrange("biglist", 0, -1).await.unwrap();
    assert_eq!(everything.len(), 5000);
    assert!(everything.iter().all(|item| item.len() == 1000));

    // redis-cli, including inline commands piped on stdin.
    assert_eq!(
        redis_cli(proxy.addr, &["SET", "cli", "from redis-cli"]),
        "OK"
    );
    assert_eq!(redis_cli(proxy.addr, &["GET", "cli"]), "from redis-cli");
    assert_eq!(redis_cli(proxy.addr, &["LLEN", "biglist"]), "5000");
    let script = redis_cli_stdin(proxy.addr, &[], "SET piped 42\nINCR piped\nGET piped\n");
    assert_eq!(script.lines().collect::<Vec<_>>(), vec!["OK", "43", "43"]);

    raw_protocol(&proxy).await;
    proxy.stop().await;
}

/// Inline commands, quoting, and protocol errors closing only the offending client.
async fn raw_protocol(proxy: &TestProxy) {
    let mut client = proxy.raw().await;
    client
        .send(b"PING\r\nSET inline \"a b\"\r\nGET inline\n\r\n")
        .await;
    client.expect("+PONG\r\n+OK\r\n$3\r\na b\r\n").await;
    client.send(b"*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n").await;
    client.expect("$5\r\nhello\r\n").await;

    let mut bystander = proxy.raw().await;
    let mut broken = proxy.raw().await;
    broken.send(b"*1\r\n$x\r\n").await;
    broken
        .expect("-ERR Protocol error: invalid bulk length\r\n")
        .await;
    assert!(broken.is_closed().await);
    let mut huge = proxy.raw().await;
    huge.send(b"*2\r\n$3\r\nGET\r\n$600000000\r\n").await;
    huge.expect("-ERR Protocol error: invalid bulk length\r\n")
        .await;
    assert!(huge.is_closed().await);
    let mut quoted = proxy.raw().await;
    quoted.send(b"SET k \"unbalanced\r\n").await;
    quoted
        .expect("-ERR Protocol error: unbalanced quotes in request\r\n")
        .await;
    assert!(quoted.is_closed().await);
    // Redis' cross-protocol defence: an HTTP request is closed without any reply.
    let mut http = proxy.raw().await;
    http.send(b"POST / HTTP/1.1\r\nHost: example\r\n\r\n").await;
    let mut chunk = [0u8; 64];
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        http.stream.read(&mut chunk),
    )
    .await
    .expect("closed in time")
    .unwrap_or(0);
    assert_eq!(read, 0, "no reply to an HTTP request");
    bystander.command(&["PING"]).await;
    bystander.expect("+PONG\r\n").await;
    bystander.send(b"QUIT\r\n").await;
    bystander.expect("+OK\r\n").await;
    assert!(bystander.is_closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_auth_with_requirepass_and_users() {
    let set = RedisSet::start_async(RedisOptions {
        password: Some("upstream-secret".to_owned()),
        ..RedisOptions::default()
    })
    .await
    .unwrap();
    let proxy = TestProxy::in_front_of(&set, |config| {
        config.password = Some("upstream-secret".to_owned());
        config.requirepass = Some("client-secret".to_owned());
        config.users = vec!["alice:wonder".to_owned()];
    })
    .await;

    let mut raw = proxy.raw().await;
    raw.command(&["GET", "k"]).await;
    raw.expect("-NOAUTH Authentication required.\r\n").await;
    raw.command(&["AUTH", "wrong"]).await;
    raw.expect("-WRONGPASS invalid username-password pair or user is disabled.\r\n")
        .await;
    raw.command(&["AUTH", "client-secret"]).await;
    raw.expect("+OK\r\n").await;
    raw.command(&["SET", "k", "v"]).await;
    raw.expect("+OK\r\n").await;

    // Before AUTH, Redis' stricter limits apply (at most 10 arguments).
    let mut eager = proxy.raw().await;
    eager.send(b"*11\r\n").await;
    eager
        .expect("-ERR Protocol error: unauthenticated multibulk length\r\n")
        .await;
    assert!(eager.is_closed().await);

    let mut alice = proxy
        .connection_to(&format!(
            "redis://alice:wonder@127.0.0.1:{}/0",
            proxy.addr.port()
        ))
        .await;
    let value: String = alice.get("k").await.unwrap();
    assert_eq!(value, "v");
    let mut resp3 = proxy
        .connection_to(&format!(
            "redis://:client-secret@127.0.0.1:{}/0?protocol=resp3",
            proxy.addr.port()
        ))
        .await;
    let all: HashMap<String, String> = {
        let _: () = resp3.hset("h", "f", "1").await.unwrap();
        resp3.hgetall("h").await.unwrap()
    };
    assert_eq!(all.get("f").map(String::as_str), Some("1"));
    let denied =
        cacheproxy_support::connect(&format!("redis://:nope@127.0.0.1:{}/0", proxy.addr.port()))
            .await;
    assert!(denied.is_err());
    assert_eq!(
        cacheproxy_support::redis_cli(
            proxy.addr,
            &["--no-auth-warning", "-a", "client-secret", "GET", "k"]
        ),
        "v"
    );
    let _ = RawClient::connect(proxy.addr).await;
    proxy.stop().await;
}
