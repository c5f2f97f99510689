# Owns the error-reply cases: WRONGTYPE and unknown-command errors (plus arity, unknown
# subcommand, EXECABORT) reach redis-py as ResponseError with Redis' exact text, over RESP2,
# RESP3, pipelines and asyncio, and the connection stays usable after each.
from redis.exceptions import ExecAbortError, ResponseError

from .runner import case, check, eq

# Redis 7 wording. redis-py strips a leading "ERR " (and keeps other prefixes).
WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
UNKNOWN_AB = "unknown command 'NOSUCHCMD', with args beginning with: 'a' 'b' "
UNKNOWN_NOARGS = "unknown command 'NOSUCHCMD', with args beginning with: "
ARITY_GET = "wrong number of arguments for 'get' command"
UNKNOWN_SUB = "unknown subcommand 'FOO'. Try CLIENT HELP."
EXECABORT = "Transaction discarded because of previous errors."


def expect_error(fn, text, what, cls=ResponseError):
    try:
        fn()
    except ResponseError as e:
        eq(type(e), cls, f"{what}: exception class")
        eq(str(e), text, f"{what}: error text")
        return
    raise AssertionError(f"{what}: no error raised")


@case("errors.wrongtype")
def wrongtype(ctx):
    k = ctx.key("str")
    for protocol in (2, 3):
        r = ctx.redis(protocol=protocol, single_connection_client=True)
        r.set(k, "a string")
        expect_error(lambda: r.lpush(k, "x"), WRONGTYPE, f"LPUSH on a string (RESP{protocol})")
        expect_error(lambda: r.hgetall(k), WRONGTYPE, f"HGETALL on a string (RESP{protocol})")
        eq(r.get(k), b"a string", f"connection usable after WRONGTYPE (RESP{protocol})")
        with r.pipeline(transaction=False) as pipe:
            pipe.get(k).sadd(k, "m").incr(ctx.key("n"))
            replies = pipe.execute(raise_on_error=False)
        eq(replies[0], b"a string", "GET before the error in a pipeline")
        check(type(replies[1]) is ResponseError, f"pipelined error class {type(replies[1])}")
        eq(str(replies[1]), WRONGTYPE, "pipelined WRONGTYPE text")
        eq(replies[2], 1, "INCR after the error in a pipeline")
        with r.pipeline(transaction=False) as pipe:
            pipe.zadd(k, {"m": 1})
            try:
                pipe.execute()
                raise AssertionError("pipeline execute() did not raise")
            except ResponseError as e:
                check(WRONGTYPE in str(e), f"pipeline error text: {e}")
        eq(r.delete(ctx.key("n")), 1, "DEL counter")
    r.delete(k)


@case("errors.wrongtype_async")
async def wrongtype_async(ctx):
    r = ctx.aredis()
    try:
        k = ctx.key("list")
        await r.rpush(k, "a")
        try:
            await r.get(k)
            raise AssertionError("GET on a list did not fail")
        except ResponseError as e:
            eq(type(e), ResponseError, "exception class")
            eq(str(e), WRONGTYPE, "error text")
        eq(await r.lrange(k, 0, -1), [b"a"], "connection usable after WRONGTYPE")
        await r.delete(k)
    finally:
        await r.aclose()


@case("errors.unknown_command")
def unknown_command(ctx):
    r = ctx.redis(single_connection_client=True)
    expect_error(lambda: r.execute_command("NOSUCHCMD", "a", "b"), UNKNOWN_AB, "unknown command with args")
    expect_error(lambda: r.execute_command("NOSUCHCMD"), UNKNOWN_NOARGS, "unknown command without args")
    eq(r.ping(), True, "PING after unknown commands")
    expect_error(lambda: r.execute_command("GET"), ARITY_GET, "GET without a key")
    expect_error(lambda: r.execute_command("CLIENT", "FOO"), UNKNOWN_SUB, "unknown CLIENT subcommand")
    r3 = ctx.redis(protocol=3, single_connection_client=True)
    expect_error(lambda: r3.execute_command("NOSUCHCMD", "a", "b"), UNKNOWN_AB, "unknown command over RESP3")
    eq(r3.ping(), True, "RESP3 PING after an unknown command")
    # Inside MULTI the unknown command is refused at queueing time and EXEC aborts.
    eq(r.execute_command("MULTI"), b"OK", "MULTI")
    eq(r.execute_command("INCR", ctx.key("k")), b"QUEUED", "INCR queued")
    expect_error(lambda: r.execute_command("NOSUCHCMD", "a", "b"), UNKNOWN_AB, "unknown command inside MULTI")
    expect_error(lambda: r.execute_command("EXEC"), EXECABORT, "EXEC after a queueing error", ExecAbortError)
    eq(r.exists(ctx.key("k")), 0, "nothing of the aborted transaction ran")
    with r.pipeline(transaction=False) as pipe:
        pipe.execute_command("NOSUCHCMD", "a", "b").ping()
        replies = pipe.execute(raise_on_error=False)
    eq([str(x) if isinstance(x, Exception) else x for x in replies], [UNKNOWN_AB, True], "pipelined unknown command")


CASES = [wrongtype, wrongtype_async, unknown_command]
