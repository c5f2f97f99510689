# Owns the Redis matrix runner: case registry, per-case subprocess with a hard timeout, the
# shared Context handed to every case (clients, key prefix, redis-cli), result lines, sweep.
"""Runs every case in its own Python subprocess so that a hung client (or endpoint) is
killed after the case's timeout and reported as `FAIL name: timed out`, never a stuck run.
Mirrors tests/clients/clientmatrix/runner.py (the PostgreSQL matrix)."""

import argparse
import asyncio
import faulthandler
import importlib
import inspect
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import traceback

# Case modules, in run order. Each defines CASES = [case(...), ...].
MODULES = [
    "redismatrix.sync_basic",
    "redismatrix.sync_patterns",
    "redismatrix.async_cases",
    "redismatrix.cli_cases",
    "redismatrix.error_cases",
]

INSTALL_HINT = "pip install -r tests/clients/requirements.txt"
RESULT_MARK = "__REDIS_MATRIX_RESULT__"
# Every key of a run starts with KEY_ROOT; the sweep deletes `KEY_ROOT*:<run id>-*`.
KEY_ROOT = "rmx:"
# Databases a case may write to (the sweep looks at each).
SWEEP_DBS = (0, 3)


class Case:
    """One named check. `fn(ctx)` is a function or a coroutine function."""

    def __init__(self, name, fn, timeout=None):
        self.name = name
        self.group = name.split(".", 1)[0]
        self.fn = fn
        self.timeout = timeout


def case(name, timeout=None):
    """Decorator collecting a case; the module lists the results in CASES."""

    def wrap(fn):
        return Case(name, fn, timeout)

    return wrap


class Skip(Exception):
    """Raised by a case that cannot run here (reported as SKIP, not a failure)."""


class CheckFailed(AssertionError):
    pass


def eq(actual, expected, what):
    if actual != expected:
        a, e = repr(actual), repr(expected)
        raise CheckFailed(f"{what}: expected {e[:300]}, got {a[:300]}")


def check(condition, what):
    if not condition:
        raise CheckFailed(what)


def glob_escape(text):
    return re.sub(r"([\\*?\[\]])", r"\\\1", text)


class Context:
    """What a case needs: the endpoint, a key prefix of its own, client factories."""

    def __init__(self, args, case_name):
        self.host = args.host
        self.port = args.port
        self.password = args.password or None
        self.timeout = args.timeout
        self.run_id = args.run_id
        self.case_name = case_name
        # rmx:<case>:<run id>-<random>: ; unique per case run, swept by run id.
        self.prefix = f"{KEY_ROOT}{case_name}:{args.run_id}-{secrets.token_hex(4)}:"
        self.dbs = {0}
        self._clients = []

    # --- keys ----------------------------------------------------------------------------

    def key(self, tag):
        return f"{self.prefix}{tag}"

    def bkey(self, tag):
        """The key as bytes (what redis-py returns without decode_responses)."""
        return self.key(tag).encode() if isinstance(tag, str) else self.prefix.encode() + tag

    @property
    def pattern(self):
        """SCAN/KEYS pattern matching every key of this case."""
        return glob_escape(self.prefix) + "*"

    # --- clients -------------------------------------------------------------------------

    def kwargs(self, **extra):
        """redis-py connection arguments (blocking calls in the cases wait at most 5 s)."""
        params = dict(host=self.host, port=self.port, password=self.password)
        params.update(socket_connect_timeout=10, socket_timeout=15)
        params.update(extra)
        return params

    def redis(self, **extra):
        """A sync redis.Redis, closed after the case."""
        import redis

        client = redis.Redis(**self.kwargs(**extra))
        self._clients.append(client)
        return client

    def aredis(self, **extra):
        """A redis.asyncio.Redis; the case closes it (aclose) inside its event loop."""
        import redis.asyncio

        return redis.asyncio.Redis(**self.kwargs(**extra))

    def cli(self, *args, input=None, stdin=None, timeout=15):
        """redis-cli against the endpoint (password via REDISCLI_AUTH); `input`: text for its
        stdin, `stdin`: an open binary file. Text stdout/stderr; exit status != 0 fails."""
        exe = shutil.which("redis-cli")
        if not exe:
            raise CheckFailed("redis-cli is not installed (apt-get install -y redis-tools)")
        env = dict(os.environ)
        env.pop("REDISCLI_AUTH", None)
        if self.password:
            env["REDISCLI_AUTH"] = self.password
        cmd = [exe, "-h", self.host, "-p", str(self.port), *args]
        if input is None and stdin is None:
            stdin = subprocess.DEVNULL
        proc = subprocess.run(
            cmd,
            input=None if input is None else input.encode(),
            stdin=stdin,
            capture_output=True,
            timeout=timeout,
            env=env,
        )
        proc.stdout = proc.stdout.decode(errors="replace")
        proc.stderr = proc.stderr.decode(errors="replace")
        if proc.returncode != 0:
            raise CheckFailed(f"{' '.join(cmd[1:])} exited {proc.returncode}: {proc.stderr.strip()[:300]}")
        return proc

    # --- cleanup -------------------------------------------------------------------------

    def cleanup(self):
        """Deletes every key of this case (each database it used); closes its clients."""
        for client in self._clients:
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass
        left = 0
        for db in sorted(self.dbs):
            left += delete_matching(self, db, self.pattern)
        return left


