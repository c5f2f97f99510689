//! Table tests of the classifier: what real applications send, tricky quoting, comments
//! and every write or lock that can hide inside a SELECT.

use super::{Class, DEFAULT_VOLATILE_FUNCTIONS, Hint, classify};

/// No volatile functions at all.
const NONE: &[&str] = &[];

const R: Class = Class::Read;
const W: Class = Class::Write;

fn class(sql: &str) -> Class {
    classify(sql.as_bytes(), DEFAULT_VOLATILE_FUNCTIONS).class
}

#[test]
fn statement_table() {
    let join = "SELECT u.id, u.name, o.id AS order_id, o.total, p.name AS product, c.name AS category, \
        s.status FROM users u JOIN orders o ON o.user_id = u.id JOIN order_items i ON i.order_id = o.id \
        JOIN products p ON p.id = i.product_id LEFT JOIN categories c ON c.id = p.category_id \
        LEFT JOIN shipments s ON s.order_id = o.id WHERE u.created_at > $1 AND o.total > $2 \
        AND c.name <> 'archived' GROUP BY u.id, u.name, o.id, o.total, p.name, c.name, s.status \
        HAVING count(*) > $3 ORDER BY o.total DESC LIMIT 50 OFFSET $4";
    let table: &[(&str, Class)] = &[
        ("SELECT id, name, email FROM users WHERE id = $1", R),
        (
            "/* app=web,route=/home */ select abalance from pgbench_accounts where aid = 48213",
            R,
        ),
        (
            "WITH recent AS (SELECT * FROM orders WHERE created_at > now() - interval '1 day') SELECT count(*) FROM recent",
            R,
        ),
        ("SELECT * FROM accounts WHERE id = $1 FOR UPDATE", W),
        (
            "SELECT * FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 10 FOR NO KEY UPDATE SKIP LOCKED",
            W,
        ),
        ("SELECT * FROM t FOR SHARE", W),
        ("SELECT * FROM t FOR KEY SHARE", W),
        ("SELECT * FROM t FOR UPDATE NOWAIT", W),
        (
            "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2",
            W,
        ),
        (
            "INSERT INTO events (kind, payload) VALUES ($1, $2::jsonb) RETURNING id",
            W,
        ),
        (
            "WITH d AS (DELETE FROM q WHERE id = $1 RETURNING *) SELECT * FROM d",
            W,
        ),
        (
            "WITH u AS (UPDATE t SET x = 1 RETURNING *) SELECT * FROM u",
            W,
        ),
        (
            "WITH i AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM i",
            W,
        ),
        ("SELECT 'update' AS word, \"delete\" FROM t -- insert", R),
        ("SELECT $q$ DELETE FROM x $q$", R),
        ("SELECT $$ UPDATE t SET a = 1 $$", R),
        ("SELECT $1, $2 FROM t WHERE a = $3", R),
        (join, R),
        (
            "BEGIN",
            Class::Begin {
                is_read_only: false,
            },
        ),
        (
            "begin transaction read only",
            Class::Begin { is_read_only: true },
        ),
        (
            "START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE",
            Class::Begin { is_read_only: true },
        ),
        (
            "START TRANSACTION READ WRITE",
            Class::Begin {
                is_read_only: false,
            },
        ),
        ("SET TRANSACTION READ ONLY", Class::SetReadOnly),
        (
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
            Class::SetReadOnly,
        ),
        ("SET application_name = 'x'", W),
        ("SET search_path TO app, public", W),
        ("COMMIT", W),
        ("ROLLBACK", W),
        ("SELECT nextval('seq')", W),
        ("select setval('seq', 10)", W),
        ("SELECT pg_advisory_lock(42)", W),
        ("SELECT pg_try_advisory_xact_lock(1, 2)", W),
        ("SELECT NEXTVAL ('seq')", W),
        ("SELECT nextval_count FROM stats", R),
        ("SELECT 'nextval(1)'", R),
        ("SELECT * INTO new_table FROM t", W),
        (
            "SELECT a FROM t WHERE b = 'it''s -- not a comment' AND c = 1",
            R,
        ),
        ("SELECT E'\\' DELETE' FROM t", R),
        ("SELECT \"a\"\"b\" FROM \"weird\"\"name\"", R),
        ("SELECT /* nested /* DELETE */ still comment */ 1", R),
        ("VALUES (1), (2)", R),
        ("TABLE users", R),
        ("SHOW search_path", R),
        ("SHOW TRANSACTION ISOLATION LEVEL", R),
        ("EXPLAIN SELECT * FROM t", R),
        ("EXPLAIN ANALYZE DELETE FROM t", W),
        ("EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET a = 1", W),
        ("LOCK TABLE t IN ACCESS EXCLUSIVE MODE", W),
        ("COPY t FROM STDIN", W),
        ("COPY t TO STDOUT", W),
        ("CALL do_work()", W),
        ("DO $$ BEGIN PERFORM 1; END $$", W),
        ("CREATE TABLE t (a int)", W),
        ("ALTER TABLE t ADD COLUMN b int", W),
        ("DROP TABLE t", W),
        ("TRUNCATE t", W),
        ("VACUUM (ANALYZE) t", W),
        ("LISTEN ch", W),
        ("NOTIFY ch, 'x'", W),
        ("PREPARE p AS SELECT 1", W),
        ("DEALLOCATE ALL", W),
        ("DISCARD ALL", W),
        (
            "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = s.a",
            W,
        ),
        ("SELECT 1; SELECT 2", R),
        ("SELECT 1; UPDATE t SET a = 1", W),
        ("UPDATE t SET a = 1; SELECT 1", W),
        ("   ", R),
        (";;", R),
        ("-- only a comment", R),
        ("select count(*) from t where k = ANY($1)", R),
        ("SELECT * FROM t WHERE x IN (SELECT y FROM u)", R),
        ("SELECT json_build_object('update', 1)", R),
        ("SELECT * FROM update_log", R),
        ("SELECT * FROM t ORDER BY \"for\" NULLS LAST", R),
        ("(SELECT 1) UNION (SELECT 2)", W),
        ("SELECT lo_import('/etc/passwd')", W),
        ("SELECT pg_notify('ch', 'x')", W),
        ("SELECT set_config('a.b', 'c', false)", W),
    ];
    assert!(table.len() >= 60);
    for (sql, expected) in table {
        assert_eq!(class(sql), *expected, "{sql}");
    }
}

