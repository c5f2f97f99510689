//! Config unit tests: connection strings, users/peers, userlist, sidecar URLs, pool-setting
//! precedence and validation.

use super::*;

#[test]
fn connection_string_tokens() {
    let pairs = parse_pairs("  a=1 b = 'x y' c='it''s'  d=''''").expect("valid");
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(pairs, [("a", "1"), ("b", "x y"), ("c", "it's"), ("d", "'")]);
    assert_eq!(parse_pairs("a="), Err("empty value"));
    assert_eq!(parse_pairs("a=''"), Err("empty value"));
    assert_eq!(parse_pairs("a='x"), Err("unterminated quoted value"));
    assert_eq!(
        parse_pairs("a='x'b=1"),
        Err("text right after a quoted value")
    );
    assert_eq!(
        parse_pairs("a b=1"),
        Err("expected '=' after a parameter name")
    );
    assert_eq!(parse_pairs("=1"), Err("empty parameter name"));
    assert_eq!(parse_pairs(""), Ok(vec![]));
}

#[test]
fn database_entries() {
    let Loaded { config, warnings } = loaded(&format!(
        "[databases]\na = host=h pool_size=20x min_pool_size=-1 reserve_pool_size=4\nb = host=[::1],::2,/tmp,@abstract\n{BASE}"
    ));
    let a = &config.databases["a"];
    assert_eq!(
        (a.port, a.pool_size, a.min_pool_size, a.reserve_pool_size),
        (5432, Some(20), None, Some(4))
    );
    assert_eq!(a.server_dbname(), "a");
    assert_eq!(
        render(&warnings),
        [
            "pgbouncer.ini:2: value \"20x\" for pool_size is read as 20 (PgBouncer reads it with atoi)"
        ]
    );
    let hosts: Vec<&str> = config.databases["b"]
        .hosts
        .iter()
        .map(|h| h.host.as_str())
        .collect();
    assert_eq!(hosts, ["::1", "::2", "/tmp", "@abstract"]);
    assert_eq!(
        errors_of(&format!(
            "[databases]\nc = port=0\nd = port=99999\ne = host=a,,b\nf = host=h replica_weights=1,2\ng = pool_mode=Session load_balance_hosts=random\n{BASE}"
        )),
        [
            "pgbouncer.ini:2: invalid port: 0",
            "pgbouncer.ini:3: invalid port: 99999",
            "pgbouncer.ini:4: invalid value \"a,,b\" for parameter host: expected a comma list of host, host:port or [ipv6]:port",
            "pgbouncer.ini:5: invalid value \"1,2\" for parameter replica_weights: expected one weight per host (1 hosts)",
            "pgbouncer.ini:6: invalid value \"random\" for parameter load_balance_hosts: expected round-robin or disable",
        ]
    );
}

#[test]
fn port_text_uses_atoi() {
    // atoi("0x10") is 0, which PgBouncer rejects as an invalid port.
    assert_eq!(
        errors_of(&format!("[databases]\na = port=0x10\n{BASE}")),
        ["pgbouncer.ini:2: invalid port: 0x10"]
    );
}

#[test]
fn users_and_peers() {
    let config = loaded(&format!("[users]\nu = pool_size=3 client_idle_timeout=30\n[peers]\n7 = host=10.1.1.1 port=7432\n{BASE}")).config;
    assert_eq!(
        config.users["u"].client_idle_timeout,
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        config.peers[&7],
        PeerConfig {
            peer_id: 7,
            host: "10.1.1.1".into(),
            port: 7432,
            pool_size: None
        }
    );
    assert_eq!(
        errors_of(&format!(
            "[peers]\n0 = host=a\nx = host=a\n3 = port=1\n4 = host=a user=b\n[users]\nv = query_timeout=-1\n{BASE}"
        )),
        [
            "pgbouncer.ini:2: ids of peers must be a number larger than 0 and at most 65535: 0",
            "pgbouncer.ini:3: ids of peers must be a number larger than 0 and at most 65535: x",
            "pgbouncer.ini:4: host was not provided for peer 3",
            "pgbouncer.ini:5: unrecognized connection parameter: user",
            "pgbouncer.ini:7: invalid value \"-1\" for parameter query_timeout: expected a non-negative number of seconds",
        ]
    );
}

#[test]
fn userlist_fixture() {
    let (users, warnings) = load_auth_file(&fixture("userlist.txt")).expect("readable");
    let kinds: Vec<(&str, &str)> = users.iter().map(|(u, s)| (u.as_str(), s.kind())).collect();
    assert_eq!(
        kinds,
        [
            ("admin", "md5"),
            ("alice", "scram-sha-256"),
            ("bob", "md5"),
            ("carol", "plain"),
            ("dave", "plain"),
            ("pgb_auth", "plain")
        ]
    );
    let carol = match &users["carol"] {
        protocol::pg::auth::StoredSecret::Plain(password) => password.clone(),
        other => panic!("carol: {other:?}"),
    };
    assert_eq!(carol, "plain \"quoted\" password");
    assert_eq!(
        render(&warnings),
        ["userlist.txt:9: broken auth file; lines from here on are ignored"]
    );
    assert!(!format!("{users:?}").contains("authpass"));
}