def delete_matching(ctx, db, pattern):
    import redis

    client = redis.Redis(**ctx.kwargs(db=db, socket_timeout=10))
    try:
        keys = list(set(client.scan_iter(match=pattern, count=1000)))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
        return len(keys)
    finally:
        client.close()


# --- child: run exactly one case -----------------------------------------------------


def run_child(args):
    name = args.child
    if name == "__sweep__":
        return sweep(args)
    selected = {c.name: c for c in load_cases()[0]}
    if name not in selected:
        print(f"{RESULT_MARK} fail unknown case {name}", flush=True)
        return 1
    the_case = selected[name]
    timeout = case_timeout(the_case, args)
    # Stacks of every thread just before the parent kills a hung case; and should the
    # parent itself be gone, SIGALRM's default action ends this process anyway.
    faulthandler.dump_traceback_later(max(timeout - 1.5, 1.0), exit=False)
    signal.alarm(int(timeout) + 10)
    ctx = Context(args, name)
    outcome = "ok"
    try:
        if inspect.iscoroutinefunction(the_case.fn):
            asyncio.run(the_case.fn(ctx))
        else:
            the_case.fn(ctx)
    except Skip as e:
        outcome = f"skip {e}"
    except BaseException as e:  # noqa: BLE001 - every failure is a FAIL line
        traceback.print_exc()
        outcome = f"fail {type(e).__name__}: {one_line(e)}"
    finally:
        try:
            left = ctx.cleanup()
            if left and outcome == "ok":
                print(f"note: deleted {left} keys {name} left behind", flush=True)
        except Exception as e:  # noqa: BLE001
            if outcome == "ok":
                outcome = f"fail deleting keys: {type(e).__name__}: {one_line(e)}"
    faulthandler.cancel_dump_traceback_later()
    print(f"{RESULT_MARK} {outcome}", flush=True)
    return 0


def sweep(args):
    """Deletes leftover keys of this run (cases killed by their timeout)."""
    ctx = Context(args, "__sweep__")
    pattern = f"{KEY_ROOT}*:{args.run_id}-*"
    n = sum(delete_matching(ctx, db, pattern) for db in SWEEP_DBS)
    print(f"{RESULT_MARK} ok {n}", flush=True)
    return 0


def case_timeout(c, args):
    return c.timeout or args.timeout


def one_line(e):
    text = str(e).strip().replace("\n", " | ")
    return text[:400] if text else repr(e)


# --- parent -------------------------------------------------------------------------


def load_cases():
    """All cases, plus import errors per module (a missing client library)."""
    cases, errors = [], []
    for module in MODULES:
        try:
            cases.extend(importlib.import_module(module).CASES)
        except ImportError as e:
            if (e.name or "").startswith("redismatrix"):
                raise
            errors.append((module.rsplit(".", 1)[1], e))
    return cases, errors


