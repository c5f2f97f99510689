# Owns the psycopg 3 AsyncConnection cases: queries, prepared statements, pipelines
# (incl. error and empty), COPY, errors, and 8 concurrent connections x 50 transactions.
import asyncio
import time
from decimal import Decimal

import psycopg
from psycopg import errors

from .runner import case, eq


async def connect(ctx, autocommit=True, **kwargs):
    return await psycopg.AsyncConnection.connect(ctx.conninfo(), autocommit=autocommit, **kwargs)


async def one(conn, sql, params=None, **kwargs):
    cur = await conn.execute(sql, params, **kwargs)
    return await cur.fetchone()


@case("psycopg_async.queries")
async def queries(ctx):
    t = ctx.table()
    ctx.setup(f"CREATE TABLE {t} (id int PRIMARY KEY, name text, amount numeric)")
    async with await connect(ctx) as conn:
        eq(await one(conn, "SELECT 1"), (1,), "select 1")
        eq(await one(conn, "SELECT %s::int + 1, %s::text", [41, "x"]), (42, "x"), "params")
        for i in range(50):
            await conn.execute(f"INSERT INTO {t} VALUES (%s, %s, %s)", (i, f"n{i}", Decimal(i) / 2))
        cur = await conn.execute(f"SELECT id, name FROM {t} WHERE id < %s ORDER BY id", [5])
        eq(await cur.fetchall(), [(i, f"n{i}") for i in range(5)], "select rows")
        eq(await one(conn, f"SELECT sum(amount) FROM {t}"), (Decimal(49 * 50 // 2) / 2,), "sum")
        cur = conn.cursor()
        await cur.executemany(f"UPDATE {t} SET name = %s WHERE id = %s", [(f"u{i}", i) for i in range(10)])
        eq(await one(conn, f"SELECT count(*) FROM {t} WHERE name LIKE 'u%%'"), (10,), "executemany")
    async with await connect(ctx, autocommit=False) as conn:
        await conn.execute(f"DELETE FROM {t} WHERE id < 10")
        await conn.rollback()
        async with conn.transaction():
            await conn.execute(f"DELETE FROM {t} WHERE id >= 40")
        eq(await one(conn, f"SELECT count(*) FROM {t}"), (40,), "rolled back delete kept, committed gone")
        await conn.rollback()


@case("psycopg_async.prepared")
async def prepared(ctx):
    async with await connect(ctx) as conn:
        for i in range(30):
            eq(await one(conn, "SELECT %s::int * 3", [i], prepare=True), (i * 3,), "prepared")
        for i in range(12):
            eq(await one(conn, "SELECT %s::int - 1", [i]), (i - 1,), "auto-prepared")
        conn.prepared_max = 4
        conn.prepare_threshold = 0
        for rnd in range(3):
            for k in range(10):
                eq(await one(conn, f"SELECT %s::int + {k}", [rnd]), (rnd + k,), "evicted and re-prepared")


@case("psycopg_async.pipeline")
async def pipeline(ctx):
    t = ctx.table()
    ctx.setup(f"CREATE TABLE {t} (id int PRIMARY KEY)")
    async with await connect(ctx) as conn:
        async with conn.pipeline():
            c1 = await conn.execute(f"INSERT INTO {t} VALUES (1) RETURNING id")
            c2 = await conn.execute("SELECT %s::int * 2", [21], prepare=True)
            c3 = await conn.execute(f"SELECT count(*) FROM {t}")
        eq(await c1.fetchone(), (1,), "pipelined insert")
        eq(await c2.fetchone(), (42,), "pipelined prepared")
        eq(await c3.fetchone(), (1,), "pipelined count")
        try:
            async with conn.pipeline() as p:
                await conn.execute(f"INSERT INTO {t} VALUES (2)")
                await p.sync()
                await conn.execute(f"INSERT INTO {t} VALUES (1)")
                await conn.execute(f"INSERT INTO {t} VALUES (3)")
            raise AssertionError("unique violation in the pipeline not raised")
        except errors.UniqueViolation:
            pass
        cur = await conn.execute(f"SELECT array_agg(id ORDER BY id) FROM {t}")
        eq(await cur.fetchone(), ([1, 2],), "statement after the error not executed")
        # Delayed Sync: fetch (Flush), wait, then more.
        async with conn.pipeline():
            cur = await conn.execute("SELECT 'early'")
            eq(await cur.fetchone(), ("early",), "fetch inside the pipeline")
            await asyncio.sleep(1.0)
            cur = await conn.execute("SELECT 'late'")
        eq(await cur.fetchone(), ("late",), "after delayed sync")
        # Many statements in one pipeline.
        async with conn.pipeline():
            curs = [await conn.execute(f"INSERT INTO {t} VALUES (%s) RETURNING id", [i]) for i in range(100, 2100)]
        eq([(await c.fetchone())[0] for c in curs], list(range(100, 2100)), "2000 pipelined inserts")


@case("psycopg_async.pipeline_empty")
async def pipeline_empty(ctx):
    held = []
    try:
        for _ in range(4):
            conn = await connect(ctx)
            async with conn.pipeline():
                pass
            held.append(conn)
        start = time.monotonic()
        try:
            fresh = await asyncio.wait_for(connect(ctx), 5)
            async with fresh:
                eq(await asyncio.wait_for(one(fresh, "SELECT 'fresh'"), 5 - (time.monotonic() - start)), ("fresh",), "new connection")
        except asyncio.TimeoutError:
            raise AssertionError("a new connection did not log in and query within 5s after empty pipelines")
        for conn in held:
            eq(await one(conn, "SELECT 1"), (1,), "connection with an empty pipeline still works")
    finally:
        for conn in held:
            await conn.close()


@case("psycopg_async.copy")
async def copy(ctx):
    t = ctx.table()
    ctx.setup(f"CREATE TABLE {t} (id int PRIMARY KEY, name text)")
    async with await connect(ctx) as conn:
        cur = conn.cursor()
        async with cur.copy(f"COPY {t} (id, name) FROM STDIN") as cp:
            for i in range(5000):
                await cp.write_row((i, f"row {i}"))
        eq(await one(conn, f"SELECT count(*), sum(id) FROM {t}"), (5000, 4999 * 5000 // 2), "COPY FROM")
        async with cur.copy(f"COPY (SELECT id, name FROM {t} WHERE id % 1000 = 0 ORDER BY id) TO STDOUT") as cp:
            cp.set_types(["int4", "text"])
            rows = [row async for row in cp.rows()]
        eq(rows, [(i, f"row {i}") for i in range(0, 5000, 1000)], "COPY TO")
        try:
            async with cur.copy(f"COPY {t} (id, name) FROM STDIN") as cp:
                await cp.write_row((1, "duplicate"))
            raise AssertionError("COPY duplicate not reported")
        except errors.UniqueViolation:
            pass
        eq(await one(conn, "SELECT 'after copy error'"), ("after copy error",), "usable after COPY error")


@case("psycopg_async.errors")
async def errors_case(ctx):
    async with await connect(ctx) as conn:
        try:
            await conn.execute("SELEC 1")
            raise AssertionError("syntax error not raised")
        except errors.SyntaxError as e:
            eq(e.sqlstate, "42601", "syntax error sqlstate")
        eq(await one(conn, "SELECT 2"), (2,), "after syntax error")
        try:
            await conn.execute("SELECT 1 / %s::int", [0], prepare=True)
            raise AssertionError("division by zero not raised")
        except errors.DivisionByZero:
            pass
        eq(await one(conn, "SELECT 1 / %s::int", [1], prepare=True), (1,), "prepared after its error")


@case("psycopg_async.concurrency")
async def concurrency(ctx):
    # 8 connections x 50 transactions each, all at once: each transaction inserts a row and
    # bumps a shared counter (row lock), so interleaving and ordering are both exercised.
    t, counter = ctx.table(), ctx.table("counter")
    ctx.setup(
        f"CREATE TABLE {t} (worker int, i int, PRIMARY KEY (worker, i))",
        f"CREATE TABLE {counter} (id int PRIMARY KEY, n int)",
        f"INSERT INTO {counter} VALUES (1, 0)",
    )

    async def worker(w):
        async with await connect(ctx, autocommit=False) as conn:
            for i in range(50):
                async with conn.transaction():
                    await conn.execute(f"INSERT INTO {t} VALUES (%s, %s)", (w, i))
                    await conn.execute(f"UPDATE {counter} SET n = n + 1 WHERE id = 1")
                    row = await one(conn, f"SELECT count(*) FROM {t} WHERE worker = %s", [w])
                    if row != (i + 1,):
                        raise AssertionError(f"worker {w} txn {i}: sees {row} own rows")

    await asyncio.gather(*(worker(w) for w in range(8)))
    async with await connect(ctx) as conn:
        eq(await one(conn, ctx.primary(f"SELECT count(*) FROM {t}")), (400,), "rows of all transactions")
        eq(await one(conn, ctx.primary(f"SELECT n FROM {counter}")), (400,), "counter")


CASES = [queries, prepared, pipeline, pipeline_empty, copy, errors_case, concurrency]
