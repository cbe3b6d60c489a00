#!/usr/bin/env bash
# Creates (idempotently) the Python venv the `sparsa serve` tests and the
# load generator run in: target/serve-venv with the pinned websockets,
# websocket-client and wyoming of tests/serve/requirements.txt, from PyPI.
# Prints nothing unless something fails. On a fresh Debian without the venv
# module (python3-venv), installs it with apt-get (sudo only when not root).
#   bash tests/serve/venv.sh        # then: target/serve-venv/bin/python
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/serve-venv
req=tests/serve/requirements.txt

# Up to date when the venv's python runs and the stamp holds the same pins.
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import sys' 2>/dev/null &&
  cmp -s "$req" "$venv/.requirements"; then
  exit 0
fi

command -v python3 >/dev/null || { echo "venv: python3 is not installed" >&2; exit 1; }
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "venv: installing python3-venv" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
rm -rf "$venv"
mkdir -p target
if ! { python3 -m venv "$venv" &&
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$req"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "venv: FAILED to create $venv (pip output above)" >&2
  rm -rf "$venv"
  exit 1
fi
cp "$req" "$venv/.requirements"
