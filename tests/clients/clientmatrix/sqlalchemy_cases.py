# Owns the SQLAlchemy 2.0 cases: Core and ORM over psycopg (sync and async) and over
# asyncpg (AsyncEngine, with and without its prepared-statement cache), and small pools.
import asyncio
import threading
from decimal import Decimal

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    bindparam,
    create_engine,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from .runner import Case, check, eq

POOL = dict(pool_size=5, max_overflow=0, pool_timeout=15)


def core_table(ctx):
    md = MetaData()
    t = Table(
        ctx.table("core"),
        md,
        Column("id", Integer, primary_key=True),
        Column("name", String(50)),
        Column("amount", Numeric(10, 2)),
        Column("created", DateTime(timezone=True), server_default=func.now()),
    )
    return md, t


def orm_model(ctx):
    class Base(DeclarativeBase):
        pass

    class Item(Base):
        __tablename__ = ctx.table("orm")
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(50))
        qty: Mapped[int]
        price: Mapped[Decimal] = mapped_column(Numeric(10, 2))

    return Base, Item


def check_integrity_error(e):
    check(isinstance(e, IntegrityError), f"IntegrityError expected, got {type(e).__name__}")
    eq(getattr(e.orig, "sqlstate", None), "23505", "sqlstate of the duplicate key")


def rows_of(result):
    return [tuple(r) for r in result]


# --- sync (postgresql+psycopg) ------------------------------------------------------------


