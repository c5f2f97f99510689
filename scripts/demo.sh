#!/usr/bin/env bash
# Local demo: PostgreSQL primary + replica, Redis master + replica + 3 Sentinels, pooler and cacheproxy,
# all on free ports of 127.0.0.1, printed as connection strings. Ctrl-C stops and removes
# everything. Installs PostgreSQL and Redis if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/install.sh
install_test_dependencies
exec cargo run --release -q -p integration-tests --bin demo
