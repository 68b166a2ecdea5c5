#!/usr/bin/env bash
# Runs scripts/bench-large.sh at several sizes (default: 40k, 80k, 160k and
# 320k Secrets of 2 KB, about 0.25, 0.5, 1 and 2 GB of snapshot) and sums up
# wall time per GB of `scan --format json` and peak RssAnon for each: cost
# should grow linearly and memory stay flat. Logs go to $OUT (default
# /tmp/etcd-audit-bench-sizes).
#
#   scripts/bench-sizes.sh [SECRETS...]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/etcd-audit-bench-sizes}
mkdir -p "$OUT"
[ $# -gt 0 ] || set -- 40000 80000 160000 320000
for n in "$@"; do
  echo "== $n Secrets"
  scripts/bench-large.sh "$n" 2048 | tee "$OUT/$n.log"
done
python3 - "$OUT" "$@" <<'PY'
import re, sys
out, counts = sys.argv[1], sys.argv[2:]
print(f"\n{'secrets':>8} {'snapshot GB':>11} {'json s':>7} {'s per GB':>8} {'anon MiB':>8} {'table s':>7} {'status s':>8} {'hist+res anon':>13}")
for n in counts:
    text = open(f"{out}/{n}.log").read()
    size = int(re.search(r"snapshot: (\d+) bytes", text).group(1)) / 1e9
    def row(label):
        m = re.search(re.escape(label) + r"\s+([\d.]+)\s+(\d+)\s+(\d+)", text)
        return float(m.group(1)), int(m.group(3))
    json_s, anon = row("etcd-audit scan --format json")
    table_s, _ = row("etcd-audit scan (table)")
    status_s, _ = row("etcdutl snapshot status")
    _, hist_anon = row("etcd-audit scan --history --residue (json)")
    print(f"{n:>8} {size:>11.2f} {json_s:>7.2f} {json_s/size:>8.2f} {anon:>8} {table_s:>7.2f} {status_s:>8.2f} {hist_anon:>13}")
PY
