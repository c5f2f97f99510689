# Owns the pgjdbc case group: runs JdbcMatrix.java (single-file source launch) and relays
# its ok/FAIL lines; SKIP only when java or the driver jar is missing.
import os
import shutil
import subprocess
import sys

from .runner import Skip, case

JAVA_SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "JdbcMatrix.java")
APT_HINT = "apt-get install default-jre-headless libpostgresql-jdbc-java"


# JdbcMatrix applies --timeout to each of its cases; this bounds the whole group.
@case("jdbc", timeout=lambda per_case: per_case * 15 + 60)
def jdbc(ctx):
    args = ctx.args
    java = shutil.which(args.java)
    if java is None or not os.path.isfile(args.jdbc_jar):
        what = f"java ({args.java}) or postgresql.jar ({args.jdbc_jar}) missing; {APT_HINT}"
        if args.require_jdbc:
            raise RuntimeError(what)
        raise Skip(what)
    cmd = [
        java,
        "-Xss1m",
        "-cp",
        args.jdbc_jar,
        JAVA_SOURCE,
        "--host", ctx.host,
        "--port", str(ctx.port),
        "--user", ctx.user,
        "--password", ctx.password,
        "--dbname", ctx.dbname,
        "--mode", ctx.mode,
        "--timeout", str(int(args.timeout)),
        "--run-id", ctx.run_id,
    ]
    if args.jdbc_only:
        cmd += ["--only", args.jdbc_only]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    failed = []
    for line in proc.stdout:
        line = line.rstrip("\n")
        print(f"  {line}", flush=True)
        if line.startswith("FAIL "):
            failed.append(line[5:].split(":", 1)[0])
    code = proc.wait()
    sys.stdout.flush()
    if code != 0:
        raise RuntimeError(f"JdbcMatrix exited {code}; failed: {', '.join(failed) or '(see output)'}")


CASES = [jdbc]
