# Owns the psycopg 3 (sync) pipeline-mode cases: results, errors inside a pipeline, the
# empty pipeline (a lone Sync), delayed Sync, prepared statements and a large pipeline.
import threading
import time

import psycopg
from psycopg import errors

from .runner import case, check, eq


def connect(ctx, autocommit=True, **kwargs):
    return psycopg.connect(ctx.conninfo(), autocommit=autocommit, **kwargs)


@case("psycopg.pipeline")
def pipeline(ctx):
    t = ctx.table()
    ctx.setup(f"CREATE TABLE {t} (id int PRIMARY KEY, v text)")
    with connect(ctx) as conn:
        with conn.pipeline():
            c1 = conn.execute("SELECT 1")
            c2 = conn.execute("SELECT %s::int + %s::int", [20, 22])
            c3 = conn.execute(f"INSERT INTO {t} VALUES (%s, %s) RETURNING id", [1, "one"])
            c4 = conn.cursor()
            c4.execute(f"INSERT INTO {t} VALUES (%s, %s)", [2, "two"])
            c5 = conn.execute(f"SELECT v FROM {t} ORDER BY id")
        eq(c1.fetchone(), (1,), "pipelined select 1")
        eq(c2.fetchone(), (42,), "pipelined params")
        eq(c3.fetchone(), (1,), "pipelined insert returning")
        eq(c4.rowcount, 1, "pipelined insert rowcount")
        eq(c5.fetchall(), [("one",), ("two",)], "pipelined select sees earlier inserts")
        # Results fetched while the pipeline is still open.
        with conn.pipeline() as p:
            cur = conn.execute("SELECT g FROM generate_series(1, 5) g")
            eq([r[0] for r in cur.fetchall()], [1, 2, 3, 4, 5], "fetch inside the pipeline")
            p.sync()
            eq(conn.execute("SELECT 'after sync'").fetchone(), ("after sync",), "after explicit sync")
    with connect(ctx, autocommit=False) as conn:
        # A pipeline inside a transaction: committed or rolled back as a unit.
        with conn.pipeline():
            for i in range(10, 20):
                conn.execute(f"INSERT INTO {t} VALUES (%s, 'tx')", [i])
        conn.rollback()
        with conn.pipeline():
            for i in range(20, 30):
                conn.execute(f"INSERT INTO {t} VALUES (%s, 'tx')", [i])
            conn.commit()
        eq(
            conn.execute(f"SELECT count(*), min(id) FROM {t} WHERE v = 'tx'").fetchone(),
            (10, 20),
            "rolled-back pipeline absent, committed one present",
        )
        conn.rollback()


@case("psycopg.pipeline_error")
def pipeline_error(ctx):
    t = ctx.table()
    ctx.setup(f"CREATE TABLE {t} (id int PRIMARY KEY)")
    with connect(ctx) as conn:
        try:
            with conn.pipeline() as p:
                conn.execute(f"INSERT INTO {t} VALUES (1)")
                p.sync()
                conn.execute(f"INSERT INTO {t} VALUES (2)")
                conn.execute("SELECT 1 / 0")
                conn.execute(f"INSERT INTO {t} VALUES (3)")
                conn.execute("SELECT pg_sleep(30)")  # must be skipped, never run
            raise AssertionError("error inside the pipeline not raised")
        except errors.DivisionByZero as e:
            eq(e.sqlstate, "22012", "sqlstate of the pipelined error")
        ids = [r[0] for r in conn.execute(f"SELECT id FROM {t} ORDER BY id").fetchall()]
        # 1 was synced before the error; 2 shared the failed implicit transaction; 3 skipped.
        eq(ids, [1], "only the statement synced before the error committed")
        # The connection is usable, in and out of pipeline mode.
        eq(conn.execute("SELECT 'usable'").fetchone(), ("usable",), "after pipeline error")
        with conn.pipeline():
            cur = conn.execute("SELECT 5")
        eq(cur.fetchone(), (5,), "new pipeline after the error")
        # Errors on Parse (syntax) and from a prepared statement inside a pipeline.
        for sql, exc in (("SELEC 1", errors.SyntaxError), (f"INSERT INTO {t} VALUES (1)", errors.UniqueViolation)):
            try:
                with conn.pipeline():
                    conn.execute("SELECT 1")
                    conn.execute(sql, prepare=True)
                    conn.execute(f"INSERT INTO {t} VALUES (99)")
                raise AssertionError(f"{exc.__name__} inside the pipeline not raised")
            except exc:
                pass
            eq(conn.execute(f"SELECT count(*) FROM {t} WHERE id = 99").fetchone()[0], 0, "statement after error skipped")
    with connect(ctx, autocommit=False) as conn:
        try:
            with conn.pipeline():
                conn.execute(f"INSERT INTO {t} VALUES (10)")
                conn.execute(f"INSERT INTO {t} VALUES (10)")
                conn.execute(f"INSERT INTO {t} VALUES (11)")
        except errors.UniqueViolation:
            pass
        eq(conn.info.transaction_status, psycopg.pq.TransactionStatus.INERROR, "transaction failed")
        conn.rollback()
        eq(conn.execute(f"SELECT count(*) FROM {t} WHERE id >= 10").fetchone()[0], 0, "whole transaction rolled back")
        conn.rollback()


def connect_and_query_within(ctx, seconds, what):
    """Logs in on a NEW connection and runs a query; fails if it takes over `seconds`."""
    result = {}

    def attempt():
        try:
            with connect(ctx) as conn:
                result["value"] = conn.execute("SELECT 'fresh'").fetchone()[0]
        except Exception as e:  # noqa: BLE001
            result["error"] = e

    start = time.monotonic()
    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise AssertionError(f"{what}: a new connection did not log in and query within {seconds}s")
    if "error" in result:
        raise AssertionError(f"{what}: new connection failed: {result['error']!r}")
    eq(result["value"], "fresh", what)
    return time.monotonic() - start


