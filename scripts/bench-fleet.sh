#!/usr/bin/env bash
# Fleet sweep throughput: OBJECTS objects (default 2,000) of the 50 real
# snapshots of testdata/gen/make-fleet.sh under one prefix of a local S3
# server (moto), swept into a fresh PostgreSQL catalog (a server started
# here, in a temp dir) by 1, 2 and 4 shard workers at once; and by one
# worker into a redb file, and a rerun that finds everything recorded.
# Prints objects/second side by side, measured in one run (wall clock of
# the slowest worker), and the CPU the workers themselves used (user +
# system, all workers): objects per etcd-audit CPU-second is what a worker
# costs once the object store and the database are elsewhere.
#
#   scripts/bench-fleet.sh [OBJECTS=2000]
set -euo pipefail
cd "$(dirname "$0")/.."
OBJECTS=${1:-2000}
scripts/test-deps.sh >/dev/null
cargo build --release --quiet
BIN=$PWD/target/release/etcd-audit
WORK=$(mktemp -d /tmp/etcd-audit-fleet-bench.XXXXXX)
chmod 755 "$WORK"
PG_PID=""
cleanup() {
    [ -n "$PG_PID" ] && kill -QUIT "$PG_PID" 2>/dev/null
    exec 3>&- 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

testdata/gen/make-fleet.sh "$WORK/fleet" >/dev/null

# PostgreSQL refuses root: run it as the postgres user then.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
mkdir -p "$WORK/pg" && [ "$(id -u)" = 0 ] && chown postgres: "$WORK/pg"
as_pg "$pgbin/initdb" -D "$WORK/pg/data" -U etcd_audit --auth=trust -E UTF8 --no-sync >/dev/null
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg "$pgbin/postgres" -D "$WORK/pg/data" -h 127.0.0.1 -p "$port" -k "$WORK/pg" \
    -c fsync=off -c synchronous_commit=off >"$WORK/pg.log" 2>&1 &
PG_PID=$!
until "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$port"; do sleep 0.2; done

# The S3 server prints its endpoint, then serves until its stdin closes.
exec 3> >(python3 tests/support/s3_server.py testdata fleet "$WORK/fleet" "$OBJECTS" >"$WORK/s3.json" 2>/dev/null)
until [ -s "$WORK/s3.json" ]; do sleep 0.2; done
export AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION=us-east-1
AWS_ENDPOINT_URL=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["endpoint"])' <"$WORK/s3.json")
AWS_ACCESS_KEY_ID=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["access_key"])' <"$WORK/s3.json")
AWS_SECRET_ACCESS_KEY=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["secret_key"])' <"$WORK/s3.json")

sweep() {  # sweep CATALOG WORKERS: prints wall seconds of the slowest, and the workers' CPU seconds
    local catalog=$1 workers=$2 start pids=()
    start=$(date +%s.%N)
    for i in $(seq 0 $((workers - 1))); do
        local shard=()
        [ "$workers" -gt 1 ] && shard=(--shard "$i/$workers")
        /usr/bin/time -f '%U %S' -o "$WORK/cpu-$i" \
            "$BIN" scan --quiet -c "$WORK/fleet/config.yaml" "--catalog=$catalog" "${shard[@]}" \
            s3://backups/fleet/ >/dev/null 2>"$WORK/sweep-$i.log" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || [ $? -le 1 ]; done
    python3 -c "import time; print(f'{time.time() - $start:.2f}')"
    cat "$WORK"/cpu-* | awk '{ cpu += $1 + $2 } END { printf "%.2f\n", cpu }'
    rm -f "$WORK"/cpu-*
}

printf '%s objects (%s distinct real snapshots), %s cores\n\n' "$OBJECTS" \
    "$(ls "$WORK/fleet"/*.db | wc -l)" "$(nproc)"

printf '| catalog | workers | wall (s) | objects/s | workers CPU (s) | objects per CPU-second |\n|---|---|---|---|---|---|\n'
row() {  # row LABEL WORKERS "WALL CPU"
    set -- "$1" "$2" $3
    printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$(python3 -c "print(round($OBJECTS / $3))")" \
        "$4" "$(python3 -c "print(round($OBJECTS / $4))")"
}
t=$(sweep "$WORK/one.redb" 1); row "redb file" 1 "$t"
t=$(sweep "$WORK/one.redb" 1); row "redb file, rerun (all recorded)" 1 "$t"
for w in 1 2 4; do
    as_pg "$pgbin/createdb" -h 127.0.0.1 -p "$port" -U etcd_audit "w$w"
    t=$(sweep "postgres://etcd_audit@127.0.0.1:$port/w$w?sslmode=disable" "$w"); row PostgreSQL "$w" "$t"
done
t=$(sweep "postgres://etcd_audit@127.0.0.1:$port/w4?sslmode=disable" 4); row "PostgreSQL, rerun (all recorded)" 4 "$t"
