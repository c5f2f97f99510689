# Owns the data-command generators: the Cmd type, the per-client key/value vocabulary and
# one generator per command family (strings, lists, hashes, sets, sorted sets, EVAL,
# deliberate errors), all on the calling client's own hash-tagged keys.
"""Every generator takes a Ctx (the client's rng and key prefix) and returns one Cmd.
blocking.py and pubsub.py add the blocking and Pub/Sub families; script.py mixes them.

A Cmd's `tag` tells the comparison how to normalise the reply: None (byte-exact),
'ttl' (class -2 / -1 / >=0), 'unordered' (sort the elements), 'pairs' (sort field/value
pairs), 'hello' (type and the proto field only) or ('exec', tags) for an EXEC whose
queued commands carry `tags`; 'unsub-all' (an UNSUBSCRIBE / PUNSUBSCRIBE without arguments,
whose frames come in the server's hash order) compares those frames as a set plus the counts.

`nrep` and `npush` are how many reply frames and RESP3 push frames the command produces on
its own connection (1 and 0 but for Pub/Sub); the runner reads exactly their sum."""

from .resp import encode

STRING_KEYS = [b"s1", b"s2", b"s3", b"n", b"bin"]
ALL_KEYS = STRING_KEYS + [b"list", b"l2", b"h", b"set", b"z", b"nokey"]
FIELDS = [b"f1", b"f2", b"f3", b"cnt", b"f\r\n\x00"]
MEMBERS = [b"m1", b"m2", b"m3", b"m4", b"1", b"2", b"10", b"-3", b"\x00m\r\n"]
WORDS = [b"alpha", b"beta", b"gamma", b"x", b"hello world", b"0", b"42", b"-7", b"3.5",
         b"caf\xc3\xa9", b"abc"]
BINARY = [b"a\r\nb", b"\x00", b"\r\n", b"\x00\r\n\x00", b"line1\r\nline2\r\n",
          b"$5\r\nfake\r\n", b"*1\r\n:1\r\n", b"\xff\xfe\x00", b"+OK\r\n"]
BIG_SIZES = [100 * 1024, 65536, 16 * 1024 + 3]
SCORES = [b"1", b"2", b"-1", b"0", b"1.5", b"0.1", b"10", b"-inf", b"+inf", b"3e2"]


class Cmd:
    __slots__ = ("args", "tag", "inline", "nrep", "npush", "_wire")

    def __init__(self, args, tag=None, inline=False, nrep=1, npush=0):
        self.args = args
        self.tag = tag
        self.inline = inline
        self.nrep = nrep
        self.npush = npush
        self._wire = None

    def wire(self):
        if self._wire is None:
            self._wire = b" ".join(self.args) + b"\r\n" if self.inline else encode(self.args)
        return self._wire

    def __repr__(self):
        if self.inline:
            return "inline %r" % self.wire()
        shown = [a if len(a) <= 40 else a[:20] + b"...(%d bytes)" % len(a) for a in self.args]
        return repr(shown)


class Ctx:
    """A client's random source and key vocabulary."""

    def __init__(self, rng, cid):
        self.r = rng
        self.prefix = b"{c%d}:" % cid
        self.seq = 0  # the last stream id generated (XADD ids increase across databases)

    def key(self, names=ALL_KEYS):
        return self.prefix + self.r.choice(names)

    def keys(self, names, lo, hi):
        return [self.key(names) for _ in range(self.r.randint(lo, hi))]

    def num(self, lo, hi):
        return b"%d" % self.r.randint(lo, hi)

    def value(self, big=0.015):
        x = self.r.random()
        if x < big:
            return self.r.randbytes(self.r.choice(BIG_SIZES))
        if x < 0.12:
            return self.r.choice(BINARY) + self.r.randbytes(self.r.randint(0, 6))
        if x < 0.35:
            return self.num(-100, 1000)
        if x < 0.38:
            return b""
        return self.r.choice(WORDS)

    def word(self):
        return self.r.choice([b"alpha", b"beta", b"x", b"42", b"hello"])


# -- strings -------------------------------------------------------------------------------

def c_set(g):
    r = g.r
    args = [b"SET", g.key(STRING_KEYS), g.value()]
    x = r.random()
    if x < 0.15:
        args += [b"EX", g.num(100, 100000)]
    elif x < 0.2:
        args += [b"PX", g.num(100000, 10 ** 8)]
    elif x < 0.23:
        args += [b"EXAT", b"4102444800"]
    elif x < 0.26:
        args.append(b"KEEPTTL")
    elif x < 0.28:
        args += [b"EX", b"-5"]
    y = r.random()
    if y < 0.15:
        args.append(b"NX")
    elif y < 0.3:
        args.append(b"XX")
    elif y < 0.32:
        args += [b"NX", b"XX"]
    if r.random() < 0.2:
        args.append(b"GET")
    return Cmd(args)


def c_get(g):
    return Cmd([b"GET", g.key(STRING_KEYS if g.r.random() < 0.9 else ALL_KEYS)])


