#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS (default 600) or 1M
# executions, whichever comes first, one after another on one core, then
# prints a Markdown summary. Crash, timeout and OOM inputs land in
# tests/fuzz/artifacts/TARGET/; each run's log in tests/fuzz/logs/TARGET.log.
# Usage: tests/fuzz/run.sh [SECONDS] [TARGET...]   (after tests/fuzz/install.sh)
set -uo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-600}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(wav flac datadir model arpa config settings)
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}
fuzz=(nice -n 10 cargo +nightly fuzz)
fdir=tests/fuzz

# -a: debug assertions and overflow checks, as in `cargo test`.
"${fuzz[@]}" build --fuzz-dir "$fdir" -a || exit 1
mkdir -p "$fdir/logs"
rows=()
for t in "${targets[@]}"; do
  mkdir -p "$fdir/corpus/$t" "$fdir/artifacts/$t"
  before=$(find "$fdir/artifacts/$t" -type f | sort)
  log="$fdir/logs/$t.log"
  echo "fuzz: $t for ${secs}s (log: $log)" >&2
  "${fuzz[@]}" run --fuzz-dir "$fdir" -a "$t" "$fdir/corpus/$t" "$fdir/seeds/$t" -- \
    -max_total_time="$secs" -runs=1000000 -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
  took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -1 | grep -o 'in [0-9]*' | grep -o '[0-9]*')
  new=$(comm -13 <(echo "$before") <(find "$fdir/artifacts/$t" -type f | sort) | grep -v '^$')
  if [ -n "$new" ]; then
    result="FOUND: $(echo "$new" | tr '\n' ' ')"
  elif [ "$rc" -ne 0 ]; then
    result="failed (exit $rc, see $log)"
  else
    result="clean"
  fi
  rows+=("| $t | ${took:-?} | ${execs:-?} | ${rate:-?} | $result |")
done
echo
echo "| target | seconds | executions | exec/s | result |"
echo "|---|---:|---:|---:|---|"
printf '%s\n' "${rows[@]}"
