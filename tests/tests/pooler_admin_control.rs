//! pooler's admin console control commands against a real PostgreSQL: PAUSE/RESUME, RELOAD,
//! KILL_CLIENT, DISABLE/RECONNECT/KILL/SUSPEND, access rights, `/ready` and `/health`, and
//! psql used exactly as an operator would.

mod common;

use std::time::Duration;

use common::admin::{
    Row, USERLIST, cluster, console_error, field, general, int, parse_prometheus, pool_row, show,
};
use common::{TestPooler, error_message, http_get, operator_psql};
use tokio_postgres::SimpleQueryMessage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_transactions_until_resume() {
    let pg = cluster();
    let pooler = TestPooler::start(
        pg.primary(),
        &general("pool_mode = transaction\ndefault_pool_size = 2\n"),
        USERLIST,
    )
    .await;
    let admin = pooler.console("admin", Some("adminpass")).await.unwrap();
    let app = pooler
        .connect("postgres", Some("pgpass"), "postgres")
        .await
        .unwrap();
    app.simple_query("SELECT 1").await.unwrap();
    show(&admin, "PAUSE").await;
    let state = show(&admin, "SHOW STATE").await;
    assert_eq!(field(&state[1], "value"), "yes", "{state:?}");
    assert_eq!(
        console_error(&admin, "PAUSE").await.0,
        "already suspended/paused"
    );
    let query = tokio::spawn(async move {
        let rows = app.simple_query("SELECT 42").await;
        (app, rows)
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!query.is_finished(), "a transaction ran while paused");
    let pools = show(&admin, "SHOW POOLS").await;
    let row = pool_row(&pools, "postgres", "postgres").unwrap();
    assert_eq!(int(row, "cl_waiting"), 1, "{row:?}");
    assert_eq!(
        int(row, "sv_active") + int(row, "sv_idle"),
        0,
        "servers closed by PAUSE"
    );
    show(&admin, "RESUME").await;
    let (app, rows) = tokio::time::timeout(Duration::from_secs(10), query)
        .await
        .expect("RESUME released the transaction")
        .unwrap();
    let rows = rows.expect("no error after RESUME");
    assert!(matches!(&rows[1], SimpleQueryMessage::Row(r) if r.get(0) == Some("42")));
    assert_eq!(
        console_error(&admin, "RESUME").await.0,
        "pooler is not paused/suspended"
    );
    // PAUSE of one database; the others keep running.
    show(&admin, "PAUSE postgres").await;
    let databases = show(&admin, "SHOW DATABASES").await;
    let db = databases
        .iter()
        .find(|r| field(r, "name") == "postgres")
        .unwrap();
    assert_eq!(int(db, "paused"), 1);
    assert_eq!(
        console_error(&admin, "RESUME template1").await.0,
        "database template1 is not paused"
    );
    show(&admin, "RESUME postgres").await;
    app.simple_query("SELECT 1").await.unwrap();
    assert_eq!(
        console_error(&admin, "PAUSE pgbouncer").await.0,
        "cannot pause admin db: pgbouncer"
    );
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_picks_up_a_changed_pool_size() {
    let pg = cluster();
    let pooler = TestPooler::start(
        pg.primary(),
        &general("pool_mode = transaction\ndefault_pool_size = 1\n"),
        USERLIST,
    )
    .await;
    let admin = pooler.console("admin", Some("adminpass")).await.unwrap();
    let app = pooler
        .connect("postgres", Some("pgpass"), "postgres")
        .await
        .unwrap();
    app.simple_query("SELECT 1").await.unwrap();
    let db_pool_size = |rows: &[Row]| {
        let db = rows
            .iter()
            .find(|r| field(r, "name") == "postgres")
            .unwrap();
        int(db, "pool_size")
    };
    assert_eq!(db_pool_size(&show(&admin, "SHOW DATABASES").await), 1);
    let ini = std::fs::read_to_string(pooler.ini_path()).unwrap();
    std::fs::write(
        pooler.ini_path(),
        ini.replace("default_pool_size = 1", "default_pool_size = 3"),
    )
    .unwrap();
    show(&admin, "RELOAD").await;
    assert_eq!(db_pool_size(&show(&admin, "SHOW DATABASES").await), 3);
    let config = show(&admin, "SHOW CONFIG").await;
    let key = config
        .iter()
        .find(|r| field(r, "key") == "default_pool_size")
        .unwrap();
    assert_eq!(
        (
            field(key, "value"),
            field(key, "default"),
            field(key, "changeable")
        ),
        ("3", "20", "yes")
    );
    // The pool now runs three transactions at once.
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let config = pooler.client_config("postgres", Some("pgpass"), "postgres");
        tasks.push(tokio::spawn(async move {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(connection);
            client.simple_query("SELECT pg_sleep(2)").await.unwrap();
        }));
    }
    let mut reached = false;
    for _ in 0..60 {
        let pools = show(&admin, "SHOW POOLS").await;
        if pool_row(&pools, "postgres", "postgres").is_some_and(|r| int(r, "sv_active") == 3) {
            reached = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reached, "three servers active after RELOAD");
    for task in tasks {
        task.await.unwrap();
    }
    // A broken file keeps the running config.
    let ini = std::fs::read_to_string(pooler.ini_path()).unwrap();
    std::fs::write(pooler.ini_path(), format!("{ini}\nno_such_key = 1\n")).unwrap();
    let (message, code) = console_error(&admin, "RELOAD").await;
    assert_eq!(message, "RELOAD failed, see logs for additional details");
    assert_eq!(code.as_deref(), Some("F0000"));
    assert_eq!(db_pool_size(&show(&admin, "SHOW DATABASES").await), 3);
    // SET changes a key at runtime.
    let messages = admin
        .simple_query("SET default_pool_size = 4")
        .await
        .unwrap();
    assert!(matches!(
        messages.last(),
        Some(SimpleQueryMessage::CommandComplete(_))
    ));
    assert_eq!(db_pool_size(&show(&admin, "SHOW DATABASES").await), 4);
    assert_eq!(
        console_error(&admin, "SET no_such_key = 1").await.0,
        "SET failed"
    );
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_client_ends_exactly_that_client() {
    let pg = cluster();
    let pooler = TestPooler::start(
        pg.primary(),
        &general("pool_mode = transaction\n"),
        USERLIST,
    )
    .await;
    let admin = pooler.console("admin", Some("adminpass")).await.unwrap();
    let connect = |name: &'static str| {
        let mut config = pooler.client_config("postgres", Some("pgpass"), "postgres");
        config.application_name(name);
        async move {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
            let done = tokio::spawn(connection);
            (client, done)
        }
    };
    let (victim, victim_connection) = connect("victim").await;
    let (bystander, _bystander_connection) = connect("bystander").await;
    victim.simple_query("SELECT 1").await.unwrap();
    bystander.simple_query("SELECT 1").await.unwrap();
    let clients = show(&admin, "SHOW CLIENTS").await;
    let id = clients
        .iter()
        .find(|c| field(c, "application_name") == "victim")
        .map(|c| field(c, "id").to_owned())
        .expect("victim listed");
    show(&admin, &format!("KILL_CLIENT {id}")).await;
    let ended = tokio::time::timeout(Duration::from_secs(5), victim_connection).await;
    let result = ended
        .expect("the killed client's connection ended")
        .unwrap();
    let error = result.expect_err("the client was told why");
    assert!(
        error_message(&error).contains("admin forced disconnect"),
        "{error}"
    );
    assert!(victim.simple_query("SELECT 1").await.is_err());
    bystander
        .simple_query("SELECT 2")
        .await
        .expect("bystander unaffected");
    let mut clients = Vec::new();
    for _ in 0..100 {
        clients = show(&admin, "SHOW CLIENTS").await;
        if clients
            .iter()
            .all(|c| field(c, "application_name") != "victim")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        clients
            .iter()
            .all(|c| field(c, "application_name") != "victim")
    );
    assert!(
        clients
            .iter()
            .any(|c| field(c, "application_name") == "bystander")
    );
    assert_eq!(
        console_error(&admin, &format!("KILL_CLIENT {id}")).await.0,
        "client not found"
    );
    assert_eq!(
        console_error(&admin, "KILL_CLIENT abc").await.0,
        "invalid client pointer supplied"
    );
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_users_only_read_and_strangers_are_refused() {
    let pg = cluster();
    let pooler = TestPooler::start(pg.primary(), &general(""), USERLIST).await;
    let stats = pooler.console("stats", Some("statspass")).await.unwrap();
    assert!(!show(&stats, "SHOW POOLS").await.is_empty());
    for command in [
        "PAUSE",
        "RESUME",
        "RELOAD",
        "KILL_CLIENT 1",
        "SHOW FDS",
        "SET default_pool_size = 5",
    ] {
        assert_eq!(
            console_error(&stats, command).await.0,
            "admin access needed",
            "{command}"
        );
    }
    // Drivers' SETs are ignored for everyone.
    stats
        .simple_query("SET client_encoding = 'UTF8'")
        .await
        .unwrap();
    let err = pooler
        .console("nobody", Some("nobodypass"))
        .await
        .expect_err("not allowed");
    assert_eq!(error_message(&err), "not allowed");
    let err = pooler
        .console("admin", Some("wrong"))
        .await
        .expect_err("bad password");
    assert_eq!(error_message(&err), "password authentication failed");
    // The extended protocol ends the console connection with PgBouncer's error.
    let admin = pooler.console("admin", Some("adminpass")).await.unwrap();
    let err = admin
        .query("SHOW POOLS", &[])
        .await
        .expect_err("extended protocol");
    assert_eq!(
        error_message(&err),
        "extended query protocol not supported by admin console"
    );
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_follows_the_server_and_health_the_process() {
    let pg = cluster();
    let pooler = TestPooler::start(pg.primary(), &general(""), USERLIST).await;
    let addr = pooler.metrics_addr().unwrap();
    assert_eq!(http_get(addr, "/health").await.unwrap().0, 200);
    assert_eq!(http_get(addr, "/ready").await.unwrap().0, 200);
    assert_eq!(http_get(addr, "/nope").await.unwrap().0, 404);
    let node = pg.primary().clone();
    tokio::task::spawn_blocking(move || node.stop().unwrap())
        .await
        .unwrap();
    let (status, body) = http_get(addr, "/ready").await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(http_get(addr, "/health").await.unwrap().0, 200);
    let (status, body) = http_get(addr, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    parse_prometheus(&body);
    let node = pg.primary().clone();
    tokio::task::spawn_blocking(move || node.start().unwrap())
        .await
        .unwrap();
    let mut is_ready = false;
    for _ in 0..100 {
        if http_get(addr, "/ready").await.unwrap().0 == 200 {
            is_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(is_ready, "/ready back to 200 after the server started");
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_shows_pools_as_an_operator_sees_them() {
    let pg = cluster();
    let pooler = TestPooler::start(pg.primary(), &general(""), USERLIST).await;
    let app = pooler
        .connect("postgres", Some("pgpass"), "postgres")
        .await
        .unwrap();
    app.simple_query("SELECT 1").await.unwrap();
    let port = pooler.port;
    let socket_dir = pooler.socket_dir().display().to_string();
    let (pools, state) = tokio::task::spawn_blocking(move || {
        let pools = operator_psql(
            "127.0.0.1",
            port,
            "admin",
            Some("adminpass"),
            "pgbouncer",
            "SHOW POOLS",
        );
        // User `pgbouncer` over the Unix socket from the same Unix user: no password.
        let state = operator_psql(
            &socket_dir,
            port,
            "pgbouncer",
            None,
            "pgbouncer",
            "SHOW STATE",
        );
        (pools, state)
    })
    .await
    .unwrap();
    let pools = pools.unwrap();
    let header = pools.lines().next().unwrap_or_default();
    let columns: Vec<&str> = header.split('|').map(str::trim).collect();
    assert_eq!(
        columns,
        [
            "database",
            "user",
            "cl_active",
            "cl_waiting",
            "cl_active_cancel_req",
            "cl_waiting_cancel_req",
            "sv_active",
            "sv_active_cancel",
            "sv_being_canceled",
            "sv_idle",
            "sv_used",
            "sv_tested",
            "sv_login",
            "maxwait",
            "maxwait_us",
            "pool_mode",
            "load_balance_hosts"
        ],
        "{pools}"
    );
    assert!(
        pools
            .lines()
            .any(|l| l.trim_start().starts_with("postgres ")),
        "{pools}"
    );
    assert!(pools.contains("(2 rows)"), "{pools}");
    let state = state.unwrap();
    assert!(state.contains("active"), "{state}");
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_reconnect_kill_and_suspend() {
    let pg = cluster();
    let pooler = TestPooler::start(
        pg.primary(),
        &general("pool_mode = transaction\n"),
        USERLIST,
    )
    .await;
    let admin = pooler.console("admin", Some("adminpass")).await.unwrap();
    let config = pooler.client_config("postgres", Some("pgpass"), "postgres");
    let (app, app_connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    let app_connection = tokio::spawn(app_connection);
    app.simple_query("SELECT 1").await.unwrap();

    // DISABLE refuses new logins only.
    show(&admin, "DISABLE postgres").await;
    let err = pooler
        .connect("postgres", Some("pgpass"), "postgres")
        .await
        .expect_err("disabled");
    assert_eq!(error_message(&err), "database \"postgres\" is disabled");
    app.simple_query("SELECT 1").await.unwrap();
    let databases = show(&admin, "SHOW DATABASES").await;
    let db = databases
        .iter()
        .find(|r| field(r, "name") == "postgres")
        .unwrap();
    assert_eq!(int(db, "disabled"), 1);
    show(&admin, "ENABLE postgres").await;
    pooler
        .connect("postgres", Some("pgpass"), "postgres")
        .await
        .unwrap();
    assert_eq!(
        console_error(&admin, "DISABLE").await.0,
        "a database is required"
    );
    assert_eq!(
        console_error(&admin, "DISABLE pgbouncer").await.0,
        "cannot disable admin db: pgbouncer"
    );

    // RECONNECT retires every current server; WAIT_CLOSE answers once they are gone.
    let before: Vec<String> = show(&admin, "SHOW SERVERS")
        .await
        .iter()
        .map(|s| field(s, "id").to_owned())
        .collect();
    assert!(!before.is_empty());
    show(&admin, "RECONNECT postgres").await;
    tokio::time::timeout(Duration::from_secs(10), show(&admin, "WAIT_CLOSE postgres"))
        .await
        .expect("WAIT_CLOSE answered");
    let after = show(&admin, "SHOW SERVERS").await;
    assert!(
        after
            .iter()
            .all(|s| !before.contains(&field(s, "id").to_owned()))
    );
    app.simple_query("SELECT 1").await.unwrap();

    // KILL drops the database's clients and keeps it paused until RESUME.
    show(&admin, "KILL postgres").await;
    let ended = tokio::time::timeout(Duration::from_secs(5), app_connection)
        .await
        .expect("killed client disconnected")
        .unwrap();
    assert_eq!(
        error_message(&ended.expect_err("told why")),
        "database removed"
    );
    let newcomer = pooler.client_config("postgres", Some("pgpass"), "postgres");
    let waiting = tokio::spawn(async move {
        let (client, connection) = newcomer.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client.simple_query("SELECT 7").await.map(|_| ())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "a killed database waits for RESUME");
    show(&admin, "RESUME postgres").await;
    tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("RESUME let it in")
        .unwrap()
        .unwrap();

    // SUSPEND, then RESUME.
    show(&admin, "SUSPEND").await;
    let state = show(&admin, "SHOW STATE").await;
    assert_eq!(field(&state[2], "value"), "yes", "{state:?}");
    assert_eq!(
        console_error(&admin, "SUSPEND").await.0,
        "already suspended/paused"
    );
    show(&admin, "RESUME").await;
    pooler.stop().await;
}
