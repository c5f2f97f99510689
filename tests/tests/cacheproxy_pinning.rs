//! cacheproxy pinned connections: MULTI/EXEC with WATCH, BLPOP woken by another client,
//! Pub/Sub in RESP2 (redis-rs) and RESP3 (raw HELLO 3), SELECT isolation, and pinned
//! connections going back to the pool.

mod cacheproxy_support;

use std::time::{Duration, Instant};

use cacheproxy_support::TestProxy;
use futures_util::StreamExt;
use integration_tests::{RedisOptions, RedisSet};
use redis::AsyncCommands;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateful_commands_get_their_own_connection() {
    let set = RedisSet::start_async(RedisOptions::default())
        .await
        .unwrap();
    let proxy = TestProxy::in_front_of(&set, |_| {}).await;
    transactions(&proxy).await;
    blocking_pop(&proxy).await;
    pubsub_resp2(&proxy).await;
    pubsub_resp3(&proxy).await;
    select_isolation(&proxy).await;
    tracking_resp3(&proxy).await;
    // Every pinned connection went back to the pool.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stats = proxy.running().stats();
    assert_eq!(stats.pinned_in_use, 0, "{stats:?}");
    assert_eq!(stats.upstream_errors, 0, "{stats:?}");
    proxy.stop().await;
}

async fn transactions(proxy: &TestProxy) {
    let mut db = proxy.connection().await;
    let mut other = proxy.connection().await;
    let _: () = db.set("balance", 10).await.unwrap();

    // A plain transaction.
    let (first, second): (i64, i64) = redis::pipe()
        .atomic()
        .incr("balance", 1)
        .incr("balance", 1)
        .query_async(&mut db)
        .await
        .unwrap();
    assert_eq!((first, second), (11, 12));

    // WATCH, then a conflicting write from another client: EXEC is aborted (nil).
    let mut raw = proxy.raw().await;
    raw.command(&["WATCH", "balance"]).await;
    raw.expect("+OK\r\n").await;
    raw.command(&["GET", "balance"]).await;
    raw.expect("$2\r\n12\r\n").await;
    let _: () = other.set("balance", 100).await.unwrap();
    raw.command(&["MULTI"]).await;
    raw.command(&["SET", "balance", "13"]).await;
    raw.command(&["EXEC"]).await;
    raw.expect("+OK\r\n+QUEUED\r\n*-1\r\n").await;
    let balance: i64 = db.get("balance").await.unwrap();
    assert_eq!(balance, 100);

    // The same without a conflict commits; a queued error aborts.
    raw.command(&["WATCH", "balance"]).await;
    raw.command(&["MULTI"]).await;
    raw.command(&["INCRBY", "balance", "5"]).await;
    raw.command(&["EXEC"]).await;
    raw.expect("+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n:105\r\n").await;
    raw.command(&["MULTI"]).await;
    raw.command(&["PING"]).await;
    raw.command(&["DISCARD"]).await;
    raw.expect("+OK\r\n+QUEUED\r\n+OK\r\n").await;
    raw.command(&["EXEC"]).await;
    raw.expect("-ERR EXEC without MULTI\r\n").await;
}

