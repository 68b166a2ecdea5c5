#!/usr/bin/env bash
# Object storage download speed, side by side in one run: `aws s3 cp` (PyPI
# awscli) against `etcd-audit scan s3://…` with one connection and with
# several (ranged GETs of 32 MiB parts), from the same local S3 server (moto
# on 127.0.0.1), plus the scan of the same file on local disk for reference.
#
#   scripts/bench-s3.sh FILE [CONFIG]
#
# FILE: a snapshot (e.g. one kept by `KEEP=DIR scripts/bench-large.sh`).
# moto holds the object in memory. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
FILE=${1:?usage: scripts/bench-s3.sh FILE [CONFIG]}
CFG=${2:-}
command -v aws >/dev/null || python3 -m pip install --quiet awscli
WORK=$(mktemp -d /tmp/etcd-audit-bench-s3.XXXXXX)
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
cargo build --release --quiet
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m moto.server -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
PID=$!
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT"
until curl -sf "$AWS_ENDPOINT_URL" >/dev/null 2>&1; do sleep 0.2; done
aws --endpoint-url "$AWS_ENDPOINT_URL" s3 mb s3://bench >/dev/null
aws --endpoint-url "$AWS_ENDPOINT_URL" s3 cp --quiet "$FILE" s3://bench/snapshot.db
args=(--fail-on integrity)
[ -n "$CFG" ] && args+=(-c "$CFG")
row() { printf '%-48s %10s %12s %14s\n' "$@"; }
measure() {
  local label=$1; shift
  read -r t rss anon code < <(python3 scripts/peak_rss.py "$@")
  [ "$code" = 0 ] || { echo "$label exited $code"; exit 1; }
  row "$label" "$t" "$rss" "$anon"
}
printf 'object: %s bytes\n' "$(stat -c %s "$FILE")"
row command "wall (s)" "peak RSS MiB" "peak anon MiB"
measure "aws s3 cp (to local disk)" aws --endpoint-url "$AWS_ENDPOINT_URL" s3 cp --quiet s3://bench/snapshot.db "$WORK/copy.db"
rm -f "$WORK/copy.db"
for n in 1 4; do
  measure "etcd-audit scan s3://… --connections $n" target/release/etcd-audit scan s3://bench/snapshot.db --connections "$n" "${args[@]}"
done
measure "etcd-audit scan FILE (local, for reference)" target/release/etcd-audit scan "$FILE" "${args[@]}"
