#!/usr/bin/env bash
# The capacity measurement of issue #19 in one command: starts `sparsa serve`
# on a free loopback port (default model, from the project root), runs
# benches/serve/load.py against it with --server-pid (RSS and CPU from
# /proc), and stops the server with SIGTERM (it must exit 0).
#   bash benches/serve/run.sh target/release/sparsa [load.py options]
# e.g. ... --streams 5,10,20,30,40 --duration 60 --json serve-load.json
# (load.py's defaults: those levels, 60 s each; serve flags go in SERVE_ARGS,
# e.g. SERVE_ARGS="--workers 2 --max-streams 64").
set -euo pipefail
sparsa=$(readlink -f "${1:?usage: $0 SPARSA [load.py options]}")
shift
cd "$(dirname "$0")/../.."
[ -x "$sparsa" ] || { echo "serve bench: $sparsa is not an executable" >&2; exit 1; }
bash tests/serve/venv.sh
log=$(mktemp /tmp/sparsa-serve-bench.XXXXXX)
# shellcheck disable=SC2086 # SERVE_ARGS is a list of flags
"$sparsa" serve --listen 127.0.0.1:0 ${SERVE_ARGS:-} 2>"$log" &
server=$!
trap 'kill -KILL $server 2>/dev/null || true' EXIT
deadline=$((SECONDS + 60))
until port=$(sed -n 's#.*listening: vosk ws://[^ ]*:\([0-9][0-9]*\).*#\1#p' "$log" | head -n 1) && [ -n "$port" ]; do
  kill -0 "$server" 2>/dev/null || { echo "serve bench: sparsa serve exited: $(tail -n 3 "$log")" >&2; exit 1; }
  ((SECONDS < deadline)) || { echo "serve bench: no listening line in 60 s" >&2; exit 1; }
  sleep 0.1
done
echo "serve bench: sparsa serve ${SERVE_ARGS:-} on port $port (pid $server, log $log)"
target/serve-venv/bin/python benches/serve/load.py --url "ws://127.0.0.1:$port" --server-pid "$server" "$@"
kill -TERM "$server"
rc=0
wait "$server" || rc=$?
((rc == 0)) || { echo "serve bench: sparsa serve exited $rc after SIGTERM" >&2; exit 1; }
grep -i 'stats' "$log" | tail -n 3 || true
rm -f "$log"
