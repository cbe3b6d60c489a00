# Shared by the `sparsa serve` test scripts (tests/serve/*.sh); sourced, not
# run. The sourcing script sets `prog` (its name in messages) and calls
# serve_setup SPARSA first: it resolves the binary, enters the project root,
# makes the venv and a work dir, and installs the cleanup trap.
# shellcheck shell=bash disable=SC2034 # (variables set here are used by the sourcing script)

peers=../shared/peers/vosk-server
data=../shared/corpora/speechocean762/test
py=target/serve-venv/bin/python
client=tests/serve/client.py
serve_pids=()
cleanups=()

fail() {
  echo "${prog:?}: FAILED: $*" >&2
  exit 1
}
ok() { echo "$prog: ok: $*"; }

serve_cleanup() {
  local rc=$? pid c
  for c in "${cleanups[@]}"; do eval "$c" || true; done
  for pid in "${serve_pids[@]}"; do
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  done
  if ((rc)) && [ -n "${work:-}" ]; then
    echo "$prog: the servers' logs and client outputs are kept in $work" >&2
  elif [ -n "${work:-}" ]; then
    rm -rf "$work"
  fi
  return 0
}

# serve_setup SPARSA: sets sparsa (absolute path) and work; cds to the root.
serve_setup() {
  [ -n "${1:-}" ] || { echo "usage: $0 SPARSA (e.g. target/release/sparsa)" >&2; exit 2; }
  sparsa=$(readlink -f "$1")
  cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
  [ -x "$sparsa" ] || fail "$sparsa is not an executable"
  [ -d "$data" ] || fail "$data is missing (the shared corpora, see README)"
  command -v sox >/dev/null || fail "sox is missing (bash .ci/setup installs it)"
  command -v curl >/dev/null || fail "curl is missing (bash .ci/setup installs it)"
  bash tests/serve/venv.sh
  work=$(mktemp -d /tmp/sparsa-serve-test.XXXXXX)
  trap serve_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# port_busy PORT: true when something accepts connections on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port: a TCP port nothing listens on now.
free_port() {
  "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# require_port_free PORT WHY: fails with a clear message when PORT is taken.
require_port_free() {
  if port_busy "$1"; then
    fail "port $1 is busy ($2); stop whatever listens on 127.0.0.1:$1 and rerun"
  fi
}

# clips N: converts the first N clips of speechocean762 test to 16-bit WAV
# in $work (the Vosk clients read WAV only) and transcribes each with
# `sparsa transcribe`: sets clips (WAV paths) and ref (their final texts).
clips() {
  local id path wav i=0
  clips=()
  ref=()
  while read -r id path && ((i < $1)); do
    # wav.scp paths are relative to the data dir or to its parent.
    if [ -f "$data/$path" ]; then path="$data/$path"; else path="$data/../$path"; fi
    wav="$work/$id.wav"
    sox "$path" -b 16 -e signed-integer "$wav" || fail "sox could not convert $path"
    "$sparsa" transcribe "$wav" >"$work/$id.ref.jsonl" || fail "sparsa transcribe $wav failed"
    clips+=("$wav")
    ref+=("$("$py" "$client" finals "$work/$id.ref.jsonl")")
    i=$((i + 1))
  done <"$data/wav.scp"
  ((i == $1)) || fail "$data/wav.scp has fewer than $1 clips"
}

# serve_start NAME ARGS...: starts `sparsa serve ARGS` in the background
# (stderr in $work/NAME.err) and waits for its listening lines; sets
# serve_pid and serve_port (its first Vosk TCP port, if any).
serve_start() {
  local name=$1 deadline=$((SECONDS + 60))
  shift
  : >"$work/$name.err" # before the background job opens it
  "$sparsa" serve "$@" >"$work/$name.out" 2>"$work/$name.err" &
  serve_pid=$!
  serve_pids+=("$serve_pid")
  until grep -q 'listening: ' "$work/$name.err"; do
    kill -0 "$serve_pid" 2>/dev/null ||
      fail "sparsa serve $* exited at startup: $(tail -n 3 "$work/$name.err" | tr '\n' ' ')"
    ((SECONDS < deadline)) || fail "sparsa serve $* printed no 'listening:' line in 60 s"
    sleep 0.1
  done
  sleep 0.2 # the other listeners' lines
  serve_port=$(sed -n 's#.*listening: vosk ws://[^ ]*:\([0-9][0-9]*\).*#\1#p' "$work/$name.err" | head -n 1)
}

# serve_stop PID NAME: SIGTERM, then waits up to 30 s; fails unless exit 0.
serve_stop() {
  local pid=$1 name=$2 rc=0 deadline=$((SECONDS + 30))
  kill -TERM "$pid"
  while kill -0 "$pid" 2>/dev/null; do
    ((SECONDS < deadline)) || fail "$name did not exit within 30 s of SIGTERM"
    sleep 0.1
  done
  wait "$pid" || rc=$?
  ((rc == 0)) || fail "$name exited $rc after SIGTERM (want 0): $(tail -n 3 "$work/$name.err" | tr '\n' ' ')"
}

# health PORT [HOST]: GET /health's body; fails unless 200 with status ok.
health() {
  local body
  # --max-time 60: the first request to a socket-activated server waits for
  # it to start and load its model.
  body=$(curl -fsS --max-time 60 "http://${2:-127.0.0.1}:$1/health") || fail "GET /health on port $1 failed"
  "$py" -c 'import json, sys; h = json.loads(sys.argv[1]); sys.exit(h.get("status") != "ok")' "$body" ||
    fail "GET /health on port $1: not status ok: $body"
  echo "$body"
}

# health_field JSON KEY: one number from a /health body.
health_field() { "$py" -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

# check_replies OUT WAV WANT WHAT: the client output OUT (for WAV) is a
# valid reply sequence whose results and final join to WANT.
check_replies() {
  local got
  got=$("$py" "$client" check "$1" "$2" 2>&1) || fail "$4: $got (output in $1: $(head -c 300 "$1"))"
  [ "$got" = "$3" ] || fail "$4: got '$got', sparsa transcribe gives '$3'"
}

# clients_at_once N TAG: runs N test.py at once on clips[i % #clips] (the
# server on port 2700), outputs in $work/TAG.I.out; fails if any fails.
clients_at_once() {
  local n=$1 tag=$2 i pids=()
  for i in $(seq 0 $((n - 1))); do
    timeout 120 "$py" "$peers/test.py" "${clips[i % ${#clips[@]}]}" >"$work/$tag.$i.out" 2>"$work/$tag.$i.err" &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[i]}" || fail "$tag: concurrent test.py run $i failed: $(tail -n 1 "$work/$tag.$i.err")"
  done
}
