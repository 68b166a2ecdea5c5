#!/usr/bin/env bash
# The whole test suite, as CI runs it: install what tests need, then format,
# lint and test. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

etcdbin=$(scripts/test-deps.sh | tail -n 1)
export ETCD35_BIN_DIR="$etcdbin"

cargo fmt --check
cargo clippy --all-targets --all-features --quiet -- -D warnings
# --all-features: the fuzz corpora are replayed through the harnesses of src/fuzz.rs.
cargo test --all-targets --all-features --quiet 2>&1 | tee /tmp/etcd-audit-test.log
