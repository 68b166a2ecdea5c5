#!/usr/bin/env bash
# The whole test suite, as CI runs it: install what tests need, then format,
# lint and test. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

etcdbin=$(scripts/test-deps.sh | tail -n 1)
export ETCD35_BIN_DIR="$etcdbin"

cargo fmt --check
cargo clippy --all-targets --all-features --quiet -- -D warnings
# The container image (a static release binary, buildah FROM scratch): built here on both cores
# rather than inside the test that checks it (tests/integration/image.rs finds it up to date).
scripts/image.sh localhost/etcd-audit:test >/dev/null
# --all-features: the fuzz corpora are replayed through the harnesses of src/fuzz.rs.
cargo test --all-targets --all-features --quiet 2>&1 | tee /tmp/etcd-audit-test.log
