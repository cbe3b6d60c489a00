#!/usr/bin/env bash
# `sparsa serve --wyoming` against the `wyoming` Python package's own client
# classes (tests/serve/wyoming_client.py), over TCP and over a Unix socket:
#  1. describe gets the info of one ASR program "sparsa" (transcript
#     streaming) with one installed English model;
#  2. two speechocean762 clips, and the two joined by 2 s of silence
#     (several utterances, so several transcript-chunk events), sent in
#     1024-sample chunks get transcript-start, transcript-chunk...,
#     transcript, transcript-stop; the chunks concatenate to the transcript
#     and it equals `sparsa transcribe`'s finals on the same WAV joined with
#     spaces; all rounds on one connection, then one connection per clip as
#     Home Assistant's client does;
#  3. SIGTERM: exit 0, and the log holds no panic.
#   bash tests/serve/wyoming.sh target/release/sparsa
# PY: the python to run the client with [default: target/serve-venv/bin/python,
# made by tests/serve/venv.sh].
set -euo pipefail
prog=wyoming
# shellcheck source=tests/serve/lib.sh source-path=SCRIPTDIR/../..
source "$(dirname "$0")/lib.sh"
serve_setup "${1:-}"
py=${PY:-$py}
"$py" -c 'import wyoming' || fail "$py has no wyoming package (tests/serve/venv.sh installs it)"

clips 2
# Both clips in one file, 2 s of silence between (no dither: reproducible).
joined="$work/joined.wav"
sox "${clips[0]}" -p pad 0 2 | sox -D - "${clips[1]}" -b 16 -e signed-integer "$joined"
"$sparsa" transcribe "$joined" >"$work/joined.ref.jsonl" || fail "sparsa transcribe $joined failed"
clips+=("$joined")
ref+=("$("$py" "$client" finals "$work/joined.ref.jsonl")")
args=()
for i in "${!clips[@]}"; do
  [ -n "${ref[i]}" ] || fail "sparsa transcribe heard nothing in ${clips[i]}"
  echo "$prog: sparsa transcribe $(basename "${clips[i]}"): '${ref[i]}'"
  args+=("${clips[i]}" "${ref[i]}")
done

sock="$work/wyoming.sock"
serve_start server --listen 127.0.0.1:0 --wyoming 127.0.0.1:0 --wyoming "unix:$sock" --stats-interval 0
server=$serve_pid
port=$(sed -n 's#.*listening: wyoming tcp://127\.0\.0\.1:\([0-9][0-9]*\).*#\1#p' "$work/server.err")
[ -n "$port" ] || fail "no 'listening: wyoming tcp://' line: $(cat "$work/server.err")"
grep -q "listening: wyoming unix:$sock" "$work/server.err" ||
  fail "no 'listening: wyoming unix:$sock' line: $(cat "$work/server.err")"

for uri in "tcp://127.0.0.1:$port" "unix://$sock"; do
  timeout 300 "$py" tests/serve/wyoming_client.py "$uri" "${args[@]}" ||
    fail "the wyoming client failed on $uri (server log: $work/server.err)"
  ok "$uri: info, ${#clips[@]} clips on one connection and on their own, transcripts equal sparsa transcribe"
done

serve_stop "$server" server
! grep -q "panicked" "$work/server.err" || fail "the server panicked: $(grep -m1 panicked "$work/server.err")"
ok "SIGTERM: exit 0"
