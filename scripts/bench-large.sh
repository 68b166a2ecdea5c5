#!/usr/bin/env bash
# Makes a large snapshot with a real etcd 3.5 (scripts/bench_fill.py: Secrets,
# half of them written twice, and ConfigMaps out of scope) and measures,
# side by side in one run with a warm page cache, `etcdutl snapshot status`
# against `etcd-audit inspect`, `scan` (table), `scan --format json`,
# `scan --history --residue`, a gzip'd copy (against `gzip -dc` plus the plain
# scan) and live mode (snapshot and range, when etcd was filled in this run):
# wall time, peak RSS and peak RssAnon (heap: the bound the scan promises).
# Cold-cache figures follow, labelled.
#
#   scripts/bench-large.sh [SECRETS=300000] [VALUE_BYTES=2048]
#
# 300k secrets of 2 KB give a snapshot of about 1.9 GB (with free pages).
# Loopback only. KEEP=DIR keeps the snapshot in DIR; SNAPSHOT=FILE measures an
# existing one without filling etcd again. BENCH_GCM_ONLY=1 puts every value
# under one aesgcm key: with 200,000 or more, the report must carry
# gcm-write-budget. BASELINE=BIN compares the full JSON report (entries,
# history and residue sorted by key) of the current build with that of BIN,
# an earlier build, by digest: they must be identical.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-300000}
SIZE=${2:-2048}
BIN=$(scripts/test-deps.sh | tail -n 1)
WORK=$(mktemp -d /tmp/etcd-audit-bench.XXXXXX)
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT

cargo build --release --quiet
key=$(python3 -c 'import base64; print(base64.b64encode(bytes(range(32))).decode())')
cat >"$WORK/config.yaml" <<YAML
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers:
  - aescbc: {keys: [{name: bench-cbc, secret: $key}]}
  - aesgcm: {keys: [{name: bench-gcm, secret: $key}]}
  - secretbox: {keys: [{name: bench-sb, secret: $key}]}
  - identity: {}
YAML
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }

live=""
if [ -n "${SNAPSHOT:-}" ]; then
  cp "$SNAPSHOT" "$WORK/large.db"
