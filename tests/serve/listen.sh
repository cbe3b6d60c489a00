#!/usr/bin/env bash
# `sparsa serve`'s listening addresses and its token, against the contract:
#  1. a non-loopback --listen without --token-file is refused at startup
#     (exit 2); with --no-auth it starts;
#  2. with --token-file on 0.0.0.0: no token or a wrong one -> HTTP 401 at
#     the handshake; `Authorization: Bearer SECRET` and ?token=SECRET both
#     give sparsa transcribe's finals;
#  3. --listen unix:PATH: GET /health over the Unix socket;
#  4. each server exits 0 on SIGTERM.
#   bash tests/serve/listen.sh target/release/sparsa
set -euo pipefail
prog=listen
# shellcheck source=tests/serve/lib.sh source-path=SCRIPTDIR/../..
source "$(dirname "$0")/lib.sh"
serve_setup "${1:-}"
clips 1

# 1. Refused without a token, allowed with --no-auth.
rc=0
timeout 30 "$sparsa" serve --listen 0.0.0.0:0 >/dev/null 2>"$work/open.err" || rc=$?
((rc == 2)) || fail "serve --listen 0.0.0.0:0 without --token-file exited $rc (want 2): $(tail -n 2 "$work/open.err" | tr '\n' ' ')"
ok "--listen 0.0.0.0:0 without a token: exit 2 ($(tail -n 1 "$work/open.err" | head -c 160))"
serve_start noauth --listen 0.0.0.0:0 --no-auth
[ -n "$serve_port" ] || fail "no 'listening: vosk ws://' line: $(cat "$work/noauth.err")"
health "$serve_port" >/dev/null
serve_stop "$serve_pid" noauth
ok "--listen 0.0.0.0:0 --no-auth: starts, /health answers, SIGTERM exit 0"

# 2. The token.
secret=s3cret-$RANDOM$RANDOM
printf '%s\n' "$secret" >"$work/token"
serve_start token --listen 0.0.0.0:0 --token-file "$work/token"
server=$serve_pid
port=$serve_port
for how in none wrong; do
  out="$work/token-$how.out"
  case $how in
    none) url=ws://127.0.0.1:$port ;;
    wrong) url="ws://127.0.0.1:$port/?token=not-$secret" ;;
  esac
  timeout 60 "$py" "$client" stream "$url" "${clips[0]}" >"$out" 2>"$out.err" || fail "client ($how token): $(tail -n 1 "$out.err")"
  grep -q '"handshake_status": 401' "$out" || fail "$how token: want HTTP 401 at the handshake, got: $(head -c 200 "$out")"
done
ok "token required: no token and a wrong one get HTTP 401"
out="$work/token-bearer.out"
timeout 60 "$py" "$client" stream "ws://127.0.0.1:$port" "${clips[0]}" --token "$secret" >"$out" 2>"$out.err" ||
  fail "client with a bearer token: $(tail -n 1 "$out.err")"
check_replies "$out" "${clips[0]}" "${ref[0]}" "with Authorization: Bearer"
out="$work/token-query.out"
timeout 60 "$py" "$client" stream "ws://127.0.0.1:$port/?token=$secret" "${clips[0]}" >"$out" 2>"$out.err" ||
  fail "client with ?token=: $(tail -n 1 "$out.err")"
check_replies "$out" "${clips[0]}" "${ref[0]}" "with ?token="
ok "Authorization: Bearer and ?token= both stream: finals equal sparsa transcribe"
serve_stop "$server" token

# 3. A Unix socket.
sock=$work/vosk.sock
serve_start unix --listen "unix:$sock"
grep -q "listening: vosk unix:$sock" "$work/unix.err" || fail "no 'listening: vosk unix:$sock' line: $(cat "$work/unix.err")"
body=$(curl -fsS --max-time 10 --unix-socket "$sock" http://localhost/health) || fail "GET /health over $sock failed"
ok "--listen unix:PATH: GET /health over the socket: $body"
serve_stop "$serve_pid" unix
[ ! -e "$sock" ] || echo "$prog: note: $sock is left behind after exit"
ok "SIGTERM: exit 0"
