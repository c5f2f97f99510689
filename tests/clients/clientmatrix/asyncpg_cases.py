# Owns the asyncpg cases, each run twice: with asyncpg's default statement cache (named
# prepared statements) as group `asyncpg`, and with statement_cache_size=0 as `asyncpg_nocache`.
import asyncio
import datetime
import io
import json
import uuid
from decimal import Decimal

import asyncpg

from .runner import Case, eq

VARIANTS = {"asyncpg": {}, "asyncpg_nocache": {"statement_cache_size": 0}}


async def connect(ctx, opts, **extra):
    return await asyncpg.connect(**ctx.asyncpg_kwargs(**opts, **extra))


async def basics(ctx, opts):
    conn = await connect(ctx, opts)
    try:
        eq(await conn.fetchval("select $1::int + 1", 41), 42, "fetchval")
        rows = await conn.fetch("SELECT g AS n, g * 2 AS twice FROM generate_series(1, 1000) g")
        eq(len(rows), 1000, "fetch rows")
        eq((rows[9]["n"], rows[9]["twice"]), (10, 20), "record by name")
        eq(sum(r[1] for r in rows), 1000 * 1001, "fetch sum")
        row = await conn.fetchrow(
            "SELECT $1::text AS t, $2::numeric AS n, $3::date AS d, $4::int[] AS a, $5::uuid AS u, "
            "$6::bytea AS b, $7::jsonb AS j, $8::bool AS f, $9::text AS none",
            "é✓ O'Reilly",
            Decimal("123.456"),
            datetime.date(2024, 2, 29),
            [1, 2, 3],
            uuid.UUID(int=42),
            b"\x00\xff",
            json.dumps({"k": [1, 2]}),
            False,
            None,
        )
        eq(
            tuple(row.values()),
            ("é✓ O'Reilly", Decimal("123.456"), datetime.date(2024, 2, 29), [1, 2, 3], uuid.UUID(int=42), b"\x00\xff", '{"k": [1, 2]}', False, None),
            "fetchrow types",
        )
        eq(await conn.fetchrow("SELECT 1 WHERE false"), None, "fetchrow of no rows")
        # Simple-protocol script (no arguments): several statements at once.
        eq(await conn.execute("SELECT 1; SELECT 2"), "SELECT 1", "multi-statement execute status")
        for i in range(30):  # the same query again and again (statement cache)
            eq(await conn.fetchval("SELECT $1::text || $2::text", str(i), "x"), f"{i}x", "repeated query")
    finally:
        await conn.close()


async def prepared(ctx, opts):
    t = ctx.table()
    ctx.setup(f"CREATE TABLE {t} (id int PRIMARY KEY, name text)")
    conn = await connect(ctx, opts)
    try:
        insert = await conn.prepare(f"INSERT INTO {t} VALUES ($1, $2)")
        select = await conn.prepare(f"SELECT name FROM {t} WHERE id = $1")
        double = await conn.prepare("SELECT $1::int * 2 AS v")
        for i in range(100):
            await insert.fetch(i, f"name {i}")
            eq(await select.fetchval(i), f"name {i}", "prepared select")
            eq(await double.fetchval(i), i * 2, "prepared double")
        eq((await double.fetchrow(21))["v"], 42, "prepared fetchrow")
        eq([a.name for a in double.get_attributes()], ["v"], "prepared attributes")
        eq([p.name for p in double.get_parameters()], ["int4"], "prepared parameter types")
        async with conn.transaction():
            total = 0
            async for rec in select.cursor(7):
                total += 1
            eq(total, 1, "cursor over a prepared statement")
            cur = await conn.cursor(f"SELECT id FROM {t} ORDER BY id")
            eq([r["id"] for r in await cur.fetch(5)], [0, 1, 2, 3, 4], "cursor fetch")
            await cur.forward(90)
            eq((await cur.fetchrow())["id"], 95, "cursor row after forward(90)")
        # A statement that fails once, then works.
        div = await conn.prepare("SELECT 10 / $1::int")
        try:
            await div.fetchval(0)
            raise AssertionError("division by zero not raised")
        except asyncpg.DivisionByZeroError:
            pass
        eq(await div.fetchval(5), 2, "prepared after its error")
    finally:
        await conn.close()


