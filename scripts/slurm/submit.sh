#!/usr/bin/env bash
# Submits a sharded `sparsa eval` or `sparsa transcribe` over a Kaldi data
# dir as a Slurm job array of N shards plus a merge job that runs once every
# shard has succeeded (--dependency=afterok). Paths must be on storage every
# node sees; give the model folder with --model (relative paths resolve in
# the directory you submit from).
#
#   scripts/slurm/submit.sh eval DATA N OUT [sparsa eval flags...]
#   scripts/slurm/submit.sh transcribe DATA N OUT [sparsa transcribe flags...]
#
# Writes OUT/shards/K.jsonl per shard, OUT/logs/, and after the merge
# OUT/results.jsonl (all utterances) and, for eval, OUT/hyp.txt and
# OUT/wer.txt. Prints the two job ids. A failed shard K is rerun alone:
#   sbatch --array=K scripts/slurm/shard.sbatch eval DATA OUT N [flags...]
#   sbatch scripts/slurm/merge.sbatch eval OUT
# Settings: SPARSA (the binary, default `sparsa` on PATH), CPUS (CPUs per
# shard, default 2; eval decodes that many utterances at once), and any
# of sbatch's own SBATCH_* variables (SBATCH_PARTITION, SBATCH_ACCOUNT, ...).
set -euo pipefail

if [ $# -lt 4 ] || { [ "$1" != eval ] && [ "$1" != transcribe ]; }; then
  sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
fi
cmd=$1 data=$2 n=$3 out=$4
shift 4
case $n in '' | *[!0-9]* | 0) echo "submit.sh: N must be a positive number, not '$n'" >&2; exit 2 ;; esac
[ -d "$data" ] || { echo "submit.sh: data dir $data does not exist" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out/shards" "$out/logs"
out=$(cd "$out" && pwd)
data=$(cd "$data" && pwd)
# A rerun with another N must not merge stale shards.
rm -f "$out"/shards/*.jsonl

array=$(sbatch --parsable --job-name="sparsa-$cmd" --array="0-$((n - 1))" \
  --cpus-per-task="${CPUS:-2}" --output="$out/logs/shard-%a.log" \
  "$here/shard.sbatch" "$cmd" "$data" "$out" "$n" "$@")
array=${array%%;*}
merge=$(sbatch --parsable --job-name="sparsa-merge" --dependency="afterok:$array" \
  --kill-on-invalid-dep=yes --cpus-per-task=1 --output="$out/logs/merge.log" \
  "$here/merge.sbatch" "$cmd" "$out")
merge=${merge%%;*}
echo "shards: job $array (array 0-$((n - 1))), merge: job $merge; results in $out"
