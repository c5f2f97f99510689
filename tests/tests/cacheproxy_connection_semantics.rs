//! cacheproxy keeps Redis' connection semantics (issue 12): SCRIPT KILL reaches a busy
//! master at once and a busy master is not a failover; CLIENT ID/UNBLOCK/KILL/LIST/INFO
//! name proxy clients; HELLO 3 after SELECT; CLIENT REPLY; a closed subscriber is never
//! counted by PUBLISH; WAIT counts the client's writes.

mod cacheproxy_support;

use std::time::{Duration, Instant};

use cacheproxy::topology::MasterState;
use cacheproxy_support::{RawClient, TestProxy};
use integration_tests::{RedisOptions, RedisSet};
use redis::AsyncCommands;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `:n` → n.
async fn integer(client: &mut RawClient, args: &[&str]) -> i64 {
    client.command(args).await;
    let reply = text(&client.read_value().await);
    reply
        .strip_prefix(':')
        .and_then(|rest| rest.trim_end().parse().ok())
        .unwrap_or_else(|| panic!("{args:?}: integer expected, got {reply:?}"))
}

/// A bulk or verbatim reply's text.
async fn bulk_text(client: &mut RawClient, args: &[&str]) -> String {
    client.command(args).await;
    let reply = text(&client.read_value().await);
    let body = reply.split_once("\r\n").map(|(_, body)| body).unwrap_or("");
    let body = body.strip_suffix("\r\n").unwrap_or(body);
    body.strip_prefix("txt:").unwrap_or(body).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_kill_reaches_a_busy_master_and_busy_is_not_a_failover() {
    // Sentinel must not step in (it sends SCRIPT KILL itself after down-after-milliseconds).
    let set = RedisSet::start_async(RedisOptions {
        down_after_ms: 30_000,
        ..RedisOptions::default()
    })
    .await
    .unwrap();
    let master = set.master().unwrap();
    let _: String = master
        .query(&["CONFIG", "SET", "busy-reply-threshold", "100"])
        .unwrap();
    let proxy = TestProxy::in_front_of(&set, |config| {
        // Resolve (and probe ROLE) often, so the probe meets the busy master.
        config.refresh_interval = Duration::from_millis(100);
    })
    .await;

    let mut runner = proxy.raw().await;
    runner.command(&["EVAL", "while true do end", "0"]).await;
    // Idle clients between the two, so that the killer may share the runner's connection.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(proxy.raw().await);
    }
    let busy_since = Instant::now();
    while busy_since.elapsed() < Duration::from_millis(1200) {
        assert!(
            matches!(proxy.running().topology().master, MasterState::Ready(_)),
            "a busy master must stay the master: {:?}",
            proxy.running().topology().master
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut killer = proxy.raw().await;
    let started = Instant::now();
    killer.command(&["SCRIPT", "KILL"]).await;
    killer.expect("+OK\r\n").await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "SCRIPT KILL took {:?}",
        started.elapsed()
    );
    let killed = text(&runner.read_value().await);
    assert!(killed.starts_with("-"), "{killed}");
    assert!(killed.contains("SCRIPT KILL"), "{killed}");
    // Nothing runs now: FUNCTION KILL also goes on a control connection.
    killer.command(&["FUNCTION", "KILL"]).await;
    assert!(text(&killer.read_value().await).starts_with("-NOTBUSY"));
    let mut connection = proxy.connection().await;
    let _: () = connection.set("after-kill", 1).await.unwrap();
    let value: i64 = connection.get("after-kill").await.unwrap();
    assert_eq!(value, 1);
    let stats = proxy.running().stats();
    assert_eq!(stats.failovers, 0, "{stats:?}");
    assert!(matches!(
        proxy.running().topology().master,
        MasterState::Ready(_)
    ));
    drop(idle);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_commands_name_proxy_clients() {
    let set = RedisSet::start_async(RedisOptions::default())
        .await
        .unwrap();
    let proxy = TestProxy::in_front_of(&set, |_| {}).await;
    let mut blocked = proxy.raw().await;
    let mut other = proxy.raw().await;
    let blocked_id = integer(&mut blocked, &["CLIENT", "ID"]).await;
    let other_id = integer(&mut other, &["CLIENT", "ID"]).await;
    assert_ne!(blocked_id, other_id, "every client has its own id");
    let blocked_text = blocked_id.to_string();

    // CLIENT UNBLOCK interrupts a BLPOP: as a timeout, then as an error.
    blocked.command(&["BLPOP", "jobs", "0"]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        integer(&mut other, &["CLIENT", "UNBLOCK", &blocked_text]).await,
        1
    );
    blocked.expect("*-1\r\n").await;
    blocked.command(&["BLPOP", "jobs", "0"]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        integer(&mut other, &["CLIENT", "UNBLOCK", &blocked_text, "ERROR"]).await,
        1
    );
    blocked
        .expect("-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n")
        .await;
    // Not blocked, unknown, malformed.
    assert_eq!(
        integer(&mut other, &["CLIENT", "UNBLOCK", &blocked_text]).await,
        0
    );
    assert_eq!(
        integer(&mut other, &["CLIENT", "UNBLOCK", "987654"]).await,
        0
    );
    other.command(&["CLIENT", "UNBLOCK", "x"]).await;
    other
        .expect("-ERR value is not an integer or out of range\r\n")
        .await;
    other
        .command(&["CLIENT", "UNBLOCK", &blocked_text, "LATER"])
        .await;
    other
        .expect("-ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR\r\n")
        .await;

    // A blocked client is woken by data as usual after all that.
    blocked.command(&["BLPOP", "jobs", "0"]).await;
    let mut pusher = proxy.connection().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _: i64 = pusher.rpush("jobs", "job-1").await.unwrap();
    blocked.expect("*2\r\n$4\r\njobs\r\n$5\r\njob-1\r\n").await;

    // CLIENT INFO / LIST show the proxy's own view of each client.
    let local = blocked.stream.local_addr().unwrap().to_string();
    let info = bulk_text(&mut blocked, &["CLIENT", "INFO"]).await;
    assert!(
        info.starts_with(&format!("id={blocked_id} addr={local} ")),
        "{info}"
    );
    assert!(info.contains(" cmd=client|info "), "{info}");
    blocked.command(&["CLIENT", "NO-EVICT", "on"]).await;
    blocked.expect("+OK\r\n").await;
    blocked.command(&["CLIENT", "SETNAME", "worker-1"]).await;
    blocked.expect("+OK\r\n").await;
    let list = bulk_text(&mut other, &["CLIENT", "LIST"]).await;
    let line = list
        .lines()
        .find(|line| line.starts_with(&format!("id={blocked_id} ")))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(line.contains(" name=worker-1 "), "{line}");
    assert!(line.contains(" flags=e "), "{line}");
    assert!(list.contains(&format!("id={other_id} ")), "{list}");
    let only = bulk_text(&mut other, &["CLIENT", "LIST", "ID", &blocked_text]).await;
    assert_eq!(only.lines().count(), 1, "{only}");

    // CLIENT KILL: by ID (count), by address (old form), never the upstream connections.
    let mut victim = proxy.raw().await;
    let victim_id = integer(&mut victim, &["CLIENT", "ID"]).await.to_string();
    assert_eq!(
        integer(&mut other, &["CLIENT", "KILL", "ID", &victim_id]).await,
        1
    );
    assert!(victim.is_closed().await);
    assert_eq!(
        integer(&mut other, &["CLIENT", "KILL", "ID", &victim_id]).await,
        0
    );
    let mut victim = proxy.raw().await;
    let victim_addr = victim.stream.local_addr().unwrap().to_string();
    other.command(&["CLIENT", "KILL", &victim_addr]).await;
    other.expect("+OK\r\n").await;
    assert!(victim.is_closed().await);
    other.command(&["CLIENT", "KILL", "127.0.0.1:1"]).await;
    other.expect("-ERR No such client\r\n").await;
    // SKIPME defaults to yes: killing every normal client spares the caller.
    let killed = integer(&mut other, &["CLIENT", "KILL", "TYPE", "normal"]).await;
    assert!(killed >= 1, "{killed}");
    assert!(blocked.is_closed().await);
    other.command(&["PING"]).await;
    other.expect("+PONG\r\n").await;
    let stats = proxy.running().stats();
    assert_eq!(stats.upstream_errors, 0, "{stats:?}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_reply_and_subscribers_behave_like_redis() {
    let set = RedisSet::start_async(RedisOptions::default())
        .await
        .unwrap();
    let proxy = TestProxy::in_front_of(&set, |_| {}).await;

    // HELLO 3 after SELECT 9 keeps database 9.
    let mut client = proxy.raw().await;
    client.command(&["SELECT", "9"]).await;
    client.expect("+OK\r\n").await;
    client.command(&["SET", "db9-key", "nine"]).await;
    client.expect("+OK\r\n").await;
    client.command(&["HELLO", "3"]).await;
    let hello = text(&client.read_value().await);
    assert!(hello.starts_with("%7\r\n"), "{hello}");
    client.command(&["GET", "db9-key"]).await;
    client.expect("$4\r\nnine\r\n").await;
    let info = bulk_text(&mut client, &["CLIENT", "INFO"]).await;
    assert!(info.contains(" db=9 "), "{info}");
    assert!(info.contains(" resp=3"), "{info}");
    client.command(&["HELLO", "2"]).await;
    assert!(text(&client.read_value().await).starts_with("*14\r\n"));
    client.command(&["GET", "db9-key"]).await;
    client.expect("$4\r\nnine\r\n").await;
    // Inside MULTI the switch is refused with the reason.
    client.command(&["MULTI"]).await;
    client.expect("+OK\r\n").await;
    client.command(&["HELLO", "3"]).await;
    let refused = text(&client.read_value().await);
    assert!(refused.contains("inside MULTI"), "{refused}");
    client.command(&["DISCARD"]).await;
    client.expect("+OK\r\n").await;

    // CLIENT REPLY OFF / SKIP / ON, on shared and on pinned connections.
    for db in ["0", "5"] {
        let mut client = proxy.raw().await;
        client.command(&["SELECT", db]).await;
        client.expect("+OK\r\n").await;
        client.command(&["CLIENT", "REPLY", "OFF"]).await;
        client.command(&["SET", "quiet", "1"]).await;
        client.command(&["GET", "quiet"]).await;
        client.command(&["CLIENT", "REPLY", "ON"]).await;
        client.expect("+OK\r\n").await;
        client.command(&["CLIENT", "REPLY", "SKIP"]).await;
        client.command(&["INCR", "quiet"]).await;
        client.command(&["GET", "quiet"]).await;
        client.expect("$1\r\n2\r\n").await;
    }

    // A subscriber that closed is never counted by PUBLISH.
    let mut publisher = proxy.raw().await;
    let mut counted = 0;
    for round in 0..200 {
        let channel = format!("news-{round}");
        let mut subscriber = proxy.raw().await;
        subscriber.command(&["SUBSCRIBE", &channel]).await;
        subscriber.read_value().await;
        drop(subscriber);
        if std::env::var("SUB_SLEEP").is_ok() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if integer(&mut publisher, &["PUBLISH", &channel, "x"]).await != 0 {
            counted += 1;
        }
    }
    assert_eq!(counted, 0, "closed subscribers counted by PUBLISH");

    // WAIT counts the replica acknowledging this client's writes.
    let mut writer = proxy.raw().await;
    writer.command(&["SET", "durable", "1"]).await;
    writer.expect("+OK\r\n").await;
    assert_eq!(integer(&mut writer, &["WAIT", "1", "5000"]).await, 1);
    proxy.stop().await;
}

/// Sends `pipeline` in one write to `addr` and reads `replies` replies.
async fn pipelined(
    addr: std::net::SocketAddr,
    pipeline: &[&[&str]],
    replies: usize,
) -> Vec<String> {
    let mut client = RawClient::connect(addr).await;
    let mut bytes = Vec::new();
    for args in pipeline {
        bytes.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in *args {
            bytes.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
        }
    }
    client.send(&bytes).await;
    let mut got = Vec::new();
    for _ in 0..replies {
        got.push(text(&client.read_value().await));
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_pubsub_replies_match_redis() {
    let set = RedisSet::start_async(RedisOptions::default())
        .await
        .unwrap();
    let proxy = TestProxy::in_front_of(&set, |_| {}).await;
    let master = set.master().unwrap().addr();
    // Confirmations are replies in order; in RESP2 Pub/Sub mode commands the proxy would
    // answer itself get Redis' context error; the state after UNSUBSCRIBE is Redis'.
    let pipeline: &[&[&str]] = &[
        &["SET", "pp:k", "1"],
        &["SUBSCRIBE", "pp:a", "pp:b"],
        &["CLIENT", "GETNAME"],
        &["HELLO", "3"],
        &["PING"],
        &["UNSUBSCRIBE"],
        &["PERSIST", "pp:k"],
        &["MULTI"],
        &["INCR", "pp:k"],
        &["EXEC"],
        &["GET", "pp:k"],
    ];
    // 11 commands, SUBSCRIBE and UNSUBSCRIBE two confirmations each.
    let direct = pipelined(master, pipeline, 13).await;
    let _: () = redis::cmd("SET")
        .arg("pp:k")
        .arg("1")
        .query(&mut set.master().unwrap().connection().unwrap())
        .unwrap();
    let through = pipelined(proxy.addr, pipeline, 13).await;
    assert_eq!(through, direct);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_inside_multi_moves_this_client_only() {
    let set = RedisSet::start_async(RedisOptions::default())
        .await
        .unwrap();
    let proxy = TestProxy::in_front_of(&set, |config| config.pinned_pool_size = 1).await;
    let mut client = proxy.raw().await;
    for (args, reply) in [
        (&["MULTI"][..], "+OK\r\n"),
        (&["SELECT", "3"][..], "+QUEUED\r\n"),
        (&["SET", "sel:k", "v"][..], "+QUEUED\r\n"),
        (&["EXEC"][..], "*2\r\n+OK\r\n+OK\r\n"),
        // The client is on database 3 now, as with Redis.
        (&["DEL", "sel:k"][..], ":1\r\n"),
        (&["SELECT", "0"][..], "+OK\r\n"),
        (&["SET", "sel:zero", "0"][..], "+OK\r\n"),
    ] {
        client.command(args).await;
        client.expect(reply).await;
    }
    drop(client);
    // Other clients get pinned connections on database 0, never one left on 3.
    for round in 0..4 {
        let mut other = proxy.raw().await;
        let key = format!("sel:other{round}");
        for (args, reply) in [
            (vec!["MULTI"], "+OK\r\n"),
            (vec!["SET", key.as_str(), "1"], "+QUEUED\r\n"),
            (vec!["EXEC"], "*1\r\n+OK\r\n"),
            (vec!["GET", "sel:zero"], "$1\r\n0\r\n"),
        ] {
            other.command(&args).await;
            other.expect(reply).await;
        }
        let value: Option<String> = set.master().unwrap().query(&["GET", &key]).unwrap();
        assert_eq!(
            value.as_deref(),
            Some("1"),
            "round {round}: written to database 0"
        );
    }
    proxy.stop().await;
}