async def executemany(ctx, opts):
    t = ctx.table()
    ctx.setup(f"CREATE TABLE {t} (id int PRIMARY KEY, name text, amount numeric)")
    conn = await connect(ctx, opts)
    try:
        rows = [(i, f"name {i}", Decimal(i) / 8) for i in range(1000)]
        await conn.executemany(f"INSERT INTO {t} VALUES ($1, $2, $3)", rows)
        got = await conn.fetchrow(f"SELECT count(*), sum(amount), max(id) FROM {t}")
        eq(tuple(got), (1000, sum(r[2] for r in rows), 999), "executemany rows")
        try:
            await conn.executemany(f"INSERT INTO {t} VALUES ($1, $2, $3)", [(2000, "a", 1), (2000, "b", 2)])
            raise AssertionError("duplicate in executemany not raised")
        except asyncpg.UniqueViolationError:
            pass
        eq(await conn.fetchval(f"SELECT count(*) FROM {t} WHERE id = 2000"), 0, "failed executemany rolled back")
    finally:
        await conn.close()


async def transactions(ctx, opts):
    t = ctx.table()
    ctx.setup(f"CREATE TABLE {t} (id int PRIMARY KEY)")
    conn = await connect(ctx, opts)
    try:
        async with conn.transaction():
            await conn.execute(f"INSERT INTO {t} VALUES (1)")
        try:
            async with conn.transaction():
                await conn.execute(f"INSERT INTO {t} VALUES (2)")
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        async with conn.transaction():
            await conn.execute(f"INSERT INTO {t} VALUES (3)")
            try:
                async with conn.transaction():  # savepoint
                    await conn.execute(f"INSERT INTO {t} VALUES (4)")
                    await conn.execute(f"INSERT INTO {t} VALUES (3)")
            except asyncpg.UniqueViolationError:
                pass
            await conn.execute(f"INSERT INTO {t} VALUES (5)")
        tr = conn.transaction()
        await tr.start()
        await conn.execute(f"INSERT INTO {t} VALUES (6)")
        await tr.rollback()
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            eq(await conn.fetchval(f"SELECT count(*) FROM {t}"), 3, "read-only transaction")
        async with conn.transaction(isolation="serializable"):
            await conn.execute(f"INSERT INTO {t} VALUES (7)")
        eq(conn.is_in_transaction(), False, "not in a transaction")
    finally:
        await conn.close()
    other = await connect(ctx, opts)
    try:
        ids = [r[0] for r in await other.fetch(ctx.primary(f"SELECT id FROM {t} ORDER BY id"))]
        eq(ids, [1, 3, 5, 7], "committed rows only")
    finally:
        await other.close()


async def copy(ctx, opts):
    t = ctx.table()
    ctx.setup(f"CREATE TABLE {t} (id int PRIMARY KEY, name text, amount numeric)")
    conn = await connect(ctx, opts)
    try:
        records = [(i, f"rec {i}", Decimal(i) / 100) for i in range(10000)]
        status = await conn.copy_records_to_table(t, records=records, columns=["id", "name", "amount"])
        eq(status, "COPY 10000", "copy_records_to_table status")
        got = await conn.fetchrow(f"SELECT count(*), sum(amount) FROM {t}")
        eq(tuple(got), (10000, sum(r[2] for r in records)), "copied records")
        chunks = []

        async def sink(data):
            chunks.append(bytes(data))

        status = await conn.copy_from_query(
            f"SELECT id, name FROM {t} WHERE id < $1 ORDER BY id", 5, output=sink, format="csv"
        )
        eq(status, "COPY 5", "copy_from_query status")
        eq(b"".join(chunks), b"".join(f"{i},rec {i}\n".encode() for i in range(5)), "copy_from_query data")
        out = io.BytesIO()
        await conn.copy_from_table(t, columns=["id"], output=out, format="text")
        eq(len(out.getvalue().splitlines()), 10000, "copy_from_table lines")
        await conn.copy_to_table(t, source=io.BytesIO(b"20000\tfrom file\t1.5\n"), columns=["id", "name", "amount"])
        eq(await conn.fetchval(f"SELECT name FROM {t} WHERE id = 20000"), "from file", "copy_to_table row")
        try:
            await conn.copy_records_to_table(t, records=[(1, "dup", 0)], columns=["id", "name", "amount"])
            raise AssertionError("duplicate COPY not raised")
        except asyncpg.UniqueViolationError:
            pass
        eq(await conn.fetchval("SELECT 'after copy error'"), "after copy error", "usable after COPY error")
    finally:
        await conn.close()


