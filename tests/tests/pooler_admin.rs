//! pooler's admin console against a real PostgreSQL: PgBouncer's exact SHOW columns and
//! types, values under load that add up, and `/metrics` agreeing with SHOW POOLS.

mod common;

use std::time::Duration;

use common::admin::{
    Row, USERLIST, cluster, field, general, int, letter_type, metric, parse_prometheus,
    pgbouncer_columns, pool_row, row_description, show,
};
use common::raw::RawClient;
use common::{TestPooler, http_get};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_show_has_pgbouncer_columns_and_types() {
    let pg = cluster();
    let pooler = TestPooler::start(
        pg.primary(),
        "auth_type = trust\nadmin_users = admin\n",
        USERLIST,
    )
    .await;
    // A pool with a client, so rows exist where they can.
    let app = pooler.connect("postgres", None, "postgres").await.unwrap();
    app.simple_query("SELECT 1").await.unwrap();
    let mut raw = RawClient::connect(pooler.port).await;
    let welcome = raw
        .startup(&[("user", "admin"), ("database", "pgbouncer")])
        .await;
    assert_eq!(
        welcome.last().map(|m| m.tag),
        Some(b'Z'),
        "{}",
        common::raw::tags(&welcome)
    );
    let server_version = welcome
        .iter()
        .filter(|m| m.tag == b'S')
        .find(|m| m.body.starts_with(b"server_version\0"))
        .map(|m| String::from_utf8_lossy(&m.body).into_owned());
    assert_eq!(
        server_version.as_deref(),
        Some("server_version\u{0}1.25.2/bouncer\u{0}")
    );
    for (command, names, letters) in pgbouncer_columns() {
        let messages = raw.simple_query(&format!("SHOW {command}")).await;
        let columns = row_description(&messages);
        let got: Vec<&str> = columns.iter().map(|(n, _, _)| n.as_str()).collect();
        let want: Vec<&str> = names.split(',').collect();
        assert_eq!(got, want, "column names of SHOW {command}");
        for ((name, oid, size), letter) in columns.iter().zip(letters.chars()) {
            assert_eq!(
                (*oid, *size),
                letter_type(letter),
                "type of {command}.{name}"
            );
        }
        let complete = messages.iter().find(|m| m.tag == b'C').unwrap();
        assert_eq!(complete.body, b"SHOW\0", "tag of SHOW {command}");
        let width = want.len();
        for row in messages.iter().filter(|m| m.tag == b'D') {
            assert_eq!(
                usize::from(u16::from_be_bytes([row.body[0], row.body[1]])),
                width
            );
        }
    }
    // SELECT is SHOW; the fake driver parameters answer one text column.
    let messages = raw.simple_query("select lists;").await;
    assert_eq!(row_description(&messages)[0].0, "list");
    let messages = raw.simple_query("SHOW client_encoding").await;
    assert_eq!(
        row_description(&messages),
        vec![("client_encoding".into(), 25, -1)]
    );
    assert_eq!(common::raw::data_values(&messages), vec!["UTF-8"]);
    // HELP is a NOTICE then SHOW.
    let messages = raw.simple_query("SHOW HELP").await;
    let notice = messages.iter().find(|m| m.tag == b'N').unwrap();
    assert_eq!(notice.field(b'M').as_deref(), Some("Console usage"));
    assert!(
        notice
            .field(b'D')
            .unwrap()
            .contains("KILL_CLIENT <client_id>")
    );
    // Errors keep the connection.
    let messages = raw.simple_query("SHOW NOTHING").await;
    let error = messages.iter().find(|m| m.tag == b'E').unwrap();
    assert_eq!(error.field(b'C').as_deref(), Some("08P01"));
    assert_eq!(
        error.field(b'M').as_deref(),
        Some("invalid command 'SHOW NOTHING', use SHOW HELP;")
    );
    assert_eq!(messages.last().map(|m| m.tag), Some(b'Z'));
    let messages = raw.simple_query("SHOW VERSION").await;
    assert!(common::raw::data_values(&messages)[0].starts_with("PgBouncer 1.25.2"));
    pooler.stop().await;
}

// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_under_load_add_up_and_metrics_agree() {
    let pg = cluster();
    let pooler = TestPooler::start(
        pg.primary(),
        &general("pool_mode = transaction\ndefault_pool_size = 2\nreserve_pool_size = 1\nreserve_pool_timeout = 0.5\nstats_period = 1\n"),
        USERLIST,
    )
    .await;
    let admin = pooler.console("admin", Some("adminpass")).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let config = pooler.client_config("postgres", Some("pgpass"), "postgres");
        tasks.push(tokio::spawn(async move {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(connection);
            client.simple_query("SELECT pg_sleep(4)").await.unwrap();
        }));
    }
    // 2 servers, then the reserve one after 0.5 s; 2 clients keep waiting.
    let mut pools = Vec::new();
    for _ in 0..60 {
        pools = show(&admin, "SHOW POOLS").await;
        if let Some(row) = pool_row(&pools, "postgres", "postgres")
            && int(row, "sv_active") == 3
            && int(row, "cl_waiting") == 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics_text = http_get(pooler.metrics_addr().unwrap(), "/metrics")
        .await
        .unwrap();
    let clients = show(&admin, "SHOW CLIENTS").await;
    let servers = show(&admin, "SHOW SERVERS").await;
    let row = pool_row(&pools, "postgres", "postgres")
        .expect("pool row")
        .clone();
    assert_eq!(int(&row, "sv_active"), 3, "{row:?}");
    assert_eq!(int(&row, "cl_waiting"), 2, "{row:?}");
    assert_eq!(int(&row, "cl_active"), 3, "{row:?}");
    let connected = clients
        .iter()
        .filter(|c| field(c, "database") == "postgres")
        .count() as i64;
    assert_eq!(int(&row, "cl_active") + int(&row, "cl_waiting"), connected);
    let maxwait_us = int(&row, "maxwait") * 1_000_000 + int(&row, "maxwait_us");
    assert!(maxwait_us >= 400_000, "maxwait {maxwait_us} µs");
    assert_eq!(field(&row, "pool_mode"), "transaction");
    let admin_row = pool_row(&pools, "pgbouncer", "pgbouncer").expect("admin pool row");
    assert_eq!(int(admin_row, "cl_active"), 1);
    let waiting: Vec<&Row> = clients
        .iter()
        .filter(|c| field(c, "state") == "waiting")
        .collect();
    assert_eq!(waiting.len(), 2);
    assert!(waiting.iter().all(|c| field(c, "link").is_empty()));
    let active_servers: Vec<&Row> = servers
        .iter()
        .filter(|s| field(s, "database") == "postgres" && field(s, "state") == "active")
        .collect();
    assert_eq!(active_servers.len(), 3, "{servers:?}");
    for server in &active_servers {
        let client = clients
            .iter()
            .find(|c| field(c, "ptr") == field(server, "link"))
            .unwrap_or_else(|| panic!("server linked to no listed client: {server:?}"));
        assert_eq!(field(client, "state"), "active");
        assert_eq!(field(client, "link"), field(server, "ptr"));
        assert!(int(server, "remote_pid") > 0);
    }
    // /metrics parses and agrees with SHOW POOLS at that moment.
    let (status, body) = metrics_text;
    assert_eq!(status, 200);
    let series = parse_prometheus(&body);
    let labels = [("database", "postgres"), ("user", "postgres")];
    for (column, name) in [
        ("cl_active", "pgbouncer_pools_client_active_connections"),
        ("cl_waiting", "pgbouncer_pools_client_waiting_connections"),
        ("sv_active", "pgbouncer_pools_server_active_connections"),
        ("sv_idle", "pgbouncer_pools_server_idle_connections"),
        ("sv_login", "pgbouncer_pools_server_login_connections"),
    ] {
        assert_eq!(
            metric(&series, name, &labels),
            int(&row, column) as f64,
            "{name}"
        );
    }
    assert_eq!(
        metric(&series, "pooler_reserve_connections_in_use", &labels),
        1.0
    );
    // sv_active 3 of pool_size 2 + reserve_pool_size 1.
    assert_eq!(metric(&series, "pooler_pool_utilisation", &labels), 1.0);
    assert_eq!(metric(&series, "pgbouncer_up", &[]), 1.0);
    assert!(
        series
            .keys()
            .any(|k| k.starts_with("pooler_client_wait_seconds_bucket{"))
    );
    assert!(
        series
            .keys()
            .any(|k| k.starts_with("process_resident_memory_bytes"))
    );
    for task in tasks {
        task.await.unwrap();
    }
    // Totals count every transaction; the averages over stats_period see them.
    // A server is released just after its client got the last reply: poll briefly.
    let mut totals = Vec::new();
    for _ in 0..40 {
        totals = show(&admin, "SHOW STATS_TOTALS").await;
        let db = totals
            .iter()
            .find(|r| field(r, "database") == "postgres")
            .unwrap();
        if int(db, "xact_time") >= 5 * 3_900_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let db = totals
        .iter()
        .find(|r| field(r, "database") == "postgres")
        .unwrap();
    assert!(int(db, "bytes_sent") > 0, "{db:?}");
    assert!(int(db, "bytes_received") > 0, "{db:?}");
    assert!(int(db, "xact_count") >= 5, "{db:?}");
    assert!(int(db, "server_assignment_count") >= 5, "{db:?}");
    assert!(
        int(db, "wait_time") >= 4_000_000,
        "two clients waited ~4 s: {db:?}"
    );
    assert!(int(db, "xact_time") >= 5 * 3_900_000, "{db:?}");
    assert!(int(db, "query_time") >= 5 * 3_900_000, "{db:?}");
    let averages = show(&admin, "SHOW STATS_AVERAGES").await;
    let db = averages
        .iter()
        .find(|r| field(r, "database") == "postgres")
        .unwrap();
    assert!(
        int(db, "xact_time") >= 1_000_000,
        "average transaction ~4 s: {db:?}"
    );
    let (_, body) = http_get(pooler.metrics_addr().unwrap(), "/metrics")
        .await
        .unwrap();
    let series = parse_prometheus(&body);
    for name in [
        "pgbouncer_stats_totals_sql_transactions_pooled_total",
        "pgbouncer_stats_sql_transactions_pooled_total",
    ] {
        assert!(
            metric(&series, name, &[("database", "postgres")]) >= 5.0,
            "{name}"
        );
    }
    // Every series the Grafana dashboard queries exists.
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/pooler-dashboard.json"
    ))
    .unwrap();
    let exprs = dashboard.split("\"expr\": \"").skip(1).map(|rest| {
        // Up to the closing quote; label matchers inside are escaped as \".
        let end = rest
            .char_indices()
            .find(|(i, c)| *c == '"' && !rest[..*i].ends_with('\\'))
            .map_or(rest.len(), |(i, _)| i);
        &rest[..end]
    });
    let words = exprs.flat_map(|e| e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')));
    let mut checked = 0;
    for word in words {
        if ["pgbouncer_", "pooler_", "process_"]
            .iter()
            .any(|p| word.starts_with(p))
        {
            checked += 1;
            assert!(
                series.keys().any(|k| k.starts_with(&format!("{word}{{"))),
                "the dashboard uses {word}, which /metrics does not have"
            );
        }
    }
    assert!(checked > 20, "the dashboard queries were found");
    let waited = metric(&series, "pooler_client_wait_seconds_count", &labels);
    assert!(waited >= 5.0);
    pooler.stop().await;
}