def core_sync(ctx, url):
    engine = create_engine(url, **POOL)
    md, t = core_table(ctx)
    try:
        md.create_all(engine)
        with engine.begin() as conn:
            conn.execute(insert(t), [{"id": i, "name": f"n{i}", "amount": Decimal(i) / 4} for i in range(500)])
        with engine.connect() as conn:
            query = select(t.c.id, t.c.name).where(t.c.id.between(bindparam("lo"), bindparam("hi"))).order_by(t.c.id)
            eq(rows_of(conn.execute(query, {"lo": 10, "hi": 12})), [(10, "n10"), (11, "n11"), (12, "n12")], "bound select")
            eq(conn.execute(select(func.sum(t.c.amount))).scalar(), Decimal(499 * 500 // 2) / 4, "sum")
            res = conn.execute(insert(t).returning(t.c.id), [{"id": 1000 + i, "name": "r", "amount": 1} for i in range(50)])
            eq(sorted(r.id for r in res), list(range(1000, 1050)), "insert many returning")
            conn.commit()
            conn.execute(update(t).where(t.c.id < 10).values(name="upd"))
            conn.rollback()
            eq(conn.execute(select(func.count()).where(t.c.name == "upd")).scalar(), 0, "rolled back update")
            eq(conn.execute(text("SELECT CAST(:a AS integer) + CAST(:b AS integer)"), {"a": 1, "b": 2}).scalar(), 3, "text() with params")
            check(conn.execute(select(t.c.created).where(t.c.id == 1)).scalar() is not None, "server default")
            try:
                conn.execute(insert(t), {"id": 1, "name": "dup", "amount": 0})
                raise AssertionError("duplicate key not raised")
            except IntegrityError as e:
                check_integrity_error(e)
            conn.rollback()
            eq(conn.execute(select(func.count()).select_from(t)).scalar(), 550, "after error")
        md.drop_all(engine)
    finally:
        engine.dispose()


def orm_sync(ctx, url):
    engine = create_engine(url, **POOL)
    Base, Item = orm_model(ctx)
    try:
        Base.metadata.create_all(engine)
        with Session(engine) as s:
            s.add_all([Item(id=i, name=f"item{i}", qty=i, price=Decimal("1.25") * i) for i in range(1, 21)])
            s.commit()
            got = s.scalars(select(Item).where(Item.qty > 15).order_by(Item.id)).all()
            eq([i.id for i in got], [16, 17, 18, 19, 20], "ORM select")
            eq(got[0].price, Decimal("20.00"), "ORM numeric")
            item = s.get(Item, 3)
            item.name = "changed"
            s.flush()
            eq(s.scalar(select(Item.name).where(Item.id == 3)), "changed", "flushed change visible")
            s.rollback()
            eq(s.get(Item, 3).name, "item3", "session rollback restored the row")
            s.delete(s.get(Item, 4))
            s.commit()
            eq(s.scalar(select(func.count()).select_from(Item)), 19, "ORM delete committed")
            s.add(Item(id=1, name="dup", qty=0, price=0))
            try:
                s.commit()
                raise AssertionError("duplicate key not raised")
            except IntegrityError as e:
                check_integrity_error(e)
                s.rollback()
            eq(s.scalar(select(func.sum(Item.qty))), sum(range(1, 21)) - 4, "after error and rollback")
        Base.metadata.drop_all(engine)
    finally:
        engine.dispose()


def pool_sync(ctx, url):
    # pool_size 5 shared by 10 threads, 20 transactions each.
    engine = create_engine(url, **POOL)
    md, t = core_table(ctx)
    failures = []
    try:
        md.create_all(engine)

        def work(w):
            try:
                for i in range(20):
                    with engine.begin() as conn:
                        conn.execute(insert(t), {"id": w * 100 + i, "name": f"w{w}", "amount": i})
                        n = conn.execute(select(func.count()).where(t.c.name == f"w{w}")).scalar()
                        eq(n, i + 1, f"worker {w} rows")
                check(engine.pool.checkedout() <= 5, "pool_size respected")
            except Exception as e:  # noqa: BLE001
                failures.append(f"worker {w}: {type(e).__name__}: {e}")

        threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in range(10)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if failures:
            raise AssertionError("; ".join(failures[:3]))
        with engine.connect() as conn:
            eq(conn.execute(select(func.count()).select_from(t)).scalar(), 200, "rows of all threads")
        md.drop_all(engine)
    finally:
        engine.dispose()


# --- async (postgresql+asyncpg, postgresql+psycopg) ---------------------------------------


async def core_async(ctx, url):
    engine = create_async_engine(url, **POOL)
    md, t = core_table(ctx)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(md.create_all)
        async with engine.begin() as conn:
            await conn.execute(insert(t), [{"id": i, "name": f"n{i}", "amount": Decimal(i) / 4} for i in range(500)])
        async with engine.connect() as conn:
            query = select(t.c.id, t.c.name).where(t.c.id.between(bindparam("lo"), bindparam("hi"))).order_by(t.c.id)
            for lo in range(0, 100, 10):  # the same statement many times (prepared cache)
                got = rows_of(await conn.execute(query, {"lo": lo, "hi": lo + 1}))
                eq(got, [(lo, f"n{lo}"), (lo + 1, f"n{lo + 1}")], "bound select")
            eq((await conn.execute(select(func.sum(t.c.amount)))).scalar(), Decimal(499 * 500 // 2) / 4, "sum")
            res = await conn.execute(insert(t).returning(t.c.id), [{"id": 1000 + i, "name": "r", "amount": 1} for i in range(50)])
            eq(sorted(r.id for r in res), list(range(1000, 1050)), "insert many returning")
            await conn.commit()
            await conn.execute(update(t).where(t.c.id < 10).values(name="upd"))
            await conn.rollback()
            eq((await conn.execute(select(func.count()).where(t.c.name == "upd"))).scalar(), 0, "rolled back update")
            eq((await conn.execute(text("SELECT CAST(:a AS integer) + CAST(:b AS integer)"), {"a": 1, "b": 2})).scalar(), 3, "text() with params")
            try:
                await conn.execute(insert(t), {"id": 1, "name": "dup", "amount": 0})
                raise AssertionError("duplicate key not raised")
            except IntegrityError as e:
                check_integrity_error(e)
            await conn.rollback()
            eq((await conn.execute(select(func.count()).select_from(t))).scalar(), 550, "after error")
        async with engine.begin() as conn:
            await conn.run_sync(md.drop_all)
    finally:
        await engine.dispose()


async def orm_async(ctx, url):
    engine = create_async_engine(url, **POOL)
    Base, Item = orm_model(ctx)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with sessions() as s:
            s.add_all([Item(id=i, name=f"item{i}", qty=i, price=Decimal("1.25") * i) for i in range(1, 21)])
            await s.commit()
            got = (await s.scalars(select(Item).where(Item.qty > 15).order_by(Item.id))).all()
            eq([i.id for i in got], [16, 17, 18, 19, 20], "ORM select")
            item = await s.get(Item, 3)
            item.name = "changed"
            await s.flush()
            eq(await s.scalar(select(Item.name).where(Item.id == 3)), "changed", "flushed change visible")
            await s.rollback()
            eq(await s.scalar(select(Item.name).where(Item.id == 3)), "item3", "session rollback")
            await s.delete(await s.get(Item, 4))
            await s.commit()
            eq(await s.scalar(select(func.count()).select_from(Item)), 19, "ORM delete committed")
            s.add(Item(id=1, name="dup", qty=0, price=0))
            try:
                await s.commit()
                raise AssertionError("duplicate key not raised")
            except IntegrityError as e:
                check_integrity_error(e)
                await s.rollback()
            eq(await s.scalar(select(func.sum(Item.qty))), sum(range(1, 21)) - 4, "after error and rollback")

        # pool_size 5 shared by 10 tasks, 20 transactions each.
        async def task(w):
            for i in range(20):
                async with sessions() as s, s.begin():
                    s.add(Item(id=1000 + w * 100 + i, name=f"w{w}", qty=i, price=1))
                    await s.flush()
                    n = await s.scalar(select(func.count()).select_from(Item).where(Item.name == f"w{w}"))
                    eq(n, i + 1, f"task {w} rows")

        await asyncio.gather(*(task(w) for w in range(10)))
        async with sessions() as s:
            eq(await s.scalar(select(func.count()).select_from(Item).where(Item.id >= 1000)), 200, "rows of all tasks")
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
    finally:
        await engine.dispose()


def _sync_case(name, fn, scheme):
    def run(ctx):
        fn(ctx, ctx.url(scheme))

    return Case(f"sqlalchemy.{name}", run)


def _async_case(name, fn, scheme, query=""):
    async def run(ctx):
        await fn(ctx, ctx.url(scheme) + query)

    return Case(f"sqlalchemy.{name}", run)


CASES = [
    _sync_case("core_psycopg", core_sync, "postgresql+psycopg"),
    _sync_case("orm_psycopg", orm_sync, "postgresql+psycopg"),
    _sync_case("pool_psycopg", pool_sync, "postgresql+psycopg"),
    _async_case("core_asyncpg", core_async, "postgresql+asyncpg"),
    _async_case("orm_asyncpg", orm_async, "postgresql+asyncpg"),
    _async_case("orm_asyncpg_nocache", orm_async, "postgresql+asyncpg", "?prepared_statement_cache_size=0"),
    _async_case("orm_psycopg_async", orm_async, "postgresql+psycopg"),
]
