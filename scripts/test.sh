#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing (PostgreSQL server, Redis,
# pgbench/psql), then format and lint checks, then every test of the workspace against real
# servers started by the tests/ harness on free ports.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/install.sh
install_test_dependencies

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p scaler --all-targets --features keda-grpc --locked -- -D warnings
echo "== cargo test"
# The fuzz harnesses (protocol/tests/*_fuzz.rs) run for a bounded number of iterations.
export FUZZ_ITERATIONS="${FUZZ_ITERATIONS:-20000}"
cargo test --workspace --locked --no-fail-fast -- --test-threads="${TEST_THREADS:-4}"
echo "== scaler: KEDA's External Scaler gRPC service (feature keda-grpc) with a python grpcio client"
cargo test --locked -p scaler --features keda-grpc --test keda_grpc
echo "== micro-benchmarks, each run once in test mode"
cargo test --locked -p benches --benches
echo "== benches: compare smoke runs (the full runs: benches/compare pooler|cacheproxy|memory|split)"
bash benches/compare pooler --smoke
bash benches/compare cacheproxy --smoke
bash benches/compare memory --smoke
bash benches/compare split --smoke
