# Owns the blocking-command family: BLPOP / BRPOP / BRPOPLPUSH / BLMOVE / BLMPOP / BZPOPMIN /
# BZPOPMAX / BZMPOP and XREAD BLOCK on the client's own keys with short, never zero, timeouts,
# and the stream commands (XADD with explicit increasing ids, XRANGE, XLEN) they read.
"""Deterministic because every step runs alone: no other client can push to a client's keys
while it waits, so a blocking command on an empty key always answers nil (RESP2 `*-1`, RESP3
`_`) after its timeout and on a non-empty key answers at once. Inside MULTI they never block.

A timeout on an empty key costs about 100 ms on a stock server (hz 10 wakes the event loop
every 100 ms), so script.py weights BLOCKING low outside MULTI and high inside it (free);
FILLED (a push to the first key, then the blocking command: an immediate reply) is free too.
The timeouts are 0.01-0.05 s (XREAD BLOCK 10-50 ms); 0 (wait forever) is never generated.
XADD ids come from the client's counter Ctx.seq, so they increase in every database and
XREAD / XRANGE replies are the same on both endpoints."""

from .commands import Cmd

TIMEOUTS = [b"0.01", b"0.01", b"0.02", b"0.05"]
BAD_TIMEOUTS = [b"-1", b"abc", b"inf", b"-0.5"]  # errors at once (7.0: "inf" is "negative")
LISTS = [b"list", b"list", b"l2", b"l2", b"nokey", b"s1"]  # s1 (string): WRONGTYPE
ZSETS = [b"z", b"z", b"z", b"z2", b"s1"]  # z2 is never written: always empty
STREAMS = [b"st", b"st", b"st", b"st2"]


def timeout(g):
    return g.r.choice(TIMEOUTS) if g.r.random() < 0.97 else g.r.choice(BAD_TIMEOUTS)


def own(g, names, lo, hi):
    return [g.prefix + g.r.choice(names) for _ in range(g.r.randint(lo, hi))]


def side(g):
    return g.r.choice([b"LEFT", b"RIGHT"])


def count_opt(g, word=b"COUNT"):
    x = g.r.random()
    if x < 0.5:
        return []
    if x < 0.97:
        return [word, g.num(1, 4)]
    return [word, g.r.choice([b"0", b"-1"])]  # errors


def c_blpop(g):
    return Cmd([g.r.choice([b"BLPOP", b"BRPOP"])] + own(g, LISTS, 1, 2) + [timeout(g)])


def c_blmove(g):
    src, dst = own(g, LISTS, 2, 2)
    if g.r.random() < 0.3:
        return Cmd([b"BRPOPLPUSH", src, dst, timeout(g)])
    return Cmd([b"BLMOVE", src, dst, side(g), side(g), timeout(g)])


def c_blmpop(g):
    keys = own(g, LISTS, 1, 3)
    return Cmd([b"BLMPOP", timeout(g), b"%d" % len(keys)] + keys + [side(g)] + count_opt(g))


def c_bzpop(g):
    r = g.r
    if r.random() < 0.35:
        keys = own(g, ZSETS, 1, 2)
        return Cmd([b"BZMPOP", timeout(g), b"%d" % len(keys)] + keys
                   + [r.choice([b"MIN", b"MAX"])] + count_opt(g))
    return Cmd([r.choice([b"BZPOPMIN", b"BZPOPMAX"])] + own(g, ZSETS, 1, 2) + [timeout(g)])


def stream_id(g):
    """An id to read after: '$' (only newer entries: none come, so nil after the timeout),
    '0' or an id at or below the newest (entries at once if the stream has newer ones)."""
    x = g.r.random()
    if x < 0.3:
        return b"$"
    if x < 0.6:
        return b"0"
    return b"%d-%d" % (g.r.randint(0, g.seq), g.r.randint(0, 1))


def c_xread(g):
    r = g.r
    keys = own(g, STREAMS, 1, 2)
    if len(keys) == 2 and keys[0] == keys[1]:
        keys.pop()
    block = b"%d" % r.choice([10, 10, 20, 50]) if r.random() < 0.97 else b"-1"
    args = [b"XREAD"] + count_opt(g) + [b"BLOCK", block, b"STREAMS"] + keys
    return Cmd(args + [stream_id(g) for _ in keys])


# -- streams (never block) -----------------------------------------------------------------

def c_xadd(g):
    r = g.r
    key = g.prefix + r.choice(STREAMS + [b"s1"])
    if r.random() < 0.03:
        return Cmd([b"XADD", key, b"0-0", b"f", b"v"])  # error: must be greater than 0-0
    g.seq += 1
    args = [b"XADD", key]
    if r.random() < 0.15:
        args += [b"MAXLEN", g.num(1, 3)]
    args.append(b"%d-1" % g.seq)
    for _ in range(r.randint(1, 2)):
        args += [r.choice([b"f", b"g", b"name"]), g.value(big=0.003)]
    return Cmd(args)


def c_xrange(g):
    key = g.prefix + g.r.choice(STREAMS)
    if g.r.random() < 0.3:
        return Cmd([b"XLEN", key])
    if g.r.random() < 0.3:
        return Cmd([b"DEL", key])
    return Cmd([g.r.choice([b"XRANGE", b"XREVRANGE"]), key] +
               ([b"-", b"+"] if g.r.random() < 0.5 else [b"+", b"-"]) + count_opt(g))


def c_zfill(g):
    """Refills the sorted set the BZ* commands pop (the data family's ZADD is rarer)."""
    args = [b"ZADD", g.prefix + b"z"]
    for i in range(g.r.randint(1, 3)):
        args += [g.num(-5, 5), b"b%d" % g.r.randint(0, 5)]
    return Cmd(args)


def c_filled(g):
    """[a write that makes the first key non-empty, a blocking command on it]: two commands,
    pipelined in one step or sent as the last of one step and the first of the next."""
    r = g.r
    cmd = r.choice([c_blpop, c_blmove, c_blmpop, c_bzpop, c_xread])(g)
    a = cmd.args
    if a[0] == b"XREAD":
        at = a.index(b"STREAMS") + 1
        g.seq += 1
        a[at + (len(a) - at) // 2] = b"%d-0" % g.seq  # just below the entry added now
        return [Cmd([b"XADD", a[at], b"%d-1" % g.seq, b"f", g.value(big=0)]), cmd]
    key = a[3] if a[0] in (b"BLMPOP", b"BZMPOP") else a[1]
    if a[0].startswith(b"BZ"):
        return [Cmd([b"ZADD", key, g.num(-3, 3), r.choice([b"m1", b"m2", b"b1"])]), cmd]
    values = [g.value(big=0) for _ in range(r.randint(1, 2))]
    return [Cmd([r.choice([b"RPUSH", b"LPUSH"]), key] + values), cmd]


STREAM = [(2, c_xadd), (1, c_xrange), (0.5, c_zfill)]
BLOCKING = [(3, c_blpop), (2, c_blmove), (2, c_blmpop), (3, c_bzpop), (3, c_xread)]
