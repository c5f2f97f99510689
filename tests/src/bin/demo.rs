//! `scripts/demo.sh`: a local demo stack on free ports — PostgreSQL primary + streaming
//! replica, Redis master + replica + 3 Sentinels, pooler in front of PostgreSQL and
//! cacheproxy in front of Redis —
//! printed as connection strings, until Ctrl-C. Everything stops and is removed on exit.
#![forbid(unsafe_code)]

use std::time::Duration;

use integration_tests::{AuthMethod, PgCluster, PgOptions, PgUser, RedisOptions, RedisSet};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    println!("starting PostgreSQL primary + replica ...");
    let pg = PgCluster::start_async(PgOptions {
        replicas: 1,
        users: vec![PgUser::new("app", "app-secret", AuthMethod::ScramSha256)],
        ..PgOptions::default()
    })
    .await?;
    pg.primary().psql("GRANT ALL ON SCHEMA public TO app")?;
    println!("starting Redis master + replica + 3 Sentinels ...");
    let redis = tokio::task::spawn_blocking(|| {
        RedisSet::start(RedisOptions {
            replicas: 1,
            sentinels: 3,
            ..RedisOptions::default()
        })
    })
    .await??;

    let dir = tempfile::tempdir()?;
    let scram = pg
        .primary()
        .psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'app'")?;
    let userlist = dir.path().join("userlist.txt");
    std::fs::write(
        &userlist,
        format!("\"app\" \"{scram}\"\n\"postgres\" \"\"\n"),
    )?;
    let ini = dir.path().join("pgbouncer.ini");
    std::fs::write(
        &ini,
        format!(
            "[databases]\n* = host=127.0.0.1 port={}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = 0\nunix_socket_dir = {}\nauth_type = scram-sha-256\nauth_file = {}\npool_mode = transaction\ndefault_pool_size = 10\nmax_client_conn = 1000\n",
            pg.primary().port(),
            dir.path().display(),
            userlist.display()
        ),
    )?;
    let loaded = pooler::config::load(&ini).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let (secrets, _) = pooler::config::load_auth_file(&userlist)?;
    let running = pooler::start(loaded.config, secrets).await?;
    let pooler_port = running.tcp_addrs[0].port();

    let sentinel_list: Vec<String> = redis
        .sentinel_addrs()
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect();
    let proxy_config = cacheproxy::Config::parse(&format!(
        "listen = \"127.0.0.1:0\"\nsentinels = [{}]\nmaster_name = \"{}\"\n",
        sentinel_list.join(", "),
        redis.master_name()
    ))
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let proxy = cacheproxy::start(proxy_config)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    println!();
    println!(
        "PostgreSQL primary   postgres://postgres@127.0.0.1:{}/postgres",
        pg.primary().port()
    );
    println!(
        "PostgreSQL replica   postgres://postgres@127.0.0.1:{}/postgres",
        pg.replica(0).port()
    );
    println!("pooler (PgBouncer)   postgres://app:app-secret@127.0.0.1:{pooler_port}/postgres");
    println!(
        "                     psql 'postgres://app:app-secret@127.0.0.1:{pooler_port}/postgres'"
    );
    println!("Redis master         redis://{}", redis.master_addr()?);
    for addr in redis.replica_addrs() {
        println!("Redis replica        redis://{addr}");
    }
    let sentinels: Vec<String> = redis
        .sentinel_addrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    println!(
        "Sentinels            {} (master name {})",
        sentinels.join(","),
        redis.master_name()
    );
    println!(
        "cacheproxy           redis://{}  (follows Sentinel failovers)",
        proxy.addr()
    );
    println!();
    println!("Ctrl-C stops everything.");
    tokio::signal::ctrl_c().await?;
    proxy.shutdown().await;
    running.shutdown(Duration::from_secs(5)).await;
    drop(redis);
    drop(pg);
    Ok(())
}
