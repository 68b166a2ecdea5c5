#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser that reads untrusted bytes
# (cargo-fuzz / libFuzzer, with AddressSanitizer). The targets are built once,
# then each runs for SECONDS (default 60), one process at a time; its corpus
# (fuzz/corpus/T) is then minimised (libFuzzer -merge), and a crash is copied
# to fuzz/regressions/T so that the test suite replays it forever after. One
# line per run goes to fuzz/campaign.tsv (docs/fuzzing.md sums them up), with
# the CPU seconds the fuzzer really had (less than its wall time when the
# machine was busy with something else).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# The stable toolchain takes cargo-fuzz's -Z flags with RUSTC_BOOTSTRAP=1.
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
if [ $# -gt 0 ]; then targets=("$@"); else
  mapfile -t targets < <(ls fuzz/fuzz_targets | sed 's/\.rs$//')
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
cargo fuzz build --fuzz-dir fuzz || exit 2
bin=fuzz/target/x86_64-unknown-linux-gnu/release
tsv=fuzz/campaign.tsv
[ -f "$tsv" ] || printf 'date\ttarget\tseconds\texecutions\tedges\tfeatures\tcorpus\tcrashes\tcpu_seconds\n' > "$tsv"
# Inputs are cut at 64 KiB: sixteen bbolt pages reach every structure, and
# the committed corpora stay small.
max_len=65536
status=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/regressions/$t" "fuzz/artifacts/$t"
  out=$(mktemp)
  before=$(ls "fuzz/artifacts/$t" | wc -l)
  cpu=$(mktemp)
  /usr/bin/time -f '%U %S' -o "$cpu" "$bin/$t" "fuzz/corpus/$t" -artifact_prefix="fuzz/artifacts/$t/" -max_total_time="$secs" \
    -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" -print_final_stats=1 >"$out" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -n 1)
  edges=$(grep -o 'cov: [0-9]*' "$out" | tail -n 1 | cut -d' ' -f2)
  feats=$(grep -o 'ft: [0-9]*' "$out" | tail -n 1 | cut -d' ' -f2)
  crashes=$(( $(ls "fuzz/artifacts/$t" | wc -l) - before ))
  if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    status=1
    echo "== $t: exit $rc, $crashes new artifacts (fuzz/artifacts/$t); tail of the log:"
    tail -n 40 "$out"
    cp fuzz/artifacts/"$t"/* "fuzz/regressions/$t/" 2>/dev/null
  fi
  # Minimise: keep the inputs that give the same coverage.
  min=$(mktemp -d)
  if "$bin/$t" -merge=1 -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" "$min" "fuzz/corpus/$t" >/dev/null 2>&1; then
    rm -rf "fuzz/corpus/$t" && mv "$min" "fuzz/corpus/$t"
  else
    rm -rf "$min"
  fi
  corpus=$(ls "fuzz/corpus/$t" | wc -l)
  cpus=$(awk 'END { printf "%d", $1 + $2 }' "$cpu")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$secs" "${execs:-0}" "${edges:-0}" \
    "${feats:-0}" "$corpus" "$crashes" "$cpus" >> "$tsv"
  echo "$t: ${execs:-0} executions, ${edges:-0} edges, corpus $corpus, $crashes crashes"
  rm -f "$out" "$cpu"
done
exit $status
