//! docs/pooler-config.md carries the generated table of every pgbouncer.ini key; this
//! test keeps it in step with the code (`UPDATE_DOCS=1` rewrites it).

const HEADER: &str = "# pooler configuration keys\n\nEvery `[pgbouncer]` key of PgBouncer master is accepted. \"not yet (warns)\" keys are parsed and validated, and a warning naming the key is logged when they are set to a non-default value. Generated from `pooler/src/config/keys.rs`.\n\n";

#[test]
fn the_key_table_in_the_docs_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/pooler-config.md");
    let expected = format!("{HEADER}{}", pooler::config::keys::markdown_key_table());
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(path, &expected).unwrap();
        return;
    }
    let actual = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/pooler-config.md is stale: run UPDATE_DOCS=1 cargo test -p pooler --test config_docs"
    );
}