#[test]
fn userlist_limits_and_malformed_lines() {
    let path = Path::new("userlist.txt");
    let long_user = format!("\"{}\" \"x\"\n\"after\" \"y\"\n", "u".repeat(MAX_USERNAME));
    let (users, warnings) = parse_auth_file(path, long_user.as_bytes());
    assert!(users.is_empty());
    assert_eq!(
        render(&warnings),
        ["userlist.txt:1: username too long in auth file; lines from here on are ignored"]
    );
    let long_secret = format!("\"ok\" \"1\"\n\"u\" \"{}\"\n", "p".repeat(MAX_PASSWORD));
    let (users, warnings) = parse_auth_file(path, long_secret.as_bytes());
    assert_eq!(
        (users.len(), render(&warnings)),
        (
            1,
            vec![
                "userlist.txt:2: password too long in auth file; lines from here on are ignored"
                    .to_owned()
            ]
        )
    );
    for broken in [
        "\"user\"\n",
        "\"user\" \"open\n",
        "user \"pw\"\n",
        "\"user\n",
    ] {
        let (users, warnings) = parse_auth_file(path, broken.as_bytes());
        assert!(users.is_empty() && warnings.len() == 1, "{broken:?}");
        assert_eq!(warnings[0].kind, ConfigWarningKind::BrokenAuthFile);
    }
    let (users, warnings) = parse_auth_file(
        path,
        b"\"a\"\"b\" junk \"SCRAM-SHA-256$x\"\n\"a\"\"b\" \"second\"\n",
    );
    assert_eq!(users.keys().collect::<Vec<_>>(), ["a\"b"]);
    assert_eq!(users["a\"b"].kind(), "plain");
    assert_eq!(
        render(&warnings),
        [
            "userlist.txt:1: secret of user \"a\"b\" looks like SCRAM but is malformed; it is used as a plain-text password"
        ]
    );
}

#[test]
fn database_urls() {
    let url = parse_database_url(
        "postgres://app:p%40ss%3Aw0rd@[::1]:6543,db2/orders?sslmode=disable&application_name=api",
    )
    .expect("valid");
    assert_eq!(
        (url.user.as_deref(), url.password.as_deref()),
        (Some("app"), Some("p@ss:w0rd"))
    );
    let hosts: Vec<(&str, Option<u16>)> = url
        .hosts
        .iter()
        .map(|h| (h.host.as_str(), h.port))
        .collect();
    assert_eq!(hosts, [("::1", Some(6543)), ("db2", None)]);
    assert_eq!(url.dbname.as_deref(), Some("orders"));
    assert_eq!(url.params.len(), 2);
    let socket =
        parse_database_url("POSTGRESQL://u@/db?host=%2Fvar%2Frun%2Fpostgresql").expect("valid");
    assert!(socket.hosts[0].is_unix_socket() && socket.password.is_none());
    for bad in [
        "mysql://u@h/db",
        "postgres://u:secret@h:99999/db",
        "postgres://u:secret%zz@h/db",
        "postgres://u:secret@h/db?flag",
    ] {
        let error = parse_database_url(bad).err().expect("rejected").to_string();
        assert!(!error.contains("secret"), "{error}");
    }
}

#[test]
fn sidecar_config_from_url() {
    let mut args = SidecarArgs::new(
        "postgresql://app:s3cret@db.internal/orders?application_name=api&options=-c%20x%3Dy",
        "0.0.0.0:6432",
    );
    args.pool_mode = Some(PoolMode::Transaction);
    args.pool_size = Some(10);
    assert!(!format!("{args:?}").contains("s3cret"));
    let Loaded { config, warnings } = sidecar_config(&args).expect("valid");
    let g = &config.general;
    assert_eq!(
        (
            g.listen_addr.clone(),
            g.listen_port,
            g.unix_socket_dir.as_str()
        ),
        (vec!["0.0.0.0".to_owned()], 6432, "")
    );
    assert_eq!(
        (g.auth_type, g.pool_mode, g.default_pool_size),
        (AuthType::Md5, PoolMode::Transaction, 10)
    );
    // pgjdbc connects to a sidecar without configuration.
    assert_eq!(g.ignore_startup_parameters, ["extra_float_digits"]);
    let db = &config.databases["orders"];
    assert_eq!(
        (db.hosts[0].host.as_str(), db.port, db.server_dbname()),
        ("db.internal", 5432, "orders")
    );
    assert_eq!(db.application_name.as_deref(), Some("api"));
    assert!(db.user.is_none());
    assert_eq!(
        config
            .database("other")
            .map(|db| db.server_dbname().to_owned())
            .as_deref(),
        Some("other")
    );
    assert!(
        matches!(&config.static_users["app"], protocol::pg::auth::StoredSecret::Plain(p) if p == "s3cret")
    );
    assert_eq!(
        render(&warnings),
        ["<database-url>: database URL parameter \"options\" is ignored"]
    );

    let mut args = SidecarArgs::new("postgres://app@db:5433", "6432");
    args.allow_other_databases = false;
    let config = sidecar_config(&args).expect("valid").config;
    assert_eq!(
        (config.general.auth_type, config.general.listen_addr.clone()),
        (AuthType::Trust, vec!["127.0.0.1".to_owned()])
    );
    assert_eq!(config.databases["app"].hosts[0].port, Some(5433));
    assert!(config.database("other").is_none());

    for (url, listen) in [
        ("postgres://db/x", "6432"),
        ("postgres://u:pw@db/x", "nowhere"),
        ("postgres://u:pw@db/x?sslmode=require", "6432"),
    ] {
        let errors = sidecar_config(&SidecarArgs::new(url, listen)).expect_err("rejected");
        assert!(
            errors.iter().all(|e| !e.to_string().contains("pw@")),
            "{errors:?}"
        );
    }
}

