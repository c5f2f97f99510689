# Owns the redis-py (sync) cases on plain commands and connection state: basics, pipelines,
# MULTI/EXEC, WATCH, a threaded pool, CLIENT SETNAME/ID, SELECT, RESP3, big/binary values, SCAN.
import random
import threading
import time

import redis
from redis.exceptions import ResponseError, WatchError

from .runner import case, check, eq


@case("sync.basic")
def basic(ctx):
    r = ctx.redis()
    k, n = ctx.key("str"), ctx.key("counter")
    eq(r.ping(), True, "PING")
    eq(r.set(k, "hello"), True, "SET")
    eq(r.get(k), b"hello", "GET")
    eq(r.get(ctx.key("missing")), None, "GET of a missing key")
    eq(r.set(k, "other", nx=True), None, "SET NX on an existing key")
    eq(r.set(k, "world", xx=True, get=True), b"hello", "SET XX GET returns the old value")
    eq(r.append(k, "!"), 6, "APPEND")
    eq(r.strlen(k), 6, "STRLEN")
    eq(r.incr(n), 1, "INCR of a missing key")
    eq(r.incrby(n, 41), 42, "INCRBY")
    eq(r.decr(n), 41, "DECR")
    eq(r.incrbyfloat(n, 0.5), 41.5, "INCRBYFLOAT")
    eq(r.ttl(k), -1, "TTL without expiry")
    eq(r.expire(k, 100), True, "EXPIRE")
    ttl = r.ttl(k)
    check(0 < ttl <= 100, f"TTL after EXPIRE 100 is {ttl}")
    pttl = r.pttl(k)
    check(0 < pttl <= 100_000, f"PTTL after EXPIRE 100 is {pttl}")
    eq(r.persist(k), True, "PERSIST")
    eq(r.ttl(k), -1, "TTL after PERSIST")
    eq(r.pexpire(n, 150), True, "PEXPIRE 150 ms")
    deadline = time.monotonic() + 3
    while r.exists(n) and time.monotonic() < deadline:
        time.sleep(0.05)
    eq(r.exists(n), 0, "key gone after its PEXPIRE")
    eq(r.mset({ctx.key("a"): "1", ctx.key("b"): "2"}), True, "MSET")
    eq(r.mget([ctx.key("a"), ctx.key("missing"), ctx.key("b")]), [b"1", None, b"2"], "MGET")
    eq(r.exists(ctx.key("a"), ctx.key("b"), ctx.key("missing")), 2, "EXISTS of three keys")
    eq(r.type(k), b"string", "TYPE")
    eq(r.delete(k, ctx.key("a"), ctx.key("b"), ctx.key("missing")), 3, "DEL")
    eq(r.echo("é✓"), "é✓".encode(), "ECHO of UTF-8")
    dr = ctx.redis(decode_responses=True)
    dr.set(k, "é✓")
    eq(dr.get(k), "é✓", "GET with decode_responses")
    r.delete(k)


@case("sync.pipeline")
def pipeline(ctx):
    r = ctx.redis()
    with r.pipeline(transaction=False) as pipe:
        for i in range(500):
            pipe.set(ctx.key(f"p{i}"), f"v{i}")
        for i in range(499):
            pipe.get(ctx.key(f"p{i}"))
        pipe.incr(ctx.key("p0"))  # a string that is not an integer: an error in the middle
        replies = pipe.execute(raise_on_error=False)
    eq(len(replies), 1000, "replies of a 1000-command pipeline")
    eq(replies[:500], [True] * 500, "SET replies")
    eq(replies[500:999], [f"v{i}".encode() for i in range(499)], "GET replies in order")
    check(isinstance(replies[999], ResponseError), f"INCR of a string is an error: {replies[999]!r}")
    # The connection is still in step after the error.
    with r.pipeline(transaction=False) as pipe:
        pipe.get(ctx.key("p1")).incr(ctx.key("n")).incr(ctx.key("n")).get(ctx.key("n"))
        eq(pipe.execute(), [b"v1", 1, 2, b"2"], "second pipeline")
    eq(r.pipeline(transaction=False).execute(), [], "empty pipeline")
    eq(r.delete(*[ctx.key(f"p{i}") for i in range(500)], ctx.key("n")), 501, "DEL of the pipelined keys")


