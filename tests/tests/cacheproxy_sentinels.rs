//! cacheproxy against misbehaving Sentinels: one that lies (names a replica as the master)
//! is caught by the ROLE check, and a killed Sentinel does not stop the proxy from
//! following a failover. Also: read-from-replica routing and a single upstream without
//! Sentinel.

mod cacheproxy_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use cacheproxy::ReadFrom;
use cacheproxy_support::{TestProxy, command_calls, sentinel_config};
use integration_tests::wait::wait_for;
use integration_tests::{RedisOptions, RedisSet};
use protocol::resp::RequestDecoder;
use redis::AsyncCommands;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A fake Sentinel that names `claimed_master` for every master name.
async fn lying_sentinel(claimed_master: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut decoder = RequestDecoder::default();
                let mut buf = BytesMut::new();
                loop {
                    while let Ok(Some(request)) = decoder.decode(&mut buf) {
                        let sub = request.arg(1).unwrap_or_default().to_ascii_lowercase();
                        let reply = if request.is_command("SENTINEL")
                            && sub == b"get-master-addr-by-name"
                        {
                            let ip = claimed_master.ip().to_string();
                            let port = claimed_master.port().to_string();
                            format!(
                                "*2\r\n${}\r\n{ip}\r\n${}\r\n{port}\r\n",
                                ip.len(),
                                port.len()
                            )
                        } else if request.is_command("SENTINEL") && sub == b"master" {
                            "*2\r\n$5\r\nflags\r\n$6\r\nmaster\r\n".to_owned()
                        } else {
                            "-ERR this fake sentinel only lies\r\n".to_owned()
                        };
                        if socket.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    match socket.read_buf(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_and_dead_sentinels_do_not_mislead_the_proxy() {
    let set = Arc::new(
        RedisSet::start_async(RedisOptions::default())
            .await
            .unwrap(),
    );
    let master = set.master_addr().unwrap();
    let replica = set.replica_addrs()[0];
    let liar = lying_sentinel(replica).await;

    // The liar comes first and the only real Sentinel listed disagrees with it.
    let mut config = sentinel_config(&set);
    config.sentinels = vec![liar.to_string(), set.sentinel_addrs()[0].to_string()];
    let proxy = TestProxy::start(config).await;
    assert_eq!(proxy.running().topology().master_addr(), Some(master));
    let mut db = proxy.connection().await;
    let _: () = db.set("written", "to the master").await.unwrap();
    let role: String = set.server(master).unwrap().role().unwrap();
    assert_eq!(role, "master");
    proxy.stop().await;

    // All three real Sentinels; kill the first one, then fail over: the proxy follows.
    let proxy = TestProxy::in_front_of(&set, |_| {}).await;
    let mut db = proxy.connection().await;
    set.kill_sentinel(0).unwrap();
    let _: () = db.set("after-sentinel-death", 1).await.unwrap();
    let new = {
        let set = Arc::clone(&set);
        tokio::task::spawn_blocking(move || set.failover_and_wait(Duration::from_secs(30)))
            .await
            .unwrap()
            .unwrap()
    };
    assert_ne!(new, master);
    let count: i64 =
        tokio::time::timeout(Duration::from_secs(20), db.incr("after-sentinel-death", 1))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(count, 2);
    assert_eq!(proxy.running().topology().master_addr(), Some(new));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_commands_go_to_the_replica() {
    let set = RedisSet::start_async(RedisOptions::default())
        .await
        .unwrap();
    let master = set.master_addr().unwrap();
    let replica = set.replica_addrs()[0];
    let proxy = TestProxy::in_front_of(&set, |config| config.read_from = ReadFrom::Replica).await;
    let running = proxy.running();
    wait_for(
        "the proxy to list the replica",
        Duration::from_secs(20),
        || Ok((running.topology().replicas.contains(&replica)).then_some(())),
    )
    .unwrap();

    let mut db = proxy.connection().await;
    let _: () = db.set("routed", "value").await.unwrap();
    wait_for("replication", Duration::from_secs(10), || {
        set.server(replica)
            .unwrap()
            .query::<Option<String>>(&["GET", "routed"])
    })
    .unwrap();
    let master_gets = command_calls(&set, master, "get");
    let replica_gets = command_calls(&set, replica, "get");
    for _ in 0..50 {
        let value: String = db.get("routed").await.unwrap();
        assert_eq!(value, "value");
    }
    let _: () = db.set("written-on", "master").await.unwrap();
    let _: () = redis::cmd("EVAL")
        .arg(&["return redis.call('SET', KEYS[1], 'lua')", "1", "scripted"])
        .query_async(&mut db)
        .await
        .unwrap();
    assert!(command_calls(&set, replica, "get") >= replica_gets + 50);
    assert_eq!(
        command_calls(&set, master, "get"),
        master_gets,
        "GETs must not reach the master"
    );
    assert!(
        command_calls(&set, master, "eval") >= 1,
        "EVAL goes to the master"
    );
    assert_eq!(command_calls(&set, replica, "eval"), 0);
    // (A write sent to the replica would have failed with READONLY; its commandstats
    // count replicated SETs, so they cannot show this.)
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_upstream_without_sentinel() {
    let set = RedisSet::start_async(RedisOptions::single()).await.unwrap();
    let master = set.master_addr().unwrap();
    let proxy = TestProxy::start(cacheproxy::Config {
        listen: "127.0.0.1:0".to_owned(),
        upstream: Some(master.to_string()),
        ..cacheproxy::Config::default()
    })
    .await;
    let mut db = proxy.connection().await;
    let _: () = db.set("single", "yes").await.unwrap();
    let value: String = db.get("single").await.unwrap();
    assert_eq!(value, "yes");
    proxy.stop().await;
}
