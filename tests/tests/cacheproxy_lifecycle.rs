//! cacheproxy lifecycle: a reload (what SIGHUP does) changes client passwords at once and
//! refuses invalid configs; a graceful shutdown (SIGTERM) lets in-flight commands finish,
//! then closes clients and stops listening.

mod cacheproxy_support;

use std::time::{Duration, Instant};

use cacheproxy_support::TestProxy;
use integration_tests::{RedisOptions, RedisSet};

const SLOW_SCRIPT: &str = "local start = redis.call('TIME') \
    while true do \
        local now = redis.call('TIME') \
        if (now[1] - start[1]) * 1000000 + (now[2] - start[2]) > 700000 then break end \
    end \
    return 'done'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_and_graceful_shutdown() {
    let set = RedisSet::start_async(RedisOptions::single()).await.unwrap();
    let master = set.master_addr().unwrap();
    let config = cacheproxy::Config {
        listen: "127.0.0.1:0".to_owned(),
        upstream: Some(master.to_string()),
        ..cacheproxy::Config::default()
    };
    let proxy = TestProxy::start(config.clone()).await;
    let mut early = proxy.raw().await;
    early.command(&["PING"]).await;
    early.expect("+PONG\r\n").await;

    // Reload: a client password from now on; the listen address needs a restart.
    let running = proxy.running();
    let mut reloaded = config.clone();
    reloaded.requirepass = Some("after-reload".to_owned());
    reloaded.listen = "127.0.0.1:1".to_owned();
    running.reload(reloaded).unwrap();
    assert_eq!(running.config().listen, "127.0.0.1:0");
    let mut late = proxy.raw().await;
    late.command(&["GET", "k"]).await;
    late.expect("-NOAUTH Authentication required.\r\n").await;
    late.command(&["AUTH", "after-reload"]).await;
    late.expect("+OK\r\n").await;
    // Already authenticated clients stay authenticated, as with Redis' CONFIG SET requirepass.
    early.command(&["SET", "k", "v"]).await;
    early.expect("+OK\r\n").await;
    let invalid = cacheproxy::Config {
        pool_size: 0,
        ..config.clone()
    };
    assert!(running.reload(invalid).is_err());
    assert_eq!(
        running.config().requirepass.as_deref(),
        Some("after-reload")
    );

    // Shutdown while a slow command runs: its reply still arrives, then the connection closes.
    early.command(&["EVAL", SLOW_SCRIPT, "0"]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let addr = proxy.addr;
    let started = Instant::now();
    let stopping = tokio::spawn(proxy.stop());
    early.expect("$4\r\ndone\r\n").await;
    assert!(early.is_closed().await);
    assert!(late.is_closed().await);
    stopping.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still listening after shutdown"
    );
}