#[test]
fn hints_in_comments() {
    let c = classify(b"/* pooler: primary */ SELECT 1", NONE);
    assert_eq!((c.class, c.hint), (Class::Read, Some(Hint::Primary)));
    let c = classify(
        b"SELECT nextval('s') /* pooler: replica */",
        DEFAULT_VOLATILE_FUNCTIONS,
    );
    assert_eq!((c.class, c.hint), (Class::Write, Some(Hint::Replica)));
    assert_eq!(
        classify(b"/* pooler:PRIMARY*/ select 1", NONE).hint,
        Some(Hint::Primary)
    );
    assert_eq!(classify(b"SELECT 'pooler: primary'", NONE).hint, None);
}

#[test]
fn a_configured_function_makes_a_select_a_write() {
    assert_eq!(
        classify(b"SELECT audit_log('x')", &["audit_log"]).class,
        Class::Write
    );
    assert_eq!(classify(b"SELECT audit_log('x')", NONE).class, Class::Read);
}

#[test]
fn never_panics_on_unterminated_input() {
    for sql in [
        "SELECT '",
        "SELECT \"",
        "SELECT $a$ never",
        "SELECT /* /* */",
        "SELECT E'\\",
        "$",
        "$$",
        "-",
        "/",
        "SELECT $1$",
    ] {
        let _ = classify(sql.as_bytes(), DEFAULT_VOLATILE_FUNCTIONS);
    }
    let mut state = 0x1234_5678_u64;
    for _ in 0..20_000 {
        let len = (state % 64) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                b"SELECT'\"$;-/* ()_aeUPDATEfor"[(state % 28) as usize]
            })
            .collect();
        let _ = classify(&bytes, DEFAULT_VOLATILE_FUNCTIONS);
    }
}
