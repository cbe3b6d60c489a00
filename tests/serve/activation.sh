#!/usr/bin/env bash
# systemd socket activation of `sparsa serve`, with systemd's own
# systemd-socket-activate (the sd_listen_fds protocol a .socket unit uses:
# LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES): two listening sockets named
# vosk and wyoming, as systemd/sparsa-serve.socket (plus a Wyoming socket
# unit) would pass them. Checks that
#  1. the server starts on the first connection and serves the passed
#     sockets (its listening lines name their ports; --listen is unused);
#  2. GET /health answers on the vosk socket, and a test.py-equivalent
#     session (websocket-client) gives sparsa transcribe's finals;
#  3. the wyoming socket speaks Wyoming: the wyoming package's client gets
#     `info` for `describe` and transcribes the clip as transcribe does;
#  4. SIGTERM: exit 0.
#   bash tests/serve/activation.sh target/release/sparsa
set -euo pipefail
prog=activation
# shellcheck source=tests/serve/lib.sh source-path=SCRIPTDIR/../..
source "$(dirname "$0")/lib.sh"
serve_setup "${1:-}"
command -v systemd-socket-activate >/dev/null || fail "systemd-socket-activate is missing (package systemd; bash .ci/setup)"

clips 1
vosk_port=$(free_port)
wyoming_port=$(free_port)
[ "$vosk_port" != "$wyoming_port" ] || wyoming_port=$(free_port)
# The --listen given is a port the activated server must not use.
decoy=$(free_port)
: >"$work/server.err"
systemd-socket-activate -l "127.0.0.1:$vosk_port" -l "127.0.0.1:$wyoming_port" --fdname=vosk:wyoming \
  "$sparsa" serve --listen "127.0.0.1:$decoy" >"$work/server.out" 2>"$work/server.err" &
server=$!
serve_pids+=("$server")
deadline=$((SECONDS + 20))
# Its "Listening on" lines, not a connection: that would start the server.
until [ "$(grep -c '^Listening on 127.0.0.1:' "$work/server.err")" = 2 ]; do
  kill -0 "$server" 2>/dev/null || fail "systemd-socket-activate exited: $(tail -n 3 "$work/server.err" | tr '\n' ' ')"
  ((SECONDS < deadline)) || fail "systemd-socket-activate does not listen on $vosk_port"
  sleep 0.1
done
[ "$(readlink -f "/proc/$server/exe")" != "$sparsa" ] || fail "sparsa serve started before any connection"
ok "systemd-socket-activate holds 127.0.0.1:$vosk_port (vosk) and 127.0.0.1:$wyoming_port (wyoming)"

# 1 + 2. The first connection starts it; /health and a session on vosk.
h=$(health "$vosk_port") || exit 1
[ "$(readlink -f "/proc/$server/exe")" = "$sparsa" ] || fail "the activated process is not $sparsa"
grep -q "listening: vosk ws://127.0.0.1:$vosk_port" "$work/server.err" ||
  fail "no 'listening: vosk ws://127.0.0.1:$vosk_port' line: $(cat "$work/server.err")"
grep -q "listening: wyoming tcp://127.0.0.1:$wyoming_port" "$work/server.err" ||
  fail "no 'listening: wyoming tcp://127.0.0.1:$wyoming_port' line: $(cat "$work/server.err")"
! grep "listening: " "$work/server.err" | grep -q ":$decoy" || fail "the activated server also listens on --listen's port $decoy"
! port_busy "$decoy" || fail "the activated server also listens on --listen's port $decoy"
ok "activated on the first connection: serves the passed sockets (not --listen); GET /health: $h"
out="$work/stream.out"
timeout 120 "$py" "$client" stream "ws://127.0.0.1:$vosk_port" "${clips[0]}" >"$out" 2>"$out.err" ||
  fail "the session on the activated vosk socket failed: $(tail -n 1 "$out.err")"
check_replies "$out" "${clips[0]}" "${ref[0]}" "session on the activated vosk socket"
ok "session on the activated vosk socket: finals equal sparsa transcribe ('${ref[0]}')"

# 3. Wyoming on the socket named wyoming.
out="$work/wyoming.out"
timeout 120 "$py" "$client" wyoming 127.0.0.1 "$wyoming_port" "${clips[0]}" >"$out" 2>"$out.err" ||
  fail "the Wyoming client failed on the activated wyoming socket: $(tail -n 1 "$out.err")"
program=$(sed -n 1p "$out")
text=$(sed -n 2p "$out")
[ "$text" = "${ref[0]}" ] || fail "Wyoming transcript '$text', sparsa transcribe gives '${ref[0]}'"
ok "Wyoming on the activated wyoming socket: info names '$program', transcript equals sparsa transcribe"

# 4.
serve_stop "$server" server
ok "SIGTERM: exit 0"
