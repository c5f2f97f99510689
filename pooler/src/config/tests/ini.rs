//! Config unit tests: INI lexical rules, includes, typed values and the key table.

use super::*;

#[test]
fn full_pgbouncer_ini_parses() {
    let Loaded { config, warnings } = load(&fixture("pgbouncer.ini")).expect("fixture loads");
    let g = &config.general;
    // The seed deployment settings.
    assert_eq!(g.pool_mode, PoolMode::Transaction);
    assert_eq!(g.max_client_conn, 1000);
    assert_eq!(g.default_pool_size, 25);
    assert_eq!(g.min_pool_size, 10);
    assert_eq!(g.reserve_pool_size, 5);
    assert_eq!(g.reserve_pool_timeout, Duration::from_secs(3));
    assert_eq!(g.listen_addrs(), vec![ListenAddr::AllInterfaces]);
    assert_eq!(g.unix_socket_mode, 0o777);
    assert_eq!(g.auth_type, AuthType::ScramSha256);
    assert_eq!(g.admin_users, ["postgres", "admin"]);
    assert_eq!(g.stats_users, ["stats", "monitoring"]);
    assert_eq!(
        g.ignore_startup_parameters,
        ["extra_float_digits", "options"]
    );
    assert_eq!((g.tcp_keepidle, g.tcp_keepintvl), (60, 8));
    assert_eq!(g.cancel_wait_timeout, Duration::from_millis(500));
    assert_eq!(g.server_check(), ServerCheck::Query("select 1"));
    assert!(g.application_name_add_host);
    assert_eq!(g.metrics_addr.as_deref(), Some("127.0.0.1:9127"));
    assert_eq!(g.log_format, LogFormat::Json);
    assert_eq!(g.verbose, 0);
    assert_eq!(config.auth_file_path(), Some(fixture("userlist.txt")));

    let names: Vec<&str> = config.databases.keys().map(String::as_str).collect();
    let expected = [
        "analytics",
        "legacy app",
        "orders",
        "orders_ro",
        "reporting",
        "shop",
    ];
    assert_eq!(names, [&expected[..], &["tenant_a", "tenant_b"]].concat());
    let reporting = &config.databases["reporting"];
    assert_eq!(
        reporting.password.as_ref().map(Password::expose),
        Some("se;cr=et#1'x")
    );
    assert!(!format!("{reporting:?}").contains("se;cr"));
    let ro = &config.databases["orders_ro"];
    let hosts: Vec<(&str, Option<u16>)> =
        ro.hosts.iter().map(|h| (h.host.as_str(), h.port)).collect();
    assert_eq!(
        hosts,
        [
            ("10.0.0.7", Some(5433)),
            ("10.0.0.8", None),
            ("fd00::9", Some(5434))
        ]
    );
    assert_eq!(
        (ro.port, ro.load_balance_hosts),
        (6543, LoadBalanceHosts::Disable)
    );
    let legacy = &config.databases["legacy app"];
    assert!(legacy.hosts[0].is_unix_socket());
    assert_eq!(
        legacy.connect_query.as_deref(),
        Some("SET search_path TO app, public")
    );
    let analytics = &config.databases["analytics"];
    assert_eq!(analytics.reserve_pool_size, Some(3));
    assert_eq!(analytics.server_lifetime, Some(Duration::from_secs(1800)));
    let routing = &config.databases["shop"].routing;
    assert!(routing.read_write_split);
    assert_eq!(routing.target_session_attrs, TargetSessionAttrs::ReadWrite);
    assert_eq!(
        routing.replica_selection,
        ReplicaSelection::LeastConnections
    );
    assert_eq!(routing.max_replica_lag, Some(Duration::from_millis(2500)));
    assert_eq!(routing.replica_weights, [0, 1, 2]);
    assert_eq!(config.databases["tenant_b"].pool_size, Some(8));
    assert_eq!(
        config.fallback_database.as_ref().map(|db| db.name.as_str()),
        Some("*")
    );
    assert_eq!(config.users["batch"].pool_mode, Some(PoolMode::Statement));
    assert_eq!(config.peers[&2].pool_size, Some(4));
    assert_eq!(config.peers[&1].port, 6432);
    let tenant_origin = &config.origins["databases/tenant_a"];
    assert_eq!(
        (tenant_origin.file.clone(), tenant_origin.line),
        (fixture("pgbouncer-databases.ini"), 2)
    );

    assert_eq!(
        render(&warnings),
        [
            "pgbouncer.ini:68: parameter application_name_add_host is not implemented by pooler yet; value \"1\" is ignored",
            "pgbouncer.ini:69: parameter cancel_wait_timeout is not implemented by pooler yet; value \"0.5\" is ignored",
            "pgbouncer.ini:74: parameter pkt_buf has no effect in pooler; value \"8192\" is ignored",
            "pgbouncer.ini:75: parameter dns_max_ttl is not implemented by pooler yet; value \"30\" is ignored",
        ]
    );
}

