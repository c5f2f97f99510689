#!/usr/bin/env python3
# Owns the command line of the Redis differential tester: per seed, run the generated
# script against --direct and then --proxy, compare, print failures and the summary line.
"""python3 tests/clients/redis_differential.py --direct HOST:PORT --proxy HOST:PORT
[--seeds 60] [--steps 40] [--clients 4] [--seed-start 0] [--password PW] [--timeout 5]
[--show-script] [-v]

Modules (tests/clients/redisdiff/): resp.py wire format and reply reader, commands.py data
command generators, blocking.py blocking commands and streams, pubsub.py the Pub/Sub model,
script.py per-client session state and steps, runner.py running a script on one endpoint,
compare.py normalisation and the first difference."""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from redisdiff.compare import first_difference  # noqa: E402
from redisdiff.runner import Endpoint, SetupError, run  # noqa: E402
from redisdiff.script import generate  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(description="Compare Redis replies directly and through a proxy.")
    p.add_argument("--direct", required=True, help="HOST:PORT of the Redis server")
    p.add_argument("--proxy", required=True, help="HOST:PORT of the proxy in front of it")
    p.add_argument("--seeds", type=int, default=60, help="number of seeds (default 60)")
    p.add_argument("--steps", type=int, default=40, help="steps per client (default 40)")
    p.add_argument("--clients", type=int, default=4, help="clients per seed (default 4)")
    p.add_argument("--seed-start", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--password", default=None, help="AUTH password for both endpoints")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per reply (default 5)")
    p.add_argument("--show-script", action="store_true", help="print each seed's script")
    p.add_argument("-v", "--verbose", action="store_true", help="print a line per passing seed")
    args = p.parse_args(argv)
    if args.seeds < 0 or args.steps < 1 or args.clients < 1:
        p.error("--seeds must be >= 0, --steps and --clients >= 1")
    return args


def print_script(script):
    for c, j, step in script.ordered():
        cmds = " | ".join(repr(cmd) + ("" if (cmd.nrep, cmd.npush) == (1, 0) else
                                       " [%d+%d frames]" % (cmd.nrep, cmd.npush))
                          for cmd in step.cmds)
        deliver = "".join("; then %d from client %d" % (n, x) for x, n in step.deliver)
        print("  client %d step %d db %d RESP%d: %s%s" % (c, j, step.db, step.proto, cmds,
                                                           deliver))


def run_seed(seed, args, direct, proxy):
    """Returns None when both endpoints answered alike, else the report lines."""
    script = generate(seed, args.clients, args.steps)
    if args.show_script:
        print("seed %d script:" % seed)
        print_script(script)
    results = []
    for name, endpoint in (("direct", direct), ("proxy", proxy)):
        try:
            results.append(run(endpoint, script))
        except SetupError as err:
            return ["%s: %s" % (name, err)]
    return first_difference(script, results[0], results[1])


def main(argv=None):
    args = parse_args(argv)
    try:
        direct = Endpoint(args.direct, args.password, args.timeout)
        proxy = Endpoint(args.proxy, args.password, args.timeout)
    except ValueError as err:
        print("redis_differential: %s" % err, file=sys.stderr)
        return 2
    failures = 0
    started = time.monotonic()
    for seed in range(args.seed_start, args.seed_start + args.seeds):
        t0 = time.monotonic()
        lines = run_seed(seed, args, direct, proxy)
        if lines:
            failures += 1
            print("FAIL seed %d: %s" % (seed, lines[0]))
            for line in lines[1:]:
                print(line)
            print("  rerun: --seed-start %d --seeds 1 --clients %d --steps %d"
                  % (seed, args.clients, args.steps))
        elif args.verbose:
            print("ok seed %d (%.2fs)" % (seed, time.monotonic() - t0))
        sys.stdout.flush()
    steps = args.seeds * args.clients * args.steps
    print("elapsed %.1f s" % (time.monotonic() - started))
    print("differential: %d seeds, %d steps, %d failures" % (args.seeds, steps, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
