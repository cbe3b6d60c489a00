#!/usr/bin/env bash
# general-64k.sh: builds target/general64k/, a model folder for general
# English with a 64,000-word vocabulary (issue #16):
#
#   am.ron       models/default/am.ron, copied
#   lexicon.txt  the WORDS (64,000) most frequent words of
#                ../shared/text/gutenberg-25M.txt.xz that CMUdict can
#                pronounce (only 52,391 of its word types can be, so all of
#                those are taken), plus every word of the speechocean762 train
#                transcripts; pronunciations from CMUdict and the corpus's
#                own lexicon merged, written as `sparsa-train am` writes
#                lexicons (upper case, stress removed, variants WORD(2) ..,
#                sorted)
#   lm.arpa      an ORDER (3)-gram interpolated modified Kneser-Ney LM of
#                the Gutenberg text over the lexicon's words (every other
#                word is <unk>), n-grams seen fewer than CUTOFF (2) times
#                dropped (`sparsa-train lm --text - --vocab --cutoff`)
#   build/       word counts, vocabulary, the LM's log and its
#                /usr/bin/time -v report, summary.txt
#
# Only general text, CMUdict and train transcripts go into the vocabulary
# and the LM (../shared/corpora/README.md); the test transcripts are read at
# the end for one number, the OOV rate, and nothing else.
#
# Usage (from anywhere; about 20 s on 2 cores, 0.4 GB of memory):
#   scripts/general-64k.sh
#   sparsa transcribe --model target/general64k clip.wav
# Settings, as environment variables: SHARED (../shared from the project
# root), OUT (target/general64k), WORDS (64000), ORDER (3), CUTOFF (2),
# SPARSA_TRAIN (target/release/sparsa-train, built if missing).
# Needs xz, awk, sort and /usr/bin/time.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=${SHARED:-$root/../shared}
out=${OUT:-$root/target/general64k}
words=${WORDS:-64000}
order=${ORDER:-3}
cutoff=${CUTOFF:-2}
train_bin=${SPARSA_TRAIN:-$root/target/release/sparsa-train}
text=$shared/text/gutenberg-25M.txt.xz
cmudict=$shared/lexicon/cmudict.dict
corpus=$shared/corpora/speechocean762
build=$out/build
export LC_ALL=C # byte order everywhere, as the lexicon writer sorts

for f in "$text" "$cmudict" "$corpus/lexicon.txt" "$corpus/train/text" "$corpus/test/text" \
    "$root/models/default/am.ron"; do
    [[ -r $f ]] || { echo "general-64k.sh: cannot read $f" >&2; exit 2; }
done
if [[ ! -x $train_bin ]]; then
    (cd "$root" && cargo build --release --bin sparsa-train)
fi
mkdir -p "$build"
cp "$root/models/default/am.ron" "$out/am.ron"

# 1. Word counts of the Gutenberg text, most frequent first (ties by word).
echo "counting the words of $text" >&2
xz -dc "$text" |
    awk '{ for (i = 1; i <= NF; i++) n[$i]++ } END { for (w in n) print n[w], w }' |
    sort -k1,1nr -k2,2 >"$build/gutenberg.counts"

# 2. The words CMUdict pronounces, named as the lexicon reader names them:
#    `# comments` and `;;;` lines dropped, `word(2)` is `word`, upper case.
awk '{
        sub(/#.*/, "")
        if ($0 ~ /^[ \t]*;;;/ || NF < 2) next
        w = $1
        p = index(w, "(")
        if (p > 0 && w ~ /\)$/) w = substr(w, 1, p - 1)
        print toupper(w)
    }' "$cmudict" | sort -u >"$build/cmudict.words"

# 3. The vocabulary: the top WORDS pronounceable Gutenberg words, plus the
#    train transcripts' words.
awk -v max="$words" 'NR == FNR { cmu[$1] = 1; next }
    ($2 in cmu) { print $2; if (++k == max) exit }' \
    "$build/cmudict.words" "$build/gutenberg.counts" >"$build/top.words"
top=$(wc -l <"$build/top.words")
if ((top < words)); then
    echo "only $top word types of the text have a CMUdict pronunciation (WORDS=$words): all are taken" >&2
fi
cut -d' ' -f2- "$corpus/train/text" | tr ' ' '\n' | grep -v '^$' | sort -u >"$build/train.words"
sort -u "$build/top.words" "$build/train.words" >"$build/wanted.words"

# 4. The lexicon: both pronunciation files merged for the wanted words, as
#    search::lexicon reads and writes them (stress digits removed, a
#    pronunciation that repeats after that kept once, variants numbered in
#    order of appearance, CMUdict first).
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
    sort -t "$(printf '\t')" -k1,1 -k2,2n | cut -f3 >"$out/lexicon.txt"
cut -d' ' -f1 "$out/lexicon.txt" | grep -v ')$' >"$build/vocab.txt"
comm -23 "$build/wanted.words" "$build/vocab.txt" >"$build/no-pronunciation.words"
if [[ -s $build/no-pronunciation.words ]]; then
    echo "left out (no pronunciation): $(tr '\n' ' ' <"$build/no-pronunciation.words")" >&2
fi

# 5. The LM, timed.
echo "estimating the LM (log: $build/lm.log)" >&2
xz -dc "$text" |
    /usr/bin/time -v -o "$build/lm.time" \
        "$train_bin" lm --text - --vocab "$build/vocab.txt" --order "$order" \
        --cutoff "$cutoff" --out "$out/lm.arpa" 2> >(tee "$build/lm.log" >&2)

# 6. Summary. The test transcripts are used here only, to measure coverage.
{
    echo "vocabulary: $(wc -l <"$build/vocab.txt") words ($(wc -l <"$build/top.words") from Gutenberg, $(wc -l <"$build/train.words") train words), lexicon $(wc -l <"$out/lexicon.txt") pronunciations"
    echo "lm.arpa: $(wc -c <"$out/lm.arpa") bytes; $(grep -m "$order" '^ngram ' "$out/lm.arpa" | tr '\n' ' ')"
    echo "estimate: $(grep -E 'Elapsed|Maximum resident' "$build/lm.time" | sed 's/^[ \t]*//' | tr '\n' ';')"
    cut -d' ' -f2- "$corpus/test/text" | tr ' ' '\n' | grep -v '^$' |
        awk 'NR == FNR { v[$1] = 1; next } { n++; if (!($1 in v)) { oov++; miss[$1]++ } }
            END { printf "test OOV: %d of %d running words (%.2f%%):", oov, n, 100 * oov / n
                  for (w in miss) printf " %s", w; print "" }' "$build/vocab.txt" -
} | tee "$build/summary.txt"