#[test]
fn every_error_of_a_file_is_reported_with_its_line() {
    let errors = load(&fixture("errors.ini")).expect_err("errors.ini is invalid");
    let fixtures_dir = fixture("").display().to_string();
    let rendered: Vec<String> = render(&errors)
        .iter()
        .map(|line| line.replace(&fixtures_dir, ""))
        .collect();
    assert_eq!(
        rendered,
        [
            "errors.ini:2: value without section: stray",
            "errors.ini:5: unknown parameter: pgbouncer/foo",
            "errors.ini:6: invalid value \"10x\" for parameter max_client_conn: expected an integer in 0..=4294967295",
            "errors.ini:7: invalid value \"md5 ; note\" for parameter auth_type: expected one of any, trust, plain, md5, scram-sha-256, cert, hba, ldap, pam",
            "errors.ini:8: syntax error in configuration: expected '=' after the key",
            "errors.ini:10: database name \"pgbouncer\" is reserved",
            "errors.ini:11: unrecognized connection parameter: sslmode",
            "errors.ini:12: syntax error in connection string: empty value",
            "errors.ini:14: invalid value \"bogus\" for parameter pool_mode: expected session, transaction or statement",
            "errors.ini:15: unrecognized user parameter: max_connections",
            "errors-included.ini:3: unrecognized user parameter: bogus_key",
            "errors.ini:17: invalid section \"mystery\"",
            "errors.ini:19: could not load included file \"does-not-exist.ini\": No such file or directory (os error 2)",
        ]
    );
    let first = &errors[1];
    assert_eq!(
        first.to_string(),
        format!(
            "{}:5: unknown parameter: pgbouncer/foo",
            fixture("errors.ini").display()
        )
    );
}

#[test]
fn comments_only_at_line_start() {
    let config = loaded(&format!(
        "; comment\n# comment\n   ; indented comment\n{BASE}\tserver_reset_query = DISCARD ALL ; not a comment\n"
    ))
    .config;
    assert_eq!(
        config.general.server_reset_query,
        "DISCARD ALL ; not a comment"
    );
    assert_eq!(
        errors_of(&format!("{BASE}pool_mode = transaction # note\n")),
        [
            "pgbouncer.ini:3: invalid value \"transaction # note\" for parameter pool_mode: expected one of session, transaction, statement"
        ]
    );
}

#[test]
fn include_resolves_relative_to_including_file_and_reports_its_own_lines() {
    let (_dir, path) = with_files(&[
        (
            "main.ini",
            "[pgbouncer]\n%include sub/extra.ini\nauth_file = u.txt\n",
        ),
        ("sub/.keep", ""),
    ]);
    let sub = path.parent().expect("dir").join("sub");
    std::fs::write(
        sub.join("extra.ini"),
        "max_client_conn = 77\n%include deeper.ini\n",
    )
    .expect("write");
    std::fs::write(sub.join("deeper.ini"), "\n\nbogus = 1\n").expect("write");
    assert_eq!(
        render(&load(&path).expect_err("bogus key")),
        ["deeper.ini:3: unknown parameter: pgbouncer/bogus"]
    );
    std::fs::write(sub.join("deeper.ini"), "default_pool_size = 0x10\n").expect("write");
    let config = load(&path).expect("loads").config;
    assert_eq!(
        (
            config.general.max_client_conn,
            config.general.default_pool_size
        ),
        (77, 16)
    );
}