else
  port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  CP=$(port); PP=$(port)
  "$BIN/etcd" --name bench --data-dir "$WORK/data" --quota-backend-bytes $((16 << 30)) \
    --listen-client-urls "http://127.0.0.1:$CP" --advertise-client-urls "http://127.0.0.1:$CP" \
    --listen-peer-urls "http://127.0.0.1:$PP" --initial-advertise-peer-urls "http://127.0.0.1:$PP" \
    --initial-cluster "bench=http://127.0.0.1:$PP" >"$WORK/etcd.log" 2>&1 &
  PID=$!
  until curl -sf "http://127.0.0.1:$CP/health" | grep -q true; do sleep 0.2; done
  echo "writing $COUNT secrets of $SIZE bytes"
  python3 scripts/bench_fill.py "$CP" "$COUNT" "$SIZE"
  ctl() { ETCDCTL_API=3 "$BIN/etcdctl" --endpoints "127.0.0.1:$CP" "$@"; }
  ctl snapshot save "$WORK/large.db" >/dev/null 2>&1
  # Live figures, each against the etcdctl command that reads the same data.
  for what in "etcdctl snapshot save|ctl snapshot save $WORK/saved.db" \
      "etcd-audit scan etcd:// (snapshot mode)|target/release/etcd-audit scan etcd://127.0.0.1:$CP -c $WORK/config.yaml --live-mode snapshot" \
      "etcdctl get --prefix /registry/secrets/|ctl get --prefix /registry/secrets/" \
      "etcd-audit scan etcd:// (range mode)|target/release/etcd-audit scan etcd://127.0.0.1:$CP -c $WORK/config.yaml --live-mode range"; do
    label=${what%%|*}; cmd=${what#*|}
    [ "${cmd%% *}" = ctl ] && cmd="env ETCDCTL_API=3 $BIN/etcdctl --command-timeout=600s --endpoints 127.0.0.1:$CP ${cmd#ctl }"
    read -r t rss anon code < <(python3 scripts/peak_rss.py $cmd)
    [ "$code" -le 1 ] || { echo "$label exited $code"; exit 1; }
    rm -f "$WORK/saved.db"
    live+=$(printf '%-44s %10s %12s %14s' "$label" "$t" "$rss" "$anon")$'\n'
  done
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
fi
[ -n "${KEEP:-}" ] && cp "$WORK/large.db" "$KEEP/"

size=$(stat -c %s "$WORK/large.db")
DB="$WORK/large.db"
AUDIT=target/release/etcd-audit
CFG="$WORK/config.yaml"
row() { printf '%-44s %10s %12s %14s\n' "$@"; }
# measure LABEL CMD...: one warm-up, then the measured run.
measure() {
  local label=$1; shift
  python3 scripts/peak_rss.py "$@" >/dev/null
  read -r t rss anon code < <(python3 scripts/peak_rss.py "$@")
  [ "$code" -le 1 ] || { echo "$label exited $code"; exit 1; }
  row "$label" "$t" "$rss" "$anon"
  last=$t
}
gzip -1 -c "$DB" >"$WORK/large.db.gz"
summary=$("$AUDIT" scan "$DB" -c "$CFG" --format json --fail-on integrity \
  | python3 -c 'import json,sys; b=json.load(sys.stdin)["backups"][0]; print(len(b["entries"]), b["summary"], "findings:", {f["code"]: f["count"] for f in b["findings"]})')
printf '\nsnapshot: %s bytes (%s MiB); entries and summary: %s\n\n' "$size" $((size >> 20)) "$summary"
echo "warm page cache, one run each after a warm-up:"
row command "wall (s)" "peak RSS MiB" "peak anon MiB"
measure "etcdutl snapshot status" "$BIN/etcdutl" snapshot status "$DB"; status=$last
measure "openssl dgst -sha256 (the trailer's floor)" openssl dgst -sha256 "$DB"; sha=$last
measure "etcd-audit inspect" "$AUDIT" inspect "$DB"; inspect=$last
measure "etcd-audit scan (table)" "$AUDIT" scan "$DB" -c "$CFG"; table=$last
measure "etcd-audit scan --format json" "$AUDIT" scan "$DB" -c "$CFG" --format json; json=$last
measure "etcd-audit scan --history --residue (json)" "$AUDIT" scan "$DB" -c "$CFG" --format json --history --residue
measure "gzip -dc FILE.gz" gzip -dc "$WORK/large.db.gz"; gunzip=$last
measure "etcd-audit scan FILE.gz (table)" "$AUDIT" scan "$WORK/large.db.gz" -c "$CFG"; gz=$last
[ -n "$live" ] && printf '\nlive (the same data in the etcd that was filled):\n%s' "$live"
python3 - "$status" "$sha" "$inspect" "$table" "$json" "$gunzip" "$gz" <<'PY'
import sys
status, sha, inspect, table, json_, gunzip, gz = map(float, sys.argv[1:])
print(f"\nratios to etcdutl snapshot status: inspect {inspect/status:.2f}, scan {table/status:.2f}, "
      f"scan --format json {json_/status:.2f}; the SHA-256 alone {sha/status:.2f}")
print(f".gz: scan {gz:.2f} s against gzip -dc + scan {gunzip + table:.2f} s: {gz/(gunzip+table):.2f}")
PY
if [ -n "${BASELINE:-}" ]; then
  digest() { "$1" scan "$DB" -c "$CFG" --format json --fail-on integrity "${@:2}" | python3 scripts/report_digest.py; }
  for opts in "" "--history --residue"; do
    a=$(digest "$BASELINE" $opts); b=$(digest "$AUDIT" $opts)
    echo "report digest ${opts:-(plain)}: baseline $a, this build $b"
    [ "$a" = "$b" ] || { echo "the reports differ"; exit 1; }
  done
fi
if [ -w /proc/sys/vm/drop_caches ]; then
  echo; echo "cold page cache (caches dropped before each run):"
  drop_caches; read -r ut urss uanon _ < <(python3 scripts/peak_rss.py "$BIN/etcdutl" snapshot status "$DB")
  row "etcdutl snapshot status (cold)" "$ut" "$urss" "$uanon"
  drop_caches; read -r at arss aanon _ < <(python3 scripts/peak_rss.py "$AUDIT" scan "$DB" -c "$CFG" --format json)
  row "etcd-audit scan --format json (cold)" "$at" "$arss" "$aanon"
fi