@case("psycopg.pipeline_empty")
def pipeline_empty(ctx):
    # An empty pipeline sends a lone Sync. It must not hold a server: with more idle
    # clients than servers, a new client still logs in and queries at once.
    held = []
    try:
        for i in range(4):
            conn = connect(ctx, autocommit=(i % 2 == 0))
            with conn.pipeline():
                pass
            with conn.pipeline() as p:
                p.sync()
                p.sync()
            held.append(conn)
        connect_and_query_within(ctx, 5, "after empty pipelines")
        for conn in held:
            eq(conn.execute("SELECT 1").fetchone(), (1,), "connection with an empty pipeline still works")
            conn.rollback()
        # Empty pipeline right before disconnecting.
        for i in range(3):
            with connect(ctx) as conn:
                with conn.pipeline():
                    pass
        connect_and_query_within(ctx, 5, "after empty pipeline then disconnect")
    finally:
        for conn in held:
            conn.close()


@case("psycopg.pipeline_delayed_sync")
def pipeline_delayed_sync(ctx):
    # Fetching inside a pipeline sends Flush, not Sync: the server answers while the
    # transaction stays open until the Sync that comes seconds later.
    t = ctx.table()
    ctx.setup(f"CREATE TABLE {t} (id int PRIMARY KEY, v text)")
    for autocommit in (True, False):
        base = 0 if autocommit else 100
        with connect(ctx, autocommit=autocommit) as conn:
            with conn.pipeline() as p:
                c1 = conn.execute(f"INSERT INTO {t} VALUES (%s, 'a') RETURNING id", [base + 1])
                eq(c1.fetchone(), (base + 1,), "result fetched before any Sync")
                time.sleep(1.0)
                c2 = conn.execute(f"INSERT INTO {t} VALUES (%s, 'b') RETURNING id", [base + 2])
                time.sleep(0.5)
                eq(c2.fetchone(), (base + 2,), "second result before Sync")
                # Other clients are served meanwhile.
                connect_and_query_within(ctx, 5, "during an open pipeline")
                c3 = conn.execute(f"SELECT count(*) FROM {t} WHERE id > %s", [base])
                time.sleep(0.5)
                p.sync()
                eq(c3.fetchone(), (2,), "count after delayed sync")
                time.sleep(0.5)
                c4 = conn.execute("SELECT 'tail'")
            eq(c4.fetchone(), ("tail",), "statement after the delayed sync")
            if not autocommit:
                conn.commit()
    with connect(ctx) as conn:
        eq(conn.execute(ctx.primary(f"SELECT count(*) FROM {t}")).fetchone()[0], 4, "all rows committed")


@case("psycopg.pipeline_prepared")
def pipeline_prepared(ctx):
    with connect(ctx) as conn:
        with conn.pipeline():
            curs = [conn.execute("SELECT %s::int * 2", [i], prepare=True) for i in range(20)]
            auto = [conn.execute("SELECT %s::text || '!'", [str(i)]) for i in range(12)]
        eq([c.fetchone()[0] for c in curs], [i * 2 for i in range(20)], "prepared in pipeline")
        eq([c.fetchone()[0] for c in auto], [f"{i}!" for i in range(12)], "auto-prepared in pipeline")
        # The same statements outside the pipeline, then in a new one.
        eq(conn.execute("SELECT %s::int * 2", [50], prepare=True).fetchone(), (100,), "prepared outside")
        with conn.pipeline():
            cur = conn.execute("SELECT %s::int * 2", [7], prepare=True)
        eq(cur.fetchone(), (14,), "prepared in a second pipeline")


@case("psycopg.pipeline_large")
def pipeline_large(ctx):
    # 5000 inserts of ~200-byte rows with RETURNING in one pipeline: megabytes each way,
    # so both directions' socket buffers fill before the client reads anything.
    t = ctx.table()
    ctx.setup(f"CREATE TABLE {t} (id int PRIMARY KEY, payload text)")
    n = 5000
    payload = "p" * 200
    with connect(ctx) as conn:
        with conn.pipeline():
            curs = [
                conn.execute(f"INSERT INTO {t} VALUES (%s, %s) RETURNING id, payload", [i, f"{i:06d}{payload}"])
                for i in range(n)
            ]
        for i, cur in enumerate(curs):
            row = cur.fetchone()
            if row != (i, f"{i:06d}{payload}"):
                raise AssertionError(f"pipelined insert {i}: got {row!r:.80}")
        got = conn.execute(f"SELECT count(*), sum(length(payload)) FROM {t}").fetchone()
        eq(got, (n, n * 206), "large pipeline rows")
        # executemany uses a pipeline too: 5000 more rows in one call.
        conn.cursor().executemany(
            f"INSERT INTO {t} VALUES (%s, %s)", [(n + i, payload) for i in range(n)]
        )
        eq(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0], 2 * n, "large executemany")
        # A big result inside a pipeline.
        with conn.pipeline():
            cur = conn.execute(f"SELECT id, payload FROM {t} ORDER BY id")
        rows = cur.fetchall()
        eq(len(rows), 2 * n, "big pipelined result")
        check(rows[-1] == (2 * n - 1, payload), "last row of the big pipelined result")


CASES = [
    pipeline,
    pipeline_error,
    pipeline_empty,
    pipeline_delayed_sync,
    pipeline_prepared,
    pipeline_large,
]