#[test]
fn include_depth_is_limited_to_ten() {
    let dir = tempfile::tempdir().expect("tempdir");
    for level in 0..=11 {
        let text = format!("%include level{}.ini\n", level + 1);
        let text = if level == 0 {
            format!("{BASE}{text}")
        } else {
            text
        };
        std::fs::write(dir.path().join(format!("level{level}.ini")), text).expect("write");
    }
    let errors = load(&dir.path().join("level0.ini")).expect_err("too deep");
    assert_eq!(
        render(&errors),
        ["level10.ini:1: include nesting level too deep (more than 10 levels)"]
    );
    // Ten levels are fine.
    std::fs::write(dir.path().join("level10.ini"), "max_client_conn = 5\n").expect("write");
    assert_eq!(
        load(&dir.path().join("level0.ini"))
            .expect("loads")
            .config
            .general
            .max_client_conn,
        5
    );
    assert_eq!(
        errors_of(&format!("{BASE}%includefoo.ini\n"))[0],
        "pgbouncer.ini:3: syntax error in configuration: expected a key (letters, digits, _ . * - or a 'quoted name')"
    );
}

#[test]
fn keys_quoted_or_bare_and_case_sensitive() {
    let config = loaded(&format!(
        "[databases]\n'my db' = host=h\nsales.eu-1 = host=h\n* = host=h\n{BASE}"
    ))
    .config;
    assert!(config.databases.contains_key("my db") && config.databases.contains_key("sales.eu-1"));
    assert!(config.fallback_database.is_some());
    assert_eq!(
        errors_of(&format!(
            "{BASE}Listen_Port = 1\nmy key = 1\n'' = 1\n'open = 1\n[PgBouncer]\n"
        )),
        [
            "pgbouncer.ini:3: unknown parameter: pgbouncer/Listen_Port",
            "pgbouncer.ini:4: syntax error in configuration: expected '=' after the key",
            "pgbouncer.ini:5: syntax error in configuration: empty quoted key",
            "pgbouncer.ini:6: syntax error in configuration: unterminated quoted key",
            "pgbouncer.ini:7: invalid section \"PgBouncer\"",
        ]
    );
}

#[test]
fn values_trimmed_last_key_wins_and_crlf() {
    let text = format!(
        "{BASE}job_name =   first\t \r\njob_name=second  \r\n[databases]\na = host=x\na = host=y\n"
    );
    let config = loaded(&text).config;
    assert_eq!(config.general.job_name, "second");
    assert_eq!(config.settings["job_name"].as_deref(), Some("second"));
    assert_eq!(config.databases["a"].hosts[0].host, "y");
}

#[test]
fn structural_errors() {
    assert_eq!(
        errors_of("[databases]\na = host=x\n"),
        ["pgbouncer.ini: main section [pgbouncer] missing from config file"]
    );
    assert_eq!(
        errors_of(""),
        ["pgbouncer.ini: main section [pgbouncer] missing from config file"]
    );
    assert_eq!(
        errors_of(&format!("{BASE}[pgbouncer\n"))[0],
        "pgbouncer.ini:3: syntax error in configuration: missing ']' in section header"
    );
    let missing = load(Path::new("/nonexistent/pgbouncer.ini")).expect_err("missing file");
    assert_eq!(missing.len(), 1);
    assert!(
        missing[0]
            .to_string()
            .starts_with("/nonexistent/pgbouncer.ini: could not load file:")
    );
}

#[test]
fn pgbouncer_section_restart_resets_earlier_keys() {
    let Loaded { config, warnings } =
        loaded(&format!("{BASE}max_client_conn = 5\n[databases]\n{BASE}"));
    assert_eq!(config.general.max_client_conn, 100);
    assert_eq!(
        render(&warnings),
        [
            "pgbouncer.ini:5: [pgbouncer] section starts again: 2 parameter(s) set before are reset to defaults, as PgBouncer does"
        ]
    );
}

#[test]
fn integers_follow_strtol_base_zero() {
    let cases = [
        ("0x10", Some(16)),
        ("0X1f", Some(31)),
        ("0777", Some(511)),
        ("0", Some(0)),
        ("+5", Some(5)),
        ("-3", Some(-3)),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_c_integer(text), expected, "{text}");
    }
    for text in ["10x", "08", "0x", "", "1.5", "99999999999999999999", "1 2"] {
        assert_eq!(parse_c_integer(text), None, "{text}");
    }
    assert_eq!(
        errors_of(&format!("{BASE}listen_port = 70000\n"))[0],
        "pgbouncer.ini:3: invalid value \"70000\" for parameter listen_port: expected an integer in 0..=65535"
    );
    assert_eq!(errors_of(&format!("{BASE}max_client_conn = -1\n")).len(), 1);
}

