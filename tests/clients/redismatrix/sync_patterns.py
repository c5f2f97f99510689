# Owns the redis-py (sync) cases on stateful patterns: pub/sub (get_message, run_in_thread),
# Lua scripts with NOSCRIPT fallback, BLPOP, redis.lock.Lock, streams with a consumer group,
# and a BRPOPLPUSH/BLMOVE job queue.
import threading
import time

from redis.exceptions import LockError, NoScriptError, ResponseError
from redis.lock import Lock

from .runner import check, case, eq


def next_message(p, limit=5.0):
    """The next pub/sub message of any type (subscribe confirmations included)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        msg = p.get_message(ignore_subscribe_messages=False, timeout=1.0)
        if msg is not None:
            return msg
    raise AssertionError(f"no pub/sub message within {limit}s")


def wait_subscribers(r, channel, count, limit=5.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if dict(r.pubsub_numsub(channel)).get(channel.encode(), 0) >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"{channel} never had {count} subscribers")


@case("sync.pubsub")
def pubsub(ctx):
    r = ctx.redis()
    ch, other, pat = ctx.key("ch"), ctx.key("other"), ctx.key("news.*")
    p = r.pubsub()
    p.subscribe(ch)
    eq(next_message(p), {"type": "subscribe", "pattern": None, "channel": ch.encode(), "data": 1}, "SUBSCRIBE confirmation")
    eq(r.publish(ch, "hello"), 1, "PUBLISH receivers")
    eq(next_message(p), {"type": "message", "pattern": None, "channel": ch.encode(), "data": b"hello"}, "message")
    eq(r.publish(other, "nobody"), 0, "PUBLISH to a channel nobody listens to")
    p.psubscribe(pat)
    eq(next_message(p), {"type": "psubscribe", "pattern": None, "channel": pat.encode(), "data": 2}, "PSUBSCRIBE confirmation")
    eq(r.publish(ctx.key("news.a"), b"\x00bin"), 1, "PUBLISH to a pattern channel")
    msg = next_message(p)
    eq(msg, {"type": "pmessage", "pattern": pat.encode(), "channel": ctx.key("news.a").encode(), "data": b"\x00bin"}, "pmessage")
    for i in range(20):
        r.publish(ch, f"m{i}")
    eq([next_message(p)["data"] for _ in range(20)], [f"m{i}".encode() for i in range(20)], "20 messages in order")
    p.ping("in-sub")
    eq(next_message(p)["type"], "pong", "PING while subscribed")
    p.unsubscribe(ch)
    eq(next_message(p), {"type": "unsubscribe", "pattern": None, "channel": ch.encode(), "data": 1}, "UNSUBSCRIBE")
    p.punsubscribe(pat)
    eq(next_message(p), {"type": "punsubscribe", "pattern": None, "channel": pat.encode(), "data": 0}, "PUNSUBSCRIBE")
    eq(p.subscribed, False, "no subscriptions left")
    eq(r.publish(ch, "late"), 0, "nobody subscribed after UNSUBSCRIBE")
    # The very connection that was subscribed serves ordinary commands again.
    conn = p.connection
    r.set(ctx.key("k"), "after-pubsub")
    conn.send_command("GET", ctx.key("k"))
    eq(conn.read_response(), b"after-pubsub", "GET on the unsubscribed connection")
    conn.send_command("PING")
    eq(conn.read_response(), b"PONG", "PING on the unsubscribed connection (plain reply)")
    p.close()
    r.delete(ctx.key("k"))


@case("sync.pubsub_thread")
def pubsub_thread(ctx):
    r = ctx.redis()
    ch = ctx.key("events")
    got, done, errors = [], threading.Event(), []

    def handler(msg):
        got.append(msg["data"])
        if len(got) == 50:
            done.set()

    p = r.pubsub(ignore_subscribe_messages=True)
    p.subscribe(**{ch: handler})
    thread = p.run_in_thread(sleep_time=0.01, daemon=True, exception_handler=lambda e, ps, t: errors.append(repr(e)))
    try:
        wait_subscribers(r, ch, 1)
        for i in range(50):
            eq(r.publish(ch, f"e{i}"), 1, f"PUBLISH e{i} receivers")
        check(done.wait(10), f"handler got {len(got)} of 50 messages")
        eq(got, [f"e{i}".encode() for i in range(50)], "messages in order")
        eq(errors, [], "worker thread errors")
    finally:
        thread.stop()
        thread.join(5)
    check(not thread.is_alive(), "pub/sub thread still running after stop()")
    eq(r.get(ctx.key("none")), None, "client usable after the thread")


@case("sync.lua")
def lua(ctx):
    r = ctx.redis()
    k = ctx.key("n")
    script = r.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    eq(script(keys=[k], args=[5]), 5, "registered script")
    eq(r.script_exists(script.sha), [True], "SCRIPT EXISTS")
    eq(r.evalsha(script.sha, 1, k, 2), 7, "EVALSHA")
    eq(r.eval("return {1, 'two', {3, 'four'}, redis.call('GET', KEYS[1])}", 1, k), [1, b"two", [3, b"four"], b"7"], "EVAL nested reply")
    eq(r.script_flush(), True, "SCRIPT FLUSH")
    eq(r.script_exists(script.sha), [False], "SCRIPT EXISTS after FLUSH")
    try:
        r.evalsha(script.sha, 1, k, 1)
        raise AssertionError("EVALSHA after SCRIPT FLUSH did not raise NOSCRIPT")
    except NoScriptError as e:
        check("No matching script" in str(e), f"NOSCRIPT text: {e}")
    eq(script(keys=[k], args=[3]), 10, "script() falls back to SCRIPT LOAD after NOSCRIPT")
    eq(r.script_exists(script.sha), [True], "script loaded again")
    r.script_flush()
    with r.pipeline() as pipe:
        script(keys=[k], args=[1], client=pipe)
        pipe.get(k)
        eq(pipe.execute(), [11, b"11"], "script in a MULTI/EXEC pipeline after SCRIPT FLUSH")
    sha = r.script_load("return ARGV[1] .. ARGV[2]")
    eq(r.evalsha(sha, 0, "a", "b"), b"ab", "SCRIPT LOAD + EVALSHA")
    try:
        r.eval("return redis.error_reply('MYERR custom')", 0)
        raise AssertionError("redis.error_reply did not raise")
    except ResponseError as e:
        eq(str(e), "MYERR custom", "error_reply text")
    try:
        r.eval("return redis.call('LPUSH', KEYS[1], 'x')", 1, k)
        raise AssertionError("WRONGTYPE inside a script did not raise")
    except ResponseError as e:
        check("WRONGTYPE" in str(e), f"script error: {e}")
    eq(r.get(k), b"11", "value after the failed script")
    r.delete(k)


@case("sync.blpop")
def blpop(ctx):
    r, pusher = ctx.redis(), ctx.redis()
    k = ctx.key("list")
    t0 = time.monotonic()
    eq(r.blpop([k], timeout=1), None, "BLPOP timeout on an empty list")
    waited = time.monotonic() - t0
    check(0.9 <= waited < 5, f"BLPOP timeout 1 returned after {waited:.2f}s")
    eq(r.brpop([k], timeout=0.2), None, "BRPOP with a fractional timeout")

    def push():
        time.sleep(0.3)
        pusher.rpush(k, "job-1", "job-2")

    t = threading.Thread(target=push)
    t0 = time.monotonic()
    t.start()
    got = r.blpop([ctx.key("empty"), k], timeout=5)
    waited = time.monotonic() - t0
    t.join(5)
    eq(got, (k.encode(), b"job-1"), "BLPOP woken by RPUSH from another connection")
    check(0.2 <= waited < 4, f"BLPOP woke after {waited:.2f}s")
    eq(r.blpop([k], timeout=1), (k.encode(), b"job-2"), "BLPOP of an element already there")
    eq(r.lpush(k, "x"), 1, "the connection works after blocking")
    eq(r.delete(k), 1, "DEL")


@case("sync.lock")
def lock(ctx):
    r, r2 = ctx.redis(), ctx.redis()
    name = ctx.key("lock")
    first = Lock(r, name, timeout=10)
    second = Lock(r2, name, timeout=10)
    eq(first.acquire(blocking=False), True, "first acquire")
    eq(first.owned(), True, "first owns the lock")
    eq(second.locked(), True, "second sees the lock taken")
    eq(second.acquire(blocking=False), False, "second non-blocking acquire")
    t0 = time.monotonic()
    eq(second.acquire(blocking_timeout=0.3), False, "second acquire with blocking_timeout 0.3")
    waited = time.monotonic() - t0
    check(0.15 <= waited < 3, f"acquire with blocking_timeout 0.3 gave up after {waited:.2f}s")
    eq(first.extend(5), True, "extend")
    ttl = r.pttl(name)
    check(10_000 < ttl <= 15_000, f"PTTL after extend is {ttl}")
    first.release()
    try:
        first.release()
        raise AssertionError("releasing an unlocked lock did not raise")
    except LockError:
        pass
    eq(second.acquire(blocking=False), True, "second acquires after the release")
    eq(first.acquire(blocking=False), False, "first now locked out")
    second.release()
    eq(r.exists(name), 0, "lock key gone")
    # Two contenders in threads guarding a read-modify-write: no lost update.
    k = ctx.key("counter")
    r.set(k, 0)
    errors = []

    def contender(client):
        try:
            for _ in range(25):
                with Lock(client, name, timeout=10, sleep=0.005, blocking_timeout=10):
                    value = int(client.get(k))
                    client.set(k, value + 1)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=contender, args=(c,)) for c in (r, r2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    eq(errors, [], "contender errors")
    eq(r.get(k), b"50", "counter guarded by the lock")
    r.delete(k, name)


@case("sync.streams")
def streams(ctx):
    r, writer = ctx.redis(), ctx.redis()
    s, group = ctx.key("stream"), "workers"
    eq(r.xgroup_create(s, group, id="0", mkstream=True), True, "XGROUP CREATE MKSTREAM")
    ids = [r.xadd(s, {"n": i, "kind": "job"}) for i in range(10)]
    eq(r.xlen(s), 10, "XLEN")
    all_entries = r.xread({s: "0"}, count=100)
    eq(all_entries, [[s.encode(), [(ids[i], {b"n": str(i).encode(), b"kind": b"job"}) for i in range(10)]]], "XREAD from 0")
    eq(r.xread({s: ids[-1]}, count=10), [], "XREAD after the last id")
    c1 = r.xreadgroup(group, "c1", {s: ">"}, count=6)
    eq([e[0] for e in c1[0][1]], ids[:6], "c1 reads the first 6")
    c2 = r.xreadgroup(group, "c2", {s: ">"}, count=100)
    eq([e[0] for e in c2[0][1]], ids[6:], "c2 reads the other 4")
    summary = r.xpending(s, group)
    eq(summary["pending"], 10, "XPENDING count")
    eq(sorted((c["name"], c["pending"]) for c in summary["consumers"]), [(b"c1", 6), (b"c2", 4)], "XPENDING consumers")
    eq(r.xack(s, group, *ids[:6]), 6, "XACK of c1's entries")
    eq(r.xack(s, group, ids[0]), 0, "XACK twice")
    eq(r.xpending(s, group)["pending"], 4, "XPENDING after XACK")
    claimed = r.xclaim(s, group, "c1", min_idle_time=0, message_ids=ids[6:8])
    eq([e[0] for e in claimed], ids[6:8], "XCLAIM moves two entries to c1")
    history = r.xreadgroup(group, "c1", {s: "0"})
    eq([e[0] for e in history[0][1]], ids[6:8], "c1's pending history")
    check(not r.xreadgroup(group, "c1", {s: ">"}, block=200), "XREADGROUP BLOCK 200 with nothing new")

    def add_later():
        time.sleep(0.3)
        writer.xadd(s, {"n": "late"})

    t = threading.Thread(target=add_later)
    t.start()
    woke = r.xreadgroup(group, "c2", {s: ">"}, block=5000, count=1)
    t.join(5)
    eq(woke[0][1][0][1], {b"n": b"late"}, "XREADGROUP BLOCK woken by XADD from another connection")
    eq(r.xack(s, group, *ids[6:], woke[0][1][0][0]), 5, "XACK the rest")
    eq(r.xpending(s, group)["pending"], 0, "nothing pending")
    eq(r.delete(s), 1, "DEL stream")


@case("sync.job_queue")
def job_queue(ctx):
    producer = ctx.redis()
    queue, processing, done = ctx.key("queue"), ctx.key("processing"), ctx.key("done")
    stop = threading.Event()
    handled = {0: [], 1: [], 2: []}
    errors = []

    def worker(i):
        r = ctx.redis()
        try:
            while True:
                if i == 0:
                    job = r.brpoplpush(queue, processing, timeout=0.5)
                else:
                    job = r.blmove(queue, processing, 0.5, "RIGHT", "LEFT")
                if job is None:
                    if stop.is_set():
                        return
                    continue
                handled[i].append(job)
                r.hincrby(done, job, 1)
                eq(r.lrem(processing, 1, job), 1, f"LREM of {job!r}")
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for t in workers:
        t.start()
    for batch in range(0, 300, 25):
        jobs = [f"job-{n}" for n in range(batch, batch + 25)]
        producer.lpush(queue, *jobs[:13])  # one multi-element push, then single pushes
        for job in jobs[13:]:
            producer.lpush(queue, job)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not errors:
        if producer.hlen(done) == 300 and producer.llen(processing) == 0:
            break
        time.sleep(0.05)
    stop.set()
    for t in workers:
        t.join(5)
    eq(errors, [], "worker errors")
    check(not any(t.is_alive() for t in workers), "workers still running")
    counts = {k.decode(): int(v) for k, v in producer.hgetall(done).items()}
    eq(counts, {f"job-{n}": 1 for n in range(300)}, "every job processed exactly once")
    all_handled = sorted(j.decode() for jobs in handled.values() for j in jobs)
    eq(all_handled, sorted(f"job-{n}" for n in range(300)), "jobs seen by the workers")
    eq((producer.llen(queue), producer.llen(processing)), (0, 0), "queue and processing list empty")
    producer.delete(queue, processing, done)


CASES = [pubsub, pubsub_thread, lua, blpop, lock, streams, job_queue]