async def pool(ctx, opts):
    # More pool connections (10) than the pooler's servers: 10 tasks, 200 queries.
    t = ctx.table()
    ctx.setup(f"CREATE TABLE {t} (task int, i int, PRIMARY KEY (task, i))")
    p = await asyncpg.create_pool(min_size=2, max_size=10, **ctx.asyncpg_kwargs(**opts))
    try:

        async def task(n):
            for i in range(20):
                if i % 4 == 0:
                    async with p.acquire() as conn, conn.transaction():
                        await conn.execute(f"INSERT INTO {t} VALUES ($1, $2)", n, i)
                        eq(await conn.fetchval(f"SELECT count(*) FROM {t} WHERE task = $1", n), i // 4 + 1, "own rows")
                else:
                    async with p.acquire() as conn:
                        eq(await conn.fetchval("SELECT $1::int * $2::int", n, i), n * i, "pooled query")

        await asyncio.gather(*(task(n) for n in range(10)))
        eq(await p.fetchval(ctx.primary(f"SELECT count(*) FROM {t}")), 50, "rows written through the pool")
        eq(await p.fetchval("SELECT 7"), 7, "pool.fetchval")
    finally:
        await asyncio.wait_for(p.close(), 10)


async def errors(ctx, opts):
    t = ctx.table()
    ctx.setup(f"CREATE TABLE {t} (id int PRIMARY KEY, v int)")
    conn = await connect(ctx, opts)
    try:
        for attempt in range(3):
            try:
                await conn.fetch("SELEC 1")
                raise AssertionError("syntax error not raised")
            except asyncpg.PostgresSyntaxError as e:
                eq(e.sqlstate, "42601", "syntax error sqlstate")
            eq(await conn.fetchval("SELECT $1::int", attempt), attempt, "after syntax error")
        await conn.execute(f"INSERT INTO {t} VALUES (1, 1)")
        try:
            await conn.execute(f"INSERT INTO {t} VALUES ($1, $2)", 1, 2)
            raise AssertionError("unique violation not raised")
        except asyncpg.UniqueViolationError as e:
            eq(e.sqlstate, "23505", "unique violation sqlstate")
        eq(await conn.fetchval(f"SELECT count(*) FROM {t}"), 1, "after unique violation")
        try:
            async with conn.transaction():
                await conn.execute(f"INSERT INTO {t} VALUES (2, 2)")
                await conn.execute("SELECT 1 / 0")
        except asyncpg.DivisionByZeroError:
            pass
        eq(await conn.fetchval(f"SELECT count(*) FROM {t}"), 1, "failed transaction rolled back")
    finally:
        await conn.close()


async def schema_change(ctx, opts):
    # ALTER TABLE under a cached `SELECT *`: PostgreSQL answers "cached plan must not
    # change result type" (0A000) and asyncpg re-prepares (a new statement name, same text).
    t = ctx.table()
    ctx.setup(f"CREATE TABLE {t} (id int PRIMARY KEY, v int)", f"INSERT INTO {t} VALUES (1, 1)")
    conn = await connect(ctx, opts)
    try:
        for _ in range(3):
            eq(len(await conn.fetchrow(f"SELECT * FROM {t} WHERE id = 1")), 2, "columns before ALTER")
        await conn.execute(f"ALTER TABLE {t} ADD COLUMN extra int DEFAULT 9")
        if ctx.split:
            ctx.wait_on_replica([t])
        row = await conn.fetchrow(f"SELECT * FROM {t} WHERE id = 1")
        eq(tuple(row.values()), (1, 1, 9), "row after ALTER (statement re-prepared)")
    finally:
        await conn.close()


def _variant_case(group, name, fn, opts):
    async def run(ctx):
        await fn(ctx, opts)

    run.__name__ = f"{group}_{name}"
    return Case(f"{group}.{name}", run)


_BODIES = [
    ("basics", basics),
    ("prepared", prepared),
    ("executemany", executemany),
    ("transactions", transactions),
    ("copy", copy),
    ("pool", pool),
    ("errors", errors),
    ("schema_change", schema_change),
]

CASES = [_variant_case(group, name, fn, opts) for group, opts in VARIANTS.items() for name, fn in _BODIES]
