# Owns the matrix runner: case registry, per-case subprocess with a hard timeout, the
# shared Context handed to every case, result lines, and the leftover-table sweep.
"""Runs every case in its own Python subprocess so that a hung driver (or endpoint) is
killed after the case's timeout and reported as `FAIL name: timed out`, never a stuck run."""

import argparse
import asyncio
import faulthandler
import importlib
import inspect
import os
import re
import signal
import subprocess
import sys
import time
import traceback
import urllib.parse

# Case modules, in run order. Each defines CASES = [case(...), ...].
MODULES = [
    "clientmatrix.psycopg_sync",
    "clientmatrix.psycopg_pipeline",
    "clientmatrix.psycopg_async",
    "clientmatrix.asyncpg_cases",
    "clientmatrix.sqlalchemy_cases",
    "clientmatrix.jdbc",
    "clientmatrix.selftest",
]

INSTALL_HINT = "pip install -r tests/clients/requirements.txt"
RESULT_MARK = "__MATRIX_RESULT__"


class Case:
    """One named check. `fn(ctx)` is a function or a coroutine function."""

    def __init__(self, name, fn, timeout=None, modes=None, explicit=False):
        self.name = name
        self.group = name.split(".", 1)[0]
        self.fn = fn
        # Seconds, or a function of --timeout (a group of cases run by one child).
        self.timeout = timeout
        # Endpoint modes the case applies to (None: all).
        self.modes = modes
        # Only run when named in --only (the selftest hang).
        self.explicit = explicit


def case(name, timeout=None, modes=None, explicit=False):
    """Decorator collecting a case; the module lists the results in CASES."""

    def wrap(fn):
        return Case(name, fn, timeout, modes, explicit)

    return wrap


class Skip(Exception):
    """Raised by a case that cannot run here (reported as SKIP, not a failure)."""


class CheckFailed(AssertionError):
    pass


def eq(actual, expected, what):
    if actual != expected:
        raise CheckFailed(f"{what}: expected {expected!r}, got {actual!r}")


def check(condition, what):
    if not condition:
        raise CheckFailed(what)


class Context:
    """What a case needs: the endpoint, the mode, unique table names and setup helpers."""

    def __init__(self, args, case_name):
        self.host = args.host
        self.port = args.port
        self.user = args.user
        self.password = args.password
        self.dbname = args.dbname
        self.mode = args.mode
        self.run_id = args.run_id
        self.case_name = case_name
        self.timeout = args.timeout
        self.args = args
        self.tables = []

    @property
    def split(self):
        return self.mode == "split"

    @property
    def session(self):
        return self.mode == "session"

    # --- connection parameters per driver -------------------------------------------

    def conninfo(self, **extra):
        """libpq conninfo for psycopg."""
        from psycopg.conninfo import make_conninfo

        params = dict(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=self.dbname,
            connect_timeout=10,
            application_name="client-matrix",
        )
        params.update(extra)
        return make_conninfo(**params)

    def url(self, scheme):
        """SQLAlchemy URL, e.g. scheme `postgresql+psycopg`."""
        user = urllib.parse.quote(self.user, safe="")
        password = urllib.parse.quote(self.password, safe="")
        return f"{scheme}://{user}:{password}@{self.host}:{self.port}/{self.dbname}"

    def asyncpg_kwargs(self, **extra):
        kwargs = dict(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=self.dbname,
            timeout=10,
        )
        kwargs.update(extra)
        return kwargs

    # --- tables ------------------------------------------------------------------------

    def table(self, tag="t"):
        """A table name unique to this run and case; dropped after the case."""
        base = re.sub(r"[^a-z0-9]+", "_", self.case_name.lower())[:36]
        name = f"cm_{base}_{tag}_{self.run_id}"[:63]
        if name not in self.tables:
            self.tables.append(name)
        return name

    def primary(self, sql):
        """In split mode, pins a cross-connection verification read to the primary
        (another connection's writes are not covered by read-your-writes)."""
        return f"/* pooler: primary */ {sql}" if self.split else sql

    def setup(self, *statements):
        """Runs DDL through the endpoint (psycopg, autocommit); in split mode waits until
        the replica sees every table of this case, so reads routed there find them."""
        import psycopg

        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            for sql in statements:
                conn.execute(sql)
        if self.split:
            self.wait_on_replica(self.tables)

    def wait_on_replica(self, tables, limit=15.0):
        import psycopg

        deadline = time.monotonic() + limit
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            while True:
                # Answered by the replica itself: a lagging replica is skipped by the
                # pooler, and the primary would answer instead.
                sql = "/* pooler: replica */ SELECT to_regclass(%s) IS NOT NULL AND pg_is_in_recovery()"
                missing = [t for t in tables if not conn.execute(sql, [t]).fetchone()[0]]
                if not missing:
                    return
                if time.monotonic() > deadline:
                    raise CheckFailed(f"tables {missing} not visible on the replica after {limit}s")
                time.sleep(0.05)

    def drop_tables(self):
        if not self.tables:
            return
        import psycopg

        with psycopg.connect(self.conninfo(connect_timeout=5), autocommit=True) as conn:
            for t in reversed(self.tables):
                conn.execute(f"DROP TABLE IF EXISTS {t} CASCADE")


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
            ctx.drop_tables()
        except Exception as e:  # noqa: BLE001
            if outcome == "ok":
                outcome = f"fail dropping tables: {type(e).__name__}: {one_line(e)}"
    faulthandler.cancel_dump_traceback_later()
    print(f"{RESULT_MARK} {outcome}", flush=True)
    return 0


