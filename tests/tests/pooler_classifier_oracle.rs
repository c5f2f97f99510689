//! The read/write classifier checked against the real oracle: a streaming replica.
//! Every statement runs on a hot standby. A statement the classifier sends to a replica
//! must run there (a write sent to a replica is an outage); a statement the standby runs
//! but the classifier sends to the primary must be one of the listed, deliberate choices.

use integration_tests::{PgCluster, PgOptions};
use pooler::router::{Class, DEFAULT_VOLATILE_FUNCTIONS, classify};

const SCHEMA: &str = "
CREATE TABLE users (id int PRIMARY KEY, name text, email text, created_at timestamptz DEFAULT now());
CREATE TABLE orders (id int PRIMARY KEY, user_id int, total numeric, created_at timestamptz DEFAULT now());
CREATE TABLE t (id int, a int, b int, c int, x int, k int, \"for\" int);
CREATE TABLE s (id int, a int);
CREATE TABLE u (y int);
CREATE TABLE accounts (id int PRIMARY KEY);
CREATE TABLE jobs (id int, state text);
CREATE TABLE events (id serial, kind text, payload jsonb);
CREATE TABLE q (id int);
CREATE TABLE stats (nextval_count int);
CREATE TABLE update_log (a int);
CREATE TABLE \"weird\"\"name\" (\"a\"\"b\" int);
CREATE SEQUENCE seq;
CREATE FUNCTION do_work() RETURNS void LANGUAGE sql AS 'SELECT 1';
CREATE PROCEDURE do_proc() LANGUAGE sql AS 'SELECT 1';
";

/// Statements the standby runs but the classifier sends to the primary on purpose.
const PRIMARY_BY_DESIGN: &[(&str, &str)] = &[
    (
        "SET application_name = 'x'",
        "session state: applied on the primary",
    ),
    (
        "SET search_path TO public",
        "session state: applied on the primary",
    ),
    (
        "PREPARE p AS SELECT 1",
        "SQL-level PREPARE is session state",
    ),
    ("DEALLOCATE ALL", "session state"),
    ("DISCARD ALL", "session state"),
    (
        "(SELECT 1) UNION (SELECT 2)",
        "a leading parenthesis is not parsed: primary when unsure",
    ),
    (
        "SELECT set_config('search_path', 'public', false)",
        "volatile list: changes session state",
    ),
    (
        "SELECT pg_advisory_lock(42)",
        "an advisory lock must be taken where writers see it",
    ),
    (
        "SELECT pg_try_advisory_xact_lock(1, 2)",
        "an advisory lock must be taken where writers see it",
    ),
    (
        "CALL do_proc()",
        "CALL may write: the classifier does not look inside",
    ),
    (
        "DO $$ BEGIN PERFORM 1; END $$",
        "DO may write: the classifier does not look inside",
    ),
];

const STATEMENTS: &[&str] = &[
    "SELECT id, name, email FROM users WHERE id = 1",
    "/* app=web,route=/home */ select name from users where id = 48213",
    "WITH recent AS (SELECT * FROM orders WHERE created_at > now() - interval '1 day') SELECT count(*) FROM recent",
    "SELECT * FROM accounts WHERE id = 1 FOR UPDATE",
    "SELECT * FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 10 FOR NO KEY UPDATE SKIP LOCKED",
    "SELECT * FROM t FOR SHARE",
    "SELECT * FROM t FOR KEY SHARE",
    "SELECT * FROM t FOR UPDATE NOWAIT",
    "UPDATE t SET a = a + 1 WHERE id = 2",
    "INSERT INTO events (kind, payload) VALUES ('k', '{}'::jsonb) RETURNING id",
    "WITH d AS (DELETE FROM q WHERE id = 1 RETURNING *) SELECT * FROM d",
    "WITH w AS (UPDATE t SET x = 1 RETURNING *) SELECT * FROM w",
    "WITH i AS (INSERT INTO t (a) VALUES (1) RETURNING *) SELECT * FROM i",
    "SELECT 'update' AS word, \"for\" FROM t -- insert",
    "SELECT $q$ DELETE FROM x $q$",
    "SELECT $$ UPDATE t SET a = 1 $$",
    "SELECT u.id, o.total FROM users u JOIN orders o ON o.user_id = u.id WHERE o.total > 10 ORDER BY o.total DESC LIMIT 5",
    "SET application_name = 'x'",
    "SET search_path TO public",
    "SELECT nextval('seq')",
    "select setval('seq', 10)",
    "SELECT pg_advisory_lock(42)",
    "SELECT pg_try_advisory_xact_lock(1, 2)",
    "SELECT NEXTVAL ('seq')",
    "SELECT nextval_count FROM stats",
    "SELECT 'nextval(1)'",
    "SELECT * INTO new_table FROM t",
    "SELECT a FROM t WHERE b = 1 AND 'it''s -- not a comment' <> '' AND c = 1",
    "SELECT E'\\' DELETE' FROM t",
    "SELECT \"a\"\"b\" FROM \"weird\"\"name\"",
    "SELECT /* nested /* DELETE */ still comment */ 1",
    "VALUES (1), (2)",
    "TABLE users",
    "SHOW search_path",
    "SHOW TRANSACTION ISOLATION LEVEL",
    "EXPLAIN SELECT * FROM t",
    "EXPLAIN ANALYZE DELETE FROM t",
    "EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET a = 1",
    "LOCK TABLE t IN ACCESS EXCLUSIVE MODE",
    "CALL do_proc()",
    "DO $$ BEGIN PERFORM 1; END $$",
    "DO $$ BEGIN INSERT INTO t (a) VALUES (1); END $$",
    "CREATE TABLE t2 (a int)",
    "ALTER TABLE t ADD COLUMN z int",
    "DROP TABLE t",
    "TRUNCATE t",
    "CREATE INDEX ON t (a)",
    "GRANT SELECT ON t TO PUBLIC",
    "LISTEN ch",
    "NOTIFY ch, 'x'",
    "PREPARE p AS SELECT 1",
    "DEALLOCATE ALL",
    "DISCARD ALL",
    "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = s.a",
    "SELECT 1; SELECT 2",
    "SELECT 1; UPDATE t SET a = 1",
    "UPDATE t SET a = 1; SELECT 1",
    "select count(*) from t where k = ANY('{1,2}')",
    "SELECT * FROM t WHERE x IN (SELECT y FROM u)",
    "SELECT json_build_object('update', 1)",
    "SELECT * FROM update_log",
    "SELECT * FROM t ORDER BY \"for\" NULLS LAST",
    "(SELECT 1) UNION (SELECT 2)",
    "SELECT pg_notify('ch', 'x')",
    "SELECT txid_current()",
    "SELECT pg_current_xact_id()",
    "SELECT set_config('search_path', 'public', false)",
    "SELECT count(*) FROM users WHERE name LIKE '%update%'",
    "SELECT now(), current_user, version()",
    "SELECT pg_is_in_recovery()",
    "WITH RECURSIVE r(n) AS (VALUES (1) UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT sum(n) FROM r",
    "SELECT id FROM users UNION ALL SELECT id FROM orders",
    "SELECT * FROM users WHERE id = 1 FOR UPDATE OF users",
    "REFRESH MATERIALIZED VIEW mv",
    "COMMENT ON TABLE t IS 'x'",
    "ANALYZE t",
    "SELECT do_work()",
];

/// SQLSTATEs of a standby refusing to write: read-only transaction, feature not
/// supported during recovery, object not in prerequisite state, and (for statements
/// naming objects only a write would create) undefined table.
const REFUSED: &[&str] = &["25006", "0A000", "55000", "42P01"];

fn is_read(sql: &str) -> bool {
    let c = classify(sql.as_bytes(), DEFAULT_VOLATILE_FUNCTIONS);
    matches!(
        c.class,
        Class::Read | Class::SetReadOnly | Class::Begin { is_read_only: true }
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_classifier_never_sends_to_a_replica_what_a_standby_refuses() {
    assert!(STATEMENTS.len() >= 60);
    let pg = PgCluster::start(PgOptions {
        replicas: 1,
        ..PgOptions::default()
    })
    .unwrap();
    pg.primary().psql(SCHEMA).unwrap();
    pg.primary()
        .psql("CREATE MATERIALIZED VIEW mv AS SELECT 1 AS one")
        .unwrap();
    pg.wait_for_replication().unwrap();
    let standby = pg
        .replica(0)
        .connect("postgres", None, "postgres")
        .await
        .unwrap();
    let mut primary_by_design = Vec::new();
    for sql in STATEMENTS {
        let accepted = match standby.batch_execute(sql).await {
            Ok(()) => true,
            Err(e) => {
                let code = e.code().map(|c| c.code().to_owned()).unwrap_or_default();
                assert!(
                    REFUSED.contains(&code.as_str()),
                    "{sql}: unexpected error {code} {e:?} (a schema problem in this test?)"
                );
                false
            }
        };
        let read = is_read(sql);
        assert!(
            !read || accepted,
            "classified as a read but a standby refuses it: {sql}"
        );
        if accepted && !read {
            primary_by_design.push(*sql);
        }
    }
    let mut listed: Vec<&str> = PRIMARY_BY_DESIGN.iter().map(|(sql, _)| *sql).collect();
    listed.sort_unstable();
    primary_by_design.sort_unstable();
    assert_eq!(
        primary_by_design, listed,
        "statements a standby runs that the classifier sends to the primary"
    );
    // A user function the classifier cannot see into is a read unless listed in
    // volatile_functions: it ran on the standby and is classified as a read.
    assert!(is_read("SELECT do_work()"));
}
