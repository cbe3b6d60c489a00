#!/usr/bin/env bash
# `sparsa serve --wyoming` against the `wyoming` Python package's own client
# classes (tests/serve/wyoming_client.py), over TCP and a Unix socket:
# describe gets the info of one ASR program "sparsa" with one English
# model; two speechocean762 clips, and the two joined by silence (several
# utterances, so several transcript-chunk events), sent in 1024-sample
# chunks get transcript-start / transcript-chunk / transcript /
# transcript-stop, and each transcript equals the finals of
# `sparsa transcribe` on the same WAV joined with spaces; several rounds on
# one connection and one connection per clip both work. Then SIGTERM: the
# server exits 0 and its log holds no panic.
#
# Usage: tests/serve/wyoming.sh SPARSA   (e.g. target/release/sparsa)
# PY: a python with the `wyoming` package [default: target/serve-venv/bin/python,
# made by tests/serve/venv.sh].
set -euo pipefail
SPARSA=$(realpath "${1:?usage: tests/serve/wyoming.sh SPARSA}")
cd "$(dirname "$0")/../.."
PY=${PY:-target/serve-venv/bin/python}
CORPUS=../shared/corpora/speechocean762

"$PY" -c 'import wyoming' || {
  echo "wyoming.sh: $PY has no wyoming package (run tests/serve/venv.sh)" >&2
  exit 1
}

tmp=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
    kill -KILL "$server" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# Two clips as 16-bit WAV, and both in one file with 2 s of silence between.
wavs=()
while read -r id path; do
  sox "$CORPUS/$path" -b 16 "$tmp/$id.wav"
  wavs+=("$tmp/$id.wav")
done < <(head -n 2 "$CORPUS/test/wav.scp")
sox "${wavs[0]}" -p pad 0 2 | sox - "${wavs[1]}" -b 16 "$tmp/joined.wav"
wavs+=("$tmp/joined.wav")

# The expected transcripts: `sparsa transcribe`'s finals joined with spaces.
pairs=()
for wav in "${wavs[@]}"; do
  "$SPARSA" transcribe "$wav" >"${wav%.wav}.jsonl"
  "$PY" -c '
import json, sys
finals = [e["text"] for e in map(json.loads, open(sys.argv[1])) if e.get("type") == "final"]
print(" ".join(t for t in finals if t))' "${wav%.wav}.jsonl" >"${wav%.wav}.txt"
  echo "$(basename "$wav"): $(cat "${wav%.wav}.txt")"
  pairs+=("$wav" "${wav%.wav}.txt")
done
[ -s "$tmp/joined.txt" ] || { echo "wyoming.sh: transcribe heard nothing" >&2; exit 1; }

sock="$tmp/wyoming.sock"
"$SPARSA" serve --listen 127.0.0.1:0 --wyoming 127.0.0.1:0 --wyoming "unix:$sock" \
  --stats-interval 0 2>"$tmp/serve.log" &
server=$!
port=
for _ in $(seq 1 300); do
  port=$(sed -n 's|.*listening: wyoming tcp://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$tmp/serve.log")
  if [ -n "$port" ] && grep -q "serving " "$tmp/serve.log"; then break; fi
  kill -0 "$server" 2>/dev/null || { cat "$tmp/serve.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { echo "wyoming.sh: no wyoming port in the log" >&2; cat "$tmp/serve.log" >&2; exit 1; }

status=0
"$PY" tests/serve/wyoming_client.py "tcp://127.0.0.1:$port" "${pairs[@]}" || status=1
"$PY" tests/serve/wyoming_client.py "unix://$sock" "${pairs[@]}" || status=1

kill -TERM "$server"
code=0
wait "$server" || code=$?
server=
if [ "$code" -ne 0 ]; then
  echo "wyoming.sh: server exited $code after SIGTERM" >&2
  status=1
fi
if grep -qi "panick" "$tmp/serve.log"; then
  echo "wyoming.sh: the server panicked" >&2
  status=1
fi
if [ "$status" -ne 0 ]; then
  cat "$tmp/serve.log" >&2
  echo "wyoming.sh: FAILED" >&2
  exit 1
fi
echo "wyoming.sh: ok"
