#!/usr/bin/env bash
# A structure-aware mutation campaign over real snapshots and a real WAL:
# N inputs (default 5000), each audited by the release binary in a process of
# its own; every run must exit 0, 1 or 2 within 10 s (examples/mutation_campaign.rs).
#   scripts/mutation-campaign.sh [N] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
cargo build --release --quiet --features fuzzing --example mutation_campaign
exec target/release/examples/mutation_campaign target/release/etcd-audit "${1:-5000}" "${2:-1592280045}"