@case("sync.multi_exec")
def multi_exec(ctx):
    r = ctx.redis()
    k, lst = ctx.key("n"), ctx.key("list")
    with r.pipeline(transaction=True) as pipe:
        pipe.set(k, 10).incr(k).incrby(k, 5).get(k).rpush(lst, "a", "b").lrange(lst, 0, -1)
        eq(pipe.execute(), [True, 11, 16, b"16", 2, [b"a", b"b"]], "MULTI/EXEC replies")
    # A runtime error inside EXEC: the other commands still run.
    with r.pipeline(transaction=True) as pipe:
        pipe.incr(k).lpush(k, "x").incr(k)
        replies = pipe.execute(raise_on_error=False)
    eq(replies[0], 17, "first INCR in EXEC")
    check(isinstance(replies[1], ResponseError) and "WRONGTYPE" in str(replies[1]), f"LPUSH error: {replies[1]!r}")
    eq(replies[2], 18, "INCR after the error in EXEC")
    # A queueing error aborts the whole transaction (EXECABORT).
    with r.pipeline(transaction=True) as pipe:
        pipe.incr(k).execute_command("NOSUCHCOMMAND")
        try:
            pipe.execute()
            raise AssertionError("EXEC with an unknown command did not fail")
        except ResponseError as e:
            check("EXECABORT" in str(e) or "unknown command" in str(e), f"abort error: {e}")
    eq(r.get(k), b"18", "nothing of the aborted transaction ran")
    # MULTI ... DISCARD by hand on one connection.
    one = ctx.redis(single_connection_client=True)
    eq(one.execute_command("MULTI"), b"OK", "MULTI")
    eq(one.execute_command("INCR", k), b"QUEUED", "INCR queued")
    eq(one.execute_command("DISCARD"), b"OK", "DISCARD")
    eq(one.get(k), b"18", "DISCARD dropped the queued INCR")
    r.delete(k, lst)


@case("sync.watch")
def watch(ctx):
    r = ctx.redis()
    other = ctx.redis()
    k = ctx.key("balance")
    r.set(k, 0)
    with r.pipeline() as pipe:
        pipe.watch(k)
        value = int(pipe.get(k))
        other.set(k, 100)  # a conflicting writer on a second connection
        pipe.multi()
        pipe.set(k, value + 1)
        try:
            pipe.execute()
            raise AssertionError("EXEC after a conflicting write did not raise WatchError")
        except WatchError:
            pass
        eq(r.get(k), b"100", "the conflicting write stands")
        # Retry: no conflict this time.
        pipe.reset()
        pipe.watch(k)
        value = int(pipe.get(k))
        pipe.multi()
        pipe.set(k, value + 1)
        eq(pipe.execute(), [True], "retried EXEC")
    eq(r.get(k), b"101", "value after the retry")
    # The transaction() helper retries on WatchError by itself.
    calls = []

    def bump(pipe):
        current = int(pipe.get(k))
        calls.append(current)
        if len(calls) == 1:
            other.incrby(k, 1000)
        pipe.multi()
        pipe.set(k, current + 1)

    r.transaction(bump, k)
    eq(calls, [101, 1101], "transaction() values seen (one retry)")
    eq(r.get(k), b"1102", "value after transaction()")
    # UNWATCH: a later write does not abort the transaction.
    with r.pipeline() as pipe:
        pipe.watch(k)
        pipe.unwatch()
        other.set(k, 5)
        pipe.multi()
        pipe.incr(k)
        eq(pipe.execute(), [6], "EXEC after UNWATCH")
    r.delete(k)


@case("sync.pool_threads")
def pool_threads(ctx):
    pool = redis.ConnectionPool(max_connections=20, **ctx.kwargs())
    r = redis.Redis(connection_pool=pool)
    k = ctx.key("hits")
    start = threading.Barrier(20)
    errors, seen = [], []

    def worker():
        try:
            start.wait(10)
            mine = [r.incr(k) for _ in range(200)]
            seen.extend(mine)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    eq(errors, [], "worker errors")
    eq(int(r.get(k)), 4000, "total of 20 threads x 200 INCR")
    eq(sorted(seen), list(range(1, 4001)), "every INCR reply distinct")
    r.delete(k)
    pool.disconnect()