def names_in(text):
    return [w.strip() for w in text.split(",") if w.strip()]


def select(cases, only):
    if not only:
        return list(cases)
    wanted = names_in(only)
    unknown = [w for w in wanted if not any(w in (c.name, c.group) for c in cases)]
    if unknown:
        raise SystemExit(f"unknown case or group: {', '.join(unknown)} (see --list)")
    return [c for c in cases if c.name in wanted or c.group in wanted]


def child_command(args, name):
    cmd = [sys.executable, os.path.abspath(sys.argv[0]), "--child", name]
    for key in ("host", "port", "password", "timeout", "run_id"):
        cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    return cmd


def run_in_child(args, name, timeout):
    """Returns (outcome, stdout lines, stderr text, seconds)."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
    start = time.monotonic()
    proc = subprocess.Popen(
        child_command(args, name),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        timed_out = True
    seconds = time.monotonic() - start
    lines = out.splitlines()
    result = [line for line in lines if line.startswith(RESULT_MARK)]
    others = [line for line in lines if not line.startswith(RESULT_MARK)]
    if timed_out:
        outcome = f"fail timed out after {timeout:g}s (hung; killed)"
    elif result:
        outcome = result[-1][len(RESULT_MARK) + 1 :]
    else:
        outcome = f"fail child exited with status {proc.returncode} without a result"
    return outcome, others, err, seconds


def run_parent(args):
    started = time.monotonic()
    cases, errors = load_cases()
    if errors:
        for module, e in errors:
            print(f"FAIL import {module}: {e} (install the clients: {INSTALL_HINT})", flush=True)
        print(f"redis matrix: 0 passed, {len(errors)} failed, 0 skipped", flush=True)
        return 1
    if args.list:
        for c in cases:
            print(c.name)
        return 0
    chosen = select(cases, args.only)
    skip = names_in(args.skip)
    print(
        f"redis client matrix: {args.host}:{args.port}, {len(chosen)} cases, "
        f"{args.timeout:g}s per case",
        flush=True,
    )
    passed = failed = skipped = 0
    failures = []
    for c in chosen:
        if c.name in skip or c.group in skip:
            print(f"SKIP {c.name}: --skip", flush=True)
            skipped += 1
            continue
        timeout = case_timeout(c, args)
        outcome, extra, err, seconds = run_in_child(args, c.name, timeout)
        for line in extra:
            print(f"    {line}", flush=True)
        if outcome == "ok":
            passed += 1
            print(f"PASS {c.name} ({seconds:.2f}s)", flush=True)
        elif outcome.startswith("skip"):
            skipped += 1
            print(f"SKIP {c.name}: {outcome[5:]}", flush=True)
        else:
            failed += 1
            failures.append(c.name)
            print(f"FAIL {c.name}: {outcome[5:]} ({seconds:.2f}s)", flush=True)
            if args.verbose or "timed out" in outcome:
                for line in err.strip().splitlines()[-40:]:
                    print(f"    {line}", flush=True)
    if chosen:
        outcome, _, err, _ = run_in_child(args, "__sweep__", 30)
        if not outcome.startswith("ok"):
            print(f"warning: sweeping leftover keys: {outcome} {err.strip()[-300:]}", flush=True)
        elif outcome != "ok 0":
            print(f"swept {outcome[3:]} leftover keys of killed cases", flush=True)
    if failures:
        print(f"failed: {', '.join(failures)}", flush=True)
    total = time.monotonic() - started
    print(f"redis matrix: {passed} passed, {failed} failed, {skipped} skipped ({total:.1f}s)", flush=True)
    return 1 if failed else 0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Real-client matrix (redis-py, redis-cli) against a Redis endpoint.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=6379)
    p.add_argument("--password", default="", help="AUTH password (default user); none when empty")
    p.add_argument("--only", default="", help="comma list of case names or groups (sync, async, cli, errors)")
    p.add_argument("--skip", default="", help="comma list of cases or groups not to run (known endpoint limits)")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds per case (default 20)")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--verbose", "-v", action="store_true", help="print tracebacks of failures")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--run-id", default=str(os.getpid()), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return run_child(args)
    return run_parent(args)
