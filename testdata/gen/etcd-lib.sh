# Shared by make-fixtures.sh and make-containers.sh: run one throwaway etcd
# member on 127.0.0.1 with free ports. The caller sets WORK (a temp dir this
# removes on exit) before sourcing; the trap stops our etcd whatever happens.
# shellcheck shell=bash

ETCD_PID=""

stop_etcd() {
    if [[ -n $ETCD_PID ]] && kill -0 "$ETCD_PID" 2>/dev/null; then
        kill -TERM "$ETCD_PID"       # SIGTERM = clean shutdown, bbolt closed properly
        wait "$ETCD_PID" 2>/dev/null || true
    fi
    ETCD_PID=""
}
cleanup() {
    stop_etcd
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_etcd BINARY NAME [DATA_DIR]: sets ETCD_PID, PORT (client) and DATA (data dir, by default
# $WORK/NAME). An existing DATA_DIR is restarted: etcd then takes the member from its WAL and
# ignores the --initial-* flags, so the new ports do not matter for a single member.
start_etcd() {
    local bin=$1 name=$2 peer
    PORT=$(free_port)
    peer=$(free_port)
    DATA=${3:-$WORK/$name}
    "$bin" --name "$name" --data-dir "$DATA" \
        --listen-client-urls "http://127.0.0.1:$PORT" --advertise-client-urls "http://127.0.0.1:$PORT" \
        --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "$name=http://127.0.0.1:$peer" --enable-v2=false \
        >>"$WORK/$name.log" 2>&1 &
    ETCD_PID=$!
    for _ in $(seq 100); do
        if curl -sf "http://127.0.0.1:$PORT/health" 2>/dev/null | grep -q '"health":"true"'; then
            echo "== $name: $("$bin" --version | head -1) on port $PORT"
            return 0
        fi
        if ! kill -0 "$ETCD_PID" 2>/dev/null; then
            cat "$WORK/$name.log" >&2
            echo "etcd $name exited during startup" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "etcd $name not healthy after 10s" >&2
    exit 1
}