def c_incr(g):
    r = g.r
    x = r.random()
    if x < 0.4:
        return Cmd([b"INCR", g.prefix + b"n"])
    if x < 0.7:
        return Cmd([b"INCRBY", g.prefix + b"n", g.num(-50, 50)])
    if x < 0.8:
        return Cmd([b"DECRBY", g.prefix + b"n", g.num(0, 9)])
    if x < 0.9:
        return Cmd([b"INCR", g.key(STRING_KEYS)])
    if x < 0.95:
        return Cmd([b"INCRBY", g.prefix + b"n", r.choice([b"abc", b"1.5", b"9223372036854775807"])])
    return Cmd([b"INCR", g.key()])


def c_append(g):
    return Cmd([b"APPEND", g.key(STRING_KEYS), g.value(big=0.004)])


def c_getrange(g):
    return Cmd([b"GETRANGE", g.key(STRING_KEYS), g.num(-12, 12), g.num(-12, 12)])


def c_mset(g):
    if g.r.random() < 0.05:
        return Cmd([b"MSET", g.key(STRING_KEYS)])
    args = [b"MSET"]
    for k in g.keys(STRING_KEYS, 1, 3):
        args += [k, g.value(big=0.003)]
    return Cmd(args)


def c_mget(g):
    return Cmd([b"MGET"] + g.keys(ALL_KEYS, 1, 4))


def c_del(g):
    return Cmd([b"DEL"] + g.keys(ALL_KEYS, 1, 3))


def c_exists(g):
    return Cmd([b"EXISTS"] + g.keys(ALL_KEYS, 1, 3))


def c_type(g):
    return Cmd([b"TYPE", g.key()])


def c_expire(g):
    args = [b"EXPIRE", g.key(), g.num(100, 100000)]
    if g.r.random() < 0.3:
        args.append(g.r.choice([b"NX", b"XX", b"GT", b"LT"]))
    return Cmd(args)


def c_ttl(g):
    return Cmd([b"TTL", g.key()], tag="ttl")


def c_persist(g):
    return Cmd([b"PERSIST", g.key()])


# -- lists ---------------------------------------------------------------------------------

def list_key(g):
    return g.prefix + (b"list" if g.r.random() < 0.8 else b"l2")


def c_push(g):
    n = g.r.randint(1, 4)
    values = [g.value(big=0.003) for _ in range(n)]
    return Cmd([g.r.choice([b"RPUSH", b"LPUSH"]), list_key(g)] + values)


def c_lpop(g):
    args = [b"LPOP", list_key(g)]
    if g.r.random() < 0.6:
        args.append(g.num(0, 4))
    return Cmd(args)


def c_lrange(g):
    return Cmd([b"LRANGE", list_key(g), g.num(-5, 3), g.num(-3, 8)])


def c_llen(g):
    return Cmd([b"LLEN", list_key(g)])


def c_lindex(g):
    return Cmd([b"LINDEX", list_key(g), g.num(-4, 4)])


# -- hashes --------------------------------------------------------------------------------

def c_hset(g):
    args = [b"HSET", g.prefix + b"h"]
    for _ in range(g.r.randint(1, 3)):
        args += [g.r.choice(FIELDS), g.value(big=0.003)]
    return Cmd(args)


def c_hget(g):
    return Cmd([b"HGET", g.prefix + b"h", g.r.choice(FIELDS)])


def c_hgetall(g):
    return Cmd([b"HGETALL", g.prefix + b"h"], tag="pairs")


def c_hdel(g):
    return Cmd([b"HDEL", g.prefix + b"h"] + [g.r.choice(FIELDS) for _ in range(g.r.randint(1, 2))])


def c_hincrby(g):
    field = b"cnt" if g.r.random() < 0.8 else g.r.choice(FIELDS)
    return Cmd([b"HINCRBY", g.prefix + b"h", field, g.num(-20, 20)])


# -- sets ----------------------------------------------------------------------------------

def members(g, most):
    return [g.r.choice(MEMBERS) for _ in range(g.r.randint(1, most))]


def c_sadd(g):
    return Cmd([b"SADD", g.prefix + b"set"] + members(g, 4))


def c_srem(g):
    return Cmd([b"SREM", g.prefix + b"set"] + members(g, 2))


def c_smembers(g):
    return Cmd([b"SMEMBERS", g.prefix + b"set"], tag="unordered")


def c_scard(g):
    return Cmd([b"SCARD", g.prefix + b"set"])


def c_sismember(g):
    return Cmd([b"SISMEMBER", g.prefix + b"set", g.r.choice(MEMBERS)])


# -- sorted sets ---------------------------------------------------------------------------

def c_zadd(g):
    r = g.r
    args = [b"ZADD", g.prefix + b"z"]
    if r.random() < 0.3:
        args.append(r.choice([b"NX", b"XX", b"GT", b"LT", b"CH"]))
    if r.random() < 0.1:
        return Cmd(args + [b"INCR", r.choice(SCORES), r.choice(MEMBERS)])
    for _ in range(r.randint(1, 3)):
        args += [r.choice(SCORES), r.choice(MEMBERS)]
    return Cmd(args)


