#!/bin/sh
# A private PulseAudio server with a virtual 16 kHz mono device, for the
# capture tests (CI has no sound card). Works as root without systemd/dbus.
#   tests/scripts/pulse.sh start [OWNER_PID]  # idempotent; prints the env to export;
#                                             # stops it all when OWNER_PID exits
#   tests/scripts/pulse.sh stop
# Clients need XDG_RUNTIME_DIR=/tmp/sparsa-xdg (the tests set it).
set -eu
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/sparsa-xdg}"
case "${1:-start}" in
start)
  command -v pulseaudio >/dev/null || { echo "pulseaudio is not installed: run .ci/setup" >&2; exit 1; }
  mkdir -p -m 700 "$XDG_RUNTIME_DIR"
  if ! pulseaudio --check 2>/dev/null; then
    pulseaudio --daemonize=yes -n --exit-idle-time=-1 \
      --log-target=file:"$XDG_RUNTIME_DIR/pulse.log" \
      --load="module-native-protocol-unix auth-anonymous=1" \
      --load="module-null-sink sink_name=sparsa_null rate=16000 channels=1 format=s16le sink_properties=device.description=sparsa_null"
    for _ in $(seq 50); do pactl info >/dev/null 2>&1 && break; sleep 0.1; done
    pactl set-default-sink sparsa_null
    pactl set-default-source sparsa_null.monitor
    # The null sink renders its first block ~2 s after start: wait for it.
    timeout 10 parec -d sparsa_null.monitor --latency-msec=20 --raw 2>/dev/null | head -c 3200 >/dev/null || true
  fi
  # A low-latency reader on the monitor keeps the sink running in small
  # blocks; without it capture starts 0.5-2 s late, in bursts.
  if ! { [ -f "$XDG_RUNTIME_DIR/parec.pid" ] && kill -0 "$(cat "$XDG_RUNTIME_DIR/parec.pid")" 2>/dev/null; }; then
    nohup parec -d sparsa_null.monitor --rate=16000 --channels=1 --format=s16le --latency-msec=20 \
      >/dev/null 2>"$XDG_RUNTIME_DIR/parec.log" &
    echo $! > "$XDG_RUNTIME_DIR/parec.pid"
  fi
  # With an owner pid (the tests pass theirs), everything started here is
  # stopped once that process is gone: a test cleans up what it starts. The
  # latest owner wins, so a watcher of an earlier test binary that is still
  # winding down never stops the server a later one started.
  if [ -n "${2:-}" ]; then
    echo "$2" > "$XDG_RUNTIME_DIR/owner"
    if ! { [ -f "$XDG_RUNTIME_DIR/watch.pid" ] && kill -0 "$(cat "$XDG_RUNTIME_DIR/watch.pid")" 2>/dev/null; }; then
      nohup sh -c 'while :; do
          o=$(cat "$1/owner" 2>/dev/null) || exit 0
          kill -0 "$o" 2>/dev/null || break
          sleep 1
        done
        XDG_RUNTIME_DIR="$1" sh "$2" stop' watcher "$XDG_RUNTIME_DIR" "$0" >/dev/null 2>&1 &
      echo $! > "$XDG_RUNTIME_DIR/watch.pid"
    fi
  fi
  echo "XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR"
  ;;
stop)
  [ -f "$XDG_RUNTIME_DIR/parec.pid" ] && kill "$(cat "$XDG_RUNTIME_DIR/parec.pid")" 2>/dev/null || true
  rm -f "$XDG_RUNTIME_DIR/parec.pid" "$XDG_RUNTIME_DIR/owner" "$XDG_RUNTIME_DIR/watch.pid"
  pulseaudio --kill 2>/dev/null || true
  ;;
esac