#[test]
fn times_are_decimal_seconds() {
    assert_eq!(parse_seconds("1.5"), Some(Duration::from_millis(1500)));
    assert_eq!(parse_seconds("3"), Some(Duration::from_secs(3)));
    assert_eq!(parse_seconds("1e2"), Some(Duration::from_secs(100)));
    assert_eq!(parse_seconds("0.0000015"), Some(Duration::from_micros(1)));
    for text in ["-1", "5s", "nan", "inf", "", "1,5"] {
        assert_eq!(parse_seconds(text), None, "{text}");
    }
    assert_eq!(
        loaded(&format!("{BASE}query_timeout = 0.25\n"))
            .config
            .general
            .query_timeout,
        Duration::from_millis(250)
    );
}

#[test]
fn enums_case_insensitive_and_booleans() {
    let g = loaded(&format!("{BASE}pool_mode = Transaction\nauth_type = MD5\nlog_stats = off\nso_reuseport = 2\nsyslog = Yes\n")).config.general;
    assert_eq!(
        (g.pool_mode, g.auth_type),
        (PoolMode::Transaction, AuthType::Md5)
    );
    assert!(!g.log_stats && g.so_reuseport && g.syslog);
    for (text, expected) in [
        ("0", Some(false)),
        ("1", Some(true)),
        ("TRUE", Some(true)),
        ("no", Some(false)),
        ("maybe", None),
    ] {
        assert_eq!(parse_bool(text), expected, "{text}");
    }
}

#[test]
fn key_table_is_complete_sorted_and_defaults_parse() {
    let (_, errors) = General::from_settings(&keys::default_settings());
    assert!(errors.is_empty(), "{errors:?}");
    assert!(
        KEYS.windows(2).all(|pair| pair[0].name < pair[1].name),
        "table must stay sorted"
    );
    let pgbouncer_master = "admin_users application_name_add_host auth_dbname auth_file auth_hba_file auth_ident_file auth_ldap_options auth_query auth_type auth_user autodb_idle_timeout cancel_wait_timeout client_idle_timeout client_login_timeout client_tls13_ciphers client_tls_ca_file client_tls_cert_file client_tls_ciphers client_tls_dheparams client_tls_ecdhcurve client_tls_key_file client_tls_protocols client_tls_sslmode conffile default_pool_size disable_pqexec dns_max_ttl dns_nxdomain_ttl dns_zone_check_period idle_transaction_timeout ignore_startup_parameters job_name listen_addr listen_backlog listen_port log_connections log_disconnections log_pooler_errors log_stats logfile login_notify_message max_client_conn max_db_client_connections max_db_connections max_packet_size max_prepared_statements max_user_client_connections max_user_connections min_pool_size peer_id pidfile pkt_buf pool_idle_timeout pool_mode query_timeout query_wait_notify query_wait_timeout reserve_pool_size reserve_pool_timeout resolv_conf sbuf_loopcnt scram_iterations server_check_delay server_check_query server_connect_timeout server_fast_close server_idle_timeout server_lifetime server_login_retry server_reset_query server_reset_query_always server_round_robin server_tls13_ciphers server_tls_ca_file server_tls_cert_file server_tls_ciphers server_tls_key_file server_tls_protocols server_tls_sslmode so_reuseport stats_period stats_users suspend_timeout syslog syslog_facility syslog_ident tcp_defer_accept tcp_keepalive tcp_keepcnt tcp_keepidle tcp_keepintvl tcp_socket_buffer tcp_user_timeout track_extra_parameters transaction_timeout unix_socket_dir unix_socket_group unix_socket_mode user verbose";
    let extensions = [
        "log_format",
        "metrics_addr",
        "shutdown_timeout",
        "worker_threads",
    ];
    for name in pgbouncer_master.split(' ') {
        let spec = keys::lookup(name).unwrap_or_else(|| panic!("missing key {name}"));
        assert_ne!(spec.support, Support::Extension, "{name}");
    }
    for name in extensions {
        assert_eq!(
            keys::lookup(name).map(|spec| spec.support),
            Some(Support::Extension)
        );
    }
    assert_eq!(
        KEYS.len(),
        pgbouncer_master.split(' ').count() + extensions.len()
    );
    let implemented = "listen_addr listen_port listen_backlog unix_socket_dir unix_socket_mode auth_type auth_file auth_user auth_query auth_dbname pool_mode max_client_conn default_pool_size min_pool_size reserve_pool_size reserve_pool_timeout max_db_connections max_user_connections max_db_client_connections max_user_client_connections server_reset_query server_reset_query_always server_check_delay server_check_query server_lifetime server_idle_timeout server_connect_timeout server_login_retry server_round_robin client_login_timeout client_idle_timeout query_timeout query_wait_timeout idle_transaction_timeout transaction_timeout max_packet_size max_prepared_statements ignore_startup_parameters track_extra_parameters log_connections log_disconnections log_pooler_errors logfile pidfile verbose tcp_keepalive tcp_keepidle tcp_keepintvl tcp_keepcnt tcp_user_timeout so_reuseport user job_name scram_iterations syslog admin_users stats_users stats_period log_stats";
    for name in implemented.split(' ') {
        assert!(
            keys::lookup(name).is_some_and(|spec| spec.support == Support::Implemented),
            "{name}"
        );
    }
    let no_reload = [
        "disable_pqexec",
        "job_name",
        "listen_addr",
        "listen_backlog",
        "listen_port",
        "pidfile",
        "pkt_buf",
        "resolv_conf",
        "so_reuseport",
        "track_extra_parameters",
        "unix_socket_dir",
        "unix_socket_group",
        "unix_socket_mode",
        "user",
    ];
    for name in no_reload {
        assert_eq!(
            keys::lookup(name).map(|spec| spec.reload),
            Some(Reload::Restart),
            "{name}"
        );
    }
}