async fn blocking_pop(proxy: &TestProxy) {
    let mut waiter = proxy.connection().await;
    let mut pusher = proxy.connection().await;
    let mut bystander = proxy.connection().await;
    let started = Instant::now();
    let blocked = tokio::spawn(async move {
        let popped: Option<(String, String)> = waiter.blpop("jobs", 10.0).await.unwrap();
        popped
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Other clients are not stuck behind the blocked call.
    let pong: String = redis::cmd("PING")
        .query_async(&mut bystander)
        .await
        .unwrap();
    assert_eq!(pong, "PONG");
    let _: () = bystander.set("unblocked", 1).await.unwrap();
    let _: () = pusher.lpush("jobs", "job-1").await.unwrap();
    let popped = blocked.await.unwrap();
    assert_eq!(popped, Some(("jobs".to_owned(), "job-1".to_owned())));
    assert!(started.elapsed() < Duration::from_secs(5));
    // A timed-out BLPOP returns nil.
    let mut raw = proxy.raw().await;
    raw.command(&["BLPOP", "nothing", "0.2"]).await;
    raw.expect("*-1\r\n").await;
    raw.command(&["GET", "unblocked"]).await;
    raw.expect("$1\r\n1\r\n").await;
}

async fn pubsub_resp2(proxy: &TestProxy) {
    let client = redis::Client::open(proxy.url(0)).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe("news").await.unwrap();
    pubsub.psubscribe("sport.*").await.unwrap();
    let mut publisher = proxy.connection().await;
    let receivers: i64 = publisher.publish("news", "hello").await.unwrap();
    assert_eq!(receivers, 1);
    let _: i64 = publisher.publish("sport.tennis", "ace").await.unwrap();
    {
        let mut messages = pubsub.on_message();
        let first = tokio::time::timeout(Duration::from_secs(5), messages.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.get_channel_name(), "news");
        assert_eq!(first.get_payload::<String>().unwrap(), "hello");
        let second = tokio::time::timeout(Duration::from_secs(5), messages.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(second.get_channel_name(), "sport.tennis");
        assert_eq!(second.get_pattern::<String>().unwrap(), "sport.*");
    }
    pubsub.unsubscribe("news").await.unwrap();
    pubsub.punsubscribe("sport.*").await.unwrap();
    drop(pubsub);

    // Raw RESP2: subscribed mode, PING's pub/sub form, then back to normal commands.
    let mut raw = proxy.raw().await;
    raw.command(&["SUBSCRIBE", "a", "b"]).await;
    raw.expect(
        "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n",
    )
    .await;
    raw.command(&["PING"]).await;
    raw.expect("*2\r\n$4\r\npong\r\n$0\r\n\r\n").await;
    let _: i64 = publisher.publish("b", "x").await.unwrap();
    raw.expect("*3\r\n$7\r\nmessage\r\n$1\r\nb\r\n$1\r\nx\r\n")
        .await;
    raw.command(&["UNSUBSCRIBE"]).await;
    let first = raw.read_value().await;
    let second = raw.read_value().await;
    let both = format!(
        "{}{}",
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&second)
    );
    assert!(
        both.contains("unsubscribe") && both.ends_with(":0\r\n"),
        "{both}"
    );
    raw.command(&["SET", "after-pubsub", "ok"]).await;
    raw.expect("+OK\r\n").await;
}

async fn pubsub_resp3(proxy: &TestProxy) {
    let mut publisher = proxy.connection().await;
    let mut raw = proxy.raw().await;
    raw.command(&["HELLO", "3"]).await;
    let hello = raw.read_value().await;
    assert!(
        hello.starts_with(b"%7\r\n"),
        "{}",
        String::from_utf8_lossy(&hello)
    );
    raw.command(&["SUBSCRIBE", "chat"]).await;
    raw.expect(">3\r\n$9\r\nsubscribe\r\n$4\r\nchat\r\n:1\r\n")
        .await;
    let _: i64 = publisher.publish("chat", "hi").await.unwrap();
    raw.expect(">3\r\n$7\r\nmessage\r\n$4\r\nchat\r\n$2\r\nhi\r\n")
        .await;
    // RESP3 allows regular commands while subscribed; HGETALL answers with a map.
    let _: () = publisher.hset("h3", "f", "v").await.unwrap();
    raw.command(&["HGETALL", "h3"]).await;
    raw.expect("%1\r\n$1\r\nf\r\n$1\r\nv\r\n").await;
    raw.command(&["UNSUBSCRIBE", "chat"]).await;
    raw.expect(">3\r\n$11\r\nunsubscribe\r\n$4\r\nchat\r\n:0\r\n")
        .await;
    // Unpinned again: RESP3 replies from a shared RESP3 connection.
    raw.command(&["HGETALL", "h3"]).await;
    raw.expect("%1\r\n$1\r\nf\r\n$1\r\nv\r\n").await;
    raw.command(&["GET", "missing"]).await;
    raw.expect("_\r\n").await;
}

async fn select_isolation(proxy: &TestProxy) {
    let mut db0 = proxy.connection().await;
    let mut db1 = proxy.connection_to(&proxy.url(1)).await;
    let _: () = db1.set("only-in-db1", "yes").await.unwrap();
    let _: () = db0.set("only-in-db0", "yes").await.unwrap();
    let seen_in_0: Option<String> = db0.get("only-in-db1").await.unwrap();
    assert_eq!(seen_in_0, None);
    let seen_in_1: Option<String> = db1.get("only-in-db0").await.unwrap();
    assert_eq!(seen_in_1, None);
    let own: String = db1.get("only-in-db1").await.unwrap();
    assert_eq!(own, "yes");

    let mut raw = proxy.raw().await;
    raw.command(&["SELECT", "1"]).await;
    raw.command(&["GET", "only-in-db1"]).await;
    raw.command(&["SELECT", "0"]).await;
    raw.command(&["GET", "only-in-db1"]).await;
    raw.expect("+OK\r\n$3\r\nyes\r\n+OK\r\n$-1\r\n").await;
    raw.command(&["SELECT", "0"]).await;
    raw.expect("+OK\r\n").await;
}

async fn tracking_resp3(proxy: &TestProxy) {
    let mut writer = proxy.connection().await;
    let _: () = writer.set("cached", "v1").await.unwrap();
    let mut raw = proxy.raw().await;
    raw.command(&["HELLO", "3"]).await;
    let _ = raw.read_value().await;
    raw.command(&["CLIENT", "TRACKING", "on"]).await;
    raw.expect("+OK\r\n").await;
    raw.command(&["GET", "cached"]).await;
    raw.expect("$2\r\nv1\r\n").await;
    let _: () = writer.set("cached", "v2").await.unwrap();
    raw.expect(">2\r\n$10\r\ninvalidate\r\n*1\r\n$6\r\ncached\r\n")
        .await;
    raw.command(&["CLIENT", "TRACKING", "off"]).await;
    raw.expect("+OK\r\n").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_only_when_enabled() {
    let set = RedisSet::start_async(RedisOptions::default())
        .await
        .unwrap();
    let closed = TestProxy::in_front_of(&set, |_| {}).await;
    let mut raw = closed.raw().await;
    raw.command(&["MONITOR"]).await;
    let refusal = raw.read_value().await;
    assert!(String::from_utf8_lossy(&refusal).starts_with("-ERR command 'monitor' is not allowed"));
    closed.stop().await;

    let open = TestProxy::in_front_of(&set, |config| config.enable_monitor = true).await;
    let mut monitor = open.raw().await;
    monitor.command(&["MONITOR"]).await;
    monitor.expect("+OK\r\n").await;
    let mut db = open.connection().await;
    let _: () = db.set("monitored-key", "1").await.unwrap();
    let mut seen = String::new();
    while !seen.contains("monitored-key") {
        seen.push_str(&String::from_utf8_lossy(&monitor.read_value().await));
    }
    open.stop().await;
}
