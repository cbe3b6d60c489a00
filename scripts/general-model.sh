#!/usr/bin/env bash
# general-model.sh: builds models/general, the model folder for general
# English (issue #17), from the shared text and CMUdict with sparsa-train:
#
#   am.ron       models/default/am.ron, copied (the acoustic model is the
#                default's; only the vocabulary and LM change)
#   lexicon.txt  the WORDS (64,000) most frequent words of
#                ../shared/text/gutenberg-25M.txt.xz plus every word of the
#                speechocean762 train transcripts: pronunciations from
#                CMUdict and the corpus's lexicon merged, and for the words
#                neither has, from the G2P model (g2p.arpa.gz)
#   g2p.arpa.gz  a joint-sequence G2P model trained on CMUdict (`sparsa-train
#                g2p`): pronounces words added at run time (--words, phrase
#                lists) that the lexicon lacks
#   lm.arpa.gz   the general ORDER (3)-gram (interpolated modified
#                Kneser-Ney over the Gutenberg text, every other word <unk>,
#                pruned by relative entropy to NGRAMS (2,000,000) n-grams)
#                mixed with models/default/lm.arpa (the train-transcript
#                trigram), weights chosen by EM on speechocean762 dev
#   README.md    provenance: how it was built, from what, and the measured
#                numbers of the build (summary.txt)
# and in BUILD (target/general-model): logs, time reports, the unmixed
# general LM, word lists.
#
# Only general text, CMUdict and train transcripts go into the vocabulary
# and the LMs; dev transcripts choose the mixture weights and are
# measured; test is not read here (../shared/corpora/README.md).
#
# Usage (from anywhere; a few minutes on 2 cores, about 1 GB of memory):
#   scripts/general-model.sh
#   sparsa transcribe --model models/general my-sentence.wav
# Settings, as environment variables: SHARED (../shared from the project
# root), OUT (models/general), BUILD (target/general-model), WORDS (64000), ORDER (3), NGRAMS (2000000),
# G2P_ORDER (passed to `sparsa-train g2p --order` if set), BIN
# (target/release, built if missing). Needs awk, sort and /usr/bin/time.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=${SHARED:-$root/../shared}
out=${OUT:-$root/models/general}
words=${WORDS:-64000}
order=${ORDER:-3}
ngrams=${NGRAMS:-2000000}
bin=${BIN:-$root/target/release}
text=$shared/text/gutenberg-25M.txt.xz
cmudict=$shared/lexicon/cmudict.dict
corpus=$shared/corpora/speechocean762
build=${BUILD:-$root/target/general-model}
export LC_ALL=C # byte order everywhere, as the lexicon writer sorts

for f in "$text" "$cmudict" "$corpus/lexicon.txt" "$corpus/train/text" "$corpus/dev/text" \
    "$root/models/default/am.ron" "$root/models/default/lm.arpa"; do
    [[ -r $f ]] || { echo "general-model.sh: cannot read $f" >&2; exit 2; }
done
if [[ ! -x $bin/sparsa-train || ! -x $bin/sparsa ]]; then
    (cd "$root" && cargo build --release --locked)
fi
train_bin=$bin/sparsa-train
mkdir -p "$build" "$out"
cp "$root/models/default/am.ron" "$out/am.ron"
timed() { # timed NAME CMD..: runs CMD with its log and time report in build/
    local name=$1
    shift
    /usr/bin/time -v -o "$build/$name.time" "$@" 2> >(tee "$build/$name.log" >&2)
}

# 1. The G2P model, with its error rates on a held-out 5% of CMUdict.
echo "== G2P model (log: $build/g2p.log)" >&2
timed g2p "$train_bin" g2p --lexicon "$cmudict" --heldout-percent 5 \
    ${G2P_ORDER:+--order "$G2P_ORDER"} --results "$build/g2p.results.json" --out "$out/g2p.arpa.gz"

# 2. The general LM over the vocabulary: the text's WORDS most frequent
#    words plus the train transcripts' words.
echo "== general LM (log: $build/general-lm.log)" >&2
cut -d' ' -f2- "$corpus/train/text" | tr ' ' '\n' | grep -v '^$' | sort -u >"$build/train.words"
timed general-lm "$train_bin" lm --text "$text" --vocab "$build/train.words" \
    --vocab-size "$words" --order "$order" --max-ngrams "$ngrams" --quiet \
    --write-vocab "$build/vocab.txt" --out "$build/general.arpa.gz"

