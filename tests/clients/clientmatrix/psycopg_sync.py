# Owns the psycopg 3 (sync) cases outside pipeline mode: queries, parameters, prepared
# statements, executemany, COPY, transactions, errors, tracked parameters, session state.
import datetime
import threading
import uuid
from decimal import Decimal

import psycopg
from psycopg import errors
from psycopg.types.json import Jsonb

from .runner import case, check, eq


def connect(ctx, autocommit=True, **kwargs):
    return psycopg.connect(ctx.conninfo(), autocommit=autocommit, **kwargs)


@case("psycopg.simple")
def simple(ctx):
    notices = []
    with connect(ctx) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        eq(conn.execute("SELECT 1").fetchone(), (1,), "select 1")
        row = conn.execute("SELECT 'a'::text, 2.5::numeric, NULL, true, 'é✓'::text").fetchone()
        eq(row, ("a", Decimal("2.5"), None, True, "é✓"), "literal row")
        cur = conn.execute("SELECT 1 AS x; SELECT 2 AS y, 3 AS z")
        eq(cur.fetchall(), [(1,)], "first result of a multi-statement query")
        check(cur.nextset(), "second result set present")
        eq(cur.fetchall(), [(2, 3)], "second result of a multi-statement query")
        eq([d.name for d in cur.description], ["y", "z"], "column names")
        cur = conn.execute("SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g")
        rows = cur.fetchall()
        eq(len(rows), 20000, "big result rows")
        eq(sum(r[0] for r in rows), 20000 * 20001 // 2, "big result sum")
        eq(rows[-1][1], "x" * 100, "big result payload")
        conn.execute("DO $$ BEGIN RAISE NOTICE 'hello %', 42; END $$")
        eq(notices, ["hello 42"], "notice delivered")
        eq(conn.execute("SELECT current_user").fetchone()[0], ctx.user, "current_user")


@case("psycopg.params")
def params(ctx):
    values = (
        7,
        2**40,
        "O'Reilly ✓",
        b"\x00\x01\xff",
        None,
        Decimal("12345.6789"),
        datetime.date(2024, 2, 29),
        [1, 2, 3],
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        True,
        1.5,
    )
    sql = (
        "SELECT %s::int, %s::bigint, %s::text, %s::bytea, %s::text, %s::numeric, %s::date, "
        "%s::int[], %s::uuid, %s::bool, %s::float8"
    )
    with connect(ctx) as conn:
        eq(conn.execute(sql, values).fetchone(), values, "text-format round trip")
        eq(conn.cursor(binary=True).execute(sql, values).fetchone(), values, "binary round trip")
        doc = {"a": [1, "two", None], "b": {"c": True}}
        eq(conn.execute("SELECT %s::jsonb -> 'b'", [Jsonb(doc)]).fetchone()[0], {"c": True}, "jsonb")
        eq(
            conn.execute("SELECT %(x)s::int * %(y)s::int, %(x)s::int", {"x": 6, "y": 7}).fetchone(),
            (42, 6),
            "named parameters",
        )
        eq(conn.execute("SELECT %s::int + 1", [41]).fetchone()[0], 42, "int param")
        t = ctx.table()
        ctx.setup(f"CREATE TABLE {t} (id int PRIMARY KEY, name text, data bytea)")
        for i in range(20):
            conn.execute(f"INSERT INTO {t} VALUES (%s, %s, %s)", (i, f"name {i}", bytes([i]) * i))
        eq(
            conn.execute(f"SELECT name, data FROM {t} WHERE id = %s", [13]).fetchone(),
            ("name 13", bytes([13]) * 13),
            "row read back by id",
        )
        eq(
            conn.execute(f"SELECT count(*) FROM {t} WHERE id = ANY(%s)", [[1, 2, 3, 99]]).fetchone()[0],
            3,
            "ANY(array param)",
        )


def prepared_names(conn):
    return [r[0] for r in conn.execute("SELECT name FROM pg_prepared_statements").fetchall()]


@case("psycopg.prepared")
def prepared(ctx):
    t = ctx.table()
    ctx.setup(f"CREATE TABLE {t} (id int PRIMARY KEY, v text)")
    with connect(ctx) as conn:
        # prepare=True: server-prepared from the first execution.
        for i in range(20):
            conn.execute(f"INSERT INTO {t} VALUES (%s, %s)", (i, f"v{i}"), prepare=True)
        for i in range(20):
            eq(
                conn.execute(f"SELECT v FROM {t} WHERE id = %s", [i], prepare=True).fetchone(),
                (f"v{i}",),
                "prepared select",
            )
        # The default prepare_threshold (5): the 6th execution on is server-prepared.
        eq(conn.prepare_threshold, 5, "default prepare_threshold")
        for i in range(12):
            eq(conn.execute("SELECT %s::int * 3", [i]).fetchone(), (i * 3,), "auto-prepared select")
        # An error while executing a prepared statement leaves it usable.
        for divisor in (1, 0, 2, 0, 5):
            try:
                got = conn.execute("SELECT 100 / %s::int", [divisor], prepare=True).fetchone()[0]
                eq(got, 100 // divisor, "prepared division")
            except errors.DivisionByZero:
                eq(divisor, 0, "division error only for 0")
        # prepare=False always goes unnamed even after many runs.
        for i in range(8):
            eq(conn.execute("SELECT %s::text || 'x'", [str(i)], prepare=False).fetchone(), (f"{i}x",), "unprepared")
        if ctx.session:
            names = prepared_names(conn)
            check(len(names) >= 3, f"server-side prepared statements exist (found {names})")
    with connect(ctx, autocommit=False) as conn:
        # Prepared statements used inside transactions, one rolled back.
        for i in range(20, 30):
            conn.execute(f"INSERT INTO {t} VALUES (%s, %s)", (i, "tx"), prepare=True)
            if i % 2:
                conn.commit()
            else:
                conn.rollback()
        conn.commit()
        eq(conn.execute(f"SELECT count(*) FROM {t} WHERE v = 'tx'").fetchone()[0], 5, "odd ids committed")


@case("psycopg.prepared_eviction")
def prepared_eviction(ctx):
    # More distinct statements than prepared_max: psycopg closes the evicted ones
    # (protocol Close with libpq >= 17, DEALLOCATE before) and re-prepares them later.
    with connect(ctx) as conn:
        conn.prepare_threshold = 0
        conn.prepared_max = 5
        for rnd in range(4):
            for k in range(15):
                eq(conn.execute(f"SELECT %s::int + {k}", [rnd]).fetchone()[0], rnd + k, "evicted statement result")
        if ctx.session:
            names = prepared_names(conn)
            check(len(names) <= 7, f"evicted statements closed on the server (have {len(names)})")


@case("psycopg.executemany")
def executemany(ctx):
    t = ctx.table()
    ctx.setup(f"CREATE TABLE {t} (id int PRIMARY KEY, name text, amount numeric)")
    rows = [(i, f"name {i}", Decimal(i) / 4) for i in range(1000)]
    with connect(ctx) as conn:
        cur = conn.cursor()
        cur.executemany(f"INSERT INTO {t} VALUES (%s, %s, %s)", rows)
        eq(cur.rowcount, 1000, "executemany rowcount")
        got = conn.execute(f"SELECT count(*), sum(amount), max(name) FROM {t}").fetchone()
        eq(got, (1000, sum(r[2] for r in rows), "name 999"), "executemany rows")
        cur.executemany(
            f"INSERT INTO {t} VALUES (%s, %s, %s) RETURNING id * 10",
            [(i, "ret", 0) for i in range(1000, 1020)],
            returning=True,
        )
        ids = []
        while True:
            ids.append(cur.fetchone()[0])
            if not cur.nextset():
                break
        eq(ids, [i * 10 for i in range(1000, 1020)], "executemany returning")
        try:
            cur.executemany(f"INSERT INTO {t} VALUES (%s, %s, %s)", [(5000, "a", 1), (5000, "b", 2)])
            raise AssertionError("duplicate key in executemany not reported")
        except errors.UniqueViolation:
            pass
        eq(conn.execute(f"SELECT count(*) FROM {t} WHERE id = 5000").fetchone()[0], 0, "failed batch rolled back")
    with connect(ctx, autocommit=False) as conn:
        conn.cursor().executemany(f"UPDATE {t} SET name = %s WHERE id = %s", [(f"u{i}", i) for i in range(100)])
        conn.commit()
        eq(conn.execute(f"SELECT count(*) FROM {t} WHERE name LIKE 'u%%'").fetchone()[0], 100, "batch update")


@case("psycopg.copy")
def copy(ctx):
    t = ctx.table()
    ctx.setup(f"CREATE TABLE {t} (id int PRIMARY KEY, name text, amount numeric)")
    with connect(ctx) as conn:
        cur = conn.cursor()
        with cur.copy(f"COPY {t} (id, name, amount) FROM STDIN") as cp:
            for i in range(10000):
                cp.write_row((i, f"name\t{i}\n", Decimal(i) / 100))
        got = conn.execute(f"SELECT count(*), sum(amount), min(id), max(id) FROM {t}").fetchone()
        eq(got, (10000, Decimal(10000 * 9999 // 2) / 100, 0, 9999), "COPY FROM rows")
        eq(conn.execute(f"SELECT name FROM {t} WHERE id = 1234").fetchone()[0], "name\t1234\n", "escaped text")
        with cur.copy(f"COPY (SELECT id, name, amount FROM {t} WHERE id < 100 ORDER BY id) TO STDOUT") as cp:
            cp.set_types(["int4", "text", "numeric"])
            rows = list(cp.rows())
        eq(rows, [(i, f"name\t{i}\n", Decimal(i) / 100) for i in range(100)], "COPY TO rows")
        # Binary format both ways.
        with cur.copy(f"COPY {t} (id, name, amount) FROM STDIN (FORMAT BINARY)") as cp:
            cp.set_types(["int4", "text", "numeric"])
            for i in range(10000, 10500):
                cp.write_row((i, "bin", Decimal("1.5")))
        with cur.copy(f"COPY (SELECT id, amount FROM {t} WHERE name = 'bin' ORDER BY id) TO STDOUT (FORMAT BINARY)") as cp:
            cp.set_types(["int4", "numeric"])
            rows = list(cp.rows())
        eq(len(rows), 500, "binary COPY rows")
        eq(rows[0], (10000, Decimal("1.5")), "binary COPY first row")
        # Raw blocks, and COPY TO read as raw data.
        with cur.copy(f"COPY {t} FROM STDIN WITH (FORMAT csv)") as cp:
            cp.write(b"20000,raw a,1\n20001,raw b,2\n")
        with cur.copy(f"COPY (SELECT id, name FROM {t} WHERE id >= 20000 ORDER BY id) TO STDOUT WITH (FORMAT csv)") as cp:
            data = b"".join(bytes(block) for block in cp)
        eq(data, b"20000,raw a\n20001,raw b\n", "raw COPY TO")
        # Bad data: the error is raised and the connection goes on.
        try:
            with cur.copy(f"COPY {t} (id, name, amount) FROM STDIN") as cp:
                cp.write(b"30000\tok\t1\nnot-a-number\tbad\t2\n")
            raise AssertionError("bad COPY data not reported")
        except errors.InvalidTextRepresentation as e:
            eq(e.sqlstate, "22P02", "sqlstate of bad COPY data")
        eq(conn.execute(f"SELECT count(*) FROM {t} WHERE id = 30000").fetchone()[0], 0, "failed COPY rolled back")
    with connect(ctx, autocommit=False) as conn:
        with conn.cursor().copy(f"COPY {t} (id, name) FROM STDIN") as cp:
            cp.write_row((40000, "in transaction"))
        conn.rollback()
        eq(conn.execute(f"SELECT count(*) FROM {t} WHERE id = 40000").fetchone()[0], 0, "COPY rolled back")
        conn.rollback()


@case("psycopg.transactions")
def transactions(ctx):
    t = ctx.table()
    ctx.setup(f"CREATE TABLE {t} (id int PRIMARY KEY)")
    ins = f"INSERT INTO {t} VALUES (%s)"
    with connect(ctx, autocommit=False) as conn:
        conn.execute(ins, [1])
        eq(conn.info.transaction_status, psycopg.pq.TransactionStatus.INTRANS, "in transaction")
        conn.commit()
        conn.execute(ins, [2])
        conn.rollback()
        with conn.transaction():
            conn.execute(ins, [3])
        with conn.transaction():
            conn.execute(ins, [4])
            raise psycopg.Rollback()
    with connect(ctx, autocommit=False) as conn:
        with conn.transaction():
            conn.execute(ins, [5])
            with conn.transaction():  # savepoint
                conn.execute(ins, [6])
                raise psycopg.Rollback()
            conn.execute(ins, [7])
        try:
            with conn.transaction():
                conn.execute(ins, [8])
                conn.execute(ins, [8])
        except errors.UniqueViolation:
            pass
        conn.commit()
    with connect(ctx) as conn:
        conn.execute("BEGIN")
        conn.execute(ins, [9])
        conn.execute("ROLLBACK")
        conn.execute("BEGIN")
        conn.execute(ins, [10])
        conn.execute("COMMIT")
        with conn.transaction():
            conn.execute(ins, [11])
        got = [r[0] for r in conn.execute(ctx.primary(f"SELECT id FROM {t} ORDER BY id")).fetchall()]
        eq(got, [1, 3, 5, 7, 10, 11], "committed rows only (rolled back ones absent)")


@case("psycopg.server_cursor")
def server_cursor(ctx):
    with connect(ctx, autocommit=False) as conn:
        with conn.cursor(name="cm_cursor") as cur:
            cur.itersize = 100
            cur.execute("SELECT g, md5(g::text) FROM generate_series(1, 5000) g")
            total = count = 0
            for row in cur:
                total += row[0]
                count += 1
        eq((count, total), (5000, 5000 * 5001 // 2), "named cursor rows")
        conn.commit()
        with conn.cursor(name="cm_scroll", scrollable=True) as cur:
            cur.execute("SELECT g FROM generate_series(1, 100) g")
            eq(cur.fetchmany(3), [(1,), (2,), (3,)], "fetchmany")
            cur.scroll(50, mode="absolute")
            eq(cur.fetchone(), (51,), "scrolled row")
        conn.rollback()


@case("psycopg.errors")
def errors_case(ctx):
    t = ctx.table()
    ctx.setup(f"CREATE TABLE {t} (id int PRIMARY KEY)")
    with connect(ctx) as conn:
        for attempt in range(3):
            try:
                conn.execute("SELEC 1")
                raise AssertionError("syntax error not raised")
            except errors.SyntaxError as e:
                eq(e.sqlstate, "42601", "syntax error sqlstate")
            eq(conn.execute("SELECT %s::int", [attempt]).fetchone()[0], attempt, "query after syntax error")
        conn.execute(f"INSERT INTO {t} VALUES (1)")
        try:
            conn.execute(f"INSERT INTO {t} VALUES (%s)", [1])
            raise AssertionError("unique violation not raised")
        except errors.UniqueViolation as e:
            eq(e.sqlstate, "23505", "unique violation sqlstate")
            eq(e.diag.constraint_name, f"{t}_pkey", "constraint name")
        eq(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0], 1, "query after unique violation")
        # An error after rows were already streamed.
        try:
            conn.execute("SELECT CASE WHEN g = 5000 THEN 1 / 0 ELSE g END FROM generate_series(1, 10000) g").fetchall()
            raise AssertionError("mid-result error not raised")
        except errors.DivisionByZero:
            pass
        eq(conn.execute("SELECT 'after'").fetchone()[0], "after", "query after mid-result error")
        try:
            conn.execute("SELECT * FROM cm_no_such_table_anywhere")
        except errors.UndefinedTable as e:
            eq(e.sqlstate, "42P01", "undefined table sqlstate")
    with connect(ctx, autocommit=False) as conn:
        conn.execute(f"INSERT INTO {t} VALUES (2)")
        try:
            conn.execute(f"INSERT INTO {t} VALUES (1)")
        except errors.UniqueViolation:
            pass
        try:
            conn.execute("SELECT 1")
            raise AssertionError("statement in failed transaction accepted")
        except errors.InFailedSqlTransaction as e:
            eq(e.sqlstate, "25P02", "failed transaction sqlstate")
        conn.rollback()
        eq(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0], 1, "insert of failed transaction rolled back")
        conn.rollback()


@case("psycopg.tracked_params")
def tracked_params(ctx):
    # Settings changed with SET, or given at startup, stay with their client across
    # transactions, even when clients share servers.
    a = connect(ctx)
    b = connect(ctx)
    c = connect(ctx, autocommit=False)
    try:
        a.execute("SET TimeZone = 'Asia/Tokyo'")
        a.execute("SET application_name = 'matrix-a'")
        b.execute("SET TimeZone = 'America/New_York'")
        # PostgreSQL before 18 does not report search_path, so a SET of it can follow a
        # client only in session mode (PgBouncer has the same limit); startup options
        # carry it in every mode (psycopg.startup_options).
        is_search_path_tracked = ctx.mode == "session"
        if is_search_path_tracked:
            b.execute("SET search_path = cm_nowhere, public")
        for i in range(10):
            eq(a.execute("SHOW TimeZone").fetchone()[0], "Asia/Tokyo", "TimeZone of a")
            eq(b.execute("SHOW TimeZone").fetchone()[0], "America/New_York", "TimeZone of b")
            eq(c.execute("SELECT %s::int", [i]).fetchone()[0], i, "c works")
            c.commit()
            eq(a.execute("SHOW application_name").fetchone()[0], "matrix-a", "application_name of a")
            eq(b.execute("SHOW application_name").fetchone()[0], "client-matrix", "application_name of b")
            if is_search_path_tracked:
                eq(b.execute("SHOW search_path").fetchone()[0], "cm_nowhere, public", "search_path of b")
            eq(a.info.parameter_status("TimeZone"), "Asia/Tokyo", "ParameterStatus TimeZone of a")
        with a.transaction():
            a.execute("SET LOCAL TimeZone = 'UTC'")
            eq(a.execute("SHOW TimeZone").fetchone()[0], "UTC", "SET LOCAL inside the transaction")
        eq(a.execute("SHOW TimeZone").fetchone()[0], "Asia/Tokyo", "SET LOCAL gone after commit")
    finally:
        for conn in (a, b, c):
            conn.close()


@case("psycopg.startup_options")
def startup_options(ctx):
    # `options=-c ...` in the startup packet, with parameters a pooler tracks (PgBouncer
    # 1.20+ accepts those; 1.18 rejects `options` altogether).
    with connect(ctx, options="-c search_path=cm_opt,public -c TimeZone=Asia/Tokyo") as conn, connect(ctx) as other:
        for _ in range(5):
            eq(conn.execute("SHOW search_path").fetchone()[0].replace(" ", ""), "cm_opt,public", "search_path from options")
            eq(conn.execute("SHOW TimeZone").fetchone()[0], "Asia/Tokyo", "TimeZone from options")
            check(other.execute("SHOW TimeZone").fetchone()[0] != "Asia/Tokyo", "other client unaffected")
            check("cm_opt" not in other.execute("SHOW search_path").fetchone()[0], "other search_path unaffected")


@case("psycopg.session_state", modes=("session",))
def session_state(ctx):
    # What only session pooling (or a direct server) keeps: temp tables, custom GUCs,
    # LISTEN, advisory locks, WITH HOLD cursors, server-side prepared statements.
    with connect(ctx) as conn, connect(ctx) as other:
        conn.execute("CREATE TEMP TABLE cm_temp (v int)")
        conn.execute("INSERT INTO cm_temp VALUES (1), (2)")
        conn.execute("SET cm.custom = 'kept'")
        eq(conn.execute("SELECT sum(v) FROM cm_temp").fetchone()[0], 2 + 1, "temp table kept")
        eq(conn.execute("SELECT current_setting('cm.custom')").fetchone()[0], "kept", "custom GUC kept")
        key = 7_000_000 + int(ctx.run_id) % 1_000_000
        conn.execute("SELECT pg_advisory_lock(%s)", [key])
        eq(other.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()[0], False, "lock held by conn")
        conn.execute("SELECT pg_advisory_unlock(%s)", [key])
        conn.execute("LISTEN cm_channel")
        other.execute("NOTIFY cm_channel, 'payload'")
        got = [n.payload for n in conn.notifies(timeout=5, stop_after=1)]
        eq(got, ["payload"], "notification received")
        conn.execute("DECLARE cm_hold CURSOR WITH HOLD FOR SELECT generate_series(1, 3)")
        eq(conn.execute("FETCH 2 FROM cm_hold").fetchall(), [(1,), (2,)], "WITH HOLD cursor")
        conn.execute("CLOSE cm_hold")
        conn.execute("PREPARE cm_plan (int) AS SELECT $1 * 2")
        eq(conn.execute("EXECUTE cm_plan (21)").fetchone()[0], 42, "SQL PREPARE / EXECUTE")


@case("psycopg.split_routing", modes=("split",))
def split_routing(ctx):
    # The endpoint really splits: plain reads on the replica, transactions and hints not.
    with connect(ctx) as conn:
        eq(conn.execute("SELECT pg_is_in_recovery()").fetchone()[0], True, "autocommit read served by the replica")
        with conn.transaction():
            eq(conn.execute("SELECT pg_is_in_recovery()").fetchone()[0], False, "read-write transaction on the primary")
        eq(conn.execute("/* pooler: primary */ SELECT pg_is_in_recovery()").fetchone()[0], False, "primary hint")
    with connect(ctx, autocommit=False) as conn:
        eq(conn.execute("SELECT pg_is_in_recovery()").fetchone()[0], False, "psycopg's implicit BEGIN goes to the primary")
        conn.rollback()


@case("psycopg.threads")
def threads(ctx):
    # Several threads, one connection each, interleaving short transactions.
    t = ctx.table()
    ctx.setup(f"CREATE TABLE {t} (worker int, i int, PRIMARY KEY (worker, i))")
    failures = []

    def work(worker):
        try:
            with connect(ctx, autocommit=False) as conn:
                for i in range(30):
                    conn.execute(f"INSERT INTO {t} VALUES (%s, %s)", (worker, i))
                    eq(conn.execute(f"SELECT count(*) FROM {t} WHERE worker = %s", [worker]).fetchone()[0], i + 1, "own rows")
                    conn.commit()
        except Exception as e:  # noqa: BLE001
            failures.append(f"worker {worker}: {type(e).__name__}: {e}")

    workers = [threading.Thread(target=work, args=(w,), daemon=True) for w in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if failures:
        raise AssertionError("; ".join(failures))
    with connect(ctx) as conn:
        eq(conn.execute(ctx.primary(f"SELECT count(*) FROM {t}")).fetchone()[0], 180, "all rows")


CASES = [
    simple,
    params,
    prepared,
    prepared_eviction,
    executemany,
    copy,
    transactions,
    server_cursor,
    errors_case,
    tracked_params,
    startup_options,
    session_state,
    split_routing,
    threads,
]