#[test]
fn pool_settings_precedence() {
    let config = loaded(&format!(
        "[databases]\nd = host=h pool_size=30 pool_mode=session max_db_connections=0 server_lifetime=60 query_wait_timeout=5\n* = host=h pool_size=7\n[users]\nu = pool_size=3 pool_mode=statement max_user_connections=9 query_timeout=4\nplain = max_user_connections=0\n{BASE}pool_mode = transaction\ndefault_pool_size = 25\nmax_db_connections = 40\nmax_user_connections = 50\nquery_timeout = 2\n"
    ))
    .config;
    // An unlisted database gets the `*` entry's overrides, else the globals.
    let auto = config.pool_settings("nope", "nobody");
    assert_eq!(
        (auto.pool_mode, auto.pool_size, auto.max_db_connections),
        (PoolMode::Transaction, 7, 40)
    );
    let mut no_fallback = config.clone();
    no_fallback.fallback_database = None;
    assert_eq!(no_fallback.pool_settings("nope", "nobody").pool_size, 25);
    let db = config.pool_settings("d", "plain");
    assert_eq!(
        (
            db.pool_mode,
            db.pool_size,
            db.max_db_connections,
            db.max_user_connections
        ),
        (PoolMode::Session, 30, 40, 50)
    );
    assert_eq!(
        (db.server_lifetime, db.query_wait_timeout),
        (Duration::from_secs(60), Duration::from_secs(5))
    );
    let user = config.pool_settings("d", "u");
    assert_eq!(
        (user.pool_mode, user.pool_size, user.max_user_connections),
        (PoolMode::Statement, 3, 9)
    );
    assert_eq!(user.query_timeout, Duration::from_secs(4));
    assert_eq!(config.pool_settings("auto", "plain").pool_size, 7);
    assert_eq!(config.pool_settings("auto", "plain").reserve_pool_size, 0);
}

#[test]
fn validate_rules() {
    assert_eq!(
        errors_of(&format!("{BASE}auth_type = hba\n")),
        ["pgbouncer.ini:3: auth_type = hba is not supported by pooler yet"]
    );
    assert_eq!(
        errors_of("[pgbouncer]\nauth_type = md5\n"),
        [
            "pgbouncer.ini:2: auth_type = md5 needs auth_file (or auth_user with auth_query) to know users"
        ]
    );
    assert_eq!(
        errors_of(&format!("{BASE}client_tls_sslmode = require\n"))[0],
        "pgbouncer.ini:3: client_tls_sslmode = require is not supported by pooler yet"
    );
    assert_eq!(
        errors_of(&format!("{BASE}unix_socket_dir =\n")),
        ["pgbouncer.ini: nothing to listen on: listen_addr and unix_socket_dir are both empty"]
    );
    assert_eq!(
        errors_of(&format!("{BASE}metrics_addr = 9127\npeer_id = 20000\n")).len(),
        2
    );
    loaded("[databases]\nd = host=h auth_user=pgb\n[pgbouncer]\n");
    let Loaded { warnings, .. } = loaded(&format!(
        "{BASE}reserve_pool_size = 5\nreserve_pool_timeout = 0\n"
    ));
    assert_eq!(
        render(&warnings),
        [
            "pgbouncer.ini:4: reserve_pool_size is set but reserve_pool_timeout = 0: the reserve pool is never used"
        ]
    );
}

#[test]
fn runtime_set_and_reload_helpers() {
    let mut config = loaded(&format!("{BASE}listen_port = 7000\n")).config;
    assert_eq!(
        config.set_general("default_pool_size", "0x20").ok(),
        Some(true)
    );
    assert_eq!(config.general.default_pool_size, 32);
    assert_eq!(config.set_general("listen_port", "1").ok(), Some(false));
    assert!(config.set_general("pool_mode", "bogus").is_err());
    assert!(config.set_general("nope", "1").is_err());
    assert_eq!(config.general.pool_mode, PoolMode::Session);
    let running = config.clone();
    let mut next = loaded(&format!(
        "{BASE}listen_port = 7001\ndefault_pool_size = 5\n"
    ))
    .config;
    assert_eq!(next.retain_restart_settings(&running), ["listen_port"]);
    assert_eq!(
        (next.general.listen_port, next.general.default_pool_size),
        (7000, 5)
    );
}
