//! pooler cancel requests and startup/session parameters against a real PostgreSQL:
//! cancelling one client's query leaves another's alone, clients sharing one server each
//! keep their own TimeZone/DateStyle/application_name, and unsupported startup parameters
//! are rejected unless listed in ignore_startup_parameters.

mod common;

use std::time::{Duration, Instant};

use common::TestPooler;
use common::raw::{RawClient, data_values, tags};
use integration_tests::{AuthMethod, PgCluster, PgOptions, PgUser};

const USERLIST: &str = "\"postgres\" \"\"\n\"app\" \"\"\n";

fn cluster() -> PgCluster {
    PgCluster::start(PgOptions {
        users: vec![PgUser::new("app", "app-secret", AuthMethod::Trust)],
        // Server defaults distinct from every value the clients ask for.
        extra_conf: vec![
            ("timezone".into(), "Europe/Berlin".into()),
            ("datestyle".into(), "ISO, MDY".into()),
        ],
        ..PgOptions::default()
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_only_the_cancelled_clients_query() {
    let pg = cluster();
    let pooler = TestPooler::start(
        pg.primary(),
        "pool_mode = transaction\ndefault_pool_size = 4\nauth_type = trust\n",
        USERLIST,
    )
    .await;
    let victim = pooler.connect("app", None, "postgres").await.unwrap();
    let bystander = pooler.connect("app", None, "postgres").await.unwrap();
    let token = victim.cancel_token();

    let long = tokio::spawn(async move {
        let started = Instant::now();
        let result = victim.simple_query("SELECT pg_sleep(30)").await;
        (result.map(drop), started.elapsed(), victim)
    });
    let short = tokio::spawn(async move {
        let started = Instant::now();
        let result = bystander.simple_query("SELECT pg_sleep(2)").await;
        (result.map(drop), started.elapsed())
    });
    let node = pg.primary().clone();
    let running = common::eventually(Duration::from_secs(5), || {
        common::active_server_connections(&node, "app") == 2
    })
    .await;
    assert!(running, "both sleeps running on the server");

    let cancelled_at = Instant::now();
    token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let (result, _, victim) = tokio::time::timeout(Duration::from_secs(10), long)
        .await
        .expect("cancel had no effect")
        .unwrap();
    let cancel_latency = cancelled_at.elapsed();
    let err = result.unwrap_err();
    assert_eq!(
        common::error_code(&err).as_deref(),
        Some("57014"),
        "{err:?}"
    );
    assert!(
        cancel_latency < Duration::from_secs(5),
        "cancel took {cancel_latency:?}"
    );

    let (result, elapsed) = short.await.unwrap();
    result.expect("the other client's query was cancelled too");
    assert!(
        elapsed >= Duration::from_millis(1900),
        "pg_sleep(2) ended after {elapsed:?}"
    );

    // The cancelled client goes on working.
    let rows = victim.simple_query("SELECT 1").await.unwrap();
    assert!(!rows.is_empty());
    // A cancel with no query running is harmless.
    victim
        .cancel_token()
        .cancel_query(tokio_postgres::NoTls)
        .await
        .unwrap();
    victim.simple_query("SELECT 1").await.unwrap();
    pooler.stop().await;
}

/// `SHOW <name>` through simple query.
async fn show(client: &tokio_postgres::Client, name: &str) -> String {
    let messages = client.simple_query(&format!("SHOW {name}")).await.unwrap();
    messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap()
}

/// The value of the last ParameterStatus for `name` in `messages`.
fn parameter_status(messages: &[common::raw::Message], name: &str) -> Option<String> {
    messages
        .iter()
        .filter(|m| m.tag == b'S')
        .filter_map(|m| {
            let mut parts = m.body.split(|&b| b == 0);
            let key = parts.next()?;
            let value = parts.next()?;
            (key == name.as_bytes()).then(|| String::from_utf8_lossy(value).into_owned())
        })
        .next_back()
}

async fn backend_pid(client: &tokio_postgres::Client) -> String {
    let messages = client
        .simple_query("SELECT pg_backend_pid()")
        .await
        .unwrap();
    messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_sharing_one_server_keep_their_own_parameters() {
    let pg = cluster();
    let pooler = TestPooler::start(
        pg.primary(),
        "pool_mode = transaction\ndefault_pool_size = 1\nauth_type = trust\n",
        USERLIST,
    )
    .await;
    let mut config_a = pooler.client_config("app", None, "postgres");
    config_a
        .options("-c TimeZone=Asia/Tokyo -c DateStyle=SQL,DMY")
        .application_name("client-a");
    let (a, _a_messages) = pooler.connect_with_messages(&config_a).await.unwrap();
    let mut config_b = pooler.client_config("app", None, "postgres");
    config_b.application_name("client-b");
    let (b, _b_messages) = pooler.connect_with_messages(&config_b).await.unwrap();

    // ParameterStatus at login and after SET reflects the client's own values.
    let mut raw = RawClient::connect(pooler.port).await;
    let login = raw
        .startup(&[
            ("user", "app"),
            ("database", "postgres"),
            ("TimeZone", "Asia/Tokyo"),
        ])
        .await;
    assert_eq!(
        parameter_status(&login, "TimeZone").as_deref(),
        Some("Asia/Tokyo"),
        "login ParameterStatus: {}",
        tags(&login)
    );
    let set = raw.simple_query("SET TimeZone = 'UTC'").await;
    assert_eq!(
        parameter_status(&set, "TimeZone").as_deref(),
        Some("UTC"),
        "ParameterStatus after SET: {}",
        tags(&set)
    );
    drop(raw);
    let login = RawClient::connect(pooler.port)
        .await
        .startup(&[("user", "app"), ("database", "postgres")])
        .await;
    assert_eq!(
        parameter_status(&login, "TimeZone").as_deref(),
        Some("Europe/Berlin"),
        "another client's SET leaked into login ParameterStatus"
    );

    let mut a_expected = [
        ("TimeZone", "Asia/Tokyo"),
        ("DateStyle", "SQL, DMY"),
        ("application_name", "client-a"),
    ];
    let b_expected = [
        ("TimeZone", "Europe/Berlin"),
        ("DateStyle", "ISO, MDY"),
        ("application_name", "client-b"),
    ];
    let mut shared_pids = Vec::new();
    for round in 0..4 {
        if round == 2 {
            // A changes its own TimeZone: tracked through ParameterStatus, re-applied later.
            a.batch_execute("SET TimeZone = 'UTC'").await.unwrap();
            a_expected[0].1 = "UTC";
        }
        for (name, value) in a_expected {
            assert_eq!(
                show(&a, name).await,
                value,
                "client A, round {round}, {name}"
            );
            let b_value = b_expected.iter().find(|(n, _)| *n == name).unwrap().1;
            assert_eq!(
                show(&b, name).await,
                b_value,
                "client B, round {round}, {name}"
            );
        }
        shared_pids.push(backend_pid(&a).await);
        shared_pids.push(backend_pid(&b).await);
    }
    assert!(
        shared_pids.windows(2).all(|w| w[0] == w[1]),
        "one server shared: {shared_pids:?}"
    );
    // The values also apply to what queries compute, not only to SHOW.
    let rows = a
        .simple_query("SELECT to_char(timestamptz '2024-01-01 12:00:00+00', 'HH24 TZ')")
        .await
        .unwrap();
    let b_rows = b
        .simple_query("SELECT to_char(timestamptz '2024-01-01 12:00:00+00', 'HH24 TZ')")
        .await
        .unwrap();
    let first = |rows: &[tokio_postgres::SimpleQueryMessage]| {
        rows.iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                _ => None,
            })
            .unwrap()
    };
    assert_eq!(first(&rows), "12 UTC");
    assert_eq!(first(&b_rows), "13 CET");
    // A's SET inside a transaction that rolls back does not stick.
    a.batch_execute("BEGIN; SET TimeZone = 'America/New_York'; ROLLBACK")
        .await
        .unwrap();
    assert_eq!(show(&b, "TimeZone").await, "Europe/Berlin");
    assert_eq!(show(&a, "TimeZone").await, "UTC");
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_startup_parameters_are_rejected_unless_ignored() {
    let pg = cluster();
    let strict = TestPooler::start(
        pg.primary(),
        "pool_mode = transaction\nauth_type = trust\n",
        USERLIST,
    )
    .await;
    let mut raw = RawClient::connect(strict.port).await;
    let messages = raw
        .startup(&[("user", "app"), ("database", "postgres"), ("foo", "bar")])
        .await;
    let error = messages
        .iter()
        .find(|m| m.tag == b'E')
        .unwrap_or_else(|| panic!("no ErrorResponse: {}", tags(&messages)));
    assert_eq!(
        error.field(b'M').as_deref(),
        Some("unsupported startup parameter: foo"),
        "{:?}",
        error.fields()
    );
    assert_eq!(error.field(b'C').as_deref(), Some("08P01"));
    assert_eq!(error.field(b'S').as_deref(), Some("FATAL"));
    raw.read_until_closed().await;
    // Allowed ones pass: application_name and a tracked parameter.
    let mut raw = RawClient::connect(strict.port).await;
    let messages = raw
        .startup(&[
            ("user", "app"),
            ("database", "postgres"),
            ("application_name", "raw"),
            ("DateStyle", "German"),
        ])
        .await;
    assert_eq!(
        messages.last().map(|m| m.tag),
        Some(b'Z'),
        "login failed: {:?}",
        messages
            .iter()
            .map(|m| (m.tag as char, m.fields()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        data_values(&raw.simple_query("SHOW DateStyle").await),
        ["German, DMY"]
    );
    strict.stop().await;

    let lenient = TestPooler::start(pg.primary(), "pool_mode = transaction\nauth_type = trust\nignore_startup_parameters = extra_float_digits, foo\n", USERLIST).await;
    let mut raw = RawClient::connect(lenient.port).await;
    let messages = raw
        .startup(&[
            ("user", "app"),
            ("database", "postgres"),
            ("foo", "bar"),
            ("extra_float_digits", "2"),
        ])
        .await;
    assert_eq!(
        tags(&messages).chars().last(),
        Some('Z'),
        "login with an ignored parameter failed: {:?}",
        messages
            .iter()
            .map(|m| (m.tag as char, m.fields()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        data_values(&raw.simple_query("SELECT 40 + 2").await),
        ["42"]
    );
    lenient.stop().await;
}
