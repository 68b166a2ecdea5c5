#!/usr/bin/env bash
# Makes a large snapshot with a real etcd 3.5 and compares `etcd-audit scan`
# (decrypting every secret, JSON with every entry) with `etcdutl snapshot
# status` on the same file: wall time, peak RSS and peak RssAnon. Also
# measures live mode (the snapshot streamed from the running etcd).
#
#   scripts/bench-large.sh [SECRETS=300000] [VALUE_BYTES=2048]
#
# 300k secrets of 2 KB give a snapshot of about 1.2 GB. Loopback only.
# KEEP=DIR keeps the snapshot in DIR; SNAPSHOT=FILE measures an existing one
# (from an earlier KEEP run) without filling etcd again. BENCH_GCM_ONLY=1 puts
# every value under one aesgcm key: with 200,000 or more, the report must
# carry gcm-write-budget (printed with the findings below).
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
scan() { python3 scripts/peak_rss.py target/release/etcd-audit scan "$1" -c "$WORK/config.yaml" --format json --fail-on integrity; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }

live="-"
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
  ETCDCTL_API=3 "$BIN/etcdctl" --endpoints "127.0.0.1:$CP" snapshot save "$WORK/large.db" >/dev/null 2>&1
  read -r lt lrss lanon lcode < <(scan "etcd://127.0.0.1:$CP")
  [ "$lcode" = 0 ] || { echo "etcd-audit live scan exited $lcode"; exit 1; }
  live="$lt $lrss $lanon"
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
fi
[ -n "${KEEP:-}" ] && cp "$WORK/large.db" "$KEEP/"

size=$(stat -c %s "$WORK/large.db")
drop_caches
read -r ut urss uanon _ < <(python3 scripts/peak_rss.py "$BIN/etcdutl" snapshot status "$WORK/large.db")
drop_caches
read -r at arss aanon code < <(scan "$WORK/large.db")
[ "$code" = 0 ] || { echo "etcd-audit scan exited $code"; exit 1; }
summary=$(target/release/etcd-audit scan "$WORK/large.db" -c "$WORK/config.yaml" --format json --fail-on integrity \
  | python3 -c 'import json,sys; b=json.load(sys.stdin)["backups"][0]; print(len(b["entries"]), b["summary"], "findings:", {f["code"]: f["count"] for f in b["findings"]})')

printf '\nsnapshot: %s bytes (%s MiB); entries and summary: %s\n' "$size" $((size >> 20)) "$summary"
printf '%-40s %10s %12s %14s\n' command "wall (s)" "peak RSS MiB" "peak anon MiB"
printf '%-40s %10s %12s %14s\n' "etcdutl snapshot status" "$ut" "$urss" "$uanon"
printf '%-40s %10s %12s %14s\n' "etcd-audit scan FILE --format json" "$at" "$arss" "$aanon"
[ "$live" != "-" ] && printf '%-40s %10s %12s %14s\n' "etcd-audit scan etcd://… (live snapshot)" $live
python3 -c "print(f'ratio scan/status wall time: {$at/$ut:.2f}')"