# 3. The lexicon: CMUdict and the corpus lexicon merged for the vocabulary
#    (stress removed, a pronunciation that repeats after that kept once,
#    variants numbered in order, CMUdict first), then G2P for the rest.
grep -v '^<' "$build/vocab.txt" >"$build/wanted.words"
awk 'NR == FNR { want[$1] = 1; next }
    {
        sub(/#.*/, "")
        if ($0 ~ /^[ \t]*;;;/ || NF < 2) next
        w = $1
        p = index(w, "(")
        if (p > 0 && w ~ /\)$/) w = substr(w, 1, p - 1)
        w = toupper(w)
        if (!(w in want)) next
        pron = ""
        for (i = 2; i <= NF; i++) {
            ph = toupper($i)
            sub(/[0-9]+$/, "", ph)
            pron = pron " " ph
        }
        key = w SUBSEP pron
        if (key in seen) next
        seen[key] = 1
        k = ++variants[w]
        print w "\t" k "\t" (k == 1 ? w : w "(" k ")") pron
    }' "$build/wanted.words" "$cmudict" "$corpus/lexicon.txt" |
    sort -t "$(printf '\t')" -k1,1 -k2,2n | cut -f3 >"$build/dictionary.lex"
cut -d' ' -f1 "$build/dictionary.lex" | grep -v ')$' | sort -u >"$build/pronounced.words"
comm -23 "$build/wanted.words" "$build/pronounced.words" >"$build/g2p.words"
echo "== G2P for $(wc -l <"$build/g2p.words") words without a dictionary pronunciation" >&2
"$train_bin" g2p --model "$out/g2p.arpa.gz" --words "$build/g2p.words" >"$build/g2p.lex"
sort -u "$build/dictionary.lex" "$build/g2p.lex" >"$out/lexicon.txt"

# 4. The mixture with the train-transcript trigram, weights by EM on dev.
echo "== mixing (log: $build/mix.log)" >&2
timed mix "$train_bin" mix --lm "$build/general.arpa.gz" --lm "$root/models/default/lm.arpa" \
    --heldout "$corpus/dev" --out "$out/lm.arpa.gz"

# 5. Perplexity on dev of the three LMs, and the summary.
for lm in "$root/models/default/lm.arpa" "$build/general.arpa.gz" "$out/lm.arpa.gz"; do
    "$train_bin" ppl "$lm" "$corpus/dev" 2>/dev/null | sed "s|^[^:]*:|$(basename "$lm") on dev:|"
done >"$build/ppl.txt"
{
    echo "vocabulary: $(wc -l <"$build/wanted.words") words; lexicon $(wc -l <"$out/lexicon.txt") pronunciations ($(wc -l <"$build/g2p.words") words by G2P)"
    grep -h -E 'held-out|word error|phone error' "$build/g2p.log" | sed 's/^.*INFO [^ ]* //' || true
    grep -h -E 'pruned:|EM weights' "$build/general-lm.log" "$build/mix.log" | sed 's/^.*INFO [^ ]* //'
    for step in g2p general-lm mix; do
        echo "$step: $(grep -E 'Elapsed|Maximum resident' "$build/$step.time" | sed 's/^[ \t]*//' | tr '\n' ';')"
    done
    cat "$build/ppl.txt"
    echo "folder: $(du -cb "$out"/am.ron "$out"/lexicon.txt "$out"/lm.arpa.gz "$out"/g2p.arpa.gz | tail -1 | cut -f1) bytes"
} | tee "$build/summary.txt"

# 6. Provenance, next to the files.
commit=$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
cat >"$out/README.md" <<END
# models/general: general English, 64k words

Built by \`scripts/general-model.sh\` (WORDS=$words ORDER=$order NGRAMS=$ngrams) at
commit $commit on $(date -u +%Y-%m-%d); rebuild with that one command from the
project root (it reads ../shared/text, ../shared/lexicon and
../shared/corpora/speechocean762).

| file | what | from |
|---|---|---|
| am.ron | acoustic model | models/default/am.ron (speechocean762 train), copied |
| lexicon.txt | $(wc -l <"$build/wanted.words") words: the $words most frequent words of gutenberg-25M plus the speechocean762 train words | CMUdict + speechocean762 lexicon; $(wc -l <"$build/g2p.words") words by G2P |
| g2p.arpa.gz | joint-sequence G2P (graphone n-gram) for words added at run time | CMUdict (95%; 5% held out for the error rates) |
| lm.arpa.gz | general $order-gram (modified Kneser-Ney, pruned to $ngrams n-grams by relative entropy) mixed with models/default/lm.arpa (train transcripts), weights by EM on speechocean762 dev | gutenberg-25M (public domain) + speechocean762 train transcripts |

Licences: speechocean762 CC BY 4.0 (Zhang et al., Interspeech 2021);
CMUdict BSD-2 style; the Gutenberg text is public domain in the USA.

## Build record

\`\`\`
$(cat "$build/summary.txt")
\`\`\`
END
