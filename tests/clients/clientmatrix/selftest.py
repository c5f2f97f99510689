# Owns the runner's self-checks, run only when named (--only selftest): each must end as
# a FAIL by timeout, proving a hung endpoint cannot stall the matrix.
import socket
import threading

import psycopg

from .runner import case


@case("selftest.hang_query", explicit=True)
def hang_query(ctx):
    with psycopg.connect(ctx.conninfo(), autocommit=True) as conn:
        conn.execute("SELECT pg_sleep(60)")


@case("selftest.hang_login", explicit=True)
def hang_login(ctx):
    # A listener that accepts and never answers; no connect_timeout on purpose.
    listener = socket.create_server(("127.0.0.1", 0))
    held = []
    threading.Thread(target=lambda: held.append(listener.accept()), daemon=True).start()
    port = listener.getsockname()[1]
    psycopg.connect(f"host=127.0.0.1 port={port} user=x dbname=x")


CASES = [hang_query, hang_login]
