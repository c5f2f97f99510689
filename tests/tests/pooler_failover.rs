//! Primary failover behind one pooler endpoint: the primary is stopped and a replica
//! promoted under a mixed load (tokio-postgres writers, pgbench `select-only@9` and
//! `simple-update@1`). Writes resume on the new primary, no client connection drops,
//! only in-flight transactions fail, no acknowledged write is lost.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::split;

/// What one writer saw: acknowledged sequence numbers with their time, and errors.
struct WriterLog {
    acknowledged: Vec<(i32, Instant)>,
    errors: Vec<String>,
    is_connected: bool,
}

async fn writer(
    pooler_config: tokio_postgres::Config,
    id: i32,
    stop: Arc<AtomicBool>,
) -> WriterLog {
    let (client, connection) = pooler_config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let mut log = WriterLog {
        acknowledged: Vec::new(),
        errors: Vec::new(),
        is_connected: true,
    };
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let insert = "INSERT INTO events (writer, seq) VALUES ($1, $2)";
        match client.execute(insert, &[&id, &seq]).await {
            Ok(_) => log.acknowledged.push((seq, Instant::now())),
            Err(e) => {
                log.errors.push(format!(
                    "{} {}",
                    common::error_code(&e).unwrap_or_default(),
                    common::error_message(&e)
                ));
                if client.is_closed() {
                    log.is_connected = false;
                    return log;
                }
            }
        }
    }
    log.is_connected = !client.is_closed() && client.simple_query("SELECT 1").await.is_ok();
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_failover_under_mixed_load_keeps_every_client_connected() {
    let pg = split::cluster(2);
    pg.primary().pgbench_init(1).unwrap();
    pg.primary()
        .psql("CREATE TABLE events (writer int, seq int, PRIMARY KEY (writer, seq))")
        .unwrap();
    pg.wait_for_replication().unwrap();
    let pooler = split::split_pooler(&pg, "read_write_split=on", 8).await;

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|id| {
            let config = pooler.client_config("postgres", None, "postgres");
            tokio::spawn(writer(config, id, Arc::clone(&stop)))
        })
        .collect();
    let port = pooler.port;
    let pgbench = tokio::task::spawn_blocking(move || {
        std::process::Command::new(integration_tests::pg_tool("pgbench").unwrap())
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
            .args([
                "-b",
                "select-only@9",
                "-b",
                "simple-update@1",
                "-c",
                "4",
                "-T",
                "7",
            ])
            .arg("postgres")
            .output()
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let failover_started = Instant::now();
    let (old, new) = (pg.primary().clone(), pg.replica(0).clone());
    tokio::task::spawn_blocking(move || {
        old.stop().unwrap();
        new.promote().unwrap();
    })
    .await
    .unwrap();
    let promoted = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);

    let mut logs = Vec::new();
    for w in writers {
        logs.push(w.await.unwrap());
    }
    let pgbench = pgbench.await.unwrap();
    let pgbench_out = String::from_utf8_lossy(&pgbench.stdout);
    let pgbench_err = String::from_utf8_lossy(&pgbench.stderr);
    eprintln!("pgbench through the failover:\n{pgbench_out}\n{pgbench_err}");

    // Every acknowledged write is on the new primary.
    let new_primary = pg.replica(0);
    for (id, log) in logs.iter().enumerate() {
        assert!(
            log.is_connected,
            "writer {id} lost its connection: {:?}",
            log.errors
        );
        assert!(
            log.errors.len() <= 1,
            "writer {id} errors: {:?}",
            log.errors
        );
        let acknowledged: Vec<i32> = log.acknowledged.iter().map(|(seq, _)| *seq).collect();
        let stored = new_primary
            .psql(&format!(
                "SELECT string_agg(seq::text, ',' ORDER BY seq) FROM events WHERE writer = {id}"
            ))
            .unwrap();
        let stored: Vec<i32> = stored.split(',').filter_map(|s| s.parse().ok()).collect();
        for seq in &acknowledged {
            assert!(
                stored.contains(seq),
                "writer {id}: acknowledged write {seq} lost"
            );
        }
        let after = log
            .acknowledged
            .iter()
            .filter(|(_, at)| *at > promoted)
            .count();
        assert!(after > 0, "writer {id} wrote nothing after the promotion");
    }
    // The client-visible write outage: the longest gap between acknowledged writes of
    // all writers together, around the failover.
    let mut times: Vec<Instant> = logs
        .iter()
        .flat_map(|l| l.acknowledged.iter().map(|(_, at)| *at))
        .collect();
    times.sort();
    let outage = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    let errors: usize = logs.iter().map(|l| l.errors.len()).sum();
    eprintln!(
        "failover: stop+promote took {:?}; longest write gap {:?}; {errors} writer errors: {:?}",
        promoted - failover_started,
        outage,
        logs.iter()
            .flat_map(|l| l.errors.iter())
            .collect::<Vec<_>>()
    );
    assert!(
        pgbench_out.contains("number of transactions actually processed"),
        "pgbench did not run"
    );

    // The old primary comes back as a standby of the new one: it serves reads again.
    let old = pg.primary().clone();
    let new_port = new_primary.port();
    tokio::task::spawn_blocking(move || rejoin_as_standby(&old, new_port))
        .await
        .unwrap();
    let reader = pooler.connect("postgres", None, "postgres").await.unwrap();
    let old_port = i32::from(pg.primary().port());
    // Within the ban time (2 s) plus a few health checks, not server_login_retry (15 s).
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut is_serving = false;
    while Instant::now() < deadline && !is_serving {
        // Simple protocol: one routing decision per read (see server_port in
        // pooler_read_write_split.rs).
        let rows = reader
            .simple_query("SELECT inet_server_port(), pg_is_in_recovery()")
            .await
            .unwrap();
        is_serving = rows.iter().any(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => {
                row.get(0) == Some(old_port.to_string().as_str()) && row.get(1) == Some("t")
            }
            _ => false,
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(is_serving, "the demoted old primary never served a read");
    pooler.stop().await;
}

/// Restarts a cleanly stopped old primary as a streaming standby of `new_primary_port`
/// (no pg_rewind needed after a clean shutdown before the promotion).
fn rejoin_as_standby(old: &integration_tests::PgNode, new_primary_port: u16) {
    let data = old.data_dir();
    std::fs::write(data.join("standby.signal"), "").unwrap();
    let conf =
        format!("\nprimary_conninfo = 'host=127.0.0.1 port={new_primary_port} user=postgres'\n");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.auto.conf"))
        .unwrap();
    std::io::Write::write_all(&mut file, conf.as_bytes()).unwrap();
    old.start().unwrap();
    assert!(old.is_in_recovery().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_block_lost_with_the_primary_is_aborted_never_committed() {
    let pg = split::cluster(1);
    pg.primary().psql("CREATE TABLE lost (id int)").unwrap();
    pg.wait_for_replication().unwrap();
    let pooler = split::split_pooler(&pg, "read_write_split=on", 4).await;
    let client = pooler.connect("postgres", None, "postgres").await.unwrap();
    client
        .batch_execute("BEGIN; INSERT INTO lost VALUES (1)")
        .await
        .unwrap();

    let (old, new) = (pg.primary().clone(), pg.replica(0).clone());
    tokio::task::spawn_blocking(move || {
        old.stop().unwrap();
        new.promote().unwrap();
    })
    .await
    .unwrap();

    // The block is gone with its server: the client learns it at its next statement,
    // then gets PostgreSQL's aborted-transaction error until it ends the block.
    let error = client
        .batch_execute("INSERT INTO lost VALUES (2)")
        .await
        .unwrap_err();
    assert_eq!(common::error_code(&error).as_deref(), Some("08006"));
    let error = client.batch_execute("SELECT 1").await.unwrap_err();
    assert_eq!(common::error_code(&error).as_deref(), Some("25P02"));
    // COMMIT of the aborted block completes as ROLLBACK, as PostgreSQL answers it.
    client.batch_execute("COMMIT").await.unwrap();
    // The connection goes on, on the new primary.
    client
        .batch_execute("INSERT INTO lost VALUES (3)")
        .await
        .unwrap();
    let rows = pg
        .replica(0)
        .psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM lost")
        .unwrap();
    assert_eq!(rows, "3", "only the write after the failover exists");
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_cut_off_by_a_failover_ends_in_an_error_not_a_hang() {
    use futures_util::SinkExt;
    let pg = split::cluster(1);
    pg.primary().psql("CREATE TABLE copied (id int)").unwrap();
    pg.wait_for_replication().unwrap();
    let pooler = split::split_pooler(&pg, "read_write_split=on", 4).await;
    let client = pooler.connect("postgres", None, "postgres").await.unwrap();
    client.batch_execute("BEGIN").await.unwrap();
    let sink = client.copy_in("COPY copied (id) FROM STDIN").await.unwrap();
    let mut sink = std::pin::pin!(sink);
    sink.send(bytes::Bytes::from_static(b"1\n")).await.unwrap();

    let (old, new) = (pg.primary().clone(), pg.replica(0).clone());
    tokio::task::spawn_blocking(move || {
        old.stop().unwrap();
        new.promote().unwrap();
    })
    .await
    .unwrap();

    let limit = Duration::from_secs(10);
    let finished = tokio::time::timeout(limit, async {
        let _ = sink.send(bytes::Bytes::from_static(b"2\n")).await;
        sink.as_mut().finish().await
    })
    .await
    .expect("the COPY hung after its server was lost");
    assert!(
        finished.is_err(),
        "a COPY into a lost server cannot succeed"
    );
    tokio::time::timeout(limit, client.batch_execute("ROLLBACK"))
        .await
        .expect("ROLLBACK hung")
        .unwrap();
    client
        .batch_execute("INSERT INTO copied VALUES (5)")
        .await
        .unwrap();
    let rows = pg
        .replica(0)
        .psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM copied")
        .unwrap();
    assert_eq!(rows, "5");
    pooler.stop().await;
}
