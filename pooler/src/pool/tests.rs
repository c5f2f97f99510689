//! Pool behaviour with an in-memory connector: FIFO hand-off, reserve pool, timeouts,
//! login back-off, budgets. Time is paused, so timeouts are exact and instant.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;

struct FakeConnector {
    opened: Arc<AtomicUsize>,
    fail_with: Option<ConnectFailure>,
}

impl Connector<usize> for FakeConnector {
    fn connect(&self) -> ConnectFuture<usize> {
        let n = self.opened.fetch_add(1, Ordering::SeqCst);
        let fail = self.fail_with.clone();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            match fail {
                Some(f) => Err(f),
                None => Ok(n),
            }
        })
    }
}

fn pool(settings: PoolSettings) -> (Pool<usize>, Arc<AtomicUsize>) {
    let opened = Arc::new(AtomicUsize::new(0));
    let connector = FakeConnector {
        opened: Arc::clone(&opened),
        fail_with: None,
    };
    (
        Pool::new("db/user".into(), settings, Box::new(connector), vec![]),
        opened,
    )
}

fn settings(pool_size: usize) -> PoolSettings {
    PoolSettings {
        pool_size,
        ..PoolSettings::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_released_server_is_reused() {
    let (pool, opened) = pool(settings(2));
    let server = pool.checkout().wait().await.unwrap();
    let first = *server;
    server.checkin();
    let again = pool.checkout().wait().await.unwrap();
    assert_eq!(*again, first);
    assert_eq!(opened.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_in_order_and_the_pool_never_exceeds_its_size() {
    let (pool, opened) = pool(settings(1));
    let held = pool.checkout().wait().await.unwrap();
    let first = tokio::spawn({
        let pool = pool.clone();
        async move {
            pool.checkout().wait().await.map(|s| {
                let n = *s;
                s.checkin();
                n
            })
        }
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = tokio::spawn({
        let pool = pool.clone();
        async move { pool.checkout().wait().await.is_ok() }
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(pool.counts(Duration::from_secs(3600)).waiting, 2);
    held.checkin();
    assert_eq!(first.await.unwrap().unwrap(), 0);
    assert!(second.await.unwrap());
    assert_eq!(opened.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn query_wait_timeout_ends_the_wait_and_leaves_the_queue() {
    let mut s = settings(1);
    s.query_wait_timeout = Some(Duration::from_secs(2));
    let (pool, _) = pool(s);
    let _held = pool.checkout().wait().await.unwrap();
    let err = pool.checkout().wait().await.err().unwrap();
    assert_eq!(err, PoolError::QueryWaitTimeout);
    assert_eq!(pool.counts(Duration::from_secs(3600)).waiting, 0);
}

#[tokio::test(start_paused = true)]
async fn reserve_pool_opens_only_after_the_timeout_and_only_up_to_its_size() {
    let mut s = settings(1);
    s.reserve_pool_size = 1;
    s.reserve_pool_timeout = Some(Duration::from_secs(3));
    let (pool, opened) = pool(s);
    let _held = pool.checkout().wait().await.unwrap();
    let mut waiters = Vec::new();
    for _ in 0..3 {
        let pool = pool.clone();
        waiters.push(tokio::spawn(async move {
            // Hold the server so the reserve connection stays in use.
            let _server = pool.checkout().wait().await;
            std::future::pending::<()>().await;
        }));
    }
    tokio::time::sleep(Duration::from_millis(2900)).await;
    assert_eq!(
        opened.load(Ordering::SeqCst),
        1,
        "no reserve before the timeout"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(opened.load(Ordering::SeqCst), 2, "one reserve connection");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        opened.load(Ordering::SeqCst),
        2,
        "never beyond the reserve size"
    );
    assert_eq!(pool.counts(Duration::from_secs(3600)).reserve_in_use, 1);
    for w in waiters {
        w.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn a_dropped_server_is_closed_and_replaced() {
    let (pool, opened) = pool(settings(1));
    let server = pool.checkout().wait().await.unwrap();
    drop(server); // unknown state: closed, not reused
    let next = pool.checkout().wait().await.unwrap();
    assert_eq!(*next, 1);
    assert_eq!(opened.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_server_rejection_fails_waiters_then_fails_fast_until_the_retry_delay() {
    let opened = Arc::new(AtomicUsize::new(0));
    let failure = ConnectFailure {
        sqlstate: Some("28P01".into()),
        message: "password authentication failed for user \"x\"".into(),
    };
    let connector = FakeConnector {
        opened: Arc::clone(&opened),
        fail_with: Some(failure),
    };
    let pool = Pool::new("db/x".into(), settings(2), Box::new(connector), vec![]);
    let err = pool.checkout().wait().await.err().unwrap();
    assert!(matches!(err, PoolError::ServerLogin(_)), "{err:?}");
    let err = pool.checkout().wait().await.err().unwrap();
    assert!(
        err.to_string().starts_with("server login has been failing"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_budget_caps_connections_across_pools() {
    let budget = Budget::new("db", 1);
    let make = |name: &str| {
        let connector = FakeConnector {
            opened: Arc::new(AtomicUsize::new(0)),
            fail_with: None,
        };
        Pool::new(
            name.into(),
            settings(5),
            Box::new(connector),
            vec![Arc::clone(&budget)],
        )
    };
    let a = make("db/a");
    let b = make("db/b");
    let server = a.checkout().wait().await.unwrap();
    let waiting_b = tokio::spawn({
        let b = b.clone();
        let budget = Arc::clone(&budget);
        async move {
            let server = b.checkout().wait().await.unwrap();
            let in_use = budget.current();
            server.checkin();
            in_use
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(budget.current(), 1);
    assert_eq!(b.counts(Duration::from_secs(3600)).waiting, 1);
    // Released to idle, then evicted for the starving pool.
    server.checkin();
    assert_eq!(
        waiting_b.await.unwrap(),
        1,
        "b got a's place, never a second one"
    );
}

#[tokio::test(start_paused = true)]
async fn pause_holds_waiters_until_resume() {
    let (pool, _) = pool(settings(1));
    pool.checkout().wait().await.unwrap().checkin();
    pool.pause();
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.checkout().wait().await.is_ok() }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!waiter.is_finished());
    pool.resume();
    assert!(waiter.await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn idle_servers_expire_but_min_pool_size_stays_open() {
    let mut s = settings(5);
    s.min_pool_size = 2;
    s.server_idle_timeout = Some(Duration::from_secs(10));
    let (pool, opened) = pool(s);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        pool.counts(Duration::from_secs(3600)).idle,
        2,
        "min_pool_size kept warm"
    );
    let servers: Vec<_> = futures_join(&pool, 4).await;
    for s in servers {
        s.checkin();
    }
    assert_eq!(pool.counts(Duration::from_secs(3600)).idle, 4);
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(pool.counts(Duration::from_secs(3600)).idle, 2);
    assert!(opened.load(Ordering::SeqCst) >= 4);
}

async fn futures_join(pool: &Pool<usize>, n: usize) -> Vec<PooledServer<usize>> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(pool.checkout().wait().await.unwrap());
    }
    out
}
