#!/usr/bin/env bash
# A sharded `sparsa eval` or `sparsa transcribe` without a scheduler: GNU
# parallel runs the N shards on this machine (JOBS at a time, default N)
# or, with SSHLOGINFILE, on the hosts listed there (`parallel
# --sshloginfile`; JOBS is then shards at a time per host, default 1; every
# host needs sparsa (or SPARSA's path), GNU parallel and perl, and the paths
# on shared storage), then merges them here.
#
#   scripts/parallel/run.sh eval DATA N OUT [sparsa eval flags...]
#   SSHLOGINFILE=hosts scripts/parallel/run.sh transcribe DATA N OUT --model /shared/models/default
#
# Writes OUT/shards/K.jsonl and OUT/results.jsonl; for eval also OUT/hyp.txt
# and OUT/wer.txt. A failed shard stops the run; rerunning skips the shards
# already done (their result files exist), so only the failed ones run again.
# THREADS: utterances each shard decodes at once (default: all the cores
# of its host; set it when JOBS shards share one machine).
set -euo pipefail

if [ $# -lt 4 ] || { [ "$1" != eval ] && [ "$1" != transcribe ]; }; then
  sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
fi
command -v parallel >/dev/null || { echo "run.sh: GNU parallel is not installed (apt-get install parallel)" >&2; exit 2; }
cmd=$1 data=$2 n=$3 out=$4
shift 4
case $n in '' | *[!0-9]* | 0) echo "run.sh: N must be a positive number, not '$n'" >&2; exit 2 ;; esac
[ -d "$data" ] || { echo "run.sh: data dir $data does not exist" >&2; exit 2; }
mkdir -p "$out/shards"
out=$(cd "$out" && pwd)
data=$(cd "$data" && pwd)
sparsa=${SPARSA:-sparsa}
case $cmd in
  eval) write=--results ;;
  transcribe) write=--output ;;
esac
threads=()
[ -n "${THREADS:-}" ] && threads=(--threads "$THREADS")
remote=()
[ -n "${SSHLOGINFILE:-}" ] && remote=(--sshloginfile "$SSHLOGINFILE" --workdir "$PWD")

todo=()
for k in $(seq 0 $((n - 1))); do
  [ -f "$out/shards/$k.jsonl" ] || todo+=("$k")
done
if [ ${#todo[@]} -gt 0 ]; then
  parallel --will-cite -q --halt now,fail=1 -j "${JOBS:-$n}" "${remote[@]}" \
    "$sparsa" "$cmd" "$data" --shard "{}/$n" "${threads[@]}" "$write" "$out/shards/{}.jsonl" "$@" \
    ::: "${todo[@]}"
fi
shards=()
for k in $(seq 0 $((n - 1))); do shards+=("$out/shards/$k.jsonl"); done
case $cmd in
  eval) "$sparsa" merge "${shards[@]}" --per-speaker --hyp "$out/hyp.txt" --output "$out/results.jsonl" >"$out/wer.txt"
        cat "$out/wer.txt" ;;
  transcribe) "$sparsa" merge "${shards[@]}" --output "$out/results.jsonl" ;;
esac
