#!/usr/bin/env bash
# The real-Slurm test (.ci/run runs it after the Rust tests): installs Slurm
# and Munge, brings up a one-node cluster (tests/scripts/slurm.sh), submits
# scripts/slurm/submit.sh's N-shard eval array over speechocean762 test and
# its dependent merge job, and checks that the merged WER report and
# hypotheses equal the single-process `sparsa eval` exactly. Prints both
# wall times. If the scheduler cannot start, it says so and fails.
#   tests/scripts/slurm-eval.sh SPARSA_BINARY [SHARDS=4] [CPUS_PER_SHARD=1]
set -euo pipefail
cd "$(dirname "$0")/../.."
sparsa=$(readlink -f "${1:?usage: $0 SPARSA_BINARY [SHARDS] [CPUS_PER_SHARD]}")
n=${2:-4}
cpus=${3:-1}
data=$(readlink -f ../shared/corpora/speechocean762/test)
[ -x "$sparsa" ] || { echo "slurm test: $sparsa is not an executable" >&2; exit 1; }
[ -d "$data" ] || { echo "slurm test: $data is missing" >&2; exit 1; }

bash tests/scripts/slurm.sh install
# A short path: Slurm's Unix sockets live under it.
work=$(mktemp -d /tmp/sparsa-slurm.XXXXXX)
cleanup() {
  bash tests/scripts/slurm.sh stop "$work/cluster" || true
  rm -rf "$work"
}
trap cleanup EXIT
if ! env_lines=$(bash tests/scripts/slurm.sh start "$work/cluster" $$); then
  echo "slurm test: FAILED: the Slurm cluster did not start (reason above); the test cannot run without it" >&2
  exit 1
fi
eval "$env_lines"

now() { date +%s.%N; }
# The reference: one process using both cores.
t0=$(now)
"$sparsa" eval "$data" --per-speaker --hyp "$work/ref-hyp.txt" >"$work/ref.txt"
t1=$(now)

SPARSA=$sparsa CPUS=$cpus bash scripts/slurm/submit.sh eval "$data" "$n" "$work/out" \
  --model "$PWD/models/default" | tee "$work/submit.txt"
merge=$(sed -n 's/.*merge: job \([0-9]*\).*/\1/p' "$work/submit.txt")
[ -n "$merge" ] || { echo "slurm test: FAILED: no merge job id in the submit output" >&2; exit 1; }
state=""
deadline=$((SECONDS + 1800))
while :; do
  state=$(scontrol show job -o "$merge" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
  case $state in
    COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | PREEMPTED) break ;;
  esac
  ((SECONDS < deadline)) || { echo "slurm test: FAILED: merge job $merge still '$state' after 30 min" >&2; exit 1; }
  sleep 0.2
done
t2=$(now)
if [ "$state" != COMPLETED ]; then
  echo "slurm test: FAILED: merge job $merge ended $state; the shards' jobs:" >&2
  scontrol show job -o 2>/dev/null | grep -o 'JobId=[0-9]* ArrayJobId=[0-9]* ArrayTaskId=[0-9]*\|JobState=[A-Z_]*\|ExitCode=[0-9:]*' >&2 || true
  tail -n 5 "$work"/out/logs/*.log >&2 || true
  exit 1
fi

scores() { grep -E '^(%WER|speaker )' "$1"; }
if ! diff <(scores "$work/ref.txt") <(scores "$work/out/wer.txt"); then
  echo "slurm test: FAILED: the merged report differs from the single-process one" >&2
  exit 1
fi
if ! cmp "$work/ref-hyp.txt" "$work/out/hyp.txt"; then
  echo "slurm test: FAILED: the merged hypotheses differ from the single-process ones" >&2
  exit 1
fi
awk -v a="$t0" -v b="$t1" -v c="$t2" -v n="$n" -v cpus="$cpus" 'BEGIN {
  printf "slurm test: passed: %d-shard array (%d CPU(s) per shard) + merge %.1f s wall, single process %.1f s wall (ratio %.2f); merged WER and hypotheses identical\n", n, cpus, c - b, b - a, (c - b) / (b - a) }'
grep '^%WER' "$work/out/wer.txt"
