#!/usr/bin/env bash
# The whole test suite, as CI runs it: install what tests need, then format,
# lint and test. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

etcdbin=$(scripts/test-deps.sh | tail -n 1)
export ETCD35_BIN_DIR="$etcdbin"

cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --all-targets --quiet 2>&1 | tee /tmp/etcd-audit-test.log