def sweep(args):
    """Drops leftover tables of this run (cases killed by their timeout)."""
    import psycopg

    ctx = Context(args, "__sweep__")
    pattern = f"cm\\_%\\_{args.run_id}"
    with psycopg.connect(ctx.conninfo(connect_timeout=5), autocommit=True) as conn:
        rows = conn.execute(
            ctx.primary("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE %s"),
            [pattern],
        ).fetchall()
        for (t,) in rows:
            conn.execute(f'DROP TABLE IF EXISTS "{t}" CASCADE')
    print(f"{RESULT_MARK} ok", flush=True)
    return 0


def case_timeout(c, args):
    if callable(c.timeout):
        return c.timeout(args.timeout)
    return c.timeout or args.timeout


def one_line(e):
    text = str(e).strip().replace("\n", " | ")
    return text[:400] if text else repr(e)


# --- parent -------------------------------------------------------------------------


def load_cases():
    """All cases, plus import errors per module (a missing driver)."""
    cases, errors = [], []
    for module in MODULES:
        try:
            cases.extend(importlib.import_module(module).CASES)
        except ImportError as e:
            if (e.name or "").startswith("clientmatrix"):
                raise
            errors.append((module.rsplit(".", 1)[1], e))
    return cases, errors


def select(cases, only):
    if not only:
        return [c for c in cases if not c.explicit]
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    unknown = [w for w in wanted if not any(w in (c.name, c.group) for c in cases)]
    if unknown:
        raise SystemExit(f"unknown case or group: {', '.join(unknown)} (see --list)")
    return [c for c in cases if c.name in wanted or c.group in wanted]


def skipped_by_flag(c, skip):
    return any(w.strip() in (c.name, c.group) for w in skip.split(",") if w.strip())


def child_command(args, name):
    cmd = [sys.executable, os.path.abspath(sys.argv[0]), "--child", name]
    for key in ("host", "port", "user", "password", "dbname", "mode", "timeout", "run_id", "jdbc_jar", "java", "jdbc_only"):
        cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    if args.require_jdbc:
        cmd.append("--require-jdbc")
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
    cases, errors = load_cases()
    if errors:
        for module, e in errors:
            print(f"FAIL import {module}: {e} (install the drivers: {INSTALL_HINT})", flush=True)
        print(f"matrix: 0 passed, {len(errors)} failed", flush=True)
        return 1
    if args.list:
        for c in cases:
            flags = f" (modes: {', '.join(c.modes)})" if c.modes else ""
            flags += " (only when named)" if c.explicit else ""
            print(f"{c.name}{flags}")
        return 0
    chosen = select(cases, args.only)
    print(
        f"client matrix: {args.host}:{args.port} db={args.dbname} user={args.user} "
        f"mode={args.mode}, {len(chosen)} cases, {args.timeout:g}s per case",
        flush=True,
    )
    passed = failed = skipped = 0
    failures = []
    for c in chosen:
        if skipped_by_flag(c, args.skip):
            print(f"SKIP {c.name}: --skip", flush=True)
            skipped += 1
            continue
        if c.modes and args.mode not in c.modes:
            print(f"SKIP {c.name}: only in mode {'/'.join(c.modes)}", flush=True)
            skipped += 1
            continue
        timeout = case_timeout(c, args)
        outcome, extra, err, seconds = run_in_child(args, c.name, timeout)
        for line in extra:
            print(line, flush=True)
        if outcome == "ok":
            passed += 1
            print(f"ok {c.name} ({seconds:.2f}s)", flush=True)
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
        if outcome != "ok":
            print(f"warning: sweeping leftover tables: {outcome} {err.strip()[-300:]}", flush=True)
    if failures:
        print(f"failed: {', '.join(failures)}", flush=True)
    print(f"matrix: {passed} passed, {failed} failed, {skipped} skipped", flush=True)
    return 1 if failed else 0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Real-driver client matrix against a PostgreSQL endpoint.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5432)
    p.add_argument("--user", default="postgres")
    p.add_argument("--password", default="")
    p.add_argument("--dbname", default="postgres")
    p.add_argument("--only", default="", help="comma list of case names or groups (psycopg, asyncpg, jdbc, ...)")
    p.add_argument("--skip", default="", help="comma list of cases or groups not to run (known endpoint limits)")
    p.add_argument(
        "--mode",
        choices=["session", "transaction", "split"],
        default="session",
        help="what the endpoint is: session (also a direct PostgreSQL), a transaction-mode "
        "pooler, or a transaction-mode pooler splitting reads to replicas",
    )
    p.add_argument("--timeout", type=float, default=20.0, help="seconds per case (default 20)")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--verbose", "-v", action="store_true", help="print tracebacks of failures")
    p.add_argument("--jdbc-jar", default=os.environ.get("PGJDBC_JAR", "/usr/share/java/postgresql.jar"))
    p.add_argument("--java", default=os.environ.get("JAVA", "java"))
    p.add_argument("--jdbc-only", default="", help="comma list of JdbcMatrix cases (with --only jdbc)")
    p.add_argument("--require-jdbc", action="store_true", help="FAIL (not SKIP) jdbc when java or the jar is missing")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--run-id", default=str(os.getpid()), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return run_child(args)
    return run_parent(args)