@case("sync.client_name")
def client_name(ctx):
    r = ctx.redis(single_connection_client=True)
    eq(r.client_getname(), None, "no name at first")
    eq(r.client_setname("matrix-one"), True, "CLIENT SETNAME")
    eq(r.client_getname(), "matrix-one", "CLIENT GETNAME")
    try:
        r.client_setname("has space")
        raise AssertionError("a name with a space was accepted")
    except ResponseError:
        pass
    eq(r.client_getname(), "matrix-one", "name kept after a rejected SETNAME")
    named = ctx.redis(client_name="matrix-two")
    eq(named.client_getname(), "matrix-two", "client_name= set on connect")
    eq(r.client_getname(), "matrix-one", "first connection keeps its own name")
    eq(r.client_setname(""), True, "CLIENT SETNAME '' clears")
    eq(r.client_getname(), None, "name cleared")


@case("sync.client_id")
def client_id(ctx):
    a = ctx.redis(single_connection_client=True)
    b = ctx.redis(single_connection_client=True)
    ida, idb = a.client_id(), b.client_id()
    check(isinstance(ida, int) and isinstance(idb, int), f"CLIENT ID types {type(ida)}, {type(idb)}")
    check(ida > 0 and idb > 0, f"CLIENT IDs positive: {ida}, {idb}")
    check(ida != idb, f"two connections share CLIENT ID {ida}")
    eq(a.client_id(), ida, "CLIENT ID stable on one connection")
    a.set(ctx.key("x"), "1")
    eq(a.client_id(), ida, "CLIENT ID stable after a command")
    a.delete(ctx.key("x"))


@case("sync.select_db")
def select_db(ctx):
    ctx.dbs.add(3)
    r0, r3 = ctx.redis(db=0), ctx.redis(db=3)
    k = ctx.key("same")
    r0.set(k, "zero")
    r3.set(k, "three")
    r3.set(ctx.key("only3"), "x")
    eq(r0.get(k), b"zero", "db 0 value")
    eq(r3.get(k), b"three", "db 3 value")
    eq(r0.exists(ctx.key("only3")), 0, "db 3 key invisible in db 0")
    with r3.pipeline(transaction=True) as pipe:
        pipe.incr(ctx.key("n")).get(k)
        eq(pipe.execute(), [1, b"three"], "MULTI/EXEC in db 3")
    eq(r0.get(ctx.key("n")), None, "db 3 counter invisible in db 0")
    eq(sorted(r3.scan_iter(match=ctx.pattern)), sorted(ctx.bkey(t) for t in ("same", "only3", "n")), "SCAN in db 3")
    eq(r3.delete(k, ctx.key("only3"), ctx.key("n")), 3, "DEL in db 3")
    eq(r0.get(k), b"zero", "db 0 untouched by DEL in db 3")
    r0.delete(k)


@case("sync.resp3")
def resp3(ctx):
    r = ctx.redis(protocol=3)
    hello = r.execute_command("HELLO", 3)
    eq(hello.get(b"proto", hello.get("proto")), 3, "HELLO 3 proto")
    k, h, z, s = ctx.key("s"), ctx.key("h"), ctx.key("z"), ctx.key("set")
    eq(r.set(k, "v"), True, "SET")
    eq(r.get(k), b"v", "GET")
    eq(r.get(ctx.key("missing")), None, "GET of a missing key (RESP3 null)")
    r.hset(h, mapping={"f1": "v1", "f2": "v2", "n": 3})
    got = r.hgetall(h)
    check(isinstance(got, dict), f"HGETALL type {type(got)}")
    eq(got, {b"f1": b"v1", b"f2": b"v2", b"n": b"3"}, "HGETALL")
    eq(r.hgetall(ctx.key("missing")), {}, "HGETALL of a missing key")
    r.zadd(z, {"a": 1.5, "b": 2})
    eq(r.zscore(z, "a"), 1.5, "ZSCORE (RESP3 double)")
    eq(r.zrange(z, 0, -1, withscores=True), [[b"a", 1.5], [b"b", 2.0]], "ZRANGE WITHSCORES")
    r.sadd(s, "x", "y")
    eq(r.smembers(s), {b"x", b"y"}, "SMEMBERS (RESP3 set)")
    with r.pipeline(transaction=True) as pipe:
        pipe.incr(ctx.key("n")).hgetall(h)
        eq(pipe.execute(), [1, {b"f1": b"v1", b"f2": b"v2", b"n": b"3"}], "MULTI/EXEC over RESP3")
    eq(r.delete(k, h, z, s, ctx.key("n")), 5, "DEL")


