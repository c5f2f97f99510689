# Owns the redis-py asyncio (redis.asyncio) cases: basics, 200 concurrent INCRs over a
# pool, pub/sub, pipelines with MULTI/EXEC and WATCH, and BLPOP next to other tasks.
import asyncio
import time

import redis.asyncio as aredis
from redis.exceptions import ResponseError, WatchError

from .runner import case, check, eq


async def next_message(p, limit=5.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        msg = await p.get_message(ignore_subscribe_messages=False, timeout=1.0)
        if msg is not None:
            return msg
    raise AssertionError(f"no pub/sub message within {limit}s")


@case("async.basic")
async def basic(ctx):
    r = ctx.aredis()
    try:
        k, n = ctx.key("str"), ctx.key("counter")
        eq(await r.ping(), True, "PING")
        eq(await r.set(k, "hello"), True, "SET")
        eq(await r.get(k), b"hello", "GET")
        eq(await r.get(ctx.key("missing")), None, "GET of a missing key")
        eq(await r.incr(n), 1, "INCR")
        eq(await r.incrby(n, 9), 10, "INCRBY")
        eq(await r.expire(k, 100), True, "EXPIRE")
        ttl = await r.ttl(k)
        check(0 < ttl <= 100, f"TTL after EXPIRE 100 is {ttl}")
        eq(await r.mget([k, n, ctx.key("missing")]), [b"hello", b"10", None], "MGET")
        dr = ctx.aredis(decode_responses=True)
        eq(await dr.get(k), "hello", "GET with decode_responses")
        await dr.aclose()
        try:
            await r.lpush(k, "x")
            raise AssertionError("LPUSH on a string did not fail")
        except ResponseError as e:
            check(str(e).startswith("WRONGTYPE"), f"error text: {e}")
        eq(await r.get(k), b"hello", "connection usable after an error")
        eq(await r.delete(k, n), 2, "DEL")
    finally:
        await r.aclose()


@case("async.gather_incr")
async def gather_incr(ctx):
    pool = aredis.BlockingConnectionPool(max_connections=20, timeout=10, **ctx.kwargs())
    r = aredis.Redis(connection_pool=pool)
    try:
        k = ctx.key("hits")
        results = await asyncio.gather(*[r.incr(k) for _ in range(200)])
        eq(sorted(results), list(range(1, 201)), "200 concurrent INCR replies distinct")
        eq(await r.get(k), b"200", "total")
        # Replies go back to the task that asked: 100 SET + GET pairs at once.
        keys = [ctx.key(f"k{i}") for i in range(100)]
        await asyncio.gather(*[r.set(key, f"v{i}") for i, key in enumerate(keys)])
        got = await asyncio.gather(*[r.get(key) for key in keys])
        eq(got, [f"v{i}".encode() for i in range(100)], "concurrent GETs")
        eq(await r.delete(k, *keys), 101, "DEL")
    finally:
        await r.aclose()
        await pool.disconnect()


@case("async.pubsub")
async def pubsub(ctx):
    r = ctx.aredis()
    p = r.pubsub()
    try:
        ch, pat = ctx.key("ch"), ctx.key("news.*")
        await p.subscribe(ch)
        eq(await next_message(p), {"type": "subscribe", "pattern": None, "channel": ch.encode(), "data": 1}, "SUBSCRIBE")
        eq(await r.publish(ch, "hello"), 1, "PUBLISH receivers")
        eq((await next_message(p))["data"], b"hello", "message")
        await p.psubscribe(pat)
        eq((await next_message(p))["type"], "psubscribe", "PSUBSCRIBE confirmation")
        eq(await r.publish(ctx.key("news.x"), "p"), 1, "PUBLISH to the pattern")
        msg = await next_message(p)
        eq((msg["type"], msg["pattern"], msg["data"]), ("pmessage", pat.encode(), b"p"), "pmessage")

        async def publish_many():
            for i in range(30):
                await r.publish(ch, f"m{i}")

        async def collect():
            out = []
            while len(out) < 30:
                m = await next_message(p)
                if m["type"] == "message":
                    out.append(m["data"])
            return out

        _, got = await asyncio.gather(publish_many(), collect())
        eq(got, [f"m{i}".encode() for i in range(30)], "30 messages while publishing concurrently")
        await p.unsubscribe(ch)
        eq((await next_message(p))["type"], "unsubscribe", "UNSUBSCRIBE")
        await p.punsubscribe(pat)
        eq((await next_message(p))["data"], 0, "PUNSUBSCRIBE leaves 0 subscriptions")
        eq(await r.publish(ch, "late"), 0, "nobody subscribed")
    finally:
        await p.aclose()
        await r.aclose()


@case("async.pipeline")
async def pipeline(ctx):
    r = ctx.aredis()
    other = ctx.aredis()
    try:
        k, lst = ctx.key("n"), ctx.key("list")
        async with r.pipeline(transaction=True) as pipe:
            pipe.set(k, 1).incr(k).rpush(lst, "a", "b").lrange(lst, 0, -1).get(k)
            eq(await pipe.execute(), [True, 2, 2, [b"a", b"b"], b"2"], "MULTI/EXEC")
        async with r.pipeline(transaction=False) as pipe:
            for i in range(250):
                pipe.set(ctx.key(f"p{i}"), i)
            for i in range(250):
                pipe.get(ctx.key(f"p{i}"))
            replies = await pipe.execute()
        eq(replies, [True] * 250 + [str(i).encode() for i in range(250)], "500-command pipeline")
        async with r.pipeline() as pipe:
            await pipe.watch(k)
            value = int(await pipe.get(k))
            await other.set(k, 50)
            pipe.multi()
            pipe.set(k, value + 1)
            try:
                await pipe.execute()
                raise AssertionError("EXEC after a conflicting write did not raise WatchError")
            except WatchError:
                pass
            await pipe.reset()
            await pipe.watch(k)
            value = int(await pipe.get(k))
            pipe.multi()
            pipe.set(k, value + 1)
            eq(await pipe.execute(), [True], "retried EXEC")
        eq(await r.get(k), b"51", "value after the retry")
        eq(await r.delete(k, lst, *[ctx.key(f"p{i}") for i in range(250)]), 252, "DEL")
    finally:
        await other.aclose()
        await r.aclose()


@case("async.blpop")
async def blpop(ctx):
    r, pusher = ctx.aredis(), ctx.aredis()
    try:
        k = ctx.key("list")
        eq(await r.blpop([k], timeout=0.5), None, "BLPOP timeout")

        async def push_later():
            await asyncio.sleep(0.3)
            return await pusher.rpush(k, "job")

        t0 = time.monotonic()
        popped, pushed = await asyncio.gather(r.blpop([k], timeout=5), push_later())
        eq((popped, pushed), ((k.encode(), b"job"), 1), "BLPOP woken by a push")
        check(time.monotonic() - t0 >= 0.2, "BLPOP blocked until the push")
        # Other tasks keep running on their own connections while one blocks.
        blocked = asyncio.ensure_future(r.blpop([k], timeout=5))
        counts = [await pusher.incr(ctx.key("n")) for _ in range(10)]
        eq(counts, list(range(1, 11)), "INCRs while another task blocks")
        await pusher.rpush(k, "second")
        eq(await blocked, (k.encode(), b"second"), "second BLPOP")
        eq(await r.delete(k, ctx.key("n")), 1, "DEL")
    finally:
        await r.aclose()
        await pusher.aclose()


CASES = [basic, gather_incr, pubsub, pipeline, blpop]
