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
    if ! command -v cargo >/dev/null; then
        echo "cargo is required (install Rust with rustup: https://rustup.rs)" >&2
        return 1
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        echo "== installing: ${missing[*]}"
        as_root apt-get update -q
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
    if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
        # initdb refuses to run as root; the harness runs it as this user.
        useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
}