def c_zrange(g):
    x = g.r.random()
    key = g.prefix + b"z"
    if x < 0.6:
        return Cmd([b"ZRANGE", key, b"0", b"-1", b"WITHSCORES"])
    if x < 0.8:
        return Cmd([b"ZRANGE", key, g.num(0, 2), g.num(-2, 3), b"REV", b"WITHSCORES"])
    return Cmd([b"ZRANGE", key, b"-inf", b"+inf", b"BYSCORE", b"WITHSCORES"])


def c_zincrby(g):
    return Cmd([b"ZINCRBY", g.prefix + b"z", g.r.choice(SCORES), g.r.choice(MEMBERS)])


def c_zscore(g):
    return Cmd([b"ZSCORE", g.prefix + b"z", g.r.choice(MEMBERS)])


# -- EVAL ----------------------------------------------------------------------------------

SCRIPTS = [  # (body, own keys, ARGV kinds, reply tag)
    (b"return redis.call('incr', KEYS[1])", [b"n"], [], None),
    (b"redis.call('set', KEYS[1], ARGV[1]) return redis.call('get', KEYS[1])", [b"s2"], ["v"],
     None),
    (b"return {redis.call('rpush', KEYS[1], ARGV[1]), redis.call('lrange', KEYS[1], 0, -1)}",
     [b"l2"], ["v"], None),
    (b"return redis.call('lpush', KEYS[1], 'x')", [b"s1"], [], None),
    (b"return redis.pcall('incr', KEYS[1])", [b"s3"], [], None),
    (b"return {1, 'two', {3, KEYS[1]}, tonumber(ARGV[1]) * 2, false}", [b"s1"], ["n"], None),
    (b"return redis.status_reply('FINE')", [b"s1"], [], None),
    (b"return redis.call('hincrby', KEYS[1], 'cnt', 3)", [b"h"], [], None),
    (b"return redis.call('exists', KEYS[1], KEYS[2])", [b"s1", b"z"], [], None),
    (b"return redis.error_reply('MYERR custom failure')", [b"s1"], [], None),
    # RESP3 types (double, big number, boolean, verbatim, map, set) reach RESP3 callers.
    (b"redis.setresp(3) return redis.call('hgetall', KEYS[1])", [b"h"], [], "pairs"),
    (b"redis.setresp(3) return redis.call('smembers', KEYS[1])", [b"set"], [], "unordered"),
    (b"redis.setresp(3) return {redis.call('zscore', KEYS[1], 'm1'), ARGV[1] == '0'}",
     [b"z"], ["n"], None),
    (b"return {{double=3.25}, {big_number='123456789012345678901234567890'}, "
     b"{verbatim_string={format='txt', string=ARGV[1]}}}", [b"s1"], ["v"], None),
]


def c_eval(g):
    body, keys, argv, tag = g.r.choice(SCRIPTS)
    args = [b"EVAL", body, b"%d" % len(keys)] + [g.prefix + k for k in keys]
    for kind in argv:
        args.append(g.num(-9, 99) if kind == "n" else g.value(big=0))
    return Cmd(args, tag=tag)


# -- deliberate errors ---------------------------------------------------------------------

def c_error(g):
    r = g.r
    x = r.random()
    p = g.prefix
    if x < 0.25:  # wrong arity
        return Cmd(r.choice([[b"GET"], [b"SET", p + b"s1"], [b"HSET", p + b"h", b"f1"],
                             [b"LPUSH", p + b"list"], [b"ZADD", p + b"z", b"1"], [b"ECHO"],
                             [b"GETRANGE", p + b"s1", b"0"]]))
    if x < 0.55:  # wrong type
        return Cmd(r.choice([[b"LPUSH", p + b"s1", b"x"], [b"HGET", p + b"list", b"f1"],
                             [b"SADD", p + b"h", b"m"], [b"INCR", p + b"list"],
                             [b"ZSCORE", p + b"set", b"m1"], [b"GET", p + b"z"]]))
    if x < 0.75:  # unknown command
        return Cmd([b"NOSUCHCMD"] + [g.word() for _ in range(r.randint(0, 2))])
    if x < 0.9:  # not an integer
        return Cmd([b"INCRBY", p + b"n", b"notanumber"])
    return Cmd([b"SET", p + b"s1", b"v", b"EX", b"notanumber"])


DATA = [
    (9, c_set), (6, c_get), (4, c_incr), (3, c_append), (2, c_getrange), (2, c_mset),
    (2, c_mget), (2, c_del), (2, c_exists), (2, c_type), (2, c_expire), (3, c_ttl),
    (1, c_persist),
    (4, c_push), (3, c_lpop), (3, c_lrange), (1, c_llen), (1, c_lindex),
    (3, c_hset), (2, c_hget), (2, c_hgetall), (1, c_hdel), (2, c_hincrby),
    (3, c_sadd), (1, c_srem), (2, c_smembers), (1, c_scard), (1, c_sismember),
    (3, c_zadd), (2, c_zrange), (2, c_zincrby), (1, c_zscore),
    (3, c_eval), (3, c_error),
]
