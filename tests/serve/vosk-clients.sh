#!/usr/bin/env bash
# `sparsa serve` against the Vosk project's own clients, run unmodified from
# ../shared/peers/vosk-server with the venv's python (tests/serve/venv.sh):
#  1. test.py, asr-test-client.py and test_alternatives.py on 3
#     speechocean762 test clips: one reply per 0.2 s frame, and the text of
#     their results and eof final equals `sparsa transcribe` on the clip;
#  2. test_words.py's phrase_list restricts its stream: every result is one
#     of its two phrases (or empty), every partial word in them;
#  3. 8 concurrent test.py runs give the same finals as 8 sequential ones
#     (and /health counts the streams admitted, none open afterwards);
#  4. SIGTERM while a client streams in real time: the client gets a final
#     result before the close, and the server exits 0.
# The clients hardcode ws://localhost:2700, so port 2700 must be free.
#   bash tests/serve/vosk-clients.sh target/release/sparsa
set -euo pipefail
prog=vosk-clients
# shellcheck source=tests/serve/lib.sh source-path=SCRIPTDIR/../..
source "$(dirname "$0")/lib.sh"
serve_setup "${1:-}"

require_port_free 2700 "the Vosk clients connect to ws://localhost:2700"
clips 3
for i in "${!clips[@]}"; do echo "$prog: sparsa transcribe $(basename "${clips[i]}"): '${ref[i]}'"; done

serve_start server --listen 127.0.0.1:2700
server=$serve_pid
[ "$serve_port" = 2700 ] || fail "the listening line names port '$serve_port', not 2700: $(cat "$work/server.err")"
ok "sparsa serve listens on 127.0.0.1:2700"
health 2700 >/dev/null
ok "GET /health: status ok"

# 1. The clients whose results must equal transcribe's.
for c in test.py asr-test-client.py test_alternatives.py; do
  for i in "${!clips[@]}"; do
    out="$work/$c.$i.out"
    rc=0
    timeout 120 "$py" "$peers/$c" "${clips[i]}" >"$out" 2>"$out.err" || rc=$?
    ((rc == 0)) || fail "$c $(basename "${clips[i]}") exited $rc: $(tail -n 2 "$out.err" | tr '\n' ' ')"
    check_replies "$out" "${clips[i]}" "${ref[i]}" "$c $(basename "${clips[i]}")"
  done
  ok "$c on ${#clips[@]} clips: one reply per frame, finals equal sparsa transcribe"
done
# max_alternatives 20: the finals are N-best lists, the best first (checked
# above), and some hold more than one distinct word sequence.
"$py" - "$work"/test_alternatives.py.*.out <<'PY' || fail "test_alternatives.py: no N-best list with two distinct entries"
import json, sys
lists = [json.loads(l).get("alternatives") for f in sys.argv[1:] for l in open(f)]
lists = [a for a in lists if a]
ok = any(len({x["text"] for x in a}) > 1 for a in lists)
ok = ok and all(len({x["text"] for x in a}) == len(a) for a in lists)
sys.exit(not ok)
PY
ok "test_alternatives.py: N-best lists of distinct word sequences"

# 2. The phrase list restricts the stream: every result is one of the two
# phrases (or empty), every partial a part of one.
out="$work/test_words.out"
timeout 120 "$py" "$peers/test_words.py" "${clips[0]}" >"$out" 2>"$out.err" ||
  fail "test_words.py exited non-zero: $(tail -n 2 "$out.err" | tr '\n' ' ')"
"$py" - "$out" <<'PY' || fail "test_words.py got words outside its phrase_list: $(head -c 300 "$out")"
import json, sys
phrases = ["ZERO ONE TWO THREE FOUR FIVE", "SIX SEVEN EIGHT NINE OH"]
words = {w for p in phrases for w in p.split()}
replies = [json.loads(l) for l in open(sys.argv[1])]
texts = [r["text"] for r in replies if "text" in r]
partials = [r["partial"] for r in replies if "partial" in r]
ok = texts and all(t in phrases + [""] for t in texts)
ok = ok and all(w in words for p in partials for w in p.split())
sys.exit(not ok)
PY
ok "test_words.py: every result one of its phrase_list ($(grep -c '"text"' "$out") results, last '$(grep '"text"' "$out" | tail -n 1 | head -c 80)')"

# 3. Concurrency changes no result.
admitted0=$(health_field "$(health 2700)" admitted)
for i in $(seq 0 7); do
  wav=${clips[i % ${#clips[@]}]}
  timeout 120 "$py" "$peers/test.py" "$wav" >"$work/seq.$i.out" 2>"$work/seq.$i.err" ||
    fail "sequential test.py run $i failed: $(tail -n 1 "$work/seq.$i.err")"
done
clients_at_once 8 par
same_partials=0
for i in $(seq 0 7); do
  wav=${clips[i % ${#clips[@]}]}
  seq_text=$("$py" "$client" check "$work/seq.$i.out" "$wav") || fail "sequential run $i: $seq_text"
  par_text=$("$py" "$client" check "$work/par.$i.out" "$wav") || fail "concurrent run $i: $par_text"
  [ "$seq_text" = "$par_text" ] || fail "run $i: concurrent '$par_text' != sequential '$seq_text'"
  [ "$seq_text" = "${ref[i % ${#clips[@]}]}" ] || fail "run $i: '$seq_text' != transcribe's '${ref[i % ${#clips[@]}]}'"
  cmp -s "$work/seq.$i.out" "$work/par.$i.out" && same_partials=$((same_partials + 1))
done
ok "8 concurrent test.py runs: same finals as 8 sequential ones ($same_partials/8 with identical partials too)"
h=$(health 2700)
admitted=$(health_field "$h" admitted)
streams=$(health_field "$h" streams)
((admitted - admitted0 >= 16)) || fail "/health admitted went from $admitted0 to $admitted after 16 streams: $h"
((streams == 0)) || fail "/health reports $streams open streams after every client closed: $h"
ok "/health: admitted $admitted0 -> $admitted, 0 streams open"

# 4. SIGTERM finalizes an open stream, then exit 0.
out="$work/sigterm.out"
timeout 60 "$py" "$client" stream ws://127.0.0.1:2700 "${clips[1]}" --realtime >"$out" 2>"$out.err" &
streamer=$!
deadline=$((SECONDS + 20))
until [ "$(wc -l <"$out")" -ge 5 ]; do
  kill -0 "$streamer" 2>/dev/null || fail "the real-time client ended early: $(tail -n 2 "$out.err" | tr '\n' ' ')"
  ((SECONDS < deadline)) || fail "the real-time client got no replies"
  sleep 0.1
done
serve_stop "$server" server
wait "$streamer" || fail "the real-time client failed: $(tail -n 2 "$out.err" | tr '\n' ' ')"
"$py" - "$out" <<'PY' || fail "after SIGTERM the streaming client got no final result before the close: $(tail -n 3 "$out" | tr '\n' ' ')"
import json, sys
replies = [json.loads(l) for l in open(sys.argv[1])]
final = [i for i, r in enumerate(replies) if "text" in r or "alternatives" in r]
sys.exit(not (replies[-1].get("close_code") == 1001 and final and final[-1] == len(replies) - 2))
PY
ok "SIGTERM: the open stream got its final result ('$(grep -v close_code "$out" | tail -n 1 | head -c 120)'), then $(tail -n 1 "$out"); exit 0"
