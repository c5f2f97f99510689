//! cacheproxy pipelining and multiplexing: 1000 pipelined commands from redis-rs and from a
//! raw socket come back in order, local and upstream replies interleave correctly, and many
//! clients share a few upstream connections.

mod cacheproxy_support;

use cacheproxy_support::{TestProxy, info_field};
use integration_tests::{RedisOptions, RedisSet};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_keep_their_order() {
    let set = RedisSet::start_async(RedisOptions::default())
        .await
        .unwrap();
    let proxy = TestProxy::in_front_of(&set, |_| {}).await;

    // redis-rs: 1000 commands in one pipeline.
    let mut db = proxy.connection().await;
    let mut pipe = redis::pipe();
    for index in 0..1000 {
        pipe.cmd("SET")
            .arg(format!("key:{index}"))
            .arg(index)
            .ignore();
        pipe.cmd("INCR").arg("pipelined");
    }
    let counts: Vec<i64> = pipe.query_async(&mut db).await.unwrap();
    assert_eq!(counts, (1..=1000).collect::<Vec<i64>>());
    let mut reads = redis::pipe();
    for index in 0..1000 {
        reads.cmd("GET").arg(format!("key:{index}"));
    }
    let values: Vec<i64> = reads.query_async(&mut db).await.unwrap();
    assert_eq!(values, (0..1000).collect::<Vec<i64>>());

    // A raw socket writes 1000 commands at once, mixing local (PING/ECHO) and upstream ones.
    let mut raw = proxy.raw().await;
    let mut batch = Vec::new();
    let mut expected = String::new();
    for index in 1..=1000 {
        match index % 4 {
            0 => {
                batch.extend_from_slice(b"PING\r\n");
                expected.push_str("+PONG\r\n");
            }
            1 => {
                let text = format!("e{index}");
                batch.extend_from_slice(
                    format!("*2\r\n$4\r\nECHO\r\n${}\r\n{text}\r\n", text.len()).as_bytes(),
                );
                expected.push_str(&format!("${}\r\n{text}\r\n", text.len()));
            }
            _ => {
                batch.extend_from_slice(b"*2\r\n$4\r\nINCR\r\n$3\r\nraw\r\n");
                let count = index / 4 * 2 + if index % 4 == 3 { 2 } else { 1 };
                expected.push_str(&format!(":{count}\r\n"));
            }
        }
    }
    raw.send(&batch).await;
    raw.expect(&expected).await;

    // Many clients at once share a few upstream connections.
    let mut tasks = Vec::new();
    for client in 0..40 {
        let url = proxy.url(0);
        tasks.push(tokio::spawn(async move {
            let mut db = cacheproxy_support::connect(&url).await.unwrap();
            for round in 0..50 {
                let mut pipe = redis::pipe();
                pipe.cmd("INCR").arg(format!("client:{client}"));
                pipe.cmd("GET").arg(format!("client:{client}"));
                let (count, read): (i64, i64) = pipe.query_async(&mut db).await.unwrap();
                assert_eq!(count, round + 1);
                assert_eq!(read, count);
            }
        }));
    }
    let master = set.master_addr().unwrap();
    let during = info_field(&set, master, "clients", "connected_clients")
        .and_then(|count| count.parse::<usize>().ok())
        .unwrap();
    for task in tasks {
        task.await.unwrap();
    }
    // Shared (2 RESP2 + lazily RESP3) + pre-warmed pinned (4) + harness/sentinel links, far
    // fewer than the 40 clients.
    assert!(
        during < 30,
        "{during} upstream clients for 40 proxy clients"
    );
    let stats = proxy.running().stats();
    assert!(stats.clients_total >= 42, "{stats:?}");
    assert_eq!(stats.upstream_errors, 0);
    proxy.stop().await;
}