@case("sync.large_value")
def large_value(ctx):
    r = ctx.redis()
    k, lst = ctx.key("big"), ctx.key("list")
    value = random.Random(5).randbytes(5 * 1024 * 1024)
    eq(r.set(k, value), True, "SET 5 MB")
    eq(r.strlen(k), len(value), "STRLEN")
    got = r.get(k)
    eq(len(got), len(value), "GET length")
    check(got == value, "GET 5 MB round trip differs")
    eq(r.getrange(k, len(value) - 10, -1), value[-10:], "GETRANGE of the tail")
    # Two big values in one reply, and a small command right behind them.
    r.rpush(lst, value[: 3 * 1024 * 1024], value[3 * 1024 * 1024 :])
    with r.pipeline(transaction=False) as pipe:
        pipe.lrange(lst, 0, -1).ping()
        parts, pong = pipe.execute()
    check(b"".join(parts) == value, "LRANGE of two big elements differs")
    eq(pong, True, "PING behind the big reply")
    eq(r.delete(k, lst), 2, "DEL")


@case("sync.binary")
def binary(ctx):
    r = ctx.redis()
    every_byte = bytes(range(256))
    keys = [ctx.bkey(b"\x00\xff\r\n"), ctx.bkey(b"*3\r\n$3\r\nSET"), ctx.bkey("sp ace é✓".encode())]
    for i, k in enumerate(keys):
        eq(r.set(k, every_byte * (i + 1)), True, f"SET binary key {k!r}")
    for i, k in enumerate(keys):
        eq(r.get(k), every_byte * (i + 1), f"GET binary key {k!r}")
    eq(r.mget(keys), [every_byte * (i + 1) for i in range(3)], "MGET of binary keys")
    eq(sorted(r.scan_iter(match=ctx.pattern)), sorted(keys), "SCAN returns the binary keys")
    h = ctx.bkey(b"hash\x00")
    r.hset(h, mapping={b"\x00": b"\r\n", b"f\xff": b""})
    eq(r.hgetall(h), {b"\x00": b"\r\n", b"f\xff": b""}, "binary hash")
    eq(r.get(ctx.bkey(b"\x00\xff\r")), None, "a binary key prefix is another key")
    eq(r.set(ctx.bkey(b"empty"), b""), True, "SET empty value")
    eq(r.get(ctx.bkey(b"empty")), b"", "empty value is not null")
    eq(r.delete(*keys, h, ctx.bkey(b"empty")), 5, "DEL binary keys")


@case("sync.scan_iter")
def scan_iter(ctx):
    r = ctx.redis()
    with r.pipeline(transaction=False) as pipe:
        for i in range(500):
            pipe.set(ctx.key(f"scan:{i}"), i)
        for i in range(20):
            pipe.set(ctx.key(f"other:{i}"), i)
        pipe.execute()
    found = list(r.scan_iter(match=ctx.key("scan:*"), count=50))
    eq(set(found), {ctx.bkey(f"scan:{i}") for i in range(500)}, "SCAN MATCH keys")
    check(len(found) >= 500, f"SCAN returned {len(found)} keys")
    eq(len(set(r.scan_iter(match=ctx.pattern, count=1000))), 520, "SCAN of all own keys")
    eq(list(r.scan_iter(match=ctx.key("none:*"))), [], "SCAN with no match")
    typed = set(r.scan_iter(match=ctx.pattern, _type="string"))
    eq(len(typed), 520, "SCAN TYPE string")
    h, s = ctx.key("hash"), ctx.key("set")
    r.hset(h, mapping={f"f{i}": i for i in range(300)})
    eq(dict(r.hscan_iter(h, match="f1*")), {f"f{i}".encode(): str(i).encode() for i in range(300) if str(i).startswith("1")}, "HSCAN")
    r.sadd(s, *range(300))
    eq(set(r.sscan_iter(s, count=20)), {str(i).encode() for i in range(300)}, "SSCAN")
    keys = [ctx.key(f"scan:{i}") for i in range(500)] + [ctx.key(f"other:{i}") for i in range(20)]
    eq(r.delete(*keys, h, s), 522, "DEL")


CASES = [
    basic,
    pipeline,
    multi_exec,
    watch,
    pool_threads,
    client_name,
    client_id,
    select_db,
    resp3,
    large_value,
    binary,
    scan_iter,
]
