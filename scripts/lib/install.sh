# Installs the system packages the tests and the demo need, if they are missing.
# Sourced by scripts/test.sh and scripts/demo.sh. Debian/Ubuntu (apt-get) only.

pg_bindir() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$dir" ]; then echo "$dir"; elif command -v pg_config >/dev/null; then pg_config --bindir; fi
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "need root to run: $*" >&2; return 1
    fi
}

install_test_dependencies() {
    local missing=()
    local bindir
    bindir=$(pg_bindir)
    if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ] || [ ! -x "$bindir/pg_basebackup" ]; then
        missing+=(postgresql postgresql-contrib)
    fi
    command -v psql >/dev/null || missing+=(postgresql-client)
    command -v pgbench >/dev/null || missing+=(postgresql-contrib)
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v redis-cli >/dev/null || missing+=(redis-tools)
    command -v runuser >/dev/null || missing+=(util-linux)
    # The client matrix (tests/clients): pgjdbc from Debian, a Java runtime for it.
    [ -f /usr/share/java/postgresql.jar ] || missing+=(libpostgresql-jdbc-java)
    command -v java >/dev/null || missing+=(default-jre-headless)
    command -v python3 >/dev/null || missing+=(python3 python3-pip)
    # The scaler's compose actuator test: a Compose tool for the Docker Engine, when one runs.
    if docker info >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1 \
        && ! command -v docker-compose >/dev/null; then
        missing+=(docker-compose)
    fi
    if ! command -v cargo >/dev/null; then
        echo "cargo is required (install Rust with rustup: https://rustup.rs)" >&2
        return 1
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        echo "== installing: ${missing[*]}"
        as_root apt-get update -q
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
    install_client_matrix_drivers
    if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
        # initdb refuses to run as root; the harness runs it as this user.
        useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
}

# The Python drivers of the client matrix, at the versions tests/clients pins.
install_client_matrix_drivers() {
    local requirements
    requirements="$(dirname "${BASH_SOURCE[0]}")/../../tests/clients/requirements.txt"
    if python3 -c 'import psycopg, asyncpg, sqlalchemy, greenlet, redis, grpc, grpc_tools' 2>/dev/null \
        && python3 - "$requirements" <<'PY'
import sys
from importlib.metadata import version
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if "==" in line:
        name, pinned = line.split("==")
        if version(name.split("[")[0]) != pinned:
            sys.exit(1)
PY
    then
        return 0
    fi
    echo "== installing the client matrix drivers ($requirements)"
    python3 -m pip install -q --disable-pip-version-check -r "$requirements" \
        || python3 -m pip install -q --disable-pip-version-check --break-system-packages -r "$requirements"
}
