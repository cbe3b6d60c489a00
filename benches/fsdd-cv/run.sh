#!/usr/bin/env bash
# Leave-one-speaker-out cross-validation of an FSDD training recipe.
#
# FSDD's dev and test splits are one speaker each, so a recipe's dev WER
# says more about that speaker than about the recipe. This trains the recipe
# five times, each time on four of the five non-test speakers (train + dev),
# and decodes the held-out one; the test speaker is never touched. Run from
# the project root:
#
#   benches/fsdd-cv/run.sh NAME [sparsa-train am options...]
#   benches/fsdd-cv/run.sh dropout-vtlp --dropout 0.2 --vtlp 2
#
# Appends "NAME options :: speaker WER ... :: mean" to
# benches/fsdd-cv/results.txt; folds and models go to $CV_DIR (default
# /tmp/sparsa-fsdd-cv).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 NAME [sparsa-train am options...]" >&2; exit 2; }
name=$1
shift
corpus=$(readlink -f ../shared/corpora/fsdd)
work=${CV_DIR:-/tmp/sparsa-fsdd-cv}
bin=${SPARSA_BIN:-target/release}
[ -x "$bin/sparsa-train" ] || cargo build --release --quiet
speakers="george jackson lucas nicolas yweweler"

# Folds: Kaldi data dirs whose relative audio paths resolve through a link.
for held in $speakers; do
  fold=$work/folds/$held
  [ -f "$fold/dev/text" ] && continue
  mkdir -p "$fold/train" "$fold/dev"
  ln -sfn "$corpus/audio" "$fold/audio"
  for f in text wav.scp utt2spk; do
    cat "$corpus/train/$f" "$corpus/dev/$f" >"$work/all.$f"
  done
  for part in train dev; do
    if [ "$part" = dev ]; then keep='$2 == h'; else keep='$2 != h'; fi
    awk -v h="$held" "$keep { print \$1 }" "$work/all.utt2spk" >"$fold/$part/ids"
    for f in text wav.scp utt2spk; do
      awk 'NR == FNR { k[$1]; next } ($1 in k)' "$fold/$part/ids" "$work/all.$f" >"$fold/$part/$f"
    done
    awk '{ a[$2] = a[$2] " " $1 } END { for (s in a) print s a[s] }' \
      "$fold/$part/utt2spk" >"$fold/$part/spk2utt"
    rm "$fold/$part/ids"
  done
done

line="$name $* ::"
total=0
for held in $speakers; do
  fold=$work/folds/$held
  model=$work/models/$name-$held
  mkdir -p "$work/models"
  "$bin/sparsa-train" am --train "$fold/train" --dev "$fold/dev" \
    --lexicon ../shared/lexicon/cmudict.dict --rate 8000 --mel-bins 23 \
    --cmn-prior-frames 10 --out "$model" --quiet "$@" >"$model.log" 2>&1
  # Every fold's text is the same ten digits: the shipped FSDD bigram fits.
  cp models/fsdd/lm.arpa "$model/"
  wer=$("$bin/sparsa" eval "$fold/dev" --model "$model" 2>&1 |
    sed -n 's/^%WER \([0-9.]*\).*/\1/p')
  line="$line $held $wer"
  total=$(awk -v a="$total" -v b="$wer" 'BEGIN { print a + b }')
done
echo "$line :: mean $(awk -v t="$total" 'BEGIN { printf "%.2f", t / 5 }')" | tee -a benches/fsdd-cv/results.txt
