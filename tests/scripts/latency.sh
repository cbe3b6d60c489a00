#!/bin/sh
# Capture-to-event latency of `sparsa listen` at real time: plays N test
# clips of speechocean762 into the virtual PulseAudio device (1.5 s apart)
# and prints the daemon's final stats line (RTF, drops, latency p50/p99 of
# all events and of finals). Usage: tests/scripts/latency.sh [N] [listen args...]
set -eu
cd "$(dirname "$0")/../.."
n="${1:-10}"; [ $# -gt 0 ] && shift
export XDG_RUNTIME_DIR=/tmp/sparsa-xdg
sh tests/scripts/pulse.sh start >/dev/null
bin=target/release/sparsa
[ -x "$bin" ] || cargo build --release --locked
log=$(mktemp); cfg=$(mktemp)
# One stats line at exit, over the whole run.
echo "(stats_interval_s: 0.0)" > "$cfg"
RUST_LOG=info "$bin" listen --config "$cfg" "$@" >/dev/null 2>"$log" &
pid=$!
sleep 1.5
for f in $(cut -d' ' -f2 ../shared/corpora/speechocean762/test/wav.scp | head -n "$n"); do
  paplay "../shared/corpora/speechocean762/$f"
  sleep 1.5
done
kill -INT "$pid"; wait "$pid"
grep "final_report=true" "$log" | sed 's/.*stats //'
rm -f "$log" "$cfg"
