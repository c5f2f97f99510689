//! cacheproxy when the master is SIGKILLed under a continuous INCR load: Sentinel promotes
//! the replica, the proxy follows, the load resumes without dropped client connections,
//! and only writes in flight at the kill get an error. The window is printed.

mod cacheproxy_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cacheproxy_support::{LoadReport, TestProxy, spawn_incr_load};
use integration_tests::{RedisOptions, RedisSet};
use redis::AsyncCommands;

const LOAD_CLIENTS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_master_is_replaced_and_the_load_resumes() {
    let options = RedisOptions::default();
    let down_after_ms = options.down_after_ms;
    let set = Arc::new(RedisSet::start_async(options).await.unwrap());
    let proxy = TestProxy::in_front_of(&set, |_| {}).await;

    let stop = Arc::new(AtomicBool::new(false));
    let load = spawn_incr_load(proxy.addr, "counter", LOAD_CLIENTS, Arc::clone(&stop));
    // A reader of a key written before the kill (read-only: retried, never an error).
    let mut reader = proxy.connection().await;
    let _: () = reader.set("before", "kill").await.unwrap();
    let read_errors = spawn_reader(proxy.addr, Arc::clone(&stop));
    tokio::time::sleep(Duration::from_secs(1)).await;

    let killed_at = Instant::now();
    let (old, new) = {
        let set = Arc::clone(&set);
        tokio::task::spawn_blocking(move || {
            let old = set.kill_master()?;
            let new = set.wait_for_switch_master(old, Duration::from_secs(30))?;
            anyhow::Ok((old, new))
        })
        .await
        .unwrap()
        .unwrap()
    };
    let switch_seen = Instant::now();
    assert_ne!(old, new);
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut reports = Vec::new();
    for task in load {
        reports.push(task.await.unwrap());
    }
    let report = LoadReport::merge(reports);
    let (reads, read_errors) = read_errors.await.unwrap();

    let final_count: u64 = reader.get("counter").await.unwrap();
    let before: String = reader.get("before").await.unwrap();
    println!(
        "kill failover (down-after-milliseconds {down_after_ms}): window {:?}, attempted {}, acknowledged {}, \
         errors {} {:?}, final counter {final_count}, Sentinel switch observed after {:?}",
        report.longest_gap(),
        report.attempted,
        report.acknowledged,
        report.errors.len(),
        report.errors,
        switch_seen - killed_at,
    );
    assert_eq!(before, "kill");
    println!("reader during the kill: {reads} GETs, errors {read_errors:?}");
    assert!(
        read_errors.is_empty(),
        "read-only commands are retried, not failed: {read_errors:?}"
    );
    assert!(!report.was_dropped, "a client connection was dropped");
    assert!(
        report.acknowledged_after(switch_seen) > 0,
        "the load did not resume"
    );
    // Only the INCR each client had in flight when the master died may fail.
    assert!(
        report.errors.len() <= LOAD_CLIENTS,
        "errors: {:?}",
        report.errors
    );
    assert!(
        report
            .errors
            .iter()
            .all(|error| error.contains("may or may not have run")),
        "errors: {:?}",
        report.errors
    );
    assert!(final_count <= report.attempted);
    // Replication is asynchronous: an INCR acknowledged just before SIGKILL may not have
    // reached the replica. Anything more means the proxy wrote to the wrong place.
    assert!(
        final_count + LOAD_CLIENTS as u64 >= report.acknowledged,
        "lost {} acknowledged INCRs",
        report.acknowledged - final_count
    );
    assert_eq!(proxy.running().topology().master_addr(), Some(new));
    proxy.stop().await;
}

/// GETs in a loop until `stop`; returns how many and the error replies.
fn spawn_reader(
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(u64, Vec<String>)> {
    tokio::spawn(async move {
        let mut client = cacheproxy_support::RawClient::connect(addr).await;
        let mut reads = 0;
        let mut errors = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            client.command(&["GET", "before"]).await;
            match client.try_read_value(Duration::from_secs(30)).await {
                Some(reply) if reply.starts_with(b"$4\r\nkill") => reads += 1,
                Some(reply) => errors.push(String::from_utf8_lossy(&reply).into_owned()),
                None => {
                    errors.push("connection dropped".to_owned());
                    break;
                }
            }
        }
        (reads, errors)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_master_is_replaced_and_demoted() {
    let options = RedisOptions::default();
    let down_after_ms = options.down_after_ms;
    let set = Arc::new(RedisSet::start_async(options).await.unwrap());
    let proxy = TestProxy::in_front_of(&set, |_| {}).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = spawn_incr_load(proxy.addr, "counter", LOAD_CLIENTS, Arc::clone(&stop));
    tokio::time::sleep(Duration::from_secs(1)).await;

    let paused_at = Instant::now();
    let new = {
        let set = Arc::clone(&set);
        tokio::task::spawn_blocking(move || {
            let old = set.pause_master()?;
            let new = set.wait_for_switch_master(old, Duration::from_secs(30))?;
            set.resume_master()?;
            anyhow::Ok(new)
        })
        .await
        .unwrap()
        .unwrap()
    };
    let switch_seen = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut reports = Vec::new();
    for task in load {
        reports.push(task.await.unwrap());
    }
    let report = LoadReport::merge(reports);
    let mut db = proxy.connection().await;
    let final_count: u64 = db.get("counter").await.unwrap();
    println!(
        "paused-master failover (down-after-milliseconds {down_after_ms}): window {:?}, attempted {}, \
         acknowledged {}, errors {}, final counter {final_count}, Sentinel switch observed after {:?}",
        report.longest_gap(),
        report.attempted,
        report.acknowledged,
        report.errors.len(),
        switch_seen - paused_at,
    );
    assert!(!report.was_dropped, "a client connection was dropped");
    assert!(
        report.acknowledged_after(switch_seen) > 0,
        "the load did not resume"
    );
    assert!(
        report.errors.len() <= LOAD_CLIENTS,
        "errors: {:?}",
        report.errors
    );
    assert!(
        final_count >= report.acknowledged,
        "acknowledged INCRs were lost"
    );
    assert!(final_count <= report.attempted);
    assert_eq!(proxy.running().topology().master_addr(), Some(new));
    proxy.stop().await;
}
