//! Unit tests of config parsing and validation.

use std::time::Duration;

use super::*;

fn sentinel_config() -> Config {
    Config {
        sentinels: vec!["127.0.0.1:26379".to_owned()],
        ..Config::default()
    }
}

#[test]
fn defaults_need_an_upstream() {
    let error = Config::default().validate().unwrap_err();
    assert!(error.to_string().contains("sentinels"), "{error}");
    sentinel_config().validate().unwrap();
}

#[test]
fn parses_every_key_and_durations_in_both_forms() {
    let config = Config::parse(
        r#"
        listen = "0.0.0.0:7000"
        sentinels = ["a:26379", "b:26380"]
        master_name = "cache"
        user = "proxy"
        password = "pw"
        sentinel_password = "spw"
        requirepass = "client"
        users = ["alice:secret"]
        pool_size = 3
        pinned_pool_size = 2
        max_pinned = 10
        read_from = "replica_preferred"
        failover_timeout = "7s"
        connect_timeout = 250
        upstream_timeout = "0s"
        sentinel_timeout = "300ms"
        refresh_interval = "2s"
        max_clients = 5
        max_pipeline = 16
        enable_monitor = true
        shutdown_timeout = "1m"
        "#,
    )
    .unwrap();
    config.validate().unwrap();
    assert_eq!(config.read_from, ReadFrom::ReplicaPreferred);
    assert_eq!(config.failover_timeout, Duration::from_secs(7));
    assert_eq!(config.connect_timeout, Duration::from_millis(250));
    assert_eq!(config.upstream_timeout, Duration::ZERO);
    assert_eq!(config.shutdown_timeout, Duration::from_secs(60));
    assert_eq!(
        config.client_users().unwrap(),
        vec![("alice".to_owned(), "secret".to_owned())]
    );
    assert_eq!(
        config.upstream_credentials(),
        Some(Credentials {
            user: Some("proxy".to_owned()),
            password: "pw".to_owned()
        })
    );
    assert!(config.requires_client_auth());
    assert_eq!(
        config.mode(),
        UpstreamMode::Sentinel {
            sentinels: &["a:26379".to_owned(), "b:26380".to_owned()],
            master_name: "cache"
        }
    );
}

#[test]
fn rejects_unknown_keys_and_bad_values() {
    assert!(Config::parse("listne = \"x\"").is_err());
    assert!(Config::parse("failover_timeout = \"soon\"").is_err());
    let both = Config {
        upstream: Some("127.0.0.1:6379".to_owned()),
        ..sentinel_config()
    };
    assert!(both.validate().is_err());
    let bad_port = Config {
        sentinels: vec!["host:99999".to_owned()],
        ..Config::default()
    };
    assert!(bad_port.validate().is_err());
    let bad_user = Config {
        users: vec!["nopassword".to_owned()],
        ..sentinel_config()
    };
    assert!(bad_user.validate().is_err());
    let zero_pool = Config {
        pool_size: 0,
        ..sentinel_config()
    };
    assert!(zero_pool.validate().is_err());
    let user_without_password = Config {
        user: Some("u".to_owned()),
        ..sentinel_config()
    };
    assert!(user_without_password.validate().is_err());
}

#[test]
fn single_upstream_mode() {
    let config = Config {
        upstream: Some("redis.local:6379".to_owned()),
        ..Config::default()
    };
    config.validate().unwrap();
    assert_eq!(config.mode(), UpstreamMode::Single("redis.local:6379"));
}

#[test]
fn the_example_file_is_valid_and_matches_the_defaults() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/config/cacheproxy.example.toml"
    );
    let config = Config::load(std::path::Path::new(path)).unwrap();
    config.validate().unwrap();
    let expected = Config {
        sentinels: config.sentinels.clone(),
        ..Config::default()
    };
    assert_eq!(config, expected, "the example must show the defaults");
}

#[test]
fn metrics_addr_is_off_by_default_and_must_be_host_port() {
    assert_eq!(sentinel_config().metrics_addr, None);
    let mut config = Config::parse("metrics_addr = \"0.0.0.0:9380\"").unwrap();
    config.sentinels = sentinel_config().sentinels;
    config.validate().unwrap();
    assert_eq!(config.metrics_addr.as_deref(), Some("0.0.0.0:9380"));
    config.metrics_addr = Some("9380".to_owned());
    let error = config.validate().unwrap_err();
    assert!(error.to_string().contains("metrics_addr"), "{error}");
}

#[test]
fn invalid_users_never_echo_a_password() {
    for users in [vec!["secret-no-colon"], vec!["alice:ok", ":secret-no-name"]] {
        let config = Config {
            users: users.iter().map(|user| (*user).to_owned()).collect(),
            ..sentinel_config()
        };
        let error = config.validate().unwrap_err().to_string();
        assert!(
            error.contains("users") && !error.contains("secret"),
            "{error}"
        );
    }
}
