//! cacheproxy through a graceful `SENTINEL FAILOVER` under a continuous INCR load: no client
//! connection is dropped, every acknowledged INCR survives, and the client-visible
//! unavailability window (longest gap between acknowledgements) is printed.

mod cacheproxy_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cacheproxy_support::{LoadReport, TestProxy, spawn_incr_load};
use integration_tests::{RedisOptions, RedisSet};
use redis::AsyncCommands;

const LOAD_CLIENTS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_failover_loses_no_acknowledged_write() {
    let options = RedisOptions::default();
    let down_after_ms = options.down_after_ms;
    let set = Arc::new(RedisSet::start_async(options).await.unwrap());
    let proxy = TestProxy::in_front_of(&set, |_| {}).await;
    let old = set.master_addr().unwrap();

    // A subscriber and a transaction client hold pinned connections through the failover.
    let mut subscriber = proxy.raw().await;
    subscriber.command(&["SUBSCRIBE", "events"]).await;
    subscriber
        .expect("*3\r\n$9\r\nsubscribe\r\n$6\r\nevents\r\n:1\r\n")
        .await;

    let stop = Arc::new(AtomicBool::new(false));
    let load = spawn_incr_load(proxy.addr, "counter", LOAD_CLIENTS, Arc::clone(&stop));
    tokio::time::sleep(Duration::from_secs(1)).await;

    let failover_started = Instant::now();
    let switched = {
        let set = Arc::clone(&set);
        tokio::task::spawn_blocking(move || set.failover_and_wait(Duration::from_secs(30)))
            .await
            .unwrap()
            .unwrap()
    };
    let switch_seen = Instant::now();
    assert_ne!(switched, old);
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut reports = Vec::new();
    for task in load {
        reports.push(task.await.unwrap());
    }
    let report = LoadReport::merge(reports);

    let mut db = proxy.connection().await;
    let final_count: u64 = db.get("counter").await.unwrap();
    let direct: u64 = set
        .server(switched)
        .unwrap()
        .query::<u64>(&["GET", "counter"])
        .unwrap();
    println!(
        "graceful failover (down-after-milliseconds {down_after_ms}): window {:?}, attempted {}, acknowledged {}, \
         errors {}, final counter {final_count}, sentinel switch observed after {:?}",
        report.longest_gap(),
        report.attempted,
        report.acknowledged,
        report.errors.len(),
        switch_seen - failover_started,
    );
    assert!(!report.was_dropped, "a client connection was dropped");
    assert_eq!(final_count, direct, "the proxy reads from the new master");
    assert!(
        final_count >= report.acknowledged,
        "acknowledged INCRs were lost: {final_count} < {}",
        report.acknowledged
    );
    assert!(final_count <= report.attempted);
    assert!(
        report.errors.is_empty(),
        "graceful failover errors: {:?}",
        report.errors
    );
    assert!(
        report.acknowledged_after(switch_seen) > 0,
        "the load resumed"
    );
    assert_eq!(proxy.running().topology().master_addr(), Some(switched));
    assert!(proxy.running().stats().failovers >= 1);

    // The subscriber was re-subscribed on the new master.
    let mut publisher = proxy.connection().await;
    let delivered = wait_for_delivery(&mut publisher, "events").await;
    assert!(
        delivered,
        "the subscription was not restored on the new master"
    );
    let message = subscriber.read_value().await;
    assert!(
        String::from_utf8_lossy(&message).contains("message"),
        "{}",
        String::from_utf8_lossy(&message)
    );
    proxy.stop().await;
}

/// Publishes until one subscriber receives it (re-subscription happens in the background).
async fn wait_for_delivery(
    publisher: &mut redis::aio::MultiplexedConnection,
    channel: &str,
) -> bool {
    for _ in 0..50 {
        let receivers: i64 = publisher.publish(channel, "after-failover").await.unwrap();
        if receivers > 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
