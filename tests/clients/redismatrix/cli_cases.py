# Owns the redis-cli cases (the installed binary): PING, SET/GET, --pipe mass insertion,
# --scan --pattern, -r repeat and --eval; results are checked with redis-py where it helps.
import os
import re
import tempfile

from .runner import case, check, eq


def lines(proc):
    return proc.stdout.splitlines()


def resp(*args):
    """One command in the Redis protocol (what `redis-cli --pipe` reads)."""
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


@case("cli.ping")
def ping(ctx):
    eq(ctx.cli("PING").stdout, "PONG\n", "redis-cli PING")
    eq(ctx.cli("PING", "hello").stdout, "hello\n", "redis-cli PING hello")
    eq(ctx.cli("--no-raw", "PING").stdout, "PONG\n", "redis-cli --no-raw PING")


@case("cli.set_get")
def set_get(ctx):
    k = ctx.key("greeting")
    eq(ctx.cli("SET", k, "hello world").stdout, "OK\n", "SET")
    eq(ctx.cli("GET", k).stdout, "hello world\n", "GET (raw output)")
    eq(ctx.cli("--no-raw", "GET", k).stdout, '"hello world"\n', "GET (--no-raw)")
    eq(ctx.cli("--no-raw", "GET", ctx.key("missing")).stdout, "(nil)\n", "GET of a missing key")
    eq(ctx.cli("-x", "SET", ctx.key("stdin"), input="from stdin").stdout, "OK\n", "SET -x from stdin")
    r = ctx.redis()
    eq(r.get(ctx.key("stdin")), b"from stdin", "value written by -x")
    eq(r.get(k), b"hello world", "value written by redis-cli, read by redis-py")
    out = ctx.cli("--no-raw", "LPUSH", k, "x").stdout
    check(out.startswith("(error) WRONGTYPE"), f"redis-cli error output: {out!r}")
    eq(ctx.cli("DEL", k, ctx.key("stdin")).stdout, "2\n", "DEL")


@case("cli.pipe")
def pipe(ctx):
    data = b"".join(resp("SET", ctx.key(f"mass:{i}"), f"value-{i}") for i in range(10000))
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.seek(0)
        proc = ctx.cli("--pipe", stdin=f)
    out = proc.stdout
    check("All data transferred" in out, f"--pipe output: {out!r}")
    m = re.search(r"errors: (\d+), replies: (\d+)", out)
    check(m is not None, f"no summary in --pipe output: {out!r}")
    eq((int(m.group(1)), int(m.group(2))), (0, 10000), "--pipe errors, replies")
    r = ctx.redis()
    keys = [ctx.key(f"mass:{i}") for i in range(10000)]
    values = []
    for i in range(0, 10000, 1000):
        values.extend(r.mget(keys[i : i + 1000]))
    eq(values, [f"value-{i}".encode() for i in range(10000)], "values of the 10000 SETs")
    for i in range(0, 10000, 1000):
        r.delete(*keys[i : i + 1000])
    eq(r.exists(*keys[:100]), 0, "keys deleted")


@case("cli.scan")
def scan(ctx):
    r = ctx.redis()
    with r.pipeline(transaction=False) as p:
        for i in range(50):
            p.set(ctx.key(f"scan:{i}"), i)
        for i in range(5):
            p.set(ctx.key(f"other:{i}"), i)
        p.execute()
    found = lines(ctx.cli("--scan", "--pattern", ctx.key("scan:*")))
    eq(sorted(set(found)), sorted(ctx.key(f"scan:{i}") for i in range(50)), "--scan --pattern")
    found = lines(ctx.cli("--scan", "--pattern", ctx.pattern))
    eq(len(set(found)), 55, "--scan of all own keys")
    eq(lines(ctx.cli("--scan", "--pattern", ctx.key("none:*"))), [], "--scan with no match")
    eq(r.delete(*[ctx.key(f"scan:{i}") for i in range(50)], *[ctx.key(f"other:{i}") for i in range(5)]), 55, "DEL")


@case("cli.repeat")
def repeat(ctx):
    k = ctx.key("counter")
    eq(lines(ctx.cli("-r", "5", "INCR", k)), ["1", "2", "3", "4", "5"], "-r 5 INCR")
    eq(lines(ctx.cli("-r", "3", "-i", "0.05", "INCR", k)), ["6", "7", "8"], "-r 3 -i 0.05 INCR")
    eq(ctx.redis().get(k), b"8", "counter after the repeats")
    eq(ctx.cli("DEL", k).stdout, "1\n", "DEL")


@case("cli.eval")
def eval_script(ctx):
    k = ctx.key("evalkey")
    script = "return {KEYS[1], ARGV[1], redis.call('INCRBY', KEYS[1], ARGV[1]), #KEYS, #ARGV}\n"
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "script.lua")
        with open(path, "w") as f:
            f.write(script)
        eq(lines(ctx.cli("--eval", path, k, ",", "7")), [k, "7", "7", "1", "1"], "--eval script.lua key , 7")
        eq(lines(ctx.cli("--eval", path, k, ",", "3")), [k, "3", "10", "1", "1"], "second --eval")
        with open(path, "w") as f:
            f.write("return redis.call('GET', KEYS[1])\n")
        eq(lines(ctx.cli("--eval", path, k)), ["10"], "--eval with keys only")
    eq(ctx.redis().get(k), b"10", "value written by the script")
    eq(ctx.cli("DEL", k).stdout, "1\n", "DEL")


CASES = [ping, set_get, pipe, scan, repeat, eval_script]
