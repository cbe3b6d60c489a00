#!/usr/bin/env bash
# Submits training as Slurm jobs: `sparsa-train prepare` as a job array of N
# shards (features and, with --align-model, the alignment of part K of
# train and dev), then one `sparsa-train am --prepared` job that runs once
# every shard has succeeded and trains on them all. The model equals the
# one a single `sparsa-train am` with the same flags gives.
#
#   scripts/slurm/train.sh N PREP OUT DATA_FLAGS... [-- AM_FLAGS...]
#
# DATA_FLAGS are what prepare and am share (--train, --dev, --lexicon,
# --align-model, --speed-perturb, --vtlp, --silence-pad, --max-utts, --rate,
# --mel-bins); AM_FLAGS only shape the network and its training (--units,
# --cmn-prior-frames, --context-min-frames, ...). All paths on storage every
# node sees. Example (models/default's recipe of docs/training.md, with
# speed-perturbed copies added):
#   scripts/slurm/train.sh 4 /shared/prep /shared/models/new \
#     --train /shared/so762/train --dev /shared/so762/dev \
#     --lexicon /shared/cmudict.dict --lexicon /shared/so762/lexicon.txt \
#     --align-model /shared/models/relu --speed-perturb 0.9,1.1 \
#     -- --units 256 --max-epochs 10 --cmn-prior-frames 20 --freq-mask 8 --context-min-frames 300
# A failed shard K is rerun alone (its folder PREP/K appears only when whole):
#   sbatch --array=K scripts/slurm/prepare.sbatch PREP N DATA_FLAGS...
# Settings: SPARSA_TRAIN (the binary, default `sparsa-train` on PATH), CPUS
# (CPUs per shard, default 2), TRAIN_CPUS (for the training job, default 2)
# and sbatch's own SBATCH_* variables.
set -euo pipefail

if [ $# -lt 4 ]; then
  sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
fi
n=$1 prep=$2 out=$3
shift 3
case $n in '' | *[!0-9]* | 0) echo "train.sh: N must be a positive number, not '$n'" >&2; exit 2 ;; esac
data=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do data+=("$1"); shift; done
[ $# -gt 0 ] && shift
am=("$@")
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$prep" "$(dirname "$out")"
prep=$(cd "$prep" && pwd)
# Shards of an earlier run (another N or other flags) must not be mixed in.
rm -rf "${prep:?}"/[0-9]*
mkdir -p "$prep/logs"

array=$(sbatch --parsable --job-name=sparsa-prepare --array="0-$((n - 1))" \
  --cpus-per-task="${CPUS:-2}" --output="$prep/logs/prepare-%a.log" \
  "$here/prepare.sbatch" "$prep" "$n" "${data[@]}")
array=${array%%;*}
train=$(sbatch --parsable --job-name=sparsa-train --dependency="afterok:$array" \
  --kill-on-invalid-dep=yes --cpus-per-task="${TRAIN_CPUS:-2}" --output="$prep/logs/train.log" \
  "$here/train.sbatch" "$prep" "$out" "${data[@]}" -- "${am[@]}")
train=${train%%;*}
echo "prepare: job $array (array 0-$((n - 1))), train: job $train; model in $out, logs in $prep/logs"
