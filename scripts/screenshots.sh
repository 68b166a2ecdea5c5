#!/usr/bin/env bash
# The HTML report's screenshots in docs/images/ (desktop and phone widths), from the report
# test's generated cluster plus the three-cluster sweep, rendered by headless Chromium.
#   scripts/screenshots.sh      (needs what scripts/test-deps.sh installs; ~20 s)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/etcd-audit-shots.XXXXXX)
trap 'rm -rf "$work"' EXIT
testdata/gen/make-report.sh "$work" 400 >/dev/null
cargo build --quiet
cp -r testdata/clusters "$work/clusters"
bin=$PWD/target/debug/etcd-audit
(cd "$work" && "$bin" scan report.db clusters -c config.yaml -c clusters/config.yaml --history --residue \
  --expect-every 1h --format html -o report.html --quiet || true)
mkdir -p docs/images
for shot in desktop:1280,2400 phone:390,2400; do
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/profile-${shot%%:*}" --window-size="${shot#*:}" --hide-scrollbars \
    --screenshot="docs/images/report-${shot%%:*}.png" "file://$work/report.html" 2>/dev/null
done
ls -la docs/images
