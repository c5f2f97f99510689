//! Self-tests of the Redis harness: replication, Sentinel failovers (manual, killed and
//! paused master), passwords and cleanup, all against real servers.

use std::time::{Duration, Instant};

use integration_tests::process::pid_is_alive;
use integration_tests::wait::wait_for;
use integration_tests::{RedisOptions, RedisSet};

/// Failovers take down-after (1 s) + election + promotion: a few seconds, more on a
/// loaded machine.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);

fn start_default_set() -> RedisSet {
    RedisSet::start(RedisOptions::default()).expect("redis set starts")
}

#[test]
fn replica_serves_what_the_master_wrote() {
    let set = start_default_set();
    assert_eq!(set.servers().len(), 2);
    assert_eq!(set.sentinels().len(), 3);
    let master = set.master().unwrap();
    assert_eq!(master.addr(), set.servers()[0].addr());
    assert_eq!(set.replica_addrs(), vec![set.servers()[1].addr()]);
    for server in set.servers().iter().chain(set.sentinels()) {
        assert!(server.port() != 6379 && server.port() != 5432);
    }

    master.query::<()>(&["SET", "greeting", "hello"]).unwrap();
    let replica = &set.servers()[1];
    let value = wait_for(
        "the replica to see the key",
        Duration::from_secs(10),
        || replica.query::<Option<String>>(&["GET", "greeting"]),
    )
    .unwrap();
    assert_eq!(value, "hello");
    assert_eq!(replica.role().unwrap(), "slave");
    assert_eq!(
        set.redis_cli(replica.addr(), &["GET", "greeting"]).unwrap(),
        "hello"
    );
    let sentinel_addr = set.sentinel_addrs()[0];
    let cli_master = set
        .redis_cli(
            sentinel_addr,
            &["SENTINEL", "get-master-addr-by-name", "mymaster"],
        )
        .unwrap();
    assert_eq!(cli_master, format!("127.0.0.1\n{}", master.port()));
    assert!(
        set.redis_cli("127.0.0.1:6379".parse().unwrap(), &["PING"])
            .is_err()
    );
}

#[test]
fn manual_failover_promotes_the_replica() {
    let set = start_default_set();
    let old = set.master_addr().unwrap();
    set.failover().unwrap();
    let new = set.wait_for_switch_master(old, FAILOVER_TIMEOUT).unwrap();
    assert_eq!(new, set.servers()[1].addr());
    assert_eq!(set.server(new).unwrap().role().unwrap(), "master");
    assert_eq!(set.master_addr().unwrap(), new);

    // The old master rejoins as a replica of the new one; a second failover works.
    set.wait_until_stable(FAILOVER_TIMEOUT).unwrap();
    assert_eq!(set.replica_addrs(), vec![old]);
    let back = set.failover_and_wait(FAILOVER_TIMEOUT).unwrap();
    assert_eq!(back, old);
}

#[test]
fn killed_master_is_replaced() {
    let set = start_default_set();
    let started = Instant::now();
    let old = set.kill_master().unwrap();
    assert!(!set.server(old).unwrap().is_running());
    let new = set.wait_for_switch_master(old, FAILOVER_TIMEOUT).unwrap();
    eprintln!("failover after SIGKILL took {:?}", started.elapsed());
    assert_eq!(new, set.servers()[1].addr());
    set.server(new)
        .unwrap()
        .query::<()>(&["SET", "after", "failover"])
        .unwrap();

    // A killed server restarts on its port (Sentinel demotes it ~10 s later, which
    // `paused_master_is_replaced_and_demoted_on_resume` covers).
    let old_server = set.server(old).unwrap();
    old_server.start().unwrap();
    assert_eq!(old_server.query::<String>(&["PING"]).unwrap(), "PONG");
}

#[test]
fn paused_master_is_replaced_and_demoted_on_resume() {
    let set = start_default_set();
    let old = set.pause_master().unwrap();
    let new = set.wait_for_switch_master(old, FAILOVER_TIMEOUT).unwrap();
    assert_ne!(new, old);
    assert_eq!(set.resume_master().unwrap(), old);
    set.wait_until_stable(FAILOVER_TIMEOUT).unwrap();
    assert_eq!(set.server(old).unwrap().role().unwrap(), "slave");
}

#[test]
fn password_protects_every_data_server() {
    let set = RedisSet::start(RedisOptions {
        password: Some("s3cret \"quoted\"".to_owned()),
        ..RedisOptions::default()
    })
    .unwrap();
    let master = set.master().unwrap();
    master.query::<()>(&["SET", "k", "v"]).unwrap();
    let anonymous = redis::Client::open(format!("redis://127.0.0.1:{}/", master.port())).unwrap();
    let mut connection = anonymous.get_connection().unwrap();
    let denied: redis::RedisResult<Option<String>> =
        redis::cmd("GET").arg("k").query(&mut connection);
    assert!(denied.is_err(), "unauthenticated GET must fail");
    let new = set.failover_and_wait(FAILOVER_TIMEOUT).unwrap();
    assert_eq!(
        set.server(new)
            .unwrap()
            .query::<String>(&["GET", "k"])
            .unwrap(),
        "v"
    );
}

#[test]
fn single_server_without_sentinels() {
    let set = RedisSet::start(RedisOptions::single()).unwrap();
    assert!(set.sentinels().is_empty());
    let addr = set.master_addr().unwrap();
    assert_eq!(
        set.server(addr)
            .unwrap()
            .query::<String>(&["PING"])
            .unwrap(),
        "PONG"
    );
    assert!(set.replica_addrs().is_empty());
}

#[test]
fn drop_kills_every_process() {
    let set = start_default_set();
    let sentinel_dir = set.sentinels()[0].dir().to_owned();
    set.kill_sentinel(2).unwrap();
    let pids: Vec<u32> = set
        .servers()
        .iter()
        .chain(set.sentinels())
        .flat_map(|server| server.process_ids())
        .collect();
    assert_eq!(pids.len(), 4, "2 servers and 2 live sentinels: {pids:?}");
    // Drop must also cope with a frozen server.
    set.pause_master().unwrap();
    drop(set);
    let survivors: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|pid| pid_is_alive(*pid))
        .collect();
    assert!(survivors.is_empty(), "processes left behind: {survivors:?}");
    assert!(!sentinel_dir.exists());
}