#[test]
fn markdown_table_and_show_config_formatting() {
    let table = markdown_key_table();
    assert!(table.starts_with("| key | default | type | reload | pooler | description |"));
    assert_eq!(table.lines().count(), KEYS.len() + 2);
    assert!(table.contains(
        "| `pool_mode` | `session` | session \\| transaction \\| statement | yes | yes |"
    ));
    assert!(table.contains("| `pkt_buf` | `4096` | integer | restart | no effect (warns) |"));
    let show =
        |key: &str, raw: &str| keys::display_value(keys::lookup(key).expect("key"), Some(raw));
    assert_eq!(show("server_lifetime", "3600").as_deref(), Some("3600"));
    assert_eq!(show("cancel_wait_timeout", "0.5").as_deref(), Some("0.5"));
    assert_eq!(show("server_lifetime", "1000000").as_deref(), Some("1e+06"));
    assert_eq!(show("query_timeout", "0.0001").as_deref(), Some("0.0001"));
    assert_eq!(show("default_pool_size", "0x10").as_deref(), Some("16"));
    assert_eq!(
        show("pool_mode", "TRANSACTION").as_deref(),
        Some("transaction")
    );
    assert_eq!(
        keys::display_value(keys::lookup("auth_user").expect("key"), None),
        None
    );
    let verbose = keys::lookup("verbose").expect("key");
    assert_eq!(keys::display_value(verbose, None).as_deref(), Some("0"));
}

#[test]
fn unimplemented_keys_warn_unless_at_default() {
    let Loaded { warnings, .. } = loaded(&format!(
        "{BASE}client_tls_sslmode = DISABLE\npkt_buf = 0x1000\ntcp_defer_accept = {}\nsbuf_loopcnt = 6\nquery_wait_notify = 10\nlisten_port = 7000\n",
        if cfg!(target_os = "linux") { 1 } else { 0 }
    ));
    assert_eq!(
        render(&warnings),
        [
            "pgbouncer.ini:6: parameter sbuf_loopcnt has no effect in pooler; value \"6\" is ignored",
            "pgbouncer.ini:7: parameter query_wait_notify is not implemented by pooler yet; value \"10\" is ignored",
        ]
    );
}
