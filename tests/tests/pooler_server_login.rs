//! Clients waiting on a server login are answered, never left waiting: a password the
//! server no longer accepts (after RECONNECT) fails the queue at once with the server's
//! error, a secret the pooler cannot use for the server's method fails with PgBouncer's
//! `wrong password type`, and `query_timeout` covers a slow server login. Also: a cancel
//! reaches only the query of the client that owns the key, even when the server moves on.

mod common;

use std::time::{Duration, Instant};

use common::{TestPooler, error_message};
use integration_tests::{AuthMethod, PgCluster, PgOptions, PgUser};

fn cluster(method: AuthMethod) -> PgCluster {
    PgCluster::start(PgOptions {
        users: vec![PgUser::new("app", "app-secret", method)],
        ..PgOptions::default()
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_clients_get_the_login_error_at_once_after_reconnect() {
    let pg = cluster(AuthMethod::Md5);
    let general = "pool_mode = transaction\ndefault_pool_size = 2\nauth_type = md5\nadmin_users = postgres\nserver_login_retry = 15\n";
    let userlist = "\"postgres\" \"admin\"\n\"app\" \"app-secret\"\n";
    let pooler = TestPooler::start(pg.primary(), general, userlist).await;
    // Two clients hold both servers in transactions.
    let holder = pooler
        .connect("app", Some("app-secret"), "postgres")
        .await
        .unwrap();
    let second = pooler
        .connect("app", Some("app-secret"), "postgres")
        .await
        .unwrap();
    holder.batch_execute("BEGIN; SELECT 1").await.unwrap();
    second.batch_execute("BEGIN; SELECT 1").await.unwrap();
    pg.primary()
        .psql("ALTER ROLE app PASSWORD 'changed-on-the-server'")
        .unwrap();
    let console = pooler.console("postgres", Some("admin")).await.unwrap();
    console.simple_query("RECONNECT").await.unwrap();
    // A third client queues; one holder finishes, its old server closes, the new login
    // fails: the queued client gets the server's error now, not after
    // server_login_retry, although the other holder still has an old server.
    let waiter = pooler
        .connect("app", Some("app-secret"), "postgres")
        .await
        .unwrap();
    let queued = tokio::spawn(async move {
        let started = Instant::now();
        let result = waiter.batch_execute("SELECT 1").await;
        (result, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    holder.batch_execute("COMMIT").await.unwrap();
    let (result, waited) = queued.await.unwrap();
    let error = result.expect_err("the login must fail");
    assert!(
        error_message(&error).contains("password authentication failed"),
        "{error}"
    );
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    second.batch_execute("COMMIT").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_the_server_method_cannot_use_fails_with_wrong_password_type() {
    let pg = cluster(AuthMethod::ScramSha256);
    let scram = pg
        .primary()
        .psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'app'")
        .unwrap();
    // Clients are trusted, so no client ever proves the SCRAM secret: the pooler has
    // no way to answer the server's SCRAM challenge.
    let general = "pool_mode = transaction\nauth_type = trust\nquery_wait_timeout = 60\n";
    let userlist = format!("\"app\" \"{scram}\"\n");
    let pooler = TestPooler::start(pg.primary(), general, &userlist).await;
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        pooler.connect("app", None, "postgres"),
    )
    .await
    .expect("the login was never answered");
    let error = match result {
        Ok(client) => client.batch_execute("SELECT 1").await.unwrap_err(),
        Err(error) => error,
    };
    assert!(
        error_message(&error).contains("wrong password type"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_timeout_covers_a_slow_server_login() {
    // A "server" that accepts connections and never answers a startup packet.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let databases = format!("slow = host=127.0.0.1 port={port} dbname=postgres");
    let general = "pool_mode = transaction\nauth_type = trust\nquery_timeout = 1\nserver_connect_timeout = 30\nquery_wait_timeout = 60\nclient_login_timeout = 60\n";
    let pooler = TestPooler::start_with_databases(&databases, general, "\"postgres\" \"\"\n").await;
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        pooler.connect("postgres", None, "slow"),
    )
    .await
    .expect("the login was never answered");
    let Err(error) = result else {
        panic!("no server answered: the login must fail");
    };
    assert!(error_message(&error).contains("query_timeout"), "{error}");
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(4), "waited {waited:?}");
    hold.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancels_for_one_client_never_hit_the_next_client_of_its_server() {
    let pg = cluster(AuthMethod::Trust);
    let general = "pool_mode = transaction\ndefault_pool_size = 1\nauth_type = trust\n";
    let pooler = TestPooler::start(pg.primary(), general, "\"app\" \"\"\n").await;
    let canceled = pooler.connect("app", None, "postgres").await.unwrap();
    let next = pooler.connect("app", None, "postgres").await.unwrap();
    let token = canceled.cancel_token();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The canceled client runs short queries; the other one runs longer ones on the
    // same (only) server right after each of them.
    let fast = {
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = canceled.batch_execute("SELECT 1").await;
            }
        })
    };
    let slow = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut hits = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Err(e) = next.batch_execute("SELECT pg_sleep(0.02)").await
                    && common::error_code(&e).as_deref() == Some("57014")
                {
                    hits += 1;
                }
            }
            hits
        })
    };
    for _ in 0..100 {
        let _ = token.cancel_query(tokio_postgres::NoTls).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    fast.await.unwrap();
    let hits = slow.await.unwrap();
    assert_eq!(
        hits, 0,
        "another client's statement was canceled {hits} times"
    );
}
