//! cacheproxy pinned state across a graceful failover: an open MULTI gets a clear error and
//! EXECABORT, a lost WATCH makes the next EXEC fail (nil), a blocked BLPOP gets an error and
//! works again on the new master, a SELECT 1 client keeps its database, and a RESP3
//! subscriber is re-subscribed. No client connection is dropped.

mod cacheproxy_support;

use std::sync::Arc;
use std::time::Duration;

use cacheproxy_support::{RawClient, TestProxy};
use integration_tests::{RedisOptions, RedisSet};
use redis::AsyncCommands;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_clients_survive_a_failover() {
    let set = Arc::new(
        RedisSet::start_async(RedisOptions::default())
            .await
            .unwrap(),
    );
    let proxy = TestProxy::in_front_of(&set, |_| {}).await;
    let old = set.master_addr().unwrap();
    let mut db = proxy.connection().await;
    let _: () = db.set("watched", "1").await.unwrap();

    let mut in_multi = proxy.raw().await;
    in_multi.command(&["MULTI"]).await;
    in_multi.command(&["SET", "lost-in-multi", "x"]).await;
    in_multi.expect("+OK\r\n+QUEUED\r\n").await;

    let mut watching = proxy.raw().await;
    watching.command(&["WATCH", "watched"]).await;
    watching.expect("+OK\r\n").await;

    let mut blocked = proxy.raw().await;
    blocked.command(&["BLPOP", "failover-queue", "0"]).await;

    let mut db1 = proxy.raw().await;
    db1.command(&["SELECT", "1"]).await;
    db1.command(&["SET", "in-db1", "before"]).await;
    db1.expect("+OK\r\n+OK\r\n").await;

    let mut subscriber = proxy.raw().await;
    subscriber.command(&["HELLO", "3"]).await;
    let _ = subscriber.read_value().await;
    subscriber.command(&["SUBSCRIBE", "alerts"]).await;
    subscriber
        .expect(">3\r\n$9\r\nsubscribe\r\n$6\r\nalerts\r\n:1\r\n")
        .await;

    let new = {
        let set = Arc::clone(&set);
        tokio::task::spawn_blocking(move || set.failover_and_wait(Duration::from_secs(30)))
            .await
            .unwrap()
            .unwrap()
    };
    assert_ne!(new, old);
    // Let the proxy see the switch (its routes change within a Sentinel poll).
    wait_until(|| proxy.running().topology().master_addr() == Some(new)).await;

    // The blocked BLPOP was on the old master: it gets the failover error.
    let reply = blocked.read_value().await;
    assert!(
        lossy(&reply).contains("lost during failover"),
        "{}",
        lossy(&reply)
    );
    blocked.command(&["BLPOP", "failover-queue", "5"]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _: () = db.rpush("failover-queue", "job").await.unwrap();
    blocked
        .expect("*2\r\n$14\r\nfailover-queue\r\n$3\r\njob\r\n")
        .await;

    // The open transaction cannot be committed; the connection stays usable.
    in_multi.command(&["SET", "after", "y"]).await;
    let reply = in_multi.read_value().await;
    assert!(lossy(&reply).starts_with("-ERR"), "{}", lossy(&reply));
    in_multi.command(&["EXEC"]).await;
    in_multi
        .expect("-EXECABORT Transaction discarded because of previous errors.\r\n")
        .await;
    in_multi.command(&["MULTI"]).await;
    in_multi.command(&["INCR", "fresh-tx"]).await;
    in_multi.command(&["EXEC"]).await;
    in_multi.expect("+OK\r\n+QUEUED\r\n*1\r\n:1\r\n").await;
    let lost: Option<String> = db.get("lost-in-multi").await.unwrap();
    assert_eq!(lost, None);

    // The WATCH was lost with its connection: EXEC fails as if the key had changed.
    watching.command(&["MULTI"]).await;
    watching.command(&["SET", "watched", "2"]).await;
    watching.command(&["EXEC"]).await;
    watching.expect("+OK\r\n+QUEUED\r\n*-1\r\n").await;
    let watched: String = db.get("watched").await.unwrap();
    assert_eq!(watched, "1");

    // The SELECT 1 client still works in database 1.
    db1.command(&["GET", "in-db1"]).await;
    db1.expect("$6\r\nbefore\r\n").await;

    // The subscriber was re-subscribed on the new master.
    assert!(publish_until_received(&mut db, "alerts").await);
    let message = subscriber.read_value().await;
    assert!(
        lossy(&message).starts_with(">3\r\n$7\r\nmessage"),
        "{}",
        lossy(&message)
    );

    for client in [&mut in_multi, &mut watching, &mut blocked, &mut db1] {
        ping(client).await;
    }
    proxy.stop().await;
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn ping(client: &mut RawClient) {
    client.command(&["PING"]).await;
    client.expect("+PONG\r\n").await;
}

async fn wait_until(condition: impl Fn() -> bool) {
    for _ in 0..200 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached in 10 s");
}

async fn publish_until_received(
    publisher: &mut redis::aio::MultiplexedConnection,
    channel: &str,
) -> bool {
    for _ in 0..50 {
        let receivers: i64 = publisher.publish(channel, "after").await.unwrap();
        if receivers > 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
