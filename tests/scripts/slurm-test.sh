#!/usr/bin/env bash
# The real-Slurm test (.ci/run runs it after the Rust tests): installs Slurm
# and Munge, brings up a one-node cluster (tests/scripts/slurm.sh), and
#  1. submits scripts/slurm/submit.sh's N-shard eval array over
#     speechocean762 test and its dependent merge job, and checks that the
#     merged WER report and hypotheses equal the single-process `sparsa
#     eval` exactly (prints both wall times);
#  2. submits scripts/slurm/train.sh's 2-shard `sparsa-train prepare` array
#     and its dependent `am --prepared` job for a tiny model, and checks that
#     the model equals the one a single `sparsa-train am` gives (timings and
#     command line aside).
# If the scheduler cannot start, it says so and fails.
#   tests/scripts/slurm-test.sh BIN_DIR [SHARDS=4] [CPUS_PER_SHARD=1]
# BIN_DIR holds the sparsa and sparsa-train binaries (e.g. target/debug).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(readlink -f "${1:?usage: $0 BIN_DIR [SHARDS] [CPUS_PER_SHARD]}")
sparsa=$bin/sparsa
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
# wait_job ID: waits until job ID has ended; fails unless it COMPLETED.
wait_job() {
  local state="" deadline=$((SECONDS + 1800))
  while :; do
    state=$(scontrol show job -o "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
    case $state in
      COMPLETED) return 0 ;;
      FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | PREEMPTED) break ;;
    esac
    ((SECONDS < deadline)) || { echo "slurm test: FAILED: job $1 still '$state' after 30 min" >&2; exit 1; }
    sleep 0.2
  done
  echo "slurm test: FAILED: job $1 ended $state; the jobs:" >&2
  scontrol show job -o 2>/dev/null | grep -o 'JobId=[0-9]*\|ArrayTaskId=[0-9]*\|JobState=[A-Z_]*\|ExitCode=[0-9:]*' | paste -sd' ' >&2 || true
  tail -n 5 "$work"/*/logs/*.log >&2 || true
  exit 1
}

# The reference: one process using both cores.
t0=$(now)
"$sparsa" eval "$data" --per-speaker --hyp "$work/ref-hyp.txt" >"$work/ref.txt"
t1=$(now)

SPARSA=$sparsa CPUS=$cpus bash scripts/slurm/submit.sh eval "$data" "$n" "$work/out" \
  --model "$PWD/models/default" | tee "$work/submit.txt"
merge=$(sed -n 's/.*merge: job \([0-9]*\).*/\1/p' "$work/submit.txt")
[ -n "$merge" ] || { echo "slurm test: FAILED: no merge job id in the submit output" >&2; exit 1; }
wait_job "$merge"
t2=$(now)

scores() { grep -E '^(%WER|speaker )' "$1"; }
if ! diff <(scores "$work/ref.txt") <(scores "$work/out/wer.txt"); then
  echo "slurm test: FAILED: the merged report differs from the single-process one" >&2
  exit 1
fi
if ! cmp "$work/ref-hyp.txt" "$work/out/hyp.txt"; then
  echo "slurm test: FAILED: the merged hypotheses differ from the single-process ones" >&2
  exit 1
fi
# Where the array's time went: each shard's decoding (model load and
# scheduling excluded).
for f in "$work"/out/shards/*.jsonl; do
  head -n 1 "$f" | grep -o '"index":[0-9]*\|"utterances":[0-9]*\|"wall_s":[0-9.]*' | paste -sd' '
done | sed 's/^/slurm test: shard /; s/"//g'
awk -v a="$t0" -v b="$t1" -v c="$t2" -v n="$n" -v cpus="$cpus" 'BEGIN {
  printf "slurm test: passed: %d-shard array (%d CPU(s) per shard) + merge %.1f s wall, single process %.1f s wall (ratio %.2f); merged WER and hypotheses identical\n", n, cpus, c - b, b - a, (c - b) / (b - a) }'
grep '^%WER' "$work/out/wer.txt"

# 2. Training: prepare shards as an array, then one training job.
corpora=$(readlink -f ../shared/corpora)
data=(--train "$corpora/speechocean762/train" --dev "$corpora/speechocean762/dev"
  --lexicon "$(readlink -f ../shared/lexicon/cmudict.dict)"
  --lexicon "$corpora/speechocean762/lexicon.txt"
  --align-model "$PWD/models/default" --max-utts 80)
am=(--layers 1 --units 32 --max-epochs 1 --context-min-frames 300 --calibration-frames 2000)
"$bin/sparsa-train" am "${data[@]}" "${am[@]}" --quiet --out "$work/model-whole" 2>"$work/train-whole.log"
SPARSA_TRAIN=$bin/sparsa-train CPUS=1 TRAIN_CPUS=2 bash scripts/slurm/train.sh 2 "$work/prep" \
  "$work/model-sharded" "${data[@]}" -- "${am[@]}" | tee "$work/train-submit.txt"
train=$(sed -n 's/.*train: job \([0-9]*\).*/\1/p' "$work/train-submit.txt")
[ -n "$train" ] || { echo "slurm test: FAILED: no training job id in the submit output" >&2; exit 1; }
wait_job "$train"
untimed() { grep -vE '^ *(seconds|frames_per_s|train_seconds|command):' "$1"; }
if ! diff -q <(untimed "$work/model-whole/am.ron") <(untimed "$work/model-sharded/am.ron") >/dev/null ||
  ! cmp "$work/model-whole/lexicon.txt" "$work/model-sharded/lexicon.txt"; then
  echo "slurm test: FAILED: the model trained from Slurm-prepared shards differs from the single-process one" >&2
  exit 1
fi
echo "slurm test: passed: a model trained from 2 prepare shards under Slurm equals the single-process one"
